"""Reference H2 Monte Carlo harness run (SIMULATION.md §9.1, §13.4), float64 NumPy, plain loop.

Mirrors `paraphina_jax.compat.h2.h2_run` step for step using the reference engine modules.
"""

from __future__ import annotations

import math

import numpy as np

from paraphina_jax.compat.dummy_book import dummy_book
from paraphina_jax.config.types import PURPOSE_EXIT, PURPOSE_HEDGE, PURPOSE_MM, StrategyConfig
from paraphina_jax.reference.accounting import apply_fill, recompute_exposures
from paraphina_jax.reference.quoting import compute_quotes
from paraphina_jax.reference.tick import decide_exits, decide_hedge, engine_update
from paraphina_jax.strategy.types import (
    AccountInputs,
    FundingInputs,
    MarketInputs,
    StrategyState,
    TickOptions,
    identity_controls,
    init_state,
)

H2_OPTS = TickOptions(cadence="every_tick", use_clock=False)


def _no_inputs(n: int) -> tuple[FundingInputs, AccountInputs]:
    z = np.zeros(n)
    f = np.zeros(n, dtype=bool)
    return (
        FundingInputs(updated=f, rate_8h=z, next_funding_ms=np.zeros(n, np.int64), has_next=f),
        AccountInputs(
            updated=f, margin_balance_usd=z, margin_used_usd=z, margin_available_usd=z,
            price_liq=z, has_price_liq=f, dist_liq_sigma=z,
        ),
    )  # fmt: skip


def _apply_intents(
    state: StrategyState,
    intents: list[tuple[int, int, float, float, float, int]],
    now: int,
    cfg: StrategyConfig,
) -> StrategyState:
    """F3: every intent fills at its limit price (accounting only); mark if anything filled."""
    any_fill = False
    for venue, side, size, price, fee, purpose in intents:
        if not (math.isfinite(price) and price > 0 and math.isfinite(size) and size > 0):
            continue
        state = apply_fill(
            state, venue, side, size, price, fee, purpose, -1, now, cfg, record=False
        )
        any_fill = True
    return recompute_exposures(state, cfg) if any_fill else state


class _Peaks:
    def __init__(self) -> None:
        self.delta = self.basis = self.q = self.tox = 0.0

    def update(self, s: StrategyState) -> None:
        self.delta = max(self.delta, abs(float(s.dollar_delta_usd)))
        self.basis = max(self.basis, abs(float(s.basis_gross_usd)))
        self.q = max(self.q, abs(float(s.q_global_tao)))
        self.tox = max(self.tox, float(np.max(s.venues.toxicity)))


def h2_run(now_seq: np.ndarray, cfg: StrategyConfig) -> dict:
    """One H2 run; returns the per-run metrics of SIMULATION §9.1 as a dict."""
    n = cfg.n_venues
    state = init_state(cfg, base_ms=0, xp=np)
    controls = identity_controls(n)
    taker = [float(x) for x in cfg.venues.taker_fee_bps]
    funding, account = _no_inputs(n)
    peaks = _Peaks()
    peaks.update(state)
    dd_init, dd_peak, dd_max = False, 0.0, 0.0
    out = {"kill_tick": None, "ticks_executed": len(now_seq)}
    for t, now in enumerate(int(x) for x in now_seq):
        inputs = MarketInputs(
            now_ms=now, book=dummy_book(now, cfg, np), funding=funding, account=account
        )
        state = engine_update(state, inputs, cfg, True, H2_OPTS)
        if bool(state.kill_switch):
            out.update(kill_tick=t, ticks_executed=t, pnl_total=float(state.daily_pnl_total))
            break
        q = compute_quotes(state, now, controls, cfg, use_clock=False)
        mm = []
        for v in range(n):
            if bool(q.bid_valid[v]):
                mm.append((v, 1, float(q.bid_size[v]), float(q.bid_px[v]), taker[v], PURPOSE_MM))
            if bool(q.ask_valid[v]):
                mm.append((v, -1, float(q.ask_size[v]), float(q.ask_px[v]), taker[v], PURPOSE_MM))
        state = _apply_intents(state, mm, now, cfg)
        peaks.update(state)
        ex = decide_exits(state, now, cfg)
        order = sorted((int(ex.order[v]), v) for v in range(n) if bool(ex.valid[v]))
        side = int(ex.side)
        exits = [
            (v, side, float(ex.size[v]), float(ex.price[v]), taker[v], PURPOSE_EXIT)
            for _, v in order
        ]
        state = _apply_intents(state, exits, now, cfg)
        peaks.update(state)
        hp = decide_hedge(state, now, controls, cfg)
        hside = int(hp.side)
        hedges = [
            (v, hside, float(hp.size[v]), float(hp.price[v]), taker[v], PURPOSE_HEDGE)
            for v in range(n)
            if bool(hp.valid[v])
        ]
        state = _apply_intents(state, hedges, now, cfg)
        peaks.update(state)
        e = float(state.daily_pnl_total)
        if math.isfinite(e):
            if not dd_init:
                dd_init, dd_peak = True, e
            else:
                dd_peak = max(dd_peak, e)
                dd_max = max(dd_max, dd_peak - e)
        state = state.replace(tick=np.int64(int(state.tick) + 1))
    if out["kill_tick"] is None:
        out["pnl_total"] = float(state.daily_pnl_total)
    reason = int(state.kill_reason)
    out.update(
        max_drawdown=dd_max,
        kill_switch=bool(state.kill_switch),
        kill_reason=reason,
        max_abs_delta_usd=peaks.delta,
        max_abs_basis_usd=peaks.basis,
        max_abs_q_tao=peaks.q,
        max_venue_toxicity=peaks.tox,
    )
    return out
