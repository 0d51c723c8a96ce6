"""The shield's rules, one NumPy float64 function per invariant (STRATEGY.md §11–§16).

Every rule maps `(facts, orders, layout, cfg) -> orders` on ONE environment's flat order list
(:mod:`safety_shield.types`); it only ever drops orders (valid → False, size = price = 0) or
lowers sizes, so applying rules in sequence can never undo an earlier rule's guarantee. The
JAX twin (:mod:`safety_shield.twin`) performs the same operations in the same order.

Limit rules share one helper, :func:`budget_pass`: orders that would increase a breached
exposure are dropped, and the remaining ones (those marked `budgeted` in the layout) may reduce
it by at most the exposure itself — taken greedily in the layout's priority order — so that no
combination of fills can overshoot and grow the exposure on the other side.
"""

from __future__ import annotations

import numpy as np

from paraphina_jax.config.types import (
    REGIME_NORMAL,
    REGIME_WARNING,
    STATUS_HEALTHY,
    STATUS_WARNING,
    StrategyConfig,
)
from safety_shield.types import (
    BUDGET_RTOL,
    GRID_EPS,
    IOC_STEP_FLOOR,
    KIND_EXIT,
    KIND_HEDGE,
    KIND_KILL_EXIT,
    KIND_PLACE,
    KIND_QUOTE,
    MM_LOT_FLOOR,
    OrderLayout,
    ShieldFacts,
    ShieldOrders,
)

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def drop(orders: ShieldOrders, mask: np.ndarray) -> ShieldOrders:
    """Turn off the orders in `mask` ([K] bool); dropped entries get size = price = 0."""
    valid = orders.valid & ~mask
    return ShieldOrders(
        valid=valid,
        side=orders.side,
        size=np.where(valid, orders.size, 0.0),
        price=np.where(valid, orders.price, 0.0),
    )


def with_sizes(orders: ShieldOrders, size: np.ndarray) -> ShieldOrders:
    """Replace the sizes of the valid orders; an order whose size became ≤ 0 is dropped."""
    size = np.where(orders.valid, size, orders.size)
    return drop(ShieldOrders(orders.valid, orders.side, size, orders.price), ~(size > 0.0))


def is_mm(layout: OrderLayout) -> np.ndarray:
    """[K] bool: maker orders (places and quotes)."""
    return (layout.kind == KIND_PLACE) | (layout.kind == KIND_QUOTE)


def venue_stale_ms(cfg: StrategyConfig) -> np.ndarray:
    """[N] effective stale threshold `stale_ms_v` (§1: override if set, else BOOK_STALE_MS)."""
    ov = np.asarray(cfg.venues.stale_override_ms, dtype=np.int64)
    return np.where(ov >= 0, ov, np.int64(cfg.book.book_stale_ms))


def venue_blocked(facts: ShieldFacts, cfg: StrategyConfig) -> np.ndarray:
    """[N] bool: venues where nothing new may be sent (§11.2, §14.2, §15.2, §16.6).

    Disabled (or any status other than Healthy/Warning), deviation-disabled, toxic
    (tox ≥ TOX_HIGH, NaN counts as toxic), stale (no mid update ever, or older than the
    venue's stale_ms) or out this tick (true book).
    """
    status_ok = (facts.status == STATUS_HEALTHY) | (facts.status == STATUS_WARNING)
    toxic = ~(facts.toxicity < cfg.toxicity.tox_high_threshold)
    age = facts.mid_age_ms
    stale = (age < 0) | (age > venue_stale_ms(cfg))
    return ~status_ok | facts.dev_disabled | toxic | stale | facts.outage


def order_steps(layout: OrderLayout, cfg: StrategyConfig) -> tuple[np.ndarray, np.ndarray]:
    """`(lot [K], step [K])`: MM sizes use the lot (§12 step 11, floored at 1e-9), IOC sizes
    `max(size_step, lot, 1e-12)` (§14.2, §15.3)."""
    lot = np.asarray(cfg.venues.lot_size, np.float64)[layout.venue]
    stp = np.asarray(cfg.venues.size_step, np.float64)[layout.venue]
    mm_step = np.fmax(lot, MM_LOT_FLOOR)
    ioc_step = np.fmax(np.fmax(stp, lot), IOC_STEP_FLOOR)
    return lot, np.where(is_mm(layout), mm_step, ioc_step)


