"""Generate SUMO networks and demand for the traffic environments (no downloaded data).

Two layouts, both written as plain-XML node/edge/connection files and compiled with the ``netconvert`` binary that
ships in the ``eclipse-sumo`` wheel:

* ``grid``: ``rows x cols`` signalised intersections spaced ``lane_length`` apart, every boundary intersection
  attached to a fringe (source/sink) node ``lane_length`` away. Every approach has 2 lanes: lane 0 goes straight or
  right, lane 1 turns left. ``1x1`` is the single 4-way intersection of the MBTL signal-control benchmark.
* ``ring``: a single-lane circular road of length ``ring_length`` made of 4 arcs (no internal junction lanes, so the
  driven distance per lap is exactly ``ring_length``).

Demand: random (Bernoulli per second) flows from every fringe entry; at the first intersection 60% go straight,
20% turn left and 20% right, then continue straight to the fringe. ``inflow`` is vehicles per hour *per entry*.
"""
from __future__ import annotations

import math
import os
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from envs.traffic.cache import cache_root, cached_dir

TURN_SHARES = {"straight": 0.6, "left": 0.2, "right": 0.2}  # at the first intersection
CAR_LENGTH = 5.0  # m
CAR_MIN_GAP = 2.5  # m (SUMO default)


def sumo_home() -> str:
    """SUMO_HOME of the eclipse-sumo wheel (also exported so sumolib/tools find it)."""
    import sumo  # the eclipse-sumo wheel

    os.environ.setdefault("SUMO_HOME", sumo.SUMO_HOME)
    return sumo.SUMO_HOME


def sumo_binary(name: str) -> str:
    path = os.path.join(sumo_home(), "bin", name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"SUMO binary {name!r} not found at {path}; install the 'traffic' extra")
    return path


def require_files(*paths: str) -> None:
    """Raise a clear FileNotFoundError before SUMO would fail with a bare 'Process Error'."""
    for path in paths:
        if not os.path.exists(path):
            raise FileNotFoundError(f"SUMO input file {path} does not exist (was the scenario cache {cache_root()} "
                                    "deleted while an env was running?)")


def _netconvert(out_dir: Path, extra_args: list[str]) -> None:
    cmd = [sumo_binary("netconvert"), "-n", "net.nod.xml", "-e", "net.edg.xml", "-o", "net.net.xml",
           "--no-turnarounds", "true", "--no-warnings", "true", "--xml-validation", "never",
           "--output.street-names", "false"] + extra_args
    if (out_dir / "net.con.xml").exists():
        cmd += ["-x", "net.con.xml"]
    res = subprocess.run(cmd, cwd=out_dir, capture_output=True, text=True, timeout=120)
    if res.returncode != 0 or not (out_dir / "net.net.xml").exists():
        raise RuntimeError(f"netconvert failed ({res.returncode}): {res.stderr.strip()[-2000:]}")


# --------------------------------------------------------------------------------------------------------- grid
@dataclass(frozen=True)
class GridParams:
    """A signalised grid and its demand (one generated scenario)."""

    rows: int  # intersections per column
    cols: int  # intersections per row
    lane_length: float  # m, distance between adjacent nodes (approach length)
    speed_limit: float  # m/s on every edge
    inflow: float  # veh/h entering at each fringe entry
    horizon: float  # s, flows end here
    straight_only: bool = False  # eco-driving demand: no turns
    cav_share: float = 0.0  # share of the demand that is of vType "cav" (controlled, eco-driving penetration)


def _grid_nodes(p: GridParams) -> dict[tuple[int, int], str]:
    """Lattice coordinate (col, row) -> node id; intersections J{r}_{c}, fringe nodes around them."""
    nodes = {(c, r): f"J{r}_{c}" for r in range(p.rows) for c in range(p.cols)}
    for c in range(p.cols):
        nodes[(c, -1)] = f"S{c}"
        nodes[(c, p.rows)] = f"N{c}"
    for r in range(p.rows):
        nodes[(-1, r)] = f"W{r}"
        nodes[(p.cols, r)] = f"E{r}"
    return nodes


def _edge_id(a: str, b: str) -> str:
    return f"{a}__{b}"


def _walk_to_fringe(nodes, start: tuple[int, int], d: tuple[int, int]) -> tuple[str, str]:
    """From intersection ``start`` drive in direction ``d`` until a fringe node; return its (last edge) ends."""
    cur = start
    while True:
        nxt = (cur[0] + d[0], cur[1] + d[1])
        if not nodes[nxt].startswith("J"):
            return nodes[cur], nodes[nxt]
        cur = nxt


