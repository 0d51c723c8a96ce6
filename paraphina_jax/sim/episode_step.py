"""One tick of one episode (the body of the episode scan) and the episode's params and carry.

Per tick, for one environment (SIMULATION §11, ARCHITECTURE "one data path"):

1. `market_step` — the latent price, venue books, funding settlement (the exchange account pays),
   account snapshots and latency of tick t (noise row t, schedule row t);
2. funding accrual: the strategy's realised PnL is charged the exchange's settlement payment
   (`realised −= f8·q·m` at settling venues, STRATEGY §5.3 D5, when `flags.funding_accrual`);
3. passive fills of the quotes resting from the previous tick (`fill_quotes`, against this tick's
   book — after the price move, hence adverse selection), applied with STRATEGY §5.3;
4. `controls_fn(state, view, t)` → `strategy_tick` (with the SIMULATION §2.4 overlays: the
   cancel-storm toxicity floor, outage venues forced Disabled) → `shield_fn(state, out, view, cfg)`;
5. the allowed order plan is acknowledged by the venue: post-only placements that cross, are
   malformed or go to an outage venue are rejected, and the MM slots reflect exactly what rests;
6. IOC exits (or the kill best-effort exit on the kill transition) and hedges go through
   `execute_ioc` (latency buffer, ladder walk), their fills are applied; mark to fair.

A tick is frozen (carry unchanged) once the kill switch has latched on an earlier tick, or past
the horizon. The driver (batching, chunking) is `paraphina_jax.sim.episode`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from paraphina_jax.config.types import StrategyConfig
from paraphina_jax.sim.execution import execute_ioc, fill_quotes, post_only_rejects
from paraphina_jax.sim.market import initial_market_state, market_step
from paraphina_jax.sim.results import EpisodeResults, TickRecord, update_drawdown
from paraphina_jax.sim.schedule import ScenarioSchedule, identity_schedule
from paraphina_jax.sim.types import (
    MarketParams,
    MarketState,
    MarketView,
    StaticSimParams,
    default_market_params,
    draw_episode_noise,
    draw_market_noise,
)
from paraphina_jax.strategy.accounting import (
    apply_fills,
    block_rounds,
    inject_initial_position,
    interleaved_rounds,
    recompute_exposures,
)
from paraphina_jax.strategy.tick import strategy_tick
from paraphina_jax.strategy.types import (
    PM_RING_FIELDS,
    Controls,
    ExitPlan,
    FillBatch,
    StrategyState,
    TickOptions,
    TickOutput,
    VenueOverlay,
    identity_controls,
    init_state,
)

Array = Any
ShieldFn = Callable[
    [StrategyState, TickOutput, MarketView, StrategyConfig], tuple[TickOutput, Array]
]
# A shield may also carry `facts_fn(state, view, cfg) -> pytree`: the facts it decides on, which
# the telemetry then records per tick (the audit's exact "shield" block).
ControlsFn = Callable[[StrategyState, MarketView, Array], Controls]


@struct.dataclass
class EpisodeParams:
    """Everything traced that defines one episode besides the strategy config (vmappable)."""

    market: MarketParams  # [] / [N] leaves (market model v2 + execution model)
    schedule: ScenarioSchedule  # [T, N] / [T] per-tick overlays (T ≥ horizon)
    initial_q_tao: Array  # [] f  initial inventory booked on venue 0 at s0 (SIMULATION §5)
    start_ms: Array  # [] i  time of tick 0; tick t is at start_ms + t·round(dt_ms)


# ---------------------------------------------------------------------------------------------
# Hooks
# ---------------------------------------------------------------------------------------------


def identity_shield(
    state: StrategyState, out: TickOutput, view: MarketView, cfg: StrategyConfig
) -> tuple[TickOutput, Array]:
    """The default shield: allows every action; no rules (`[0]` interventions)."""
    del state, view, cfg
    return out, jnp.zeros((0,), jnp.int32)


def identity_controls_fn(state: StrategyState, view: MarketView, t: Array) -> Controls:
    """The default controls source: the identity control surface (the heuristic strategy)."""
    del view, t
    n = state.venues.mid.shape[-1]
    return identity_controls(n, xp=jnp, dtype=state.fair_value.dtype)


# ---------------------------------------------------------------------------------------------
# Carry
# ---------------------------------------------------------------------------------------------


@struct.dataclass
class EpisodeCarry:
    """Scan carry of one episode."""

    market: MarketState
    strategy: StrategyState
    done: Array  # [] bool  frozen (killed)
    cash_usd: Array  # [] f
    fees_usd: Array  # [] f
    funding_usd: Array  # [] f
    dd_init: Array  # [] bool
    dd_peak: Array  # [] f
    dd_max: Array  # [] f
    kill_tick: Array  # [] i
    ticks_executed: Array  # [] i
    peak_delta: Array  # [] f
    peak_basis: Array  # [] f
    peak_q: Array  # [] f
    peak_tox: Array  # [] f
    maker_fills: Array  # [N] i
    taker_fills: Array  # [N] i
    volume_tao: Array  # [N] f
    fees_by_venue: Array  # [N] f
    rejected: Array  # [N] i
    interventions: Array  # [R] i


def _tree_where(c: Array, a: Any, b: Any) -> Any:
    return jax.tree.map(lambda x, y: jnp.where(c, x, y), a, b)


def freeze(active: Array, nc: EpisodeCarry, c: EpisodeCarry) -> EpisodeCarry:
    """`nc` where `active`, else `c` (the frozen tick). The `[N, M]` pending-markout ring arrays
    are taken from `nc` as they are: a frozen tick applies no fills, so it never writes them
    (pops only move `pm_head`/`pm_count`, which are selected), and the rings are not copied."""
    out = _tree_where(active, nc, c)
    ring = {name: getattr(nc.strategy.venues, name) for name in PM_RING_FIELDS}
    return out.replace(strategy=out.strategy.replace(venues=out.strategy.venues.replace(**ring)))


def _peaks(c: EpisodeCarry, s: StrategyState) -> EpisodeCarry:
    return c.replace(
        peak_delta=jnp.maximum(c.peak_delta, jnp.abs(s.dollar_delta_usd)),
        peak_basis=jnp.maximum(c.peak_basis, jnp.abs(s.basis_gross_usd)),
        peak_q=jnp.maximum(c.peak_q, jnp.abs(s.q_global_tao)),
        peak_tox=jnp.maximum(c.peak_tox, jnp.max(s.venues.toxicity)),
    )


_N_RULES: dict[tuple[Any, ...], int] = {}


def n_rules(shield_fn: ShieldFn, cfg: StrategyConfig, static: StaticSimParams) -> int:
    """R, the length of the shield's intervention vector (by abstract evaluation; cached per
    shield, config structure — static fields included — and static sim params)."""
    key = (shield_fn, jax.tree.structure(cfg), static, jax.config.jax_enable_x64)
    if key not in _N_RULES:
        _N_RULES[key] = _n_rules_uncached(shield_fn, cfg, static)
    return _N_RULES[key]


def _n_rules_uncached(shield_fn: ShieldFn, cfg: StrategyConfig, static: StaticSimParams) -> int:

    def probe() -> Array:
        st = init_state(cfg, xp=jnp)
        ms = initial_market_state(default_market_params(cfg), static)
        sched = jax.tree.map(lambda x: jnp.asarray(x[0]), identity_schedule(1, cfg.n_venues))
        noise = draw_market_noise(jnp.zeros(2, jnp.uint32), 1, static)
        noise = jax.tree.map(lambda x: x[0], noise)
        p = default_market_params(cfg)
        _, inputs, view = market_step(p, ms, noise, sched, 0, static)
        ctl = identity_controls(cfg.n_venues, xp=jnp, dtype=st.fair_value.dtype)
        _, out = strategy_tick(st, inputs, ctl, cfg)
        return shield_fn(st, out, view, cfg)[1]

    return int(jax.eval_shape(probe).shape[0])


def init_carry(
    key: Array,
    params: EpisodeParams,
    cfg: StrategyConfig,
    static: StaticSimParams,
    n_rules: int,
) -> EpisodeCarry:
    """Fresh carry of one episode: market "tick −1", strategy state with q0 injected at s0."""
    ep_noise = draw_episode_noise(key, static)
    q0 = params.initial_q_tao
    ms = initial_market_state(params.market, static, ep_noise, q0)
    st = init_state(cfg, base_ms=params.start_ms, xp=jnp)
    fd = st.fair_value.dtype
    idt = st.tick.dtype
    s0 = jnp.asarray(params.market.s0, fd)
    st = inject_initial_position(st, q0, s0, cfg)
    n = cfg.n_venues
    zf = jnp.zeros((), fd)
    q0f = jnp.asarray(q0, fd)
    cash0 = jnp.where(jnp.abs(q0f) >= 1e-9, -q0f * s0, zf)
    c = EpisodeCarry(
        market=ms,
        strategy=st,
        done=jnp.asarray(False),
        cash_usd=cash0,
        fees_usd=zf,
        funding_usd=zf,
        dd_init=jnp.asarray(False),
        dd_peak=zf,
        dd_max=zf,
        kill_tick=jnp.asarray(-1, idt),
        ticks_executed=jnp.asarray(0, idt),
        peak_delta=zf,
        peak_basis=zf,
        peak_q=zf,
        peak_tox=zf,
        maker_fills=jnp.zeros((n,), idt),
        taker_fills=jnp.zeros((n,), idt),
        volume_tao=jnp.zeros((n,), fd),
        fees_by_venue=jnp.zeros((n,), fd),
        rejected=jnp.zeros((n,), idt),
        interventions=jnp.zeros((n_rules,), idt),
    )
    return _peaks(c, st)


# ---------------------------------------------------------------------------------------------
# One tick
# ---------------------------------------------------------------------------------------------


def settle_slots(
    state: StrategyState,
    pre: StrategyState,
    allowed: TickOutput,
    rejected: Array,
    now_ms: Array,
) -> StrategyState:
    """MM slots after the venue acknowledged the ALLOWED order plan (STRATEGY §13).

    Starting from the slots before the tick (`pre`): a placement that was accepted sets
    (price, size, ts = now, id); otherwise a cancel clears the slot; otherwise it stays. With the
    identity shield and no rejection this is exactly `apply_order_plan`.

    Args:
      rejected: `[N, 2]` bool placements rejected by the venue.
    """
    v, p = state.venues, pre.venues
    o = allowed.orders
    ok = o.place & ~rejected
    return state.replace(
        venues=v.replace(
            mm_has=jnp.where(ok, True, jnp.where(o.cancel, False, p.mm_has)),
            mm_price=jnp.where(ok, o.place_px.astype(v.mm_price.dtype), p.mm_price),
            mm_size=jnp.where(ok, o.place_size.astype(v.mm_size.dtype), p.mm_size),
            mm_ts_ms=jnp.where(ok, jnp.asarray(now_ms, v.mm_ts_ms.dtype), p.mm_ts_ms),
            mm_id=jnp.where(ok, allowed.order_ids.astype(v.mm_id.dtype), p.mm_id),
        )
    )


def ioc_exit_plan(out: TickOutput) -> ExitPlan:
    """The exit IOC plan executed this tick: the kill best-effort exit on the kill transition,
    else the regular exits."""
    return _tree_where(out.kill_transition, out.kill_exit, out.exits)


def accrue_funding(state: StrategyState, paid_usd: Array, cfg: StrategyConfig) -> StrategyState:
    """D5: `realised −= paid_v` for the exchange's settlement payments `paid_usd [N]` (venue
    order); a no-op unless the static `cfg.flags.funding_accrual`."""
    if not cfg.flags.funding_accrual:
        return state
    realised = state.daily_realised_pnl
    for i in range(paid_usd.shape[-1]):
        realised = realised - paid_usd[i]
    return state.replace(
        daily_realised_pnl=realised, daily_pnl_total=realised + state.daily_unrealised_pnl
    )


def _fill_cash(fills: FillBatch) -> Array:
    """−Σ signed notional − fees of a fill batch (sequential adds)."""
    sgn = fills.side.astype(fills.size.dtype)
    flow = jnp.where(
        fills.valid,
        -sgn * fills.size * fills.price - fills.fee_bps / 1e4 * fills.price * fills.size,
        0.0,
    )
    acc = jnp.zeros((), flow.dtype)
    for k in range(flow.shape[-1]):
        acc = acc + flow[k]
    return acc


@struct.dataclass
class TickAux:
    """What a tick's record needs besides the carry (one environment)."""

    t: Array  # [] i
    now: Array  # [] i
    view: MarketView
    fees_sum: Array  # [] f
    paid_sum: Array  # [] f
    maker_fills: Array  # [N] i
    taker_fills: Array  # [N] i
    rejected: Array  # [N] i
    allowed: TickOutput
    proposed: TickOutput
    fills: FillBatch  # [4N]
    interventions: Array  # [R] i
    shield_facts: Any = None  # what the shield saw (`shield_fn.facts_fn`), else None


