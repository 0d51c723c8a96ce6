"""The shield's JAX twin: the same rules, operations and order as :mod:`safety_shield.reference`.

Pure functions on ONE environment (callers `jax.vmap`); every branch on a traced value is a
`jnp.where`, the limit budgets' running totals are a product with a static 0/1 matrix over the
flat layout, so the program has fixed shapes and no host round trips. In float64 the twin takes
exactly the reference's decisions (masks and counts equal) and the same sizes bit for bit
(tests/test_shield_properties.py, tests/test_shield_rules.py, experiments/bench/shield_fuzz.py).

* :func:`shield_hook` — the episode's `shield_fn(state, out, view, cfg) -> (out, counts [R])`;
* :func:`shield_actions` — the same with the full :class:`~safety_shield.types.ShieldRecord`;
* :func:`shield_orders` — the rule pipeline on a flat order list (what the fuzz bench drives);
* :func:`clip_controls` — the control-surface rule, applied to a policy's output before the tick;
* :func:`shielded_controls_fn` — wraps an episode `controls_fn` with :func:`clip_controls`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np

from paraphina_jax.config.types import (
    REGIME_NORMAL,
    REGIME_WARNING,
    STATUS_HEALTHY,
    STATUS_WARNING,
    StrategyConfig,
)
from paraphina_jax.strategy.types import Controls, StrategyState, TickOutput
from safety_shield.types import (
    CONTROL_TOL,
    HEDGE_SCALE_RANGE,
    HEDGE_WEIGHT_RANGE,
    IOC_STEP_FLOOR,
    KIND_EXIT,
    KIND_HEDGE,
    KIND_KILL_EXIT,
    KIND_PLACE,
    KIND_QUOTE,
    MM_LOT_FLOOR,
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
    tolerances,
)

Array = Any

# ---------------------------------------------------------------------------------------------
# Helpers (mirror safety_shield.rules)
# ---------------------------------------------------------------------------------------------


def drop(orders: ShieldOrders, mask: Array) -> ShieldOrders:
    """Turn off the orders in `mask` ([K] bool); dropped entries get size = price = 0."""
    valid = orders.valid & ~mask
    zero = jnp.zeros((), orders.size.dtype)
    return ShieldOrders(
        valid=valid,
        side=orders.side,
        size=jnp.where(valid, orders.size, zero),
        price=jnp.where(valid, orders.price, zero),
    )


def with_sizes(orders: ShieldOrders, size: Array) -> ShieldOrders:
    """Replace the sizes of the valid orders; an order whose size became ≤ 0 is dropped."""
    size = jnp.where(orders.valid, size, orders.size)
    return drop(ShieldOrders(orders.valid, orders.side, size, orders.price), ~(size > 0.0))


def _is_mm(layout: OrderLayout) -> np.ndarray:
    return (layout.kind == KIND_PLACE) | (layout.kind == KIND_QUOTE)


def _venue_stale_ms(cfg: StrategyConfig) -> Array:
    ov = jnp.asarray(cfg.venues.stale_override_ms)
    return jnp.where(ov >= 0, ov, jnp.asarray(cfg.book.book_stale_ms, ov.dtype))


def venue_blocked(facts: ShieldFacts, cfg: StrategyConfig) -> Array:
    """[N] bool: disabled / deviation-disabled / toxic / stale / out venues."""
    status_ok = (facts.status == STATUS_HEALTHY) | (facts.status == STATUS_WARNING)
    toxic = ~(facts.toxicity < cfg.toxicity.tox_high_threshold)
    age = facts.mid_age_ms
    stale = (age < 0) | (age > _venue_stale_ms(cfg).astype(age.dtype))
    return ~status_ok | facts.dev_disabled | toxic | stale | facts.outage


def per_order(x: Array, layout: OrderLayout) -> Array:
    """`x[layout.venue]` for a per-venue `[N]` array, as concatenated copies (the standard
    layout: 3 blocks venue by venue, 2 blocks with each venue twice), not a gather."""
    rep = jnp.repeat(x, 2, total_repeat_length=2 * layout.n)
    return jnp.concatenate([x, x, x, rep, rep])


def _gather(x: Any, layout: OrderLayout, fdt: Any) -> Array:
    """`[K]` per-order value of a per-venue config leaf (traced inside the episode)."""
    return per_order(jnp.asarray(x).astype(fdt), layout)


def clean_budget(budget: Array, fdt: Any) -> Array:
    """A budget as used by :func:`budget_pass`: non-negative, NaN ⇒ 0."""
    return jnp.fmax(jnp.asarray(budget, fdt), 0.0)


def on_grid(s: Array, step: Array, eps: float) -> Array:
    """Floor to the lot/step grid, keeping sizes already within `eps·step` of a grid point."""
    g = jnp.floor(s / step + eps) * step
    return jnp.where(jnp.abs(s - g) <= eps * step, s, g)


def budget_pass(
    orders: ShieldOrders,
    subject: Array,
    unit: Array,
    group: np.ndarray,
    budgets: list[Array],
    step: Array,
) -> ShieldOrders:
    """Greedy budget in layout order (see `safety_shield.rules.budget_pass`).

    Args:
      subject: [K] bool orders charged to a budget (traced).
      unit: [K] f budget use per TAO.
      group: [K] static budget index of each order.
      budgets: one `[]` budget per group (:func:`clean_budget`).
      step: [K] lot/step grid of each order (a cut is floored to it).
    """
    fdt = orders.size.dtype
    k_n = group.shape[0]
    # excl[k] = Σ need[j] over earlier slots j < k of the same group: one product with a static
    # [K, K] 0/1 matrix (a GEMM once vmapped; cheaper on CPU than a cumsum + gather)
    earlier = (np.arange(k_n)[None, :] < np.arange(k_n)[:, None]) & (
        group[None, :] == group[:, None]
    )
    need = jnp.where(subject, unit * orders.size, 0.0)
    excl = jnp.dot(jnp.asarray(earlier, fdt), need, precision="highest")
    b = jnp.stack(budgets)[group]
    rem = jnp.fmax(b - excl, 0.0)
    fits = need <= rem + tolerances(fdt)[1] * jnp.fmax(b, 1.0)
    cut = jnp.floor(rem / jnp.where(unit > 0, unit, 1.0) / step + tolerances(fdt)[0]) * step
    return with_sizes(orders, jnp.where(subject & ~fits, cut, orders.size))


# ---------------------------------------------------------------------------------------------
# Rules (mirror safety_shield.rules, same names)
# ---------------------------------------------------------------------------------------------


def rule_non_finite(facts: ShieldFacts, o: ShieldOrders, layout: OrderLayout, cfg: Any) -> Any:
    """Non-finite price/size or a side code other than ±1 ⇒ dropped."""
    bad = ~jnp.isfinite(o.size) | ~jnp.isfinite(o.price) | ((o.side != 1) & (o.side != -1))
    return drop(o, o.valid & bad)


def rule_kill_switch(facts: ShieldFacts, o: ShieldOrders, layout: OrderLayout, cfg: Any) -> Any:
    """Kill ⇒ nothing new; one bounded reduce-only kill exit if enabled."""
    ke = jnp.asarray(layout.kind == KIND_KILL_EXIT)
    killed = facts.kill_switch
    out = drop(o, o.valid & jnp.where(killed, ~ke, ke))
    q = per_order(facts.position_tao, layout)
    allowed = out.valid & ke & (out.side * q < 0.0) & bool(cfg.flags.kill_best_effort) & killed
    first = allowed & (jnp.cumsum(allowed.astype(jnp.int32)) == 1)
    out = drop(out, out.valid & ke & ~first)
    size = jnp.where(first, jnp.fmin(out.size, jnp.abs(q)), out.size)
    return drop(ShieldOrders(out.valid, out.side, size, out.price), first & ~(size > 0.0))


def rule_hard_limit_quotes(
    facts: ShieldFacts, o: ShieldOrders, layout: OrderLayout, cfg: Any
) -> Any:
    """HardLimit (or an unknown regime) ⇒ no quotes, no places."""
    regime_ok = (facts.risk_regime == REGIME_NORMAL) | (facts.risk_regime == REGIME_WARNING)
    return drop(o, o.valid & jnp.asarray(_is_mm(layout)) & ~regime_ok)


def rule_venue_health(facts: ShieldFacts, o: ShieldOrders, layout: OrderLayout, cfg: Any) -> Any:
    """Nothing new on a disabled / stale / toxic / out venue."""
    blocked = per_order(venue_blocked(facts, cfg), layout)
    return drop(o, o.valid & blocked)


def rule_passivity(facts: ShieldFacts, o: ShieldOrders, layout: OrderLayout, cfg: Any) -> Any:
    """Maker orders never cross the true book (buy < ask, sell > bid)."""
    ask = per_order(facts.book_ask, layout)
    bid = per_order(facts.book_bid, layout)
    buy = jnp.asarray(layout.mm_side == 0)
    passive = jnp.where(
        buy, jnp.isfinite(ask) & (o.price < ask), jnp.isfinite(bid) & (o.price > bid)
    )
    return drop(o, o.valid & jnp.asarray(_is_mm(layout)) & ~passive)


def _steps(layout: OrderLayout, cfg: StrategyConfig, fdt: Any) -> tuple[Array, Array]:
    lot_j = _gather(cfg.venues.lot_size, layout, fdt)
    stp = _gather(cfg.venues.size_step, layout, fdt)
    mm_step = jnp.fmax(lot_j, MM_LOT_FLOOR)
    ioc_step = jnp.fmax(jnp.fmax(stp, lot_j), IOC_STEP_FLOOR)
    return lot_j, jnp.where(jnp.asarray(_is_mm(layout)), mm_step, ioc_step)


def rule_order_size(facts: ShieldFacts, o: ShieldOrders, layout: OrderLayout, cfg: Any) -> Any:
    """≤ max order size, on the lot/step grid, ≥ lot, price > 0, ≥ min notional."""
    fdt = o.size.dtype
    mx = _gather(cfg.venues.max_order_size, layout, fdt)
    mn = _gather(cfg.venues.min_notional_usd, layout, fdt)
    lot, step = _steps(layout, cfg, fdt)
    s = jnp.fmin(o.size, mx)
    s = on_grid(s, step, tolerances(fdt)[0])
    ok = (s >= lot) & (s > 0.0) & (o.price > 0.0) & (s * o.price >= mn)
    out = ShieldOrders(o.valid, o.side, jnp.where(o.valid, s, 0.0), o.price)
    return drop(out, out.valid & ~ok)


def rule_ioc_caps(facts: ShieldFacts, o: ShieldOrders, layout: OrderLayout, cfg: Any) -> Any:
    """Exit and hedge per-venue and per-tick caps."""
    fdt = o.size.dtype
    ex = layout.kind == KIND_EXIT
    hd = layout.kind == KIND_HEDGE
    inf = jnp.asarray(jnp.inf, fdt)
    per_venue = jnp.where(
        jnp.asarray(ex),
        jnp.asarray(cfg.exit.max_venue_tao_per_tick, fdt),
        jnp.where(jnp.asarray(hd), jnp.asarray(cfg.hedge.max_venue_tao_per_tick, fdt), inf),
    )
    out = with_sizes(o, jnp.fmin(o.size, per_venue))
    budgets = [
        clean_budget(cfg.exit.max_total_tao_per_tick, fdt),
        clean_budget(cfg.hedge.max_step, fdt),
    ]
    group = np.where(hd, 1, 0)
    ones = jnp.ones(o.size.shape, fdt)
    subject = out.valid & jnp.asarray(ex | hd)
    return budget_pass(out, subject, ones, group, budgets, _steps(layout, cfg, fdt)[1])


def rule_liquidation(facts: ShieldFacts, o: ShieldOrders, layout: OrderLayout, cfg: Any) -> Any:
    """dist_liq ≤ LIQ_CRIT ⇒ only reductions of that venue's position, ≤ |q_v|."""
    fdt = o.size.dtype
    crit_v = ~(facts.dist_liq_sigma > cfg.risk.liq_crit_sigma)
    crit = per_order(crit_v, layout)
    q = per_order(facts.position_tao, layout)
    out = drop(o, o.valid & crit & ~(o.side * q < 0.0))
    budgets = [clean_budget(jnp.abs(facts.position_tao[v]), fdt) for v in range(layout.n)]
    subject = out.valid & crit & jnp.asarray(layout.budgeted)
    ones = jnp.ones(o.size.shape, fdt)
    return budget_pass(out, subject, ones, layout.venue, budgets, _steps(layout, cfg, fdt)[1])


