"""H2, the original's Monte Carlo harness (SIMULATION.md §1, §9.1, §13.2–§13.4), in JAX.

Per tick: advance time by the jittered dt, apply the dummy book, run the full engine update with
risk; if the kill switch latches, record the kill and stop; else MM quotes (no clock, one
snapshot) → F3 fills → mark, exits from the post-MM state → fills → mark, hedge from the post-exit
state → fills → mark. Every fill is applied at its limit price with the venue's taker fee,
accounting only (no ledger, no markouts). Peaks are taken on the fresh state and after each phase;
the drawdown tracker sees the total PnL at the end of each trading tick.

The batch is a `lax.scan` over ticks whose steps are vmapped over runs (each run differs only by
its tick-time sequence); a run is frozen by a `done` mask after the kill. Ticks on which no live
run has a venue that is not Disabled skip the trading phases for the whole batch (`h2_batch`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from paraphina_jax.compat.dummy_book import dummy_book
from paraphina_jax.config.types import (
    PURPOSE_EXIT,
    PURPOSE_HEDGE,
    PURPOSE_MM,
    STATUS_DISABLED,
    StrategyConfig,
)
from paraphina_jax.sim.results import update_drawdown
from paraphina_jax.strategy.accounting import (
    apply_fills,
    block_rounds,
    interleaved_rounds,
    recompute_exposures,
)
from paraphina_jax.strategy.quoting import compute_quotes
from paraphina_jax.strategy.tick import decide_exits, decide_hedge, engine_update
from paraphina_jax.strategy.types import (
    PM_RING_FIELDS,
    AccountInputs,
    Array,
    ExitPlan,
    FillBatch,
    FundingInputs,
    HedgePlan,
    MarketInputs,
    QuoteSet,
    StrategyState,
    TickOptions,
    identity_controls,
    init_state,
)

H2_OPTS = TickOptions(cadence="every_tick", use_clock=False)


@struct.dataclass
class RunMetrics:
    """Per-run metrics of the Monte Carlo harness (SIMULATION §9.1); `[]` each (`[B]` batched)."""

    pnl_total: Array
    max_drawdown: Array
    kill_switch: Array
    kill_tick: Array  # −1 when not killed
    kill_reason: Array
    ticks_executed: Array
    max_abs_delta_usd: Array
    max_abs_basis_usd: Array  # gross basis, as the original
    max_abs_q_tao: Array
    max_venue_toxicity: Array


@struct.dataclass
class _Carry:
    state: StrategyState
    peak_delta: Array
    peak_basis: Array
    peak_q: Array
    peak_tox: Array
    dd_init: Array
    dd_peak: Array
    dd_max: Array
    done: Array
    kill_tick: Array
    ticks_executed: Array
    pnl_total: Array


def no_funding(n: int, like: Array) -> FundingInputs:
    z = jnp.zeros(n, dtype=like.dtype)
    return FundingInputs(
        updated=jnp.zeros(n, dtype=bool),
        rate_8h=z,
        next_funding_ms=jnp.zeros(n, dtype=jnp.int32),
        has_next=jnp.zeros(n, dtype=bool),
    )


def no_account(n: int, like: Array) -> AccountInputs:
    z = jnp.zeros(n, dtype=like.dtype)
    return AccountInputs(
        updated=jnp.zeros(n, dtype=bool),
        margin_balance_usd=z,
        margin_used_usd=z,
        margin_available_usd=z,
        price_liq=z,
        has_price_liq=jnp.zeros(n, dtype=bool),
        dist_liq_sigma=z,
    )


def quote_fills(q: QuoteSet, taker_bps: Array) -> FillBatch:
    """`[2N]` fills of the MM intents: venue ascending, bid then ask (F3: taker fee)."""
    n = q.bid_px.shape[0]
    inter = lambda a, b: jnp.stack([a, b], axis=1).reshape(2 * n)
    venue = jnp.repeat(jnp.arange(n), 2)
    return FillBatch(
        valid=inter(q.bid_valid, q.ask_valid),
        venue=venue,
        side=jnp.tile(jnp.array([1, -1]), n),
        size=inter(q.bid_size, q.ask_size),
        price=inter(q.bid_px, q.ask_px),
        fee_bps=taker_bps[venue],
        purpose=jnp.full(2 * n, PURPOSE_MM),
        order_id=jnp.full(2 * n, -1),
    )


def exit_fills(plan: ExitPlan, fee_bps: Array) -> FillBatch:
    """`[N]` fills of the exit intents in their greedy emission order."""
    n = plan.valid.shape[0]
    idx = jnp.argsort(plan.order, stable=True)
    return FillBatch(
        valid=plan.valid[idx],
        venue=idx,
        side=jnp.full(n, plan.side),
        size=plan.size[idx],
        price=plan.price[idx],
        fee_bps=fee_bps[idx],
        purpose=jnp.full(n, PURPOSE_EXIT),
        order_id=jnp.full(n, -1),
    )


def hedge_fills(plan: HedgePlan, fee_bps: Array) -> FillBatch:
    """`[N]` fills of the hedge intents, venue ascending."""
    n = plan.valid.shape[0]
    return FillBatch(
        valid=plan.valid,
        venue=jnp.arange(n),
        side=jnp.full(n, plan.side),
        size=plan.size,
        price=plan.price,
        fee_bps=fee_bps,
        purpose=jnp.full(n, PURPOSE_HEDGE),
        order_id=jnp.full(n, -1),
    )


def _tree_where(c: Array, a: Any, b: Any) -> Any:
    return jax.tree.map(lambda x, y: jnp.where(c, x, y), a, b)


def _phase(
    state: StrategyState,
    fills: FillBatch,
    now: Array,
    cfg: StrategyConfig,
    rounds: tuple[tuple[int, ...], ...],
) -> StrategyState:
    st = apply_fills(state, fills, now, cfg, record=False, rounds=rounds)
    return _tree_where(jnp.any(fills.valid), recompute_exposures(st, cfg), st)


def _peaks(c: _Carry, s: StrategyState) -> _Carry:
    return c.replace(
        peak_delta=jnp.maximum(c.peak_delta, jnp.abs(s.dollar_delta_usd)),
        peak_basis=jnp.maximum(c.peak_basis, jnp.abs(s.basis_gross_usd)),
        peak_q=jnp.maximum(c.peak_q, jnp.abs(s.q_global_tao)),
        peak_tox=jnp.maximum(c.peak_tox, jnp.max(s.venues.toxicity)),
    )


def _init_carry(cfg: StrategyConfig, n_ticks: int) -> _Carry:
    state0 = init_state(cfg, base_ms=0, xp=jnp)
    fdt = state0.fair_value.dtype
    idt = state0.tick.dtype
    zf = jnp.zeros((), fdt)
    c0 = _Carry(
        state=state0,
        peak_delta=zf,
        peak_basis=zf,
        peak_q=zf,
        peak_tox=zf,
        dd_init=jnp.asarray(False),
        dd_peak=zf,
        dd_max=zf,
        done=jnp.asarray(False),
        kill_tick=jnp.asarray(-1, idt),
        ticks_executed=jnp.asarray(n_ticks, idt),
        pnl_total=zf,
    )
    return _peaks(c0, state0)


def _engine(c: _Carry, now: Array, cfg: StrategyConfig) -> StrategyState:
    """The full engine update with risk at tick time `now` on the dummy book (one run)."""
    n = cfg.n_venues
    zf = jnp.zeros((), c.state.fair_value.dtype)
    inputs = MarketInputs(
        now_ms=now,
        book=dummy_book(now, cfg, jnp),
        funding=no_funding(n, zf),
        account=no_account(n, zf),
    )
    return engine_update(c.state, inputs, cfg, jnp.asarray(True), H2_OPTS)


def _close_tick(c: _Carry, c3: _Carry, s3: StrategyState) -> _Carry:
    """The drawdown tracker on the tick's final total PnL, and the tick counter (one run)."""
    dd_init, dd_peak, dd_max = update_drawdown(c.dd_init, c.dd_peak, c.dd_max, s3.daily_pnl_total)
    return c3.replace(
        state=s3.replace(tick=s3.tick + 1), dd_init=dd_init, dd_peak=dd_peak, dd_max=dd_max
    )


