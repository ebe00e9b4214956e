"""The Atari games omnitask exposes, their names, and per-game facts read from the ROM (modes, actions).

The game list is written out here (not read from ale-py) so that ``import envs`` stays cheap and the ids are listed
even where the ``atari`` extra is not installed; ``tests/test_env_atari.py`` checks it equals ale-py's shipped ROMs
minus the four that have no single-player mode (as ale-py's own ``ALE/*-v5`` registration does).
"""
from __future__ import annotations

import dataclasses
import difflib
import functools

# snake_case ROM ids shipped with ale-py 0.12.1 (108) minus combat, joust, maze_craze, warlords (multi-player only).
ROM_IDS: tuple[str, ...] = (
    'adventure', 'air_raid', 'alien', 'amidar', 'assault', 'asterix', 'asteroids', 'atlantis2', 'atlantis',
    'backgammon', 'bank_heist', 'basic_math', 'battle_zone', 'beam_rider', 'berzerk', 'blackjack', 'bowling',
    'boxing', 'breakout', 'carnival', 'casino', 'centipede', 'chopper_command', 'crazy_climber', 'crossbow',
    'darkchambers', 'defender', 'demon_attack', 'donkey_kong', 'double_dunk', 'earthworld', 'elevator_action',
    'enduro', 'entombed', 'et', 'fishing_derby', 'flag_capture', 'freeway', 'frogger', 'frostbite', 'galaxian',
    'gopher', 'gravitar', 'hangman', 'haunted_house', 'hero', 'human_cannonball', 'ice_hockey', 'jamesbond',
    'journey_escape', 'kaboom', 'kangaroo', 'keystone_kapers', 'king_kong', 'klax', 'koolaid', 'krull',
    'kung_fu_master', 'laser_gates', 'lost_luggage', 'mario_bros', 'miniature_golf', 'montezuma_revenge',
    'mr_do', 'ms_pacman', 'name_this_game', 'othello', 'pacman', 'phoenix', 'pitfall2', 'pitfall', 'pong',
    'pooyan', 'private_eye', 'qbert', 'riverraid', 'road_runner', 'robotank', 'seaquest', 'sir_lancelot',
    'skiing', 'solaris', 'space_invaders', 'space_war', 'star_gunner', 'superman', 'surround', 'tennis',
    'tetris', 'tic_tac_toe_3d', 'time_pilot', 'trondead', 'turmoil', 'tutankham', 'up_n_down', 'venture',
    'video_checkers', 'video_chess', 'video_cube', 'video_pinball', 'wizard_of_wor', 'word_zapper',
    'yars_revenge', 'zaxxon',
)

# ALE's 18 actions in ale_py.Action order (the "full action space"); index == ALE action value.
FULL_ACTION_NAMES: tuple[str, ...] = (
    'NOOP', 'FIRE', 'UP', 'RIGHT', 'LEFT', 'DOWN', 'UPRIGHT', 'UPLEFT', 'DOWNRIGHT', 'DOWNLEFT', 'UPFIRE',
    'RIGHTFIRE', 'LEFTFIRE', 'DOWNFIRE', 'UPRIGHTFIRE', 'UPLEFTFIRE', 'DOWNRIGHTFIRE', 'DOWNLEFTFIRE',
)

SCREEN_SHAPE = (210, 160)  # every ALE game renders 210 x 160 pixels


def camel_name(rom_id: str) -> str:
    """'ms_pacman' -> 'MsPacman' (the spelling of ALE's v5 ids and of omnitask's ``atari/<Game>`` ids)."""
    return rom_id.title().replace("_", "")


GAME_NAMES: tuple[str, ...] = tuple(camel_name(r) for r in ROM_IDS)
_BY_NAME = {camel_name(r): r for r in ROM_IDS}


def resolve_game(name: str) -> str:
    """Map 'MsPacman', 'ms_pacman' or 'atari/MsPacman' to the ROM id 'ms_pacman'; unknown names are refused
    with the closest game names."""
    if not isinstance(name, str):
        raise ValueError(f"Atari game names are strings like 'Pong', got {name!r}")
    bare = name.split("/", 1)[1] if name.startswith("atari/") else name
    if bare in _BY_NAME:
        return _BY_NAME[bare]
    if bare in ROM_IDS:
        return bare
    lowered = {n.lower(): n for n in GAME_NAMES}
    if bare.lower().replace("_", "") in lowered:
        return _BY_NAME[lowered[bare.lower().replace("_", "")]]
    close = difflib.get_close_matches(bare, GAME_NAMES, n=5, cutoff=0.5)
    hint = f" Close matches: {', '.join(close)}." if close else ""
    raise ValueError(f"unknown Atari game {name!r}.{hint} {len(GAME_NAMES)} games are available "
                     f"(CamelCase like ALE's v5 ids, e.g. 'Pong', 'MsPacman'; see envs.atari.GAME_NAMES).")


@dataclasses.dataclass(frozen=True)
class GameInfo:
    """Facts read from one ROM once (cached): what the context variables and action specs are built from."""

    rom_id: str  # snake_case ROM id, e.g. 'ms_pacman'
    name: str  # CamelCase name, e.g. 'MsPacman'
    modes: tuple[int, ...]  # ALE game modes the ROM supports; the first is the ROM's default
    difficulties: tuple[int, ...]  # ALE difficulties; the first is the default (backgammon: see README)
    minimal_actions: tuple[int, ...]  # ALE action values of the minimal action set, in ALE's order

    @property
    def default_mode(self) -> int:
        return self.modes[0]

    @property
    def default_difficulty(self) -> int:
        return self.difficulties[0]


def rom_path(rom_id: str) -> str:
    from ale_py import roms  # lazy: the atari extra

    path = roms.get_rom_path(rom_id)
    if path is None:
        raise ValueError(f"ale-py has no ROM {rom_id!r}")
    return str(path)


@functools.lru_cache(maxsize=None)
def game_info(rom_id: str) -> GameInfo:
    """Load ``rom_id`` once in a throw-away emulator and read its modes, difficulties and minimal action set."""
    import ale_py  # lazy: the atari extra

    ale = ale_py.ALEInterface()
    ale.setLoggerMode(ale_py.LoggerMode.Error)
    ale.loadROM(rom_path(rom_id))
    return GameInfo(rom_id=rom_id, name=camel_name(rom_id),
                    modes=tuple(int(m) for m in ale.getAvailableModes()),
                    difficulties=tuple(int(d) for d in ale.getAvailableDifficulties()),
                    minimal_actions=tuple(int(a.value) for a in ale.getMinimalActionSet()))
