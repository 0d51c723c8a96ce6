"""Reference composed strategy tick (STRATEGY.md §17), float64 NumPy, mirroring
`paraphina_jax.strategy.tick` function for function."""

from __future__ import annotations

import math

import numpy as np

from paraphina_jax.config.types import STATUS_HEALTHY, StrategyConfig
from paraphina_jax.reference.accounting import (
    apply_account_snapshot,
    apply_book_update,
    recompute_exposures,
)
from paraphina_jax.reference.common import fair_value_or_prev
from paraphina_jax.reference.exits import plan_exits
from paraphina_jax.reference.hedge import plan_hedge
from paraphina_jax.reference.orders import apply_order_plan, plan_orders
from paraphina_jax.reference.quoting import compute_quotes
from paraphina_jax.reference.risk import update_risk, update_venue_deviation
from paraphina_jax.reference.toxicity import apply_toxicity_floor, force_disabled, update_toxicity
from paraphina_jax.reference.volatility import update_fair_value_and_vol
from paraphina_jax.strategy.types import (
    Controls,
    ExitPlan,
    FundingInputs,
    HedgePlan,
    MarketInputs,
    OrderPlan,
    QuoteSet,
    StrategyState,
    TickOptions,
    TickOutput,
    VenueOverlay,
)


def apply_funding_update(
    state: StrategyState, funding: FundingInputs, now_ms: int
) -> StrategyState:
    """§9 funding record of every venue with an update: received_ms = as_of_ms = now."""
    v = state.venues
    f8 = np.array(v.funding_8h, copy=True)
    rate = np.array(v.fund_rate_8h, copy=True)
    has = np.array(v.fund_has_rate, copy=True)
    rec = np.array(v.fund_received_ms, copy=True)
    asof = np.array(v.fund_as_of_ms, copy=True)
    nxt = np.array(v.fund_next_ms, copy=True)
    has_nxt = np.array(v.fund_has_next, copy=True)
    for j in range(f8.shape[0]):
        if not bool(funding.updated[j]):
            continue
        f8[j] = rate[j] = float(funding.rate_8h[j])
        has[j] = True
        rec[j] = asof[j] = int(now_ms)
        nxt[j] = int(funding.next_funding_ms[j])
        has_nxt[j] = bool(funding.has_next[j])
    return state.replace(
        venues=v.replace(
            funding_8h=f8,
            fund_rate_8h=rate,
            fund_has_rate=has,
            fund_received_ms=rec,
            fund_as_of_ms=asof,
            fund_next_ms=nxt,
            fund_has_next=has_nxt,
        )
    )


def engine_update(
    state: StrategyState,
    inputs: MarketInputs,
    cfg: StrategyConfig,
    risk_due: bool,
    opts: TickOptions = TickOptions(),
    overlay: VenueOverlay | None = None,
) -> StrategyState:
    """§17.2 steps 1–3 in order."""
    now = int(inputs.now_ms)
    state = apply_book_update(state, inputs.book, now, cfg)
    state = apply_funding_update(state, inputs.funding, now)
    state = apply_account_snapshot(state, inputs.account, now, cfg, opts.h1_account_quirks)
    state = update_fair_value_and_vol(state, now, cfg)
    state = recompute_exposures(state, cfg)
    state = update_toxicity(state, now, cfg)
    if cfg.flags.venue_dev_disable:
        state = update_venue_deviation(state, cfg)
    if overlay is not None:
        if float(overlay.toxicity_floor) > 0:
            state = apply_toxicity_floor(state, float(overlay.toxicity_floor), cfg)
        state = force_disabled(state, np.asarray(overlay.force_disabled, bool))
    if risk_due:
        state = update_risk(state, int(state.tick), cfg)
    return state


def decide_mm(
    state: StrategyState,
    now_ms: int,
    controls: Controls | None,
    cfg: StrategyConfig,
    use_clock: bool,
) -> tuple[QuoteSet, OrderPlan]:
    quotes = compute_quotes(state, now_ms, controls, cfg, use_clock=use_clock)
    return quotes, plan_orders(state, quotes, now_ms, cfg)


def decide_exits(state: StrategyState, now_ms: int, cfg: StrategyConfig) -> ExitPlan:
    return plan_exits(state, now_ms, cfg)


def decide_hedge(
    state: StrategyState, now_ms: int, controls: Controls | None, cfg: StrategyConfig
) -> HedgePlan:
    return plan_hedge(state, now_ms, controls, cfg)


