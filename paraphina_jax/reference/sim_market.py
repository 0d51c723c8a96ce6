"""Canonical market model v2, float64 NumPy reference engine (SIMULATION §2.3–§2.6).

Same functions as `paraphina_jax.sim.market`, written as scalar code and loops over venues. It
consumes the same `MarketNoise` row and `ScenarioSchedule` row as the JAX engine, so both produce
the same path up to float64 rounding. Never mutates its inputs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from paraphina_jax.reference.sim_execution import funding_payments
from paraphina_jax.sim.schedule import ScenarioSchedule
from paraphina_jax.sim.types import (
    MS_PER_DAY,
    AccountState,
    EpisodeNoise,
    MarketNoise,
    MarketParams,
    MarketState,
    MarketView,
    PendingIOC,
    StaticSimParams,
)
from paraphina_jax.strategy.types import AccountInputs, BookInputs, FundingInputs, MarketInputs

_DEFAULT_STATIC = StaticSimParams()
_INJECT_MIN_ABS_TAO = 1e-9


def _f(x: Any) -> float:
    return float(np.asarray(x))


def _i(x: Any) -> int:
    return int(np.asarray(x))


def initial_market_state(
    params: MarketParams,
    static: StaticSimParams = _DEFAULT_STATIC,
    episode_noise: EpisodeNoise | None = None,
    initial_q_tao: float = 0.0,
) -> MarketState:
    """Fresh market state ("tick −1"): ln(S/s0) = 0, basis = b̄, accounts at their collateral."""
    n = static.n_venues
    s0 = _f(params.s0)
    d_start = np.zeros(n, dtype=np.int64)
    d_end = np.zeros(n, dtype=np.int64)
    if episode_noise is not None:
        lo, hi = _i(params.disable_min_ticks), _i(params.disable_max_ticks)
        for v in range(n):
            if float(episode_noise.u_disable[v]) < _f(params.disable_prob):
                start = min(
                    max(math.floor(float(episode_noise.u_start[v]) * static.n_ticks), 0),
                    static.n_ticks - 1,
                )
                length = min(
                    lo + math.floor(float(episode_noise.u_len[v]) * float(hi - lo + 1)), hi
                )
                d_start[v] = start
                d_end[v] = start + max(length, 0)
    pos = np.zeros(n)
    entry = np.zeros(n)
    q0 = float(initial_q_tao)
    if abs(q0) >= _INJECT_MIN_ABS_TAO:
        pos[0], entry[0] = q0, s0
    return MarketState(
        log_s=np.asarray(0.0),
        vol_regime=np.asarray(_i(params.vol_regime0), dtype=np.int64),
        basis=np.broadcast_to(np.asarray(params.basis_mean, np.float64), (n,)).copy(),
        funding_8h=np.broadcast_to(np.asarray(params.funding_8h, np.float64), (n,)).copy(),
        next_settle_ms=np.asarray(_i(params.funding_first_ms), dtype=np.int64),
        stale_left=np.zeros(n, dtype=np.int64),
        disable_start=d_start,
        disable_end=d_end,
        tick=np.asarray(0, dtype=np.int64),
        account=AccountState(
            position_tao=pos,
            entry_price=entry,
            collateral_usd=np.broadcast_to(
                np.asarray(params.collateral_usd, np.float64), (n,)
            ).copy(),
        ),
        pending=PendingIOC(
            valid=np.zeros((2, n), dtype=bool),
            side=np.ones((2, n), dtype=np.int64),
            size=np.zeros((2, n)),
            price=np.zeros((2, n)),
            due_tick=np.zeros((2, n), dtype=np.int64),
            rank=np.zeros((2, n), dtype=np.int64),
        ),
    )


def poisson_count(u: float, lam: float, max_jumps: int) -> int:
    """Poisson(λ) by inverse CDF: smallest k with u < F(k), capped at `max_jumps`."""
    term = math.exp(-lam)
    cdf = term
    n = 0
    for k in range(max_jumps):
        if u >= cdf:
            n += 1
        term = term * lam / (k + 1)
        cdf = cdf + term
    return n


def latency_ticks(latency_ms: float, dt_ms: float, static: StaticSimParams) -> int:
    """ceil(latency/Δt) clipped to [0, max_latency_ticks]."""
    return int(min(max(math.ceil(latency_ms / dt_ms), 0), static.max_latency_ticks))


def account_snapshot(
    params: MarketParams, account: AccountState, mid: np.ndarray, updated: np.ndarray
) -> AccountInputs:
    """Isolated-margin snapshot per venue at marks `mid` (STRATEGY §5.2 [REC])."""
    n = len(mid)
    out = {k: np.zeros(n) for k in ("balance", "used", "avail", "pliq")}
    has = np.zeros(n, dtype=bool)
    for v in range(n):
        q = float(account.position_tao[v])
        a = float(account.entry_price[v])
        c = float(account.collateral_usd[v])
        m = float(mid[v])
        balance = c + q * (m - a)
        used = abs(q) * m / float(params.leverage[v])
        out["balance"][v] = balance
        out["used"][v] = used
        out["avail"][v] = max(balance - used, 0.0)
        if q != 0:
            # equity = maintenance margin:  c + q(p − a) = mmr·|q|·p
            p_liq = (a - c / q) / (
                1.0 - float(params.maint_margin_ratio[v]) * math.copysign(1.0, q)
            )
            if math.isfinite(p_liq) and p_liq > 0:
                has[v] = True
                out["pliq"][v] = p_liq
    return AccountInputs(
        updated=np.asarray(updated, dtype=bool).copy(),
        margin_balance_usd=out["balance"],
        margin_used_usd=out["used"],
        margin_available_usd=out["avail"],
        price_liq=out["pliq"],
        has_price_liq=has,
        dist_liq_sigma=np.full(n, _f(params.flat_dist_liq_sigma)),
    )


def market_step(
    params: MarketParams,
    mstate: MarketState,
    noise_t: MarketNoise,
    sched_t: ScenarioSchedule,
    now_ms: int,
    static: StaticSimParams = _DEFAULT_STATIC,
) -> tuple[MarketState, MarketInputs, MarketView]:
    """One tick of the canonical market model (SIMULATION §2.3 [REC]; steps as in the JAX engine)."""
    p = params
    n = len(mstate.basis)
    now = int(now_ms)
    tick = int(mstate.tick)

    # 1. vol regime (two-state Markov chain)
    regime = int(mstate.vol_regime)
    u_r = float(noise_t.u_regime)
    if regime == 1:
        if u_r < _f(p.regime_p_down):
            regime = 0
    elif u_r < _f(p.regime_p_up):
        regime = 1
    vol = _f(p.vol) * (_f(p.vol_high_mult) if regime == 1 else 1.0)
    # 2. ln S_{t+1} = ln S_t + (μ − σ²/2)h + σ√h Z + Σ_{i ≤ N_t} J_i   (§2.3)
    h = _f(p.dt_ms) / MS_PER_DAY
    n_jumps = poisson_count(float(noise_t.u_jump), _f(p.jump_intensity), static.max_jumps)
    jump = math.sqrt(n_jumps) * _f(p.jump_sigma) * float(noise_t.z_jump)
    z = float(noise_t.z)
    log_s = (
        float(mstate.log_s) + (_f(p.drift) - 0.5 * vol * vol) * h + vol * math.sqrt(h) * z + jump
    )
    s = _f(p.s0) * math.exp(log_s)  # the state carries ln(S/s0)

    basis = np.zeros(n)
    mid = np.zeros(n)
    spread = np.zeros(n)
    bid = np.zeros(n)
    ask = np.zeros(n)
    depth = np.zeros(n)
    touch = np.zeros(n)
    thin = np.zeros(n, dtype=bool)
    stale = np.zeros(n, dtype=bool)
    stale_left = np.zeros(n, dtype=np.int64)
    outage = np.zeros(n, dtype=bool)
    f8 = np.zeros(n)
    p_st = _f(p.stale_prob)
    lo, hi = _i(p.stale_min_ticks), _i(p.stale_max_ticks)
    for v in range(n):
        # 3. basis AR(1) around b̄_v; venue mid
        basis[v] = (
            _f(p.basis_rho) * float(mstate.basis[v])
            + (1.0 - _f(p.basis_rho)) * float(p.basis_mean[v])
            + _f(p.basis_sigma) * float(noise_t.eps_basis[v])
        )
        mid[v] = s * (1.0 + basis[v]) * float(sched_t.mid_mult[v])
        # 4. spread with DR multiplier/offset, κ_s widening, storm multiplier and bp shock
        spr = (
            float(p.spread_base[v]) * _f(p.spread_mult) * (1.0 + _f(p.spread_kappa) * abs(z))
            + float(p.spread_offset[v])
        ) * float(sched_t.spread_mult[v]) + float(sched_t.spread_add_bps[v]) * 1e-4 * s
        spread[v] = max(spr, _f(p.spread_min))
        bid[v] = mid[v] - 0.5 * spread[v]
        ask[v] = mid[v] + 0.5 * spread[v]
        # 5. depth (thin-book event, overlay) and touch size
        thin[v] = float(noise_t.u_thin[v]) < _f(p.thin_prob)
        mult = _f(p.thin_mult) if thin[v] else 1.0
        depth[v] = max(float(p.depth_usd[v]) * mult * float(sched_t.depth_mult[v]), 0.0)
        touch[v] = depth[v] / (bid[v] + ask[v])
        # 6. stale window (§2.5) and outage (overlay or per-episode disable window)
        left = int(mstate.stale_left[v])
        u = float(noise_t.u_stale[v])
        if left <= 0 and u < p_st:
            frac = u / (p_st if p_st > 0 else 1.0)
            left = min(lo + math.floor(frac * float(hi - lo + 1)), hi)
        stale[v] = left > 0
        stale_left[v] = max(left - 1, 0)
        disabled = int(mstate.disable_start[v]) <= tick < int(mstate.disable_end[v])
        outage[v] = bool(sched_t.outage[v]) or disabled
        # 7. funding rate with overlays
        f8[v] = float(sched_t.funding_sign[v]) * (
            float(p.funding_8h[v]) + float(sched_t.funding_add[v])
        )

    # 7. settlement every period of sim time
    nxt = int(mstate.next_settle_ms)
    period = _i(p.funding_period_ms)
    settle_now = now >= nxt
    if settle_now:
        nxt = nxt + ((now - nxt) // period + 1) * period
    settle = np.full(n, settle_now, dtype=bool)
    acct = mstate.account
    paid = funding_payments(f8, acct.position_tao, mid, settle)
    acct = AccountState(
        position_tao=np.array(acct.position_tao, dtype=np.float64, copy=True),
        entry_price=np.array(acct.entry_price, dtype=np.float64, copy=True),
        collateral_usd=np.asarray(acct.collateral_usd, np.float64) - paid,
    )
    # 8. account snapshot, 9. latency
    snap = account_snapshot(p, acct, mid, ~outage)
    lat = latency_ticks(float(sched_t.latency_ms), _f(p.dt_ms), static)
    updated = ~stale & ~outage

    inputs = MarketInputs(
        now_ms=np.asarray(now, dtype=np.int64),
        book=BookInputs(
            updated=updated, bid_px=bid, bid_sz=touch.copy(), ask_px=ask, ask_sz=touch.copy()
        ),
        funding=FundingInputs(
            updated=~outage,
            rate_8h=f8.copy(),
            next_funding_ms=np.full(n, nxt, dtype=np.int64),
            has_next=np.ones(n, dtype=bool),
        ),
        account=snap,
    )
    view = MarketView(
        tick=np.asarray(tick, dtype=np.int64),
        now_ms=np.asarray(now, dtype=np.int64),
        fair=np.asarray(s),
        mid=mid,
        bid=bid.copy(),
        ask=ask.copy(),
        spread=spread,
        depth_usd=depth,
        touch_size=touch,
        thin=thin,
        stale=stale,
        outage=outage,
        book_updated=updated.copy(),
        funding_8h=f8,
        settle=settle,
        funding_paid_usd=paid,
        latency_ticks=np.asarray(lat, dtype=np.int64),
        n_jumps=np.asarray(n_jumps, dtype=np.int64),
        vol_regime=np.asarray(regime, dtype=np.int64),
    )
    mstate = mstate.replace(
        log_s=np.asarray(log_s),
        vol_regime=np.asarray(regime, dtype=np.int64),
        basis=basis,
        funding_8h=f8.copy(),
        next_settle_ms=np.asarray(nxt, dtype=np.int64),
        stale_left=stale_left,
        tick=np.asarray(tick + 1, dtype=np.int64),
        account=acct,
    )
    return mstate, inputs, view
