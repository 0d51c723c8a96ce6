"""H1, the original's core runner (SIMULATION.md §1, §3.1, §10, §13.5; STRATEGY.md §17.2), in JAX.

Per tick `t` (time `now = base_ms + t·MAIN_LOOP_INTERVAL_MS`): dummy book (§2.1) and a synthetic
account snapshot on every venue (§5.2 with the H1 quirks); engine update (KF, vol, mark, toxicity;
risk, regime and kill on risk-cadence ticks). Then either

* the kill transition (first tick the switch is seen): cancel-all, the optional best-effort
  exit through the gateway (applied at once, then mark), queued MM fills discarded, episode done
  after this tick; or
* MM quotes → order-management plan against the resting slots → F1 gateway (post-only places that
  cross the L2 level-0 touch are rejected; accepted places fill at once at their limit, queued
  FIFO in emission order) → on a FILL_AGG flush tick: apply the queue (maker fee, `now` = flush
  time) → mark → exits (IOC: rejected unless crossing; taker fee; applied at once) → mark →
  hedge when also due (`next_hedge += HEDGE` whether or not a plan results) → mark.

The initial position `initial_q_tao` is injected on venue 0 at 250, fee 0, before tick 0.

The episode is a `lax.scan` over a fixed-length chunk of ticks with a `done` mask (ticks after
the kill or past `n_ticks` leave the carry untouched); :func:`h1_episode` runs chunks from the
host until the episode ends, so one compiled chunk serves any `--ticks`. The MM fill queue has
the static capacity `2N·ceil(FILL_AGG/MAIN)`: the most placements between two flushes.

:func:`run_core_cli` prints the original's stdout (header, kill line, Daily Summary) and stderr
(profile source, one `[config]` line per applied `PARAPHINA_*` knob), formatted by
`paraphina_jax.compat.h1_output`. The header's `cfg_hash` is an FNV-1a-64 of this port's own
config dump; the original hashes its Rust debug print, so the two are **not comparable** (§13.6).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import lax

from paraphina_jax.compat.dummy_book import dummy_book
from paraphina_jax.compat.h1_output import header_line, knob_log_lines, result_lines
from paraphina_jax.compat.h2 import exit_fills, hedge_fills
from paraphina_jax.config.types import (
    PURPOSE_MM,
    SIDE_BUY,
    SIDE_SELL,
    StrategyConfig,
)
from paraphina_jax.strategy.accounting import (
    apply_fills,
    inject_initial_position,
    recompute_exposures,
)
from paraphina_jax.strategy.orders import apply_order_plan
from paraphina_jax.strategy.tick import (
    decide_exits,
    decide_hedge,
    decide_mm,
    engine_update,
    kill_best_effort_exit,
)
from paraphina_jax.strategy.types import (
    AccountInputs,
    Array,
    BookInputs,
    FillBatch,
    FundingInputs,
    MarketInputs,
    StrategyState,
    TickOptions,
    identity_controls,
    init_state,
)

H1_OPTS = TickOptions(cadence="loops", use_clock=False, h1_account_quirks=True)
H1_INJECT_PRICE = 250.0  # SIMULATION §13.1: the fair value is always absent at injection
H1_MARGIN_AVAILABLE_USD = 10_000.0  # §5.2 [IMPL] constant snapshot values
H1_DIST_LIQ_SIGMA = 10.0
DEFAULT_CHUNK = 256


@struct.dataclass
class FillQueue:
    """Pending MM fills, FIFO in entries `[0, count)`; `[C]` each."""

    venue: Array  # [C] i
    side: Array  # [C] i  +1 buy, −1 sell
    size: Array  # [C] f
    price: Array  # [C] f
    fee_bps: Array  # [C] f  maker fee − rebate
    order_id: Array  # [C] i
    count: Array  # [] i


@struct.dataclass
class H1Carry:
    """Scan carry of one episode."""

    state: StrategyState
    queue: FillQueue
    done: Array  # [] bool  killed (episode over)
    kill_tick: Array  # [] i  −1 when not killed
    ticks_executed: Array  # [] i
    overflow: Array  # [] bool  the queue capacity was exceeded (never with the static bound)


@struct.dataclass
class H1TickOut:
    """Per-tick record (telemetry core fields); `[]` each, `[N]` for positions. `[T]` stacked."""

    valid: Array  # bool  the tick was executed
    now_ms: Array
    pnl_realised: Array
    pnl_unrealised: Array
    pnl_total: Array
    q_global_tao: Array
    dollar_delta_usd: Array
    basis_usd: Array
    basis_gross_usd: Array
    fair_value: Array  # NaN when absent
    risk_regime: Array
    kill_switch: Array
    kill_reason: Array
    n_places: Array
    n_cancels: Array
    n_rejected: Array
    n_mm_fills: Array
    n_exit_fills: Array
    n_hedge_fills: Array
    position_tao: Array  # [N]


def queue_capacity(cfg: StrategyConfig) -> int:
    """Static queue bound `2N·ceil(FILL_AGG/MAIN)` (host side, concrete config)."""
    main = max(int(cfg.loop.main_loop_interval_ms), 1)
    agg = max(int(cfg.loop.fill_agg_interval_ms), 1)
    return 2 * cfg.n_venues * (-(-agg // main))


def empty_queue(capacity: int, fdt: Any, idt: Any) -> FillQueue:
    """An empty `[capacity]` fill queue."""
    zi = jnp.zeros(capacity, idt)
    zf = jnp.zeros(capacity, fdt)
    return FillQueue(
        venue=zi, side=zi, size=zf, price=zf, fee_bps=zf, order_id=zi, count=jnp.zeros((), idt)
    )


def h1_account_inputs(n: int, fdt: Any) -> AccountInputs:
    """The core runner's synthetic account snapshot of every venue (§5.2 [IMPL]), `[N]` each."""
    z = jnp.zeros(n, fdt)
    return AccountInputs(
        updated=jnp.ones(n, dtype=bool),
        margin_balance_usd=z,
        margin_used_usd=z,
        margin_available_usd=jnp.full(n, H1_MARGIN_AVAILABLE_USD, fdt),
        price_liq=z,
        has_price_liq=jnp.zeros(n, dtype=bool),
        dist_liq_sigma=jnp.full(n, H1_DIST_LIQ_SIGMA, fdt),
    )


