"""Keep the READMEs true: what README.md and agents/*/README.md show must work as written.

* every fenced ```python block runs as written;
* every fenced ```yaml block that is an experiment config (has ``agent:``) loads;
* every ``omnitask ...`` command line in a code block (fenced or indented) or quoted inline with a config file
  (``python -m omnitask`` and ``python -m agents.mbtl`` count too) runs in a smoke form through ``omnitask.cli.main``: training commands get
  the shared tiny budget ``SMOKE_RUN`` (one train iteration, one evaluation episode), MBTL studies ``SMOKE_MBTL``
  (3 contexts, 1,024 steps each). Placeholders in the command synopsis are filled in (CONFIG.yaml = the PPO
  CartPole config, RUN_DIR = the run that config trains, ENV_ID, N); optional ``[...]`` parts run with and
  without, ``a|b`` alternatives and ``{a,b}`` braces each.

To keep CI time small, the first training command of each agent trains (one iteration); later commands of the same
agent, and commands whose comment says GPU, only load their config with the smoke overrides (same code path,
another YAML). Commands that start processes elsewhere are not run here: seed sweeps (``--seeds``) and Ray
(``--executor ray``, ``--ray-address``) are covered by the sweep tests of the executors. A block can be skipped with
``<!-- readme-test: skip: REASON -->`` on the line above its fence; every such marker must be listed in
``ALLOWED_SKIPS`` (use sparingly: a block that needs a GPU or a server). Inline synopses without a config file and
other scripts (``python benchmarks/...``, ``python -m agents.mctr.evaluation``) are not run.
"""
from __future__ import annotations

import dataclasses
import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "agents").glob("*/README.md"))]
SKIP_MARKER = re.compile(r"<!--\s*readme-test:\s*skip:\s*(.*?)\s*-->")
ALLOWED_SKIPS: set[tuple[str, str]] = {  # (doc path relative to ROOT, reason)
    ("README.md", "the compare example needs its 10 ScaleZero runs (44 min); compare itself runs on SWEEP_DIR"),
}

TEMPLATE_CONFIG = "configs/ppo/cartpole.yaml"  # what CONFIG.yaml stands for in the command synopsis
TEMPLATE_MBTL_CONFIG = "configs/mbtl/cartpole_ci.yaml"
SMOKE_RUN = ["run.total_env_steps=1", "run.eval_every=0", "run.checkpoint_every=0", "run.eval_episodes=1",
             "run.progress=false"]
SMOKE_MBTL = ["mbtl.axes=[{name: length, num: 3}]", "mbtl.steps_per_task=1024", "mbtl.eval_episodes=1",
              "mbtl.multitask=false", "mbtl.seeds=[0]", "mbtl.k_max=2", "mbtl.num_random_orders=4", "mbtl.chunk_size=1",
              "mbtl.selector.gp.num_restarts=1", "mbtl.selector.gp.num_steps=10", "mbtl.executor=inline",
              "run.total_env_steps=2048", "run.progress=false"]
NOT_RUN_HERE = {"--seeds": "seed sweeps: the executor sweep tests run them", "--ray-address": "needs a Ray cluster",
                "ray": "Ray executor: the executor sweep tests run it"}


@dataclasses.dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # 1-based line of the first code line
    lang: str  # fence language ("" for unlabelled fences and indented blocks)
    code: str
    skip: str | None  # reason from a skip marker


def parse_blocks(doc: Path) -> list[Block]:
    """Fenced blocks (``` with optional language) and 4-space indented blocks after a blank line."""
    lines = doc.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            lang = line.strip()[3:].strip()
            marker = SKIP_MARKER.search(lines[i - 1]) if i > 0 else None
            j = i + 1
            while j < len(lines) and not lines[j].lstrip().startswith("```"):
                j += 1
            blocks.append(Block(doc, i + 2, lang, "\n".join(lines[i + 1:j]), marker.group(1) if marker else None))
            i = j + 1
        elif line.startswith("    ") and line.strip() and i > 0 and not lines[i - 1].strip():
            j = i
            while j < len(lines) and (lines[j].startswith("    ") or not lines[j].strip()):
                j += 1
            blocks.append(Block(doc, i + 1, "", "\n".join(l[4:] for l in lines[i:j]), None))
            i = j
        else:
            i += 1
    return blocks


