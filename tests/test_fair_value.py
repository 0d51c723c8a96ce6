"""Kalman fair value (STRATEGY.md §6): gating, noise, init, updates; JAX ↔ NumPy parity."""

from __future__ import annotations

import dataclasses
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paraphina_jax.config.defaults import make_config, reference_parity_flags
from paraphina_jax.config.loader import apply_overrides
from paraphina_jax.config.types import (
    STATUS_DISABLED,
    STATUS_HEALTHY,
    STATUS_WARNING,
    Flags,
    StrategyConfig,
)
from paraphina_jax.reference import fair_value as rf
from paraphina_jax.strategy import fair_value as jf
from paraphina_jax.strategy.types import StrategyState, init_state
from paraphina_jax.testing import NOW_MS, random_states, stack, to_jax, unstack
from paraphina_jax.utils.x64 import enable_x64

REC = make_config()
PAR = make_config(parity=True)
N = REC.n_venues
Q, P_INIT, R_MAX = 1e-6, 1.0, 1e-2  # §3.1 defaults

CONTINUOUS = ("kf_x_hat", "kf_p", "fair_value", "fair_value_prev")
DISCRETE = (
    "fv_available",
    "healthy_venues_used",
    "healthy_venues_used_count",
    "kf_last_update_ms",
    "kf_initialised",
    "has_fair_value",
)


# ---------------------------------------------------------------------------------------------
# Builders and runners
# ---------------------------------------------------------------------------------------------


def _fv_and_elig(state: StrategyState, now: jax.Array, cfg: StrategyConfig):
    new, ret = jf.update_fair_value(state, now, cfg)
    el, r = jf.kf_eligibility(state, now, cfg), jf.observation_noise(state, cfg)
    return new, ret, el, r, jf.init_fair_value(state, now, cfg)


_JIT = jax.jit(_fv_and_elig)
_JIT_BATCH = jax.jit(jax.vmap(_fv_and_elig, in_axes=(0, 0, None)))


def book_state(
    cfg: StrategyConfig,
    mids: list[float],
    *,
    now: int = NOW_MS,
    ages: list[int] | int = 0,
    spreads: list[float] | float = 0.05,
    depths: list[float] | float = 5_000.0,
    status: list[int] | int = STATUS_HEALTHY,
    fv: float | None = None,
    fv_available: bool = False,
    kf_p: float = 1e-3,
    last_update_ms: int | None = None,
    fair_value_prev: float = 0.0,
) -> StrategyState:
    """A NumPy state with the given books; NaN mid = no mid. `fv` set ⇒ an initialised KF."""
    st_ = init_state(cfg, base_ms=now - 10_000)
    mids_a = np.asarray(mids, dtype=np.float64)
    has = np.isfinite(mids_a)
    venues = st_.venues.replace(
        mid=np.where(has, mids_a, 0.0),
        has_mid=has,
        spread=np.broadcast_to(np.asarray(spreads, np.float64), (N,)).copy(),
        depth_near_mid=np.broadcast_to(np.asarray(depths, np.float64), (N,)).copy(),
        last_mid_update_ms=now - np.broadcast_to(np.asarray(ages, np.int64), (N,)),
        has_mid_update=has.copy(),
        status=np.broadcast_to(np.asarray(status, np.int64), (N,)).copy(),
    )
    out = st_.replace(venues=venues, fair_value_prev=np.float64(fair_value_prev))
    if fv is not None:
        x = math.log(fv)
        out = out.replace(
            kf_x_hat=np.float64(x),
            kf_p=np.float64(kf_p),
            kf_last_update_ms=np.int64(now - 250 if last_update_ms is None else last_update_ms),
            kf_initialised=np.bool_(True),
            fair_value=np.float64(fv),
            has_fair_value=np.bool_(True),
            fair_value_prev=np.float64(fv),
            fv_available=np.bool_(fv_available),
        )
    return out


def run(engine: str, state: StrategyState, cfg: StrategyConfig, now: int = NOW_MS):
    """(new state, ret, eligibility, noise, S_0) from one engine, as NumPy."""
    if engine == "ref":
        new, ret = rf.update_fair_value(state, now, cfg)
        el, r = rf.kf_eligibility(state, now, cfg), rf.observation_noise(state, cfg)
        return new, ret, el, r, rf.init_fair_value(state, now, cfg)
    with enable_x64():
        out = _JIT(to_jax(state), jnp.asarray(now), cfg)
        return jax.tree.map(np.asarray, out)


