"""Quote size model, JAX engine (STRATEGY.md §12).

Pure functions on one environment: :func:`side_sizes` works on one side (`[N]` arrays, side 0 =
bid/buy, 1 = ask/sell, static); :func:`quote_sizes` stacks both into `[N, 2]`. (Keeping the
sides as separate `[N]` arrays instead of a `[N, 2]` axis keeps XLA's CPU fusions lean: under
vmap a minor axis of 2 made the tick several times slower.) The twelve steps of §12 run in the
reference order with masks instead of branches; options and the control-surface mode are static
flags. Semantics, gate codes and
options are those of :mod:`paraphina_jax.reference.sizing`.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from paraphina_jax.config.types import REGIME_WARNING, STATUS_WARNING, StrategyConfig
from paraphina_jax.strategy.types import (
    GATE_DELTA_THROTTLE,
    GATE_EDGE,
    GATE_LIQ_REDUCE_ONLY,
    GATE_MIN_NOTIONAL,
    GATE_NONE,
    GATE_SIZE_BELOW_LOT,
    Controls,
    StrategyState,
)

Array = Any

ETA_FLOOR = 1e-9  # step 1
LOT_FLOOR = 1e-9  # step 11
TOX_SHRINK_SPAN = 0.3  # step 7, hard-coded in the reference
LIQ_SHRINK_EPS = 1e-9  # step 5 denominator guard
WARN_VENUE_FACTOR = 0.5  # step 6
GATE_DTYPE = jnp.int32


def exact_div(x: Array, y: Array) -> Array:
    """IEEE-rounded `x / y` when `y` is a broadcast operand (a config value, a constant, or any
    unbatched value under vmap).

    XLA's algebraic simplifier rewrites `A / broadcast(B)` as `A * broadcast(1/B)`, which is not
    correctly rounded (e.g. 2.3/0.01 = 229.99999999999997 but 2.3·(1/0.01) = 230.0), so floor-to-lot
    and tick snapping would differ from the reference. Adding `x·0` to the divisor ties it to the
    numerator's (batched) shape so the rewrite does not apply; `x·0` is not folded for floats.
    Differs from `x / y` only for an infinite `x` (NaN instead of ±inf).
    """
    return x / (y + x * 0.0)


def _mark(gate: Array, cond: Array, code: int) -> Array:
    """Record `code` where `cond` holds and no earlier gate fired."""
    return jnp.where((gate == GATE_NONE) & cond, jnp.asarray(code, gate.dtype), gate)


def side_sizes(
    state: StrategyState,
    px: Array,
    edge: Array,
    edge_ok: Array,
    side: int,
    controls: Controls | None,
    cfg: StrategyConfig,
) -> tuple[Array, Array]:
    """§12 sizes of one side (`side` 0 = bid/buy, 1 = ask/sell; static) of every venue.

    Args:
      state: strategy state.
      px: `[N]` snapped quote prices of this side, before any 'ref_env' stretch.
      edge: `[N]` per-unit edges of this side (§11.6).
      edge_ok: `[N]` bool, the §11.6 edge filter.
      side: 0 or 1 (static).
      controls: control surface (`[N]` fields), or None for none (static choice).
      cfg: config.

    Returns:
      `(size [N], gate [N] int32)`: the size to emit (0 where dropped) and the GATE_* code of the
      step that dropped the side (GATE_NONE where emitted).
    """
    v = state.venues
    fdt = px.dtype
    fl = cfg.flags
    rc = cfg.risk
    tc = cfg.toxicity
    mode = fl.control_surface_mode
    spec_order = fl.size_cap_order == "spec"

    def f(x: Any) -> Array:
        return jnp.asarray(x, fdt)

    zero_f = f(0.0)
    lot_raw = f(cfg.venues.lot_size)
    max_order = f(cfg.venues.max_order_size)
    eta = jnp.maximum(f(cfg.mm.size_eta), ETA_FLOOR)
    size_mult = jnp.fmax(state.size_mult.astype(fdt), 0.0)
    scale = None if controls is None else controls.size_scale.astype(fdt)

    gate = jnp.where(edge_ok, GATE_NONE, GATE_EDGE).astype(GATE_DTYPE)
    # 1 optimum of J(Q) = e·Q − ½ηQ²
    q = jnp.where(edge_ok & (edge > 0.0), exact_div(edge, eta), zero_f)
    # 2 vol multiplier, then the [REC] policy hook
    q = q * size_mult
    if scale is not None and mode == "rec":
        q = q * scale
    if spec_order:
        q = jnp.minimum(q, max_order)  # [SPEC] venue max before the shrinks (D24)
    else:
        q = jnp.maximum(q, lot_raw)  # 3 [IMPL] lot bump
    # 4 margin cap (parity operation order)
    margin_factor = f(rc.mm_max_leverage) * f(rc.mm_margin_safety)
    cap = (v.margin_available_usd.astype(fdt) * margin_factor) / px
    q = jnp.where(px > 0.0, jnp.minimum(q, cap), q)
    # 5 liquidation distance
    dist = v.dist_liq_sigma.astype(fdt)
    crit = f(rc.liq_crit_sigma)
    warn = f(rc.liq_warn_sigma)
    crit_zone = dist <= crit
    if fl.mm_reduce_only_at_crit:  # D15 option; else §11.2 gate 3 removed the venue
        qv = v.position_tao
        # long: bid 0; short: ask 0; flat: both 0
        zero = crit_zone & (~(qv < 0.0) if side == 0 else ~(qv > 0.0))
        q = jnp.where(zero, zero_f, q)
        gate = _mark(gate, zero, GATE_LIQ_REDUCE_ONLY)
    k_liq = jnp.clip(exact_div(dist - crit, warn - crit + LIQ_SHRINK_EPS), 0.0, 1.0)
    q = jnp.where(~crit_zone & (dist < warn), q * k_liq, q)
    if not fl.disable_toxicity_gate:
        # 6 Warning venue
        q = jnp.where(v.status == STATUS_WARNING, q * WARN_VENUE_FACTOR, q)
        # 7 medium toxicity
        tox = v.toxicity.astype(fdt)
        med = f(tc.tox_med_threshold)
        tox_factor = jnp.clip(1.0 - exact_div(tox - med, TOX_SHRINK_SPAN), 0.1, 1.0)
        q = jnp.where((tox >= med) & (tox < f(tc.tox_high_threshold)), q * tox_factor, q)
    # 8 delta throttle
    rho = jnp.fmax(
        jnp.abs(state.dollar_delta_usd.astype(fdt))
        / jnp.fmax(state.delta_limit_usd.astype(fdt), 1.0),
        0.0,
    )
    q_t = state.q_global_tao
    stop = rho >= 2.0
    band = (rho > 1.0) & ~stop
    zero = stop | (
        band & ((q_t > 0.0) if side == 0 else (q_t < 0.0))
    )  # long ⇒ bid 0, short ⇒ ask 0
    factor = jnp.clip(2.0 - rho, 0.0, 1.0)
    q = jnp.where(zero, zero_f, jnp.where(band, q * factor, q))
    gate = _mark(gate, zero, GATE_DELTA_THROTTLE)
    # 9 Warning regime cap
    q = jnp.where(
        state.risk_regime == REGIME_WARNING, jnp.minimum(q, jnp.maximum(f(rc.q_warn_cap), 0.0)), q
    )
    # 10 venue max order size
    if not spec_order:
        q = jnp.minimum(q, max_order)
    # 11 floor to lot (no epsilon)
    lot = jnp.maximum(lot_raw, LOT_FLOOR)
    q = jnp.floor(exact_div(q, lot)) * lot
    # 12 emit iff at least one lot and the edge filter passed
    gate = _mark(gate, ~(q >= jnp.maximum(lot_raw, 0.0)), GATE_SIZE_BELOW_LOT)
    if fl.mm_enforce_min_notional:  # D16
        gate = _mark(gate, ~(q * px >= f(cfg.venues.min_notional_usd)), GATE_MIN_NOTIONAL)
    if scale is not None and mode == "ref_env":
        q = q * scale  # [IMPL] reference env: scales the rounded intent size
        gate = _mark(gate, ~(q > 0.0), GATE_SIZE_BELOW_LOT)
    return jnp.where(gate == GATE_NONE, q, zero_f), gate


def quote_sizes(
    state: StrategyState,
    px: Array,
    edge: Array,
    edge_ok: Array,
    controls: Controls | None,
    cfg: StrategyConfig,
) -> tuple[Array, Array]:
    """§12 sizes of both sides of every venue (:func:`side_sizes` per side, stacked).

    Args:
      px: `[N, 2]` snapped quote prices (bid, ask) before any 'ref_env' stretch.
      edge: `[N, 2]` per-unit edges (§11.6).
      edge_ok: `[N, 2]` bool, the §11.6 edge filter.
      controls: control surface, or None for none (static choice).

    Returns:
      `(size [N, 2], gate [N, 2] int32)`.
    """
    out = [side_sizes(state, px[:, k], edge[:, k], edge_ok[:, k], k, controls, cfg) for k in (0, 1)]
    return (
        jnp.stack([out[0][0], out[1][0]], axis=-1),
        jnp.stack([out[0][1], out[1][1]], axis=-1),
    )
