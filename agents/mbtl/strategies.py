"""Task-selection strategies, all replayable on a normalised transfer matrix.

``M[s, t]`` (``[N, N]``, values in [0, 1]) is the zero-shot performance on target context t of the policy trained
on source context s; ``u`` ``[N, D]`` are the normalised context coordinates. The *generalised performance* of a
set S of trained sources is ``mean_t max_{s in S} M[s, t]`` (every target uses its best trained policy).
Each strategy returns a ``Curve``: generalised performance after k = 1..K trained tasks.
"""
from __future__ import annotations

import dataclasses
import itertools
import math

import jax
import numpy as np

from agents.mbtl.selector import Selector, SelectorConfig, center_index, gp_observation


@dataclasses.dataclass(frozen=True)
class Curve:
    """Generalised performance of one strategy as a function of the number of trained tasks."""

    name: str
    perf: np.ndarray  # [K] generalised performance after k = 1..K tasks (mean over orders for random)
    perf_std: np.ndarray | None = None  # [K] std over orders (random strategies)
    order: np.ndarray | None = None  # [K] selected source indices (nested strategies), None otherwise
    num_tasks: np.ndarray | None = None  # [K] task-equivalents trained at each point (default 1..K)

    @property
    def tasks(self) -> np.ndarray:
        return self.num_tasks if self.num_tasks is not None else np.arange(1, len(self.perf) + 1)


