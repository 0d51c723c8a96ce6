"""The control-surface rule of the shield's JAX twin (SIMULATION §6.6): a policy's control values
clipped to their encoded ranges before the tick uses them (mirror of
`safety_shield.reference.clip_controls`, same operations and order).

* :func:`clip_controls` — the rule on one environment's `Controls` (callers vmap);
* :func:`shielded_controls_fn` — wraps an episode `controls_fn` with :func:`clip_controls`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp

from paraphina_jax.strategy.types import Controls
from safety_shield.types import (
    CONTROL_TOL,
    HEDGE_SCALE_RANGE,
    HEDGE_WEIGHT_RANGE,
    N_RULES,
    RPRICE_OFFSET_RANGE,
    RULE_CONTROLS_RANGE,
    SIZE_SCALE_RANGE,
    SPREAD_SCALE_RANGE,
    SUBNORMAL_FLOOR,
    WEIGHT_SUM_TOL,
    ShieldRecord,
)

Array = Any


def _clamp(x: Array, lo: float, hi: float, default: float) -> tuple[Array, Array]:
    x = jnp.where(jnp.abs(x) < SUBNORMAL_FLOOR, 0.0, x).astype(x.dtype)
    fin = jnp.isfinite(x)
    y = jnp.where(fin, jnp.clip(jnp.where(fin, x, default), lo, hi), default)
    changed = ~fin | (jnp.abs(y - x) > CONTROL_TOL)
    return y.astype(x.dtype), changed


def clip_controls(controls: Controls, n: int) -> tuple[Controls, ShieldRecord]:
    """Control-surface rule (mirror of `safety_shield.reference.clip_controls`)."""
    sp, c1 = _clamp(jnp.asarray(controls.spread_scale), *SPREAD_SCALE_RANGE, 1.0)
    sz, c2 = _clamp(jnp.asarray(controls.size_scale), *SIZE_SCALE_RANGE, 1.0)
    ro, c3 = _clamp(jnp.asarray(controls.rprice_offset_usd), *RPRICE_OFFSET_RANGE, 0.0)
    hs, c4 = _clamp(jnp.asarray(controls.hedge_scale), *HEDGE_SCALE_RANGE, 1.0)
    w_in = jnp.asarray(controls.hedge_venue_weights)
    w, _ = _clamp(w_in, *HEDGE_WEIGHT_RANGE, 1.0 / n)
    total = w[0]
    for i in range(1, n):
        total = total + w[i]  # sequential, as the reference
    uniform = jnp.full((n,), 1.0 / n, w.dtype)
    bad = ~(jnp.isfinite(total) & (total > 0.0))
    off = jnp.abs(total - 1.0) > WEIGHT_SUM_TOL
    w = jnp.where(bad, uniform, jnp.where(off, w * (1.0 / jnp.where(bad, 1.0, total)), w))
    c5 = ~jnp.isfinite(w_in) | (jnp.abs(w - w_in) > CONTROL_TOL)
    count = (
        jnp.sum(c1, dtype=jnp.int32)
        + jnp.sum(c2, dtype=jnp.int32)
        + jnp.sum(c3, dtype=jnp.int32)
        + jnp.sum(c5, dtype=jnp.int32)
        + jnp.any(c4).astype(jnp.int32)
    )
    counts = jnp.zeros((N_RULES,), jnp.int32).at[RULE_CONTROLS_RANGE].set(count)
    mask = jnp.zeros((N_RULES, n), bool).at[RULE_CONTROLS_RANGE].set(c1 | c2 | c3 | c5)
    new = Controls(
        spread_scale=sp, size_scale=sz, rprice_offset_usd=ro, hedge_scale=hs, hedge_venue_weights=w
    )
    return new, ShieldRecord(interventions=counts, venue_mask=mask)


def shielded_controls_fn(controls_fn: Callable[..., Controls], n: int) -> Callable[..., Controls]:
    """Wrap an episode `controls_fn(state, view, t) -> Controls` so every value it returns is
    clipped to the encoded ranges before the tick uses it."""

    def wrapped(state: Any, view: Any, t: Any) -> Controls:
        return clip_controls(controls_fn(state, view, t), n)[0]

    return wrapped
