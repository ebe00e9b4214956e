"""Data parallelism on JAX's own runtime: one ``data`` axis of a ``jax.sharding`` device mesh (no ``pmap``).

``run.mesh: {data: -1}`` puts every device (every process's devices in a multi-process run) on the ``data`` axis:

* batches (the env batch of JAX-native envs, replay columns, sampled minibatches, ScaleZero's search roots) are
  split over ``data`` with ``NamedSharding``; parameters and optimiser state are replicated;
* the compiler (GSPMD) inserts the all-reduce of the gradient means, so the learner code stays single-device code.

Two pieces serve every agent:

* ``DataParallel.jit(fn, out_axes)`` -- ``jax.jit`` whose outputs get fixed shardings (``out_axes`` names the batch
  axis of each output leaf, ``None`` = replicated) and whose tracing and calls run under ``jax.set_mesh``;
* ``shard_batch(tree, axis)`` -- inside a jitted function, constrain a batch to be split over ``data``; a no-op
  when no mesh is active, so agents call it unconditionally.

With ``run.mesh: {}`` (the default) nothing changes: ``DataParallel(None).jit`` is plain ``jax.jit``.

FSDP-style ``model`` axis (``run.mesh: {data: D, model: M}``, ScaleZero only; other agents refuse ``model`` > 1):
the devices form a ``D x M`` grid; batches are split over ``data`` (replicated over ``model``) and every parameter
(and its optimiser moments, which share its shape) of at least ``MODEL_MIN_SIZE`` elements is split over ``model``
along its largest dimension divisible by ``M`` (``param_spec``); smaller leaves are replicated. The compiler gathers
the shards where a matmul needs them. Name a parameter subtree ``PARAMS`` in ``out_axes``/``put`` axes.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Mapping

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from omnitask.schema import ConfigError

DATA = "data"  # batches are split over it
MODEL = "model"  # FSDP: large parameters (and their optimiser state) are split over it
PARAMS = "params"  # ``out_axes``/``put`` value for a parameter subtree: laid out by ``param_spec``
MODEL_MIN_SIZE = 1024  # leaves with fewer elements stay replicated (sharding them costs more than it saves)
MODEL_AGENTS = ("scalezero",)  # agents whose parameters are laid out over a model axis


def make_mesh(axes: Mapping[str, int] | None) -> Mesh | None:
    """``{}``/``None`` -> no mesh; ``{data: n}`` -> the first ``n`` devices (``-1``: all, over all processes)."""
    axes = dict(axes or {})
    if not axes:
        return None
    unknown = sorted(set(axes) - {DATA, MODEL})
    if unknown:
        raise ConfigError(f"run.mesh: unknown axis {unknown[0]!r}; allowed: {DATA}, {MODEL} (e.g. {{{DATA}: -1}} = "
                          "all devices)")
    devices = jax.devices()
    m = int(axes.get(MODEL, 1))
    if m < 1 or len(devices) % m:
        raise ConfigError(f"run.mesh.{MODEL}={m}: must be >= 1 and divide the {len(devices)} visible devices")
    n = int(axes.get(DATA, 1))
    n = len(devices) // m if n == -1 else n
    if not 1 <= n * m <= len(devices):
        raise ConfigError(f"run.mesh.{DATA}={axes.get(DATA)}: must be -1 (all devices) or 1..{len(devices) // m} "
                          f"(devices visible: {len(devices)}, {MODEL}={m})")
    if jax.process_count() > 1 and n * m != len(devices):
        raise ConfigError(f"run.mesh.{DATA}={axes.get(DATA)}: a multi-process run needs every process's devices on "
                          f"the mesh; use -1 ({len(devices)} devices)")
    if MODEL not in axes:
        return Mesh(np.array(devices[:n]), (DATA,), axis_types=(AxisType.Auto,))
    return Mesh(np.array(devices[:n * m]).reshape(n, m), (DATA, MODEL), axis_types=(AxisType.Auto, AxisType.Auto))


def check_model_axis(agent: str, axes: Mapping[str, int] | None) -> None:
    """Refuse ``run.mesh.model`` > 1 for an agent that would only replicate its parameters over it."""
    m = int(dict(axes or {}).get(MODEL, 1))
    if m > 1 and agent not in MODEL_AGENTS:
        raise ConfigError(f"run.mesh.{MODEL}={m}: only agent(s) {', '.join(MODEL_AGENTS)} shard parameters over a "
                          f"{MODEL} axis; agent {agent!r} supports {{{DATA}: N}} only (drop {MODEL} or set it to 1)")


def param_spec(shape: tuple[int, ...], model_size: int) -> PartitionSpec:
    """FSDP layout of one parameter leaf: its largest dimension divisible by ``model_size`` split over ``model``
    (the first such if tied); replicated when it has fewer than ``MODEL_MIN_SIZE`` elements or no such dimension."""
    if model_size <= 1 or int(np.prod(shape, dtype=np.int64)) < MODEL_MIN_SIZE:
        return PartitionSpec()
    dims = [int(i) for i in np.argsort([-d for d in shape], kind="stable") if shape[i] % model_size == 0]
    if not dims:
        return PartitionSpec()
    return PartitionSpec(*[MODEL if i == dims[0] else None for i in range(len(shape))])


def batch_spec(axis: int | None) -> PartitionSpec:
    """Split dimension ``axis`` over ``data`` (``None``: replicated)."""
    return PartitionSpec() if axis is None else PartitionSpec(*([None] * axis), DATA)


def _map_prefix(fn: Callable[[int | None, Any], Any], axes: Any, tree: Any) -> Any:
    """``fn(axis, leaf)`` for every leaf of ``tree``; ``axes`` is a prefix of ``tree`` (an int or None per
    subtree: the batch axis of every leaf below it)."""
    return jax.tree.map(lambda ax, sub: jax.tree.map(lambda leaf: fn(ax, leaf), sub), axes, tree,
                        is_leaf=lambda x: x is None)


def shard_batch(tree: Any, axis: int = 0) -> Any:
    """Inside ``jit``: constrain every leaf of ``tree`` to be split over ``data`` along ``axis``.

    Identity when no mesh with a ``data`` axis is active (single-device runs and tests). The split dimension must
    be a multiple of the mesh size (a clear error at trace time otherwise).
    """
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or DATA not in mesh.axis_names:
        return tree
    size = mesh.shape[DATA]

    def constrain(x):
        if x.shape[axis] % size:
            raise ValueError(f"a batch dimension of {x.shape[axis]} (shape {x.shape}, axis {axis}) cannot be split "
                             f"over run.mesh.{DATA}={size} devices; make it a multiple of {size}")
        return jax.lax.with_sharding_constraint(x, batch_spec(axis))

    return jax.tree.map(constrain, tree)


class DataParallel:
    """The run's mesh (or none) and the jitted functions placed on it."""

    def __init__(self, mesh: Mesh | None):
        self.mesh = mesh

    @classmethod
    def from_run(cls, run_cfg: Any) -> "DataParallel":
        """From the experiment's ``run`` section (``run.mesh``; absent or ``{}``: one device, no sharding)."""
        return cls(make_mesh(getattr(run_cfg, "mesh", None)))

    @property
    def size(self) -> int:
        """Devices on the ``data`` axis (the batch split)."""
        return 1 if self.mesh is None else int(self.mesh.shape[DATA])

    @property
    def model_size(self) -> int:
        return 1 if self.mesh is None or MODEL not in self.mesh.axis_names else int(self.mesh.shape[MODEL])

    def active(self):
        """Context in which ``shard_batch`` constraints see the mesh while a function is traced (the abstract mesh:
        usable inside an enclosing trace, e.g. ``jax.eval_shape`` of a checkpoint template)."""
        if self.mesh is None:
            return contextlib.nullcontext()
        return jax.sharding.use_abstract_mesh(self.mesh.abstract_mesh)

    def sharding(self, axis: int | str | None, shape: tuple[int, ...] = ()) -> NamedSharding:
        """Batch ``axis`` split over ``data`` (``None``: replicated); ``PARAMS``: ``param_spec(shape)``."""
        if axis == PARAMS:
            return NamedSharding(self.mesh, param_spec(tuple(shape), self.model_size))
        return NamedSharding(self.mesh, batch_spec(axis))

    def shardings(self, tree: Any, axes: Any) -> Any:
        """A ``NamedSharding`` per leaf of ``tree`` (arrays or shapes), batch axes from the prefix tree ``axes``."""
        return _map_prefix(lambda ax, leaf: self.sharding(ax, getattr(leaf, "shape", ())), axes, tree)

    def put(self, tree: Any, axes: Any = None) -> Any:
        """``tree`` on the mesh (batch axes from ``axes``, default replicated); unchanged without a mesh."""
        if self.mesh is None:
            return tree
        return jax.device_put(tree, self.shardings(tree, axes))

    def jit(self, fn: Callable, out_axes: Any = None, **jit_kwargs: Any) -> Callable:
        """``jax.jit(fn)`` whose outputs are laid out by ``out_axes`` (a prefix tree of the output: batch axis or
        ``None`` = replicated) and which traces and runs under the mesh. Without a mesh: plain ``jax.jit``."""
        if self.mesh is None:
            return jax.jit(fn, **jit_kwargs)
        compiled: dict = {}
        static = set(jit_kwargs.get("static_argnames", ()))

        def call(*args, **kwargs):
            with self.active():
                if "fn" not in compiled:  # output shardings need the output structure: known after one trace
                    bound = functools.partial(fn, **{k: v for k, v in kwargs.items() if k in static})
                    shapes = jax.eval_shape(bound, *args, **{k: v for k, v in kwargs.items() if k not in static})
                    compiled["fn"] = jax.jit(fn, out_shardings=self.shardings(shapes, out_axes), **jit_kwargs)
                return compiled["fn"](*args, **kwargs)

        call.eval_shape = lambda *a, **k: _with_shardings(jax.eval_shape(fn, *a, **k), self, out_axes)
        return call


def _with_shardings(shapes: Any, dp: DataParallel, axes: Any) -> Any:
    """``jax.ShapeDtypeStruct``s carrying the shardings ``dp.jit`` gives its outputs (checkpoint templates)."""
    return _map_prefix(lambda ax, s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=dp.sharding(ax, s.shape)), axes,
                       shapes)

