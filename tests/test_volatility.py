"""Volatility and control scalars (STRATEGY.md §7) and the composed §6.3 + §7.2 step."""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paraphina_jax.config.defaults import make_config
from paraphina_jax.config.loader import apply_overrides
from paraphina_jax.config.types import Flags, StrategyConfig
from paraphina_jax.reference import common as rcommon
from paraphina_jax.reference import volatility as rv
from paraphina_jax.strategy import common as jcommon
from paraphina_jax.strategy import volatility as jv
from paraphina_jax.strategy.types import StrategyState, init_state
from paraphina_jax.testing import NOW_MS, random_states, stack, to_jax, unstack
from paraphina_jax.utils.x64 import enable_x64

REC = make_config()
PAR = make_config(parity=True)
NOFLOOR = make_config(flags=Flags(disable_vol_floor=True))
N = REC.n_venues
SIGMA_MIN_TICK = 0.001 * math.sqrt(0.25 / 86400.0)  # §7.1 ≈ 1.701e-6
VOL_REF_TICK = 0.028125 * math.sqrt(0.25 / 86400.0)  # §7.1 ≈ 4.784e-5

SCALARS = (
    "fv_short_vol",
    "fv_long_vol",
    "sigma_eff",
    "vol_ratio_raw",
    "vol_ratio_clipped",
    "spread_mult",
    "size_mult",
    "band_mult",
)
KF = ("kf_x_hat", "kf_p", "fair_value", "fair_value_prev")
DISCRETE = ("fv_available", "healthy_venues_used", "healthy_venues_used_count", "kf_initialised")

_JIT_VOL = jax.jit(jv.update_volatility)
_JIT_VOL_BATCH = jax.jit(jax.vmap(jv.update_volatility, in_axes=(0, 0, None)))
_JIT_STEP_BATCH = jax.jit(jax.vmap(jv.update_fair_value_and_vol, in_axes=(0, 0, None)))


def vol_state(cfg: StrategyConfig, s_prev: float = 1e-4, l_prev: float = 1e-4) -> StrategyState:
    return init_state(cfg).replace(fv_short_vol=np.float64(s_prev), fv_long_vol=np.float64(l_prev))


def run_vol(engine: str, state: StrategyState, ret: float, cfg: StrategyConfig) -> StrategyState:
    if engine == "ref":
        return rv.update_volatility(state, ret, cfg)
    with enable_x64():
        out = _JIT_VOL(to_jax(state), jnp.asarray(ret, jnp.float64), cfg)
        return jax.tree.map(np.asarray, out)


ENGINES = pytest.mark.parametrize("engine", ["ref", "jax"])


# ---------------------------------------------------------------------------------------------
# §7.1 floors
# ---------------------------------------------------------------------------------------------


def test_sigma_floors_defaults():
    smin, vref = rcommon.sigma_floors(REC)
    assert smin == pytest.approx(1.701e-6, rel=1e-3) and vref == pytest.approx(4.784e-5, rel=1e-4)
    assert smin == SIGMA_MIN_TICK and vref == VOL_REF_TICK
    with enable_x64():
        js, jr = jcommon.sigma_floors(REC)
        assert float(js) == smin and float(jr) == vref
    # PARAPHINA_MAIN_LOOP_INTERVAL_MS=1000 ⇒ tick_sec = 1; cadence ≤ 0 ⇒ raw values
    cfg = apply_overrides(REC, {"loop.main_loop_interval_ms": 1000})
    assert rcommon.sigma_floors(cfg)[0] == pytest.approx(0.001 / math.sqrt(86400.0), rel=1e-15)
    raw = REC.replace(vol=REC.vol.replace(sigma_min_cadence_sec=0.0, vol_ref_cadence_sec=0.0))
    assert rcommon.sigma_floors(raw) == (0.001, 0.028125)