def _global_budget(
    o: ShieldOrders, layout: OrderLayout, cfg: Any, unit: Array, budget: Array
) -> Any:
    k = o.size.shape[0]
    subject = o.valid & jnp.asarray(layout.budgeted)
    step = _steps(layout, cfg, o.size.dtype)[1]
    return budget_pass(o, subject, unit, np.zeros(k, np.int64), [budget], step)


def rule_delta_limit(facts: ShieldFacts, o: ShieldOrders, layout: OrderLayout, cfg: Any) -> Any:
    """|Δ$| ≥ L_delta ⇒ nothing adding to the delta; reductions ≤ the position."""
    fdt = o.size.dtype
    dd = facts.dollar_delta_usd
    breach = ~(jnp.abs(dd) < facts.delta_limit_usd)
    d = jnp.where(dd < 0, -1.0, 1.0).astype(fdt)
    out = drop(o, o.valid & ~(o.side * d < 0.0))
    budget = clean_budget(d * facts.q_global_tao, fdt)
    out = _global_budget(out, layout, cfg, jnp.ones(o.size.shape, fdt), budget)
    return _select(breach, out, o)


def basis_per_venue(facts: ShieldFacts) -> Array:
    """[N] b_v = (m_v if present else S) − S."""
    s = facts.fair_value
    return jnp.where(facts.has_mid, facts.mid, s) - s


