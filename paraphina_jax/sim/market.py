"""Canonical market model, `market_model_version = 2`, JAX engine (SIMULATION §2.3–§2.6, §6.8).

One tick for ONE environment (callers vmap over episodes and `lax.scan` over ticks). Every random
number comes in through :class:`~paraphina_jax.sim.types.MarketNoise` (drawn once from the key),
so the float64 NumPy mirror `paraphina_jax.reference.sim_market` reproduces it on the same draws.

Per tick, in this order (the state holds the values of the previous tick; the initial state is
"tick −1" with ln(S/s0) = 0 and basis = b̄; the state carries ln(S/s0), not ln S, so float32
runs keep the precision of small numbers):

1. vol regime: a two-state Markov chain switches with `u_regime`; σ_t = σ·(mult if high);
2. ln S ← ln S + (μ − σ_t²/2)h + σ_t√h·z + sqrt(n)·σ_J·z_jump, h = Δt/1 day,
   n ~ Poisson(λ) by inverse CDF of `u_jump` truncated at `max_jumps`;
3. basis_v ← ρ·basis_v + (1 − ρ)·b̄_v + σ_b·ε_v ; m_v = S·(1 + basis_v)·mid_mult_v;
4. spr_v = max((spr̄_v·mult·(1 + κ_s|z|) + off_v)·storm_v + add_bps_v·1e-4·S, spread_min);
   bid/ask = m_v ∓ spr_v/2;
5. depth_v = max(depth_v·(thin_mult if u_thin < p_thin)·depth_mult_v, 0); each side's touch holds
   depth_v/(bid + ask) TAO, so bid·sz + ask·sz = depth_v (D4);
6. stale windows (start when not stale and u_stale < p; length lo + floor((u/p)(hi − lo + 1)))
   and outages (scenario overlay or per-episode disable window): no book update published;
7. funding f8_v = sign_v·(base_v + add_v); at `now ≥ next_settle` every venue settles and the
   exchange account pays f8·q·m (longs pay when f8 > 0); next settlement += k·period;
8. account snapshot of the isolated-margin model (:func:`account_snapshot`) at m_v;
9. latency ticks d = clip(ceil(latency/Δt), 0, max_latency_ticks).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jax import lax

from paraphina_jax.sim.execution import funding_payments
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
from paraphina_jax.utils.fusion import materialize_tree

Array = Any

_DEFAULT_STATIC = StaticSimParams()
_INJECT_MIN_ABS_TAO = 1e-9  # SIMULATION §5


def initial_market_state(
    params: MarketParams,
    static: StaticSimParams = _DEFAULT_STATIC,
    episode_noise: EpisodeNoise | None = None,
    initial_q_tao: Array = 0.0,
) -> MarketState:
    """Fresh market state ("tick −1") for one environment.

    Args:
      params: market params (one environment).
      static: shapes (N, horizon T for disable-event start ticks).
      episode_noise: per-episode uniforms; None = no disable events.
      initial_q_tao: initial inventory q0 booked on venue 0's exchange account at entry s0
        (mirrors the strategy's fee-free injection, SIMULATION §5; skipped when |q0| < 1e-9).
    Returns:
      :class:`MarketState` with float leaves in JAX's default float dtype.
    """
    n = static.n_venues
    fd = jnp.zeros(()).dtype
    idt = jnp.zeros((), dtype=int).dtype
    s0 = jnp.asarray(params.s0, fd)
    zeros_i = jnp.zeros(n, idt)
    if episode_noise is None:
        d_start, d_end = zeros_i, zeros_i
    else:
        lo = jnp.asarray(params.disable_min_ticks, idt)
        hi = jnp.asarray(params.disable_max_ticks, idt)
        on = episode_noise.u_disable < params.disable_prob
        start = jnp.floor(episode_noise.u_start * static.n_ticks).astype(idt)
        start = jnp.clip(start, 0, static.n_ticks - 1)
        span = (hi - lo + 1).astype(fd)
        length = jnp.minimum(lo + jnp.floor(episode_noise.u_len * span).astype(idt), hi)
        length = jnp.maximum(length, 0)
        d_start = jnp.where(on, start, 0)
        d_end = jnp.where(on, start + length, 0)
    q0 = jnp.asarray(initial_q_tao, fd)
    inject = (jnp.arange(n) == 0) & (jnp.abs(q0) >= _INJECT_MIN_ABS_TAO)
    account = AccountState(
        position_tao=jnp.where(inject, q0, 0.0).astype(fd),
        entry_price=jnp.where(inject, s0, 0.0).astype(fd),
        collateral_usd=jnp.broadcast_to(jnp.asarray(params.collateral_usd, fd), (n,)),
    )
    pending = PendingIOC(
        valid=jnp.zeros((2, n), bool),
        side=jnp.ones((2, n), idt),
        size=jnp.zeros((2, n), fd),
        price=jnp.zeros((2, n), fd),
        due_tick=jnp.zeros((2, n), idt),
        rank=jnp.zeros((2, n), idt),
    )
    return MarketState(
        log_s=jnp.zeros((), fd),
        vol_regime=jnp.asarray(params.vol_regime0, idt),
        basis=jnp.broadcast_to(jnp.asarray(params.basis_mean, fd), (n,)),
        funding_8h=jnp.broadcast_to(jnp.asarray(params.funding_8h, fd), (n,)),
        next_settle_ms=jnp.asarray(params.funding_first_ms, idt),
        stale_left=zeros_i,
        disable_start=d_start,
        disable_end=d_end,
        tick=jnp.zeros((), idt),
        account=account,
        pending=pending,
    )


def poisson_count(u: Array, lam: Array, max_jumps: int) -> Array:
    """Poisson(λ) by inverse CDF of `u`: n = #{k < cap : u ≥ F(k)}, F(k) = P(N ≤ k). `[]` int."""
    term = jnp.exp(-lam)
    cdf = term
    n = jnp.zeros((), jnp.zeros((), dtype=int).dtype)
    for k in range(max_jumps):
        n = n + (u >= cdf).astype(n.dtype)
        term = term * lam / (k + 1)
        cdf = cdf + term
    return n


def latency_ticks(latency_ms: Array, dt_ms: Array, static: StaticSimParams) -> Array:
    """`[]` int: ceil(latency/Δt) clipped to [0, max_latency_ticks] (SIMULATION §3.5)."""
    d = jnp.ceil(latency_ms / dt_ms)
    return jnp.clip(d, 0, static.max_latency_ticks).astype(jnp.zeros((), dtype=int).dtype)


def account_snapshot(
    params: MarketParams, account: AccountState, mid: Array, updated: Array
) -> AccountInputs:
    """Isolated-margin snapshot per venue (STRATEGY §5.2 [REC]) at marks `mid [N]`.

    balance = C + q(m − entry); used = |q|·m/leverage; available = max(balance − used, 0);
    liquidation where equity = maintenance margin: p_liq = (entry − C/q)/(1 − mmr·sign q).
    `has_price_liq` where q ≠ 0 and p_liq is finite and > 0 (a long whose collateral covers the
    whole notional cannot be liquidated); elsewhere `dist_liq_sigma = flat_dist_liq_sigma`.
    """
    q, a, c = account.position_tao, account.entry_price, account.collateral_usd
    balance = c + q * (mid - a)
    used = jnp.abs(q) * mid / params.leverage
    available = jnp.maximum(balance - used, 0.0)
    nz = q != 0
    q_safe = jnp.where(nz, q, 1.0)
    p_liq = (a - c / q_safe) / (1.0 - params.maint_margin_ratio * jnp.sign(q))
    has = nz & jnp.isfinite(p_liq) & (p_liq > 0)
    return AccountInputs(
        updated=updated,
        margin_balance_usd=balance,
        margin_used_usd=used,
        margin_available_usd=available,
        price_liq=jnp.where(has, p_liq, 0.0),
        has_price_liq=has,
        dist_liq_sigma=jnp.broadcast_to(
            jnp.asarray(params.flat_dist_liq_sigma, mid.dtype), mid.shape
        ),
    )


def market_step(
    params: MarketParams,
    mstate: MarketState,
    noise_t: MarketNoise,
    sched_t: ScenarioSchedule,
    now_ms: Array,
    static: StaticSimParams = _DEFAULT_STATIC,
) -> tuple[MarketState, MarketInputs, MarketView]:
    """Advance the market one tick and emit the observation and the true book.

    Args:
      params: market params.
      mstate: state after the previous tick.
      noise_t: this tick's noise (one row of :class:`MarketNoise`).
      sched_t: this tick's scenario overlays (one row of `ScenarioSchedule`: `[N]` fields,
        `[]` latency and toxicity floor).
      now_ms: `[]` int time of this tick.
      static: caps (jump count, latency ticks).
    Returns:
      `(mstate, inputs, view)`: the new state, the strategy's :class:`MarketInputs` (book only
      where published, funding and account snapshots where the venue is not out) and the
      :class:`MarketView` of this tick.
    """
    p = params
    fd = mstate.log_s.dtype
    idt = mstate.tick.dtype
    n = mstate.basis.shape[-1]
    now = jnp.asarray(now_ms).astype(idt)

    # 1. vol regime
    r = mstate.vol_regime
    switch = jnp.where(r == 1, noise_t.u_regime < p.regime_p_down, noise_t.u_regime < p.regime_p_up)
    regime = jnp.where(switch, 1 - r, r).astype(idt)
    vol = p.vol * jnp.where(regime == 1, p.vol_high_mult, 1.0)
    # 2. latent log price
    h = p.dt_ms / MS_PER_DAY
    n_jumps = poisson_count(noise_t.u_jump, p.jump_intensity, static.max_jumps).astype(idt)
    jump = jnp.sqrt(n_jumps.astype(fd)) * p.jump_sigma * noise_t.z_jump
    log_s = mstate.log_s + (p.drift - 0.5 * vol * vol) * h + vol * jnp.sqrt(h) * noise_t.z + jump
    log_s = log_s.astype(fd)
    s = p.s0 * jnp.exp(log_s)
    # 3. basis and venue mids
    basis = (
        p.basis_rho * mstate.basis
        + (1.0 - p.basis_rho) * p.basis_mean
        + p.basis_sigma * noise_t.eps_basis
    ).astype(fd)
    mid = s * (1.0 + basis) * sched_t.mid_mult
    # 4. spreads
    spread = (
        p.spread_base * p.spread_mult * (1.0 + p.spread_kappa * jnp.abs(noise_t.z))
        + p.spread_offset
    ) * sched_t.spread_mult + sched_t.spread_add_bps * 1e-4 * s
    spread = jnp.maximum(spread, p.spread_min)
    half = 0.5 * spread
    bid = mid - half
    ask = mid + half
    # 5. depth and thin book
    thin = noise_t.u_thin < p.thin_prob
    depth = jnp.maximum(p.depth_usd * jnp.where(thin, p.thin_mult, 1.0) * sched_t.depth_mult, 0.0)
    touch = depth / (bid + ask)
    # 6. stale windows and outages
    p_st = p.stale_prob
    lo = jnp.asarray(p.stale_min_ticks, idt)
    hi = jnp.asarray(p.stale_max_ticks, idt)
    start = (mstate.stale_left <= 0) & (noise_t.u_stale < p_st)
    frac = noise_t.u_stale / jnp.where(p_st > 0, p_st, 1.0)
    dur = jnp.minimum(lo + jnp.floor(frac * (hi - lo + 1).astype(fd)).astype(idt), hi)
    left = jnp.where(start, dur, mstate.stale_left)
    stale = left > 0
    stale_left = jnp.maximum(left - 1, 0)
    t = mstate.tick
    disabled = (t >= mstate.disable_start) & (t < mstate.disable_end)
    outage = jnp.asarray(sched_t.outage, bool) | disabled
    updated = ~stale & ~outage
    # 7. funding and settlement
    f8 = (sched_t.funding_sign * (p.funding_8h + sched_t.funding_add)).astype(fd)
    nxt = mstate.next_settle_ms
    period = jnp.asarray(p.funding_period_ms, idt)
    settle_now = now >= nxt
    k = (now - nxt) // period + 1
    next_settle = jnp.where(settle_now, nxt + k * period, nxt)
    settle = jnp.broadcast_to(settle_now, (n,))
    acct = mstate.account
    paid = funding_payments(f8, acct.position_tao, mid, settle)
    acct = acct.replace(collateral_usd=acct.collateral_usd - paid)
    # 8. account snapshot, 9. latency
    snap = account_snapshot(p, acct, mid, ~outage)
    lat = latency_ticks(sched_t.latency_ms, p.dt_ms, static)

    inputs = MarketInputs(
        now_ms=now,
        book=BookInputs(updated=updated, bid_px=bid, bid_sz=touch, ask_px=ask, ask_sz=touch),
        funding=FundingInputs(
            updated=~outage,
            rate_8h=f8,
            next_funding_ms=jnp.broadcast_to(next_settle, (n,)),
            has_next=jnp.ones((n,), bool),
        ),
        account=snap,
    )
    view = MarketView(
        tick=t,
        now_ms=now,
        fair=s,
        mid=mid,
        bid=bid,
        ask=ask,
        spread=spread,
        depth_usd=depth,
        touch_size=touch,
        thin=thin,
        stale=stale,
        outage=outage,
        book_updated=updated,
        funding_8h=f8,
        settle=settle,
        funding_paid_usd=paid,
        latency_ticks=lat,
        n_jumps=n_jumps,
        vol_regime=regime,
    )
    mstate = mstate.replace(
        log_s=log_s,
        vol_regime=regime,
        basis=basis,
        funding_8h=f8,
        next_settle_ms=next_settle,
        stale_left=stale_left,
        tick=t + 1,
        account=acct,
    )
    # The tick computed once (utils.fusion): otherwise XLA re-fuses the price chain (exp, basis,
    # mids) into every downstream consumer (fills, ladder, strategy) and recomputes it there.
    return materialize_tree((mstate, inputs, view))


def market_path(
    params: MarketParams,
    mstate: MarketState,
    noise: MarketNoise,
    sched: ScenarioSchedule,
    start_ms: Array,
    static: StaticSimParams = _DEFAULT_STATIC,
) -> tuple[MarketState, MarketView]:
    """Run the market alone over `T` ticks (`lax.scan`); the market is exogenous to trading.

    Tick t is at `start_ms + t·dt_ms` (dt rounded to integer ms).

    Args:
      noise: `[T, ...]` noise of ticks 0…T−1.
      sched: `[T, N]` schedule.
    Returns:
      `(mstate, views)` with `views` a :class:`MarketView` stacked `[T, ...]`.
    """
    idt = mstate.tick.dtype
    dt = jnp.round(jnp.asarray(params.dt_ms)).astype(idt)
    t0 = mstate.tick

    def body(ms: MarketState, xs: tuple[MarketNoise, ScenarioSchedule]) -> tuple[Any, MarketView]:
        nz, sc = xs
        now = jnp.asarray(start_ms).astype(idt) + (ms.tick - t0) * dt
        ms, _, view = market_step(params, ms, nz, sc, now, static)
        return ms, view

    return lax.scan(body, mstate, (noise, sched))