def _no_funding(n: int, fdt: Any, idt: Any) -> FundingInputs:
    """No funding records: the simulators' funding is always 0 (D11 [IMPL])."""
    return FundingInputs(
        updated=jnp.zeros(n, dtype=bool),
        rate_8h=jnp.zeros(n, fdt),
        next_funding_ms=jnp.zeros(n, idt),
        has_next=jnp.zeros(n, dtype=bool),
    )


def f1_accepts(
    side: Array, size: Array, price: Array, bid0: Array, ask0: Array, ioc: bool
) -> Array:
    """F1 gateway (SIMULATION §3.1, §13.3): validity and the L2 level-0 crossing test.

    Shapes broadcast (`[K]` orders against their venues' `bid0/ask0 [K]`). A buy crosses iff
    `price ≥ ask₀`, a sell iff `price ≤ bid₀`. Post-only orders (`ioc=False`, static) are rejected
    when they cross; IOC orders when they do not. Non-finite or non-positive size/price ⇒ rejected.
    """
    ok = jnp.isfinite(price) & (price > 0) & jnp.isfinite(size) & (size > 0)
    crosses = jnp.where(side == SIDE_BUY, price >= ask0, price <= bid0)
    return ok & (crosses if ioc else ~crosses)


def _ioc_phase(
    state: StrategyState, fills: FillBatch, book: BookInputs, now: Array, cfg: StrategyConfig
) -> tuple[StrategyState, Array]:
    """Execute `[K]` IOC intents through F1 in order, apply at once, mark. Returns (state, count)."""
    n = book.bid_px.shape[0]
    vi = jnp.clip(fills.venue, 0, n - 1)
    acc = fills.valid & f1_accepts(
        fills.side, fills.size, fills.price, book.bid_px[vi], book.ask_px[vi], ioc=True
    )
    st = apply_fills(state, fills.replace(valid=acc), now, cfg, record=True)
    return recompute_exposures(st, cfg), jnp.sum(acc, dtype=jnp.int32)