ENGINES = pytest.mark.parametrize("engine", ["ref", "jax"])


def kf_by_hand(x: float, p: float, ys: list[float], rs: list[float]) -> tuple[float, float]:
    """§6.3 sequential scalar updates written out."""
    for y, r in zip(ys, rs):
        k = p / (p + r)
        x = x + k * (y - x)
        p = (1.0 - k) * p
    return x, p


# ---------------------------------------------------------------------------------------------
# §6.1 gating
# ---------------------------------------------------------------------------------------------


@ENGINES
def test_staleness_threshold_global_and_per_venue(engine):
    # venue 0 at exactly BOOK_STALE_MS (≤ ⇒ fresh); venue 1 (override 2000) and venue 4
    # (override 3000) beyond 1000 but inside their own thresholds (D1); venue 2 one ms too old.
    mids = [100.0, 100.1, 100.2, 99.9, 100.0]
    ages = [1000, 1500, 1001, 0, 2500]
    _, _, el, _, _ = run(engine, book_state(REC, mids, ages=ages, fv=100.0), REC)
    np.testing.assert_array_equal(el, [True, True, False, True, True])
    cfg_global = make_config(flags=Flags(stale_per_venue=False))
    _, _, el, _, _ = run(engine, book_state(cfg_global, mids, ages=ages, fv=100.0), cfg_global)
    np.testing.assert_array_equal(el, [True, False, False, True, False])
    # no mid update at all ⇒ ineligible
    s = book_state(REC, mids, fv=100.0)
    s = s.replace(venues=s.venues.replace(has_mid_update=np.array([1, 0, 1, 1, 1], bool)))
    np.testing.assert_array_equal(run(engine, s, REC)[2], [True, False, True, True, True])


@ENGINES
def test_status_gating_uses_lagged_status(engine):
    status = [STATUS_HEALTHY, STATUS_WARNING, STATUS_DISABLED, STATUS_HEALTHY, STATUS_HEALTHY]
    s = book_state(REC, [100.0] * N, status=status, fv=100.0)
    np.testing.assert_array_equal(run(engine, s, REC)[2], [True, False, False, True, True])


@ENGINES
def test_book_validity_gating(engine):
    # no mid, crossed (spread ≤ 0), zero depth, non-finite spread
    s = book_state(
        REC,
        [100.0, math.nan, 100.0, 100.0, 100.0],
        spreads=[0.05, 0.05, 0.0, 0.05, math.inf],
        depths=[5000.0, 5000.0, 5000.0, 0.0, 5000.0],
        fv=100.0,
    )
    np.testing.assert_array_equal(run(engine, s, REC)[2], [True, False, False, False, False])


@ENGINES
def test_outlier_gate_vs_previous_fair_value(engine):
    mids = [101.9, 102.0, 102.1, 98.0, 97.9]  # 2.0 / 100 = 0.02 exactly passes (≤)
    s = book_state(REC, mids, fv=100.0, fv_available=True)
    np.testing.assert_array_equal(run(engine, s, REC)[2], [True, True, False, True, False])
    # previous tick without fv_available ⇒ no outlier gate
    s = book_state(REC, mids, fv=100.0, fv_available=False)
    assert run(engine, s, REC)[2].all()


def test_fair_value_gating_ablation_does_not_touch_kf_gates():
    cfg = make_config(flags=Flags(disable_fair_value_gating=True))
    s = book_state(cfg, [101.9, 102.0, 102.1, 98.0, 97.9], fv=100.0, fv_available=True)
    np.testing.assert_array_equal(
        rf.kf_eligibility(s, NOW_MS, cfg), rf.kf_eligibility(s, NOW_MS, REC)
    )