def _expand(text: str) -> list[str]:
    """Expand ``[optional]`` parts (with, then without), ``{a,b}`` braces and ``a|b`` alternatives."""
    m = re.search(r"\s*\[([^\[\]]*)\]", text)
    if m:
        with_part = text[:m.start()] + " " + m.group(1) + text[m.end():]
        return _expand(with_part) + _expand(text[:m.start()] + text[m.end():])
    m = re.search(r"\{([^{}]*,[^{}]*)\}", text)
    if m:
        return [x for alt in m.group(1).split(",") for x in _expand(text[:m.start()] + alt + text[m.end():])]
    m = re.search(r"(?<![\w./=-])([\w-]+(?:\|[\w-]+)+)(?![\w./])", text)
    if m:
        return [x for alt in m.group(1).split("|") for x in _expand(text[:m.start()] + alt + text[m.end():])]
    return [text]


@dataclasses.dataclass(frozen=True)
class Command:
    doc: str
    line: int
    shown: str  # the line as the README shows it (without its comment)
    argv: tuple[str, ...]  # omnitask argv, placeholders filled, before the smoke overrides
    comment: str

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}: omnitask {' '.join(self.argv)}"


def parse_commands(block: Block) -> list[Command]:
    out = []
    text = re.sub(r"\\\n\s*", " ", block.code)  # shell line continuations
    for k, raw in enumerate(text.splitlines()):
        code, _, comment = raw.partition(" #")
        code = code.strip().removeprefix("$ ")
        for prefix, repl in (("python -m omnitask ", "omnitask "), ("python -m agents.mbtl ", "omnitask mbtl ")):
            code = repl + code[len(prefix):] if code.startswith(prefix) else code
        if not code.startswith("omnitask "):
            continue
        code = re.sub(r"\s*\[--set key=value \.\.\.\]", "", code)  # the generic override placeholder
        for variant in _expand(code):
            argv = shlex.split(variant)[1:]
            sub = "mbtl" if argv[:1] == ["mbtl"] else argv[0]
            argv = [{"CONFIG.yaml": TEMPLATE_MBTL_CONFIG if sub == "mbtl" else TEMPLATE_CONFIG,
                     "CONFIG": TEMPLATE_CONFIG, "ENV_ID": "classic/CartPole-v1"}.get(a, a) for a in argv]
            out.append(Command(str(block.doc.relative_to(ROOT)), block.line + k, code, tuple(argv), comment.strip()))
    return out


# Commands quoted inline in prose count when they name a config file (synopses in prose repeat the code blocks').
INLINE_COMMAND = re.compile(r"`((?:omnitask|python -m omnitask|python -m agents\.mbtl) [^`]*configs/[^`]*)`")


def inline_commands(doc: Path) -> list[Block]:
    return [Block(doc, n, "inline", m.group(1), None) for n, line in enumerate(doc.read_text().splitlines(), 1)
            for m in INLINE_COMMAND.finditer(line)]


def all_blocks() -> list[Block]:
    return [b for doc in DOCS for b in sorted(parse_blocks(doc) + inline_commands(doc), key=lambda b: b.line)]


def all_commands() -> list[Command]:
    seen, out = set(), []
    for b in all_blocks():
        if b.skip is None and b.lang in ("", "bash", "sh", "shell", "console", "inline"):
            for c in parse_commands(b):
                if c.argv not in seen:  # the same command shown twice runs once
                    seen.add(c.argv)
                    out.append(c)
    return out


def _agent_of(config: str) -> str | None:
    """The agent a config trains; None when it does not load (its test then runs it and fails with the reason)."""
    from omnitask.config import ConfigError, load_config
    try:
        return load_config(ROOT / config).agent
    except ConfigError:
        return None


