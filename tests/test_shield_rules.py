"""One hand-built case per shield rule: the rule fires, is counted under its own index, and the
JAX twin (x64) takes the same decision. Flat order lists (safety_shield/types.py layout)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from paraphina_jax.config import make_config
from paraphina_jax.config.types import Flags
from paraphina_jax.utils.x64 import enable_x64
from safety_shield import checks, reference, twin
from safety_shield.types import (
    KIND_EXIT,
    KIND_HEDGE,
    KIND_KILL_EXIT,
    KIND_PLACE,
    KIND_QUOTE,
    N_RULES,
    RULE_BASIS_LIMIT,
    RULE_DAILY_LOSS,
    RULE_DELTA_LIMIT,
    RULE_HARD_LIMIT_QUOTES,
    RULE_IOC_CAPS,
    RULE_KILL_SWITCH,
    RULE_LIQUIDATION,
    RULE_NAMES,
    RULE_NON_FINITE,
    RULE_ORDER_SIZE,
    RULE_PASSIVITY,
    RULE_VENUE_HEALTH,
    ShieldFacts,
    ShieldOrders,
    order_layout,
)

N = 5
CFG = make_config()
CFG_BE = make_config(flags=Flags(kill_best_effort=True))
LAY = order_layout(N)
_JIT = {}


def facts(**kw):
    base = dict(
        now_ms=np.int64(1_000_000),
        kill_switch=np.bool_(False),
        risk_regime=np.int64(0),
        q_global_tao=np.float64(1.0),
        dollar_delta_usd=np.float64(100.0),
        basis_usd=np.float64(0.0),
        daily_pnl_total=np.float64(0.0),
        delta_limit_usd=np.float64(1e5),
        basis_limit_hard_usd=np.float64(1e4),
        fair_value=np.float64(100.0),
        status=np.zeros(N, np.int64),
        dev_disabled=np.zeros(N, bool),
        toxicity=np.zeros(N),
        mid_age_ms=np.full(N, 100, np.int64),
        position_tao=np.array([2.0, -1.0, 0.0, 0.0, 0.0]),
        dist_liq_sigma=np.full(N, 10.0),
        mid=np.full(N, 100.0),
        has_mid=np.ones(N, bool),
        mm_has=np.zeros((N, 2), bool),
        book_bid=np.full(N, 99.9),
        book_ask=np.full(N, 100.1),
        outage=np.zeros(N, bool),
    )
    base.update(kw)
    return ShieldFacts(**base)


def slot(kind: int, venue: int, mm_side: int = 0) -> int:
    idx = np.flatnonzero((LAY.kind == kind) & (LAY.venue == venue))
    if kind in (KIND_PLACE, KIND_QUOTE):
        idx = idx[mm_side : mm_side + 1]
    return int(idx[0])


def orders(*entries):
    """entries: (kind, venue, side, size, price[, mm_side])."""
    k = LAY.venue.shape[0]
    valid = np.zeros(k, bool)
    side = np.where(LAY.mm_side == 1, -1, 1).astype(np.int64)
    size = np.zeros(k)
    price = np.zeros(k)
    for e in entries:
        kind, v, sd, sz, px = e[:5]
        i = slot(kind, v, e[5] if len(e) > 5 else (0 if sd > 0 else 1))
        valid[i], side[i], size[i], price[i] = True, sd, sz, px
    return ShieldOrders(valid=valid, side=side, size=size, price=price)


def run(f, o, cfg=CFG):
    """Reference and twin agree exactly; the result passes the checker. Returns ref output."""
    out, rec = reference.shield_orders(f, o, LAY, cfg)
    key = cfg.flags
    with enable_x64():
        if key not in _JIT:
            _JIT[key] = jax.jit(lambda f_, o_: twin.shield_orders(f_, o_, LAY, cfg))
        t_out, t_rec = jax.tree.map(np.asarray, _JIT[key](*jax.tree.map(jnp.asarray, (f, o))))
    assert np.array_equal(out.valid, t_out.valid)
    assert np.array_equal(out.size, t_out.size)
    assert np.array_equal(rec.interventions, t_rec.interventions)
    assert np.array_equal(rec.venue_mask, t_rec.venue_mask)
    assert checks.violations_one(f, out, LAY, cfg) == []
    return out, rec


def only(rec, rule: int, count: int = 1):
    expect = np.zeros(N_RULES, np.int32)
    expect[rule] = count
    assert np.array_equal(rec.interventions, expect), (RULE_NAMES[rule], rec.interventions)


def test_shield_clean_orders_pass_untouched():
    o = orders(
        (KIND_PLACE, 0, 1, 1.0, 99.8),
        (KIND_PLACE, 0, -1, 1.0, 100.2),
        (KIND_QUOTE, 2, 1, 3.5, 99.5),
        (KIND_EXIT, 0, -1, 1.0, 99.9),
        (KIND_HEDGE, 1, 1, 1.0, 100.1),
    )
    out, rec = run(facts(), o)
    assert int(rec.interventions.sum()) == 0
    assert np.array_equal(out.size, o.size)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_shield_rule_non_finite(bad):
    out, rec = run(facts(), orders((KIND_PLACE, 1, 1, bad, 99.8), (KIND_EXIT, 2, 1, 1.0, bad)))
    only(rec, RULE_NON_FINITE, 2)
    assert not out.valid.any()
    assert np.all(np.isfinite(out.size)) and np.all(np.isfinite(out.price))


def test_shield_rule_non_finite_side_code():
    out, rec = run(facts(), orders((KIND_HEDGE, 0, 0, 1.0, 100.0), (KIND_EXIT, 0, 2, 1.0, 99.0)))
    only(rec, RULE_NON_FINITE, 2)


def test_shield_rule_kill_switch_blocks_everything():
    o = orders(
        (KIND_PLACE, 0, 1, 1.0, 99.8),
        (KIND_EXIT, 0, -1, 1.0, 99.9),
        (KIND_HEDGE, 3, -1, 1.0, 99.9),
        (KIND_KILL_EXIT, 0, -1, 2.0, 99.0),
    )
    out, rec = run(facts(kill_switch=np.bool_(True)), o)
    only(rec, RULE_KILL_SWITCH, 4)
    assert not out.valid.any()


def test_shield_rule_kill_switch_best_effort_is_bounded_reduce_only():
    f = facts(kill_switch=np.bool_(True))
    o = orders(
        (KIND_KILL_EXIT, 0, -1, 7.0, 99.0),  # q0 = +2: sell reduces, capped at 2
        (KIND_KILL_EXIT, 1, -1, 1.0, 99.0),  # q1 = −1: sell grows the short → dropped
    )
    out, rec = run(f, o, CFG_BE)
    i0 = slot(KIND_KILL_EXIT, 0)
    assert out.valid[i0] and out.size[i0] == 2.0
    assert out.valid.sum() == 1
    only(rec, RULE_KILL_SWITCH, 2)


def test_shield_rule_kill_exit_without_kill_dropped():
    out, rec = run(facts(), orders((KIND_KILL_EXIT, 0, -1, 1.0, 99.0)), CFG_BE)
    only(rec, RULE_KILL_SWITCH)


def test_shield_kill_forces_cancel_of_resting_orders():
    state_like = facts(kill_switch=np.bool_(True), mm_has=np.eye(N, 2, dtype=bool))
    rng = np.random.default_rng(0)
    from paraphina_jax.testing import NOW_MS, random_state
    from safety_shield import adversarial

    st = random_state(rng, CFG, "killed")
    view = adversarial.random_view(rng, st, NOW_MS)
    out = adversarial.adversarial_output(rng, st, view, CFG)
    out = out.replace(orders=out.orders.replace(cancel=np.zeros((N, 2), bool)))
    new, rec = reference.shield_actions(st, out, view, CFG)
    has = np.asarray(st.venues.mm_has)
    assert np.all(new.orders.cancel[has])
    assert not checks.check_kill_cancels(state_like, np.eye(N, 2, dtype=bool)).any()
    assert int(rec.interventions[RULE_KILL_SWITCH] + rec.interventions[RULE_NON_FINITE]) >= int(
        has.sum()
    )


@pytest.mark.parametrize("regime", [2, 9])
def test_shield_rule_hard_limit_quotes(regime):
    o = orders(
        (KIND_PLACE, 0, 1, 1.0, 99.8),
        (KIND_QUOTE, 1, -1, 1.0, 100.2),
        (KIND_EXIT, 0, -1, 1.0, 99.9),
    )
    out, rec = run(facts(risk_regime=np.int64(regime)), o)
    only(rec, RULE_HARD_LIMIT_QUOTES, 2)
    assert out.valid[slot(KIND_EXIT, 0)]


@pytest.mark.parametrize(
    "field,value",
    [
        ("status", np.array([0, 2, 0, 0, 0])),
        ("dev_disabled", np.array([False, True, False, False, False])),
        ("toxicity", np.array([0.0, 0.95, 0.0, 0.0, 0.0])),
        ("mid_age_ms", np.array([100, 2001, 100, 100, 100])),  # venue 1 stale_ms = 2000
        ("mid_age_ms", np.array([100, -1, 100, 100, 100])),  # never updated
        ("outage", np.array([False, True, False, False, False])),
    ],
)
def test_shield_rule_venue_health(field, value):
    o = orders(
        (KIND_PLACE, 1, 1, 1.0, 99.8), (KIND_HEDGE, 1, 1, 1.0, 100.2), (KIND_PLACE, 0, 1, 1.0, 99.8)
    )
    out, rec = run(facts(**{field: value}), o)
    only(rec, RULE_VENUE_HEALTH, 2)
    assert rec.venue_mask[RULE_VENUE_HEALTH].tolist() == [False, True, False, False, False]
    assert out.valid[slot(KIND_PLACE, 0)]


def test_shield_rule_passivity_uses_true_book():
    o = orders(
        (KIND_PLACE, 0, 1, 1.0, 100.1),  # buy at the ask: crosses
        (KIND_PLACE, 0, -1, 1.0, 99.9),  # sell at the bid: crosses
        (KIND_QUOTE, 1, 1, 1.0, 100.09),  # passive
        (KIND_EXIT, 2, 1, 1.0, 100.5),  # IOC orders may cross
    )
    f = facts(book_bid=np.array([99.9, 99.9, np.nan, 99.9, 99.9]))
    out, rec = run(f, o)
    only(rec, RULE_PASSIVITY, 2)
    assert out.valid[slot(KIND_QUOTE, 1, 0)] and out.valid[slot(KIND_EXIT, 2)]


def test_shield_rule_order_size():
    o = orders(
        (KIND_PLACE, 0, 1, 25.0, 99.8),  # → 20 (max order size)
        (KIND_PLACE, 1, 1, 5.557, 99.8),  # → 5.55 (lot)
        (KIND_PLACE, 2, 1, 0.005, 99.8),  # below one lot → dropped
        (KIND_PLACE, 3, 1, 0.05, 99.8),  # 4.99 USD < 10 USD min notional → dropped
        (KIND_QUOTE, 4, 1, 5.29, 99.8),  # on grid: untouched
        (KIND_EXIT, 3, 1, 2.0, -1.0),  # non-positive price → dropped
    )
    out, rec = run(facts(), o)
    only(rec, RULE_ORDER_SIZE, 5)
    assert out.size[slot(KIND_PLACE, 0)] == 20.0
    assert out.size[slot(KIND_PLACE, 1)] == pytest.approx(5.55, abs=1e-12)
    assert out.size[slot(KIND_QUOTE, 4)] == 5.29


def test_shield_rule_ioc_caps():
    o = orders(
        (KIND_EXIT, 0, -1, 6.0, 99.9),
        (KIND_EXIT, 1, -1, 6.0, 99.9),  # total 12 > 10 → cut to 4
        (KIND_HEDGE, 2, -1, 15.0, 99.9),  # per venue 10
        (KIND_HEDGE, 3, -1, 10.0, 99.9),
        (KIND_HEDGE, 4, -1, 10.0, 99.9),  # total 20 = HEDGE_MAX_STEP → cut to 0 → dropped
    )
    f = facts(q_global_tao=np.float64(50.0), dollar_delta_usd=np.float64(5000.0))
    out, rec = run(f, o)
    assert out.size[slot(KIND_EXIT, 1)] == pytest.approx(4.0)
    assert out.size[slot(KIND_HEDGE, 2)] == 10.0
    assert not out.valid[slot(KIND_HEDGE, 4)]
    only(rec, RULE_IOC_CAPS, 3)


def test_shield_rule_liquidation():
    f = facts(dist_liq_sigma=np.array([1.5, 10.0, 10.0, 10.0, 10.0]))
    o = orders(
        (KIND_PLACE, 0, 1, 1.0, 99.8),  # buy on a long critical venue: grows it → dropped
        (KIND_EXIT, 0, -1, 1.5, 99.9),
        (KIND_HEDGE, 0, -1, 1.5, 99.9),  # together 3 > |q0| = 2 → hedge cut to 0.5
        (KIND_PLACE, 1, 1, 1.0, 99.8),  # other venue: untouched
    )
    out, rec = run(f, o)
    only(rec, RULE_LIQUIDATION, 2)
    assert out.size[slot(KIND_HEDGE, 0)] == pytest.approx(0.5)
    assert out.valid[slot(KIND_PLACE, 1, 0)]


def test_shield_rule_delta_limit():
    f = facts(delta_limit_usd=np.float64(80.0))  # Δ$ = 100 ≥ 80, long
    o = orders(
        (KIND_PLACE, 2, 1, 1.0, 99.8),  # buy: grows delta → dropped
        (KIND_QUOTE, 2, 1, 1.0, 99.8),  # desired buy quote too
        (KIND_EXIT, 0, -1, 0.6, 99.9),
        (KIND_HEDGE, 1, -1, 0.6, 99.9),  # reductions 1.2 > q_t = 1 → cut to 0.4
    )
    out, rec = run(f, o)
    only(rec, RULE_DELTA_LIMIT, 3)
    assert out.size[slot(KIND_HEDGE, 1)] == pytest.approx(0.4)


def test_shield_rule_basis_limit():
    # mids: venue 2 rich (+1), venue 3 cheap (−1); B = +30 ≥ 20
    f = facts(
        mid=np.array([100.0, 100.0, 101.0, 99.0, 100.0]),
        basis_usd=np.float64(30.0),
        basis_limit_hard_usd=np.float64(20.0),
    )
    o = orders(
        (KIND_PLACE, 2, 1, 1.0, 100.0),  # buy on a rich venue adds +1 to B → dropped
        (KIND_HEDGE, 3, 1, 1.0, 99.5),  # buy on a cheap venue: −1 → kept
        (KIND_EXIT, 2, -1, 40.0 / 20.0, 100.9),  # sell rich: −2 → kept
        (KIND_PLACE, 0, 1, 1.0, 99.8),  # zero basis venue: neutral → kept
    )
    out, rec = run(f, o)
    only(rec, RULE_BASIS_LIMIT, 1)
    assert out.valid[slot(KIND_HEDGE, 3)] and out.valid[slot(KIND_PLACE, 0, 0)]


def test_shield_rule_daily_loss():
    f = facts(daily_pnl_total=np.float64(-5000.0))  # ≤ −|5000|
    o = orders(
        (KIND_PLACE, 1, 1, 1.0, 99.8),  # buy: q_t = +1 grows → dropped
        (KIND_EXIT, 0, -1, 3.0, 99.9),  # sell 3 > |q_t| = 1 → cut to 1
    )
    out, rec = run(f, o)
    only(rec, RULE_DAILY_LOSS, 2)
    assert out.size[slot(KIND_EXIT, 0)] == pytest.approx(1.0)


def test_shield_rule_daily_loss_flat_blocks_all():
    f = facts(
        daily_pnl_total=np.float64(np.nan),
        q_global_tao=np.float64(0.0),
        dollar_delta_usd=np.float64(0.0),
    )
    out, rec = run(f, orders((KIND_EXIT, 0, -1, 1.0, 99.9), (KIND_PLACE, 0, -1, 1.0, 100.2)))
    only(rec, RULE_DAILY_LOSS, 2)
    assert not out.valid.any()


def test_shield_checker_flags_each_rule():
    """The checker is not a rubber stamp: the raw hostile orders above break the rules."""
    f = facts(kill_switch=np.bool_(True))
    o = orders((KIND_PLACE, 0, 1, np.nan, 100.5), (KIND_EXIT, 0, 1, 30.0, 99.0))
    found = {r for _, r in checks.violations_one(f, o, LAY, CFG)}
    assert {RULE_NON_FINITE, RULE_KILL_SWITCH, RULE_PASSIVITY, RULE_ORDER_SIZE} <= found
    assert RULE_IOC_CAPS in found


@pytest.mark.parametrize(
    "limit,rule",
    [
        (dict(delta_limit_usd=np.float64(80.0)), RULE_DELTA_LIMIT),
        (dict(daily_pnl_total=np.float64(-5000.0)), RULE_DAILY_LOSS),
    ],
)
def test_shield_rule_global_limit_cuts_reductions_only(limit, rule):
    """Breached, every order a reduction: only the budget (|q_t| = 1) cuts."""
    o = orders((KIND_EXIT, 0, -1, 0.7, 99.9), (KIND_HEDGE, 1, -1, 0.7, 99.9))
    out, rec = run(facts(**limit), o)
    only(rec, rule, 1)
    assert out.size[slot(KIND_HEDGE, 1)] == pytest.approx(0.3)
    # within the budget: untouched
    out, rec = run(facts(**limit), orders((KIND_EXIT, 0, -1, 0.5, 99.9)))
    only(rec, rule, 0)


def test_shield_rule_basis_limit_cuts_reductions_only():
    f = facts(
        mid=np.array([100.0, 100.0, 101.0, 99.0, 100.0]),
        basis_usd=np.float64(1.5),
        basis_limit_hard_usd=np.float64(1.0),
    )
    # sells on the rich venue: each moves B by −1 per TAO; together 2 > |B| = 1.5
    o = orders((KIND_EXIT, 2, -1, 1.0, 100.9), (KIND_HEDGE, 2, -1, 1.0, 100.9))
    out, rec = run(f, o)
    only(rec, RULE_BASIS_LIMIT, 1)
    assert out.size[slot(KIND_HEDGE, 2)] == pytest.approx(0.5)
