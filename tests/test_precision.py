"""``run.precision: bfloat16``: the networks compute in bf16 on bf16 copies of float32 master weights, and PPO still
learns CartPole. Short form: 10k env steps (2 jitted train steps), eval return >= 60 (a uniform-random policy gets
~22; a NaN/inf loss stops the run, run.on_nonfinite=stop); long form (OMNITASK_FULL=1): 51k env steps, seeds 0 and
1, >= 195 (CartPole's classic solved line)."""
from __future__ import annotations

import os

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import pytest

from omnitask.config import ConfigError, load_config
from omnitask.precision import with_precision
from omnitask.run_dir import new_run_dir
from omnitask.runner import train

FULL = os.environ.get("OMNITASK_FULL") == "1"


def test_bf16_apply_computes_in_bf16_and_returns_float32_with_float32_gradients():
    def apply(params, x):
        assert params["w"].dtype == jnp.bfloat16 and x.dtype == jnp.bfloat16
        return x @ params["w"], jnp.arange(3)  # int outputs pass through

    params = {"w": jnp.full((4, 2), 1 / 3, jnp.float32)}
    mixed = with_precision(apply, "bfloat16")
    (y, idx), grads = mixed(params, jnp.ones((1, 4))), jax.grad(lambda p: mixed(p, jnp.ones((1, 4)))[0].sum())(params)
    assert y.dtype == jnp.float32 and idx.dtype == jnp.int32 and grads["w"].dtype == jnp.float32
    assert float(y[0, 0]) != pytest.approx(4 / 3, abs=1e-6)  # bf16 rounding of 1/3 shows
    assert float(y[0, 0]) == pytest.approx(4 / 3, rel=1e-2)
    assert with_precision(apply, "float32") is apply
    with pytest.raises(ConfigError, match="run.precision must be one of float32, bfloat16"):
        with_precision(apply, "float16")


def _matmul_operand_dtypes(jaxpr) -> set:
    """Operand dtypes of every dot/conv in a (closed) jaxpr, sub-jaxprs included."""
    found = set()
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("dot_general", "conv_general_dilated"):
            found.update(str(v.aval.dtype) for v in eqn.invars)
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            found |= _matmul_operand_dtypes(sub)
    return found


@pytest.mark.parametrize("obs", [np.zeros((2, 84, 84, 4), np.uint8), np.zeros((2, 4), np.float32)],
                         ids=["pixels", "vector"])
def test_bfloat16_torsos_compute_in_bfloat16(obs):
    """The torsos' input cast must not promote a bf16 network back to float32 (uint8 pixels included)."""
    from agents.common.networks import make_torso
    from omnitask.precision import compute_dtype

    for precision in ("bfloat16", "float32"):
        net = make_torso(obs.shape[1:], "auto", (8,), "relu", dtype=compute_dtype(precision))
        params = net.init(jax.random.PRNGKey(0), obs)
        jaxpr = jax.make_jaxpr(with_precision(net.apply, precision))(params, obs).jaxpr
        assert _matmul_operand_dtypes(jaxpr) == {precision}, (precision, _matmul_operand_dtypes(jaxpr))


@pytest.mark.parametrize("config", ["configs/mctr/embedded_cpu.yaml", "configs/mbtl/cartpole_ci.yaml"])
def test_bfloat16_refused_by_agents_that_would_ignore_it(config):
    with pytest.raises(ConfigError, match=r"run.precision=bfloat16 is supported only by agents ppo, dqn, pvn, "
                                          r"scalezero; agent '"):
        load_config(config, ["run.precision=bfloat16"])
    load_config(config, ["run.precision=float32"])  # the default stays accepted
    with pytest.raises(ConfigError, match="run.precision must be one of float32, bfloat16"):
        load_config("configs/dqn/cartpole.yaml", ["run.precision=fp16"])


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1] if FULL else [0])
def test_ppo_learns_cartpole_in_bfloat16(tmp_path, seed):
    total, threshold = (51_200, 195.0) if FULL else (10_240, 60.0)
    cfg = load_config("configs/ppo/cartpole.yaml", [
        f"seed={seed}", f"run.total_env_steps={total}", "run.eval_every=0", "run.eval_episodes=20",
        "run.checkpoint_every=0", f"run.out_dir={tmp_path}", "run.name=bf16", "run.progress=false",
        "run.loggers=[jsonl]", "run.precision=bfloat16"])
    result = train(cfg, new_run_dir(cfg))
    assert all(x.dtype == np.float32 for x in jax.tree.leaves(result.state.train_state.params))  # master weights
    assert result.final_eval["return_mean"] >= threshold, result.final_eval
