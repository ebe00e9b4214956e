"""The MCTR evaluation protocol: seen games build the memory, unseen games test adaptation, with ablations.

Protocol (per seed):
  1. *seen phase*: the full agent plays each seen game for ``budget`` real decisions per env, learning at test time;
     all seen games write into one knowledge base (game-, genre- and general-scoped entries).
  2. *unseen phase*: every variant plays every unseen game for the same ``budget``, each game starting from a fresh
     copy of the seen-phase knowledge (unseen games never see each other's knowledge).
Variants (ablations and baselines):
  full              carried memory + test-time meta-reasoning + test-time RL
  no_memory         no retrieval, no meta-reasoning (nothing to write to); test-time RL on
  no_meta           carried memory, frozen (no meta-reasoning on the unseen game); test-time RL on
  no_ttrl           carried memory + meta-reasoning; the policy head never updates (branching still feeds memory)
  icl               in-context-examples baseline: no memory, the last 32 branch outcomes of this game as
                    examples, no test-time RL
  static_retrieval  static-knowledge retrieval baseline: carried memory retrieved but never written, no
                    test-time RL, no branching
Score of a game run: mean raw return of the episodes finished within the budget; when none finished, the return
of the unfinished episode (so scores of long games are partial-episode scores -- stated in every results file).
Human-normalised score = (score - random) / (human - random) with games.py's reference scores.
Decision budget: real decisions per env; emulator steps spent in branched rollouts are reported separately.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Sequence

import jax
import numpy as np

from agents.mctr.agent import MCTRAgent
from agents.mctr.backends import make_backends
from agents.mctr.config import MCTRConfig
from agents.mctr.games import SEEN, UNSEEN, Game, human_normalised, lookup
from agents.mctr.memory import KnowledgeBase
from omnitask.fileio import atomic_write_text

VARIANTS = ("full", "no_memory", "no_meta", "no_ttrl", "icl", "static_retrieval")
ENV_OPTIONS = {"protocol": "dqn", "mode": "eval", "raw_rgb": True}  # raw scores, sticky actions 0.25, RGB frames


def variant_config(cfg: MCTRConfig, variant: str) -> tuple[MCTRConfig, str]:
    """(config, memory mode) of a variant; memory mode is 'learn', 'frozen' or 'none'."""
    r = dataclasses.replace
    if variant == "full":
        return cfg, "learn"
    if variant == "no_memory":
        return r(cfg, use_memory=False), "none"
    if variant == "no_meta":
        return r(cfg, scheduler=r(cfg.scheduler, enabled=False)), "frozen"
    if variant == "no_ttrl":
        return r(cfg, ttrl=r(cfg.ttrl, enabled=False)), "learn"
    if variant == "icl":
        return r(cfg, use_memory=False, in_context_examples=32, ttrl=r(cfg.ttrl, enabled=False)), "none"
    if variant == "static_retrieval":
        return r(cfg, branching=False, scheduler=r(cfg.scheduler, enabled=False),
                 ttrl=r(cfg.ttrl, enabled=False)), "frozen"
    raise ValueError(f"unknown MCTR variant {variant!r}; allowed: {', '.join(VARIANTS)}")


def make_env(game: Game, num_envs: int, seed: int):
    import envs

    return envs.make(f"atari/{game.name}", num_envs=num_envs, seed=seed, **ENV_OPTIONS)


def play(cfg: MCTRConfig, game: Game, memory: KnowledgeBase | None, budget: int, seed: int, num_envs: int,
         variant: str = "full", log_dir: Path | None = None) -> dict:
    """Run one variant on one game for ``budget`` decisions per env; returns the game's result record."""
    vcfg, mode = variant_config(cfg, variant)
    env = make_env(game, num_envs, seed)
    action_r, meta_r = make_backends(vcfg)
    try:
        agent = MCTRAgent(vcfg, env, game.name, game.genre, memory if mode != "none" else None, action_r,
                          meta_r if mode == "learn" else None, log_dir)
        key_init, key_run = jax.random.split(jax.random.PRNGKey(seed))
        tstate = agent.init_policy(key_init)
        agent.reset(seed)
        t0 = time.perf_counter()
        tstate, m = agent.run(tstate, key_run, budget)
        returns = m.pop("_returns")
        partial = [] if returns else [float(r) for r in agent.env_partial_returns()]
        score = float(np.mean(returns if returns else partial))
        return {"game": game.name, "genre": game.genre, "variant": variant, "seed": seed, "score": score,
                "score_is_partial": not returns, "episodes": len(returns),
                "human_normalised": human_normalised(game, score), "reward_per_env": m["reward_sum"] / num_envs,
                "decisions": budget, "branch_decisions": int(m["branch_decisions"]),
                "fallbacks": int(m["fallbacks"]), "decided_rate": m["decided_rate"],
                "obedience_rate": m["obedience_rate"], "memory_entries": int(m["memory_entries"]),
                "reflections": int(m["reflections"]), "prompt_tokens": int(m["prompt_tokens"]),
                "completion_tokens": int(m["completion_tokens"]), "seconds": time.perf_counter() - t0}
    finally:
        env.close()
        if hasattr(action_r, "close"):
            action_r.close()


