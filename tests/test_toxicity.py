"""Toxicity and venue health (STRATEGY.md §8, §5.5; SIMULATION §2.4), both engines.

Unit tests run the NumPy reference engine and the JAX engine (under x64) on the same cases.
Parity tests (`-k parity`) batch ≥ 200 random states plus hand-made boundary states into one
vmapped jit call per config variant.

Tolerances: x64 JAX vs reference: toxicity rtol 1e-9 / atol 1e-12; markout EWMA rtol 1e-9 with
atol 1e-12 × (1 + |ewma_0| + Σ|m_j|) (XLA may contract the EWMA multiply-adds); statuses, queue
contents and counts exactly (measured: max abs error 3e-16, worst relative EWMA error 4e-14). float32 JAX vs reference: toxicity atol 5e-5 and markout EWMA atol 1e-4 + rtol
1e-6 (a float32 mid or fill price near 600 USD carries ≈ 3e-5 USD of rounding into every per-TAO
markout; measured 4e-6 and 1.1e-5); queue floats rtol 1e-6; statuses exactly except for venues
whose reference toxicity lies within 5e-5 of a threshold; counts exactly.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paraphina_jax.config import make_config
from paraphina_jax.config.types import (
    SIDE_BUY,
    SIDE_SELL,
    STATUS_DISABLED,
    STATUS_HEALTHY,
    STATUS_WARNING,
    StrategyConfig,
)
from paraphina_jax.reference import toxicity as rtox
from paraphina_jax.strategy import toxicity as jtox
from paraphina_jax.strategy.types import StrategyState, init_state, pending_entries
from paraphina_jax.testing import NOW_MS, random_states, stack, to_jax, to_numpy, unstack
from paraphina_jax.utils.x64 import enable_x64

CFG = make_config("balanced")
PARITY_CFG = make_config("balanced", parity=True)
N = CFG.n_venues
M = CFG.toxicity.max_pending_per_venue
ENGINES = ("ref", "jax")
N_RANDOM = 220
NOW = NOW_MS
H, W, D = STATUS_HEALTHY, STATUS_WARNING, STATUS_DISABLED


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _with_flags(cfg: StrategyConfig, **flags: Any) -> StrategyConfig:
    return cfg.replace(flags=dataclasses.replace(cfg.flags, **flags))


def _with_tox(cfg: StrategyConfig, **fields: Any) -> StrategyConfig:
    return cfg.replace(toxicity=cfg.toxicity.replace(**fields))


def _base(cfg: StrategyConfig = PARITY_CFG, **venue: Any) -> StrategyState:
    """Every venue: mid 100, depth 10 000, fresh mid update at NOW, no vol, tox 0."""
    st0 = init_state(cfg, 0, xp=np)
    v = {
        "mid": np.full(N, 100.0),
        "spread": np.full(N, 0.1),
        "has_mid": np.ones(N, bool),
        "depth_near_mid": np.full(N, 10_000.0),
        "last_mid_update_ms": np.full(N, NOW),
        "has_mid_update": np.ones(N, bool),
        "last_book_update_ms": np.full(N, NOW),
        "has_book_update": np.ones(N, bool),
    }
    v.update(venue)
    ven = st0.venues.replace(
        **{k: np.asarray(x, dtype=np.asarray(getattr(st0.venues, k)).dtype) for k, x in v.items()}
    )
    return st0.replace(venues=ven, sigma_eff=np.float64(1e-3), fair_value=np.float64(100.0))


def _queue(
    state: StrategyState, venue: int, entries: list[tuple[int, int, float]]
) -> StrategyState:
    """Put `(t_eval_ms, side, price)` entries into venue's FIFO (other fields derived)."""
    v = {
        k: np.array(getattr(state.venues, k), copy=True)
        for k in ("pm_count", "pm_t_eval_ms", "pm_side", "pm_price", "pm_size", "pm_fill_seq")
    }
    for j, (t, side, px) in enumerate(entries):
        v["pm_t_eval_ms"][venue, j] = t
        v["pm_side"][venue, j] = side
        v["pm_price"][venue, j] = px
        v["pm_size"][venue, j] = 1.0 + j
        v["pm_fill_seq"][venue, j] = 10 + j
    v["pm_count"][venue] = len(entries)
    return state.replace(venues=state.venues.replace(**v))