def _enqueue(
    q: FillQueue, place: Array, px: Array, size: Array, ids: Array, maker: Array
) -> tuple[FillQueue, Array]:
    """Append this tick's accepted places (`[N, 2]`) in emission order (venue asc, buy, sell)."""
    n = place.shape[0]
    cap = q.venue.shape[0]
    idt = q.count.dtype
    p = place.reshape(-1)
    pos = q.count + jnp.cumsum(p.astype(idt)) - 1
    idx = jnp.where(p, pos, cap)  # cap ⇒ dropped
    venue = jnp.repeat(jnp.arange(n, dtype=idt), 2)
    side = jnp.tile(jnp.array([SIDE_BUY, SIDE_SELL], dtype=idt), n)

    def put(a: Array, x: Array) -> Array:
        return a.at[idx].set(x.astype(a.dtype), mode="drop")

    added = jnp.sum(p.astype(idt))
    new = q.replace(
        venue=put(q.venue, venue),
        side=put(q.side, side),
        size=put(q.size, size.reshape(-1)),
        price=put(q.price, px.reshape(-1)),
        fee_bps=put(q.fee_bps, maker[venue]),
        order_id=put(q.order_id, ids.reshape(-1)),
        count=jnp.minimum(q.count + added, cap),
    )
    return new, q.count + added > cap


def _queue_batch(q: FillQueue) -> FillBatch:
    """The queue as a `[C]` MM fill batch (entries `[0, count)` valid, FIFO order)."""
    cap = q.venue.shape[0]
    return FillBatch(
        valid=jnp.arange(cap) < q.count,
        venue=q.venue,
        side=q.side,
        size=q.size,
        price=q.price,
        fee_bps=q.fee_bps,
        purpose=jnp.full(cap, PURPOSE_MM),
        order_id=q.order_id,
    )


def _record(state: StrategyState, now: Array, counts: dict[str, Array], valid: Array) -> H1TickOut:
    """The end-of-tick record (the state the original's telemetry line is built from)."""
    i32 = jnp.int32
    fv = jnp.where(state.has_fair_value, state.fair_value, jnp.nan)
    return H1TickOut(
        valid=valid,
        now_ms=now,
        pnl_realised=state.daily_realised_pnl,
        pnl_unrealised=state.daily_unrealised_pnl,
        pnl_total=state.daily_pnl_total,
        q_global_tao=state.q_global_tao,
        dollar_delta_usd=state.dollar_delta_usd,
        basis_usd=state.basis_usd,
        basis_gross_usd=state.basis_gross_usd,
        fair_value=fv.astype(state.fair_value.dtype),
        risk_regime=state.risk_regime.astype(i32),
        kill_switch=state.kill_switch,
        kill_reason=state.kill_reason.astype(i32),
        position_tao=state.venues.position_tao,
        **{k: jnp.asarray(v, i32) for k, v in counts.items()},
    )


_COUNTS = ("n_places", "n_cancels", "n_rejected", "n_mm_fills", "n_exit_fills", "n_hedge_fills")


def _inject(state: StrategyState, cfg: StrategyConfig) -> StrategyState:
    """Initial inventory: fee-free accounting-only fill of `initial_q_tao` on venue 0 at 250."""
    return inject_initial_position(state, cfg.loop.initial_q_tao, H1_INJECT_PRICE, cfg)


_inject_jit = jax.jit(_inject)


def h1_init(cfg: StrategyConfig, base_ms: int, capacity: int) -> H1Carry:
    """Fresh carry (host side, concrete `cfg`): initial state at `base_ms` with the initial
    position injected on venue 0 at 250 (SIMULATION §5, §13.1)."""
    state = init_state(cfg, base_ms=base_ms, xp=jnp)
    state = _inject_jit(state, cfg)
    idt = state.tick.dtype
    return H1Carry(
        state=state,
        queue=empty_queue(capacity, state.fair_value.dtype, idt),
        done=jnp.asarray(False),
        kill_tick=jnp.asarray(-1, idt),
        ticks_executed=jnp.asarray(0, idt),
        overflow=jnp.asarray(False),
    )


