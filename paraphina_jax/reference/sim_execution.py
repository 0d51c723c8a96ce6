"""Canonical execution / fill model, float64 NumPy reference engine (SIMULATION §3.5 [REC]).

Same functions as `paraphina_jax.sim.execution`, written as plain loops over venues and ladder
levels (the JAX engine walks the ladder in closed form). Consumes the same `MarketNoise` row.
Never mutates its inputs.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

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

_DEFAULT_STATIC = StaticSimParams()
_MAX_EXPONENT = 50.0


def _f(x: Any) -> float:
    return float(np.asarray(x))


def _valid_order(size: float, price: float) -> bool:
    return math.isfinite(size) and math.isfinite(price) and size > 0 and price > 0


def funding_payments(
    rate_8h: np.ndarray, position_tao: np.ndarray, mark: np.ndarray, settle: np.ndarray
) -> np.ndarray:
    """Funding paid per venue at a settlement: rate·q·mark (+ = paid; longs pay when rate > 0)."""
    n = len(rate_8h)
    out = np.zeros(n)
    for v in range(n):
        pay = float(rate_8h[v]) * float(position_tao[v]) * float(mark[v])
        if settle[v] and math.isfinite(pay):
            out[v] = pay
    return out


def _book_one(q0: float, p0: float, c: float, side: int, size: float, price: float, fee_bps: float):
    """STRATEGY §5.3 position / entry rules for one fill; returns (q, entry, collateral)."""
    d = size if side == SIDE_BUY else -size
    fee = fee_bps / 1e4 * price * size
    realised = 0.0
    if q0 == 0:
        q, a = d, price
    elif (q0 > 0) == (d > 0):
        q = q0 + d
        a = 0.0 if q == 0 else (p0 * abs(q0) + price * abs(d)) / (abs(q0) + abs(d))
        if q == 0:
            q = 0.0
    else:
        cl = min(abs(d), abs(q0))
        realised = (price - p0) * cl if q0 > 0 else (p0 - price) * cl
        if abs(q0) > abs(d):
            q, a = q0 + d, p0
        elif abs(q0) < abs(d):
            q, a = q0 + d, price
        else:
            q, a = 0.0, 0.0
    return q, a, c + realised - fee


def book_fills(
    account: AccountState,
    mask: np.ndarray,
    side: np.ndarray,
    size: np.ndarray,
    price: np.ndarray,
    fee_bps: np.ndarray,
) -> AccountState:
    """Book at most one fill per venue on the exchange account (`[N]` each)."""
    q = np.array(account.position_tao, dtype=np.float64, copy=True)
    a = np.array(account.entry_price, dtype=np.float64, copy=True)
    c = np.array(account.collateral_usd, dtype=np.float64, copy=True)
    for v in range(len(q)):
        if mask[v]:
            q[v], a[v], c[v] = _book_one(
                q[v], a[v], c[v], int(side[v]), float(size[v]), float(price[v]), float(fee_bps[v])
            )
    return AccountState(position_tao=q, entry_price=a, collateral_usd=c)


def post_only_rejects(view: MarketView, plan: OrderPlan) -> np.ndarray:
    """`[N, 2]` bool: placements rejected (crossing post-only, malformed, outage venue)."""
    n = len(view.mid)
    out = np.zeros((n, 2), dtype=bool)
    for v in range(n):
        for s in range(2):
            if not plan.place[v, s]:
                continue
            px, sz = float(plan.place_px[v, s]), float(plan.place_size[v, s])
            crossing = px >= view.ask[v] if s == 0 else px <= view.bid[v]
            out[v, s] = crossing or not _valid_order(sz, px) or bool(view.outage[v])
    return out


def fill_quotes(
    params: MarketParams,
    mstate: MarketState,
    view: MarketView,
    quotes: Any,
    noise_t: MarketNoise,
) -> tuple[MarketState, FillBatch, ExecReport]:
    """Passive fills of the resting MM quotes (see the JAX engine for the model)."""
    p = params
    n = len(view.mid)
    dt_ms = _f(p.dt_ms)
    fmin, fmax = _f(p.fill_frac_min), _f(p.fill_frac_max)
    lat = int(view.latency_ticks)
    now = int(view.now_ms)
    fill = np.zeros((n, 2), dtype=bool)
    size = np.zeros((n, 2))
    price = np.zeros((n, 2))
    fee = np.zeros((n, 2))
    oid = np.full((n, 2), -1, dtype=np.int64)
    sides = np.array([SIDE_BUY, SIDE_SELL], dtype=np.int64)
    maker_fills = np.zeros(n, dtype=np.int64)
    maker_tao = np.zeros(n)
    fees_usd = np.zeros(n)
    for v in range(n):
        fee_bps = float(p.maker_fee_bps[v]) - float(p.maker_rebate_bps[v])
        fee[v, :] = fee_bps
        for s in range(2):
            px, sz = float(quotes.mm_price[v, s]), float(quotes.mm_size[v, s])
            if s == 0:
                delta = float(view.mid[v]) - px
                crossed = px >= float(view.ask[v])
            else:
                delta = px - float(view.mid[v])
                crossed = px <= float(view.bid[v])
            if crossed:
                prob = 1.0
            else:
                lam = float(p.fill_a[v]) * math.exp(min(-float(p.fill_k[v]) * delta, _MAX_EXPONENT))
                prob = -math.expm1(-lam * (dt_ms / 1000.0))
            age = float(now - int(quotes.mm_ts_ms[v, s]))
            live = (
                bool(quotes.mm_has[v, s])
                and _valid_order(sz, px)
                and not bool(view.outage[v])
                and age >= float(1 + lat) * dt_ms
            )
            u = float(noise_t.u_fill[v, s])
            frac = 1.0 if crossed else fmin + (fmax - fmin) * (u / (prob if prob > 0 else 1.0))
            q = sz * frac
            if live and u < prob and q > 0:
                fill[v, s] = True
                size[v, s] = q
                price[v, s] = px
                oid[v, s] = int(quotes.mm_id[v, s])
                maker_fills[v] += 1
                maker_tao[v] += q
                fees_usd[v] += fee_bps / 1e4 * px * q
    acct = mstate.account
    for s in range(2):
        acct = book_fills(
            acct, fill[:, s], np.full(n, sides[s]), size[:, s], price[:, s], fee[:, s]
        )
    fills = FillBatch(
        valid=fill.reshape(2 * n),
        venue=np.repeat(np.arange(n, dtype=np.int64), 2),
        side=np.tile(sides, n),
        size=size.reshape(2 * n),
        price=price.reshape(2 * n),
        fee_bps=fee.reshape(2 * n),
        purpose=np.full(2 * n, PURPOSE_MM, dtype=np.int64),
        order_id=oid.reshape(2 * n),
    )
    report = ExecReport(
        maker_fills=maker_fills,
        taker_fills=np.zeros(n, dtype=np.int64),
        maker_tao=maker_tao,
        taker_tao=np.zeros(n),
        fees_usd=fees_usd,
        slippage_usd=np.zeros(n),
        rejected=np.zeros(n, dtype=np.int64),
    )
    return mstate.replace(account=acct), fills, report


def walk_ladder(
    side: int,
    size: float,
    limit: float,
    touch_px: float,
    touch_size: float,
    step: float,
    growth: float,
    n_levels: int,
) -> tuple[float, float]:
    """Walk levels ℓ = 0…L−1 (price touch ± ℓ·step, size touch_size·(1 + gℓ)) up to the limit.

    Returns `(filled, avg_price)`; avg_price is the touch where nothing fills.
    """
    s = 1.0 if side == SIDE_BUY else -1.0
    left = max(size, 0.0)
    filled = 0.0
    cost = 0.0
    for lvl in range(n_levels):
        px = touch_px + s * lvl * step
        if s * (limit - px) < 0 or left <= 0:
            break
        take = min(left, touch_size * (1.0 + growth * lvl))
        filled += take
        cost += take * px
        left -= take
    if filled <= 0:
        return 0.0, touch_px
    return filled, cost / filled


def execute_ioc(
    params: MarketParams,
    mstate: MarketState,
    view: MarketView,
    exit_plan: ExitPlan,
    hedge_plan: HedgePlan,
    static: StaticSimParams = _DEFAULT_STATIC,
) -> tuple[MarketState, FillBatch, ExecReport]:
    """Accept this tick's IOC orders into the in-flight buffer, execute those due now."""
    p = params
    n = len(view.mid)
    tick = int(view.tick)
    pend = {
        f.name: np.array(getattr(mstate.pending, f.name), copy=True)
        for f in dataclasses.fields(PendingIOC)
    }
    rejected = np.zeros(n, dtype=np.int64)
    plans = (exit_plan, hedge_plan)
    for k in range(2):
        plan = plans[k]
        for v in range(n):
            size, price = float(plan.size[v]), float(plan.price[v])
            if not (plan.valid[v] and _valid_order(size, price)):
                continue
            if pend["valid"][k, v]:
                rejected[v] += 1  # the previous order on this slot is still in flight
                continue
            pend["valid"][k, v] = True
            pend["side"][k, v] = int(plan.side)
            pend["size"][k, v] = size
            pend["price"][k, v] = price
            pend["due_tick"][k, v] = tick + int(view.latency_ticks)
            pend["rank"][k, v] = int(exit_plan.order[v]) if k == 0 else v

    fill = np.zeros((2, n), dtype=bool)
    filled = np.zeros((2, n))
    avg = np.zeros((2, n))
    taker_fills = np.zeros(n, dtype=np.int64)
    taker_tao = np.zeros(n)
    fees_usd = np.zeros(n)
    slippage = np.zeros(n)
    for k in range(2):
        for v in range(n):
            if not (pend["valid"][k, v] and pend["due_tick"][k, v] <= tick):
                continue
            pend["valid"][k, v] = False
            if view.outage[v]:
                rejected[v] += 1
                continue
            side = int(pend["side"][k, v])
            touch = float(view.ask[v]) if side == SIDE_BUY else float(view.bid[v])
            q, px = walk_ladder(
                side,
                float(pend["size"][k, v]),
                float(pend["price"][k, v]),
                touch,
                float(view.touch_size[v]),
                float(p.ladder_step_usd[v]),
                _f(p.ladder_growth),
                static.ladder_levels,
            )
            if q > 0:
                fill[k, v] = True
                filled[k, v] = q
                avg[k, v] = px
                taker_fills[v] += 1
                taker_tao[v] += q
                fees_usd[v] += float(p.taker_fee_bps[v]) / 1e4 * px * q
                slippage[v] += abs(px - touch) * q
    fee_bps = np.stack([np.asarray(p.taker_fee_bps, np.float64)] * 2)
    acct = mstate.account
    for k in range(2):
        acct = book_fills(acct, fill[k], pend["side"][k], filled[k], avg[k], fee_bps[k])

    order = sorted((int(pend["rank"][0, v]), v) for v in range(n) if fill[0, v])
    ex = _empty_fills(n, PURPOSE_EXIT)
    for slot, (_, v) in enumerate(order):
        ex["valid"][slot] = True
        ex["venue"][slot] = v
        ex["side"][slot] = pend["side"][0, v]
        ex["size"][slot] = filled[0, v]
        ex["price"][slot] = avg[0, v]
        ex["fee_bps"][slot] = fee_bps[0, v]
    hd = _empty_fills(n, PURPOSE_HEDGE)
    for v in range(n):
        hd["venue"][v] = v
        hd["side"][v] = pend["side"][1, v]
        if fill[1, v]:
            hd["valid"][v] = True
            hd["size"][v] = filled[1, v]
            hd["price"][v] = avg[1, v]
        hd["fee_bps"][v] = fee_bps[1, v]
    fills = concat_fills(FillBatch(**ex), FillBatch(**hd))
    report = ExecReport(
        maker_fills=np.zeros(n, dtype=np.int64),
        taker_fills=taker_fills,
        maker_tao=np.zeros(n),
        taker_tao=taker_tao,
        fees_usd=fees_usd,
        slippage_usd=slippage,
        rejected=rejected,
    )
    return mstate.replace(account=acct, pending=PendingIOC(**pend)), fills, report