@ENGINES
@pytest.mark.parametrize("cfg", [REC, PAR], ids=["tick", "parity"])
def test_floor_applies_at_zero_vol(engine, cfg):
    # σ_s = 0 ⇒ σ_eff = sigma_min_tick (both D9 modes use the tick-scaled floor in §7.2);
    # vol_ratio = 0.001/0.028125 = 0.0356 (raw, stored) ⇒ clipped to 0.25 ⇒ no bump.
    out = run_vol(engine, vol_state(cfg, 0.0, 0.0), 0.0, cfg)
    assert float(out.fv_short_vol) == 0.0 and float(out.fv_long_vol) == 0.0
    assert float(out.sigma_eff) == pytest.approx(SIGMA_MIN_TICK, rel=1e-15)
    assert float(out.vol_ratio_raw) == pytest.approx(0.001 / 0.028125, rel=1e-14)
    assert float(out.vol_ratio_clipped) == 0.25
    assert (float(out.spread_mult), float(out.size_mult), float(out.band_mult)) == (1.0, 1.0, 1.0)


@ENGINES
def test_disable_vol_floor_ablation(engine):
    out = run_vol(engine, vol_state(NOFLOOR, 0.0, 0.0), 0.0, NOFLOOR)
    assert float(out.sigma_eff) == 1e-12
    out = run_vol(engine, vol_state(NOFLOOR, 1e-9, 0.0), 0.0, NOFLOOR)
    assert float(out.sigma_eff) == pytest.approx(math.sqrt(0.8) * 1e-9, rel=1e-15)


# ---------------------------------------------------------------------------------------------
# §7.2 EWMA, ratio, clip, multipliers
# ---------------------------------------------------------------------------------------------


@ENGINES
def test_ewma_numbers(engine):
    # σ_s = sqrt(0.8·(3e-5)² + 0.2·(1e-4)²) = sqrt(2.72e-9)
    # σ_l = sqrt(0.95·(4e-5)² + 0.05·1e-8) = sqrt(2.02e-9)
    out = run_vol(engine, vol_state(REC, 3e-5, 4e-5), 1e-4, REC)
    assert float(out.fv_short_vol) == pytest.approx(math.sqrt(2.72e-9), rel=1e-14)
    assert float(out.fv_long_vol) == pytest.approx(math.sqrt(2.02e-9), rel=1e-14)
    assert float(out.sigma_eff) == float(out.fv_short_vol)
    assert float(out.vol_ratio_raw) == pytest.approx(math.sqrt(2.72e-9) / VOL_REF_TICK, rel=1e-14)


@ENGINES
def test_multipliers_at_ratio_two(engine):
    # σ_prev chosen so that σ_s = 2·vol_ref_tick with ret = 0 ⇒ vr = 2, bump = 1
    s_prev = 2.0 * VOL_REF_TICK / math.sqrt(0.8)
    out = run_vol(engine, vol_state(REC, s_prev, 0.0), 0.0, REC)
    assert float(out.vol_ratio_clipped) == pytest.approx(2.0, rel=1e-14)
    assert float(out.spread_mult) == pytest.approx(2.0, rel=1e-13)  # 1 + c_s·1
    assert float(out.size_mult) == pytest.approx(1.0 / 3.0, rel=1e-13)  # 1/(1 + 2·1)
    assert float(out.band_mult) == pytest.approx(0.5, rel=1e-13)  # 1/(1 + 1·1)


@ENGINES
def test_vol_ratio_clip_high(engine):
    # ret = 1e-3 ⇒ σ_s ≈ 4.47e-4 ⇒ ratio ≈ 9.35, stored raw; clipped to 4 ⇒ bump 3
    out = run_vol(engine, vol_state(REC, 0.0, 0.0), 1e-3, REC)
    assert float(out.vol_ratio_raw) == pytest.approx(math.sqrt(0.2) * 1e-3 / VOL_REF_TICK, 1e-14)
    assert float(out.vol_ratio_raw) > 9.0 and float(out.vol_ratio_clipped) == 4.0
    assert float(out.spread_mult) == 4.0
    assert float(out.size_mult) == pytest.approx(1.0 / 7.0, rel=1e-15)
    assert float(out.band_mult) == 0.25


