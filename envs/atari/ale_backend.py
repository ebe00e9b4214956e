"""Per-env ``ale_py.ALEInterface`` backend: clone/restore, raw RGB, per-env modes/difficulties, mixed games.

The preprocessing reproduces ``AtariVectorEnv``'s (tested bit-for-bit where comparable: same seeds, no no-ops, no
sticky actions): the ALE emulator runs with
``frame_skip=1``, this backend repeats each action ``frame_skip`` times, max-pools the last two screens (ALE's
palette grayscale or RGB), resizes with INTER_AREA and shifts the stack; a reset stack is zeros except the newest
frame. Truncation counts emulator frames of play since the reset (no-op frames excluded), as ale-py does.
No-op resets take a uniform ``0..noop_max-1`` raw NOOP frames (ale-py's range) from a per-env numpy stream seeded
like the emulator; the counts differ from ale-py's C++ stream, so the two backends agree only with no-ops off.
Deliberate differences: on the step that ends a game, ale-py 0.12.1 leaves the newest frame of
``final_observation`` stale (it stops capturing screens at the ending frame); this backend pools the real last
screens. Sticky actions are drawn here, per emulator frame exactly as ALE does (with probability p the previous
frame's action is repeated), from a per-env numpy stream: ALE's cloneState omits the last action, so with ALE's
own stickiness a restored state replays differently; here the last action and the stickiness stream are part of
``EmulatorState`` and branched rollouts replay exactly.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from envs.atari.backend import Backend, BackendStep
from envs.atari.games import SCREEN_SHAPE, game_info, rom_path
from envs.atari.protocol import AtariProtocol, resize_frame


@dataclasses.dataclass(frozen=True, eq=False)
class EmulatorState:
    """Everything one env needs to continue exactly from a branch point (returned by ``AtariEnv.clone_state``)."""

    rom_id: str  # the game this state belongs to (restoring into another game is refused)
    ale_state: Any = dataclasses.field(repr=False)  # ale_py.ALEState incl. the emulator RNG (sticky actions)
    frames: np.ndarray = dataclasses.field(repr=False)  # [stack, H, W(, 3)] uint8 preprocessing frame stack
    elapsed: int = 0  # emulator frames played since the reset (truncation clock)
    noop_rng: dict = dataclasses.field(default_factory=dict, repr=False)  # numpy bit-generator state of no-ops
    rgb: np.ndarray = dataclasses.field(default=None, repr=False)  # [210, 160, 3] uint8 raw screen (ALE does
    # not restore the screen buffer)
    last_action: int = 0  # index into the env's action set of the previous emulator frame (sticky actions)
    sticky_rng: dict = dataclasses.field(default_factory=dict, repr=False)  # numpy bit-generator state of stickiness


class AleBackend(Backend):
    """Env ``i`` plays ``rom_ids[i]`` in game mode ``modes[i]`` and difficulty ``difficulties[i]``."""

    supports_clone = True
    supports_rgb = True

    def __init__(self, rom_ids: Sequence[str], proto: AtariProtocol, full_action_space: bool,
                 modes: Sequence[int], difficulties: Sequence[int]):
        import ale_py  # lazy: the atari extra

        self._ale_py = ale_py
        self.proto = proto
        self.num_envs = len(rom_ids)
        self.rom_ids = list(rom_ids)
        self._modes = [int(m) for m in modes]
        self._difficulties = [int(d) for d in difficulties]
        self._ales: list[Any] = []
        self._action_sets: list[list[Any]] = []
        self._noop_index: list[int] = []  # index of NOOP in each env's action set
        for rom in self.rom_ids:
            info = game_info(rom)
            values = range(18) if full_action_space else info.minimal_actions
            self._action_sets.append([ale_py.Action(v) for v in values])
            self._noop_index.append(list(values).index(0) if 0 in values else 0)
            self._ales.append(None)
        self._rngs = [np.random.default_rng(0) for _ in range(self.num_envs)]
        self._sticky_rngs = [np.random.default_rng(0) for _ in range(self.num_envs)]
        self._last_action = np.zeros(self.num_envs, np.int64)  # [B] action-set index of the previous frame
        self._elapsed = np.zeros(self.num_envs, np.int64)  # [B] emulator frames since reset, no-ops excluded
        chans = () if proto.grayscale else (3,)
        self._frame_shape = (proto.size, proto.size) + chans
        self._screen_shape = SCREEN_SHAPE + chans
        self._frames = np.zeros((self.num_envs, proto.stack) + self._frame_shape, np.uint8)  # [B, S, H, W(, 3)]
        self._rgb = np.zeros((self.num_envs,) + SCREEN_SHAPE + (3,), np.uint8)  # [B, 210, 160, 3]
        self._bufs = [np.empty(self._screen_shape, np.uint8) for _ in range(2)]

    # ---- emulator plumbing -------------------------------------------------------------------------------------
    def _load(self, i: int, seed: int) -> None:
        """(Re)create env i's emulator with ``seed`` (ALE applies settings only on loadROM)."""
        ale_py = self._ale_py
        ale = ale_py.ALEInterface()
        ale.setLoggerMode(ale_py.LoggerMode.Error)
        ale.setInt("random_seed", int(seed))
        ale.setFloat("repeat_action_probability", 0.0)  # stickiness is drawn in step() (see module docstring)
        ale.setInt("frame_skip", 1)
        ale.loadROM(rom_path(self.rom_ids[i]))
        info = game_info(self.rom_ids[i])
        # Only non-default values are applied, so default contexts play exactly the ROM default (as the vector
        # backend does, which cannot set modes).
        if self._modes[i] != info.default_mode:
            ale.setMode(self._modes[i])
        if self._difficulties[i] != info.default_difficulty:
            ale.setDifficulty(self._difficulties[i])
        self._ales[i] = ale
        self._rngs[i] = np.random.default_rng(int(seed))
        self._sticky_rngs[i] = np.random.default_rng([int(seed), 0x571C])

    def _screen(self, ale, out: np.ndarray) -> np.ndarray:
        if self.proto.grayscale:
            ale.getScreenGrayscale(out)
        else:
            ale.getScreenRGB(out)
        return out

    def _new_game(self, i: int) -> None:
        """reset_game + random no-ops; writes env i's fresh stack (zeros, newest = first frame) and rgb."""
        ale = self._ales[i]
        ale.reset_game()
        if self.proto.noop_max > 0:
            noop = self._ale_py.Action.NOOP
            for _ in range(int(self._rngs[i].integers(0, self.proto.noop_max))):
                ale.act(noop)
                if ale.game_over():
                    ale.reset_game()
        self._elapsed[i] = 0
        self._last_action[i] = self._noop_index[i]  # ALE's reset_game makes NOOP the previous action
        self._frames[i] = 0
        self._frames[i, -1] = resize_frame(self._screen(ale, self._bufs[0]), self.proto.size)
        ale.getScreenRGB(self._rgb[i])

    # ---- Backend API -------------------------------------------------------------------------------------------
    def reset(self, seeds):
        self._frames = np.zeros_like(self._frames)  # fresh array (the previous one may be a user's observation)
        for i in range(self.num_envs):
            if seeds is not None or self._ales[i] is None:
                self._load(i, 0 if seeds is None else int(seeds[i]))
            self._new_game(i)
        frames = self._frames
        lives = np.array([a.lives() for a in self._ales], np.int32)
        ep = np.array([a.getEpisodeFrameNumber() for a in self._ales], np.int32)
        return frames, lives, ep

    def step(self, actions):
        B, proto = self.num_envs, self.proto
        skip = proto.frame_skip
        # A fresh stack array every step: observations already handed out are never written to again.
        new = np.empty_like(self._frames)  # [B, S, H, W(, 3)]
        new[:, :-1] = self._frames[:, 1:]
        self._frames = new
        final = None
        reward = np.zeros(B, np.float32)
        terminated = np.zeros(B, bool)
        truncated = np.zeros(B, bool)
        lives = np.empty(B, np.int32)
        ep = np.empty(B, np.int32)
        b0, b1 = self._bufs
        limit = proto.max_episode_frames
        for i in range(B):
            ale = self._ales[i]
            actions_i, sticky_rng, p = self._action_sets[i], self._sticky_rngs[i], proto.sticky_actions
            r = 0
            pooled = None
            for k in range(skip):
                if not (p > 0 and sticky_rng.random() < p):  # sticky: keep the previous frame's action
                    self._last_action[i] = actions[i]
                r += ale.act(actions_i[self._last_action[i]])
                self._elapsed[i] += 1
                game_over = ale.game_over()
                over = game_over or self._elapsed[i] >= limit
                if k == skip - 2:
                    self._screen(ale, b0)
                elif k == skip - 1:
                    pooled = np.maximum(b0, self._screen(ale, b1))
                if over and pooled is None:  # game ended before the last skipped frame: use its last screen
                    pooled = self._screen(ale, b1)
                if over:
                    break
            new[i, -1] = resize_frame(pooled, proto.size)
            reward[i] = r
            if over:
                terminated[i] = game_over
                truncated[i] = not game_over
                if final is None:
                    final = new.copy()
                else:
                    final[i] = new[i]
                self._new_game(i)  # writes new[i] (== self._frames[i]) and self._rgb[i]
            else:
                ale.getScreenRGB(self._rgb[i])
            lives[i] = ale.lives()
            ep[i] = ale.getEpisodeFrameNumber()
        if final is None:
            final = new
        else:
            done = terminated | truncated
            final[~done] = new[~done]
        return BackendStep(frames=new, reward=reward, terminated=terminated, truncated=truncated,
                           final_frames=final, lives=lives, episode_frame=ep)

    def rgb(self):
        return self._rgb.copy()

    def clone(self):
        if any(a is None for a in self._ales):
            raise RuntimeError("clone_state() needs a reset() first")
        return [EmulatorState(rom_id=self.rom_ids[i], ale_state=self._ales[i].cloneState(include_rng=True),
                              frames=self._frames[i].copy(), elapsed=int(self._elapsed[i]),
                              noop_rng=self._rngs[i].bit_generator.state, rgb=self._rgb[i].copy(),
                              last_action=int(self._last_action[i]),
                              sticky_rng=self._sticky_rngs[i].bit_generator.state) for i in range(self.num_envs)]

    def restore(self, states):
        if any(a is None for a in self._ales):
            raise RuntimeError("restore_state() needs a reset() first (to create the emulators)")
        for i, st in enumerate(states):
            if not isinstance(st, EmulatorState):
                raise TypeError(f"restore_state: item {i} is a {type(st).__name__}, not a state from clone_state()")
            if st.rom_id != self.rom_ids[i]:
                raise ValueError(f"restore_state: state {i} is from game {st.rom_id!r} but env {i} plays "
                                 f"{self.rom_ids[i]!r}")
        self._frames = self._frames.copy()  # never write into an array handed out as an observation
        for i, st in enumerate(states):
            self._ales[i].restoreState(st.ale_state)
            self._frames[i] = st.frames
            self._elapsed[i] = st.elapsed
            self._rngs[i].bit_generator.state = st.noop_rng
            self._rgb[i] = st.rgb
            self._last_action[i] = st.last_action
            self._sticky_rngs[i].bit_generator.state = st.sticky_rng

    def close(self):
        self._ales = [None] * getattr(self, "num_envs", 0)