def h1_tick(c: H1Carry, t: Array, cfg: StrategyConfig, base_ms: Array) -> tuple[H1Carry, H1TickOut]:
    """One core-runner tick (§17.2) on a live carry.

    One linear pass serves both branches of step 4: on a killed tick the order-management plan
    holds only cancels (the cancel-all of §16.5) and places nothing, no flush happens and the
    IOC phase carries the best-effort exit (kill transition only) instead of exits and hedges.
    The IOC phase runs under `lax.cond` only on flush ticks and on the kill transition.
    """
    st0 = c.state
    n = cfg.n_venues
    idt = st0.tick.dtype
    fdt = st0.fair_value.dtype
    i32 = jnp.int32
    t = jnp.asarray(t, idt)
    now = jnp.asarray(base_ms, idt) + t * jnp.asarray(cfg.loop.main_loop_interval_ms, idt)
    book = dummy_book(now, cfg, jnp)
    book = book.replace(
        bid_px=book.bid_px.astype(fdt), ask_px=book.ask_px.astype(fdt),
        bid_sz=book.bid_sz.astype(fdt), ask_sz=book.ask_sz.astype(fdt),
    )  # fmt: skip
    inputs = MarketInputs(
        now_ms=now, book=book, funding=_no_funding(n, fdt, idt), account=h1_account_inputs(n, fdt)
    )
    # Steps 1–3: books, account, KF, vol, mark, toxicity; risk on the risk cadence.
    risk_due = now >= st0.next_risk_ms
    st = engine_update(st0, inputs, cfg, risk_due, H1_OPTS)
    risk_ms = jnp.asarray(cfg.loop.risk_loop_interval_ms, idt)
    st = st.replace(next_risk_ms=jnp.where(risk_due, st.next_risk_ms + risk_ms, st.next_risk_ms))
    killed = st.kill_switch
    transition = killed & ~st.kill_handled
    controls = identity_controls(n, xp=jnp, dtype=fdt)

    # 4a: MM quotes → order management → F1 (post-only places crossing the touch are rejected;
    # accepted places fill at once and are queued). Killed: cancels only.
    _, plan = decide_mm(st, now, controls, cfg, H1_OPTS.use_clock)
    side = jnp.broadcast_to(jnp.array([SIDE_BUY, SIDE_SELL]), plan.place.shape)
    acc = f1_accepts(
        side, plan.place_size, plan.place_px, book.bid_px[:, None], book.ask_px[:, None], ioc=False
    )
    rejected = plan.place & ~acc
    plan = plan.replace(place=plan.place & acc)
    st, ids = apply_order_plan(st, plan, now, cfg)
    maker = jnp.asarray(cfg.venues.maker_fee_bps, fdt) - jnp.asarray(
        cfg.venues.maker_rebate_bps, fdt
    )
    queue, overflow = _enqueue(c.queue, plan.place, plan.place_px, plan.place_size, ids, maker)
    flush_due = ~killed & (
        (now - st.last_flush_ms) >= jnp.asarray(cfg.loop.fill_agg_interval_ms, idt)
    )
    taker = jnp.asarray(cfg.venues.taker_fee_bps, fdt)

    def phase(a: tuple[StrategyState, FillQueue]) -> tuple[StrategyState, Array]:
        s, q = a
        # 4b: flush the queue (maker fee, now = flush time) → mark.
        s = s.replace(last_flush_ms=jnp.where(flush_due, now, s.last_flush_ms))
        batch = _queue_batch(q)
        s = apply_fills(s, batch.replace(valid=batch.valid & flush_due), now, cfg, record=True)
        s = recompute_exposures(s, cfg)
        # 4c: exits (or, on the kill transition, the best-effort exit) → IOC → mark.
        ke = kill_best_effort_exit(s, cfg)
        ke = ke.replace(valid=ke.valid & transition)
        ex = jax.tree.map(lambda k, e: jnp.where(killed, k, e), ke, decide_exits(s, now, cfg))
        s, k_exit = _ioc_phase(s, exit_fills(ex, taker), book, now, cfg)
        # 4d: hedge when also due; next_hedge advances whether or not a plan results.
        hedge_due = flush_due & (now >= s.next_hedge_ms)
        hedge_ms = jnp.asarray(cfg.loop.hedge_loop_interval_ms, idt)
        s = s.replace(
            next_hedge_ms=jnp.where(hedge_due, s.next_hedge_ms + hedge_ms, s.next_hedge_ms)
        )
        hp = decide_hedge(s, now, controls, cfg)
        s, k_hedge = _ioc_phase(
            s, hedge_fills(hp.replace(valid=hp.valid & hedge_due), taker), book, now, cfg
        )
        k_mm = jnp.where(flush_due, q.count, 0).astype(i32)
        return s, jnp.stack([k_mm, k_exit, k_hedge])

    def skip(a: tuple[StrategyState, FillQueue]) -> tuple[StrategyState, Array]:
        return a[0], jnp.zeros(3, i32)

    st, ks = lax.cond(flush_due | transition, phase, skip, (st, queue))
    # Flushed fills leave the queue; on the kill tick queued fills are discarded.
    queue = queue.replace(count=jnp.where(flush_due | killed, 0, queue.count).astype(idt))
    st = st.replace(kill_handled=st.kill_handled | killed, tick=t + 1)
    counts = {
        "n_places": jnp.sum(plan.place, dtype=i32),
        "n_cancels": jnp.sum(plan.cancel, dtype=i32),
        "n_rejected": jnp.sum(rejected, dtype=i32),
        "n_mm_fills": ks[0],
        "n_exit_fills": ks[1],
        "n_hedge_fills": ks[2],
    }
    nc = c.replace(
        state=st,
        queue=queue,
        done=killed,
        kill_tick=jnp.where(killed, t, c.kill_tick),
        ticks_executed=t + 1,
        overflow=c.overflow | overflow,
    )
    return nc, _record(st, now, counts, jnp.asarray(True))


