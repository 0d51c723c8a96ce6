"""STRATEGY.md §19 invariants, end to end through the composed tick (NumPy reference engine).

The JAX tick equals the reference tick on every leaf (tests/test_tick.py, `-k parity`), so what
holds here holds there; the killed-state checks of tests/test_tick.py also run on the JAX output.
§19.4 (PnL identities) and §19.5 (the two-venue example) are unit-tested with their exact
numbers in both engines in tests/test_accounting.py; here they are checked once more as the
tick's mark-to-fair sees them. §19.7 (telemetry schema) belongs to the simulator's telemetry.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import chex
import numpy as np
import pytest

from paraphina_jax.config import PROFILES, apply_env_knobs, make_config
from paraphina_jax.config.types import (
    KILL_DELTA,
    KILL_NONE,
    KILL_PNL,
    PURPOSE_MM,
    REGIME_HARDLIMIT,
    SIDE_BUY,
    SIDE_SELL,
    STATUS_HEALTHY,
)
from paraphina_jax.reference import accounting as ra
from paraphina_jax.reference import risk as rr
from paraphina_jax.reference import tick as rt
from paraphina_jax.strategy.types import FillBatch, StrategyState, identity_controls, init_state
from paraphina_jax.testing import NOW_MS, random_inputs, random_state

CFG = make_config("balanced")
N = CFG.n_venues
IDENT = identity_controls(N)


def _live_state(seed: int) -> StrategyState:
    """A random, healthy, quoting state: fresh Healthy books, resting MM orders, not killed."""
    rng = np.random.default_rng(seed)
    s = random_state(rng, CFG, "random")
    v = s.venues
    return s.replace(
        venues=v.replace(
            status=np.full(N, STATUS_HEALTHY, np.int64),
            toxicity=np.zeros(N),
            has_mid=np.ones(N, bool),
            has_mid_update=np.ones(N, bool),
            last_mid_update_ms=np.full(N, NOW_MS - 100, np.int64),
            dist_liq_sigma=np.full(N, 10.0),
            mm_has=np.ones((N, 2), bool),
        ),
        kill_switch=np.bool_(False),
        kill_reason=np.int64(KILL_NONE),
        risk_regime=np.int64(0),
        has_fair_value=np.bool_(True),
        fv_available=np.bool_(True),
        daily_realised_pnl=np.float64(0.0),
        next_risk_ms=np.int64(NOW_MS),
        last_flush_ms=np.int64(NOW_MS - 1_000),
        next_hedge_ms=np.int64(NOW_MS),
    )


def _run(state: StrategyState, n_ticks: int, seed: int, hook: Any = None) -> list[Any]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_ticks):
        if hook is not None:
            state = hook(k, state)
        inputs = random_inputs(rng, state, CFG, NOW_MS + 250 * k)
        acct = inputs.account  # keep liquidation far away: only the injected breaches count
        inputs = inputs.replace(
            account=acct.replace(has_price_liq=np.zeros(N, bool), dist_liq_sigma=np.full(N, 10.0))
        )
        state, o = rt.strategy_tick(state, inputs, IDENT, CFG)
        out.append((state, o))
    return out


def _any_new_risk(o: Any) -> bool:
    return bool(
        o.orders.place.any()
        or o.quotes.bid_valid.any()
        or o.quotes.ask_valid.any()
        or o.exits.valid.any()
        or o.hedge.valid.any()
    )


# ---------------------------------------------------------------------------------------------
# §19.1 / §19.2 kill switch
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_blocks_new_risk_and_keeps_first_reason(seed):
    """A PnL breach latches the kill on the next risk tick (every 12 ticks); on that tick every
    resting MM order is cancelled and nothing is placed; later ticks (with a delta breach added
    before the following risk tick) emit nothing, the reason stays PnL, the regime HardLimit."""

    def hook(k: int, s: StrategyState) -> StrategyState:
        if k == 2:  # loss beyond the daily limit
            return s.replace(daily_realised_pnl=np.float64(-2.0 * CFG.risk.daily_loss_limit))
        if k == 14:  # after the kill (risk ticks: 0, 12, 24): a huge delta must not replace it
            v = s.venues
            return s.replace(venues=v.replace(position_tao=v.position_tao + 1_000.0))
        return s

    steps = _run(_live_state(seed), 26, seed, hook)
    killed_at = [k for k, (s, _) in enumerate(steps) if bool(s.kill_switch)]
    assert killed_at and killed_at[0] >= 2
    k0 = killed_at[0]
    assert killed_at == list(range(k0, len(steps)))  # latched
    assert any(_any_new_risk(o) for _, o in steps[:k0])  # it was trading before
    for k in range(k0, len(steps)):
        s, o = steps[k]
        assert int(s.kill_reason) == KILL_PNL and int(s.risk_regime) == REGIME_HARDLIMIT
        assert not _any_new_risk(o)
        assert bool(o.kill_transition) == (k == k0)
    # the transition tick cancels every resting order; afterwards there is nothing to cancel
    prev = steps[k0 - 1][0]
    np.testing.assert_array_equal(steps[k0][1].orders.cancel, prev.venues.mm_has)
    assert not steps[k0][0].venues.mm_has.any()


def test_second_breach_after_kill_keeps_the_first_reason():
    """Delta first, then PnL: the reason stays DeltaHardBreach (risk step alone)."""
    s = _live_state(4)
    s = s.replace(venues=s.venues.replace(position_tao=s.venues.position_tao + 2_000.0))
    s = ra.recompute_exposures(s, CFG)
    first = rr.update_risk(s, 1, CFG)
    assert bool(first.kill_switch) and int(first.kill_reason) == KILL_DELTA
    later = rr.update_risk(first.replace(daily_realised_pnl=np.float64(-1e6)), 2, CFG)
    assert int(later.kill_reason) == KILL_DELTA and int(later.kill_tick) == int(first.kill_tick)


# ---------------------------------------------------------------------------------------------
# §19.3 loss limit stored positive
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_daily_loss_limit_positive_and_breach_at_minus_limit(profile):
    cfg, _ = apply_env_knobs(make_config(profile), {"PARAPHINA_DAILY_LOSS_LIMIT": "-1234.5"})
    assert float(cfg.risk.daily_loss_limit) == 1234.5  # stored as |v|
    lim = float(make_config(profile).risk.daily_loss_limit)
    assert lim > 0
    base = ra.recompute_exposures(init_state(CFG, NOW_MS, xp=np), CFG)
    cfg = make_config(profile)
    at = rr.update_risk(base.replace(daily_pnl_total=np.float64(-lim)), 1, cfg)
    assert bool(at.kill_switch) and int(at.kill_reason) == KILL_PNL  # total ≤ −|limit|
    above = rr.update_risk(base.replace(daily_pnl_total=np.float64(-lim + 0.01)), 1, cfg)
    assert not bool(above.kill_switch)


# ---------------------------------------------------------------------------------------------
# §19.4 / §19.5 accounting as the tick sees it
# ---------------------------------------------------------------------------------------------


def _fills(rows: list[tuple[int, int, float, float, float]]) -> FillBatch:
    a = np.asarray(rows, dtype=np.float64)
    k = len(rows)
    return FillBatch(
        valid=np.ones(k, bool),
        venue=a[:, 0].astype(np.int64),
        side=a[:, 1].astype(np.int64),
        size=a[:, 2],
        price=a[:, 3],
        fee_bps=a[:, 4],
        purpose=np.full(k, PURPOSE_MM, np.int64),
        order_id=np.full(k, -1, np.int64),
    )


@pytest.mark.parametrize(
    ("rows", "realised"),
    [
        ([(0, SIDE_BUY, 10, 100, 0), (0, SIDE_SELL, 10, 110, 0)], 100.0),
        ([(0, SIDE_SELL, 10, 110, 5), (0, SIDE_BUY, 10, 100, 5)], 100.0 - 0.55 - 0.50),
        # partial close, then a flip through zero, then flat
        ([(3, SIDE_BUY, 4, 100, 0), (3, SIDE_SELL, 1, 104, 0)], 4.0),
        ([(3, SIDE_BUY, 4, 100, 0), (3, SIDE_SELL, 6, 104, 0), (3, SIDE_BUY, 2, 101, 0)], 22.0),
    ],
)
def test_pnl_identities(rows, realised):
    s = init_state(CFG, NOW_MS, xp=np)
    out = ra.apply_fills(s, _fills(rows), NOW_MS, CFG)
    assert float(out.daily_realised_pnl) == pytest.approx(realised, abs=1e-12)
    q = sum((r[2] if r[1] == SIDE_BUY else -r[2]) for r in rows)
    assert float(out.venues.position_tao.sum()) == pytest.approx(q, abs=1e-12)


def test_two_venue_example_exact():
    s = init_state(CFG, NOW_MS, xp=np)
    v = s.venues
    s = s.replace(
        venues=v.replace(
            position_tao=np.array([5.0, -3.0, 0, 0, 0]),
            avg_entry_price=np.array([95.0, 110.0, 0, 0, 0]),
            mid=np.array([102.0, 98.0, 0, 0, 0]),
            has_mid=np.array([True, True, False, False, False]),
        ),
        fair_value=np.float64(100.0),
        has_fair_value=np.bool_(True),
    )
    out = ra.recompute_exposures(s, CFG)
    got = (out.q_global_tao, out.dollar_delta_usd, out.basis_usd, out.basis_gross_usd)
    assert tuple(float(x) for x in got) == (2.0, 200.0, 16.0, 16.0)
    assert float(out.daily_unrealised_pnl) == 55.0


# ---------------------------------------------------------------------------------------------
# §19.6 determinism
# ---------------------------------------------------------------------------------------------


def test_same_seed_same_config_identical_runs():
    a = _run(_live_state(7), 12, 7)
    b = _run(_live_state(7), 12, 7)
    chex.assert_trees_all_equal(a, b)
    c = _run(_live_state(7), 12, 8)  # another input seed changes the run
    assert not all(np.array_equal(x.fair_value, y.fair_value) for (x, _), (y, _) in zip(a, c))


def test_config_is_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        CFG.risk.daily_loss_limit = 1.0  # type: ignore[misc]