def tick_step(
    c: EpisodeCarry,
    noise_t: Any,
    sched_t: ScenarioSchedule,
    t: Array,
    params: EpisodeParams,
    cfg: StrategyConfig,
    static: StaticSimParams,
    opts: TickOptions,
    shield_fn: ShieldFn,
    controls_fn: ControlsFn,
    n_ticks: int,
) -> tuple[EpisodeCarry, Array, TickAux]:
    """One tick of one episode (module docstring) BEFORE the freeze mask.

    Returns:
      `(carry as if active, active [] bool, aux)`. An inactive tick (killed earlier, or
      `t ≥ n_ticks`) applies no fills, so it never writes the pending-markout rings; the caller
      masks the rest with :func:`freeze` (or skips the mask when the whole batch is active).
    """
    mp = params.market
    idt = c.strategy.tick.dtype
    n = cfg.n_venues
    t = jnp.asarray(t, idt)
    active = ~c.done & (t < n_ticks)
    dt = jnp.round(jnp.asarray(mp.dt_ms)).astype(idt)
    now = jnp.asarray(params.start_ms, idt) + t * dt

    ms, inputs, view = market_step(mp, c.market, noise_t, sched_t, now, static)
    st = accrue_funding(c.strategy, view.funding_paid_usd, cfg)
    ms, mm_fills, r1 = fill_quotes(mp, ms, view, st.venues, noise_t)
    mm_fills = mm_fills.replace(valid=mm_fills.valid & active)  # frozen ⇒ no ring writes
    st = apply_fills(st, mm_fills, now, cfg, rounds=interleaved_rounds(n))  # bids, then asks
    pre = st
    controls = controls_fn(st, view, t)
    overlay = VenueOverlay(toxicity_floor=sched_t.toxicity_floor, force_disabled=view.outage)
    st, proposed = strategy_tick(st, inputs, controls, cfg, opts, overlay)
    allowed, interv = shield_fn(st, proposed, view, cfg)
    facts_fn = getattr(shield_fn, "facts_fn", None)
    facts = None if facts_fn is None else facts_fn(st, view, cfg)
    rej = post_only_rejects(view, allowed.orders)
    st = settle_slots(st, pre, allowed, rej, now)
    ms, ioc_fills, r2 = execute_ioc(mp, ms, view, ioc_exit_plan(allowed), allowed.hedge, static)
    ioc_fills = ioc_fills.replace(valid=ioc_fills.valid & active)
    st = apply_fills(st, ioc_fills, now, cfg, rounds=block_rounds(n, 2))  # exits, then hedges
    st = recompute_exposures(st, cfg)

    fills = FillBatch(
        **{
            f.name: jnp.concatenate([getattr(mm_fills, f.name), getattr(ioc_fills, f.name)])
            for f in dataclasses.fields(FillBatch)
        }
    )
    paid = view.funding_paid_usd
    paid_sum = jnp.zeros((), paid.dtype)
    for i in range(n):
        paid_sum = paid_sum + paid[i]
    fees_v = r1.fees_usd + r2.fees_usd
    fees_sum = jnp.zeros((), fees_v.dtype)
    for i in range(n):
        fees_sum = fees_sum + fees_v[i]
    rej_v = r1.rejected + r2.rejected + jnp.sum(rej.astype(idt), axis=-1)
    dd_init, dd_peak, dd_max = update_drawdown(c.dd_init, c.dd_peak, c.dd_max, st.daily_pnl_total)
    new_kill = st.kill_switch & ~c.strategy.kill_switch
    maker = r1.maker_fills + r2.maker_fills
    taker = r1.taker_fills + r2.taker_fills
    nc = c.replace(
        market=ms,
        strategy=st,
        done=st.kill_switch,
        cash_usd=c.cash_usd + _fill_cash(fills) - paid_sum,
        fees_usd=c.fees_usd + fees_sum,
        funding_usd=c.funding_usd + paid_sum,
        dd_init=dd_init,
        dd_peak=dd_peak,
        dd_max=dd_max,
        kill_tick=jnp.where(new_kill, t, c.kill_tick),
        ticks_executed=c.ticks_executed + 1,
        maker_fills=c.maker_fills + maker,
        taker_fills=c.taker_fills + taker,
        volume_tao=c.volume_tao + r1.maker_tao + r2.taker_tao,
        fees_by_venue=c.fees_by_venue + fees_v,
        rejected=c.rejected + rej_v,
        interventions=c.interventions + interv.astype(idt),
    )
    nc = _peaks(nc, st)
    aux = TickAux(
        t=t,
        now=now,
        view=view,
        fees_sum=fees_sum,
        paid_sum=paid_sum,
        maker_fills=maker,
        taker_fills=taker,
        rejected=rej_v,
        allowed=allowed,
        proposed=proposed,
        fills=fills,
        interventions=interv.astype(idt),
        shield_facts=facts,
    )
    return nc, active, aux