def plan(commands: list[Command]) -> dict[str, str]:
    """command id -> "run" | "load" | "skip: reason" (decided once, in document order)."""
    decided, trained_agents = {}, set()
    for c in commands:
        reason = next((why for flag, why in NOT_RUN_HERE.items() if flag in c.argv), None)
        if reason:
            decided[c.id] = f"skip: {reason}"
        elif c.argv[:2] in (("mbtl", "run"), ("mbtl", "build")) and c.argv[2] != TEMPLATE_MBTL_CONFIG:
            decided[c.id] = "load"  # another study's config: the template study runs the same code path
        elif c.argv[0] == "train" and "--resume" not in c.argv:
            agent = _agent_of(c.argv[1])
            first = agent is None or (agent not in trained_agents and "GPU" not in c.comment)
            trained_agents |= {agent} if first else set()
            decided[c.id] = "run" if first else "load"
        else:
            decided[c.id] = "run"
    return decided


def _one_skip_per_line(commands: list[Command], decided: dict[str, str]) -> list[Command]:
    seen, out = set(), []
    for c in commands:
        if decided[c.id].startswith("skip") and (c.doc, c.line) in seen:
            continue
        if decided[c.id].startswith("skip"):
            seen.add((c.doc, c.line))
        out.append(c)
    return out


PLAN = plan(all_commands())
COMMANDS = _one_skip_per_line(all_commands(), PLAN)


def _cli(argv, capsys) -> tuple[int, str]:
    from omnitask.cli import main
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("readme-runs")


@pytest.fixture(scope="module")
def template_run(out_dir) -> Path:
    """RUN_DIR of the synopsis: the PPO CartPole config trained in smoke form (train CONFIG.yaml)."""
    from omnitask.cli import main
    assert main(["train", TEMPLATE_CONFIG, *_sets(SMOKE_RUN + [f"run.out_dir={out_dir}", "run.name=template"])]) == 0
    return out_dir / "template"


def _mbtl_smoke(config: str) -> list[str]:
    """SMOKE_MBTL for another study's config: its own context axes at 3 points, and no stored matrix directory."""
    from omnitask.config import load_config
    axes = ", ".join("{" + ", ".join(f"{k}: {'null' if v is None else v}" for k, v in
                                     {**dataclasses.asdict(a), "num": 3}.items()) + "}"
                     for a in load_config(ROOT / config).mbtl.axes)
    return [f"mbtl.axes=[{axes}]", "mbtl.matrix_dir=null"] + SMOKE_MBTL[1:]


def _sets(overrides: list[str]) -> list[str]:
    return [x for o in overrides for x in ("--set", o)]


# RUN_DIR, RUN_DIR2, RUN_A, RUN_B, ..., SWEEP_DIR and compare's RUN_DIR_OR_SWEEP_DIR... (a run folder is a sweep of one)
RUN_DIR_PLACEHOLDER = re.compile(r"RUN(_DIR)?(_?[A-Z0-9])?|SWEEP_DIR|RUN_DIR_OR_SWEEP_DIR(\.\.\.)?")
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]*")  # any other all-caps word is a placeholder this test must know


def _fill_run_dir(argv: tuple[str, ...], run_dir: Path) -> list[str]:
    """RUN_DIR-like words -> the template run; N -> 1 episode / 20 video frames / twice the steps the run has done.

    An unknown placeholder fails with a message saying where to teach it to this test."""
    out = []
    for i, a in enumerate(argv):
        if RUN_DIR_PLACEHOLDER.fullmatch(a):
            a = str(run_dir)
        elif a == "N" and i > 0 and argv[i - 1] in ("--episodes", "--max-steps"):
            a = "1" if argv[i - 1] == "--episodes" else "20"
        elif a == "run.total_env_steps=N":
            done = json.loads((run_dir / "final_eval.json").read_text())["env_steps"]
            a = f"run.total_env_steps={2 * done}"
        elif a == "DIR" and i > 0 and argv[i - 1] == "--out":
            a = str(run_dir.parent / f"out-{len(list(run_dir.parent.glob('out-*')))}")
        elif PLACEHOLDER.fullmatch(a):
            pytest.fail(f"README placeholder {a!r} in `omnitask {' '.join(argv)}`: give it a value in "
                        "tests/test_readme.py (_fill_run_dir or parse_commands)")
        out.append(a)
    return out