@ENGINES
@pytest.mark.parametrize("min_obs", [2, 3])
def test_min_healthy_venues_exactly(engine, min_obs):
    cfg = apply_overrides(REC, {"book.min_healthy_venues_for_kf": min_obs})
    base = [100.2, 100.4, 100.6, 100.8, 101.0]
    for k in range(N + 1):
        mids = [base[i] if i < k else math.nan for i in range(N)]
        s = book_state(cfg, mids, fv=100.0, fv_available=True)
        new, _, el, _, _ = run(engine, s, cfg)
        assert int(new.healthy_venues_used_count) == k == int(el.sum())
        assert bool(new.fv_available) == (k >= min_obs)
        np.testing.assert_array_equal(new.healthy_venues_used, el)
        if k < min_obs:  # prediction only
            assert float(new.kf_x_hat) == math.log(100.0)
            assert float(new.kf_p) == pytest.approx(1e-3 + Q * 250 / 1000, rel=1e-15)


@ENGINES
def test_one_stale_venue_is_ignored(engine):
    mids = [100.1, 100.3, 100.9, 99.8, 100.2]
    stale = book_state(REC, mids, ages=[0, 0, 5_000, 0, 0], fv=100.0, fv_available=True)
    absent = book_state(REC, mids, fv=100.0, fv_available=True)
    absent = absent.replace(
        venues=absent.venues.replace(has_mid_update=np.array([1, 1, 0, 1, 1], bool))
    )
    a, ra, ela, _, _ = run(engine, stale, REC)
    b, rb, elb, _, _ = run(engine, absent, REC)
    np.testing.assert_array_equal(ela, [True, True, False, True, True])
    np.testing.assert_array_equal(ela, elb)
    assert float(a.kf_x_hat) == float(b.kf_x_hat) and float(a.kf_p) == float(b.kf_p)
    assert ra == rb


# ---------------------------------------------------------------------------------------------
# §6.2 observation noise
# ---------------------------------------------------------------------------------------------


