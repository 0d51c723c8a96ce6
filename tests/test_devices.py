"""Sharding an episode batch over devices (`paraphina_jax.sim.devices`).

The test process has one CPU device (conftest), so the two-device checks run in one subprocess
that splits the host into two CPU devices before JAX starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from paraphina_jax.sim import devices

_TWO_DEVICES = textwrap.dedent(
    """
    import json, os
    import jax
    from paraphina_jax.sim.devices import configure_cpu_devices
    assert configure_cpu_devices(2) == 2
    assert "--xla_cpu_multi_thread_eigen=false" in os.environ["XLA_FLAGS"]
    assert configure_cpu_devices(3) is None  # the count is fixed once asked for
    import numpy as np
    from paraphina_jax.config.defaults import make_config
    from paraphina_jax.sim import episode as E
    from paraphina_jax.sim.types import StaticSimParams

    out = {}
    # `compat mc`'s harness sharded over the devices (3 runs padded to 4) against the unsharded
    # program, float64; first, so the IEEE-exact division flag is in force as in the command
    from paraphina_jax.cli.compat_cmd import mc_metrics
    from paraphina_jax.compat.h2 import h2_batch
    from paraphina_jax.compat.jitter import run_seed, tick_times
    from paraphina_jax.utils.x64 import enable_x64

    pcfg = make_config("balanced", parity=True)
    seqs = np.stack([tick_times(run_seed(3, i), 40, 2, 1) for i in range(3)])
    sharded_mc = mc_metrics(pcfg, seqs, "jax")
    with enable_x64():
        plain_mc = jax.tree.map(np.asarray, jax.jit(h2_batch)(seqs.astype(np.int64), pcfg))
    out["mc_shape"] = list(np.shape(sharded_mc.kill_tick))
    out["mc_equal"] = all(
        np.allclose(a, b, rtol=1e-12, atol=0.0, equal_nan=True)
        for a, b in zip(jax.tree.leaves(sharded_mc), jax.tree.leaves(plain_mc))
    )
    out["n_devices"] = len(jax.devices())

    bal = make_config("balanced")
    cfg = bal.replace(toxicity=bal.toxicity.replace(vol_tox_scale=50.0))
    T = 10
    p = E.default_episode_params(cfg, T, vol=0.5, fill_a=np.full(cfg.n_venues, 20.0))
    st = StaticSimParams(n_venues=cfg.n_venues)
    keys = E.episode_keys(np.arange(4))
    kw = dict(n_ticks=T, chunk_ticks=5)

    def run(k, d, tel=0):
        return E.run_batch(k, p, cfg, st, devices=d, telemetry_episodes=tel, **kw)

    def same(a, b):
        la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
        return len(la) == len(lb) and all(
            x.shape == y.shape and np.array_equal(x, y, equal_nan=True) for x, y in zip(la, lb)
        )

    def cat(a, b):
        return jax.tree.map(lambda x, y: np.concatenate([x, y]), a, b)

    # batched params and config (a leading [B] on every leaf; each episode its own vol and
    # daily loss limit): sharded over the mesh with the keys, against its shards run alone
    vols = np.array([0.3, 0.5, 0.8, 1.2])
    pb = jax.tree.map(lambda x: np.stack([np.asarray(x)] * 4), p)
    pb = pb.replace(market=pb.market.replace(vol=vols))
    cb = jax.tree.map(lambda x: np.stack([np.asarray(x)] * 4), cfg)
    cb = cb.replace(risk=cb.risk.replace(daily_loss_limit=np.array([500.0, 1e4, 2e3, 1e5])))

    def run_b(sl, d):
        take = lambda t: jax.tree.map(lambda x: x[sl], t)  # noqa: E731
        return E.run_batch(keys[sl], take(pb), take(cb), st, devices=d, **kw)[0]

    sharded_b = run_b(slice(0, 4), 2)
    halves_b = cat(run_b(slice(0, 2), 1), run_b(slice(2, 4), 1))
    out["sharded_equals_its_shards"] = same(sharded_b, halves_b)
    out["deterministic"] = same(sharded_b, run_b(slice(0, 4), None))  # None = every device
    out["fills"] = int(np.sum(sharded_b.maker_fills))
    # shared params: 3 episodes padded to 4 (the copy dropped)
    sharded, _ = run(keys, 2)
    padded, _ = run(keys[:3], 2)
    out["padded_shape"] = list(padded.pnl_total.shape)
    out["padded_equals_first_three"] = same(padded, jax.tree.map(lambda x: x[:3], sharded))
    out["batched_params_matter"] = not same(sharded_b, sharded)
    compiles = [0]
    jax.monitoring.register_event_duration_secs_listener(
        lambda name, *a, **k: compiles.__setitem__(0, compiles[0] + ("backend_compile" in name))
    )
    after_first = []
    res_t, tel = E.run_batch(
        keys, p, cfg, st, devices=2, telemetry_episodes=4, n_ticks=T, chunk_ticks=5,
        on_chunk=lambda n: after_first.append(compiles[0]),
    )
    # the second chunk reuses the first chunk's program (same input layout: no compile)
    out["compiles_after_first_chunk"] = after_first[-1] - after_first[0]
    out["compiles_seen"] = compiles[0]
    out["telemetry_shape"] = list(tel.record.t.shape)
    last = np.asarray(tel.record.pnl_total)[:, -1]
    out["telemetry_matches_results"] = bool(np.array_equal(last, res_t.pnl_total))
    out["telemetry_results_finite"] = bool(np.all(np.isfinite(res_t.pnl_total)))
    out["trace_count"] = E.trace_count()

    print("RESULT " + json.dumps(out))
    """
)


def _two_devices() -> dict:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-c", _TWO_DEVICES], capture_output=True, text=True, env=env, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def test_two_devices_sharded_batches_equal_their_shards_and_pad_and_record():
    """One test (one subprocess: a module fixture would run once per xdist worker)."""
    r = _two_devices()
    assert r["n_devices"] == 2
    # sharded = its shards run alone, bit for bit; deterministic; the episodes trade
    assert r["fills"] > 0
    assert r["sharded_equals_its_shards"]
    assert r["deterministic"]
    # batched params and config reach the shards
    assert r["batched_params_matter"]
    # padding: 3 episodes padded to 4, the copy dropped
    assert r["padded_shape"] == [3]
    assert r["padded_equals_first_three"]
    # telemetry under sharding
    assert r["telemetry_shape"] == [4, 10]
    assert r["telemetry_matches_results"]
    assert r["telemetry_results_finite"]
    assert r["compiles_seen"] >= 1  # the listener sees compiles
    assert r["compiles_after_first_chunk"] == 0
    # `compat mc`'s harness sharded = unsharded (float64)
    assert r["mc_shape"] == [3]
    assert r["mc_equal"]


def test_episode_mesh_sizes_and_bad_device_counts():
    n = len(jax.local_devices())
    assert devices.episode_mesh(1, 64) is None
    assert devices.episode_mesh(None, 64) is None or devices.episode_mesh(None, 64).size == n
    with pytest.raises(ValueError, match="devices=0"):
        devices.episode_mesh(0, 8)
    with pytest.raises(ValueError, match=f"1 … {n}"):
        devices.episode_mesh(n + 1, 8)


def test_padded_size_and_pad_rows():
    assert devices.padded_size(7, None) == 7
    x = np.arange(6.0).reshape(3, 2)
    tree = {"a": x, "b": np.array([1, 2, 3])}
    out = devices.pad_rows(tree, 0, 5)
    assert out["a"].shape == (5, 2) and out["b"].tolist() == [1, 2, 3, 3, 3]
    np.testing.assert_array_equal(out["a"][3:], np.repeat(x[-1:], 2, axis=0))
    assert devices.pad_rows(tree, None, 5) is tree


def test_configure_cpu_devices_is_a_no_op_once_the_count_is_fixed(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    assert devices.configure_cpu_devices(4) is None
    assert jax.config.jax_num_cpu_devices in (-1, 1)
