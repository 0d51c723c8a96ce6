"""A deliberately reckless decision-maker (JAX), for whole-episode tests of the shield.

:func:`reckless_controls_fn` asks for the most dangerous control surface there is (zero
spread, 5× size, no hedging, all hedge weight on nothing, a 100 USD price offset), and
:func:`reckless_actions` rewrites any `TickOutput` into "maximum size, no spread, every
venue, every tick": bids at the true ask and asks at the true bid (through the book), places
of 100× the venue's max order size, exits and hedges of 10× their caps on
every venue in the direction that grows the position, and a kill exit everywhere — also after
the kill. :func:`reckless_shield_fn` composes it with the shield (or bypasses the shield:
the test-only switch) in the episode's `shield_fn` slot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp

from paraphina_jax.config.types import StrategyConfig
from paraphina_jax.strategy.types import Controls, ExitPlan, StrategyState, TickOutput
from safety_shield.controls import shielded_controls_fn
from safety_shield.twin import facts_from_state, shield_hook
from safety_shield.types import N_RULES

Array = Any


def reckless_controls_fn(state: StrategyState, view: Any, t: Array) -> Controls:
    """Out-of-range control values on every venue (SIMULATION §6.6 ranges are far exceeded)."""
    n = state.venues.mid.shape[-1]
    fdt = state.fair_value.dtype
    return Controls(
        spread_scale=jnp.zeros((n,), fdt),
        size_scale=jnp.full((n,), 5.0, fdt),
        rprice_offset_usd=jnp.full((n,), 100.0, fdt),
        hedge_scale=jnp.asarray(0.0, fdt),
        hedge_venue_weights=jnp.zeros((n,), fdt),
    )


def reckless_actions(
    state: StrategyState, out: TickOutput, view: Any, cfg: StrategyConfig
) -> TickOutput:
    """The reckless rewrite of `out` (see the module docstring), one environment."""
    n = cfg.n_venues
    v = state.venues
    fdt = v.mm_price.dtype
    mid = view.mid.astype(fdt)
    max_sz = jnp.asarray(cfg.venues.max_order_size).astype(fdt)
    big = 100.0 * max_sz
    on = jnp.ones((n,), bool)
    grow = jnp.where(state.q_global_tao < 0, -1, 1).astype(out.exits.side.dtype)
    bid_px = view.ask.astype(fdt)  # a buy at the ask and a sell at the bid: through the book
    ask_px = view.bid.astype(fdt)
    quotes = out.quotes.replace(
        bid_px=bid_px, ask_px=ask_px, bid_size=big, ask_size=big, bid_valid=on, ask_valid=on
    )
    orders = out.orders.replace(
        cancel=jnp.zeros((n, 2), bool),
        place=jnp.ones((n, 2), bool),
        place_px=jnp.stack([bid_px, ask_px], 1).astype(out.orders.place_px.dtype),
        place_size=jnp.stack([big, big], 1).astype(out.orders.place_size.dtype),
    )
    ids = (state.next_order_id + jnp.arange(2 * n).reshape(n, 2)).astype(out.order_ids.dtype)

    def ioc(plan: ExitPlan, cap: Array) -> Any:
        return plan.replace(
            valid=on,
            size=jnp.full((n,), 10.0 * cap).astype(plan.size.dtype),
            price=mid.astype(plan.price.dtype) * (1.0 + 0.01 * grow),
            side=grow,
        )

    return out.replace(
        quotes=quotes,
        orders=orders,
        order_ids=ids,
        exits=ioc(out.exits, jnp.asarray(cfg.exit.max_venue_tao_per_tick)).replace(
            order=jnp.arange(n, dtype=out.exits.order.dtype)
        ),
        hedge=ioc(out.hedge, jnp.asarray(cfg.hedge.max_venue_tao_per_tick)),
        kill_exit=ioc(out.kill_exit, jnp.max(max_sz)).replace(
            order=jnp.arange(n, dtype=out.kill_exit.order.dtype)
        ),
    )


def reckless_shield_fn(shielded: bool = True) -> Callable[..., tuple[TickOutput, Array]]:
    """An episode `shield_fn`: the reckless rewrite, then the shield (or nothing when
    `shielded=False`, which returns zero interventions of the same `[R]` shape)."""

    def fn(
        state: StrategyState, out: TickOutput, view: Any, cfg: StrategyConfig
    ) -> tuple[TickOutput, Array]:
        wild = reckless_actions(state, out, view, cfg)
        if shielded:
            return shield_hook(state, wild, view, cfg)
        return wild, jnp.zeros((N_RULES,), jnp.int32)

    fn.facts_fn = facts_from_state  # type: ignore[attr-defined]  # recorded for the audit
    return fn


# Module-level instances: the episode's hooks are static arguments, one compile per object.
RECKLESS_SHIELDED = reckless_shield_fn(True)
RECKLESS_BYPASS = reckless_shield_fn(False)
RECKLESS_CONTROLS_SHIELDED = shielded_controls_fn(reckless_controls_fn, 5)
