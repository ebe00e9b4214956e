"""Signal phases of the generated intersections: 4 greens (N-S straight+right, N-S left, E-W straight+right, E-W
left) as SUMO state strings over a light's links, and the yellow transitions between them.

Shared by the network generator (which writes them into the network as its static program, so tools that read the
program -- SUMO's own fixed-time control, sumo-rl -- see the same 4 phases) and the signal env (which drives them).
"""
from __future__ import annotations

NUM_PHASES = 4
PHASE_NAMES = ("NS-straight", "NS-left", "EW-straight", "EW-left")


def phase_states(links: list[tuple[str, str]], lane_axis: dict[str, str]) -> tuple[list[str], dict]:
    """Green state strings of the 4 phases for one light and the link indices each phase serves.

    ``links[k] = (in_lane, out_lane)`` in SUMO's link-index order; ``lane_axis[in_lane]`` is 'NS' or 'EW'. Lane index
    0 of an approach carries straight+right, lane 1 the protected left turn.
    """
    members = {p: [] for p in range(NUM_PHASES)}
    for k, (in_lane, _) in enumerate(links):
        left = in_lane.endswith("_1")
        p = (0 if lane_axis[in_lane] == "NS" else 2) + (1 if left else 0)
        members[p].append(k)
    states = []
    for p in range(NUM_PHASES):
        states.append("".join("G" if k in members[p] else "r" for k in range(len(links))))
    return states, members


def yellow_state(green_from: str, green_to: str) -> str:
    """Links green now and red in the next phase turn yellow; everything else keeps its next-phase colour."""
    return "".join("y" if a in "Gg" and b == "r" else ("r" if b == "r" else a) for a, b in zip(green_from, green_to))