def on_grid(s: np.ndarray, step: np.ndarray, eps: float) -> np.ndarray:
    """Floor `s` to the grid `k·step`; a size already within `eps·step` of a grid point is
    kept as is (so sizes rounded elsewhere, in any float representation, are left alone)."""
    with np.errstate(invalid="ignore"):
        g = np.floor(s / step + eps) * step
        return np.where(np.abs(s - g) <= eps * step, s, g)


def clean_budget(budget: np.ndarray) -> np.ndarray:
    """A budget as used by :func:`budget_pass`: non-negative, NaN ⇒ 0."""
    return np.fmax(np.float64(budget), 0.0)


def budget_pass(
    orders: ShieldOrders,
    subject: np.ndarray,
    unit: np.ndarray,
    group: np.ndarray,
    budgets: np.ndarray,
    step: np.ndarray,
) -> ShieldOrders:
    """Greedy budget in layout order.

    Each `subject` order k needs `n_k = unit[k]·size[k]` of its group's budget B. With
    `P_k` the running total of the needs of the group's earlier subjects (an exclusive
    cumulative sum in layout order), the remaining budget is `rem_k = max(B − P_k, 0)`: the
    order keeps its size if `n_k ≤ rem_k`, else it is cut to `rem_k / unit[k]` floored to its
    lot/step grid (dropped once nothing is left). Allowed needs never add up to more than B (plus the rounding slack).

    Args:
      subject: [K] bool orders charged to a budget.
      unit: [K] f ≥ 0 budget use per TAO.
      group: [K] i budget index of each order.
        budgets: [G] f budgets (:func:`clean_budget`); a need within `BUDGET_RTOL·max(B, 1)` of
        the remaining budget still fits (rounding), a cut takes what is left, on the grid.
      step: [K] f lot/step grid of each order (:func:`order_steps`).
    """
    g_n = budgets.shape[0]
    onehot = group[:, None] == np.arange(g_n)[None, :]  # [K, G]
    with np.errstate(invalid="ignore", over="ignore"):
        need = np.where(subject, unit * orders.size, 0.0)
    incl = np.cumsum(np.where(onehot, need[:, None], 0.0), axis=0)
    excl = np.concatenate([np.zeros((1, g_n)), incl[:-1]], axis=0)
    k_idx = np.arange(need.shape[0])
    b = budgets[group]
    rem = np.fmax(b - excl[k_idx, group], 0.0)
    fits = need <= rem + BUDGET_RTOL * np.fmax(b, 1.0)
    cut = np.floor(rem / np.where(unit > 0, unit, 1.0) / step + GRID_EPS) * step
    return with_sizes(orders, np.where(subject & ~fits, cut, orders.size))


# ---------------------------------------------------------------------------------------------
# Rules, in pipeline order
# ---------------------------------------------------------------------------------------------


def rule_non_finite(
    facts: ShieldFacts, orders: ShieldOrders, layout: OrderLayout, cfg: StrategyConfig
) -> ShieldOrders:
    """Any non-finite price or size, or a side code other than ±1 ⇒ the order is dropped."""
    bad = (
        ~np.isfinite(orders.size)
        | ~np.isfinite(orders.price)
        | ((orders.side != 1) & (orders.side != -1))
    )
    return drop(orders, orders.valid & bad)


def rule_kill_switch(
    facts: ShieldFacts, orders: ShieldOrders, layout: OrderLayout, cfg: StrategyConfig
) -> ShieldOrders:
    """§16.4–§16.5: kill latched ⇒ no new order of any kind (cancels are added on unflatten).

    The one exception is the best-effort exit, allowed only when the config enables it
    (`flags.kill_best_effort`): on the first venue (lowest index) that carries one, if it
    reduces that venue's position, with its size capped at |q_v|. Without a kill every
    kill-exit entry is dropped.
    """
    ke = layout.kind == KIND_KILL_EXIT
    if not bool(facts.kill_switch):
        return drop(orders, orders.valid & ke)
    out = drop(orders, orders.valid & ~ke)
    q = facts.position_tao[layout.venue]
    allowed = out.valid & ke & (out.side * q < 0.0) & bool(cfg.flags.kill_best_effort)
    first = allowed & (np.cumsum(allowed) == 1)
    out = drop(out, out.valid & ke & ~first)
    size = np.where(first, np.fmin(out.size, np.abs(q)), out.size)
    return drop(ShieldOrders(out.valid, out.side, size, out.price), first & ~(size > 0.0))


