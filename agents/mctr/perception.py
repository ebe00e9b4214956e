"""Frame perception for Atari without OCAtari: colour-blob objects, their motion, and a coarse situation.

OCAtari (RAM-based object lists) cannot be installed beside jax here (its metadata pins numpy<2), so this module
extracts objects from the RGB frame itself, for every game alike:
  * the background is the most frequent colour; every other colour's 8-connected components are objects
    (colour, centre x/y, width, height, area); components covering > ``max_area_frac`` of the frame are dropped;
  * objects are matched to the previous frame by colour, similar size and nearest centre, giving a displacement;
  * a *signature* (colour + size bucket) names a kind of object across frames ("the 16x4 red object").
It knows nothing game-specific: which signature is the player is learned by the meta-reasoner from
action-conditioned motion (see ``backends/embedded.py``). Limits: flickering sprites vanish on some frames,
objects of one colour that touch merge into one, score digits are objects too.

The situation is the agent's discrete summary of a frame: the phase (start / life_lost / play) and, once the
player is known, where the nearest moving non-player object is relative to it (left/right/aligned,
above/below/level).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from scipy import ndimage

PHASES = ("start", "life_lost", "play")
HORIZ = ("left", "aligned", "right")
VERT = ("above", "level", "below")
POOL = 10  # frame pooling factor for head features: 210x160 -> 21x16
FEATURE_DIM = 2 * (210 // POOL) * (160 // POOL) + len(PHASES) + len(HORIZ) + len(VERT) + 1


@dataclasses.dataclass(frozen=True)
class Obj:
    """One colour blob. Coordinates are pixels of the 210x160 ALE frame (x right, y down)."""

    color: tuple[int, int, int]
    x: float  # centre column
    y: float  # centre row
    w: int
    h: int
    area: int
    dx: float = 0.0  # displacement since the previous frame (0 when unmatched)
    dy: float = 0.0
    matched: bool = False

    @property
    def signature(self) -> str:
        r, g, b = self.color
        return f"{r:02x}{g:02x}{b:02x}-{min(self.w // 4, 9)}x{min(self.h // 4, 9)}"

    def describe(self) -> str:
        move = f", moving ({self.dx:+.0f},{self.dy:+.0f})" if self.matched and (self.dx or self.dy) else ""
        return f"rgb{self.color} {self.w}x{self.h} at (x={self.x:.0f}, y={self.y:.0f}){move}"


def extract_objects(rgb: np.ndarray, max_objects: int = 96, max_area_frac: float = 0.2) -> list[Obj]:
    """Colour-blob objects of one frame. rgb: [210, 160, 3] uint8. Sorted top-to-bottom, left-to-right.

    One 8-connected labelling of the non-background mask; a component's colour is its most frequent colour
    (touching blobs of different colours therefore merge -- cheaper than one labelling per colour).
    """
    if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"extract_objects wants one [H, W, 3] uint8 frame, got {rgb.shape} {rgb.dtype}")
    code = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]  # [H, W]
    colors, counts = np.unique(code[::3, ::2], return_counts=True)  # background = mode of a 1-in-6 subsample
    background = colors[np.argmax(counts)]
    mask = code != background
    labels, num = ndimage.label(mask, structure=np.ones((3, 3), bool))  # [H, W] int32
    if num == 0:
        return []
    lab = labels[mask].astype(np.int64)
    pairs, pair_counts = np.unique((lab << 24) | code[mask], return_counts=True)
    pair_lab = pairs >> 24
    order = np.lexsort((-pair_counts, pair_lab))  # per label, most frequent colour first
    first = order[np.r_[True, pair_lab[order][1:] != pair_lab[order][:-1]]]
    color_of = np.zeros(num + 1, np.int64)
    color_of[pair_lab[first]] = pairs[first] & 0xFFFFFF
    areas = np.bincount(lab, minlength=num + 1)
    limit = max_area_frac * code.size
    objs: list[Obj] = []
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None or areas[i] > limit:
            continue
        ys, xs = sl
        c = int(color_of[i])
        objs.append(Obj((c >> 16, (c >> 8) & 255, c & 255), (xs.start + xs.stop - 1) / 2,
                        (ys.start + ys.stop - 1) / 2, xs.stop - xs.start, ys.stop - ys.start, int(areas[i])))
    if len(objs) > max_objects:  # keep small objects (sprites, balls, bullets) over big ones
        objs = sorted(objs, key=lambda o: o.area)[:max_objects]
    return sorted(objs, key=lambda o: (o.y, o.x))


def match_motion(prev: Sequence[Obj], cur: Sequence[Obj], max_dist: float = 24.0) -> list[Obj]:
    """``cur`` with dx/dy filled from the nearest same-colour, similar-size object of ``prev`` (L1 < max_dist)."""
    if not prev or not cur:
        return list(cur)
    pa = np.array([(o.color[0] << 16 | o.color[1] << 8 | o.color[2], o.x, o.y, o.w, o.h) for o in prev])  # [P, 5]
    ca = np.array([(o.color[0] << 16 | o.color[1] << 8 | o.color[2], o.x, o.y, o.w, o.h) for o in cur])  # [C, 5]
    dist = np.abs(ca[:, None, 1] - pa[None, :, 1]) + np.abs(ca[:, None, 2] - pa[None, :, 2])  # [C, P]
    ok = ((ca[:, None, 0] == pa[None, :, 0]) & (np.abs(ca[:, None, 3] - pa[None, :, 3]) <= 4)
          & (np.abs(ca[:, None, 4] - pa[None, :, 4]) <= 4) & (dist < max_dist))
    dist = np.where(ok, dist, np.inf)
    best = dist.argmin(axis=1)  # [C]
    found = ok[np.arange(len(cur)), best]
    out = []
    for i, o in enumerate(cur):
        if found[i]:
            p = prev[best[i]]
            out.append(Obj(o.color, o.x, o.y, o.w, o.h, o.area, o.x - p.x, o.y - p.y, True))
        else:
            out.append(o)
    return out


@dataclasses.dataclass(frozen=True)
class Situation:
    """Discrete summary of one env's current frame (see module docstring)."""

    phase: str  # one of PHASES
    horiz: str = ""  # one of HORIZ, '' when player or target unknown
    vert: str = ""  # one of VERT, '' when unknown
    offset: tuple[float, float] = (0.0, 0.0)  # target - player in pixels (0, 0 when unknown)

    @property
    def key(self) -> str:
        return f"{self.phase}/{self.horiz or '-'}/{self.vert or '-'}"

    def text(self) -> str:
        if not self.horiz:
            rel = "the player or the nearest moving object is not identified"
        else:
            rel = (f"the nearest moving object is {self.horiz if self.horiz != 'aligned' else 'horizontally aligned'}"
                   f" and {self.vert if self.vert != 'level' else 'level'} relative to the player")
        phase = {"start": "at the start of an episode", "life_lost": "just after losing a life",
                 "play": "during play"}[self.phase]
        return f"{phase}, {rel}"


