"""Transfer-matrix store: one row per (source, target, seed) in a JSONL file, rewritten atomically.

Each line: ``{"source": s, "target": t, "seed": k, "value": raw_return, "env_steps": steps_of_source,
"seconds": wall_time_of_its_job}``.
``source = -1`` is the multi-task policy (one policy trained on every context). A ``meta.json`` next to it pins
the env id and the context grid so a resumed build cannot silently mix grids. Only the parent process writes.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from omnitask.fileio import atomic_write_json, atomic_write_text

MULTITASK = -1


class TransferStore:
    """Rows of a (possibly partial) transfer matrix on disk."""

    def __init__(self, directory: str | Path, env_id: str, contexts: np.ndarray):
        self.dir = Path(directory)
        self.path = self.dir / "transfer.jsonl"
        self.meta_path = self.dir / "meta.json"
        self.env_id = env_id
        self.contexts = np.asarray(contexts, np.float32)  # [N, C]
        meta = {"env_id": env_id, "contexts": np.round(self.contexts.astype(np.float64), 6).tolist()}
        if self.meta_path.exists():
            old = json.loads(self.meta_path.read_text())
            if old["env_id"] != env_id or not np.allclose(old["contexts"], meta["contexts"], rtol=1e-5):
                raise ValueError(f"{self.dir}: holds a transfer matrix of another env/context grid "
                                 f"({old['env_id']}, {len(old['contexts'])} contexts); use a new directory")
        else:
            atomic_write_json(self.meta_path, meta)
        self._rows: dict[tuple[int, int, int], dict] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    r = json.loads(line)
                    self._rows[(r["source"], r["target"], r["seed"])] = r

    @property
    def num_contexts(self) -> int:
        return self.contexts.shape[0]

    def __len__(self) -> int:
        return len(self._rows)

    def has(self, source: int, seed: int) -> bool:
        """True when every target of (source, seed) is stored."""
        return all((source, t, seed) in self._rows for t in range(self.num_contexts))

    def add(self, rows: list[dict]) -> None:
        """Add rows and rewrite the file atomically (a crash leaves the previous complete file)."""
        for r in rows:
            r = {"source": int(r["source"]), "target": int(r["target"]), "seed": int(r["seed"]),
                 "value": float(r["value"]), "env_steps": int(r["env_steps"]),
                 "seconds": float(r.get("seconds", 0.0))}
            if not (r["source"] == MULTITASK or 0 <= r["source"] < self.num_contexts) or \
                    not 0 <= r["target"] < self.num_contexts:
                raise ValueError(f"row outside the {self.num_contexts}-context grid: {r}")
            self._rows[(r["source"], r["target"], r["seed"])] = r
        lines = [json.dumps(self._rows[k]) for k in sorted(self._rows)]
        atomic_write_text(self.path, "\n".join(lines) + "\n")

    def rows(self) -> list[dict]:
        return [self._rows[k] for k in sorted(self._rows)]

    def seeds(self) -> list[int]:
        return sorted({k[2] for k in self._rows})

    def matrix(self, seeds: list[int] | None = None) -> np.ndarray:
        """[S, N, N] raw values per seed (NaN where missing), sources x targets."""
        seeds = self.seeds() if seeds is None else list(seeds)
        n = self.num_contexts
        out = np.full((len(seeds), n, n), np.nan)
        for (s, t, k), r in self._rows.items():
            if s >= 0 and k in seeds:
                out[seeds.index(k), s, t] = r["value"]
        return out

    def multitask_row(self, seeds: list[int] | None = None) -> np.ndarray | None:
        """[S, N] raw values of the multi-task policy per seed, or None when not built."""
        seeds = self.seeds() if seeds is None else list(seeds)
        n = self.num_contexts
        out = np.full((len(seeds), n), np.nan)
        for (s, t, k), r in self._rows.items():
            if s == MULTITASK and k in seeds:
                out[seeds.index(k), t] = r["value"]
        return None if np.isnan(out).all() else out

    def job_seconds(self) -> float:
        """Sum over stored jobs of their wall time (each job's rows share one ``seconds`` value)."""
        per_job = {(r["seed"], r["seconds"]) for r in self._rows.values() if r.get("seconds")}
        return float(sum(s for _, s in per_job))

    def env_steps(self, source: int) -> int:
        vals = [r["env_steps"] for (s, _, _), r in self._rows.items() if s == source]
        return int(max(vals)) if vals else 0

    def export_csv(self, path: str | Path, seeds: list[int] | None = None) -> None:
        """Mean-over-seeds matrix as CSV (rows = sources, columns = targets)."""
        m = np.nanmean(self.matrix(seeds), axis=0)
        text = "\n".join(",".join(f"{v:.6g}" for v in row) for row in m) + "\n"
        atomic_write_text(path, text)


def normalise(values: np.ndarray, low: float | None, high: float | None) -> np.ndarray:
    """Map raw returns to [0, 1] with fixed bounds (the paper's per-benchmark bounds) or the data's min/max."""
    values = np.asarray(values, np.float64)
    lo = np.nanmin(values) if low is None else float(low)
    hi = np.nanmax(values) if high is None else float(high)
    if not hi > lo:
        raise ValueError(f"normalise: need high > low, got low={lo:g}, high={hi:g}")
    return np.clip((values - lo) / (hi - lo), 0.0, 1.0)