def _empty_fills(n: int, purpose: int) -> dict[str, np.ndarray]:
    return {
        "valid": np.zeros(n, dtype=bool),
        "venue": np.zeros(n, dtype=np.int64),
        "side": np.full(n, SIDE_BUY, dtype=np.int64),
        "size": np.zeros(n),
        "price": np.zeros(n),
        "fee_bps": np.zeros(n),
        "purpose": np.full(n, purpose, dtype=np.int64),
        "order_id": np.full(n, -1, dtype=np.int64),
    }


def concat_fills(*batches: FillBatch) -> FillBatch:
    """Concatenate fill batches along `[K]`, in argument order."""
    names = ("valid", "venue", "side", "size", "price", "fee_bps", "purpose", "order_id")
    return FillBatch(
        **{k: np.concatenate([np.asarray(getattr(b, k)) for b in batches]) for k in names}
    )


def add_reports(a: ExecReport, b: ExecReport) -> ExecReport:
    """Field-wise sum of two reports."""
    names = [f.name for f in dataclasses.fields(ExecReport)]
    return ExecReport(**{k: np.asarray(getattr(a, k)) + np.asarray(getattr(b, k)) for k in names})


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
    """`fill_quotes` then `execute_ioc`: one `FillBatch` of K = 4N slots."""
    mstate, mm, r1 = fill_quotes(params, mstate, view, quotes, noise_t)
    mstate, ioc, r2 = execute_ioc(params, mstate, view, exit_plan, hedge_plan, static)
    return mstate, concat_fills(mm, ioc), add_reports(r1, r2)