def rule_basis_limit(facts: ShieldFacts, o: ShieldOrders, layout: OrderLayout, cfg: Any) -> Any:
    """|B| ≥ B_hard ⇒ nothing growing |B|; reductions move B by ≤ |B|."""
    fdt = o.size.dtype
    bb = facts.basis_usd
    breach = ~(jnp.abs(bb) < facts.basis_limit_hard_usd)
    d = jnp.where(bb < 0, -1.0, 1.0).astype(fdt)
    b = per_order(basis_per_venue(facts), layout)
    out = drop(o, o.valid & ~(d * o.side * b <= 0.0))
    budget = clean_budget(jnp.abs(bb), fdt)
    out = _global_budget(out, layout, cfg, jnp.abs(b), budget)
    return _select(breach, out, o)


def rule_daily_loss(facts: ShieldFacts, o: ShieldOrders, layout: OrderLayout, cfg: Any) -> Any:
    """Loss limit hit ⇒ only orders reducing |q_t|, together ≤ |q_t|."""
    fdt = o.size.dtype
    loss_lim = -abs(cfg.risk.daily_loss_limit)
    breach = ~(facts.daily_pnl_total > loss_lim)
    qt = facts.q_global_tao
    out = drop(o, o.valid & ~(o.side * qt < 0.0))
    budget = clean_budget(jnp.abs(qt), fdt)
    out = _global_budget(out, layout, cfg, jnp.ones(o.size.shape, fdt), budget)
    return _select(breach, out, o)