@ENGINES
def test_non_finite_fallbacks(engine):
    # non-finite EWMA ⇒ sigma_min_tick; vol_ref_tick ≤ 0 ⇒ vol_ratio = 1
    out = run_vol(engine, vol_state(REC, math.nan, math.inf), 0.0, REC)
    assert float(out.fv_short_vol) == pytest.approx(SIGMA_MIN_TICK, rel=1e-15)
    assert float(out.fv_long_vol) == pytest.approx(SIGMA_MIN_TICK, rel=1e-15)
    out = run_vol(engine, vol_state(REC), math.inf, REC)
    assert float(out.fv_short_vol) == pytest.approx(SIGMA_MIN_TICK, rel=1e-15)
    cfg = REC.replace(vol=REC.vol.replace(vol_ref=0.0))
    out = run_vol(engine, vol_state(cfg, 5e-3, 0.0), 0.0, cfg)
    assert float(out.vol_ratio_raw) == 1.0 and float(out.spread_mult) == 1.0


@ENGINES
def test_fv_unavailable_holds_fair_value_and_vol_decays(engine):
    # an initialised filter, every book stale ⇒ no observations: S unchanged, ret ≈ 0,
    # σ_s decays by sqrt(1 − α_s), σ_l by sqrt(1 − α_l)
    s = init_state(REC, base_ms=NOW_MS - 10_000)
    s = s.replace(
        kf_x_hat=np.float64(math.log(100.0)),
        kf_p=np.float64(1e-3),
        kf_last_update_ms=np.int64(NOW_MS - 250),
        kf_initialised=np.bool_(True),
        fair_value=np.float64(100.0),
        has_fair_value=np.bool_(True),
        fv_available=np.bool_(True),
        fv_short_vol=np.float64(2e-4),
        fv_long_vol=np.float64(1e-4),
    )
    s = s.replace(
        venues=s.venues.replace(
            mid=np.full(N, 100.0),
            has_mid=np.ones(N, bool),
            spread=np.full(N, 0.05),
            depth_near_mid=np.full(N, 5000.0),
            has_mid_update=np.ones(N, bool),
            last_mid_update_ms=np.full(N, NOW_MS - 60_000, np.int64),
        )
    )
    if engine == "ref":
        out = rv.update_fair_value_and_vol(s, NOW_MS, REC)
    else:
        with enable_x64():
            f = jax.jit(jv.update_fair_value_and_vol)
            out = jax.tree.map(np.asarray, f(to_jax(s), jnp.asarray(NOW_MS), REC))
    assert not bool(out.fv_available) and int(out.healthy_venues_used_count) == 0
    assert float(out.fair_value) == pytest.approx(100.0, rel=1e-15)
    assert float(out.fv_short_vol) == pytest.approx(math.sqrt(0.8) * 2e-4, rel=1e-12)
    assert float(out.fv_long_vol) == pytest.approx(math.sqrt(0.95) * 1e-4, rel=1e-12)
    assert float(out.kf_p) == pytest.approx(1e-3 + 1e-6 * 0.25, rel=1e-15)


def test_ewma_decay_over_ticks_towards_floor():
    """Repeated zero returns: σ_s → 0 geometrically, σ_eff stays at the floor."""
    s = vol_state(REC, 1e-3, 1e-3)
    for _ in range(200):
        s = rv.update_volatility(s, 0.0, REC)
    assert float(s.fv_short_vol) == pytest.approx(1e-3 * 0.8**100, rel=1e-9)
    assert float(s.sigma_eff) == SIGMA_MIN_TICK
    assert float(s.fv_long_vol) > float(s.fv_short_vol)


