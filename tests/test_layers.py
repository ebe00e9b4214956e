"""Layers only point down (ARCHITECTURE.md): the import graph of envs/, agents/ and omnitask/ -- every import,
also those inside functions -- goes from a layer to the same or a lower one, and has no cycle."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEAF = {"omnitask.schema", "omnitask.fileio", "omnitask.metrics_log", "omnitask.wandb_logger", "omnitask.nonfinite",
        "omnitask.plotting", "omnitask.mesh",
        "omnitask.precision", "omnitask.replay_location"}  # the only omnitask modules agents may use


def layer(node: str) -> int:
    """0 envs, 1 omnitask's leaf modules, 2 agents, 3 run loop, 4 MBTL (drives the run loop), 5 the CLI."""
    if node == "envs":
        return 0
    if node == "omnitask.cli":  # the entry point: dispatches `omnitask mbtl ...` to MBTL's CLI
        return 5
    if node in LEAF:
        return 1
    if node == "agents.mbtl":
        return 4
    return 2 if node.startswith("agents.") else 3


def node_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "envs":
        return "envs"
    if parts[0] == "agents" and len(parts) > 1:
        return ".".join(parts[:2])
    if parts[0] == "omnitask" and len(parts) > 1 and parts[1] != "__main__":
        return ".".join(parts[:2])
    return None


def import_graph() -> dict[str, set[str]]:
    """``{node: nodes it imports}``; the agents table's lazy loaders (a registry looked up by name) are left out."""
    graph: dict[str, set[str]] = {}
    for package in ("envs", "agents", "omnitask"):
        for path in (ROOT / package).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            src = node_of(module)
            if src is None or module == "omnitask.agents_table":
                continue
            for item in ast.walk(ast.parse(path.read_text())):
                if isinstance(item, ast.Import):
                    names = [a.name for a in item.names]
                elif isinstance(item, ast.ImportFrom) and item.module and item.level == 0:
                    names = [item.module]
                else:
                    continue
                for name in names:
                    dst = node_of(name)
                    if dst is not None and dst != src:
                        graph.setdefault(src, set()).add(dst)
    return graph


def test_imports_point_down():
    upward = sorted(f"{src} -> {dst}" for src, dsts in import_graph().items() for dst in dsts
                    if layer(dst) > layer(src))
    assert not upward, f"imports that point up a layer: {upward}"


def test_import_graph_has_no_cycle():
    graph = import_graph()
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


if __name__ == "__main__":  # print the graph (ARCHITECTURE.md)
    for src, dsts in sorted(import_graph().items(), key=lambda kv: (layer(kv[0]), kv[0])):
        print(f"[{layer(src)}] {src:22s} -> {', '.join(sorted(dsts, key=lambda d: (layer(d), d)))}")