def _select(c: Array, a: ShieldOrders, b: ShieldOrders) -> ShieldOrders:
    return ShieldOrders(
        valid=jnp.where(c, a.valid, b.valid),
        side=b.side,
        size=jnp.where(c, a.size, b.size),
        price=jnp.where(c, a.price, b.price),
    )


PIPELINE: tuple[tuple[int, Callable[..., ShieldOrders]], ...] = (
    (RULE_NON_FINITE, rule_non_finite),
    (RULE_KILL_SWITCH, rule_kill_switch),
    (RULE_HARD_LIMIT_QUOTES, rule_hard_limit_quotes),
    (RULE_VENUE_HEALTH, rule_venue_health),
    (RULE_PASSIVITY, rule_passivity),
    (RULE_ORDER_SIZE, rule_order_size),
    (RULE_IOC_CAPS, rule_ioc_caps),
    (RULE_LIQUIDATION, rule_liquidation),
    (RULE_DELTA_LIMIT, rule_delta_limit),
    (RULE_BASIS_LIMIT, rule_basis_limit),
    (RULE_DAILY_LOSS, rule_daily_loss),
    (RULE_ORDER_SIZE, rule_order_size),
)


# ---------------------------------------------------------------------------------------------
# TickOutput <-> flat orders, the pipeline, the hook
# ---------------------------------------------------------------------------------------------