def build_grid(p: GridParams, out_dir: Path) -> None:
    """Write nodes/edges/connections, compile the network and write the demand into ``out_dir``."""
    nodes = _grid_nodes(p)
    L = float(p.lane_length)
    lines = ["<nodes>"]
    for (c, r), nid in sorted(nodes.items(), key=lambda kv: kv[1]):
        kind = "traffic_light" if nid.startswith("J") else "priority"
        lines.append(f'  <node id="{nid}" x="{c * L:.2f}" y="{r * L:.2f}" type="{kind}"/>')
    lines.append("</nodes>")
    (out_dir / "net.nod.xml").write_text("\n".join(lines) + "\n")

    edges, cons = ["<edges>"], ["<connections>"]
    for (c, r), nid in sorted(nodes.items(), key=lambda kv: kv[1]):
        if not nid.startswith("J"):
            continue
        for d in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            nb = nodes[(c + d[0], r + d[1])]
            for a, b in ((nid, nb), (nb, nid)):
                line = f'  <edge id="{_edge_id(a, b)}" from="{a}" to="{b}" numLanes="2" speed="{p.speed_limit:.3f}"/>'
                if line not in edges:
                    edges.append(line)
        # connections of each incoming edge: heading h = direction of travel into the intersection
        for h in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            src = nodes[(c - h[0], r - h[1])]
            e_in = _edge_id(src, nid)
            straight = (c + h[0], r + h[1])
            right = (c + h[1], r - h[0])  # right-hand traffic: rotate heading clockwise
            left = (c - h[1], r + h[0])
            cons.append(f'  <connection from="{e_in}" to="{_edge_id(nid, nodes[straight])}" fromLane="0" toLane="0"/>')
            cons.append(f'  <connection from="{e_in}" to="{_edge_id(nid, nodes[right])}" fromLane="0" toLane="0"/>')
            cons.append(f'  <connection from="{e_in}" to="{_edge_id(nid, nodes[left])}" fromLane="1" toLane="1"/>')
    edges.append("</edges>")
    cons.append("</connections>")
    (out_dir / "net.edg.xml").write_text("\n".join(edges) + "\n")
    (out_dir / "net.con.xml").write_text("\n".join(cons) + "\n")
    _netconvert(out_dir, ["--default.junctions.radius", "8", "--tls.default-type", "static"])
    _write_signal_programs(out_dir / "net.net.xml", {nid: xy for xy, nid in nodes.items()})

    # demand: from every fringe entry, straight / left / right at the first intersection, then straight on
    routes = ['<routes>',
              f'  <vType id="car" length="{CAR_LENGTH}" minGap="{CAR_MIN_GAP}" accel="2.6" decel="4.5" sigma="0.5" '
              f'maxSpeed="{max(p.speed_limit, 1.0) * 1.2:.3f}" speedDev="0.1"/>',
              f'  <vType id="cav" length="{CAR_LENGTH}" minGap="{CAR_MIN_GAP}" accel="3.0" decel="4.5" sigma="0" '
              f'maxSpeed="{max(p.speed_limit, 1.0) * 1.2:.3f}" speedDev="0" color="0,1,0"/>']
    shares = {"straight": 1.0} if p.straight_only else TURN_SHARES
    for (c, r), nid in sorted(nodes.items(), key=lambda kv: kv[1]):
        if nid.startswith("J"):
            continue
        # the one intersection this fringe node attaches to, and the heading into it
        (jc, jr), = [(c + d[0], r + d[1]) for d in ((0, 1), (0, -1), (1, 0), (-1, 0))
                     if (c + d[0], r + d[1]) in nodes and nodes[(c + d[0], r + d[1])].startswith("J")]
        h = (jc - c, jr - r)
        dirs = {"straight": h, "right": (h[1], -h[0]), "left": (-h[1], h[0])}
        e_in = _edge_id(nid, nodes[(jc, jr)])
        for turn, share in shares.items():
            a, b = _walk_to_fringe(nodes, (jc, jr), dirs[turn])
            for vtype, frac in (("car", 1.0 - p.cav_share), ("cav", p.cav_share)):
                prob = p.inflow * share * frac / 3600.0
                if prob <= 0:
                    continue
                routes.append(f'  <flow id="f_{nid}_{turn}_{vtype}" type="{vtype}" begin="0" '
                              f'end="{p.horizon:.0f}" probability="{prob:.6f}" from="{e_in}" to="{_edge_id(a, b)}" '
                              f'departLane="best" departSpeed="max"/>')
    routes.append("</routes>")
    (out_dir / "routes.rou.xml").write_text("\n".join(routes) + "\n")


