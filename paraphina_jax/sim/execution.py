"""Canonical execution / fill model, JAX engine (SIMULATION §3.5 [REC], STRATEGY §5.2–§5.3).

Pure functions on ONE environment; callers vmap. Randomness only from `MarketNoise.u_fill`.

* Passive MM quotes (:func:`fill_quotes`): the strategy's resting slots `mm_* [N, 2]` fill
  with per-tick probability `p = 1 − exp(−A_v·exp(−k_v·δ)·Δt)`, δ the SIGNED distance from the
  venue mid of THIS tick (bid: m − px, ask: px − m). Called at the start of a tick with the
  slots left by the previous tick, so δ is measured after the price move: a quote the market
  moves toward (δ shrinks or turns negative) fills more often than one it moves away from
  (adverse selection). A quote the new touch has crossed (bid ≥ ask, ask ≤ bid) fills in full
  with certainty. Otherwise the fill takes `U[min_frac, max_frac]` of the size, the fraction
  reusing the fill uniform (`u/p` is U[0,1) given `u < p`). Price = quote, fee = maker − rebate.
  A quote is live `(1 + d)` ticks after placement (d = latency ticks) and never on an outage
  venue.
* Post-only placements that would cross the current book (buy ≥ ask, sell ≤ bid), that are
  malformed, or that go to an outage venue are rejected (:func:`post_only_rejects`).
* IOC exits and hedges (:func:`execute_ioc`) walk a synthetic ladder: level ℓ = 0…L−1 at
  `touch ± ℓ·step_v` holding `touch_size_v·(1 + g·ℓ)` TAO; they fill up to the limit price at
  the size-weighted average level price, the remainder is cancelled; taker fee. Latency: an
  order decided at tick t executes against the book of tick t + d, from a one-slot-per-venue
  in-flight buffer per purpose; a new order on a slot whose previous order is still in flight
  is rejected. Orders executing on an outage venue are rejected.
* :func:`execute` = both, as one `FillBatch` of K = 4N slots: MM (venue asc, bid then ask), exits
  in their plan order (rank, then venue), hedges venue asc — ready for `apply_fills`.

Every fill is also booked on the exchange-side isolated-margin account (STRATEGY §5.3 rules per
venue); :func:`funding_payments` gives the settlement cash flows (longs pay when rate > 0).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from paraphina_jax.config.types import (
    PURPOSE_EXIT,
    PURPOSE_HEDGE,
    PURPOSE_MM,
    SIDE_BUY,
    SIDE_SELL,
)
from paraphina_jax.sim.types import (
    AccountState,
    ExecReport,
    MarketNoise,
    MarketParams,
    MarketState,
    MarketView,
    PendingIOC,
    StaticSimParams,
)
from paraphina_jax.strategy.types import ExitPlan, FillBatch, HedgePlan, OrderPlan
from paraphina_jax.utils.fusion import materialize_tree

Array = Any

_DEFAULT_STATIC = StaticSimParams()
_MAX_EXPONENT = 50.0  # exp(−k·δ) is capped at e^50 (δ far through the mid ⇒ p = 1 anyway)


def funding_payments(rate_8h: Array, position_tao: Array, mark: Array, settle: Array) -> Array:
    """Funding paid per venue at a settlement (`[N]`, + = paid by the account).

    `rate·q·mark` where `settle` (longs pay when the rate is positive, shorts receive); 0 elsewhere
    and where the product is not finite.
    """
    pay = rate_8h * position_tao * mark
    return jnp.where(settle & jnp.isfinite(pay), pay, jnp.zeros_like(pay))


def book_fills(
    account: AccountState, mask: Array, side: Array, size: Array, price: Array, fee_bps: Array
) -> AccountState:
    """Book at most one fill per venue on the exchange account (STRATEGY §5.3 rules), `[N]` each.

    Position / average entry as §5.3; collateral += realised PnL − fee.
    """
    q0, p0, c = account.position_tao, account.entry_price, account.collateral_usd
    d = jnp.where(side == SIDE_BUY, size, -size)
    fee = (fee_bps / 1e4) * price * size
    aq0, ad = jnp.abs(q0), jnp.abs(d)
    q_same = q0 + d
    flat_same = q_same == 0
    denom = jnp.where(aq0 + ad > 0, aq0 + ad, 1.0)
    avg_same = (p0 * aq0 + price * ad) / denom
    cl = jnp.minimum(ad, aq0)
    pnl = jnp.where(q0 > 0, (price - p0) * cl, (p0 - price) * cl)
    q_opp = jnp.where(aq0 == ad, 0.0, q0 + d)
    avg_opp = jnp.where(aq0 > ad, p0, jnp.where(aq0 < ad, price, 0.0))
    opening = q0 == 0
    same = (q0 > 0) == (d > 0)
    q_new = jnp.where(opening, d, jnp.where(same, jnp.where(flat_same, 0.0, q_same), q_opp))
    a_new = jnp.where(opening, price, jnp.where(same, jnp.where(flat_same, 0.0, avg_same), avg_opp))
    realised = jnp.where(opening | same, 0.0, pnl) - fee
    return AccountState(
        position_tao=jnp.where(mask, q_new, q0),
        entry_price=jnp.where(mask, a_new, p0),
        collateral_usd=jnp.where(mask, c + realised, c),
    )


def _sum_last(x: Array) -> Array:
    """Sum over a short last axis as explicit adds (XLA:CPU runs tiny reductions as separate,
    slow loops; adds fuse with their neighbours)."""
    acc = x[..., 0]
    for i in range(1, x.shape[-1]):
        acc = acc + x[..., i]
    return acc


def _valid_order(size: Array, price: Array) -> Array:
    return jnp.isfinite(size) & jnp.isfinite(price) & (size > 0) & (price > 0)


def post_only_rejects(view: MarketView, plan: OrderPlan) -> Array:
    """`[N, 2]` bool: placements rejected by the venue (crossing post-only, malformed, outage).

    Crossing is tested against the true book of this tick: buy ≥ best ask, sell ≤ best bid.
    """
    px = plan.place_px
    crossing = jnp.stack([px[:, 0] >= view.ask, px[:, 1] <= view.bid], axis=1)
    bad = ~_valid_order(plan.place_size, px)
    return plan.place & (crossing | bad | view.outage[:, None])


def fill_quotes(
    params: MarketParams,
    mstate: MarketState,
    view: MarketView,
    quotes: Any,
    noise_t: MarketNoise,
) -> tuple[MarketState, FillBatch, ExecReport]:
    """Passive fills of the resting MM quotes over the interval ending at this tick.

    Args:
      params: market params (A_v, k_v, fill fractions, maker fees, Δt).
      mstate: sim state (its exchange account books the fills).
      view: this tick's true book (after the price move).
      quotes: anything with the strategy's slots `mm_has, mm_price, mm_size, mm_ts_ms, mm_id`,
        `[N, 2]` each (e.g. `StrategyState.venues` as left by the previous tick).
      noise_t: this tick's noise (`u_fill [N, 2]`).
    Returns:
      `(mstate, fills [2N], report)`; fill k = 2v + side (side 0 bid/buy, 1 ask/sell).
    """
    p = params
    n = view.mid.shape[-1]
    px, sz = quotes.mm_price, quotes.mm_size
    mid = view.mid[:, None]
    sgn = jnp.array([1.0, -1.0], px.dtype)
    delta = (mid - px) * sgn  # [N, 2] signed distance on the passive side
    crossed = jnp.stack([px[:, 0] >= view.ask, px[:, 1] <= view.bid], axis=1)
    expo = jnp.minimum(-p.fill_k[:, None] * delta, _MAX_EXPONENT)
    lam = p.fill_a[:, None] * jnp.exp(expo)
    prob = jnp.where(crossed, 1.0, -jnp.expm1(-lam * (p.dt_ms / 1000.0)))
    age = (view.now_ms - quotes.mm_ts_ms).astype(px.dtype)
    live = (
        quotes.mm_has
        & _valid_order(sz, px)
        & ~view.outage[:, None]
        & (age >= (1 + view.latency_ticks).astype(px.dtype) * p.dt_ms)
    )
    u = noise_t.u_fill
    frac_u = u / jnp.where(prob > 0, prob, 1.0)
    frac = jnp.where(crossed, 1.0, p.fill_frac_min + (p.fill_frac_max - p.fill_frac_min) * frac_u)
    size = sz * frac
    fill = live & (u < prob) & (size > 0)
    # Computed once (utils.fusion): otherwise XLA re-fuses the exponentials into every consumer
    # (each account field, each FillBatch field) and recomputes them.
    fill, size = materialize_tree((fill, size))
    fee_bps = jnp.broadcast_to((p.maker_fee_bps - p.maker_rebate_bps)[:, None], (n, 2))

    side = jnp.broadcast_to(jnp.array([SIDE_BUY, SIDE_SELL], view.tick.dtype), (n, 2))
    acct = mstate.account
    for s in range(2):
        acct = book_fills(acct, fill[:, s], side[:, s], size[:, s], px[:, s], fee_bps[:, s])
    size = jnp.where(fill, size, 0.0)
    fills = FillBatch(
        valid=fill.reshape(2 * n),
        venue=jnp.repeat(jnp.arange(n, dtype=view.tick.dtype), 2),
        side=side.reshape(2 * n),
        size=size.reshape(2 * n),
        price=jnp.where(fill, px, 0.0).reshape(2 * n),
        fee_bps=fee_bps.reshape(2 * n),
        purpose=jnp.full((2 * n,), PURPOSE_MM, view.tick.dtype),
        order_id=jnp.where(fill, quotes.mm_id, -1).astype(view.tick.dtype).reshape(2 * n),
    )
    fee_usd = jnp.where(fill, fee_bps / 1e4 * px * size, 0.0)
    zi = jnp.zeros((n,), view.tick.dtype)
    zf = jnp.zeros((n,), px.dtype)
    report = ExecReport(
        maker_fills=fill[:, 0].astype(zi.dtype) + fill[:, 1].astype(zi.dtype),
        taker_fills=zi,
        maker_tao=size[:, 0] + size[:, 1],
        taker_tao=zf,
        fees_usd=fee_usd[:, 0] + fee_usd[:, 1],
        slippage_usd=zf,
        rejected=zi,
    )
    return mstate.replace(account=acct), fills, report


def walk_ladder(
    side: Array,
    size: Array,
    limit: Array,
    touch_px: Array,
    touch_size: Array,
    step: Array,
    growth: Array,
    n_levels: int,
) -> tuple[Array, Array]:
    """IOC against the synthetic ladder, closed form (shapes broadcast).

    Level ℓ < L sits at `touch + s·ℓ·step` (s = +1 buy, −1 sell) with `touch_size·(1 + gℓ)` TAO.
    Eligible levels: those within the limit (a prefix, n_e of them). Filled = min(size, Σ
    eligible sizes); cost of j full levels plus a partial one from Σ_{ℓ<j} ℓ = j(j−1)/2 and
    Σ_{ℓ<j} ℓ² = (j−1)j(2j−1)/6, j from the quadratic cumulative-size equation.

    Returns:
      `(filled, avg_price)`; avg_price is the touch where nothing fills.
    """
    s = jnp.where(side == SIDE_BUY, 1.0, -1.0)
    room = s * (limit - touch_px)
    step_safe = jnp.where(step > 0, step, 1.0)
    n_e = jnp.where(step > 0, jnp.floor(room / step_safe) + 1.0, jnp.where(room >= 0, n_levels, 0))
    n_e = jnp.clip(n_e, 0.0, float(n_levels))
    avail = touch_size * (n_e + growth * n_e * (n_e - 1.0) / 2.0)
    filled = jnp.maximum(jnp.minimum(size, avail), 0.0)
    sz0 = jnp.where(touch_size > 0, touch_size, 1.0)
    f = filled / sz0
    b = 1.0 - growth / 2.0
    root = 2.0 * f / (b + jnp.sqrt(b * b + 2.0 * growth * f))
    j = jnp.clip(jnp.floor(root), 0.0, n_e)
    rem = filled - touch_size * (j + growth * j * (j - 1.0) / 2.0)
    lev = touch_size * (j * (j - 1.0) / 2.0 + growth * (j - 1.0) * j * (2.0 * j - 1.0) / 6.0)
    lev = lev + rem * j
    avg = touch_px + s * step * lev / jnp.where(filled > 0, filled, 1.0)
    return filled, avg


def execute_ioc(
    params: MarketParams,
    mstate: MarketState,
    view: MarketView,
    exit_plan: ExitPlan,
    hedge_plan: HedgePlan,
    static: StaticSimParams = _DEFAULT_STATIC,
) -> tuple[MarketState, FillBatch, ExecReport]:
    """Accept this tick's IOC exits/hedges into the in-flight buffer and execute those due now.

    1. A slot (purpose × venue) with an order still in flight rejects the new order; accepted
       orders are due at `view.tick + view.latency_ticks` (d = 0 ⇒ this tick).
    2. Orders due now execute against `view` by :func:`walk_ladder` (rejected on outage venues).
    Args:
      exit_plan: `valid/size/price/order [N]`, `side []`.
      hedge_plan: `valid/size/price [N]`, `side []`.
    Returns:
      `(mstate, fills [2N], report)`: slots 0…N−1 exits in (plan order, venue) order, slots
      N…2N−1 hedges by venue.
    """
    p = params
    n = view.mid.shape[-1]
    idt = view.tick.dtype
    fd = view.mid.dtype
    pend = mstate.pending
    venues = jnp.arange(n, dtype=idt)

    new_valid = jnp.stack(
        [
            exit_plan.valid & _valid_order(exit_plan.size, exit_plan.price),
            hedge_plan.valid & _valid_order(hedge_plan.size, hedge_plan.price),
        ]
    )
    new_side = jnp.stack(
        [
            jnp.broadcast_to(jnp.asarray(exit_plan.side, idt), (n,)),
            jnp.broadcast_to(jnp.asarray(hedge_plan.side, idt), (n,)),
        ]
    )
    new_size = jnp.stack([exit_plan.size, hedge_plan.size]).astype(fd)
    new_price = jnp.stack([exit_plan.price, hedge_plan.price]).astype(fd)
    new_rank = jnp.stack([jnp.asarray(exit_plan.order, idt), venues])
    busy = pend.valid
    accept = new_valid & ~busy
    rej_busy = new_valid & busy
    due = view.tick + view.latency_ticks
    pend = PendingIOC(
        valid=pend.valid | accept,
        side=jnp.where(accept, new_side, pend.side),
        size=jnp.where(accept, new_size, pend.size),
        price=jnp.where(accept, new_price, pend.price),
        due_tick=jnp.where(accept, due, pend.due_tick),
        rank=jnp.where(accept, new_rank, pend.rank),
    )
    ex = pend.valid & (pend.due_tick <= view.tick)
    rej_out = ex & view.outage[None, :]
    go = ex & ~view.outage[None, :]

    buy = pend.side == SIDE_BUY
    touch_px = jnp.where(buy, view.ask[None, :], view.bid[None, :])
    filled, avg = walk_ladder(
        pend.side,
        pend.size,
        pend.price,
        touch_px,
        view.touch_size[None, :],
        p.ladder_step_usd[None, :],
        p.ladder_growth,
        static.ladder_levels,
    )
    fill = go & (filled > 0)
    filled = jnp.where(fill, filled, 0.0)
    avg = jnp.where(fill, avg, 0.0)
    # Materialise the ladder results once (see fill_quotes).
    fill, filled, avg, touch_px = materialize_tree((fill, filled, avg, touch_px))
    fee_bps = jnp.broadcast_to(p.taker_fee_bps[None, :], (2, n))
    fee_usd = jnp.where(fill, fee_bps / 1e4 * avg * filled, 0.0)
    slip = jnp.where(fill, jnp.abs(avg - touch_px) * filled, 0.0)

    acct = mstate.account
    for k in range(2):
        acct = book_fills(acct, fill[k], pend.side[k], filled[k], avg[k], fee_bps[k])

    # Exits in (rank, venue) order: position = number of filled exits ranked ahead.
    key = pend.rank[0] * n + venues
    ahead = fill[0][None, :] & (key[None, :] < key[:, None])  # [v, u]: u ahead of v
    pos = _sum_last(ahead.astype(idt))
    sel = fill[0][None, :] & (pos[None, :] == venues[:, None])  # [slot, v]
    slot_used = _sum_last(sel.astype(idt)) > 0

    def perm(x: Array, empty: Any) -> Array:
        got = _sum_last(jnp.where(sel, x[None, :], jnp.zeros((), x.dtype)))
        return jnp.where(slot_used, got, jnp.asarray(empty, x.dtype))

    exit_fills = FillBatch(
        valid=slot_used,
        venue=perm(venues, 0),
        side=perm(pend.side[0], SIDE_BUY),
        size=perm(filled[0], 0.0),
        price=perm(avg[0], 0.0),
        fee_bps=perm(fee_bps[0], 0.0),
        purpose=jnp.full((n,), PURPOSE_EXIT, idt),
        order_id=jnp.full((n,), -1, idt),
    )
    hedge_fills = FillBatch(
        valid=fill[1],
        venue=venues,
        side=pend.side[1],
        size=filled[1],
        price=avg[1],
        fee_bps=fee_bps[1],
        purpose=jnp.full((n,), PURPOSE_HEDGE, idt),
        order_id=jnp.full((n,), -1, idt),
    )
    fills = concat_fills(exit_fills, hedge_fills)
    report = ExecReport(
        maker_fills=jnp.zeros((n,), idt),
        taker_fills=fill[0].astype(idt) + fill[1].astype(idt),
        maker_tao=jnp.zeros((n,), fd),
        taker_tao=filled[0] + filled[1],
        fees_usd=fee_usd[0] + fee_usd[1],
        slippage_usd=slip[0] + slip[1],
        rejected=_sum_last(jnp.concatenate([rej_busy, rej_out]).T.astype(idt)),
    )
    mstate = mstate.replace(account=acct, pending=pend.replace(valid=pend.valid & ~ex))
    return mstate, fills, report


def concat_fills(*batches: FillBatch) -> FillBatch:
    """Concatenate fill batches along `[K]`, in argument order."""
    names = ("valid", "venue", "side", "size", "price", "fee_bps", "purpose", "order_id")
    return FillBatch(**{k: jnp.concatenate([getattr(b, k) for b in batches]) for k in names})


def add_reports(a: ExecReport, b: ExecReport) -> ExecReport:
    """Field-wise sum of two reports."""
    return ExecReport(
        maker_fills=a.maker_fills + b.maker_fills,
        taker_fills=a.taker_fills + b.taker_fills,
        maker_tao=a.maker_tao + b.maker_tao,
        taker_tao=a.taker_tao + b.taker_tao,
        fees_usd=a.fees_usd + b.fees_usd,
        slippage_usd=a.slippage_usd + b.slippage_usd,
        rejected=a.rejected + b.rejected,
    )


def execute(
    params: MarketParams,
    mstate: MarketState,
    view: MarketView,
    quotes: Any,
    exit_plan: ExitPlan,
    hedge_plan: HedgePlan,
    noise_t: MarketNoise,
    static: StaticSimParams = _DEFAULT_STATIC,
) -> tuple[MarketState, FillBatch, ExecReport]:
    """:func:`fill_quotes` then :func:`execute_ioc`: one `FillBatch` of K = 4N slots.

    Order: MM (venue asc, bid then ask), exits in plan order, hedges venue asc.
    """
    mstate, mm, r1 = fill_quotes(params, mstate, view, quotes, noise_t)
    mstate, ioc, r2 = execute_ioc(params, mstate, view, exit_plan, hedge_plan, static)
    return mstate, concat_fills(mm, ioc), add_reports(r1, r2)