# ---------------------------------------------------------------------------------------------
# Parity
# ---------------------------------------------------------------------------------------------


def _rets(rng: np.random.Generator, n: int) -> np.ndarray:
    """Returns incl. zeros, tiny, large (clip), and a few non-finite values."""
    r = rng.normal(0.0, 1e-4, n) * rng.choice([0.0, 1e-3, 1.0, 10.0, 100.0], n)
    r[::37] = np.inf
    r[5::41] = np.nan
    return r


@pytest.mark.parametrize("cfg", [REC, PAR, NOFLOOR], ids=["rec", "parity", "nofloor"])
def test_volatility_parity_x64(cfg):
    states = random_states(11, cfg, 240)
    rets = _rets(np.random.default_rng(11), len(states))
    with enable_x64():
        out = _JIT_VOL_BATCH(to_jax(stack(states)), jnp.asarray(rets), cfg)
        out = jax.tree.map(np.asarray, out)
    for i, s in enumerate(states):
        ref = rv.update_volatility(s, float(rets[i]), cfg)
        o = unstack(out, i)
        for k in SCALARS:
            np.testing.assert_allclose(getattr(o, k), getattr(ref, k), rtol=1e-9, atol=0, err_msg=k)


@pytest.mark.parametrize("cfg", [REC, PAR], ids=["rec", "parity"])
def test_fair_value_and_vol_parity_x64(cfg):
    rng = np.random.default_rng(12)
    states = random_states(12, cfg, 250)
    now = NOW_MS + rng.integers(-300, 300, len(states))
    with enable_x64():
        out = _JIT_STEP_BATCH(to_jax(stack(states)), jnp.asarray(now), cfg)
        out = jax.tree.map(np.asarray, out)
    for i, s in enumerate(states):
        ref = rv.update_fair_value_and_vol(s, int(now[i]), cfg)
        o = unstack(out, i)
        for k in DISCRETE:
            np.testing.assert_array_equal(getattr(o, k), getattr(ref, k), err_msg=k)
        for k in KF:
            np.testing.assert_allclose(getattr(o, k), getattr(ref, k), rtol=1e-9, err_msg=k)
        # the return enters squared; ulp-level differences of exp/ln give ~1e-16 abs in ret
        for k in SCALARS:
            np.testing.assert_allclose(
                getattr(o, k), getattr(ref, k), rtol=1e-9, atol=1e-15, err_msg=k
            )


def test_fair_value_and_vol_parity_float32():
    """float32 vs float64 reference.

    ln S in float32 has an ulp of 4.8e-7 at ln 600 (1 % of vol_ref_tick), so one tick's return
    carries ~5e-7 abs error into the EWMA: measured σ 2.0e-7 abs, vol ratio 4.1e-3 abs (1 %),
    multipliers 3.4e-3 abs. Asserted: σ 6e-7 abs, ratios and multipliers 1.2e-2 abs; flags exact.
    """
    cfg = REC
    rng = np.random.default_rng(13)
    states = random_states(13, cfg, 250)
    now = NOW_MS + rng.integers(-300, 300, len(states))
    out = _JIT_STEP_BATCH(to_jax(stack(states)), jnp.asarray(now), cfg)
    assert out.sigma_eff.dtype == jnp.float32
    out = jax.tree.map(np.asarray, out)
    for i, s in enumerate(states):
        ref = rv.update_fair_value_and_vol(s, int(now[i]), cfg)
        o = unstack(out, i)
        np.testing.assert_array_equal(o.fv_available, ref.fv_available)
        for k in ("fv_short_vol", "fv_long_vol", "sigma_eff"):
            np.testing.assert_allclose(getattr(o, k), getattr(ref, k), rtol=0, atol=6e-7)
        for k in ("vol_ratio_raw", "vol_ratio_clipped", "spread_mult", "size_mult", "band_mult"):
            np.testing.assert_allclose(getattr(o, k), getattr(ref, k), rtol=0, atol=1.2e-2)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    s_prev=st.one_of(st.floats(0.0, 1e-2), st.just(0.0), st.just(math.nan)),
    l_prev=st.floats(0.0, 1e-2),
    ret=st.one_of(st.floats(-0.05, 0.05), st.just(0.0), st.just(math.inf)),
    nofloor=st.booleans(),
)
def test_volatility_parity_hypothesis(s_prev, l_prev, ret, nofloor):
    cfg = NOFLOOR if nofloor else REC
    state = vol_state(cfg, s_prev, l_prev)
    ref = run_vol("ref", state, ret, cfg)
    out = run_vol("jax", state, ret, cfg)
    for k in SCALARS:
        np.testing.assert_allclose(getattr(out, k), getattr(ref, k), rtol=1e-14, err_msg=k)
    # properties of §7.2
    lo = 1e-12 if nofloor else SIGMA_MIN_TICK
    assert float(ref.sigma_eff) >= lo
    assert 0.25 <= float(ref.vol_ratio_clipped) <= 4.0
    assert float(ref.spread_mult) >= 1.0 and 0.0 < float(ref.size_mult) <= 1.0
    assert 0.0 < float(ref.band_mult) <= 1.0


