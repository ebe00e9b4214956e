"""A seeded family of synthetic transfer matrices for judging task-selection strategies.

``generate(seed)`` returns one normalised transfer matrix ``m [N, N]`` (rows = trained source, columns = target,
values in [0, 1]) with its context coordinates ``u [N, D]`` (grid index / (num - 1) per axis, as
``agents.mbtl.contexts`` builds them). Everything is drawn from ``numpy.random.default_rng(seed)``, so a seed names
one matrix forever. The structure kinds cycle with the seed (``KINDS[seed % 5]``); one seed in three of each kind
is 2-D (``(seed // 5) % 3 == 2``).

Every matrix is ``clip(J(s) - gap(s, t) + eps, 0, 1)`` (target_difficulty: multiplicative, see below), with
  J(s)        the training performance of each source: a smooth random profile (sum of 3 random cosines) in
              [lo, hi] with lo ~ U(0.45, 0.75), hi ~ U(0.85, 1.0);
  gap(s, t)   how much a policy loses when moved from s to t, zero at t = s, increasing with the distance;
  eps         i.i.d. Gaussian cell noise, std ~ U(0, 0.15) (the diagonal too: training is noisy as well).
Kinds (what differs):
  smooth_generalist  linear gap, slope per normalised unit ~ U(0.15, 0.8): every policy transfers far
  sharp_specialist   Gaussian-shaped loss, gap = J(s) * (1 - exp(-d^2 / (2 w^2))), w ~ U(0.015, 0.08):
                     a policy is useful only near its own context
  asymmetric         linear gap with a different slope on each side (per axis): the shallow side ~ U(0.2, 1.0),
                     the steep side 3-10x steeper; which side is shallow is drawn per axis
  bumps_dips         smooth_generalist's gap (slope ~ U(0.3, 1.5)) with 1-3 Gaussian bumps and 1-3 dips added to J
                     (dips down to ~0.1: contexts where training fails)
  target_difficulty  exponential gap, slope ~ U(1, 6), times a per-target difficulty factor c(t) in [0.4, 1]
                     (some targets are hard for every policy, the gap is not a function of the source alone)
Sizes: 1-D N ~ {20, 30, 40, 50, 60, 80, 100}; 2-D a side x side grid with side ~ {5, 6, 7, 8, 10} (N 25-100), the
distance is L1 in normalised coordinates divided by D (so both dimensions reach 1 at the far corner).

``generate(seed)`` is ``assemble(draw(seed))``: ``draw`` makes the random draws (always in the same order, so a seed
names the same matrix as before round 7) and ``assemble(latents, j)`` builds the matrix from them with any J. Row s
depends on J only through J(s) in every structure, so a selector that has trained sources a, b cannot tell apart
matrices that share the latents and J(a), J(b) (round 7, ``benchmarks/mbtl_limit.py``).

``TUNING_SEEDS`` are the ones a selector may be tuned on; ``HELD_OUT_SEEDS`` are reported, never tuned on.
``EXTRA_TUNING_SEEDS`` (100-299) may be tuned on as well: with 100 matrices a design's count of wins moves by about
+-5 between seed sets (one matrix in three is a coin flip), so comparing designs on 300 seeds before the one held-out
run keeps the winner's curse smaller.
``HELD_OUT_SEEDS_2`` (20000-20099, issue 15 round 6): a second held-out set. ``HELD_OUT_SEEDS`` informed the
diagnoses of rounds 1-5, so it is no longer a clean test; the second set is read only by a run whose adoption rule
was committed before it (README, "Sixth round").
"""
from __future__ import annotations

import dataclasses

import numpy as np

