"""Invariant predicates, NumPy: which orders (or venues) break which rule.

A pure checker, distinct from the shield's correcting logic: it never changes an order, it
states what must hold of the actions that reach execution, one function per rule, with small
tolerances for float rounding (float32 engines included). :mod:`safety_shield.audit` reports
its findings per tick and venue; :mod:`safety_shield.fuzz` has a JAX port of it.
"""

from __future__ import annotations

import numpy as np

from paraphina_jax.config.types import StrategyConfig
from safety_shield.rules import basis_per_venue, is_mm, order_steps, venue_blocked
from safety_shield.types import (
    KIND_EXIT,
    KIND_HEDGE,
    KIND_KILL_EXIT,
    N_RULES,
    RULE_BASIS_LIMIT,
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
    OrderLayout,
    ShieldFacts,
    ShieldOrders,
)

SIZE_RTOL = 1e-6  # relative slack on size caps and notional floors
GRID_TOL = 2e-3  # |size/step − round(size/step)| allowed (float32 grid rounding)
SUM_RTOL = 1e-4  # slack on budgets: B·(1 + SUM_RTOL) + SUM_ATOL
SUM_ATOL = 1e-6

GLOBAL = -1  # venue index reported for a violation of a global total


def _over(total: float, budget: float) -> bool:
    b = max(float(budget), 0.0) if np.isfinite(budget) else 0.0
    return not (total <= b * (1.0 + SUM_RTOL) + SUM_ATOL)


def check_non_finite(f: ShieldFacts, o: ShieldOrders, lay: OrderLayout, cfg: StrategyConfig):
    """[K] bool: valid orders with a non-finite price/size or a side code other than ±1."""
    return o.valid & (
        ~np.isfinite(o.size) | ~np.isfinite(o.price) | ((o.side != 1) & (o.side != -1))
    )


def check_kill_switch(f: ShieldFacts, o: ShieldOrders, lay: OrderLayout, cfg: StrategyConfig):
    """[K] bool: any new order while killed, except one reducing kill exit (if enabled) of at
    most |q_v|; any kill exit without a kill."""
    ke = lay.kind == KIND_KILL_EXIT
    killed = bool(f.kill_switch)
    if not killed:
        return o.valid & ke
    q = f.position_tao[lay.venue]
    bad_ke = (not cfg.flags.kill_best_effort) | ~(o.side * q < 0.0)
    bad_ke |= o.size > np.abs(q) * (1.0 + SIZE_RTOL)
    extra = ke & o.valid & (np.cumsum(ke & o.valid) > 1)
    return o.valid & (~ke | bad_ke | extra)


def check_kill_cancels(f: ShieldFacts, cancel: np.ndarray) -> np.ndarray:
    """[N] bool: venues with a resting MM order left uncancelled while killed."""
    if not bool(f.kill_switch):
        return np.zeros(f.mm_has.shape[0], bool)
    return np.any(f.mm_has & ~np.asarray(cancel, bool), axis=1)


def check_hard_limit_quotes(f, o, lay, cfg):
    """[K] bool: quotes/places outside Normal/Warning."""
    ok = int(f.risk_regime) in (0, 1)
    return o.valid & is_mm(lay) & (not ok)


def check_venue_health(f, o, lay, cfg):
    """[K] bool: orders on a disabled / stale / toxic / out venue."""
    return o.valid & venue_blocked(f, cfg)[lay.venue]


def check_passivity(f, o, lay, cfg):
    """[K] bool: maker orders at or through the true touch (or with an unknown touch)."""
    ask = f.book_ask[lay.venue]
    bid = f.book_bid[lay.venue]
    with np.errstate(invalid="ignore"):
        passive = np.where(
            lay.mm_side == 0,
            np.isfinite(ask) & (o.price < ask),
            np.isfinite(bid) & (o.price > bid),
        )
    return o.valid & is_mm(lay) & ~passive


def check_order_size(f, o, lay, cfg):
    """[K] bool: size above the venue max, off the lot/step grid, below one lot, non-positive
    price, or notional below the venue minimum."""
    mx = np.asarray(cfg.venues.max_order_size, np.float64)[lay.venue]
    mn = np.asarray(cfg.venues.min_notional_usd, np.float64)[lay.venue]
    lot, step = order_steps(lay, cfg)
    with np.errstate(invalid="ignore", divide="ignore"):
        units = o.size / step
        off_grid = np.abs(units - np.round(units)) > GRID_TOL
        bad = (
            (o.size > mx * (1.0 + SIZE_RTOL))
            | off_grid
            | (o.size < lot * (1.0 - SIZE_RTOL))
            | ~(o.size > 0.0)
            | ~(o.price > 0.0)
            | (o.size * o.price < mn * (1.0 - SIZE_RTOL))
        )
    return o.valid & bad


def check_ioc_caps(f, o, lay, cfg):
    """`([K] bool per-order cap breaches, [2] bool total breaches (exit, hedge))`."""
    ex = lay.kind == KIND_EXIT
    hd = lay.kind == KIND_HEDGE
    cap = np.where(ex, cfg.exit.max_venue_tao_per_tick, cfg.hedge.max_venue_tao_per_tick)
    per = o.valid & (ex | hd) & (o.size > cap * (1.0 + SIZE_RTOL))
    tot_ex = float(np.sum(np.where(o.valid & ex, o.size, 0.0)))
    tot_hd = float(np.sum(np.where(o.valid & hd, o.size, 0.0)))
    totals = np.array(
        [_over(tot_ex, cfg.exit.max_total_tao_per_tick), _over(tot_hd, cfg.hedge.max_step)]
    )
    return per, totals