def _trade(c: _Carry, st: StrategyState, now: Array, cfg: StrategyConfig) -> _Carry:
    """MM quotes → fills → mark, exits → fills → mark, hedge → fills → mark (one run)."""
    fdt = st.fair_value.dtype
    controls = identity_controls(cfg.n_venues, xp=jnp, dtype=fdt)
    taker = jnp.asarray(cfg.venues.taker_fee_bps, dtype=fdt)
    q = compute_quotes(st, now, controls, cfg, use_clock=False)
    n = cfg.n_venues
    one = block_rounds(n, 1)  # one fill per venue at most
    s1 = _phase(st, quote_fills(q, taker), now, cfg, interleaved_rounds(n))
    c1 = _peaks(c, s1)
    s2 = _phase(s1, exit_fills(decide_exits(s1, now, cfg), taker), now, cfg, one)
    c2 = _peaks(c1, s2)
    s3 = _phase(s2, hedge_fills(decide_hedge(s2, now, controls, cfg), taker), now, cfg, one)
    return _close_tick(c, _peaks(c2, s3), s3)


def _idle(c: _Carry, st: StrategyState, now: Array, cfg: StrategyConfig) -> _Carry:
    """:func:`_trade` when every venue is Disabled: MM, exits and hedges all skip Disabled venues
    (STRATEGY §8.3), so no phase fills and each leaves the state as it is."""
    del now, cfg
    return _close_tick(c, _peaks(c, st), st)


