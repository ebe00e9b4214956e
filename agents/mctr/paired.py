"""Paired seed-by-seed comparison of the full agent against its no-memory ablation on unseen games.

Design (agents/mctr/README.md, "Paired experiment"): per genre group, one seen-phase knowledge base is built once
(the full agent plays each seen game of the group for ``budget`` decisions per env, seed ``seen_seed``); then, for
every unseen game of the group and every evaluation seed, ``full`` (starting from a copy of that knowledge base,
writing to it at test time) and ``no_memory`` (test-time RL only) play the same env seed with the same PRNG seed
and the same budget. The outcome is the reward per env summed over the budget (partial episodes included, so every
run is scored over the same decisions). Per game and pooled: mean paired difference, Cohen's d_z, a two-sided
paired t-test and a Wilcoxon signed-rank test (scipy).

    python -m agents.mctr.paired seen --out runs/mctr_paired               # builds the group knowledge bases
    python -m agents.mctr.paired run --out runs/mctr_paired --seeds 1000-1007 [--games DemonAttack,...]
    python -m agents.mctr.paired report --out runs/mctr_paired            # the statistics (JSON + a table)
Records are appended to ``<out>/pairs.jsonl`` one run at a time; a rerun skips runs already recorded.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from agents.mctr.config import MCTRConfig
from agents.mctr.evaluation import clone_memory, play
from agents.mctr.games import lookup
from agents.mctr.memory import KnowledgeBase
from omnitask.fileio import atomic_write_text

# genre group -> (seen games that build its knowledge base, unseen games evaluated with it)
GROUPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "fixed_shooter": (("SpaceInvaders", "Phoenix"), ("DemonAttack", "Assault")),
    "free_shooter": (("ChopperCommand", "StarGunner"), ("Seaquest", "Riverraid")),
    "sports": (("Tennis", "IceHockey"), ("Boxing",)),
}
SEEN_SEED = 999
BUDGET = 150
NUM_ENVS = 2
VARIANTS = ("full", "no_memory")


def group_of(game: str) -> str:
    for name, (_, unseen) in GROUPS.items():
        if game in unseen:
            return name
    raise ValueError(f"{game!r} is not an unseen game of the paired experiment; allowed: "
                     f"{', '.join(g for _, u in GROUPS.values() for g in u)}")


def build_seen(cfg: MCTRConfig, out: Path, budget: int = BUDGET, seed: int = SEEN_SEED,
               num_envs: int = NUM_ENVS) -> dict[str, int]:
    """One knowledge base per group at ``out/seen_<group>.jsonl``; returns entries per group."""
    sizes = {}
    for name, (seen, _) in GROUPS.items():
        kb = KnowledgeBase(cfg.memory, out / f"seen_{name}.jsonl")
        for game in seen:
            play(cfg, lookup(game), kb, budget, seed, num_envs, "full")
        kb.save()
        sizes[name] = len(kb)
        print(f"seen {name}: {', '.join(seen)} -> {len(kb)} entries", flush=True)
    return sizes


def run_one(cfg: MCTRConfig, out: Path, game: str, seed: int, variant: str, budget: int = BUDGET,
            num_envs: int = NUM_ENVS, seen_path: Path | None = None) -> dict:
    """One unseen-game run of one variant; ``full`` starts from a copy of the group's seen knowledge base."""
    seen_path = seen_path or out / f"seen_{group_of(game)}.jsonl"
    memory = None
    if variant == "full":
        memory = clone_memory(KnowledgeBase.load(seen_path, cfg.memory, bind=False), None)
    rec = play(cfg, lookup(game), memory, budget, seed, num_envs, variant)
    return {k: rec[k] for k in ("game", "variant", "seed", "reward_per_env", "score", "score_is_partial",
                                "memory_entries", "reflections", "decided_rate", "seconds")}