def _frozen(c: H1Carry, t: Array, cfg: StrategyConfig, base_ms: Array) -> tuple[H1Carry, H1TickOut]:
    """A tick after the end of the episode: carry unchanged, record marked invalid."""
    idt = c.state.tick.dtype
    now = jnp.asarray(base_ms, idt) + jnp.asarray(t, idt) * jnp.asarray(
        cfg.loop.main_loop_interval_ms, idt
    )
    counts = dict.fromkeys(_COUNTS, jnp.zeros((), jnp.int32))
    return c, _record(c.state, now, counts, jnp.asarray(False))


def h1_chunk(
    c: H1Carry, t0: Array, cfg: StrategyConfig, base_ms: Array, n_ticks: Array, length: int
) -> tuple[H1Carry, H1TickOut]:
    """Ticks `t0 … t0 + length − 1` (`length` static); ticks after the kill or ≥ `n_ticks` leave
    the carry unchanged and are recorded with `valid = False`. Returns (carry, outputs `[length]`).
    """

    def step(c: H1Carry, t: Array) -> tuple[H1Carry, H1TickOut]:
        live = ~c.done & (t < n_ticks)
        return lax.cond(
            live, lambda c: h1_tick(c, t, cfg, base_ms), lambda c: _frozen(c, t, cfg, base_ms), c
        )

    idt = c.state.tick.dtype
    ts = jnp.asarray(t0, idt) + jnp.arange(length, dtype=idt)
    return lax.scan(step, c, ts)


_h1_chunk_jit = jax.jit(h1_chunk, static_argnames=("length",))

TICK_FIELDS = tuple(f.name for f in dataclasses.fields(H1TickOut) if f.name not in ("valid",))