def test_readme_has_the_documented_pieces():
    """The parser finds what it should (so a parser bug cannot silently make the other tests vacuous)."""
    ids = [" ".join(c.argv) for c in COMMANDS]
    for expected in ("train configs/ppo/cartpole.yaml", "train --resume RUN_DIR --set run.total_env_steps=N",
                     "eval RUN_DIR --episodes N", "plot RUN_DIR", "envs --family atari", "mbtl online "
                     + TEMPLATE_MBTL_CONFIG, "train configs/quickstart.yaml", "train configs/mctr/embedded_cpu.yaml",
                     "train configs/scalezero/cpu_multitask_dps.yaml"):
        assert expected in ids, expected
    assert any(b.lang == "python" for b in all_blocks())
    assert sum(v == "run" for v in PLAN.values()) >= 10


def test_skip_markers_are_listed():
    found = {(str(b.doc.relative_to(ROOT)), b.skip) for b in all_blocks() if b.skip is not None}
    assert found == ALLOWED_SKIPS, f"skip markers must be listed in ALLOWED_SKIPS: {found - ALLOWED_SKIPS}"


@pytest.mark.parametrize("block", [b for b in all_blocks() if b.lang == "python" and b.skip is None],
                         ids=lambda b: f"{b.doc.relative_to(ROOT)}:{b.line}")
def test_python_block_runs_as_written(block, monkeypatch):
    monkeypatch.chdir(ROOT)
    exec(compile(block.code, f"{block.doc.name}:{block.line}", "exec"), {"__name__": "__main__"})


@pytest.mark.parametrize("block", [b for b in all_blocks() if b.lang == "yaml" and re.search(r"^agent:", b.code, re.M)],
                         ids=lambda b: f"{b.doc.relative_to(ROOT)}:{b.line}")
def test_yaml_config_block_loads(block, tmp_path):
    from omnitask.config import load_config
    path = tmp_path / "config.yaml"
    path.write_text(block.code)
    load_config(path)


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: c.id)
def test_command_runs_in_smoke_form(cmd, out_dir, template_run, capsys, monkeypatch):
    from omnitask.config import load_config

    monkeypatch.chdir(ROOT)
    action = PLAN[cmd.id]
    if action.startswith("skip"):
        pytest.skip(action)
    argv = _fill_run_dir(cmd.argv, template_run)
    sub = argv[0]
    if sub == "train" and "--resume" not in argv:
        if argv[1] == TEMPLATE_CONFIG and len(argv) == 2:
            return  # the template_run fixture ran exactly this command
        name = re.sub(r"\W+", "-", argv[1])
        overrides = SMOKE_RUN + [f"run.out_dir={out_dir}", f"run.name={name}"]
        if action == "load":  # same agent as an earlier command: check the config and the overrides only
            extra = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
            load_config(argv[1], extra + overrides)
            return
        argv = argv + _sets(overrides)
    elif sub == "mbtl" and action == "load":
        load_config(argv[2], _mbtl_smoke(argv[2]) + [f"run.out_dir={out_dir}"])
        return
    elif sub == "mbtl":
        argv = argv + _sets(SMOKE_MBTL + [f"run.out_dir={out_dir}"])
    plain_resume = argv[:2] == ["train", "--resume"] and len(argv) == 3
    metrics_before = (template_run / "metrics.jsonl").read_text() if plain_resume else None
    code, text = _cli(argv, capsys)
    if argv[:2] == ["eval", str(template_run)] and "--video" in argv:  # CartPole cannot render: refused at once
        assert code == 2 and "cannot render" in text, text
        return
    if sub == "compare" and "human" in argv:  # human-normalised scores exist for Atari only: CartPole is refused
        assert code == 2 and "classic/CartPole-v1" in text and len(text.strip().splitlines()) == 1, text
        return
    assert code == 0, f"omnitask {' '.join(argv)} failed:\n{text}"
    if plain_resume:  # the run already reached its budget: resuming again changes nothing
        assert "already finished" in " ".join(text.split()) and (template_run / "metrics.jsonl").read_text() == metrics_before
    elif sub == "train" and "--resume" in argv:
        resumes = json.loads((template_run / "provenance.json").read_text())["resumes"]
        assert resumes[-1]["changed"]["run.total_env_steps"][1] == resumes[-1]["total_env_steps"]
    if sub == "eval":
        assert json.loads((template_run / "eval.json").read_text())["episodes"] == 1
        assert "over 1 episode " in " ".join(text.split())
    if sub == "envs" and len(argv) == 1:
        assert "classic/CartPole-v1" in text
