"""The composed strategy tick (STRATEGY.md §17): ingest → fair value/vol → mark → toxicity →
risk → (kill handling | quotes → order management, exits, hedge).

`strategy_tick` is the single decision function the simulator, the environments and the Monte
Carlo engine call. It decides from one post-ingest state snapshot and returns fixed-shape action
arrays with validity masks; execution and fill accounting are the caller's (simulator's) job.
The phase functions (`engine_update`, `decide_mm`, `decide_exits`, `decide_hedge`) are public so
the reference-parity harnesses, which interleave fills between phases (SIMULATION §13), compose
the very same pieces.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from paraphina_jax.config.types import STATUS_HEALTHY, StrategyConfig
from paraphina_jax.strategy.accounting import (
    apply_account_snapshot,
    apply_book_update,
    recompute_exposures,
)
from paraphina_jax.strategy.common import fair_value_or_prev
from paraphina_jax.strategy.exits import plan_exits
from paraphina_jax.strategy.hedge import plan_hedge
from paraphina_jax.strategy.orders import apply_order_plan, plan_orders
from paraphina_jax.strategy.quoting import compute_quotes
from paraphina_jax.strategy.risk import update_risk, update_venue_deviation
from paraphina_jax.strategy.toxicity import apply_toxicity_floor, force_disabled, update_toxicity
from paraphina_jax.strategy.types import (
    Array,
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
from paraphina_jax.strategy.volatility import update_fair_value_and_vol
from paraphina_jax.utils.fusion import materialize_tree


def apply_funding_update(
    state: StrategyState, funding: FundingInputs, now_ms: Array
) -> StrategyState:
    """§9 funding record: rate, received_ms = as_of_ms = now, next settlement (D11 [REC])."""
    v = state.venues
    u = funding.updated
    now = jnp.asarray(now_ms, dtype=v.fund_received_ms.dtype)
    return state.replace(
        venues=v.replace(
            funding_8h=jnp.where(u, funding.rate_8h, v.funding_8h),
            fund_rate_8h=jnp.where(u, funding.rate_8h, v.fund_rate_8h),
            fund_has_rate=v.fund_has_rate | u,
            fund_received_ms=jnp.where(u, now, v.fund_received_ms),
            fund_as_of_ms=jnp.where(u, now, v.fund_as_of_ms),
            fund_next_ms=jnp.where(
                u, funding.next_funding_ms.astype(v.fund_next_ms.dtype), v.fund_next_ms
            ),
            fund_has_next=jnp.where(u, funding.has_next, v.fund_has_next),
        )
    )


def _tree_where(c: Array, a: Any, b: Any) -> Any:
    return jax.tree.map(lambda x, y: jnp.where(c, x, y), a, b)


def engine_update(
    state: StrategyState,
    inputs: MarketInputs,
    cfg: StrategyConfig,
    risk_due: Array,
    opts: TickOptions = TickOptions(),
    overlay: VenueOverlay | None = None,
) -> StrategyState:
    """§17.2 steps 1–3: books, funding, account; KF + vol + scalars; mark; toxicity; risk.

    Args:
      risk_due: `[]` bool — run the risk step (limits, regime, kill) this tick.
    """
    now = inputs.now_ms
    state = apply_book_update(state, inputs.book, now, cfg)
    state = apply_funding_update(state, inputs.funding, now)
    state = apply_account_snapshot(state, inputs.account, now, cfg, opts.h1_account_quirks)
    state = update_fair_value_and_vol(state, now, cfg)
    state = recompute_exposures(state, cfg)
    state = update_toxicity(state, now, cfg)
    if cfg.flags.venue_dev_disable:
        state = update_venue_deviation(state, cfg)
    if overlay is not None:
        floor = jnp.asarray(overlay.toxicity_floor, state.venues.toxicity.dtype)
        state = _tree_where(floor > 0, apply_toxicity_floor(state, floor, cfg), state)
        state = force_disabled(state, overlay.force_disabled)
    risked = update_risk(state, state.tick, cfg)
    return _tree_where(risk_due, risked, state)


def decide_mm(
    state: StrategyState,
    now_ms: Array,
    controls: Controls | None,
    cfg: StrategyConfig,
    use_clock: bool,
) -> tuple[QuoteSet, OrderPlan]:
    """Quotes (§11–12) and the order-management plan against the resting slots (§13)."""
    # Each decision is read by several kernels downstream: computed once (utils.fusion).
    quotes = materialize_tree(compute_quotes(state, now_ms, controls, cfg, use_clock=use_clock))
    return quotes, materialize_tree(plan_orders(state, quotes, now_ms, cfg))


def decide_exits(state: StrategyState, now_ms: Array, cfg: StrategyConfig) -> ExitPlan:
    """Cross-venue exit allocation (§14)."""
    return materialize_tree(plan_exits(state, now_ms, cfg))


def decide_hedge(
    state: StrategyState, now_ms: Array, controls: Controls | None, cfg: StrategyConfig
) -> HedgePlan:
    """Global hedge plan (§15)."""
    return materialize_tree(plan_hedge(state, now_ms, controls, cfg))


def kill_best_effort_exit(state: StrategyState, cfg: StrategyConfig) -> ExitPlan:
    """§16.5 optional best-effort reduce-only IOC on the kill transition (one venue at most).

    The venue: status exactly Healthy, smallest finite dist_liq ≤ LIQ_CRIT, |q_v| ≥ 1e-9 (ties →
    lower index); size |q_v| unrounded; price mid ∓ guard_mult·|spread| (sell floored at 0).
    """
    v = state.venues
    n = v.mid.shape[0]
    dist = v.dist_liq_sigma
    q = v.position_tao
    elig = (
        (v.status == STATUS_HEALTHY)
        & jnp.isfinite(dist)
        & (dist <= cfg.risk.liq_crit_sigma)
        & (jnp.abs(q) >= 1e-9)
    )
    key = jnp.where(elig, dist, jnp.inf)
    j = jnp.argmin(key)  # first minimum ⇒ lower index on ties
    any_elig = jnp.any(elig)
    s = fair_value_or_prev(state)
    mid = jnp.where(v.has_mid[j], v.mid[j], s)
    spr = jnp.where(v.has_mid[j] & jnp.isfinite(v.spread[j]), jnp.abs(v.spread[j]), 0.0)
    g = cfg.hedge.guard_mult * spr
    sell = q[j] > 0
    px = jnp.where(sell, jnp.maximum(mid - g, 0.0), mid + g)
    ok = any_elig & jnp.isfinite(mid) & (mid > 0) & (px > 0) & cfg.flags.kill_best_effort
    onehot = (jnp.arange(n) == j) & ok
    zf = jnp.zeros_like(v.mid)
    return ExitPlan(
        valid=onehot,
        size=jnp.where(onehot, jnp.abs(q[j]), zf),
        price=jnp.where(onehot, px, zf),
        # the reference reports Buy (+1) unless an eligible venue was chosen with the flag on
        side=jnp.where(any_elig & cfg.flags.kill_best_effort & sell, -1, 1).astype(v.pm_side.dtype),
        order=jnp.where(onehot, 0, n).astype(v.pm_side.dtype),
        score=zf,
        base_edge=zf,
        candidate=onehot,
    )


def _mask_exit(plan: ExitPlan, on: Array) -> ExitPlan:
    n = plan.valid.shape[0]
    return plan.replace(valid=plan.valid & on, order=jnp.where(plan.valid & on, plan.order, n))


def strategy_tick(
    state: StrategyState,
    inputs: MarketInputs,
    controls: Controls | None,
    cfg: StrategyConfig,
    opts: TickOptions = TickOptions(),
    overlay: VenueOverlay | None = None,
) -> tuple[StrategyState, TickOutput]:
    """One main-loop tick of the whole strategy (§17.3), for one environment.

    Args:
      state: strategy state before the tick.
      inputs: this tick's market observations (`now_ms` is the tick time).
      controls: control surface (identity or None ⇒ the heuristic strategy, bit for bit).
      cfg: strategy config.
      opts: static scheduling options.
      overlay: simulator venue-health overlays (SIMULATION §2.4), None outside simulators.

    Returns:
      (state after decisions — order slots updated, cadence counters advanced, kill handled —,
       TickOutput). Fills are not applied here.
    """
    now = jnp.asarray(inputs.now_ms, dtype=state.next_risk_ms.dtype)
    every = opts.cadence == "every_tick"
    risk_due = jnp.asarray(True) if every else now >= state.next_risk_ms
    state = engine_update(state, inputs, cfg, risk_due, opts, overlay)
    state = state.replace(
        next_risk_ms=jnp.where(
            risk_due, state.next_risk_ms + cfg.loop.risk_loop_interval_ms, state.next_risk_ms
        )
    )
    killed = state.kill_switch
    transition = killed & ~state.kill_handled

    # MM: compute_quotes gates on kill/HardLimit; plan_orders emits cancels only when killed.
    quotes, orders = decide_mm(state, now, controls, cfg, opts.use_clock)
    state_after_orders, order_ids = apply_order_plan(state, orders, now, cfg)

    if every:
        exit_due = jnp.asarray(True)
        hedge_due = jnp.asarray(True)
        new_flush = state.last_flush_ms
        new_next_hedge = state.next_hedge_ms
    else:
        exit_due = (now - state.last_flush_ms) >= cfg.loop.fill_agg_interval_ms
        hedge_due = exit_due & (now >= state.next_hedge_ms)
        new_flush = jnp.where(exit_due & ~killed, now, state.last_flush_ms)
        new_next_hedge = jnp.where(
            hedge_due & ~killed,
            state.next_hedge_ms + cfg.loop.hedge_loop_interval_ms,
            state.next_hedge_ms,
        )
    exits = _mask_exit(decide_exits(state, now, cfg), exit_due & ~killed)
    hedge = decide_hedge(state, now, controls, cfg)
    hedge = hedge.replace(valid=hedge.valid & hedge_due & ~killed)
    kill_exit = _mask_exit(kill_best_effort_exit(state, cfg), transition)

    state = state_after_orders.replace(
        kill_handled=state.kill_handled | killed,
        last_flush_ms=new_flush,
        next_hedge_ms=new_next_hedge,
        tick=state.tick + 1,
    )
    out = TickOutput(
        quotes=quotes,
        orders=orders,
        order_ids=order_ids,
        exits=exits,
        hedge=hedge,
        kill_exit=kill_exit,
        kill_transition=transition,
        risk_due=risk_due,
        exit_due=exit_due,
        hedge_due=hedge_due,
    )
    return state, out
