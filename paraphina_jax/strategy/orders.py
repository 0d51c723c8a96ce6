"""MM order management, JAX engine (STRATEGY.md §13, SIMULATION.md §13.5).

One post-only GTC order per venue per side, kept in the `[N, 2]` slot table of the state
(side 0 = bid/buy, 1 = ask/sell). Pure functions on one environment; callers vmap them.

* :func:`plan_orders` — the §13 planner: cancels, places and replaces (cancel then place);
* :func:`apply_order_plan` — slot updates and deterministic order ids;
* :func:`cancel_all` — the kill-transition cancel-all (§16.5).

Emission order (ids): venue ascending, buy then sell, i.e. the row-major order of `[N, 2]`.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from paraphina_jax.config.types import StrategyConfig
from paraphina_jax.strategy.types import OrderPlan, QuoteSet, StrategyState

Array = Any

TICK_FLOOR = 1e-6  # SIMULATION §13.3: the quoting tick floor


def _touches(state: StrategyState, cfg: StrategyConfig) -> tuple[Array, Array, Array, Array]:
    """`(known, best_bid, best_ask, tick)`, each `[N]`: the state's touches `mid ∓ spread/2`."""
    v = state.venues
    fdt = v.mm_price.dtype
    mid = v.mid.astype(fdt)
    spr = v.spread.astype(fdt)
    known = v.has_mid & jnp.isfinite(mid) & jnp.isfinite(spr)
    tick = jnp.fmax(jnp.asarray(cfg.venues.tick_size, fdt), jnp.asarray(TICK_FLOOR, fdt))
    return known, mid - spr / 2.0, mid + spr / 2.0, tick


def _dangerous_side(price: Array, side: int, touches: tuple[Array, Array, Array, Array]) -> Array:
    """`[N]` dangerous test of one side (0 = buy, 1 = sell) at resting prices `price [N]`."""
    known, best_bid, best_ask, tick = touches
    if side == 0:
        off = (price > best_bid - tick) | (price >= best_ask - tick)
    else:
        off = (price < best_ask + tick) | (price <= best_bid + tick)
    return ~known | off


def dangerous_mask(state: StrategyState, cfg: StrategyConfig) -> Array:
    """§13 dangerous test of the resting orders, `[N, 2]` bool.

    Evaluated on the resting price against the state's touches `mid ∓ spread/2`; the book is
    unknown (⇒ dangerous) when mid or spread is absent or non-finite.
    buy: `p > bid − tick or p ≥ ask − tick`; sell: `p < ask + tick or p ≤ bid + tick`.
    """
    touches = _touches(state, cfg)
    p = state.venues.mm_price
    return jnp.stack([_dangerous_side(p[..., k], k, touches) for k in (0, 1)], axis=-1)