def check_matrix(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"transfer matrix must be square [N, N] (sources x targets), got {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("transfer matrix has non-finite entries (missing jobs?)")
    return m


def generalized_performance(m: np.ndarray, order) -> np.ndarray:
    """[K] generalised performance after each prefix of ``order`` (source indices)."""
    m = check_matrix(m)
    best = np.maximum.accumulate(m[np.asarray(order, int)], axis=0)  # [K, N]
    return best.mean(axis=1)


def set_performance(m: np.ndarray, sources) -> float:
    return float(np.asarray(m)[np.asarray(list(sources), int)].max(axis=0).mean())


# ----------------------------------------------------------------------------------------------- baselines
def independent(m: np.ndarray, k_max: int) -> Curve:
    """Train k contexts separately, each policy used only on its own context (no transfer); expectation over
    random orders: (k / N) * mean(diag). Reaches mean(diag) at k = N."""
    m = check_matrix(m)
    n = m.shape[0]
    k = np.arange(1, k_max + 1)
    return Curve("Independent", k / n * np.diag(m).mean())


def multitask(row: np.ndarray, task_equivalents: float, k_max: int) -> Curve:
    """One policy trained on all contexts at once: a constant generalised performance mean(row), costing
    ``task_equivalents`` single-task training budgets (its env steps / steps per task)."""
    row = np.asarray(row, np.float64)
    return Curve("Multi-task", np.full(k_max, row.mean()), num_tasks=np.full(k_max, float(task_equivalents)))


def random_orders(m: np.ndarray, k_max: int, num_orders: int, key: jax.Array) -> Curve:
    """Uniformly random orders: mean and std over ``num_orders`` permutations."""
    m = check_matrix(m)
    n = m.shape[0]
    perms = np.asarray(jax.vmap(lambda kk: jax.random.permutation(kk, n))(jax.random.split(key, num_orders)))
    curves = np.stack([generalized_performance(m, p[:k_max]) for p in perms])  # [R, K]
    return Curve("Random", curves.mean(0), curves.std(0))


def random_expected(m: np.ndarray, k_max: int) -> Curve:
    """Exact expectation of Random: the mean generalised performance over *all* k-subsets, k = 1..k_max.

    For one target with its N source values sorted in decreasing order v_1 >= ... >= v_N, a uniformly random
    k-subset's best value is v_i with probability C(N - i, k - 1) / C(N, k). No sampling noise, so a comparison
    against it is not a comparison against a lucky draw of orders.
    """
    m = check_matrix(m)
    n = m.shape[0]
    v = -np.sort(-m, axis=0)  # [N, T] each column in decreasing order
    perf = [float((random_best_weights(n, k) @ v).mean()) for k in range(1, min(k_max, n) + 1)]
    return Curve("Random", np.asarray(perf))


def random_best_weights(n: int, k: int) -> np.ndarray:
    """[N] probability that a uniformly random k-subset of N sources has, as its best, the i-th best (i = 1..N)."""
    return np.array([math.comb(n - i, k - 1) for i in range(1, n + 1)], np.float64) / math.comb(n, k)


def equidistant(m: np.ndarray, u: np.ndarray, k_max: int) -> Curve:
    """For each budget k, k contexts evenly spread over the range (not nested).

    1-D: grid points nearest to (i + 0.5) / k (the reference's coarse_to_fine). D > 1: the first k points of a
    farthest-point ordering (nested).
    """
    m, u = check_matrix(m), np.asarray(u)
    if u.shape[1] > 1:
        order = farthest_point_order(u, k_max)
        return Curve("Equidistant", generalized_performance(m, order), order=order)
    perf = []
    for k in range(1, k_max + 1):
        pos = (np.arange(k) + 0.5) / k
        idx = np.unique(np.abs(u[:, 0][None, :] - pos[:, None]).argmin(axis=1))
        perf.append(set_performance(m, idx))
    return Curve("Equidistant", np.asarray(perf))


def farthest_point_order(u: np.ndarray, k_max: int) -> np.ndarray:
    """Nested max-min-distance ordering starting at the centre context."""
    u = np.asarray(u)
    order = [center_index(u)]
    dmin = np.abs(u - u[order[0]]).sum(1)
    while len(order) < k_max:
        nxt = int(np.argmax(dmin))
        order.append(nxt)
        dmin = np.minimum(dmin, np.abs(u - u[nxt]).sum(1))
    return np.asarray(order)


def coarse_to_fine(m: np.ndarray, u: np.ndarray, k_max: int) -> Curve:
    """Nested coarse-to-fine: start at the centre and repeatedly split the widest uncovered segment.

    1-D: interior segments are split in the middle; a boundary segment [0, s] counts double (covered from one
    side only) and is split at 1/3 from the boundary, which minimises the largest distance to a trained context.
    D > 1: farthest-point ordering.
    """
    m, u = check_matrix(m), np.asarray(u)
    if u.shape[1] > 1:
        order = farthest_point_order(u, k_max)
        return Curve("Coarse-to-fine", generalized_performance(m, order), order=order)
    x = u[:, 0]
    order = [center_index(u)]
    while len(order) < k_max:
        pts = np.sort(x[order])
        cands = [(2 * (pts[0] - 0.0), 0.0 + (pts[0] - 0.0) / 3)]
        cands += [(b - a, (a + b) / 2) for a, b in zip(pts[:-1], pts[1:])]
        cands.append((2 * (1.0 - pts[-1]), 1.0 - (1.0 - pts[-1]) / 3))
        chosen = None
        for _, target in sorted(cands, key=lambda c: -c[0]):
            free = [i for i in np.argsort(np.abs(x - target), kind="stable") if i not in order]
            if free:
                chosen = int(free[0])
                break
        order.append(chosen)
    order = np.asarray(order)
    return Curve("Coarse-to-fine", generalized_performance(m, order), order=order)


def sequential_oracle(m: np.ndarray, k_max: int) -> Curve:
    """Greedy with the true matrix: each step adds the source with the largest true marginal gain."""
    m = check_matrix(m)
    best = np.zeros(m.shape[1])
    order: list[int] = []
    for _ in range(k_max):
        gains = np.maximum(m, best[None, :]).mean(axis=1)  # [N]
        gains[order] = -np.inf
        s = int(np.argmax(gains))
        order.append(s)
        best = np.maximum(best, m[s])
    order_arr = np.asarray(order)
    return Curve("Sequential Oracle", generalized_performance(m, order_arr), order=order_arr)


def exhaustive_oracle(m: np.ndarray, k_max: int) -> Curve:
    """Upper bound: every context trained, each target uses its best source: mean_t max_s M[s, t]."""
    m = check_matrix(m)
    return Curve("Exhaustive Oracle", np.full(k_max, m.max(axis=0).mean()))


def best_subset_bruteforce(m: np.ndarray, k: int) -> tuple[float, tuple[int, ...]]:
    """Best k-subset by enumeration (small N only: C(N, k) subsets)."""
    m = check_matrix(m)
    best = (-1.0, ())
    for subset in itertools.combinations(range(m.shape[0]), k):
        v = set_performance(m, subset)
        if v > best[0] + 1e-12:
            best = (v, subset)
    return best


# ------------------------------------------------------------------------------------------------ MBTL
def model_based(m: np.ndarray, u: np.ndarray, k_max: int, cfg: SelectorConfig, key: jax.Array,
                name: str = "MBTL", selector: Selector | None = None) -> Curve:
    """Replay MBTL (or Greedy pseudo with ``cfg.model='constant'``) on a stored matrix.

    After training source s, its row M[s] is observed (zero-shot evaluation on every target is cheap);
    the GP is fitted on (u[s], M[s, s]) of the trained sources.
    """
    m = check_matrix(m)
    sel = selector or Selector(u, cfg)
    order: list[int] = []
    obs: list[float] = []  # GP observations of the trained contexts
    best = np.zeros(m.shape[1])
    for step in range(k_max):
        key, sub = jax.random.split(key)
        tr = np.asarray(order, int)
        s, _ = sel.select(order, np.asarray(obs), best, sub, observed_rows=m[tr] if order else None)
        order.append(s)
        obs.append(gp_observation(sel.cfg, m[s, s], best[s]))
        best = np.maximum(best, m[s])
    order_arr = np.asarray(order)
    return Curve(name, generalized_performance(m, order_arr), order=order_arr)


def greedy_pseudo(m: np.ndarray, u: np.ndarray, k_max: int, cfg: SelectorConfig, key: jax.Array) -> Curve:
    """Greedy (pseudo) strategy: MBTL's marginal-improvement rule with a constant training-performance model
    (the mean observed so far) and no uncertainty: pure coverage under the linear gap."""
    return model_based(m, u, k_max, dataclasses.replace(cfg, strategy="mbtl_paper", model="constant"), key,
                       name="Greedy (pseudo)")


def paper_rule(m: np.ndarray, u: np.ndarray, k_max: int, cfg: SelectorConfig, key: jax.Array) -> Curve:
    """The paper's MBTL rule (``strategy: mbtl_paper``) with cfg's acquisition / beta / slope settings."""
    return model_based(m, u, k_max, dataclasses.replace(cfg, strategy="mbtl_paper"), key, name="MBTL (paper)")


def all_strategies(m: np.ndarray, u: np.ndarray, k_max: int, cfg: SelectorConfig, key: jax.Array,
                   num_random_orders: int = 100, multitask_row: np.ndarray | None = None,
                   multitask_task_equivalents: float | None = None) -> list[Curve]:
    """Every strategy on one matrix, in plotting order."""
    k_rand, k_mbtl, k_greedy = jax.random.split(key, 3)
    curves = [independent(m, k_max), random_orders(m, k_max, num_random_orders, k_rand),
              equidistant(m, u, k_max), coarse_to_fine(m, u, k_max), greedy_pseudo(m, u, k_max, cfg, k_greedy),
              model_based(m, u, k_max, cfg, k_mbtl)]
    if cfg.strategy != "mbtl_paper":
        curves.append(paper_rule(m, u, k_max, cfg, k_mbtl))
    curves += [sequential_oracle(m, k_max), exhaustive_oracle(m, k_max)]
    if multitask_row is not None:
        curves.insert(1, multitask(multitask_row, multitask_task_equivalents or m.shape[0], k_max))
    return curves


# ----------------------------------------------------------------------------------- replay by strategy name
STRATEGY_NAMES = ("independent", "random", "equidistant", "coarse_to_fine", "greedy", "mbtl", "mbtl_paper",
                  "sequential_oracle", "exhaustive_oracle")


def _averaged(curves: list[Curve]) -> Curve:
    """Mean (and std) over the per-seed runs of one selection strategy; keeps the first run's order."""
    perf = np.stack([c.perf for c in curves])  # [seeds, K]
    return Curve(curves[0].name, perf.mean(0), perf.std(0) if len(curves) > 1 else None, curves[0].order)


def replay_named(m: np.ndarray, u: np.ndarray, names, k_max: int, cfg: SelectorConfig, key: jax.Array,
                 num_seeds: int = 1, num_random_orders: int = 100) -> list[Curve]:
    """Replay the strategies ``names`` (a subset of STRATEGY_NAMES, in that order) on one matrix.

    The GP strategies (mbtl, mbtl_paper, greedy) run with ``num_seeds`` PRNG keys (GP restarts) and are averaged;
    Random is averaged over ``num_random_orders`` orders.
    """
    unknown = [n for n in names if n not in STRATEGY_NAMES]
    if unknown:
        raise ValueError(f"unknown strategy {unknown[0]!r}; allowed: {', '.join(STRATEGY_NAMES)}")
    m = check_matrix(m)
    keys = jax.random.split(key, num_seeds + 1)
    seeded = {
        "greedy": lambda k: greedy_pseudo(m, u, k_max, cfg, k),
        "mbtl": lambda k: model_based(m, u, k_max, dataclasses.replace(cfg, strategy="mbtl"), k),
        "mbtl_paper": lambda k: paper_rule(m, u, k_max, cfg, k)}
    plain = {
        "independent": lambda: independent(m, k_max),
        "random": lambda: random_orders(m, k_max, num_random_orders, keys[-1]),
        "equidistant": lambda: equidistant(m, u, k_max),
        "coarse_to_fine": lambda: coarse_to_fine(m, u, k_max),
        "sequential_oracle": lambda: sequential_oracle(m, k_max),
        "exhaustive_oracle": lambda: exhaustive_oracle(m, k_max)}
    out = []
    for name in STRATEGY_NAMES:
        if name in names:
            out.append(_averaged([seeded[name](k) for k in keys[:num_seeds]]) if name in seeded else plain[name]())
    return out