def _run(engine: str, name: str, state: StrategyState, *args: Any, **kw: Any) -> StrategyState:
    """Call `name` of the engine; JAX runs eagerly under x64. Returns a NumPy state."""
    if engine == "ref":
        return getattr(rtox, name)(state, *args, **kw)
    with enable_x64():
        out = getattr(jtox, name)(to_jax(state), *args, **kw)
        return to_numpy(out)


def _tox(engine: str, state: StrategyState, cfg: StrategyConfig, now: int = NOW, **kw: Any):
    return _run(engine, "update_toxicity", state, now, cfg, **kw)


# ---------------------------------------------------------------------------------------------
# §8.2 step 6: status thresholds
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_status_thresholds_inclusive(engine: str) -> None:
    tox = np.array([0.0, 0.6, np.nextafter(0.6, 0.0), 0.9, np.nextafter(0.9, 0.0)])
    out = _tox(engine, _base(toxicity=tox), PARITY_CFG)
    np.testing.assert_array_equal(out.venues.toxicity, tox)  # no markouts, no vol: unchanged
    np.testing.assert_array_equal(out.venues.status, [H, W, H, D, W])


def test_toxicity_status_function() -> None:
    tox = np.array([0.0, 0.59, 0.6, 0.89, 0.9, 1.0])
    want = [H, H, W, W, D, D]
    assert [rtox.toxicity_status(float(t), CFG) for t in tox] == want
    np.testing.assert_array_equal(jtox.toxicity_status(jnp.asarray(tox), CFG), want)


@pytest.mark.parametrize("engine", ENGINES)
def test_ablation_disable_toxicity_gate_forces_healthy(engine: str) -> None:
    cfg = _with_flags(PARITY_CFG, disable_toxicity_gate=True)
    out = _tox(
        engine, _base(toxicity=np.array([0.0, 0.6, 0.95, 1.0, 0.3]), has_mid=[1, 1, 1, 0, 1]), cfg
    )
    np.testing.assert_array_equal(out.venues.status, [H] * N)
    assert out.venues.toxicity[3] == 1.0  # the toxicity itself is still computed


# ---------------------------------------------------------------------------------------------
# §5.5 / §8.2 step 1: markouts
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_markout_ewma_exact_numbers(engine: str) -> None:
    # a = 0.1, scale = 2; mid now = 100, tox_0 = 0.2, ewma_0 = 0.
    # buy @101: m = −1 (inst 0.5); sell @99: m = −1 (0.5); buy @99: m = +1 (0);
    # buy @105: m = −5 (inst min(1, 2.5) = 1); the last entry is not matured yet.
    # tox : 0.2 → 0.23 → 0.257 → 0.2313 → 0.30817
    # ewma: 0   → −0.1 → −0.19 → −0.071 → −0.5639
    st0 = _base(toxicity=np.full(N, 0.2))
    st0 = _queue(
        st0,
        1,
        [
            (NOW - 300, SIDE_BUY, 101.0),
            (NOW - 200, SIDE_SELL, 99.0),
            (NOW - 100, SIDE_BUY, 99.0),
            (NOW, SIDE_BUY, 105.0),
            (NOW + 1, SIDE_SELL, 42.0),
        ],
    )
    out = _run(engine, "process_markouts", st0, NOW, PARITY_CFG)
    v = out.venues
    np.testing.assert_allclose(v.toxicity[1], 0.30817, rtol=1e-13)
    np.testing.assert_allclose(v.markout_ewma_usd_per_tao[1], -0.5639, rtol=1e-13)
    np.testing.assert_array_equal(v.toxicity[[0, 2, 3, 4]], 0.2)  # empty queues untouched
    assert v.pm_count[1] == 1 and v.pm_head[1] == 4  # popping only advances the ring head
    q = {k: pending_entries(v, k)[1] for k in ("pm_t_eval_ms", "pm_side", "pm_price")}
    assert (q["pm_t_eval_ms"][0], q["pm_side"][0], q["pm_price"][0]) == (NOW + 1, SIDE_SELL, 42.0)
    assert (v.pm_size[1, 4], v.pm_fill_seq[1, 4]) == (5.0, 14)
    assert not q["pm_t_eval_ms"][1:].any() and not q["pm_price"][1:].any()


