"""Traffic family: SUMO-backed signal control, eco-driving and ring road, plus a JAX-native IDM ring road.

Ids (family ``traffic``):
  traffic/signal-1x1, traffic/signal-2x2, traffic/signal-3x3   signal control, one agent per light
  traffic/ecodrive                                            eco-driving at a fixed-time signal
  traffic/ring-sumo, traffic/ring-jax                         Sugiyama ring road with one advised AV
  traffic/resco/<name>                                        RESCO benchmark networks (``envs.traffic.resco``)
SUMO scenarios are generated at run time (``envs.traffic.netgen``) into a cache keyed by the context
(``envs.traffic.cache``); each SUMO simulation runs in its own worker process (``envs.traffic.worker``).
Heavy imports (libsumo, jax) happen inside the factories; specs are available without starting SUMO.
"""
from envs.registry import register as _register
from envs.traffic.signal import make_signal as _make_signal
from envs.traffic.signal import signal_spec as _signal_spec


def _signal_spec_fn(env_id):
    def spec_fn(episode_seconds: int = 1800, delta_time: int = 5, **_options):
        return _signal_spec(env_id, episode_seconds, delta_time)
    return spec_fn


for _r, _c in ((1, 1), (2, 2), (3, 3)):
    _id, _factory = _make_signal(_r, _c)
    _register(_id, _factory, family="traffic", extra="traffic", spec_fn=_signal_spec_fn(_id),
              description=f"SUMO signal control, {_r}x{_c} grid, one agent per light"
                          + (f" (num_envs counts agents: a multiple of the {_r * _c} lights)" if _r * _c > 1 else "")
                          + "; contexts inflow, speed_limit, lane_length")


def _ring_jax(**kw):
    from envs.traffic.ring_jax import make_ring_jax

    return make_ring_jax(**kw)


def _ring_sumo(**kw):
    from envs.traffic.ring_sumo import make_ring_sumo

    return make_ring_sumo(**kw)


def _ring_spec_fn(env_id):
    def spec_fn(horizon: float | None = None, **_options):
        from envs.traffic.ring import DEFAULT_HORIZON, ring_spec

        return ring_spec(env_id, DEFAULT_HORIZON if horizon is None else horizon)
    return spec_fn


_register("traffic/ring-jax", _ring_jax, family="traffic", extra=None, spec_fn=_ring_spec_fn("traffic/ring-jax"),
          description="IDM ring road in jax.numpy (jittable, vmappable); contexts ring_length, num_vehicles, "
                      "hold_duration")
_register("traffic/ring-sumo", _ring_sumo, family="traffic", extra="traffic",
          spec_fn=_ring_spec_fn("traffic/ring-sumo"),
          description="SUMO IDM ring road with one advised AV; contexts ring_length, num_vehicles, hold_duration")


def _ecodrive(**kw):
    from envs.traffic.ecodrive import make_ecodrive

    return make_ecodrive(**kw)


def _eco_spec_fn(episode_seconds: int = 600, **_options):
    from envs.traffic.ecodrive import eco_spec

    return eco_spec(episode_seconds)


_register("traffic/ecodrive", _ecodrive, family="traffic", extra="traffic", spec_fn=_eco_spec_fn,
          description="SUMO eco-driving of CAVs at a fixed-time intersection; contexts green_time, inflow, penetration")


def _resco_factory(name):
    def factory(**kw):
        from envs.traffic.resco import make_resco

        return make_resco(name, **kw)
    return factory


def _resco_spec_fn(name):
    def spec_fn(episode_seconds=None, **_options):
        from envs.traffic.resco import resco_spec

        return resco_spec(name, episode_seconds)
    return spec_fn


for _name in ("cologne1", "cologne3", "cologne8", "ingolstadt1", "ingolstadt7", "ingolstadt21", "grid4x4",
              "arterial4x4"):  # envs.traffic.resco.RESCO_NAMES (listed here so `import envs` stays cheap)
    _register(f"traffic/resco/{_name}", _resco_factory(_name), family="traffic", extra="test",
              spec_fn=_resco_spec_fn(_name),
              description="RESCO benchmark network (files from the sumo-rl package), one agent per signal "
                          "(num_envs counts agents); no contexts")