def facts_from_state(state: StrategyState, view: Any, cfg: StrategyConfig) -> ShieldFacts:
    """Facts for one environment (mirror of the reference; `now` = `view.now_ms`)."""
    v = state.venues
    fdt = v.mid.dtype
    now = jnp.asarray(view.now_ms, v.last_mid_update_ms.dtype)
    age = jnp.where(v.has_mid_update, now - v.last_mid_update_ms, -1)
    fair = jnp.where(state.has_fair_value, state.fair_value, state.fair_value_prev)
    return ShieldFacts(
        now_ms=now,
        kill_switch=jnp.asarray(state.kill_switch, bool),
        risk_regime=state.risk_regime,
        q_global_tao=state.q_global_tao.astype(fdt),
        dollar_delta_usd=state.dollar_delta_usd.astype(fdt),
        basis_usd=state.basis_usd.astype(fdt),
        daily_pnl_total=state.daily_pnl_total.astype(fdt),
        delta_limit_usd=state.delta_limit_usd.astype(fdt),
        basis_limit_hard_usd=state.basis_limit_hard_usd.astype(fdt),
        fair_value=fair.astype(fdt),
        status=v.status,
        dev_disabled=v.dev_disabled,
        toxicity=v.toxicity.astype(fdt),
        mid_age_ms=age,
        position_tao=v.position_tao.astype(fdt),
        dist_liq_sigma=v.dist_liq_sigma.astype(fdt),
        mid=v.mid.astype(fdt),
        has_mid=v.has_mid,
        mm_has=v.mm_has,
        book_bid=jnp.asarray(view.bid).astype(fdt),
        book_ask=jnp.asarray(view.ask).astype(fdt),
        outage=jnp.asarray(view.outage, bool),
    )


def flatten_actions(out: TickOutput, layout: OrderLayout, fdt: Any) -> ShieldOrders:
    """The flat `[K]` order list of one environment's `TickOutput` (layout in types.py)."""
    n = layout.n
    q, o = out.quotes, out.orders

    def ioc(plan: Any) -> tuple[Array, ...]:
        side = jnp.broadcast_to(jnp.asarray(plan.side, jnp.int32), (n,))
        return plan.valid, side, plan.size.astype(fdt), plan.price.astype(fdt)

    mm_side = jnp.asarray(np.tile(np.array([1, -1], np.int32), n))
    parts = [
        ioc(out.kill_exit),
        ioc(out.exits),
        ioc(out.hedge),
        (
            o.place.reshape(-1),
            mm_side,
            o.place_size.astype(fdt).reshape(-1),
            o.place_px.astype(fdt).reshape(-1),
        ),
        (
            jnp.stack([q.bid_valid, q.ask_valid], 1).reshape(-1),
            mm_side,
            jnp.stack([q.bid_size, q.ask_size], 1).astype(fdt).reshape(-1),
            jnp.stack([q.bid_px, q.ask_px], 1).astype(fdt).reshape(-1),
        ),
    ]
    valid = jnp.concatenate([p[0] for p in parts])
    zero = jnp.zeros((), fdt)
    return ShieldOrders(
        valid=valid,
        side=jnp.concatenate([p[1] for p in parts]),
        size=jnp.where(valid, jnp.concatenate([p[2] for p in parts]), zero),
        price=jnp.where(valid, jnp.concatenate([p[3] for p in parts]), zero),
    )


