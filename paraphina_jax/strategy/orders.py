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


def dangerous_mask(state: StrategyState, cfg: StrategyConfig) -> Array:
    """§13 dangerous test of the resting orders, `[N, 2]` bool.

    Evaluated on the resting price against the state's touches `mid ∓ spread/2`; the book is
    unknown (⇒ dangerous) when mid or spread is absent or non-finite.
    buy: `p > bid − tick or p ≥ ask − tick`; sell: `p < ask + tick or p ≤ bid + tick`.
    """
    v = state.venues
    fdt = v.mm_price.dtype
    mid = v.mid.astype(fdt)
    spr = v.spread.astype(fdt)
    known = v.has_mid & jnp.isfinite(mid) & jnp.isfinite(spr)
    best_bid = mid - spr / 2.0
    best_ask = mid + spr / 2.0
    tick = jnp.fmax(jnp.asarray(cfg.venues.tick_size, fdt), jnp.asarray(TICK_FLOOR, fdt))
    p_buy = v.mm_price[..., 0]
    p_sell = v.mm_price[..., 1]
    buy = (p_buy > best_bid - tick) | (p_buy >= best_ask - tick)
    sell = (p_sell < best_ask + tick) | (p_sell <= best_bid + tick)
    return ~known[..., None] | jnp.stack([buy, sell], axis=-1)


def plan_orders(
    state: StrategyState, quotes: QuoteSet, now_ms: Array, cfg: StrategyConfig
) -> OrderPlan:
    """§13 planner: desired quotes vs the resting MM slots.

    Kill ⇒ cancel every resting order, nothing else. Desired absent ⇒ cancel; no resting order ⇒
    place. Both present: keep a young (`age < MIN_QUOTE_LIFETIME_MS`) order unless dangerous;
    otherwise replace iff dangerous or `|Δp|/tick > PRICE_TOL_TICKS` or
    `|Δs|/max(s_des, lot) > SIZE_TOL_REL`. With `flags.order_keep_dangerous_in_tol` (D25 spec
    option) a dangerous order within both tolerances is kept.

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
    des = jnp.stack([quotes.bid_valid, quotes.ask_valid], axis=-1)
    des_px = jnp.stack([quotes.bid_px, quotes.ask_px], axis=-1).astype(fdt)
    des_sz = jnp.stack([quotes.bid_size, quotes.ask_size], axis=-1).astype(fdt)
    cur = v.mm_has

    tick = jnp.fmax(jnp.asarray(cfg.venues.tick_size, fdt), jnp.asarray(TICK_FLOOR, fdt))[..., None]
    lot = jnp.asarray(cfg.venues.lot_size, fdt)[..., None]
    danger = dangerous_mask(state, cfg)
    young = (now_ms - v.mm_ts_ms) < mc.min_quote_lifetime_ms
    price_diff = jnp.abs(v.mm_price - des_px) / tick
    size_diff = jnp.abs(v.mm_size - des_sz) / jnp.fmax(des_sz, lot)
    out_of_tol = (price_diff > jnp.asarray(mc.price_tol_ticks, fdt)) | (
        size_diff > jnp.asarray(mc.size_tol_rel, fdt)
    )
    may_change = ~(young & ~danger)
    if cfg.flags.order_keep_dangerous_in_tol:
        replace = may_change & out_of_tol
    else:
        replace = may_change & (danger | out_of_tol)

    both = cur & des
    cancel = (cur & ~des) | (both & replace)
    place = (des & ~cur) | (both & replace)
    kill = state.kill_switch
    cancel = jnp.where(kill, cur, cancel)
    place = place & ~kill
    return OrderPlan(
        cancel=cancel,
        place=place,
        place_px=jnp.where(place, des_px, zero),
        place_size=jnp.where(place, des_sz, zero),
    )


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