def _direction_and_budget(valid, bad_dir, amount, budget, lay):
    """Shared shape of the limit checks: `([K] bad direction, total over budget?)`."""
    total = float(np.sum(np.where(valid & lay.budgeted & ~bad_dir, amount, 0.0)))
    return valid & bad_dir, _over(total, budget)


def check_liquidation(f, o, lay, cfg):
    """`([K] non-reducing orders on critical venues, [N] venues whose reducing orders exceed
    |q_v|)`."""
    crit_v = ~(f.dist_liq_sigma > cfg.risk.liq_crit_sigma)
    q = f.position_tao[lay.venue]
    bad_dir = o.valid & crit_v[lay.venue] & ~(o.side * q < 0.0)
    over = np.zeros(lay.n, bool)
    for v in range(lay.n):
        if crit_v[v]:
            sel = o.valid & lay.budgeted & (lay.venue == v) & ~bad_dir
            over[v] = _over(float(np.sum(np.where(sel, o.size, 0.0))), abs(f.position_tao[v]))
    return bad_dir, over


def check_delta_limit(f, o, lay, cfg):
    """`([K] orders adding to a breached delta, total reduction over the position?)`."""
    dd = f.dollar_delta_usd
    none = np.zeros(o.valid.shape, bool)
    if bool(np.abs(dd) < f.delta_limit_usd):
        return none, False
    d = -1.0 if dd < 0 else 1.0
    return _direction_and_budget(o.valid, ~(o.side * d < 0.0), o.size, d * f.q_global_tao, lay)


def check_basis_limit(f, o, lay, cfg):
    """`([K] orders adding to a breached |B|, total basis reduction over |B|?)`."""
    bb = f.basis_usd
    none = np.zeros(o.valid.shape, bool)
    if bool(np.abs(bb) < f.basis_limit_hard_usd):
        return none, False
    d = -1.0 if bb < 0 else 1.0
    b = basis_per_venue(f)[lay.venue]
    with np.errstate(invalid="ignore"):
        bad_dir = ~(d * o.side * b <= 0.0)
    return _direction_and_budget(o.valid, bad_dir, np.abs(b) * o.size, abs(bb), lay)


def check_daily_loss(f, o, lay, cfg):
    """`([K] orders not reducing |q_t| after a loss-limit breach, total over |q_t|?)`."""
    none = np.zeros(o.valid.shape, bool)
    if bool(f.daily_pnl_total > -abs(float(cfg.risk.daily_loss_limit))):
        return none, False
    qt = f.q_global_tao
    return _direction_and_budget(o.valid, ~(o.side * qt < 0.0), o.size, abs(qt), lay)


def violations_one(
    f: ShieldFacts,
    o: ShieldOrders,
    lay: OrderLayout,
    cfg: StrategyConfig,
    cancel: np.ndarray | None = None,
) -> list[tuple[int, int]]:
    """Every `(venue, rule)` broken by one tick's allowed actions (venue −1 = global total)."""
    out: list[tuple[int, int]] = []

    def per_order(mask: np.ndarray, rule: int) -> None:
        for v in sorted({int(x) for x in lay.venue[mask]}):
            out.append((v, rule))

    per_order(check_non_finite(f, o, lay, cfg), RULE_NON_FINITE)
    per_order(check_kill_switch(f, o, lay, cfg), RULE_KILL_SWITCH)
    if cancel is not None:
        for v in np.flatnonzero(check_kill_cancels(f, cancel)):
            out.append((int(v), RULE_KILL_SWITCH))
    per_order(check_hard_limit_quotes(f, o, lay, cfg), RULE_HARD_LIMIT_QUOTES)
    per_order(check_venue_health(f, o, lay, cfg), RULE_VENUE_HEALTH)
    per_order(check_passivity(f, o, lay, cfg), RULE_PASSIVITY)
    per_order(check_order_size(f, o, lay, cfg), RULE_ORDER_SIZE)
    per, totals = check_ioc_caps(f, o, lay, cfg)
    per_order(per, RULE_IOC_CAPS)
    if totals.any():
        out.append((GLOBAL, RULE_IOC_CAPS))
    bad_dir, over = check_liquidation(f, o, lay, cfg)
    per_order(bad_dir, RULE_LIQUIDATION)
    out += [(int(v), RULE_LIQUIDATION) for v in np.flatnonzero(over)]
    for rule, fn in (
        (RULE_DELTA_LIMIT, check_delta_limit),
        (RULE_BASIS_LIMIT, check_basis_limit),
        (RULE_DAILY_LOSS, check_daily_loss),
    ):
        bad_dir, total_over = fn(f, o, lay, cfg)
        per_order(bad_dir, rule)
        if total_over:
            out.append((GLOBAL, rule))
    return out


def violation_counts(pairs: list[tuple[int, int]]) -> np.ndarray:
    """[R] int: number of `(venue, rule)` findings per rule."""
    c = np.zeros(N_RULES, np.int64)
    for _, r in pairs:
        c[r] += 1
    return c