SIGNAL_GREEN_S = 30  # static program written into the network (fixed-time reference; the envs override it)
SIGNAL_YELLOW_S = 2


def _write_signal_programs(net_file: Path, coords: dict[str, tuple[int, int]]) -> None:
    """Replace netconvert's guessed program of every light by the 4-phase cycle of ``envs.traffic.phases``."""
    import xml.etree.ElementTree as ET

    from envs.traffic.phases import phase_states, yellow_state

    tree = ET.parse(net_file)
    root = tree.getroot()
    for tl in root.findall("tlLogic"):
        tid = tl.get("id")
        cons = sorted((c for c in root.findall("connection") if c.get("tl") == tid),
                      key=lambda c: int(c.get("linkIndex")))
        links = [(f"{c.get('from')}_{c.get('fromLane')}", f"{c.get('to')}_{c.get('toLane')}") for c in cons]
        axis = {}
        for c in cons:
            a, b = c.get("from").split("__")
            axis[f"{c.get('from')}_{c.get('fromLane')}"] = "NS" if coords[a][0] == coords[b][0] else "EW"
        greens, _ = phase_states(links, axis)
        for ph in list(tl):
            tl.remove(ph)
        for k, g in enumerate(greens):
            nxt = greens[(k + 1) % len(greens)]
            ET.SubElement(tl, "phase", duration=str(SIGNAL_GREEN_S), state=g)
            ET.SubElement(tl, "phase", duration=str(SIGNAL_YELLOW_S), state=yellow_state(g, nxt))
    tree.write(net_file, encoding="UTF-8", xml_declaration=True)


def grid_scenario(p: GridParams) -> Path:
    """Cached directory holding ``net.net.xml`` and ``routes.rou.xml`` for ``p``."""
    return cached_dir(f"grid{p.rows}x{p.cols}", asdict(p), lambda d: build_grid(p, d))


# --------------------------------------------------------------------------------------------------------- ring
@dataclass(frozen=True)
class RingParams:
    """A single-lane ring road (the geometry only; vehicles are inserted at run time)."""

    ring_length: float  # m, one lap
    speed_limit: float  # m/s, lane speed (= IDM desired speed with speedFactor 1)


RING_ARCS = 4


def build_ring(p: RingParams, out_dir: Path) -> None:
    radius = p.ring_length / (2 * math.pi)
    ids = [f"R{k}" for k in range(RING_ARCS)]
    lines = ["<nodes>"]
    for k, nid in enumerate(ids):
        ang = 2 * math.pi * k / RING_ARCS
        lines.append(f'  <node id="{nid}" x="{radius * math.cos(ang):.3f}" y="{radius * math.sin(ang):.3f}" '
                     f'type="priority"/>')
    lines.append("</nodes>")
    (out_dir / "net.nod.xml").write_text("\n".join(lines) + "\n")
    edges = ["<edges>"]
    arc = p.ring_length / RING_ARCS
    for k in range(RING_ARCS):
        a0, a1 = 2 * math.pi * k / RING_ARCS, 2 * math.pi * (k + 1) / RING_ARCS
        angles = [a0 + (a1 - a0) * t / 16 for t in range(17)]
        shape = " ".join(f"{radius * math.cos(a):.3f},{radius * math.sin(a):.3f}" for a in angles)
        edges.append(f'  <edge id="{ids[k]}__{ids[(k + 1) % RING_ARCS]}" from="{ids[k]}" '
                     f'to="{ids[(k + 1) % RING_ARCS]}" numLanes="1" speed="{p.speed_limit:.3f}" '
                     f'length="{arc:.4f}" shape="{shape}"/>')
    edges.append("</edges>")
    (out_dir / "net.edg.xml").write_text("\n".join(edges) + "\n")
    _netconvert(out_dir, ["--no-internal-links", "true", "--junctions.corner-detail", "0"])


def ring_edges() -> list[str]:
    ids = [f"R{k}" for k in range(RING_ARCS)]
    return [f"{ids[k]}__{ids[(k + 1) % RING_ARCS]}" for k in range(RING_ARCS)]


def ring_scenario(p: RingParams) -> Path:
    return cached_dir("ring", asdict(p), lambda d: build_ring(p, d))