@ENGINES
def test_observation_noise_impl_form(engine):
    # mid 100, spread 0.05 ⇒ rel 5e-4; depth 1e6 ⇒ R_B/depth = 1e-4 (inside the clip);
    # depth 5000 ⇒ 0.02 > R_MAX (saturates, as §6.2 notes); mid 0 ⇒ non-finite ⇒ R_MAX;
    # depth 1e12 ⇒ 1e-8 + 2.5e-13 + 1e-10 just above R_MIN.
    s = book_state(
        REC,
        [100.0, 100.0, math.nan, 100.0, 100.0],
        spreads=[0.05, 0.05, 0.05, -1.0, 0.05],
        depths=[1e6, 5_000.0, 1e6, 1e6, 1e12],
    )
    r = run(engine, s, REC)[3]
    e0 = 1e-8 + 1e-6 * (5e-4 * 5e-4) + 100.0 / (1e6 + 1e-9)
    e3 = 1e-8 + 1e-6 * (1e-9 * 1e-9) + 100.0 / (1e6 + 1e-9)  # negative spread ⇒ rel floor 1e-9
    e4 = 1e-8 + 1e-6 * (5e-4 * 5e-4) + 100.0 / (1e12 + 1e-9)
    np.testing.assert_allclose(r, [e0, R_MAX, R_MAX, e3, e4], rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# §6.3 update sequence
# ---------------------------------------------------------------------------------------------


@ENGINES
def test_sequential_update_numbers(engine):
    # Two observations in venue order, r from §6.2 with depth 1e6 (≈ 1.0001e-4).
    mids = [100.4, math.nan, 100.8, math.nan, math.nan]
    s = book_state(REC, mids, depths=1e6, fv=100.5, kf_p=2e-4, fv_available=True)
    new, ret, _, r, _ = run(engine, s, REC)
    p0 = 2e-4 + Q * 250 / 1000  # prediction, dt = 250 ms
    x, p = kf_by_hand(math.log(100.5), p0, [math.log(100.4), math.log(100.8)], [r[0], r[2]])
    assert float(new.kf_x_hat) == pytest.approx(x, rel=1e-14)
    assert float(new.kf_p) == pytest.approx(p, rel=1e-14)
    assert float(new.fair_value) == pytest.approx(math.exp(x), rel=1e-14)
    assert float(new.fair_value_prev) == pytest.approx(100.5, rel=1e-15)
    assert ret == pytest.approx(math.log(math.exp(x) / 100.5), rel=1e-9)
    assert int(new.kf_last_update_ms) == NOW_MS and bool(new.has_fair_value)


@ENGINES
def test_dt_clamps_and_first_update_default(engine):
    mids = [math.nan] * N
    # last update in the future ⇒ dt = 1 ms; last update 0 ⇒ dt = 1000 ms (explicit init flag)
    s = book_state(REC, mids, fv=100.0, kf_p=1e-3, last_update_ms=NOW_MS + 50)
    assert float(run(engine, s, REC)[0].kf_p) == pytest.approx(1e-3 + Q * 1 / 1000, rel=1e-15)
    s = book_state(REC, mids, fv=100.0, kf_p=1e-3, last_update_ms=0)
    assert float(run(engine, s, REC)[0].kf_p) == pytest.approx(1e-3 + Q * 1000 / 1000, rel=1e-15)
    # a non-finite or non-positive P falls back to KF_P_INIT before the prediction
    s = book_state(REC, mids, fv=100.0, kf_p=-1.0)
    assert float(run(engine, s, REC)[0].kf_p) == pytest.approx(P_INIT + Q * 0.25, rel=1e-15)


@ENGINES
@pytest.mark.parametrize(
    ("cfg", "mids", "status", "median"),
    [
        # [SPEC] (D7): Healthy venues; S_0 gate then leaves ≤ 1 observation ⇒ S = S_0 exactly.
        (REC, [120.0, 100.0, 110.0, math.nan, math.nan], STATUS_HEALTHY, 110.0),
        (REC, [120.0, 104.0, 110.0, 100.0, math.nan], STATUS_HEALTHY, 107.0),
        # Warning venue (200) left out of the [SPEC] median
        (
            REC,
            [120.0, 100.0, 110.0, 200.0, math.nan],
            [0, 0, 0, STATUS_WARNING, 0],
            110.0,
        ),
        # [IMPL]: any non-Disabled fresh mid (Warning venues: no observations at all).
        (PAR, [120.0, 100.0, 110.0, math.nan, math.nan], STATUS_WARNING, 110.0),
        (PAR, [120.0, 104.0, 110.0, 100.0, math.nan], STATUS_WARNING, 107.0),
        (PAR, [120.0, 104.0, 110.0, 100.0, 1000.0], [1, 1, 1, 1, STATUS_DISABLED], 107.0),
        (PAR, [120.0, 100.0, 110.0, 200.0, math.nan], STATUS_WARNING, 115.0),
    ],
)
def test_init_median_odd_even(engine, cfg, mids, status, median):
    s = book_state(cfg, mids, status=status)  # uninitialised, no previous fair value
    new, ret, _, _, s0 = run(engine, s, cfg)
    assert s0 == median
    assert not bool(new.fv_available)
    assert float(new.fair_value) == pytest.approx(median, rel=1e-15)
    assert float(new.kf_x_hat) == pytest.approx(math.log(median), rel=1e-15)
    assert float(new.kf_p) == pytest.approx(P_INIT + Q * 1.0, rel=1e-15)  # dt = 1000 on init
    assert ret == 0.0 and float(new.fair_value_prev) == float(new.fair_value)
    assert bool(new.kf_initialised)


@ENGINES
@pytest.mark.parametrize(
    ("prev", "has_fv", "expected"),
    [(300.0, False, 300.0), (0.0, False, 250.0), (280.0, True, 280.0)],
)
def test_init_fallback_to_prev_or_250(engine, prev, has_fv, expected):
    s = book_state(PAR, [100.0] * N, ages=50_000, fair_value_prev=prev)  # all stale
    if has_fv:  # parity re-init because x̂ == 0 while a fair value is present
        s = s.replace(fair_value=np.float64(prev), has_fair_value=np.bool_(True))
    for cfg in (REC, PAR):
        new, ret, el, _, _ = run(engine, s, cfg)
        assert not el.any() and not bool(new.fv_available)
        assert float(new.fair_value) == pytest.approx(expected, rel=1e-15)
        assert ret == pytest.approx(0.0, abs=1e-15)


@ENGINES
def test_init_tick_return_is_against_previous(engine):
    # "except on an initialisation tick": the vol sees ln(S_init / S_prev)
    s = book_state(REC, [120.0, 100.0, 110.0, math.nan, math.nan], fair_value_prev=100.0)
    new, ret, _, _, _ = run(engine, s, REC)
    assert float(new.fair_value_prev) == 100.0
    assert ret == pytest.approx(math.log(1.1), rel=1e-12)


@ENGINES
def test_fv_unavailable_keeps_fair_value(engine):
    s = book_state(REC, [100.3, 100.0, 100.0, 100.0, 100.0], ages=[0] + [9_000] * 4, fv=100.0)
    new, ret, el, _, _ = run(engine, s, REC)
    assert int(el.sum()) == 1 and not bool(new.fv_available)
    assert float(new.fair_value) == pytest.approx(100.0, rel=1e-15)
    assert abs(ret) < 1e-15
    np.testing.assert_array_equal(new.healthy_venues_used, el)  # recorded even below minimum


# ---------------------------------------------------------------------------------------------
# D3 / D7 flag variants
# ---------------------------------------------------------------------------------------------


@ENGINES
def test_d3_explicit_init_vs_reference_reinit(engine):
    mids = [100.5, 100.5, 100.5, math.nan, math.nan]
    # first update happened at t = 0: REC keeps the filter, parity re-initialises
    s = book_state(REC, mids, fv=100.0, kf_p=5e-3, last_update_ms=0)
    rec, _, _, r, _ = run(engine, s, REC)
    x, p = kf_by_hand(math.log(100.0), 5e-3 + Q * 1000 / 1000, [math.log(100.5)] * 3, list(r[:3]))
    assert float(rec.kf_x_hat) == pytest.approx(x, rel=1e-14)
    assert float(rec.kf_p) == pytest.approx(p, rel=1e-14)
    par, _, _, r, _ = run(engine, s, PAR)
    x, p = kf_by_hand(math.log(100.5), P_INIT + Q * 1.0, [math.log(100.5)] * 3, list(r[:3]))
    assert float(par.kf_x_hat) == pytest.approx(x, rel=1e-14)
    assert float(par.kf_p) == pytest.approx(p, rel=1e-14)
    # x̂ == 0 re-triggers init in parity only; an unset explicit flag re-inits in REC only
    z = s.replace(kf_x_hat=np.float64(0.0), kf_last_update_ms=np.int64(NOW_MS - 250))
    assert float(run(engine, z, PAR)[0].kf_x_hat) == pytest.approx(x, rel=1e-14)
    assert float(run(engine, z, REC)[0].kf_p) < 5e-3 + Q
    u = s.replace(kf_initialised=np.bool_(False), kf_last_update_ms=np.int64(NOW_MS - 250))
    assert float(run(engine, u, REC)[0].kf_p) > 1e-3  # reset to P_INIT then updated
    assert float(run(engine, u, PAR)[0].kf_p) < 5e-3 + Q


@ENGINES
def test_d7_outlier_gate_after_init(engine):
    mids = [120.0, 100.0, 110.0, math.nan, math.nan]
    s = book_state(REC, mids)  # uninitialised, previous fv_available false
    rec, _, el, _, _ = run(engine, s, REC)
    np.testing.assert_array_equal(el, [False, False, True, False, False])  # S_0 = 110 gate
    assert not bool(rec.fv_available)
    par, _, el, r, _ = run(engine, s, PAR)
    np.testing.assert_array_equal(el, [True, True, True, False, False])  # no gate at init
    assert bool(par.fv_available)
    x, _ = kf_by_hand(math.log(110.0), P_INIT + Q, [math.log(m) for m in mids[:3]], list(r[:3]))
    assert float(par.kf_x_hat) == pytest.approx(x, rel=1e-14)


# ---------------------------------------------------------------------------------------------
# Parity with the NumPy reference engine
# ---------------------------------------------------------------------------------------------

PARITY_CFGS = {
    "rec": REC,
    "parity": PAR,
    "mixed": make_config(
        flags=dataclasses.replace(
            reference_parity_flags(), stale_per_venue=True, kf_outlier_gate_after_init=True
        )
    ),
    "rec_min3": apply_overrides(REC, {"book.min_healthy_venues_for_kf": 3}),
}


def parity_states(cfg: StrategyConfig, seed: int, n: int = 240) -> tuple[list, np.ndarray]:
    """Random states plus edge cases that stress §6: mostly-Healthy books, D3 corner cases."""
    rng = np.random.default_rng(seed + 17)
    states = random_states(seed, cfg, n)
    out = []
    for i, s in enumerate(states):
        kind = i % 6
        if kind == 1:  # mostly Healthy venues ⇒ many observations
            st_ = np.where(rng.random(N) < 0.85, STATUS_HEALTHY, s.venues.status)
            s = s.replace(venues=s.venues.replace(status=st_.astype(s.venues.status.dtype)))
        elif kind == 2:  # first update was at t = 0 (D3)
            s = s.replace(kf_last_update_ms=np.int64(0))
        elif kind == 3:  # explicit flag unset while the filter holds a value (D3)
            s = s.replace(kf_initialised=np.bool_(False))
        elif kind == 4:  # degenerate P
            s = s.replace(kf_p=np.float64(rng.choice([0.0, -1.0, np.inf, np.nan])))
        out.append(s)
    now = NOW_MS + rng.integers(-300, 300, n)
    return out, now


def _check_parity(cfg, states, now, out, *, rtol=1e-9, atol_x=1e-12, exact_masks=True):
    new_b, ret_b, el_b, r_b, s0_b = out
    for i, s in enumerate(states):
        rnew, rret = rf.update_fair_value(s, int(now[i]), cfg)
        jnew = unstack(new_b, i)
        assert s0_b[i] == rf.init_fair_value(s, int(now[i]), cfg)  # exact: same median ops
        if exact_masks:
            np.testing.assert_array_equal(np.asarray(el_b)[i], rf.kf_eligibility(s, now[i], cfg))
            for k in DISCRETE:
                np.testing.assert_array_equal(getattr(jnew, k), getattr(rnew, k), err_msg=k)
        np.testing.assert_allclose(
            np.asarray(r_b)[i], rf.observation_noise(s, cfg), rtol=rtol, atol=1e-15
        )
        for k in CONTINUOUS:
            np.testing.assert_allclose(
                getattr(jnew, k), getattr(rnew, k), rtol=rtol, atol=atol_x, err_msg=k
            )
        np.testing.assert_allclose(np.asarray(ret_b)[i], rret, rtol=rtol, atol=atol_x)


@pytest.mark.parametrize("name", list(PARITY_CFGS))
def test_fair_value_parity_x64(name):
    cfg = PARITY_CFGS[name]
    states, now = parity_states(cfg, seed=list(PARITY_CFGS).index(name))
    with enable_x64():
        out = _JIT_BATCH(to_jax(stack(states)), jnp.asarray(now), cfg)
        out = jax.tree.map(np.asarray, out)
    _check_parity(cfg, states, now, out)
    # the random set covers both outcomes of every gate
    assert 0 < np.mean(out[0].fv_available) < 1
    assert out[2].any() and not out[2].all()


def test_fair_value_parity_float32():
    """float32 engine vs float64 reference, masks exact.

    Measured worst cases over these states: ln S 4.7e-7 abs (≈ 1 ulp at ln 600), S 4.7e-7 rel,
    ret 5.1e-7 abs, r 1.5e-7 rel, P 1.4e-5 rel (``1 − K`` cancels when P ≫ r, e.g. at init).
    Asserted with about 4× margin.
    """
    cfg = REC
    states, now = parity_states(cfg, seed=5)
    out = _JIT_BATCH(to_jax(stack(states)), jnp.asarray(now), cfg)
    assert out[0].kf_x_hat.dtype == jnp.float32
    out = jax.tree.map(np.asarray, out)
    new_b, ret_b, el_b, r_b, _ = out
    for i, s in enumerate(states):
        rnew, rret = rf.update_fair_value(s, int(now[i]), cfg)
        jnew = unstack(new_b, i)
        np.testing.assert_array_equal(el_b[i], rf.kf_eligibility(s, now[i], cfg))
        np.testing.assert_array_equal(jnew.fv_available, rnew.fv_available)
        np.testing.assert_allclose(jnew.kf_x_hat, rnew.kf_x_hat, rtol=0, atol=2e-6)
        np.testing.assert_allclose(jnew.fair_value, rnew.fair_value, rtol=2e-6)
        np.testing.assert_allclose(jnew.fair_value_prev, rnew.fair_value_prev, rtol=2e-6)
        np.testing.assert_allclose(jnew.kf_p, rnew.kf_p, rtol=6e-5)
        np.testing.assert_allclose(ret_b[i], rret, rtol=0, atol=2e-6)
        np.testing.assert_allclose(r_b[i], rf.observation_noise(s, cfg), rtol=1e-6)


_venue = st.tuples(
    st.one_of(st.floats(90.0, 110.0), st.just(100.0), st.just(math.nan)),  # mid
    st.sampled_from([0, 1, 999, 1000, 1001, 2000, 2001, 3000, 50_000]),  # age
    st.sampled_from([STATUS_HEALTHY, STATUS_HEALTHY, STATUS_WARNING, STATUS_DISABLED]),
    st.sampled_from([0.0, 0.01, 0.5]),  # spread
    st.sampled_from([0.0, 300.0, 1e6]),  # depth
)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    venues=st.lists(_venue, min_size=N, max_size=N),
    fv=st.one_of(st.none(), st.floats(95.0, 105.0)),
    fv_available=st.booleans(),
    parity=st.booleans(),
)
def test_fair_value_parity_hypothesis(venues, fv, fv_available, parity):
    cfg = PAR if parity else REC
    mids, ages, status, spreads, depths = (list(c) for c in zip(*venues))
    s = book_state(
        cfg,
        mids,
        ages=ages,
        status=status,
        spreads=spreads,
        depths=depths,
        fv=fv,
        fv_available=fv_available,
        fair_value_prev=101.0,
    )
    rnew, rret, rel_, rr, rs0 = run("ref", s, cfg)
    jnew, jret, jel, jr, js0 = run("jax", s, cfg)
    assert rs0 == js0
    np.testing.assert_array_equal(jel, rel_)
    for k in DISCRETE:
        np.testing.assert_array_equal(getattr(jnew, k), getattr(rnew, k), err_msg=k)
    for k in CONTINUOUS:
        np.testing.assert_allclose(getattr(jnew, k), getattr(rnew, k), rtol=1e-12, err_msg=k)
    np.testing.assert_allclose(jret, rret, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(jr, rr, rtol=1e-14)
    # properties: the fair value is positive; observations only from eligible venues
    assert float(rnew.fair_value) > 0 and 0.0 < float(rnew.kf_p) <= P_INIT + Q * 1.0
    assert not (rel_ & ~np.isfinite(np.asarray(mids))).any()


# ---------------------------------------------------------------------------------------------
# JAX engine properties
# ---------------------------------------------------------------------------------------------


def test_vmap_equals_loop_and_single_trace():
    states, now = parity_states(REC, seed=3, n=8)
    batch = to_jax(stack(states))
    nows = jnp.asarray(now)
    f = jax.jit(chex.assert_max_traces(_fv_and_elig, n=1))
    loop = [f(to_jax(s), nows[i], REC) for i, s in enumerate(states)]
    vm = _JIT_BATCH(batch, nows, REC)
    for i in range(len(states)):
        chex.assert_trees_all_equal(jax.tree.map(lambda x: x[i], vm), loop[i])


def test_bitwise_determinism():
    states, now = parity_states(PAR, seed=4, n=32)
    batch, nows = to_jax(stack(states)), jnp.asarray(now)
    a = _JIT_BATCH(batch, nows, PAR)
    b = _JIT_BATCH(batch, nows, PAR)
    chex.assert_trees_all_equal(a, b)


def test_jax_outputs_keep_state_dtypes():
    s = to_jax(book_state(REC, [100.0] * N, fv=100.0))
    new, ret, el, r, _ = _JIT(s, jnp.asarray(NOW_MS), REC)
    chex.assert_trees_all_equal_dtypes(new, s)
    assert ret.dtype == s.kf_x_hat.dtype and el.dtype == jnp.bool_ and r.dtype == s.venues.mid.dtype