def run_pairs(cfg: MCTRConfig, out: Path, games: Sequence[str], seeds: Sequence[int],
              variants: Sequence[str] = VARIANTS) -> None:
    path = out / "pairs.jsonl"
    done = {(r["game"], r["seed"], r["variant"]) for r in load_records(path)}
    for seed in seeds:
        for game in games:
            for variant in variants:
                if (game, seed, variant) in done:
                    continue
                rec = run_one(cfg, out, game, seed, variant)
                with open(path, "a") as f:
                    f.write(json.dumps(rec) + "\n")
                print(json.dumps(rec), flush=True)


def load_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def paired_stats(full: np.ndarray, base: np.ndarray) -> dict:
    """[N], [N] paired outcomes -> mean difference, its 95% CI, Cohen's d_z, t-test and Wilcoxon p-values."""
    from scipy import stats

    d = np.asarray(full, np.float64) - np.asarray(base, np.float64)  # [N]
    n = len(d)
    sd = float(d.std(ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n)) if n > 1 else float("nan")
    out = {"n": n, "full_mean": float(np.mean(full)), "no_memory_mean": float(np.mean(base)),
           "mean_diff": float(d.mean()), "sd_diff": sd, "ci95": [float(d.mean()) - half, float(d.mean()) + half],
           "d_z": float(d.mean() / sd) if sd > 0 else 0.0, "wins": int((d > 0).sum()), "losses": int((d < 0).sum()),
           "ties": int((d == 0).sum())}
    out["t_p"] = float(stats.ttest_rel(full, base).pvalue) if sd > 0 else 1.0
    out["wilcoxon_p"] = float(stats.wilcoxon(d).pvalue) if (d != 0).sum() > 0 else 1.0
    return out


def report(records: Sequence[dict]) -> dict:
    """Per game: paired statistics of reward per env; pooled: per seed, the mean over games of the difference
    divided by the game's mean no-memory reward (so games with larger scores do not dominate), tested over seeds."""
    by = {(r["game"], r["seed"], r["variant"]): r["reward_per_env"] for r in records}
    games = sorted({g for g, _, _ in by}, key=lambda g: [u for _, us in GROUPS.values() for u in us].index(g)
                   if any(g in us for _, us in GROUPS.values()) else 99)
    result: dict = {"games": {}, "pooled": None}
    rel_by_seed: dict[int, list[float]] = {}
    for g in games:
        seeds = sorted(s for gg, s, v in by if gg == g and v == "full" and (g, s, "no_memory") in by)
        if not seeds:
            continue
        full = np.array([by[(g, s, "full")] for s in seeds])
        base = np.array([by[(g, s, "no_memory")] for s in seeds])
        result["games"][g] = {"seeds": seeds, **paired_stats(full, base),
                              "full": full.tolist(), "no_memory": base.tolist()}
        scale = max(abs(float(base.mean())), 1e-9)
        for s, f, b in zip(seeds, full, base):
            rel_by_seed.setdefault(s, []).append((f - b) / scale)
    seeds = sorted(s for s, v in rel_by_seed.items() if len(v) == len(result["games"]))
    if len(seeds) > 1:
        rel = np.array([np.mean(rel_by_seed[s]) for s in seeds])
        result["pooled"] = {"seeds": seeds, "relative_diff_by_seed": rel.tolist(),
                            **paired_stats(rel, np.zeros_like(rel))}
    return result


def against(records: Sequence[dict], baseline: Sequence[dict]) -> list[dict]:
    """``full`` runs of ``records`` paired with the ``full`` runs of another experiment (e.g. the full agent from an
    empty memory) in the baseline's place, so ``report`` tests carried against empty memory seed by seed."""
    base = [{**r, "variant": "no_memory"} for r in baseline if r["variant"] == "full"]
    return [r for r in records if r["variant"] == "full"] + base