def unflatten_actions(
    out: TickOutput, orders: ShieldOrders, facts: ShieldFacts, layout: OrderLayout
) -> tuple[TickOutput, Array]:
    """Write the shielded flat list back into `out` (mirror of the reference).

    Returns `(TickOutput, forced [N, 2] bool)` — cancels the kill rule added.
    """
    n = layout.n

    def cast(x: Array, like: Array) -> Array:
        return x.astype(like.dtype)

    def plan(p: Any, k: int, with_order: bool) -> Any:
        s = slice(k * n, (k + 1) * n)
        val = orders.valid[s]
        new = p.replace(
            valid=val, size=cast(orders.size[s], p.size), price=cast(orders.price[s], p.price)
        )
        if with_order:
            new = new.replace(order=jnp.where(val, p.order, n).astype(p.order.dtype))
        return new

    pl = slice(3 * n, 5 * n)
    qs = slice(5 * n, 7 * n)
    place = orders.valid[pl].reshape(n, 2)
    dropped_place = out.orders.place & ~place
    cancel_in = out.orders.cancel
    kill_cancel = facts.kill_switch & facts.mm_has
    forced = kill_cancel & ~cancel_in & ~dropped_place
    od = out.orders
    orders_out = od.replace(
        cancel=cancel_in | dropped_place | kill_cancel,
        place=place,
        place_px=cast(orders.price[pl].reshape(n, 2), od.place_px),
        place_size=cast(orders.size[pl].reshape(n, 2), od.place_size),
    )
    qv = orders.valid[qs].reshape(n, 2)
    qsz = orders.size[qs].reshape(n, 2)
    qpx = orders.price[qs].reshape(n, 2)
    qt = out.quotes
    quotes = qt.replace(
        bid_valid=qv[:, 0],
        ask_valid=qv[:, 1],
        bid_size=cast(qsz[:, 0], qt.bid_size),
        ask_size=cast(qsz[:, 1], qt.ask_size),
        bid_px=cast(qpx[:, 0], qt.bid_px),
        ask_px=cast(qpx[:, 1], qt.ask_px),
    )
    new = out.replace(
        quotes=quotes,
        orders=orders_out,
        order_ids=jnp.where(place, out.order_ids, -1).astype(out.order_ids.dtype),
        kill_exit=plan(out.kill_exit, 0, True),
        exits=plan(out.exits, 1, True),
        hedge=plan(out.hedge, 2, False),
    )
    return new, forced


def changed_mask(before: ShieldOrders, after: ShieldOrders) -> Array:
    """[K] bool: orders a rule dropped or whose size/price it changed."""
    dropped = before.valid & ~after.valid
    edited = after.valid & ((after.size != before.size) | (after.price != before.price))
    return dropped | edited


def shield_orders(
    facts: ShieldFacts, orders: ShieldOrders, layout: OrderLayout, cfg: StrategyConfig
) -> tuple[ShieldOrders, ShieldRecord]:
    """Run :data:`PIPELINE` on one flat order list; count and locate every change per rule."""
    n = layout.n
    onehot = jnp.asarray(layout.venue[:, None] == np.arange(n)[None, :])  # [K, N]
    counts = [jnp.zeros((), jnp.int32) for _ in range(N_RULES)]
    masks = [jnp.zeros((n,), bool) for _ in range(N_RULES)]
    for r, fn in PIPELINE:
        new = fn(facts, orders, layout, cfg)
        ch = changed_mask(orders, new)
        counts[r] = counts[r] + jnp.sum(ch, dtype=jnp.int32)
        masks[r] = masks[r] | jnp.any(ch[:, None] & onehot, axis=0)
        orders = new
    return orders, ShieldRecord(interventions=jnp.stack(counts), venue_mask=jnp.stack(masks))


def shield_actions(
    state: StrategyState, out: TickOutput, view: Any, cfg: StrategyConfig
) -> tuple[TickOutput, ShieldRecord]:
    """The whole shield on one environment: `(allowed TickOutput, ShieldRecord)`."""
    layout = order_layout(cfg.n_venues)
    fdt = state.venues.mid.dtype
    facts = facts_from_state(state, view, cfg)
    orders, rec = shield_orders(facts, flatten_actions(out, layout, fdt), layout, cfg)
    new, forced = unflatten_actions(out, orders, facts, layout)
    kill = (
        jnp.zeros((N_RULES,), jnp.int32).at[RULE_KILL_SWITCH].set(jnp.sum(forced, dtype=jnp.int32))
    )
    kmask = jnp.zeros((N_RULES, layout.n), bool).at[RULE_KILL_SWITCH].set(jnp.any(forced, axis=1))
    return new, ShieldRecord(
        interventions=rec.interventions + kill, venue_mask=rec.venue_mask | kmask
    )