# ---------------------------------------------------------------------------------------------
# JAX engine properties
# ---------------------------------------------------------------------------------------------


def test_vmap_equals_loop_and_single_trace():
    rng = np.random.default_rng(14)
    states = random_states(14, REC, 8)
    now = jnp.asarray(NOW_MS + rng.integers(-300, 300, len(states)))
    f = jax.jit(chex.assert_max_traces(jv.update_fair_value_and_vol, n=1))
    loop = [f(to_jax(s), now[i], REC) for i, s in enumerate(states)]
    vm = _JIT_STEP_BATCH(to_jax(stack(states)), now, REC)
    for i in range(len(states)):
        chex.assert_trees_all_equal(jax.tree.map(lambda x: x[i], vm), loop[i])


def test_bitwise_determinism_and_dtypes():
    states = random_states(15, PAR, 32)
    batch, now = to_jax(stack(states)), jnp.full((32,), NOW_MS)
    a = _JIT_STEP_BATCH(batch, now, PAR)
    b = _JIT_STEP_BATCH(batch, now, PAR)
    chex.assert_trees_all_equal(a, b)
    chex.assert_trees_all_equal_dtypes(a, batch)


def test_scan_over_ticks_is_stable():
    """A tick loop carrying the state through `lax.scan` (shapes/dtypes fixed; S stays put
    when the books are frozen at one mid)."""
    s = init_state(REC, base_ms=NOW_MS)
    s = s.replace(
        venues=s.venues.replace(
            mid=np.full(N, 100.0),
            has_mid=np.ones(N, bool),
            spread=np.full(N, 0.05),
            depth_near_mid=np.full(N, 5000.0),
            has_mid_update=np.ones(N, bool),
            last_mid_update_ms=np.full(N, NOW_MS, np.int64),
        )
    )
    s = to_jax(s)

    def body(c, t):
        vs = c.venues.replace(
            last_mid_update_ms=jnp.full((N,), t, c.venues.last_mid_update_ms.dtype)
        )
        c = jv.update_fair_value_and_vol(c.replace(venues=vs), t, REC)
        return c, c.fair_value

    ts = NOW_MS + 250 * jnp.arange(40)
    final, fvs = jax.jit(lambda s_: jax.lax.scan(body, s_, ts))(s)
    np.testing.assert_allclose(np.asarray(fvs), 100.0, rtol=1e-6)
    assert bool(final.fv_available) and int(final.healthy_venues_used_count) == N
    assert float(final.sigma_eff) == pytest.approx(SIGMA_MIN_TICK, rel=1e-5)