def tick_record(nc: EpisodeCarry, active: Array, aux: TickAux) -> tuple[Any, ...]:
    """The tick's telemetry from the (frozen) carry after it: `(record, allowed, proposed,
    fills [4N], interventions [R], shield facts or None)`; an inactive tick reports no flows."""
    s = nc.strategy
    v = s.venues
    view = aux.view
    rec = TickRecord(
        t=aux.t,
        now_ms=aux.now,
        active=active,
        pnl_realised=s.daily_realised_pnl,
        pnl_unrealised=s.daily_unrealised_pnl,
        pnl_total=s.daily_pnl_total,
        risk_regime=s.risk_regime,
        kill_switch=s.kill_switch,
        kill_reason=s.kill_reason,
        q_global_tao=s.q_global_tao,
        dollar_delta_usd=s.dollar_delta_usd,
        basis_usd=s.basis_usd,
        basis_gross_usd=s.basis_gross_usd,
        fv_available=s.fv_available,
        has_fair_value=s.has_fair_value,
        fair_value=s.fair_value,
        sigma_eff=s.sigma_eff,
        healthy_venues_used_count=s.healthy_venues_used_count,
        healthy_venues_used=s.healthy_venues_used,
        delta_limit_usd=s.delta_limit_usd,
        basis_limit_warn_usd=s.basis_limit_warn_usd,
        basis_limit_hard_usd=s.basis_limit_hard_usd,
        cash_usd=nc.cash_usd,
        fees_usd=jnp.where(active, aux.fees_sum, 0.0),
        funding_usd=jnp.where(active, aux.paid_sum, 0.0),
        status=v.status,
        toxicity=v.toxicity,
        position_tao=v.position_tao,
        dist_liq_sigma=v.dist_liq_sigma,
        margin_available_usd=v.margin_available_usd,
        mid=v.mid,
        spread=v.spread,
        has_mid=v.has_mid,
        last_mid_update_ms=v.last_mid_update_ms,
        has_mid_update=v.has_mid_update,
        true_fair=view.fair,
        true_mid=view.mid,
        outage=view.outage,
        vol_regime=view.vol_regime,
        maker_fills=jnp.where(active, aux.maker_fills, 0),
        taker_fills=jnp.where(active, aux.taker_fills, 0),
        rejected=jnp.where(active, aux.rejected, 0),
    )
    fills = aux.fills.replace(valid=aux.fills.valid & active)
    interv = jnp.where(active, aux.interventions, 0)
    return rec, aux.allowed, aux.proposed, fills, interv, aux.shield_facts