def h1_episode(
    cfg: StrategyConfig,
    base_ms: int,
    n_ticks: int,
    chunk: int = DEFAULT_CHUNK,
    capacity: int | None = None,
) -> dict[str, Any]:
    """One core-runner episode in JAX (dtype per the x64 setting), chunk by chunk from the host.

    Args:
      cfg: strategy config (reference-parity flags, env knobs applied); passed as a pytree
        argument, so configs differing only in knob values share one compiled program.
      base_ms: time base (`seed mod 10 000`, 0 without a seed).
      n_ticks: `--ticks`.
      chunk: static scan length of one compiled chunk.
      capacity: static MM fill queue capacity (default and minimum :func:`queue_capacity`).

    Returns:
      dict with `ticks_executed`, `kill_tick` (−1 when not killed), `overflow`, the final `state`
      (NumPy leaves) and per-tick NumPy arrays `[T_exec]` (`position_tao [T_exec, N]`).
    """
    carry = h1_init(cfg, base_ms, max(capacity or 0, queue_capacity(cfg)))
    outs = []
    t0 = 0
    while t0 < n_ticks:
        carry, ys = _h1_chunk_jit(carry, t0, cfg, base_ms, n_ticks, length=chunk)
        outs.append(jax.tree.map(np.asarray, ys))
        t0 += chunk
        if bool(carry.done):
            break
    carry = jax.tree.map(np.asarray, carry)
    k = int(carry.ticks_executed)
    res: dict[str, Any] = {}
    for name in TICK_FIELDS:
        if outs:
            res[name] = np.concatenate([getattr(o, name) for o in outs])[:k]
        else:
            res[name] = np.zeros((0, cfg.n_venues) if name == "position_tao" else (0,))
    res.update(
        ticks_executed=k,
        kill_tick=int(carry.kill_tick),
        overflow=bool(carry.overflow),
        state=carry.state,
    )
    return res


# ---------------------------------------------------------------------------------------------
# Host side: config, engine choice and the core runner's command line
# ---------------------------------------------------------------------------------------------


def h1_config(profile: str | None, env: Mapping[str, str]) -> tuple[StrategyConfig, str, list[str]]:
    """Core-runner config: profile (CLI > env > default), reference-parity flags, env knobs.

    Returns (config, profile source, stderr lines: knob warnings then `[config]` lines)."""
    from paraphina_jax.config import config_from_env

    cfg, source, notes = config_from_env(profile, env, parity=True)
    return cfg, source, list(notes) + knob_log_lines(cfg, env)


def run_episode(cfg: StrategyConfig, base_ms: int, n_ticks: int, engine: str) -> dict[str, Any]:
    """Run one episode in the chosen engine (`jax`: float64 under x64; `reference`: NumPy)."""
    if engine == "reference":
        from paraphina_jax.reference.compat_h1 import h1_run

        return h1_run(cfg, base_ms, n_ticks)
    from paraphina_jax.utils.x64 import enable_x64

    with enable_x64():
        return h1_episode(cfg, base_ms, n_ticks)


def run_core_cli(args: argparse.Namespace) -> int:
    """`compat core`: the original core runner's output for `--profile/--seed/--ticks`."""
    from paraphina_jax.config import ConfigError

    env = dict(os.environ)
    if args.ticks < 0:
        print("paraphina-jax compat core: --ticks must be >= 0", file=sys.stderr)
        return 2
    if args.seed is not None and args.seed < 0:
        print("paraphina-jax compat core: --seed must be >= 0", file=sys.stderr)
        return 2
    try:
        cfg, source, notes = h1_config(args.profile, env)
    except ConfigError as e:
        print(f"paraphina-jax compat core: {e}", file=sys.stderr)
        return 2
    print(f"effective_risk_profile={cfg.profile} source={source}", file=sys.stderr)
    for line in notes:
        print(line, file=sys.stderr)
    sys.stderr.flush()
    base_ms = 0 if args.seed is None else args.seed % 10_000
    print(header_line(cfg, args.ticks, args.seed), flush=True)
    res = run_episode(cfg, base_ms, args.ticks, args.engine)
    for line in result_lines(res, args.verbose):
        print(line)
    return 0