def clone_memory(memory: KnowledgeBase, path: Path | None) -> KnowledgeBase:
    kb = KnowledgeBase(memory.cfg, path)
    kb.merge_from(memory)
    kb.save()
    return kb


def run_protocol(cfg: MCTRConfig, seen: Sequence[Game], unseen: Sequence[Game], variants: Sequence[str],
                 budget: int, seeds: Sequence[int], num_envs: int, out_dir: Path, verbose: bool = True) -> dict:
    out_dir = Path(out_dir)
    records = []
    for seed in seeds:
        memory = KnowledgeBase(cfg.memory, out_dir / f"seed{seed}" / "seen_knowledge.jsonl")
        for game in seen:
            rec = play(cfg, game, memory, budget, seed, num_envs, "full", out_dir / f"seed{seed}" / "seen")
            records.append({**rec, "phase": "seen"})
            if verbose:
                print(f"seed {seed} seen {game.name}: score {rec['score']:.1f}, memory {len(memory)} entries",
                      flush=True)
        for variant in variants:
            for game in unseen:
                vdir = out_dir / f"seed{seed}" / variant / game.name
                mem = clone_memory(memory, vdir / "knowledge.jsonl")
                rec = play(cfg, game, mem, budget, seed, num_envs, variant, vdir)
                records.append({**rec, "phase": "unseen"})
                if verbose:
                    print(f"seed {seed} {variant:16s} {game.name}: score {rec['score']:.1f} "
                          f"(HN {rec['human_normalised']:+.3f}, {rec['seconds']:.0f}s)", flush=True)
    summary = summarise(records, variants)
    result = {"budget_decisions_per_env": budget, "num_envs": num_envs, "seeds": list(seeds),
              "seen": [g.name for g in seen], "unseen": [g.name for g in unseen], "summary": summary,
              "records": records, "note": "scores are mean finished-episode raw returns, partial-episode returns "
                                          "when no episode finished within the budget (score_is_partial)"}
    atomic_write_text(out_dir / "protocol_results.json", json.dumps(result, indent=2) + "\n")
    return result


def summarise(records: Sequence[dict], variants: Sequence[str]) -> dict:
    """Per-variant per-game mean score, mean/median human-normalised score, and top-1 counts over unseen games."""
    unseen = [r for r in records if r.get("phase") == "unseen"]
    games = sorted({r["game"] for r in unseen})
    table = {v: {g: float(np.mean([r["score"] for r in unseen if r["variant"] == v and r["game"] == g]))
                 for g in games} for v in variants}
    hn = {v: [float(np.mean([r["human_normalised"] for r in unseen if r["variant"] == v and r["game"] == g]))
              for g in games] for v in variants}
    top1 = {v: 0 for v in variants}
    for g in games:
        best = max(variants, key=lambda v: table[v][g])
        top1[best] += 1
    return {"per_game_score": table, "hn_mean": {v: float(np.mean(hn[v])) for v in variants},
            "hn_median": {v: float(np.median(hn[v])) for v in variants}, "top1": top1}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="experiment YAML whose mctr: section configures the agent")
    parser.add_argument("--seen", default=",".join(g.name for g in SEEN), help="comma-separated seen games")
    parser.add_argument("--unseen", default=",".join(g.name for g in UNSEEN), help="comma-separated unseen games")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--budget", type=int, default=1000, help="real decisions per env per game")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--num-envs", type=int, default=1)
    parser.add_argument("--out", default="runs/mctr_protocol")
    args = parser.parse_args(argv)
    cfg = MCTRConfig()
    if args.config:
        from omnitask.schema import load_section
        cfg = load_section(args.config, "mctr", MCTRConfig)
    split = lambda s: [x for x in s.split(",") if x]  # noqa: E731
    result = run_protocol(cfg, [lookup(g) for g in split(args.seen)], [lookup(g) for g in split(args.unseen)],
                          split(args.variants), args.budget, [int(s) for s in split(args.seeds)], args.num_envs,
                          Path(args.out))
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