def kill_best_effort_exit(state: StrategyState, cfg: StrategyConfig) -> ExitPlan:
    """§16.5 best-effort reduce-only exit: see the JAX twin's docstring."""
    v = state.venues
    n = v.mid.shape[0]
    best, best_d = -1, math.inf
    for j in range(n):
        d = float(v.dist_liq_sigma[j])
        q = float(v.position_tao[j])
        if int(v.status[j]) != STATUS_HEALTHY or not math.isfinite(d):
            continue
        if d > float(cfg.risk.liq_crit_sigma) or abs(q) < 1e-9:
            continue
        if d < best_d:
            best, best_d = j, d
    valid = np.zeros(n, dtype=bool)
    size = np.zeros(n)
    price = np.zeros(n)
    order = np.full(n, n, dtype=np.int64)
    side = 1
    if best >= 0 and cfg.flags.kill_best_effort:
        j = best
        q = float(v.position_tao[j])
        mid = float(v.mid[j]) if bool(v.has_mid[j]) else fair_value_or_prev(state)
        spr = (
            float(v.spread[j]) if bool(v.has_mid[j]) and math.isfinite(float(v.spread[j])) else 0.0
        )
        g = float(cfg.hedge.guard_mult) * abs(spr)
        sell = q > 0
        side = -1 if sell else 1
        px = max(mid - g, 0.0) if sell else mid + g
        if math.isfinite(mid) and mid > 0 and px > 0:
            valid[j], size[j], price[j], order[j] = True, abs(q), px, 0
    z = np.zeros(n)
    return ExitPlan(
        valid=valid, size=size, price=price, side=np.int64(side), order=order,
        score=z, base_edge=z.copy(), candidate=valid.copy(),
    )  # fmt: skip


def _mask_exit(plan: ExitPlan, on: bool) -> ExitPlan:
    n = plan.valid.shape[0]
    valid = np.asarray(plan.valid) & bool(on)
    return plan.replace(valid=valid, order=np.where(valid, plan.order, n))


def strategy_tick(
    state: StrategyState,
    inputs: MarketInputs,
    controls: Controls | None,
    cfg: StrategyConfig,
    opts: TickOptions = TickOptions(),
    overlay: VenueOverlay | None = None,
) -> tuple[StrategyState, TickOutput]:
    """One main-loop tick (§17.3); see `paraphina_jax.strategy.tick.strategy_tick`."""
    now = int(inputs.now_ms)
    every = opts.cadence == "every_tick"
    risk_due = True if every else now >= int(state.next_risk_ms)
    state = engine_update(state, inputs, cfg, risk_due, opts, overlay)
    if risk_due:
        state = state.replace(
            next_risk_ms=np.int64(int(state.next_risk_ms) + int(cfg.loop.risk_loop_interval_ms))
        )
    killed = bool(state.kill_switch)
    transition = killed and not bool(state.kill_handled)

    quotes, orders = decide_mm(state, now, controls, cfg, opts.use_clock)
    state_after_orders, order_ids = apply_order_plan(state, orders, now, cfg)

    last_flush, next_hedge = int(state.last_flush_ms), int(state.next_hedge_ms)
    if every:
        exit_due = hedge_due = True
    else:
        exit_due = (now - last_flush) >= int(cfg.loop.fill_agg_interval_ms)
        hedge_due = exit_due and now >= next_hedge
        if exit_due and not killed:
            last_flush = now
        if hedge_due and not killed:
            next_hedge += int(cfg.loop.hedge_loop_interval_ms)
    exits = _mask_exit(decide_exits(state, now, cfg), exit_due and not killed)
    hedge = decide_hedge(state, now, controls, cfg)
    hedge = hedge.replace(valid=np.asarray(hedge.valid) & (hedge_due and not killed))
    kill_exit = _mask_exit(kill_best_effort_exit(state, cfg), transition)

    state = state_after_orders.replace(
        kill_handled=np.bool_(bool(state.kill_handled) or killed),
        last_flush_ms=np.int64(last_flush),
        next_hedge_ms=np.int64(next_hedge),
        tick=np.int64(int(state.tick) + 1),
    )
    out = TickOutput(
        quotes=quotes,
        orders=orders,
        order_ids=order_ids,
        exits=exits,
        hedge=hedge,
        kill_exit=kill_exit,
        kill_transition=np.bool_(transition),
        risk_due=np.bool_(risk_due),
        exit_due=np.bool_(exit_due),
        hedge_due=np.bool_(hedge_due),
    )
    return state, out