KINDS = ("smooth_generalist", "sharp_specialist", "asymmetric", "bumps_dips", "target_difficulty")
TUNING_SEEDS = tuple(range(0, 100))
HELD_OUT_SEEDS = tuple(range(10_000, 10_100))
HELD_OUT_SEEDS_2 = tuple(range(20_000, 20_100))  # fresh held-out set of round 6 (see the module docstring)
EXTRA_TUNING_SEEDS = tuple(range(100, 300))
SIZES_1D = (20, 30, 40, 50, 60, 80, 100)
SIDES_2D = (5, 6, 7, 8, 10)
MAX_NOISE = 0.15
LO_RANGE = (0.45, 0.75)  # J's lower end lo ~ U(LO_RANGE)
HI_RANGE = (0.85, 1.0)  # J's upper end hi ~ U(HI_RANGE)
J_CLIP = (0.1, 1.0)  # bumps/dips: J is clipped to this range


@dataclasses.dataclass(frozen=True)
class SyntheticMatrix:
    seed: int
    kind: str  # one of KINDS
    m: np.ndarray  # [N, N] normalised transfer matrix, sources x targets
    u: np.ndarray  # [N, D] normalised context coordinates
    noise: float  # cell noise std

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.u.shape[1]}d"


def kind_of(seed: int) -> str:
    return KINDS[seed % len(KINDS)]


def dim_of(seed: int) -> int:
    return 2 if (seed // len(KINDS)) % 3 == 2 else 1


def _grid(rng: np.random.Generator, dim: int) -> np.ndarray:
    if dim == 1:
        n = int(rng.choice(SIZES_1D))
        return np.linspace(0.0, 1.0, n)[:, None]
    side = int(rng.choice(SIDES_2D))
    axis = np.linspace(0.0, 1.0, side)
    return np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)


def _shape(rng: np.random.Generator, u: np.ndarray) -> np.ndarray:
    """[N] a smooth random shape in [0, 1] (min 0, max 1): 3 random low-frequency cosines, min-max normalised."""
    f = np.zeros(u.shape[0])
    for _ in range(3):
        freq = rng.uniform(0.5, 3.0, u.shape[1])
        f += rng.uniform(0.3, 1.0) * np.cos(2 * np.pi * (u @ freq) + rng.uniform(0, 2 * np.pi))
    return (f - f.min()) / max(f.max() - f.min(), 1e-9)


def _profile(rng: np.random.Generator, u: np.ndarray) -> np.ndarray:
    """[N] smooth training performance: a random shape (``_shape``) rescaled to [lo, hi]."""
    f = _shape(rng, u)
    lo, hi = rng.uniform(LO_RANGE[0], LO_RANGE[1]), rng.uniform(HI_RANGE[0], HI_RANGE[1])
    return lo + (hi - lo) * f


def _bump_terms(rng: np.random.Generator, u: np.ndarray) -> list[np.ndarray]:
    """1-3 Gaussian bumps, then 1-3 dips, each a [N] term to add to J."""
    terms = []
    for sign in (+1.0, -1.0):
        for _ in range(int(rng.integers(1, 4))):
            c, w = rng.uniform(0, 1, u.shape[1]), rng.uniform(0.03, 0.12)
            amp = rng.uniform(0.2, 0.4) if sign > 0 else rng.uniform(0.3, 0.7)
            terms.append(sign * amp * np.exp(-((u - c) ** 2).sum(1) / (2 * w * w)))
    return terms


def _bumps(rng: np.random.Generator, u: np.ndarray, j: np.ndarray) -> np.ndarray:
    for term in _bump_terms(rng, u):
        j = j + term
    return np.clip(j, J_CLIP[0], J_CLIP[1])


@dataclasses.dataclass(frozen=True)
class Latents:
    """Everything ``generate`` draws for one seed. The matrix is ``assemble(latents, j)``: row s depends on J only
    through J(s), so two matrices with the same latents and the same J at some sources have identical rows there."""

    seed: int
    kind: str
    u: np.ndarray  # [N, D] normalised context coordinates (float64)
    j: np.ndarray  # [N] training performance J (bumps and dips included)
    gap: dict  # the kind's transfer parameters: slope (linear kinds and per-target difficulty), width (sharp
    #            specialist), pos / neg [D] (asymmetric), difficulty [N] (per-target difficulty)
    noise: float  # cell noise std
    z: np.ndarray  # [N, N] standard normal cell noise draws


