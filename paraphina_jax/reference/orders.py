"""MM order management, float64 NumPy reference engine (STRATEGY.md §13, SIMULATION.md §13.5).

One post-only GTC order per venue per side; the slot table is `[N, 2]` (side 0 = bid/buy,
1 = ask/sell). The planner loops over venues ascending, buy then sell — the emission order.

* :func:`plan_orders` — §13 planner; * :func:`apply_order_plan` — slot updates and ids;
* :func:`cancel_all` — the kill-transition cancel-all (§16.5).
"""

from __future__ import annotations

import math

import numpy as np

from paraphina_jax.config.types import StrategyConfig
from paraphina_jax.strategy.types import OrderPlan, QuoteSet, StrategyState

TICK_FLOOR = 1e-6  # SIMULATION §13.3: the quoting tick floor
BUY, SELL = 0, 1  # side axis of the slot table


def _div(a: float, b: float) -> float:
    """IEEE division (±inf / nan instead of ZeroDivisionError)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(a) / np.float64(b))


def dangerous_mask(state: StrategyState, cfg: StrategyConfig) -> np.ndarray:
    """§13 dangerous test of the resting orders, `[N, 2]` bool.

    Touches are the state's `mid ∓ spread/2`; book unknown (mid/spread absent or non-finite) ⇒
    dangerous. buy: `p > bid − tick or p ≥ ask − tick`; sell: `p < ask + tick or p ≤ bid + tick`.
    """
    v = state.venues
    n = len(v.mid)
    out = np.zeros((n, 2), dtype=bool)
    for i in range(n):
        mid, spr = float(v.mid[i]), float(v.spread[i])
        if not (bool(v.has_mid[i]) and math.isfinite(mid) and math.isfinite(spr)):
            out[i, :] = True  # book unknown
            continue
        best_bid = mid - spr / 2.0
        best_ask = mid + spr / 2.0
        tick = max(float(cfg.venues.tick_size[i]), TICK_FLOOR)
        p_buy = float(v.mm_price[i, BUY])
        p_sell = float(v.mm_price[i, SELL])
        out[i, BUY] = p_buy > best_bid - tick or p_buy >= best_ask - tick
        out[i, SELL] = p_sell < best_ask + tick or p_sell <= best_bid + tick
    return out


def plan_orders(
    state: StrategyState, quotes: QuoteSet, now_ms: int, cfg: StrategyConfig
) -> OrderPlan:
    """§13 planner (see the JAX engine for the rule set); returns `[N, 2]` masks and prices."""
    v = state.venues
    mc = cfg.mm
    n = len(v.mid)
    now = int(now_ms)
    danger = dangerous_mask(state, cfg)
    cancel = np.zeros((n, 2), dtype=bool)
    place = np.zeros((n, 2), dtype=bool)
    place_px = np.zeros((n, 2), dtype=np.float64)
    place_size = np.zeros((n, 2), dtype=np.float64)
    desired = (
        (quotes.bid_valid, quotes.bid_px, quotes.bid_size),
        (quotes.ask_valid, quotes.ask_px, quotes.ask_size),
    )
    killed = bool(state.kill_switch)
    for i in range(n):
        tick = max(float(cfg.venues.tick_size[i]), TICK_FLOOR)
        lot = float(cfg.venues.lot_size[i])
        for k in (BUY, SELL):
            has_cur = bool(v.mm_has[i, k])
            if killed:  # kill ⇒ only cancels
                cancel[i, k] = has_cur
                continue
            want = bool(desired[k][0][i])
            p_des, s_des = float(desired[k][1][i]), float(desired[k][2][i])
            if not want:
                cancel[i, k] = has_cur
                continue
            if has_cur:
                p_cur, s_cur = float(v.mm_price[i, k]), float(v.mm_size[i, k])
                age = now - int(v.mm_ts_ms[i, k])
                dangerous = bool(danger[i, k])
                if age < int(mc.min_quote_lifetime_ms) and not dangerous:
                    continue  # keep: too young to replace
                price_diff_ticks = _div(abs(p_cur - p_des), tick)
                size_diff_rel = _div(abs(s_cur - s_des), max(s_des, lot))
                out_of_tol = price_diff_ticks > float(mc.price_tol_ticks) or size_diff_rel > float(
                    mc.size_tol_rel
                )
                if cfg.flags.order_keep_dangerous_in_tol:  # D25 spec option
                    replace = out_of_tol
                else:  # D25 reference: a dangerous order is always replaced
                    replace = dangerous or out_of_tol
                if not replace:
                    continue
                cancel[i, k] = True  # replace = cancel old, then place new
            place[i, k] = True
            place_px[i, k] = p_des
            place_size[i, k] = s_des
    return OrderPlan(cancel=cancel, place=place, place_px=place_px, place_size=place_size)


def apply_order_plan(
    state: StrategyState, plan: OrderPlan, now_ms: int, cfg: StrategyConfig
) -> tuple[StrategyState, np.ndarray]:
    """Slot updates (§13): cancel clears; place sets (price, size, now, id); ids in emission order.

    Returns:
      `(state, order_ids [N, 2])`, −1 where nothing was placed.
    """
    del cfg
    v = state.venues
    n = len(v.mid)
    has = np.array(v.mm_has, copy=True)
    price = np.array(v.mm_price, copy=True)
    size = np.array(v.mm_size, copy=True)
    ts = np.array(v.mm_ts_ms, copy=True)
    oid = np.array(v.mm_id, copy=True)
    ids = np.full((n, 2), -1, dtype=oid.dtype)
    next_id = int(state.next_order_id)
    for i in range(n):
        for k in (BUY, SELL):
            if bool(plan.cancel[i, k]):
                has[i, k] = False
            if bool(plan.place[i, k]):
                has[i, k] = True
                price[i, k] = float(plan.place_px[i, k])
                size[i, k] = float(plan.place_size[i, k])
                ts[i, k] = int(now_ms)
                oid[i, k] = next_id
                ids[i, k] = next_id
                next_id += 1
    venues = v.replace(mm_has=has, mm_price=price, mm_size=size, mm_ts_ms=ts, mm_id=oid)
    next_arr = np.asarray(next_id, dtype=np.asarray(state.next_order_id).dtype)
    return state.replace(venues=venues, next_order_id=next_arr), ids


def cancel_all(state: StrategyState) -> StrategyState:
    """Cancel-all on every venue (§16.5): clears every MM slot."""
    v = state.venues
    return state.replace(venues=v.replace(mm_has=np.zeros_like(np.asarray(v.mm_has))))
