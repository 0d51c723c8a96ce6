"""Reference H1 core runner (SIMULATION.md §1, §3.1, §13.5; STRATEGY.md §17.2), float64 NumPy.

A plain loop over ticks mirroring `paraphina_jax.compat.h1` step for step with the reference
engine modules:

* time `now = base_ms + t·MAIN_LOOP_INTERVAL_MS`, deterministic dummy book (§2.1), a synthetic
  account snapshot per venue every tick (margin available 10 000, dist_liq 10; §5.2 H1 quirks);
* engine update (KF, vol, mark, toxicity) and, on risk-cadence ticks, risk/regime/kill;
* kill transition: cancel-all, optional best-effort exit (applied at once), stop after the tick;
  queued MM fills are discarded;
* otherwise MM quotes → order-management plan → F1 gateway (post-only places crossing the L2
  touch are rejected; accepted places fill at once at their limit and are queued FIFO) → on a
  FILL_AGG flush tick: apply the queue (maker fee) → mark → exits (IOC, taker fee, applied at
  once) → mark → hedge when also due (IOC) → mark.

The initial position `initial_q_tao` is injected on venue 0 at 250 (fee 0) before tick 0.
"""

from __future__ import annotations

import math

import numpy as np

from paraphina_jax.compat.dummy_book import dummy_book
from paraphina_jax.config.types import (
    PURPOSE_EXIT,
    PURPOSE_HEDGE,
    PURPOSE_MM,
    SIDE_BUY,
    StrategyConfig,
)
from paraphina_jax.reference.accounting import (
    apply_fill,
    inject_initial_position,
    recompute_exposures,
)
from paraphina_jax.reference.orders import apply_order_plan, cancel_all
from paraphina_jax.reference.tick import (
    decide_exits,
    decide_hedge,
    decide_mm,
    engine_update,
    kill_best_effort_exit,
)
from paraphina_jax.strategy.types import (
    AccountInputs,
    BookInputs,
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

# Per-tick record fields (scalars) shared with the JAX engine's outputs.
TICK_FIELDS = (
    "now_ms",
    "pnl_realised",
    "pnl_unrealised",
    "pnl_total",
    "q_global_tao",
    "dollar_delta_usd",
    "basis_usd",
    "basis_gross_usd",
    "fair_value",
    "risk_regime",
    "kill_switch",
    "kill_reason",
    "n_places",
    "n_cancels",
    "n_rejected",
    "n_mm_fills",
    "n_exit_fills",
    "n_hedge_fills",
)


def h1_account_inputs(n: int) -> AccountInputs:
    """The core runner's synthetic account snapshot of every venue (§5.2 [IMPL])."""
    z = np.zeros(n)
    return AccountInputs(
        updated=np.ones(n, dtype=bool),
        margin_balance_usd=z,
        margin_used_usd=z.copy(),
        margin_available_usd=np.full(n, H1_MARGIN_AVAILABLE_USD),
        price_liq=z.copy(),
        has_price_liq=np.zeros(n, dtype=bool),
        dist_liq_sigma=np.full(n, H1_DIST_LIQ_SIGMA),
    )


def _no_funding(n: int) -> FundingInputs:
    f = np.zeros(n, dtype=bool)
    return FundingInputs(
        updated=f, rate_8h=np.zeros(n), next_funding_ms=np.zeros(n, np.int64), has_next=f.copy()
    )


def f1_accepts(
    side: int, size: float, price: float, book: BookInputs, venue: int, ioc: bool
) -> bool:
    """F1 gateway (SIMULATION §3.1, §13.3): validity and the L2 level-0 crossing test.

    A buy crosses iff `price ≥ ask₀`, a sell iff `price ≤ bid₀`. Post-only (MM) orders are
    rejected when they cross; IOC (exit, hedge) orders are rejected when they do not.
    """
    if not (math.isfinite(price) and price > 0.0 and math.isfinite(size) and size > 0.0):
        return False
    if side == SIDE_BUY:
        crosses = price >= float(book.ask_px[venue])
    else:
        crosses = price <= float(book.bid_px[venue])
    return crosses if ioc else not crosses


def _apply_iocs(
    state: StrategyState,
    intents: list[tuple[int, int, float, float]],
    book: BookInputs,
    now: int,
    cfg: StrategyConfig,
    purpose: int,
) -> tuple[StrategyState, int]:
    """Execute IOC intents `(venue, side, size, price)` through F1 in order; taker fee, applied
    at once; then mark to fair. Returns (state, number of fills)."""
    k = 0
    for venue, side, size, price in intents:
        if not f1_accepts(side, size, price, book, venue, ioc=True):
            continue
        fee = float(cfg.venues.taker_fee_bps[venue])
        state = apply_fill(state, venue, side, size, price, fee, purpose, -1, now, cfg)
        k += 1
    return recompute_exposures(state, cfg), k


def h1_run(cfg: StrategyConfig, base_ms: int, n_ticks: int) -> dict:
    """One core-runner episode.

    Args:
      cfg: strategy config (reference-parity flags, env knobs applied).
      base_ms: time base (`seed mod 10 000`, 0 without a seed).
      n_ticks: `--ticks`.

    Returns:
      dict with `ticks_executed`, `kill_tick` (−1 when not killed), final `state`, and per-tick
      arrays `[T_exec]` for every name of `TICK_FIELDS` plus `position_tao [T_exec, N]`.
    """
    n = cfg.n_venues
    main_ms = int(cfg.loop.main_loop_interval_ms)
    state = init_state(cfg, base_ms=base_ms, xp=np)
    state = inject_initial_position(state, float(cfg.loop.initial_q_tao), H1_INJECT_PRICE, cfg)
    controls = identity_controls(n)
    maker = [
        float(a) - float(b) for a, b in zip(cfg.venues.maker_fee_bps, cfg.venues.maker_rebate_bps)
    ]
    account = h1_account_inputs(n)
    funding = _no_funding(n)
    queue: list[tuple[int, int, float, float, float, int]] = []  # FIFO of pending MM fills
    rows: list[dict] = []
    kill_tick = -1
    for t in range(n_ticks):
        now = base_ms + t * main_ms
        book = dummy_book(now, cfg, np)
        inputs = MarketInputs(now_ms=now, book=book, funding=funding, account=account)
        risk_due = now >= int(state.next_risk_ms)
        state = engine_update(state, inputs, cfg, risk_due, H1_OPTS)
        if risk_due:
            state = state.replace(
                next_risk_ms=np.int64(int(state.next_risk_ms) + int(cfg.loop.risk_loop_interval_ms))
            )
        row = dict.fromkeys(
            ("n_places", "n_cancels", "n_rejected", "n_mm_fills", "n_exit_fills", "n_hedge_fills"),
            0,
        )
        if bool(state.kill_switch):
            if not bool(state.kill_handled):  # §16.5 kill transition, handled once
                row["n_cancels"] = int(np.sum(state.venues.mm_has))
                state = cancel_all(state)
                ke = kill_best_effort_exit(state, cfg)
                side = int(ke.side)
                intents = [
                    (j, side, float(ke.size[j]), float(ke.price[j]))
                    for j in range(n)
                    if bool(ke.valid[j])
                ]
                state, row["n_exit_fills"] = _apply_iocs(
                    state, intents, book, now, cfg, PURPOSE_EXIT
                )
                state = state.replace(kill_handled=np.bool_(True))
            queue = []  # queued MM fills are never applied
        else:
            _, plan = decide_mm(state, now, controls, cfg, H1_OPTS.use_clock)
            place = np.array(plan.place, copy=True)
            for i in range(n):
                for k, side in ((0, 1), (1, -1)):
                    if place[i, k] and not f1_accepts(
                        side,
                        float(plan.place_size[i, k]),
                        float(plan.place_px[i, k]),
                        book,
                        i,
                        ioc=False,
                    ):
                        place[i, k] = False
                        row["n_rejected"] += 1
            plan = plan.replace(place=place)
            row["n_places"] = int(np.sum(place))
            row["n_cancels"] = int(np.sum(plan.cancel))
            state, ids = apply_order_plan(state, plan, now, cfg)
            for i in range(n):  # F1: accepted places fill at once; queued in emission order
                for k, side in ((0, 1), (1, -1)):
                    if place[i, k]:
                        queue.append(
                            (
                                i,
                                side,
                                float(plan.place_size[i, k]),
                                float(plan.place_px[i, k]),
                                maker[i],
                                int(ids[i, k]),
                            )
                        )
            if now - int(state.last_flush_ms) >= int(cfg.loop.fill_agg_interval_ms):
                state = state.replace(last_flush_ms=np.int64(now))
                for venue, side, size, price, fee, oid in queue:
                    state = apply_fill(
                        state, venue, side, size, price, fee, PURPOSE_MM, oid, now, cfg
                    )
                row["n_mm_fills"] = len(queue)
                queue = []
                state = recompute_exposures(state, cfg)
                ex = decide_exits(state, now, cfg)
                order = sorted((int(ex.order[j]), j) for j in range(n) if bool(ex.valid[j]))
                side = int(ex.side)
                intents = [(j, side, float(ex.size[j]), float(ex.price[j])) for _, j in order]
                state, row["n_exit_fills"] = _apply_iocs(
                    state, intents, book, now, cfg, PURPOSE_EXIT
                )
                if now >= int(state.next_hedge_ms):
                    state = state.replace(
                        next_hedge_ms=np.int64(
                            int(state.next_hedge_ms) + int(cfg.loop.hedge_loop_interval_ms)
                        )
                    )
                    hp = decide_hedge(state, now, controls, cfg)
                    side = int(hp.side)
                    intents = [
                        (j, side, float(hp.size[j]), float(hp.price[j]))
                        for j in range(n)
                        if bool(hp.valid[j])
                    ]
                    state, row["n_hedge_fills"] = _apply_iocs(
                        state, intents, book, now, cfg, PURPOSE_HEDGE
                    )
        state = state.replace(tick=np.int64(t + 1))
        row.update(
            now_ms=now,
            pnl_realised=float(state.daily_realised_pnl),
            pnl_unrealised=float(state.daily_unrealised_pnl),
            pnl_total=float(state.daily_pnl_total),
            q_global_tao=float(state.q_global_tao),
            dollar_delta_usd=float(state.dollar_delta_usd),
            basis_usd=float(state.basis_usd),
            basis_gross_usd=float(state.basis_gross_usd),
            fair_value=float(state.fair_value) if bool(state.has_fair_value) else math.nan,
            risk_regime=int(state.risk_regime),
            kill_switch=bool(state.kill_switch),
            kill_reason=int(state.kill_reason),
            position_tao=np.array(state.venues.position_tao, dtype=np.float64),
        )
        rows.append(row)
        if bool(state.kill_switch):
            kill_tick = t
            break
    out: dict = {name: np.asarray([r[name] for r in rows]) for name in TICK_FIELDS}
    out["position_tao"] = np.stack([r["position_tao"] for r in rows]) if rows else np.zeros((0, n))
    out.update(ticks_executed=len(rows), kill_tick=kill_tick, state=state)
    return out