def episode_tick(
    c: EpisodeCarry,
    noise_t: Any,
    sched_t: ScenarioSchedule,
    t: Array,
    params: EpisodeParams,
    cfg: StrategyConfig,
    static: StaticSimParams,
    opts: TickOptions,
    shield_fn: ShieldFn,
    controls_fn: ControlsFn,
    n_ticks: int,
) -> tuple[EpisodeCarry, tuple[TickRecord, TickOutput, TickOutput, FillBatch, Array]]:
    """One tick of one episode (module docstring); frozen when killed or `t ≥ n_ticks`:
    :func:`tick_step` → :func:`freeze` → :func:`tick_record`.

    Returns:
      `(carry, (record, allowed, proposed, fills [4N], interventions [R]))`.
    """
    nc, active, aux = tick_step(
        c, noise_t, sched_t, t, params, cfg, static, opts, shield_fn, controls_fn, n_ticks
    )
    nc = freeze(active, nc, c)
    return nc, tick_record(nc, active, aux)[:5]


def carry_results(c: EpisodeCarry) -> EpisodeResults:
    s = c.strategy
    return EpisodeResults(
        pnl_total=s.daily_pnl_total,
        pnl_realised=s.daily_realised_pnl,
        pnl_unrealised=s.daily_unrealised_pnl,
        fees_usd=c.fees_usd,
        funding_usd=c.funding_usd,
        cash_usd=c.cash_usd,
        max_drawdown=c.dd_max,
        kill_switch=s.kill_switch,
        kill_tick=c.kill_tick,
        kill_reason=s.kill_reason,
        ticks_executed=c.ticks_executed,
        final_regime=s.risk_regime,
        max_abs_delta_usd=c.peak_delta,
        max_abs_basis_usd=c.peak_basis,
        max_abs_q_tao=c.peak_q,
        max_venue_toxicity=c.peak_tox,
        fills=c.maker_fills + c.taker_fills,
        maker_fills=c.maker_fills,
        taker_fills=c.taker_fills,
        volume_tao=c.volume_tao,
        fees_by_venue=c.fees_by_venue,
        rejected=c.rejected,
        final_position_tao=s.venues.position_tao,
        shield_interventions=c.interventions,
    )