def rule_hard_limit_quotes(
    facts: ShieldFacts, orders: ShieldOrders, layout: OrderLayout, cfg: StrategyConfig
) -> ShieldOrders:
    """§11.1 gate 3 / §16.5: HardLimit (or any unknown regime code) ⇒ no quotes, no places."""
    regime_ok = (facts.risk_regime == REGIME_NORMAL) | (facts.risk_regime == REGIME_WARNING)
    if bool(regime_ok):
        return orders
    return drop(orders, orders.valid & is_mm(layout))


def rule_venue_health(
    facts: ShieldFacts, orders: ShieldOrders, layout: OrderLayout, cfg: StrategyConfig
) -> ShieldOrders:
    """Disabled, stale, toxic or out venues ⇒ nothing new on that venue (see venue_blocked)."""
    blocked = venue_blocked(facts, cfg)[layout.venue]
    return drop(orders, orders.valid & blocked)


def rule_passivity(
    facts: ShieldFacts, orders: ShieldOrders, layout: OrderLayout, cfg: StrategyConfig
) -> ShieldOrders:
    """§11.5 / §13: maker orders never cross the TRUE book of this tick (what the venue's
    post-only check uses): buy price < best ask, sell price > best bid; an unknown
    (non-finite) touch ⇒ dropped."""
    ask = facts.book_ask[layout.venue]
    bid = facts.book_bid[layout.venue]
    buy = layout.mm_side == 0
    passive = np.where(
        buy,
        np.isfinite(ask) & (orders.price < ask),
        np.isfinite(bid) & (orders.price > bid),
    )
    return drop(orders, orders.valid & is_mm(layout) & ~passive)


def rule_order_size(
    facts: ShieldFacts, orders: ShieldOrders, layout: OrderLayout, cfg: StrategyConfig
) -> ShieldOrders:
    """§12 steps 10–12, §14.2, §15.3, D16: size ≤ max_order_size_v, floored to the lot/step
    grid, ≥ lot; price > 0 and size·price ≥ min_notional_v; otherwise dropped."""
    mx = np.asarray(cfg.venues.max_order_size, np.float64)[layout.venue]
    mn = np.asarray(cfg.venues.min_notional_usd, np.float64)[layout.venue]
    lot, step = order_steps(layout, cfg)
    s = np.fmin(orders.size, mx)
    s = on_grid(s, step, GRID_EPS)
    ok = (s >= lot) & (s > 0.0) & (orders.price > 0.0) & (s * orders.price >= mn)
    out = ShieldOrders(orders.valid, orders.side, np.where(orders.valid, s, 0.0), orders.price)
    return drop(out, out.valid & ~ok)


def rule_ioc_caps(
    facts: ShieldFacts, orders: ShieldOrders, layout: OrderLayout, cfg: StrategyConfig
) -> ShieldOrders:
    """§14.2 / §15.1: exit orders ≤ exit.max_venue_tao_per_tick each and ≤
    exit.max_total_tao_per_tick together; hedge orders ≤ hedge.max_venue_tao_per_tick each and
    ≤ HEDGE_MAX_STEP together (totals taken in venue order)."""
    ex = layout.kind == KIND_EXIT
    hd = layout.kind == KIND_HEDGE
    per_venue = np.where(
        ex,
        np.float64(cfg.exit.max_venue_tao_per_tick),
        np.where(hd, np.float64(cfg.hedge.max_venue_tao_per_tick), np.inf),
    )
    out = with_sizes(orders, np.fmin(orders.size, per_venue))
    budgets = np.array(
        [
            clean_budget(np.float64(cfg.exit.max_total_tao_per_tick)),
            clean_budget(np.float64(cfg.hedge.max_step)),
        ]
    )
    group = np.where(hd, 1, 0)
    step = order_steps(layout, cfg)[1]
    return budget_pass(out, out.valid & (ex | hd), np.ones(ex.shape), group, budgets, step)