def holm(pvalues: dict[str, float]) -> dict[str, float]:
    """Holm-adjusted p-values (step-down, monotone, capped at 1) of a family of tests keyed by name."""
    order = sorted(pvalues, key=pvalues.get)
    adjusted, running = {}, 0.0
    for i, name in enumerate(order):
        running = max(running, min(1.0, (len(order) - i) * pvalues[name]))
        adjusted[name] = running
    return adjusted


def table(res: dict, base_label: str = "no_memory") -> str:
    rows = [f"| game | seeds | full (mean) | {base_label} (mean) | diff [95% CI] | d_z | t-test p | Wilcoxon p | W/L/T |",
            "|---|---|---|---|---|---|---|---|---|"]
    for g, s in res["games"].items():
        rows.append(f"| {g} | {len(s['seeds'])} | {s['full_mean']:.1f} | {s['no_memory_mean']:.1f} | "
                    f"{s['mean_diff']:+.1f} [{s['ci95'][0]:+.1f}, {s['ci95'][1]:+.1f}] | {s['d_z']:+.2f} | "
                    f"{s['t_p']:.3f} | {s['wilcoxon_p']:.3f} | {s['wins']}/{s['losses']}/{s['ties']} |")
    p = res["pooled"]
    if p:
        rows.append(f"| pooled (relative) | {p['n']} | | | {p['mean_diff']:+.1%} [{p['ci95'][0]:+.1%}, "
                    f"{p['ci95'][1]:+.1%}] | {p['d_z']:+.2f} | {p['t_p']:.3f} | {p['wilcoxon_p']:.3f} | "
                    f"{p['wins']}/{p['losses']}/{p['ties']} |")
    return "\n".join(rows)


def _seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",") if s]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("seen", "run", "report"))
    parser.add_argument("--out", default="runs/mctr_paired")
    parser.add_argument("--seeds", default=None, help="evaluation seeds: '1000-1007' (run's default) or "
                        "'1000,1001'; for report: only these seeds (default: all recorded)")
    parser.add_argument("--games", default=",".join(g for _, u in GROUPS.values() for g in u))
    parser.add_argument("--seen-budget", type=int, default=BUDGET, help="decisions per env per seen game")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="variants to run (run command)")
    parser.add_argument("--against", default="", help="report: pair `full` with the `full` runs of this other --out "
                        "directory (e.g. the full agent from an empty memory) instead of with `no_memory`")
    parser.add_argument("--holm", default="", help="report: games whose t-test p-values form one family (Holm)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = MCTRConfig()
    if args.command == "seen":
        build_seen(cfg, out, budget=args.seen_budget)
    elif args.command == "run":
        run_pairs(cfg, out, [g for g in args.games.split(",") if g], _seeds(args.seeds or "1000-1007"),
                  [v for v in args.variants.split(",") if v])
    else:
        records = load_records(out / "pairs.jsonl")
        if args.against:
            records = against(records, load_records(Path(args.against) / "pairs.jsonl"))
        wanted = set(_seeds(args.seeds)) if args.seeds else None
        records = [r for r in records if wanted is None or r["seed"] in wanted]
        res = report(records)
        family = [g for g in args.holm.split(",") if g]
        missing = [g for g in family if g not in res["games"]]
        if missing:
            raise SystemExit(f"--holm names games without paired results: {', '.join(missing)}; "
                             f"have: {', '.join(res['games'])}")
        if family:
            res["holm"] = holm({g: res["games"][g]["t_p"] for g in family})
        name = "paired_report" + (f"_vs_{Path(args.against).name}" if args.against else "") + \
            (f"_{args.seeds}" if wanted is not None else "")
        atomic_write_text(out / f"{name}.json", json.dumps(res, indent=2) + "\n")
        print(table(res, "empty memory" if args.against else "no_memory"))
        if family:
            print("Holm-adjusted t-test p: " + ", ".join(f"{g} {p:.4f}" for g, p in res["holm"].items()))


if __name__ == "__main__":
    main()
