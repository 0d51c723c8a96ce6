"""The shield's NumPy float64 authority: facts, flat orders, the rule pipeline, the hook.

* :func:`facts_from_state` — what the rules read, from a NumPy `StrategyState` and the true
  book of the tick (`MarketView`);
* :func:`flatten_actions` / :func:`unflatten_actions` — `TickOutput` ↔ flat order list;
* :func:`shield_orders` — the rule pipeline on the flat list, with the per-rule record;
* :func:`shield_actions` — the whole shield on a `TickOutput` (one environment or a batch);
* :func:`reference_shield` — the episode hook `(state, out, view, cfg) -> (out, counts [R])`;
* :func:`clip_controls` — the control-surface rule (SIMULATION §6.6), applied before the tick.

The JAX twin (:mod:`safety_shield.twin`) mirrors every function here.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from paraphina_jax.config.types import StrategyConfig
from paraphina_jax.strategy.types import Controls, StrategyState, TickOutput
from safety_shield import rules
from safety_shield.types import (
    CONTROL_TOL,
    HEDGE_SCALE_RANGE,
    HEDGE_WEIGHT_RANGE,
    N_RULES,
    RPRICE_OFFSET_RANGE,
    RULE_BASIS_LIMIT,
    RULE_CONTROLS_RANGE,
    RULE_DAILY_LOSS,
    RULE_DELTA_LIMIT,
    RULE_HARD_LIMIT_QUOTES,
    RULE_IOC_CAPS,
    RULE_KILL_SWITCH,
    RULE_LIQUIDATION,
    RULE_NON_FINITE,
    RULE_ORDER_SIZE,
    RULE_PASSIVITY,
    RULE_VENUE_HEALTH,
    SIZE_SCALE_RANGE,
    SPREAD_SCALE_RANGE,
    SUBNORMAL_FLOOR,
    WEIGHT_SUM_TOL,
    OrderLayout,
    ShieldFacts,
    ShieldOrders,
    ShieldRecord,
    order_layout,
)

# (rule index, rule function) in application order; order_size runs again at the end to put
# sizes cut by the limit budgets back on the lot/step grid.
PIPELINE = (
    (RULE_NON_FINITE, rules.rule_non_finite),
    (RULE_KILL_SWITCH, rules.rule_kill_switch),
    (RULE_HARD_LIMIT_QUOTES, rules.rule_hard_limit_quotes),
    (RULE_VENUE_HEALTH, rules.rule_venue_health),
    (RULE_PASSIVITY, rules.rule_passivity),
    (RULE_ORDER_SIZE, rules.rule_order_size),
    (RULE_IOC_CAPS, rules.rule_ioc_caps),
    (RULE_LIQUIDATION, rules.rule_liquidation),
    (RULE_DELTA_LIMIT, rules.rule_delta_limit),
    (RULE_BASIS_LIMIT, rules.rule_basis_limit),
    (RULE_DAILY_LOSS, rules.rule_daily_loss),
    (RULE_ORDER_SIZE, rules.rule_order_size),
)


def _f(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def facts_from_state(state: StrategyState, view: Any, cfg: StrategyConfig) -> ShieldFacts:
    """Facts for one environment from a NumPy `StrategyState` and a `MarketView`.

    The strategy's own view (state) gives regime, kill, exposures, limits, venue health,
    positions and mids; the true book (`view.bid/ask/outage`) gives what execution checks
    maker orders against. `now` is `view.now_ms`.
    """
    v = state.venues
    now = np.int64(np.asarray(view.now_ms))
    has_upd = np.asarray(v.has_mid_update, bool)
    age = np.where(has_upd, now - np.asarray(v.last_mid_update_ms, np.int64), -1)
    fair = np.where(
        np.asarray(state.has_fair_value, bool), _f(state.fair_value), _f(state.fair_value_prev)
    )
    return ShieldFacts(
        now_ms=now,
        kill_switch=np.bool_(np.asarray(state.kill_switch)),
        risk_regime=np.int64(np.asarray(state.risk_regime)),
        q_global_tao=_f(state.q_global_tao),
        dollar_delta_usd=_f(state.dollar_delta_usd),
        basis_usd=_f(state.basis_usd),
        daily_pnl_total=_f(state.daily_pnl_total),
        delta_limit_usd=_f(state.delta_limit_usd),
        basis_limit_hard_usd=_f(state.basis_limit_hard_usd),
        fair_value=_f(fair),
        status=np.asarray(v.status, np.int64),
        dev_disabled=np.asarray(v.dev_disabled, bool),
        toxicity=_f(v.toxicity),
        mid_age_ms=age.astype(np.int64),
        position_tao=_f(v.position_tao),
        dist_liq_sigma=_f(v.dist_liq_sigma),
        mid=_f(v.mid),
        has_mid=np.asarray(v.has_mid, bool),
        mm_has=np.asarray(v.mm_has, bool),
        book_bid=_f(view.bid),
        book_ask=_f(view.ask),
        outage=np.asarray(view.outage, bool),
    )


def flatten_actions(out: TickOutput, layout: OrderLayout) -> ShieldOrders:
    """The flat `[K]` order list of one environment's `TickOutput` (layout in types.py).

    Entries that are not valid get size = price = 0; the side of every IOC entry is its plan's
    scalar side, MM entries are +1 (bid/buy) and −1 (ask/sell).
    """
    n = layout.n
    q, o = out.quotes, out.orders

    def ioc(plan: Any) -> tuple[np.ndarray, ...]:
        side = np.broadcast_to(np.asarray(plan.side, np.int64), (n,))
        return np.asarray(plan.valid, bool), side, _f(plan.size), _f(plan.price)

    mm_side = np.tile(np.array([1, -1], np.int64), n)
    parts = [
        ioc(out.kill_exit),
        ioc(out.exits),
        ioc(out.hedge),
        (
            np.asarray(o.place, bool).reshape(-1),
            mm_side,
            _f(o.place_size).reshape(-1),
            _f(o.place_px).reshape(-1),
        ),
        (
            np.stack([np.asarray(q.bid_valid, bool), np.asarray(q.ask_valid, bool)], 1).reshape(-1),
            mm_side,
            np.stack([_f(q.bid_size), _f(q.ask_size)], 1).reshape(-1),
            np.stack([_f(q.bid_px), _f(q.ask_px)], 1).reshape(-1),
        ),
    ]
    valid = np.concatenate([p[0] for p in parts])
    side = np.concatenate([p[1] for p in parts])
    with np.errstate(invalid="ignore"):
        size = np.where(valid, np.concatenate([p[2] for p in parts]), 0.0)
        price = np.where(valid, np.concatenate([p[3] for p in parts]), 0.0)
    return ShieldOrders(valid=valid, side=side, size=size, price=price)


def unflatten_actions(
    out: TickOutput, orders: ShieldOrders, facts: ShieldFacts, layout: OrderLayout
) -> tuple[TickOutput, np.ndarray]:
    """Write the shielded flat list back into `out`.

    Dropped entries get valid = False and size = price = 0; a dropped place also cancels its
    slot, and while the kill switch is latched every slot holding an order is cancelled.
    Returns `(TickOutput, forced [N, 2] bool)` — cancels the kill rule added.
    """
    n = layout.n
    sl = {k: slice(k * n, (k + 1) * n) for k in range(3)}

    def plan(p: Any, s: slice) -> Any:
        val = orders.valid[s]
        return p.replace(
            valid=val,
            size=orders.size[s],
            price=orders.price[s],
            order=np.where(val, np.asarray(p.order), n).astype(np.asarray(p.order).dtype),
        )

    def plan_h(p: Any, s: slice) -> Any:
        return p.replace(valid=orders.valid[s], size=orders.size[s], price=orders.price[s])

    pl = slice(3 * n, 5 * n)
    qs = slice(5 * n, 7 * n)
    place = orders.valid[pl].reshape(n, 2)
    dropped_place = np.asarray(out.orders.place, bool) & ~place
    cancel_in = np.asarray(out.orders.cancel, bool)
    kill_cancel = bool(facts.kill_switch) & facts.mm_has
    forced = kill_cancel & ~cancel_in & ~dropped_place
    orders_out = out.orders.replace(
        cancel=cancel_in | dropped_place | kill_cancel,
        place=place,
        place_px=orders.price[pl].reshape(n, 2),
        place_size=orders.size[pl].reshape(n, 2),
    )
    ids = np.asarray(out.order_ids)
    qv = orders.valid[qs].reshape(n, 2)
    qsz = orders.size[qs].reshape(n, 2)
    qpx = orders.price[qs].reshape(n, 2)
    quotes = out.quotes.replace(
        bid_valid=qv[:, 0],
        ask_valid=qv[:, 1],
        bid_size=qsz[:, 0],
        ask_size=qsz[:, 1],
        bid_px=qpx[:, 0],
        ask_px=qpx[:, 1],
    )
    new = out.replace(
        quotes=quotes,
        orders=orders_out,
        order_ids=np.where(place, ids, -1).astype(ids.dtype),
        kill_exit=plan(out.kill_exit, sl[0]),
        exits=plan(out.exits, sl[1]),
        hedge=plan_h(out.hedge, sl[2]),
    )
    return new, forced


def changed_mask(before: ShieldOrders, after: ShieldOrders) -> np.ndarray:
    """[K] bool: orders a rule dropped or whose size/price it changed."""
    dropped = before.valid & ~after.valid
    edited = after.valid & ((after.size != before.size) | (after.price != before.price))
    return dropped | edited


def shield_orders(
    facts: ShieldFacts, orders: ShieldOrders, layout: OrderLayout, cfg: StrategyConfig
) -> tuple[ShieldOrders, ShieldRecord]:
    """Run :data:`PIPELINE` on one flat order list; count and locate every change per rule."""
    n = layout.n
    counts = np.zeros(N_RULES, np.int32)
    mask = np.zeros((N_RULES, n), bool)
    onehot = layout.venue[:, None] == np.arange(n)[None, :]  # [K, N]
    for r, fn in PIPELINE:
        new = fn(facts, orders, layout, cfg)
        ch = changed_mask(orders, new)
        counts[r] += np.int32(ch.sum())
        mask[r] |= np.any(ch[:, None] & onehot, axis=0)
        orders = new
    return orders, ShieldRecord(interventions=counts, venue_mask=mask)


def _shield_one(
    state: StrategyState, out: TickOutput, view: Any, cfg: StrategyConfig
) -> tuple[TickOutput, ShieldRecord]:
    layout = order_layout(cfg.n_venues)
    facts = facts_from_state(state, view, cfg)
    orders, rec = shield_orders(facts, flatten_actions(out, layout), layout, cfg)
    new, forced = unflatten_actions(out, orders, facts, layout)
    counts = rec.interventions.copy()
    mask = rec.venue_mask.copy()
    counts[RULE_KILL_SWITCH] += np.int32(forced.sum())
    mask[RULE_KILL_SWITCH] |= forced.any(axis=1)
    return new, ShieldRecord(interventions=counts, venue_mask=mask)


def shield_actions(
    state: StrategyState, out: TickOutput, view: Any, cfg: StrategyConfig
) -> tuple[TickOutput, ShieldRecord]:
    """The whole shield on NumPy pytrees: one environment, or a batch with a leading `[B]`.

    Returns the allowed actions (same `TickOutput` structure) and the record
    (`interventions [R]` or `[B, R]`, `venue_mask [R, N]` or `[B, R, N]`).
    """
    if np.ndim(np.asarray(state.kill_switch)) == 0:
        return _shield_one(state, out, view, cfg)
    b = np.asarray(state.kill_switch).shape[0]
    res = [
        _shield_one(
            *(jax.tree.map(lambda x, i=i: np.asarray(x)[i], t) for t in (state, out, view)), cfg
        )
        for i in range(b)
    ]
    return (
        jax.tree.map(lambda *xs: np.stack(xs), *[r[0] for r in res]),
        jax.tree.map(lambda *xs: np.stack(xs), *[r[1] for r in res]),
    )


def reference_shield(
    state: StrategyState, out: TickOutput, view: Any, cfg: StrategyConfig
) -> tuple[TickOutput, np.ndarray]:
    """Episode hook (NumPy): `(allowed actions, interventions per rule [R] int32)`."""
    new, rec = shield_actions(state, out, view, cfg)
    return new, rec.interventions


# ---------------------------------------------------------------------------------------------
# Control surface (SIMULATION §6.6)
# ---------------------------------------------------------------------------------------------


def _clamp(x: np.ndarray, lo: float, hi: float, default: float) -> tuple[np.ndarray, np.ndarray]:
    """Non-finite ⇒ default; out of range ⇒ clamped. Returns (value, changed beyond 1e-12)."""
    x = _f(x)
    x = np.where(np.abs(x) < SUBNORMAL_FLOOR, 0.0, x)  # XLA flushes subnormals to zero
    fin = np.isfinite(x)
    y = np.where(fin, np.clip(np.where(fin, x, default), lo, hi), default)
    with np.errstate(invalid="ignore"):
        changed = ~fin | (np.abs(y - x) > CONTROL_TOL)
    return y, changed


def clip_controls(controls: Controls, n: int) -> tuple[Controls, ShieldRecord]:
    """The control-surface rule: every value inside its encoded range (SIMULATION §6.6).

    Non-finite entries take the identity default (1, 1, 0; 1; 1/N), out-of-range entries are
    clamped; hedge weights are clamped to [0, 1], then a non-finite or non-positive sum gives
    uniform 1/N and a sum off 1 by more than 1e-6 is divided out. The record counts entries
    changed by more than 1e-12 under `controls_range`; the venue mask marks venues with a
    changed per-venue entry (hedge_scale, a global value, is counted but marks no venue).
    """
    sp, c1 = _clamp(controls.spread_scale, *SPREAD_SCALE_RANGE, 1.0)
    sz, c2 = _clamp(controls.size_scale, *SIZE_SCALE_RANGE, 1.0)
    ro, c3 = _clamp(controls.rprice_offset_usd, *RPRICE_OFFSET_RANGE, 0.0)
    hs, c4 = _clamp(controls.hedge_scale, *HEDGE_SCALE_RANGE, 1.0)
    w_in = _f(controls.hedge_venue_weights)
    w, _ = _clamp(w_in, *HEDGE_WEIGHT_RANGE, 1.0 / n)
    total = w[0]
    for x in w[1:]:
        total = total + x  # sequential, as the twin
    if not (np.isfinite(total) and total > 0.0):
        w = np.full(n, 1.0 / n)
    elif abs(total - 1.0) > WEIGHT_SUM_TOL:
        w = w * (1.0 / total)  # reciprocal first: the twin's XLA computes it so
    with np.errstate(invalid="ignore"):
        c5 = ~np.isfinite(w_in) | (np.abs(w - w_in) > CONTROL_TOL)
    per_venue = c1 | c2 | c3 | c5
    counts = np.zeros(N_RULES, np.int32)
    counts[RULE_CONTROLS_RANGE] = np.int32(
        c1.sum() + c2.sum() + c3.sum() + c5.sum() + int(np.any(c4))
    )
    mask = np.zeros((N_RULES, n), bool)
    mask[RULE_CONTROLS_RANGE] = per_venue
    new = Controls(
        spread_scale=sp,
        size_scale=sz,
        rprice_offset_usd=ro,
        hedge_scale=np.float64(hs),
        hedge_venue_weights=w,
    )
    return new, ShieldRecord(interventions=counts, venue_mask=mask)


__all__ = [
    "PIPELINE",
    "changed_mask",
    "clip_controls",
    "facts_from_state",
    "flatten_actions",
    "reference_shield",
    "shield_actions",
    "shield_orders",
    "unflatten_actions",
]