def rule_liquidation(
    facts: ShieldFacts, orders: ShieldOrders, layout: OrderLayout, cfg: StrategyConfig
) -> ShieldOrders:
    """§11.2 gate 3, §12 step 5, §16.3: on a venue with dist_liq ≤ LIQ_CRIT (NaN counts as
    critical) only orders reducing that venue's position, together at most |q_v|."""
    crit_v = ~(facts.dist_liq_sigma > cfg.risk.liq_crit_sigma)
    crit = crit_v[layout.venue]
    q = facts.position_tao[layout.venue]
    out = drop(orders, orders.valid & crit & ~(orders.side * q < 0.0))
    budgets = np.array([clean_budget(np.abs(x)) for x in facts.position_tao])
    subject = out.valid & crit & layout.budgeted
    step = order_steps(layout, cfg)[1]
    return budget_pass(out, subject, np.ones(q.shape), layout.venue, budgets, step)


def _global_budget(
    out: ShieldOrders, layout: OrderLayout, cfg: StrategyConfig, unit: np.ndarray, budget: float
) -> ShieldOrders:
    """One shared budget over every budgeted order (a global limit): Σ unit·size ≤ budget."""
    k = out.size.shape[0]
    subject = out.valid & layout.budgeted
    step = order_steps(layout, cfg)[1]
    return budget_pass(out, subject, unit, np.zeros(k, np.int64), np.array([budget]), step)


def rule_delta_limit(
    facts: ShieldFacts, orders: ShieldOrders, layout: OrderLayout, cfg: StrategyConfig
) -> ShieldOrders:
    """§16.1 / §16.3: |Δ$| ≥ L_delta (or NaN) ⇒ no order in the delta's direction; reducing
    orders together at most the position behind it, max(d·q_t, 0) TAO."""
    dd = facts.dollar_delta_usd
    if bool(np.abs(dd) < facts.delta_limit_usd):
        return orders
    d = -1.0 if dd < 0 else 1.0
    out = drop(orders, orders.valid & ~(orders.side * d < 0.0))
    budget = clean_budget(d * facts.q_global_tao)
    return _global_budget(out, layout, cfg, np.ones(out.size.shape[0]), budget)


def basis_per_venue(facts: ShieldFacts) -> np.ndarray:
    """[N] b_v = (m_v if present else S) − S (§5.4), from the strategy's view of the book."""
    s = facts.fair_value
    return np.where(facts.has_mid, facts.mid, s) - s


def rule_basis_limit(
    facts: ShieldFacts, orders: ShieldOrders, layout: OrderLayout, cfg: StrategyConfig
) -> ShieldOrders:
    """§16.1 / §16.3: |B| ≥ B_hard (or NaN) ⇒ no order increasing |B| (a trade of signed size
    x on venue v moves B by x·b_v); reducing orders together move B by at most |B|."""
    bb = facts.basis_usd
    if bool(np.abs(bb) < facts.basis_limit_hard_usd):
        return orders
    d = -1.0 if bb < 0 else 1.0
    b = basis_per_venue(facts)[layout.venue]
    out = drop(orders, orders.valid & ~(d * orders.side * b <= 0.0))
    budget = clean_budget(np.abs(bb))
    return _global_budget(out, layout, cfg, np.abs(b), budget)


def rule_daily_loss(
    facts: ShieldFacts, orders: ShieldOrders, layout: OrderLayout, cfg: StrategyConfig
) -> ShieldOrders:
    """§16.1 / §16.3: total PnL ≤ −|DAILY_LOSS_LIMIT| (or NaN) ⇒ only orders reducing |q_t|,
    together at most |q_t| (flat ⇒ nothing)."""
    loss_lim = -abs(float(cfg.risk.daily_loss_limit))
    if bool(facts.daily_pnl_total > loss_lim):
        return orders
    qt = facts.q_global_tao
    out = drop(orders, orders.valid & ~(orders.side * qt < 0.0))
    budget = clean_budget(np.abs(qt))
    return _global_budget(out, layout, cfg, np.ones(out.size.shape[0]), budget)