def plan_orders(
    state: StrategyState, quotes: QuoteSet, now_ms: Array, cfg: StrategyConfig
) -> OrderPlan:
    """§13 planner: desired quotes vs the resting MM slots.

    Kill ⇒ cancel every resting order, nothing else. Desired absent ⇒ cancel; no resting order ⇒
    place. Both present: keep a young (`age < MIN_QUOTE_LIFETIME_MS`) order unless dangerous;
    otherwise replace iff dangerous or `|Δp|/tick > PRICE_TOL_TICKS` or
    `|Δs|/max(s_des, lot) > SIZE_TOL_REL`. With `flags.order_keep_dangerous_in_tol` (D25 spec
    option) a dangerous order within both tolerances is kept. Each side is computed on `[N]`
    vectors and the sides are stacked at the end (cheaper than `[N, 2]` on CPU).

    Args:
      state: resting slots `mm_has/mm_price/mm_size/mm_ts_ms [N, 2]` and the book.
      quotes: desired quotes, `[N]` per side.
      now_ms: `[]` int.

    Returns:
      `OrderPlan` with `[N, 2]` cancel/place masks and the placed price/size (0 elsewhere).
    """
    v = state.venues
    fdt = v.mm_price.dtype
    mc = cfg.mm
    zero = jnp.zeros((), fdt)
    touches = _touches(state, cfg)
    tick = touches[3]
    lot = jnp.asarray(cfg.venues.lot_size, fdt)
    price_tol = jnp.asarray(mc.price_tol_ticks, fdt)
    size_tol = jnp.asarray(mc.size_tol_rel, fdt)
    kill = state.kill_switch
    desired = (
        (quotes.bid_valid, quotes.bid_px, quotes.bid_size),
        (quotes.ask_valid, quotes.ask_px, quotes.ask_size),
    )
    cols: list[tuple[Array, Array, Array, Array]] = []
    for k, (want, p_des, s_des) in enumerate(desired):
        p_des, s_des = p_des.astype(fdt), s_des.astype(fdt)
        cur = v.mm_has[..., k]
        p_cur = v.mm_price[..., k]
        danger = _dangerous_side(p_cur, k, touches)
        young = (now_ms - v.mm_ts_ms[..., k]) < mc.min_quote_lifetime_ms
        out_of_tol = (jnp.abs(p_cur - p_des) / tick > price_tol) | (
            jnp.abs(v.mm_size[..., k] - s_des) / jnp.fmax(s_des, lot) > size_tol
        )
        may_change = ~(young & ~danger)
        if cfg.flags.order_keep_dangerous_in_tol:
            replace = may_change & out_of_tol
        else:
            replace = may_change & (danger | out_of_tol)
        both = cur & want
        cancel = jnp.where(kill, cur, (cur & ~want) | (both & replace))
        place = ((want & ~cur) | (both & replace)) & ~kill
        cols.append((cancel, place, jnp.where(place, p_des, zero), jnp.where(place, s_des, zero)))

    def sides(f: int) -> Array:
        return jnp.stack([cols[0][f], cols[1][f]], axis=-1)

    return OrderPlan(cancel=sides(0), place=sides(1), place_px=sides(2), place_size=sides(3))


def apply_order_plan(
    state: StrategyState, plan: OrderPlan, now_ms: Array, cfg: StrategyConfig
) -> tuple[StrategyState, Array]:
    """Slot update rule of §13 (acknowledged cancels and places).

    A cancel clears the slot; a place sets `(price, size, ts = now, id)` with ids taken from
    `state.next_order_id` in emission order (venue ascending, buy then sell); `next_order_id`
    advances by the number of places.

    Args:
      plan: `OrderPlan`, `[N, 2]` fields.
      now_ms: `[]` int.

    Returns:
      `(state, order_ids [N, 2])`: ids of the placed orders, −1 where nothing was placed.
    """
    del cfg
    v = state.venues
    idt = v.mm_id.dtype
    place = plan.place
    seq = jnp.cumsum(place.reshape(-1).astype(idt)).reshape(place.shape) - 1
    base = state.next_order_id.astype(idt)
    ids = jnp.where(place, base + seq, jnp.asarray(-1, idt))
    venues = v.replace(
        mm_has=(v.mm_has & ~plan.cancel) | place,
        mm_price=jnp.where(place, plan.place_px.astype(v.mm_price.dtype), v.mm_price),
        mm_size=jnp.where(place, plan.place_size.astype(v.mm_size.dtype), v.mm_size),
        mm_ts_ms=jnp.where(place, jnp.asarray(now_ms, v.mm_ts_ms.dtype), v.mm_ts_ms),
        mm_id=jnp.where(place, ids, v.mm_id),
    )
    n_placed = jnp.sum(place.astype(state.next_order_id.dtype))
    return state.replace(venues=venues, next_order_id=state.next_order_id + n_placed), ids


def cancel_all(state: StrategyState) -> StrategyState:
    """Cancel-all on every venue (§16.5): clears every MM slot."""
    v = state.venues
    return state.replace(venues=v.replace(mm_has=jnp.zeros_like(v.mm_has)))