def draw(seed: int) -> Latents:
    """The latents of the family's matrix number ``seed`` (the same random draws, in the same order, as always)."""
    rng = np.random.default_rng(seed)
    kind, dim = kind_of(seed), dim_of(seed)
    u = _grid(rng, dim)  # [N, D]
    j = _profile(rng, u)  # [N]
    if kind == "smooth_generalist":
        gap = {"slope": rng.uniform(0.15, 0.8)}
    elif kind == "sharp_specialist":
        gap = {"width": rng.uniform(0.015, 0.08)}
    elif kind == "asymmetric":
        shallow = rng.uniform(0.2, 1.0, dim)
        steep = shallow * rng.uniform(3.0, 10.0, dim)
        right_shallow = rng.random(dim) < 0.5  # per axis: does the source generalise further to larger values?
        gap = {"pos": np.where(right_shallow, shallow, steep),  # slope for offsets > 0
               "neg": np.where(right_shallow, steep, shallow)}
    elif kind == "bumps_dips":
        j = _bumps(rng, u, j)
        gap = {"slope": rng.uniform(0.3, 1.5)}
    else:  # target_difficulty
        gap = {"slope": rng.uniform(1.0, 6.0), "difficulty": 0.4 + 0.6 * _profile(rng, u)}  # [T] in [0.4 + 0.6 lo, 1]
    noise = float(rng.uniform(0.0, MAX_NOISE))
    z = rng.standard_normal((u.shape[0], u.shape[0]))
    return Latents(seed, kind, u, j, gap, noise, z)


def assemble(lat: Latents, j: np.ndarray | None = None) -> np.ndarray:
    """[..., N, N] the transfer matrix of ``lat`` with training performance ``j`` [..., N] (default: the drawn one;
    a batch of profiles gives a batch of matrices)."""
    j = (lat.j if j is None else np.asarray(j, np.float64))[..., :, None]  # [..., S, 1]
    u, dim = lat.u, lat.u.shape[1]
    off = u[None, :, :] - u[:, None, :]  # [S, T, D] signed offset target - source
    dist = np.abs(off).sum(-1) / dim  # [S, T]
    if lat.kind == "sharp_specialist":
        w = lat.gap["width"]
        clean = j - j * (1.0 - np.exp(-dist ** 2 / (2 * w * w)))
    elif lat.kind == "asymmetric":
        clean = j - (np.maximum(off, 0) * lat.gap["pos"] + np.maximum(-off, 0) * lat.gap["neg"]).sum(-1) / dim
    elif lat.kind == "target_difficulty":
        difficulty = lat.gap["difficulty"]
        clean = j * np.exp(-lat.gap["slope"] * dist) * difficulty[None, :] / difficulty.max()
    else:  # smooth_generalist, bumps_dips: linear gap
        clean = j - lat.gap["slope"] * dist
    return np.clip(clean + lat.noise * lat.z, 0.0, 1.0)


def generate(seed: int) -> SyntheticMatrix:
    """The family's matrix number ``seed`` (see module docstring)."""
    lat = draw(seed)
    return SyntheticMatrix(seed, lat.kind, assemble(lat), lat.u.astype(np.float32), lat.noise)


def family(seeds) -> list[SyntheticMatrix]:
    return [generate(int(s)) for s in seeds]


# ------------------------------------------------------------------------------------------- the criterion
CRITERION_KS = tuple(range(3, 16))  # k at which a selector must beat Random (issue: every k from 3 to 15)


def versus_random(perf: np.ndarray, random_perf: np.ndarray, oracle: float, ks=CRITERION_KS) -> tuple[bool, float]:
    """(beats Random at every k in ks, min over ks of perf - random_perf).

    perf, random_perf [K >= max(ks)]: generalised performance after k = 1..K tasks (Random's exact expectation,
    ``strategies.random_expected``). A k counts as beaten when perf > Random, or when perf already equals the
    exhaustive oracle (nothing left to gain)."""
    i = np.asarray(ks) - 1
    diff = perf[i] - random_perf[i]
    beaten = (diff > 0) | (perf[i] >= oracle - 1e-9)
    return bool(beaten.all()), float(diff.min())
