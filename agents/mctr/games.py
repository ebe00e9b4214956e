"""The 45-game Atari suite of the MCTR protocol: genres, the seen/unseen split, and reference scores.

Split (ours; the paper's exact 33/12 split is not public): 12 unseen games, at least one per genre, each genre
keeping at least one seen game so genre-scoped knowledge can carry over. Reference random/human scores are the
standard per-game values of the DQN/Agent57 literature (Mnih et al. 2015; Badia et al. 2020), transcribed here.
Human-normalised score = (score - random) / (human - random).
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Game:
    rom: str  # ale-py ROM id, e.g. 'space_invaders'
    name: str  # CamelCase name used in knowledge text and gymnasium ids, e.g. 'SpaceInvaders'
    genre: str
    random: float  # reference random-policy score
    human: float  # reference human score
    unseen: bool = False


def _g(rom: str, genre: str, random: float, human: float, unseen: bool = False) -> Game:
    name = "".join(part.capitalize() for part in rom.split("_"))
    return Game(rom, name, genre, random, human, unseen)


SUITE: tuple[Game, ...] = (
    # paddle / ball games
    _g("pong", "paddle", -20.7, 14.6), _g("breakout", "paddle", 1.7, 30.5, True),
    _g("video_pinball", "paddle", 16256.9, 17667.9),
    # fixed shooters (player moves along one edge and fires)
    _g("space_invaders", "fixed_shooter", 148.0, 1668.7), _g("demon_attack", "fixed_shooter", 152.1, 1971.0, True),
    _g("assault", "fixed_shooter", 222.4, 742.0, True), _g("phoenix", "fixed_shooter", 761.4, 7242.6),
    _g("atlantis", "fixed_shooter", 12850.0, 29028.1), _g("beam_rider", "fixed_shooter", 363.9, 16926.5),
    _g("centipede", "fixed_shooter", 2090.9, 12017.0), _g("name_this_game", "fixed_shooter", 2292.3, 8049.0),
    # free-moving / scrolling shooters
    _g("asteroids", "free_shooter", 719.1, 47388.7), _g("chopper_command", "free_shooter", 811.0, 7387.8),
    _g("defender", "free_shooter", 2874.5, 18688.9), _g("riverraid", "free_shooter", 1338.5, 17118.0, True),
    _g("seaquest", "free_shooter", 68.4, 42054.7, True), _g("star_gunner", "free_shooter", 664.0, 10250.0),
    _g("time_pilot", "free_shooter", 3568.0, 5229.2), _g("zaxxon", "free_shooter", 32.5, 9173.3),
    _g("battle_zone", "free_shooter", 2360.0, 37187.5), _g("robotank", "free_shooter", 2.2, 11.9),
    # maze games
    _g("ms_pacman", "maze", 307.3, 6951.6, True), _g("alien", "maze", 227.8, 7127.7),
    _g("amidar", "maze", 5.8, 1719.5), _g("bank_heist", "maze", 14.2, 753.1, True),
    _g("wizard_of_wor", "maze", 563.5, 4756.5), _g("berzerk", "maze", 123.7, 2630.4),
    # platform / adventure
    _g("montezuma_revenge", "platform", 0.0, 4753.3), _g("pitfall", "platform", -229.4, 6463.7),
    _g("hero", "platform", 1027.0, 30826.4), _g("kangaroo", "platform", 52.0, 3035.0),
    _g("frostbite", "platform", 65.2, 4334.7, True), _g("private_eye", "platform", 24.9, 69571.3),
    # sports
    _g("boxing", "sports", 0.1, 12.1, True), _g("tennis", "sports", -23.8, -8.3),
    _g("ice_hockey", "sports", -11.2, 0.9), _g("double_dunk", "sports", -18.6, -16.4),
    _g("fishing_derby", "sports", -91.7, -38.7), _g("bowling", "sports", 23.1, 160.7),
    # racing / crossing
    _g("enduro", "racing", 0.0, 860.5, True), _g("freeway", "racing", 0.0, 29.6, True),
    _g("road_runner", "racing", 11.5, 7845.0), _g("up_n_down", "racing", 533.4, 11693.2),
    # action
    _g("kung_fu_master", "action", 258.5, 22736.3), _g("asterix", "action", 210.0, 8503.3, True),
)
BY_ROM = {g.rom: g for g in SUITE}
BY_NAME = {g.name: g for g in SUITE}
SEEN = tuple(g for g in SUITE if not g.unseen)
UNSEEN = tuple(g for g in SUITE if g.unseen)
GENRES = {g.name: g.genre for g in SUITE}


def lookup(game: str) -> Game:
    """A suite game by ROM id ('ms_pacman'), CamelCase name ('MsPacman') or an env id ending in either."""
    tail = game.split("/")[-1].split("-")[0]
    for table in (BY_ROM, BY_NAME):
        if tail in table:
            return table[tail]
    lowered = {g.name.lower(): g for g in SUITE}
    if tail.lower() in lowered:
        return lowered[tail.lower()]
    raise ValueError(f"{game!r} is not in the MCTR 45-game suite; games: {', '.join(sorted(BY_NAME))}")


def human_normalised(game: Game, score: float) -> float:
    return (score - game.random) / (game.human - game.random)


assert len(SUITE) == 45 and len(UNSEEN) == 12 and len(SEEN) == 33
assert all(any(s.genre == u.genre for s in SEEN) for u in UNSEEN)