@pytest.mark.parametrize("engine", ENGINES)
def test_markout_without_valid_mid_is_discarded(engine: str) -> None:
    st0 = _base(
        toxicity=np.full(N, 0.2), has_mid=[1, 0, 1, 1, 1], mid=[100.0, 100.0, 0.0, 100, 100]
    )
    for venue in (1, 2):
        st0 = _queue(st0, venue, [(NOW - 10, SIDE_BUY, 120.0), (NOW + 10, SIDE_BUY, 120.0)])
    out = _run(engine, "process_markouts", st0, NOW, PARITY_CFG)
    np.testing.assert_array_equal(out.venues.toxicity, 0.2)
    np.testing.assert_array_equal(out.venues.markout_ewma_usd_per_tao, 0.0)
    np.testing.assert_array_equal(out.venues.pm_count, [0, 1, 1, 0, 0])


@pytest.mark.parametrize("engine", ENGINES)
def test_markout_alpha_clamped_and_scale_floored(engine: str) -> None:
    cfg = _with_tox(PARITY_CFG, markout_alpha=1.7, markout_scale_usd_per_tao=0.0)
    st0 = _queue(_base(toxicity=np.full(N, 0.2)), 0, [(NOW, SIDE_SELL, 100.0 - 1e-6)])
    out = _run(engine, "process_markouts", st0, NOW, cfg)
    assert out.venues.toxicity[0] == 1.0  # a = 1; −m/1e-9 = 1000 ⇒ tox_inst = 1
    np.testing.assert_allclose(out.venues.markout_ewma_usd_per_tao[0], -1e-6, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# §8.2 steps 2–4
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_catastrophic_staleness_is_strict(engine: str) -> None:
    cat = int(PARITY_CFG.toxicity.catastrophic_stale_ms)
    last = np.array([NOW - cat, NOW - cat - 1, NOW, NOW - cat - 1, NOW])
    st0 = _base(toxicity=np.full(N, 0.1), last_mid_update_ms=last, has_mid_update=[1, 1, 1, 0, 1])
    out = _tox(engine, st0, PARITY_CFG)
    # venue 3 has no mid update at all: step 3 does not fire, depth > 0 keeps step 4 quiet
    np.testing.assert_array_equal(out.venues.toxicity, [0.1, 1.0, 0.1, 0.1, 0.1])
    np.testing.assert_array_equal(out.venues.status, [H, D, H, H, H])
    off = _tox(engine, st0, _with_tox(PARITY_CFG, catastrophic_stale_ms=0))  # 0 disables
    np.testing.assert_array_equal(off.venues.toxicity, 0.1)


@pytest.mark.parametrize("engine", ENGINES)
def test_missing_data_fallback_with_grace(engine: str) -> None:
    grace = int(PARITY_CFG.toxicity.depth_fallback_grace_ms)
    st0 = _base(
        toxicity=np.full(N, 0.1),
        depth_near_mid=[0.0, 0.0, 0.0, 5.0, 0.0],
        last_mid_update_ms=[NOW - grace, NOW - grace - 1, NOW, NOW, NOW],
        has_mid_update=[1, 1, 0, 1, 1],
        has_mid=[1, 1, 1, 0, 1],
    )
    out = _tox(engine, st0, PARITY_CFG)
    # 0: depth 0 within grace (strict >) · 1: beyond grace · 2: depth 0 and no mid update
    # 3: no mid · 4: depth 0, fresh update
    np.testing.assert_array_equal(out.venues.toxicity, [0.1, 1.0, 1.0, 1.0, 0.1])
    np.testing.assert_array_equal(out.venues.status, [H, D, D, D, H])


@pytest.mark.parametrize("engine", ENGINES)
def test_vol_floor_raw_vs_tick_scaled_sigma_min(engine: str) -> None:
    # Parity (D9 raw σ_min = 1e-3): local 0.25, σ_eff 0.2 ⇒ f_vol = (1.25 − 1)/0.5 = 0.5.
    st0 = _base(toxicity=np.full(N, 0.1), local_vol_short=[0.25, 0.05, 8e-4, 0.0, 0.2])
    st0 = st0.replace(sigma_eff=np.float64(0.2))
    out = _tox(engine, st0, PARITY_CFG)
    np.testing.assert_allclose(out.venues.toxicity, [0.5, 0.1, 0.1, 0.1, 0.1], rtol=1e-15)
    # σ_eff = 1e-6: raw floor gives σ = local = 1e-3 ⇒ f_vol = 0; the tick-scaled floor
    # (1e-3·sqrt(0.25/86400) ≈ 1.7e-6) gives f_vol = 1 for local = 8e-4.
    st1 = st0.replace(sigma_eff=np.float64(1e-6))
    raw = _tox(engine, st1, PARITY_CFG)
    assert raw.venues.toxicity[2] == 0.1
    tick = _tox(engine, st1, _with_flags(PARITY_CFG, sigma_floor_mode="tick"))
    assert tick.venues.toxicity[2] == 1.0


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("mode", ["shadow", "paper", "testnet"])
def test_shadow_warmup_resets_and_skips_vol_floor(engine: str, mode: str) -> None:
    cfg = _with_flags(PARITY_CFG, trade_mode=mode)
    cat = int(cfg.toxicity.catastrophic_stale_ms)
    st0 = _base(
        toxicity=np.full(N, 0.95),
        local_vol_short=np.full(N, 0.5),
        depth_near_mid=[10_000.0, 0.0, 10_000.0, 10_000.0, 10_000.0],
        last_mid_update_ms=[NOW, NOW, NOW - cat - 1, NOW, NOW],
        has_mid_update=[1, 1, 1, 0, 1],
    )
    out = _tox(engine, st0, cfg)
    # 0: reset, no vol floor · 1: depth 0 (no reset, within grace) · 2: reset then catastrophic
    # 3: no mid update ⇒ no reset · 4: reset
    np.testing.assert_array_equal(out.venues.toxicity, [0.0, 0.95, 1.0, 0.95, 0.0])


# ---------------------------------------------------------------------------------------------
# D10 recovery and D23 spec_v1 options
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_recovery_time_decay(engine: str) -> None:
    st0 = _base(toxicity=np.array([0.8, 0.95, 1.0, 0.0, 0.5]), has_mid=[1, 1, 0, 1, 1])
    cfg = _with_tox(_with_flags(PARITY_CFG, toxicity_recovery=True), recovery_halflife_ms=250)
    out = _tox(engine, st0, cfg)  # one 250 ms tick = one half-life
    np.testing.assert_allclose(out.venues.toxicity, [0.4, 0.475, 1.0, 0.0, 0.25], rtol=1e-15)
    np.testing.assert_array_equal(out.venues.status, [H, H, D, H, H])
    same = _tox(engine, st0, _with_flags(PARITY_CFG, toxicity_recovery=True))  # half-life 0
    np.testing.assert_array_equal(same.venues.toxicity, [0.8, 0.95, 1.0, 0.0, 0.5])


@pytest.mark.parametrize("engine", ENGINES)
def test_spec_v1_model(engine: str) -> None:
    cfg = _with_flags(CFG, toxicity_model="spec_v1")
    st0 = _base(cfg, local_vol_short=np.full(N, 3e-3), toxicity=np.full(N, 0.9))
    st0 = st0.replace(sigma_eff=np.float64(2e-3))
    # venue 0: 4 queued fills vs mid 100: buy@101 (−), sell@99 (−), buy@99 (+), sell@101 (+).
    st0 = _queue(
        st0,
        0,
        [
            (NOW - 5, SIDE_BUY, 101.0),
            (NOW + 5, SIDE_SELL, 99.0),
            (NOW + 6, SIDE_BUY, 99.0),
            (NOW + 7, SIDE_SELL, 101.0),
        ],
    )
    db = np.array([300.0, 0.0, 0.0, 0.0, 0.0])
    da = np.array([100.0, 0.0, 0.0, 0.0, 0.0])
    buy = np.array([30.0, 0.0, 0.0, 0.0, 0.0])
    sell = np.array([10.0, 0.0, 0.0, 0.0, 0.0])
    out = _tox(engine, st0, cfg, depth_bid=db, depth_ask=da, buy_agg=buy, sell_agg=sell)
    eps = 1e-12
    f1 = min(1.0, (3e-3 / (2e-3 + eps) - 1.0) / 0.5)  # 1.0 (ratio 1.5)
    f2 = 2.0 / (4.0 + eps)
    f3 = 200.0 / (400.0 + eps)
    f4 = 20.0 / (40.0 + eps)
    f5 = 40.0 / 50.0
    want0 = 0.3 * f1 + 0.3 * f2 + 0.1 * f3 + 0.15 * f4 + 0.15 * f5
    want_rest = 0.3 * f1  # no fills, no book / flow inputs
    np.testing.assert_allclose(out.venues.toxicity, [want0] + [want_rest] * 4, rtol=1e-12)
    assert out.venues.pm_count[0] == 3  # matured entry still popped
    np.testing.assert_allclose(out.venues.markout_ewma_usd_per_tao[0], -0.1, rtol=1e-12)
    np.testing.assert_array_equal(out.venues.status, [W, H, H, H, H])
    bare = _tox(engine, st0, cfg)  # no optional inputs ⇒ f3 = f4 = f5 = 0
    np.testing.assert_allclose(bare.venues.toxicity[0], 0.3 * f1 + 0.3 * f2, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# SIMULATION §2.4 overlays and the D22 latch
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_cancel_storm_toxicity_floor(engine: str) -> None:
    st0 = _base(toxicity=np.array([0.0, 0.65, 0.95, 0.3, 0.7]))
    out = _run(engine, "apply_toxicity_floor", st0, 0.7, CFG)
    np.testing.assert_array_equal(out.venues.toxicity, [0.7, 0.7, 0.95, 0.7, 0.7])
    np.testing.assert_array_equal(out.venues.status, [W, W, D, W, W])
    per = _run(engine, "apply_toxicity_floor", st0, np.array([0.0, 0.9, 0.0, 0.0, 0.5]), CFG)
    np.testing.assert_array_equal(per.venues.toxicity, [0.0, 0.9, 0.95, 0.3, 0.7])
    np.testing.assert_array_equal(per.venues.status, [H, D, D, H, W])


@pytest.mark.parametrize("engine", ENGINES)
def test_force_disabled(engine: str) -> None:
    st0 = _base(toxicity=np.array([0.0, 0.65, 0.95, 0.3, 0.7]))
    out = _run(engine, "force_disabled", st0, np.array([0, 1, 0, 1, 0], bool))
    np.testing.assert_array_equal(out.venues.status, [H, D, H, D, H])  # st0 statuses are 0
    np.testing.assert_array_equal(out.venues.toxicity, st0.venues.toxicity)


@pytest.mark.parametrize("engine", ENGINES)
def test_dev_disabled_latch_survives_status_recompute(engine: str) -> None:
    st0 = _base(dev_disabled=np.array([0, 0, 1, 0, 0], bool))
    out = _tox(engine, st0, CFG)  # [REC] flags: venue_dev_disable on
    np.testing.assert_array_equal(out.venues.status, [H, H, D, H, H])
    par = _tox(engine, st0, PARITY_CFG)  # D22 off in parity mode
    np.testing.assert_array_equal(par.venues.status, [H] * N)


# ---------------------------------------------------------------------------------------------
# Property test: the masked-loop markout EWMA == the sequential reference
# ---------------------------------------------------------------------------------------------


_PM_JIT = jax.jit(jtox.process_markouts)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    alpha=st.floats(0.0, 1.0),
    scale=st.floats(1e-3, 10.0),
    counts=st.lists(st.integers(0, M), min_size=N, max_size=N),
    n_mat=st.lists(st.integers(0, M), min_size=N, max_size=N),
    seed=st.integers(0, 2**16),
)
def test_markout_loop_matches_sequential_reference(alpha, scale, counts, n_mat, seed) -> None:
    rng = np.random.default_rng(seed)
    cfg = _with_tox(PARITY_CFG, markout_alpha=alpha, markout_scale_usd_per_tao=scale)
    st0 = _base(
        toxicity=rng.uniform(0, 1, N),
        markout_ewma_usd_per_tao=rng.normal(0, 1, N),
        mid=rng.uniform(50, 150, N),
        has_mid=rng.random(N) < 0.8,
    )
    for i in range(N):
        c, k = counts[i], min(n_mat[i], counts[i])
        t = np.concatenate(
            [NOW - np.sort(rng.integers(0, 5000, k))[::-1], NOW + 1 + np.arange(c - k)]
        )
        mid = float(st0.venues.mid[i])
        st0 = _queue(
            st0,
            i,
            [(int(t[j]), int(rng.choice([-1, 1])), mid + rng.normal(0, 3)) for j in range(c)],
        )
    ref = rtox.process_markouts(st0, NOW, cfg)
    with enable_x64():
        out = to_numpy(_PM_JIT(to_jax(st0), jnp.asarray(NOW), cfg))
    _assert_tox_state(ref, out, ewma_scale=_ewma_scale(st0))


# ---------------------------------------------------------------------------------------------
# Parity
# ---------------------------------------------------------------------------------------------


def _ewma_scale(state: StrategyState) -> np.ndarray:
    """`[..., N]` |ewma_0| + Σ|m_j| bound on the terms of the markout EWMA (vs mid, all queued)."""
    v = state.venues
    m = np.abs(pending_entries(v, "pm_price") - np.asarray(v.mid)[..., None])
    j = np.arange(m.shape[-1])
    m = np.where(j < np.asarray(v.pm_count)[..., None], m, 0.0)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.abs(np.asarray(v.markout_ewma_usd_per_tao)) + m.sum(-1) + 1.0


def _assert_tox_state(ref: Any, out: Any, ewma_scale: np.ndarray, f32: bool = False) -> None:
    rv, ov = ref.venues, out.venues
    tox_tol = 5e-5 if f32 else 1e-12
    np.testing.assert_allclose(ov.toxicity, rv.toxicity, rtol=0 if f32 else 1e-9, atol=tox_tol)
    ew_atol = np.full_like(ewma_scale, 1e-4) if f32 else 1e-12 * ewma_scale
    np.testing.assert_array_less(
        np.abs(ov.markout_ewma_usd_per_tao - rv.markout_ewma_usd_per_tao),
        ew_atol + (1e-6 if f32 else 1e-9) * np.abs(rv.markout_ewma_usd_per_tao) + 1e-300,
    )
    for name in ("pm_count", "pm_head", "pm_t_eval_ms", "pm_side", "pm_fill_seq", "dev_disabled"):
        np.testing.assert_array_equal(getattr(ov, name), getattr(rv, name), err_msg=name)
    for name in ("pm_size", "pm_price", "pm_fair_at_fill", "pm_mid_at_fill"):
        np.testing.assert_allclose(getattr(ov, name), getattr(rv, name), rtol=1e-6 if f32 else 0)
    if f32:
        thr = np.array([0.6, 0.9])
        near = np.min(np.abs(np.asarray(rv.toxicity)[..., None] - thr), -1) <= tox_tol
        np.testing.assert_array_equal(np.where(near, 0, ov.status), np.where(near, 0, rv.status))
    else:
        np.testing.assert_array_equal(ov.status, rv.status)


def _edge_states(cfg: StrategyConfig) -> list[StrategyState]:
    """Boundary states: thresholds, strict staleness / grace edges, full and empty queues."""
    cat = int(cfg.toxicity.catastrophic_stale_ms)
    grace = int(cfg.toxicity.depth_fallback_grace_ms)
    out = [
        _base(cfg, toxicity=np.array([0.6, 0.9, np.nextafter(0.6, 0), np.nextafter(0.9, 0), 1.0])),
        _base(
            cfg,
            last_mid_update_ms=np.array(
                [NOW - cat, NOW - cat - 1, NOW - grace, NOW - grace - 1, NOW]
            ),
            depth_near_mid=np.array([1.0, 1.0, 0.0, 0.0, -1.0]),
            toxicity=np.full(N, 0.3),
        ),
        _base(
            cfg,
            has_mid=np.array([0, 1, 1, 1, 1], bool),
            has_mid_update=np.array([1, 0, 1, 1, 1], bool),
            depth_near_mid=np.array([1.0, 0.0, 1.0, 1.0, 1.0]),
            mid=np.array([1.0, 1.0, -1.0, 0.0, 1.0]),
        ),
        _base(cfg, local_vol_short=np.array([0.0, 1e-3, 1.5e-3, 2e-3, 1.0])),
    ]
    full = _base(cfg, toxicity=np.full(N, 0.5))
    for i in range(N):
        k = [0, 1, M // 2, M - 1, M][i]
        t = [NOW - 1] * k + [NOW + 1] * (M - k)
        full = _queue(
            full, i, [(t[j], SIDE_BUY if j % 3 else SIDE_SELL, 99.0 + 0.01 * j) for j in range(M)]
        )
    out.append(full)
    return out


def _variants() -> dict[str, StrategyConfig]:
    rec = CFG
    par = PARITY_CFG
    return {
        "parity": par,
        "rec": rec,
        "shadow": _with_flags(par, trade_mode="shadow"),
        "spec_v1": _with_flags(rec, toxicity_model="spec_v1"),
        "recovery": _with_tox(_with_flags(rec, toxicity_recovery=True), recovery_halflife_ms=3000),
        "ablation": _with_flags(par, disable_toxicity_gate=True),
    }


def _parity_batch(cfg: StrategyConfig, seed: int) -> list[StrategyState]:
    return random_states(seed, cfg, N_RANDOM) + _edge_states(cfg)


@pytest.mark.parametrize("variant", list(_variants()))
def test_update_toxicity_parity(variant: str) -> None:
    cfg = _variants()[variant]
    states = _parity_batch(cfg, seed=11)
    before = stack(states)
    rng = np.random.default_rng(5)
    extra = {
        k: rng.uniform(0, 60, (len(states), N))
        for k in ("depth_bid", "depth_ask", "buy_agg", "sell_agg")
    }
    use_extra = variant == "spec_v1"
    with enable_x64():
        fn = jax.jit(
            jax.vmap(
                lambda s, e: jtox.update_toxicity(
                    s, jnp.asarray(NOW), cfg, **(e if use_extra else {})
                )
            )
        )
        out = to_numpy(fn(to_jax(stack(states)), to_jax(extra)))
    ref = [
        rtox.update_toxicity(
            s, NOW, cfg, **({k: x[i] for k, x in extra.items()} if use_extra else {})
        )
        for i, s in enumerate(states)
    ]
    _assert_tox_state(stack(ref), out, _ewma_scale(stack(states)))
    chex.assert_trees_all_equal(stack(states), before)  # the reference never mutates its input
    # the batch exercises every status and some popped markouts
    if variant != "ablation":
        assert set(np.unique(np.asarray(stack(ref).venues.status))) == {H, W, D}
    assert (
        np.asarray(stack(ref).venues.pm_count) < np.asarray(stack(states).venues.pm_count)
    ).any()


def test_process_markouts_and_overlays_parity() -> None:
    cfg = CFG
    states = _parity_batch(cfg, seed=12)
    rng = np.random.default_rng(6)
    floors = rng.uniform(0, 1, (len(states), N)) * (rng.random((len(states), N)) < 0.5)
    masks = rng.random((len(states), N)) < 0.3

    def f(s, fl, mk):
        a = jtox.process_markouts(s, jnp.asarray(NOW), cfg)
        b = jtox.apply_toxicity_floor(s, fl, cfg)
        c = jtox.force_disabled(s, mk)
        return a, b, c

    with enable_x64():
        a, b, c = to_numpy(jax.jit(jax.vmap(f))(to_jax(stack(states)), floors, masks))
    ra = stack([rtox.process_markouts(s, NOW, cfg) for s in states])
    rb = stack([rtox.apply_toxicity_floor(s, floors[i], cfg) for i, s in enumerate(states)])
    rc = stack([rtox.force_disabled(s, masks[i]) for i, s in enumerate(states)])
    scale = _ewma_scale(stack(states))
    _assert_tox_state(ra, a, scale)
    _assert_tox_state(rb, b, scale)
    _assert_tox_state(rc, c, scale)


def test_update_toxicity_float32_parity() -> None:
    cfg = PARITY_CFG
    states = _parity_batch(cfg, seed=13)
    out = to_numpy(
        jax.jit(jax.vmap(lambda s: jtox.update_toxicity(s, jnp.asarray(NOW), cfg)))(
            to_jax(stack(states))
        )
    )
    assert np.asarray(out.venues.toxicity).dtype == np.float32
    ref = stack([rtox.update_toxicity(s, NOW, cfg) for s in states])
    _assert_tox_state(ref, out, _ewma_scale(stack(states)), f32=True)


# ---------------------------------------------------------------------------------------------
# vmap == loop, one trace, determinism
# ---------------------------------------------------------------------------------------------


def test_vmap_equals_loop_single_trace_and_determinism() -> None:
    cfg = CFG
    states = random_states(21, cfg, 8)
    chex.clear_trace_counter()

    @chex.assert_max_traces(n=1)
    def one(s: StrategyState, now: jax.Array) -> StrategyState:
        return jtox.update_toxicity(s, now, cfg)

    with enable_x64():
        one_j = jax.jit(one)
        batched = jax.jit(jax.vmap(lambda s, t: jtox.update_toxicity(s, t, cfg), in_axes=(0, None)))
        b = to_jax(stack(states))
        now = jnp.asarray(NOW)
        out1 = to_numpy(batched(b, now))
        out2 = to_numpy(batched(b, now))
        loop = [to_numpy(one_j(to_jax(s), now)) for s in states]  # one trace for all 8 states
    chex.assert_trees_all_equal(out1, out2)  # bitwise determinism
    for i, lo in enumerate(loop):
        # equal up to XLA's multiply-add fusion, which may differ between the batched and the
        # unbatched program
        chex.assert_trees_all_close(unstack(out1, i), lo, rtol=1e-14, atol=1e-15)