def situation(objs: Sequence[Obj], phase: str, player_sig: str | None, align_px: float = 6.0) -> Situation:
    """Situation from motion-matched objects; ``player_sig`` is the learned player signature (None if unknown)."""
    if phase not in PHASES:
        raise ValueError(f"phase {phase!r} not in {PHASES}")
    if player_sig is None:
        return Situation(phase)
    players = [o for o in objs if o.signature == player_sig]
    if not players:
        return Situation(phase)
    player = max(players, key=lambda o: o.area)
    movers = [o for o in objs if o.signature != player_sig and o.matched and (o.dx or o.dy)]
    if not movers:
        return Situation(phase)
    t = min(movers, key=lambda o: abs(o.x - player.x) + abs(o.y - player.y))
    ox, oy = t.x - player.x, t.y - player.y
    horiz = "aligned" if abs(ox) <= align_px else ("left" if ox < 0 else "right")
    vert = "level" if abs(oy) <= align_px else ("above" if oy < 0 else "below")
    return Situation(phase, horiz, vert, (ox, oy))


def pooled_gray(rgb: np.ndarray) -> np.ndarray:
    """[..., 210, 160, 3] uint8 -> [..., 21, 16] float32 in [0, 1] (mean-pooled luminance)."""
    gray = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255.0
    *lead, h, w = gray.shape
    return gray.reshape(*lead, h // POOL, POOL, w // POOL, POOL).mean(axis=(-3, -1))


def features(rgb_now: np.ndarray, rgb_prev: np.ndarray, sit: Situation) -> np.ndarray:
    """Head input for one env: pooled frame, pooled frame difference, situation one-hots -> [FEATURE_DIM] f32."""
    now, prev = pooled_gray(rgb_now), pooled_gray(rgb_prev)
    onehot = np.zeros(len(PHASES) + len(HORIZ) + len(VERT) + 1, np.float32)
    onehot[PHASES.index(sit.phase)] = 1.0
    if sit.horiz:
        onehot[len(PHASES) + HORIZ.index(sit.horiz)] = 1.0
        onehot[len(PHASES) + len(HORIZ) + VERT.index(sit.vert)] = 1.0
        onehot[-1] = 1.0
    return np.concatenate([now.ravel(), 4.0 * (now - prev).ravel(), onehot])


def describe_objects(objs: Sequence[Obj], limit: int = 24) -> str:
    """Object list for the text-only VLM mode, one object per line."""
    lines = [f"- {o.describe()}" for o in objs[:limit]]
    more = f"\n- ... and {len(objs) - limit} more" if len(objs) > limit else ""
    return "\n".join(lines) + more if lines else "- (no objects found)"