def shield_hook(
    state: StrategyState, out: TickOutput, view: Any, cfg: StrategyConfig
) -> tuple[TickOutput, Array]:
    """Episode hook: `(allowed actions, interventions per rule [R] int32)`, one environment."""
    new, rec = shield_actions(state, out, view, cfg)
    return new, rec.interventions


# ---------------------------------------------------------------------------------------------
# Control surface (SIMULATION §6.6)
# ---------------------------------------------------------------------------------------------


def _clamp(x: Array, lo: float, hi: float, default: float) -> tuple[Array, Array]:
    x = jnp.where(jnp.abs(x) < SUBNORMAL_FLOOR, 0.0, x).astype(x.dtype)
    fin = jnp.isfinite(x)
    y = jnp.where(fin, jnp.clip(jnp.where(fin, x, default), lo, hi), default)
    changed = ~fin | (jnp.abs(y - x) > CONTROL_TOL)
    return y.astype(x.dtype), changed


def clip_controls(controls: Controls, n: int) -> tuple[Controls, ShieldRecord]:
    """Control-surface rule (mirror of `safety_shield.reference.clip_controls`)."""
    sp, c1 = _clamp(jnp.asarray(controls.spread_scale), *SPREAD_SCALE_RANGE, 1.0)
    sz, c2 = _clamp(jnp.asarray(controls.size_scale), *SIZE_SCALE_RANGE, 1.0)
    ro, c3 = _clamp(jnp.asarray(controls.rprice_offset_usd), *RPRICE_OFFSET_RANGE, 0.0)
    hs, c4 = _clamp(jnp.asarray(controls.hedge_scale), *HEDGE_SCALE_RANGE, 1.0)
    w_in = jnp.asarray(controls.hedge_venue_weights)
    w, _ = _clamp(w_in, *HEDGE_WEIGHT_RANGE, 1.0 / n)
    total = w[0]
    for i in range(1, n):
        total = total + w[i]  # sequential, as the reference
    uniform = jnp.full((n,), 1.0 / n, w.dtype)
    bad = ~(jnp.isfinite(total) & (total > 0.0))
    off = jnp.abs(total - 1.0) > WEIGHT_SUM_TOL
    w = jnp.where(bad, uniform, jnp.where(off, w * (1.0 / jnp.where(bad, 1.0, total)), w))
    c5 = ~jnp.isfinite(w_in) | (jnp.abs(w - w_in) > CONTROL_TOL)
    count = (
        jnp.sum(c1, dtype=jnp.int32)
        + jnp.sum(c2, dtype=jnp.int32)
        + jnp.sum(c3, dtype=jnp.int32)
        + jnp.sum(c5, dtype=jnp.int32)
        + jnp.any(c4).astype(jnp.int32)
    )
    counts = jnp.zeros((N_RULES,), jnp.int32).at[RULE_CONTROLS_RANGE].set(count)
    mask = jnp.zeros((N_RULES, n), bool).at[RULE_CONTROLS_RANGE].set(c1 | c2 | c3 | c5)
    new = Controls(
        spread_scale=sp, size_scale=sz, rprice_offset_usd=ro, hedge_scale=hs, hedge_venue_weights=w
    )
    return new, ShieldRecord(interventions=counts, venue_mask=mask)


def shielded_controls_fn(controls_fn: Callable[..., Controls], n: int) -> Callable[..., Controls]:
    """Wrap an episode `controls_fn(state, view, t) -> Controls` so every value it returns is
    clipped to the encoded ranges before the tick uses it."""

    def wrapped(state: Any, view: Any, t: Any) -> Controls:
        return clip_controls(controls_fn(state, view, t), n)[0]

    return wrapped
