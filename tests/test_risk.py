"""Risk limits, regime, kill switch and venue deviation protection (STRATEGY.md §16, §19.1–3).

Unit tests run the NumPy reference engine and the JAX engine (under x64) on the same cases.
Parity tests (`-k parity`) batch ≥ 200 random states — a third of them pushed onto the hard and
warning thresholds, some exactly — into one vmapped jit call per config variant.

Tolerances: x64 JAX vs reference: limits rtol 1e-15 (same single operations; measured bitwise);
regime, kill switch, kill reason, kill tick, deviation counters, latches and statuses exactly.
float32 JAX vs reference: limits rtol 1e-6; discrete outputs exactly on states whose inputs
are not within float32 rounding (rtol 1e-6) of a threshold (the boundary states are x64-only).
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
    KILL_BASIS,
    KILL_DELTA,
    KILL_LIQ,
    KILL_NONE,
    KILL_PNL,
    REGIME_HARDLIMIT,
    REGIME_NORMAL,
    REGIME_WARNING,
    STATUS_DISABLED,
    STATUS_HEALTHY,
    StrategyConfig,
)
from paraphina_jax.reference import risk as rrisk
from paraphina_jax.reference import toxicity as rtox
from paraphina_jax.strategy import risk as jrisk
from paraphina_jax.strategy.types import StrategyState, init_state
from paraphina_jax.testing import NOW_MS, random_states, stack, to_jax, to_numpy, unstack
from paraphina_jax.utils.x64 import enable_x64

CFG = make_config("balanced")
PARITY_CFG = make_config("balanced", parity=True)
N = CFG.n_venues
ENGINES = ("ref", "jax")
N_RANDOM = 240
L0 = float(CFG.risk.delta_hard_limit_usd_base)  # 100 000
B_HARD = float(CFG.risk.basis_hard_limit_usd)  # 10 000
LOSS = float(CFG.risk.daily_loss_limit)  # 5 000
TICK = 17


def _flags(cfg: StrategyConfig, **kw: Any) -> StrategyConfig:
    return cfg.replace(flags=dataclasses.replace(cfg.flags, **kw))


def _calm(**glob: Any) -> StrategyState:
    """Normal-regime state: vr = 1, no exposure, no PnL, dist_liq 10 everywhere."""
    st0 = init_state(CFG, 0, xp=np).replace(vol_ratio_clipped=np.float64(1.0))
    return st0.replace(
        **{k: np.asarray(v, dtype=np.asarray(getattr(st0, k)).dtype) for k, v in glob.items()}
    )


def _venues(state: StrategyState, **venue: Any) -> StrategyState:
    ven = state.venues.replace(
        **{
            k: np.asarray(x, dtype=np.asarray(getattr(state.venues, k)).dtype)
            for k, x in venue.items()
        }
    )
    return state.replace(venues=ven)


def _run(engine: str, name: str, state: StrategyState, *args: Any) -> Any:
    if engine == "ref":
        return getattr(rrisk, name)(state, *args)
    with enable_x64():
        return to_numpy(getattr(jrisk, name)(to_jax(state), *args))


def _risk(engine: str, state: StrategyState, cfg: StrategyConfig = CFG, tick: int = TICK):
    return _run(engine, "update_risk", state, tick, cfg)


def _check(out: StrategyState, regime: int, killed: bool, reason: int, tick: int = -1) -> None:
    assert int(out.risk_regime) == regime
    assert bool(out.kill_switch) == killed
    assert int(out.kill_reason) == reason
    assert int(out.kill_tick) == tick


# ---------------------------------------------------------------------------------------------
# §16.1 limits
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_limits(engine: str) -> None:
    out = _run(engine, "update_risk_limits", _calm(vol_ratio_clipped=2.0), CFG)
    assert float(out.delta_limit_usd) == L0 / 2.0
    assert float(out.basis_limit_hard_usd) == B_HARD
    assert float(out.basis_limit_warn_usd) == 0.7 * B_HARD
    zero = _run(engine, "update_risk_limits", _calm(vol_ratio_clipped=0.0), CFG)
    assert float(zero.delta_limit_usd) == L0 / 1e-6
    abl = _flags(CFG, disable_risk_regime=True)
    kept = _run(
        engine, "update_risk_limits", _calm(vol_ratio_clipped=2.0, delta_limit_usd=123.0), abl
    )
    assert float(kept.delta_limit_usd) == 123.0


@pytest.mark.parametrize("engine", ENGINES)
def test_min_dist_liq(engine: str) -> None:
    st0 = _venues(_calm(), dist_liq_sigma=[np.inf, -1.0, 7.0, np.nan, 3.5])
    got = rrisk.min_dist_liq(st0) if engine == "ref" else float(jrisk.min_dist_liq(to_jax(st0)))
    assert got == 3.5
    none = _venues(_calm(), dist_liq_sigma=[np.inf, -1.0, -2.0, np.nan, -np.inf])
    got = rrisk.min_dist_liq(none) if engine == "ref" else float(jrisk.min_dist_liq(to_jax(none)))
    assert got == np.inf


# ---------------------------------------------------------------------------------------------
# §16.3–16.4 hard breaches, kill latching, warning thresholds
# ---------------------------------------------------------------------------------------------

HARD_CASES = {
    # exactly at each hard threshold (≥ / ≤, D21), at vr = 1 ⇒ L_delta = 100 000
    "pnl": ({"daily_pnl_total": -LOSS}, {}, KILL_PNL),
    "delta_long": ({"dollar_delta_usd": L0}, {}, KILL_DELTA),
    "delta_short": ({"dollar_delta_usd": -L0}, {}, KILL_DELTA),
    "basis": ({"basis_usd": -B_HARD}, {}, KILL_BASIS),
    "liq": ({}, {"dist_liq_sigma": [10.0, 2.0, 10.0, 10.0, 10.0]}, KILL_LIQ),
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", list(HARD_CASES))
def test_each_hard_breach_kills_with_its_reason(engine: str, case: str) -> None:
    glob, ven, reason = HARD_CASES[case]
    st0 = _venues(_calm(**glob), **ven)
    _check(_risk(engine, st0), REGIME_HARDLIMIT, True, reason, TICK)
    regime, hard = _run(engine, "evaluate_regime", rrisk.update_risk_limits(st0, CFG), CFG)
    assert int(regime) == REGIME_HARDLIMIT
    np.testing.assert_array_equal(hard, [r == reason for r in rrisk.HARD_REASONS])


@pytest.mark.parametrize("engine", ENGINES)
def test_just_inside_hard_thresholds_is_warning(engine: str) -> None:
    for glob, ven in [
        ({"daily_pnl_total": np.nextafter(-LOSS, 0.0)}, {}),
        ({"dollar_delta_usd": np.nextafter(L0, 0.0)}, {}),
        ({"basis_usd": np.nextafter(B_HARD, 0.0)}, {}),
        ({}, {"dist_liq_sigma": [10.0, np.nextafter(2.0, 3.0), 10.0, 10.0, 10.0]}),
    ]:
        _check(_risk(engine, _venues(_calm(**glob), **ven)), REGIME_WARNING, False, KILL_NONE)


@pytest.mark.parametrize("engine", ENGINES)
def test_warning_thresholds(engine: str) -> None:
    warn = [
        {"daily_pnl_total": -0.5 * LOSS},
        {"dollar_delta_usd": -0.7 * L0},
        {"basis_usd": 0.7 * B_HARD},
    ]
    for glob in warn:
        _check(_risk(engine, _calm(**glob)), REGIME_WARNING, False, KILL_NONE)
        inside = {k: np.nextafter(v, 0.0) for k, v in glob.items()}
        _check(_risk(engine, _calm(**inside)), REGIME_NORMAL, False, KILL_NONE)
    liq = _venues(_calm(), dist_liq_sigma=[10.0, 10.0, 5.0, 10.0, 10.0])
    _check(_risk(engine, liq), REGIME_WARNING, False, KILL_NONE)
    ok = _venues(_calm(), dist_liq_sigma=[10.0, 10.0, np.nextafter(5.0, 6.0), 10.0, 10.0])
    _check(_risk(engine, ok), REGIME_NORMAL, False, KILL_NONE)
    _check(_risk(engine, _calm()), REGIME_NORMAL, False, KILL_NONE)


@pytest.mark.parametrize("engine", ENGINES)
def test_priority_chain_and_first_reason_kept(engine: str) -> None:
    everything = _venues(
        _calm(daily_pnl_total=-2 * LOSS, dollar_delta_usd=2 * L0, basis_usd=2 * B_HARD),
        dist_liq_sigma=np.full(N, 0.5),
    )
    _check(_risk(engine, everything), REGIME_HARDLIMIT, True, KILL_PNL, TICK)
    no_pnl = everything.replace(daily_pnl_total=np.float64(0.0))
    _check(_risk(engine, no_pnl), REGIME_HARDLIMIT, True, KILL_DELTA, TICK)
    only_basis_liq = no_pnl.replace(dollar_delta_usd=np.float64(0.0))
    _check(_risk(engine, only_basis_liq), REGIME_HARDLIMIT, True, KILL_BASIS, TICK)
    # latched by delta at tick 17; later ticks with other (or no) breaches keep reason and tick
    first = _risk(engine, _calm(dollar_delta_usd=L0), tick=TICK)
    later = _risk(
        engine,
        everything.replace(
            kill_switch=first.kill_switch, kill_reason=first.kill_reason, kill_tick=first.kill_tick
        ),
        tick=TICK + 12,
    )
    _check(later, REGIME_HARDLIMIT, True, KILL_DELTA, TICK)
    calm_again = _risk(
        engine,
        _calm().replace(
            kill_switch=later.kill_switch, kill_reason=later.kill_reason, kill_tick=later.kill_tick
        ),
        tick=TICK + 24,
    )
    _check(calm_again, REGIME_HARDLIMIT, True, KILL_DELTA, TICK)  # regime forced while killed


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("masks", [True, False])
def test_paper_mode(engine: str, masks: bool) -> None:
    cfg = _flags(CFG, trade_mode="paper", paper_pnl_masks_other_kills=masks)
    pnl_only = _calm(daily_pnl_total=-LOSS)
    _check(_risk(engine, pnl_only, cfg), REGIME_HARDLIMIT, False, KILL_NONE)  # both settings
    pnl_and_basis = _calm(daily_pnl_total=-LOSS, basis_usd=B_HARD)
    if masks:  # [IMPL] parity: the PnL breach stops the chain
        _check(_risk(engine, pnl_and_basis, cfg), REGIME_HARDLIMIT, False, KILL_NONE)
    else:  # [REC] D27: only the PnL reason is skipped
        _check(_risk(engine, pnl_and_basis, cfg), REGIME_HARDLIMIT, True, KILL_BASIS, TICK)
    # without a PnL breach paper mode kills as live does
    _check(_risk(engine, _calm(basis_usd=B_HARD), cfg), REGIME_HARDLIMIT, True, KILL_BASIS, TICK)
    live = _flags(CFG, trade_mode="live", paper_pnl_masks_other_kills=masks)
    _check(_risk(engine, pnl_and_basis, live), REGIME_HARDLIMIT, True, KILL_PNL, TICK)


@pytest.mark.parametrize("engine", ENGINES)
def test_disable_risk_regime_ablation(engine: str) -> None:
    cfg = _flags(CFG, disable_risk_regime=True)
    st0 = _calm(daily_pnl_total=-3 * LOSS, dollar_delta_usd=3 * L0, vol_ratio_clipped=4.0)
    out = _risk(engine, st0, cfg)
    _check(out, REGIME_NORMAL, False, KILL_NONE)
    assert float(out.delta_limit_usd) == L0  # not recomputed
    killed = st0.replace(
        kill_switch=np.bool_(True), kill_reason=np.int64(KILL_LIQ), kill_tick=np.int64(3)
    )
    _check(_risk(engine, killed, cfg), REGIME_HARDLIMIT, True, KILL_LIQ, 3)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(
    pnl=st.floats(-2 * LOSS, LOSS),
    dd=st.floats(-2 * L0, 2 * L0),
    basis=st.floats(-2 * B_HARD, 2 * B_HARD),
    dist=st.lists(st.floats(-1.0, 12.0), min_size=N, max_size=N),
    vr=st.floats(0.25, 4.0),
    paper=st.booleans(),
    masks=st.booleans(),
)
def test_regime_properties(pnl, dd, basis, dist, vr, paper, masks) -> None:
    """Kill ⇔ some latchable hard breach; regime HardLimit ⇔ any hard breach (reference)."""
    cfg = _flags(CFG, trade_mode="paper" if paper else "live", paper_pnl_masks_other_kills=masks)
    st0 = _venues(
        _calm(daily_pnl_total=pnl, dollar_delta_usd=dd, basis_usd=basis, vol_ratio_clipped=vr),
        dist_liq_sigma=dist,
    )
    out = rrisk.update_risk(st0, TICK, cfg)
    l_delta = L0 / vr
    min_d = min([d for d in dist if d >= 0], default=np.inf)
    hard = [pnl <= -LOSS, abs(dd) >= l_delta, abs(basis) >= B_HARD, min_d <= 2.0]
    assert (int(out.risk_regime) == REGIME_HARDLIMIT) == any(hard)
    latchable = hard[1:] if paper else hard
    if paper and masks and hard[0]:
        latchable = []
    assert bool(out.kill_switch) == any(latchable)
    if out.kill_switch:
        first = [
            r for r, h in zip(rrisk.HARD_REASONS, hard) if h and not (paper and r == KILL_PNL)
        ][0]
        assert int(out.kill_reason) == first


# ---------------------------------------------------------------------------------------------
# §16.6 venue deviation protection (D22)
# ---------------------------------------------------------------------------------------------


def _dev_state(mids: list[float], **glob: Any) -> StrategyState:
    g = {"fair_value": 100.0, "has_fair_value": True}
    g.update(glob)
    return _venues(_calm(**g), mid=mids, has_mid=np.ones(N, bool))


@pytest.mark.parametrize("engine", ENGINES)
def test_venue_deviation_latch(engine: str) -> None:
    # venue 0: 3 % off every check ⇒ latched at the 3rd · venue 1: exactly 2 % (strict >) ·
    # venue 2: breach, clean, breach, breach ⇒ counter 1, 0, 1, 2 · venue 3: −5 % · venue 4 fine
    seq = [
        [103.0, 102.0, 97.0, 95.0, 100.0],
        [103.0, 98.0, 100.0, 95.0, 100.0],
        [103.0, 102.0, 103.0, 95.0, 100.0],
        [100.0, 102.0, 103.0, 100.0, 100.0],  # venues 0 and 3 back at S: the latch stays
    ]
    want_count = [[1, 0, 1, 1, 0], [2, 0, 0, 2, 0], [3, 0, 1, 3, 0], [0, 0, 2, 0, 0]]
    want_latch = [[0] * 5, [0] * 5, [1, 0, 0, 1, 0], [1, 0, 0, 1, 0]]
    st0 = _dev_state(seq[0])
    for mids, cnt, latch in zip(seq, want_count, want_latch):
        st0 = _venues(st0, mid=mids)
        st0 = _run(engine, "update_venue_deviation", st0, CFG)
        np.testing.assert_array_equal(st0.venues.dev_breach_count, cnt)
        np.testing.assert_array_equal(st0.venues.dev_disabled, latch)
        want_status = np.where(np.array(latch, bool), STATUS_DISABLED, STATUS_HEALTHY)
        np.testing.assert_array_equal(st0.venues.status, want_status)
    # toxicity recomputation keeps the latched venues Disabled ([REC] flags)
    tox = rtox.update_toxicity(
        _venues(
            st0,
            depth_near_mid=np.full(N, 1e4),
            has_mid_update=np.ones(N, bool),
            last_mid_update_ms=np.full(N, NOW_MS),
        ),
        NOW_MS,
        CFG,
    )
    np.testing.assert_array_equal(tox.venues.status, [STATUS_DISABLED, 0, 0, STATUS_DISABLED, 0])


@pytest.mark.parametrize("engine", ENGINES)
def test_venue_deviation_unchecked_and_flag_off(engine: str) -> None:
    st0 = _venues(
        _dev_state([110.0] * N),
        dev_breach_count=[2, 2, 2, 2, 2],
        has_mid=[1, 0, 1, 1, 1],
        mid=[110.0, 110.0, np.inf, 110.0, 100.0],
    )
    out = _run(engine, "update_venue_deviation", st0, CFG)
    np.testing.assert_array_equal(out.venues.dev_breach_count, [3, 2, 2, 3, 0])  # no mid / inf kept
    np.testing.assert_array_equal(out.venues.dev_disabled, [1, 0, 0, 1, 0])
    no_s = st0.replace(has_fair_value=np.bool_(False), fair_value_prev=np.float64(0.0))
    out = _run(engine, "update_venue_deviation", no_s, CFG)
    np.testing.assert_array_equal(out.venues.dev_breach_count, [2] * N)  # no S: nothing checked
    prev = st0.replace(has_fair_value=np.bool_(False), fair_value_prev=np.float64(110.0))
    out = _run(engine, "update_venue_deviation", prev, CFG)  # S = previous fair value
    np.testing.assert_array_equal(out.venues.dev_breach_count, [0, 2, 2, 0, 3])  # 100 vs 110
    off = _run(engine, "update_venue_deviation", st0, PARITY_CFG)  # D22 off in parity mode
    chex.assert_trees_all_equal(off, st0)


# ---------------------------------------------------------------------------------------------
# Parity
# ---------------------------------------------------------------------------------------------


def _pushed(states: list[StrategyState], seed: int) -> list[StrategyState]:
    """Push a third of the states onto hard / warning thresholds (some exactly)."""
    rng = np.random.default_rng(seed)
    out = []
    for i, s in enumerate(states):
        if i % 3 == 0:
            vr = float(s.vol_ratio_clipped)
            l_delta = L0 / max(vr, 1e-6)
            pick = rng.integers(0, 5)
            sign = float(rng.choice([-1.0, 1.0]))
            exact = rng.random() < 0.5
            f = 1.0 if exact else float(rng.uniform(0.6, 1.2))
            if pick == 0:
                s = s.replace(daily_pnl_total=np.float64(-LOSS * f))
            elif pick == 1:
                s = s.replace(dollar_delta_usd=np.float64(sign * l_delta * f))
            elif pick == 2:
                s = s.replace(basis_usd=np.float64(sign * B_HARD * f))
            elif pick == 3:
                s = s.replace(daily_pnl_total=np.float64(-0.5 * LOSS * f))
            else:
                s = s.replace(basis_usd=np.float64(sign * 0.7 * B_HARD * f))
            if rng.random() < 0.3:  # also a liquidation breach or none
                s = _venues(s, dist_liq_sigma=np.where(rng.random(N) < 0.5, 2.0, 10.0))
        out.append(s)
    return out


def _variants() -> dict[str, StrategyConfig]:
    return {
        "rec": CFG,
        "parity": PARITY_CFG,
        "paper_rec": _flags(CFG, trade_mode="paper"),
        "paper_parity": _flags(PARITY_CFG, trade_mode="paper"),
        "ablation": _flags(CFG, disable_risk_regime=True),
    }


_RISK_FIELDS = ("risk_regime", "kill_switch", "kill_reason", "kill_tick")
_LIMIT_FIELDS = ("delta_limit_usd", "basis_limit_warn_usd", "basis_limit_hard_usd")


def _jax_all(states: list[StrategyState], cfg: StrategyConfig) -> Any:
    ticks = jnp.arange(len(states))

    def f(s: StrategyState, t: jax.Array) -> Any:
        lim = jrisk.update_risk_limits(s, cfg)
        return (
            jrisk.update_risk(s, t, cfg),
            jrisk.evaluate_regime(lim, cfg),
            jrisk.min_dist_liq(s),
            jrisk.update_venue_deviation(s, cfg),
        )

    return to_numpy(jax.jit(jax.vmap(f))(to_jax(stack(states)), ticks))


def _compare(
    states: list[StrategyState], cfg: StrategyConfig, out: Any, rtol: float, mask=None
) -> None:
    risk, (regime, hard), min_d, dev = out
    keep = np.ones(len(states), bool) if mask is None else mask
    for i, s in enumerate(states):
        if not keep[i]:
            continue
        r = rrisk.update_risk(s, i, cfg)
        o = unstack(risk, i)
        for name in _RISK_FIELDS:
            assert int(getattr(o, name)) == int(getattr(r, name)), (i, name)
        for name in _LIMIT_FIELDS:
            np.testing.assert_allclose(getattr(o, name), getattr(r, name), rtol=rtol)
        rg, rh = rrisk.evaluate_regime(rrisk.update_risk_limits(s, cfg), cfg)
        assert int(regime[i]) == rg
        np.testing.assert_array_equal(hard[i], rh)
        np.testing.assert_allclose(min_d[i], rrisk.min_dist_liq(s), rtol=rtol)
        rd = rrisk.update_venue_deviation(s, cfg)
        od = unstack(dev, i)
        for name in ("dev_breach_count", "dev_disabled", "status"):
            np.testing.assert_array_equal(getattr(od.venues, name), getattr(rd.venues, name))


@pytest.mark.parametrize("variant", list(_variants()))
def test_risk_parity(variant: str) -> None:
    cfg = _variants()[variant]
    states = _pushed(random_states(41, cfg, N_RANDOM), seed=42)
    before = stack(states)
    with enable_x64():
        out = _jax_all(states, cfg)
    _compare(states, cfg, out, rtol=1e-15)
    chex.assert_trees_all_equal(stack(states), before)  # the reference never mutates its input
    reasons = {int(rrisk.update_risk(s, 0, cfg).kill_reason) for s in states}
    if variant != "ablation":
        assert {KILL_PNL, KILL_DELTA, KILL_BASIS, KILL_LIQ} <= reasons or variant.startswith(
            "paper"
        )
        regimes = {int(rrisk.update_risk(s, 0, cfg).risk_regime) for s in states}
        assert regimes == {REGIME_NORMAL, REGIME_WARNING, REGIME_HARDLIMIT}


def test_risk_float32_parity() -> None:
    cfg = CFG
    states = _pushed(random_states(43, cfg, N_RANDOM), seed=44)
    out = _jax_all(states, cfg)
    assert np.asarray(out[0].delta_limit_usd).dtype == np.float32

    def near(s: StrategyState) -> bool:
        lim = rrisk.update_risk_limits(s, cfg)
        ld = float(lim.delta_limit_usd)
        pairs = [
            (s.daily_pnl_total, -LOSS),
            (s.daily_pnl_total, -0.5 * LOSS),
            (abs(s.dollar_delta_usd), ld),
            (abs(s.dollar_delta_usd), 0.7 * ld),
            (abs(s.basis_usd), B_HARD),
            (abs(s.basis_usd), 0.7 * B_HARD),
        ]
        pairs += [(d, c) for d in np.asarray(s.venues.dist_liq_sigma) for c in (2.0, 5.0)]
        fv = float(s.fair_value) if bool(s.has_fair_value) else float(s.fair_value_prev)
        if fv > 0:
            pairs += [(abs(float(m) - fv) / fv, 0.02) for m in np.asarray(s.venues.mid)]

        def exact32(x: float) -> bool:
            return float(np.float32(x)) == float(x)

        return any(
            abs(float(a) - c) <= 1e-6 * max(abs(c), 1.0) and not (exact32(a) and exact32(c))
            for a, c in pairs
        )

    mask = np.array([not near(s) for s in states])
    assert mask.sum() >= 150
    _compare(states, cfg, out, rtol=1e-6, mask=mask)


def test_vmap_equals_loop_single_trace_and_determinism() -> None:
    cfg = CFG
    states = _pushed(random_states(45, cfg, 8), seed=46)
    chex.clear_trace_counter()

    def body(s: StrategyState, t: jax.Array) -> StrategyState:
        return jrisk.update_venue_deviation(jrisk.update_risk(s, t, cfg), cfg)

    @chex.assert_max_traces(n=1)
    def one(s: StrategyState, t: jax.Array) -> StrategyState:
        return body(s, t)

    with enable_x64():
        one_j = jax.jit(one)
        batched = jax.jit(jax.vmap(body))
        b = to_jax(stack(states))
        ticks = jnp.arange(len(states))
        out1 = to_numpy(batched(b, ticks))
        out2 = to_numpy(batched(b, ticks))
        loop = [to_numpy(one_j(to_jax(s), ticks[i])) for i, s in enumerate(states)]
    chex.assert_trees_all_equal(out1, out2)
    for i, lo in enumerate(loop):
        chex.assert_trees_all_close(unstack(out1, i), lo, rtol=1e-14, atol=1e-15)