def _finish(c: _Carry, st: StrategyState, traded: _Carry, t: Array) -> _Carry:
    """The tick's carry: stop and record on the kill, keep a finished run frozen (one run)."""
    idt = st.tick.dtype
    stopped = c.replace(
        state=st.replace(tick=st.tick + 1),
        done=jnp.asarray(True),
        kill_tick=t.astype(idt),
        ticks_executed=t.astype(idt),
        pnl_total=st.daily_pnl_total,
    )
    nxt = _tree_where(st.kill_switch, stopped, traded)
    return _tree_where(c.done, c, nxt)


def h2_batch(now_seqs: Array, cfg: StrategyConfig, *, skip_idle: bool = True) -> RunMetrics:
    """Runs over the tick times `now_seqs [B, T]` (from `compat.jitter.tick_times`).

    A `lax.scan` over ticks of the batch; per tick the engine update is vmapped over runs, then
    the trading phases. With the static `skip_idle`, a tick on which no live run has a venue that
    is not Disabled takes the idle branch for the whole batch (a `lax.cond` outside the vmap, so
    the phases are really skipped) — the same result, since with every venue Disabled no phase
    fills; and a tick with every run finished is skipped whole. Jit this with `cfg` closed over
    or as an argument.
    """
    now_seqs = jnp.asarray(now_seqs)
    b, n_ticks = now_seqs.shape
    c0 = jax.vmap(lambda _: _init_carry(cfg, n_ticks))(jnp.arange(b))
    idt = c0.kill_tick.dtype
    v_engine = jax.vmap(_engine, in_axes=(0, 0, None))
    v_trade = jax.vmap(_trade, in_axes=(0, 0, 0, None))
    v_idle = jax.vmap(_idle, in_axes=(0, 0, 0, None))
    v_finish = jax.vmap(_finish, in_axes=(0, 0, 0, None))

    def live_step(c: _Carry, t: Array, now: Array) -> _Carry:
        st = v_engine(c, now, cfg)
        if skip_idle:
            live = ~c.done & ~st.kill_switch  # [B]
            tradeable = jnp.any(live & jnp.any(st.venues.status != STATUS_DISABLED, axis=-1))
            traded = jax.lax.cond(
                tradeable, lambda: v_trade(c, st, now, cfg), lambda: v_idle(c, st, now, cfg)
            )
        else:
            traded = v_trade(c, st, now, cfg)
        return v_finish(c, st, traded, t)

    def step(c: _Carry, xs: tuple[Array, Array]) -> tuple[_Carry, None]:
        t, now = xs
        now = now.astype(idt)
        if not skip_idle:
            nc = live_step(c, t, now)
        else:
            nc = jax.lax.cond(jnp.all(c.done), lambda: c, lambda: live_step(c, t, now))
        # H2 fills are accounting only: the `[N, M]` markout rings are never written, so they are
        # carried through as they are (not through the cond's and the freeze masks' selects).
        ring = {name: getattr(c.state.venues, name) for name in PM_RING_FIELDS}
        v = nc.state.venues.replace(**ring)
        return nc.replace(state=nc.state.replace(venues=v)), None

    ts = jnp.arange(n_ticks)
    cT, _ = jax.lax.scan(step, c0, (ts, now_seqs.T))
    s = cT.state
    return RunMetrics(
        pnl_total=jnp.where(cT.done, cT.pnl_total, s.daily_pnl_total),
        max_drawdown=cT.dd_max,
        kill_switch=s.kill_switch,
        kill_tick=cT.kill_tick,
        kill_reason=s.kill_reason,
        ticks_executed=cT.ticks_executed,
        max_abs_delta_usd=cT.peak_delta,
        max_abs_basis_usd=cT.peak_basis,
        max_abs_q_tao=cT.peak_q,
        max_venue_toxicity=cT.peak_tox,
    )


def h2_run(now_seq: Array, cfg: StrategyConfig, *, skip_idle: bool = True) -> RunMetrics:
    """One H2 run over the tick times `now_seq [T]`: :func:`h2_batch` with B = 1."""
    out = h2_batch(jnp.asarray(now_seq)[None], cfg, skip_idle=skip_idle)
    return jax.tree.map(lambda x: x[0], out)
