"""Funding usability and per-venue inventory targets, JAX engine (STRATEGY.md §9, §10).

Pure functions on one environment (`[N]` per-venue arrays); callers vmap them. The engine name
and the clock switch are static Python values. The depth total is summed in venue order from 0.0
(same bits as the NumPy reference engine).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from paraphina_jax.config.types import STATUS_DISABLED, StrategyConfig
from paraphina_jax.strategy.types import StrategyState

Array = Any

ENGINES = ("mm", "hedge", "exit")


def funding_enabled(cfg: StrategyConfig, engine: str) -> bool:
    """§3.4 static master switch of `engine` ∈ {"mm", "hedge", "exit"}."""
    if engine == "mm":
        return bool(cfg.funding.mm_funding_enabled)
    if engine == "hedge":
        return bool(cfg.funding.hedge_funding_enabled)
    if engine == "exit":
        return bool(cfg.funding.exit_funding_enabled)
    raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")


def funding_rate_for_decision(
    state: StrategyState,
    now_ms: Array,
    cfg: StrategyConfig,
    engine: str,
    use_clock: bool = True,
) -> Array:
    """§9 rate_for_decision per venue, `[N]` (0 where unusable).

    0 unless the engine's (static) master switch is on and the record has a rate. With a clock:
    age base `received_ms` if > 0 else `as_of_ms` if > 0 (else unusable);
    `0 ≤ now − base ≤ FUNDING_STALE_MS`; not within `|next − now| ≤ FUNDING_AVOID_WINDOW_MS`
    (known next time, window > 0). Without a clock the raw record rate.

    Args:
      now_ms: `[]` int.
      engine: "mm" | "hedge" | "exit" (static).
      use_clock: static; False reproduces the core runner's clock-less MM quoting.
    """
    v = state.venues
    zero = jnp.zeros_like(v.fund_rate_8h)
    if not funding_enabled(cfg, engine):
        return zero
    usable = v.fund_has_rate
    if use_clock:
        fc = cfg.funding
        has_recv = v.fund_received_ms > 0
        has_asof = v.fund_as_of_ms > 0
        base = jnp.where(has_recv, v.fund_received_ms, v.fund_as_of_ms)
        age = now_ms - base
        healthy = (has_recv | has_asof) & (age >= 0) & (age <= fc.funding_stale_ms)
        window = jnp.asarray(fc.funding_avoid_window_ms)
        avoid = (window > 0) & v.fund_has_next & (jnp.abs(v.fund_next_ms - now_ms) <= window)
        usable = usable & healthy & ~avoid
    return jnp.where(usable, v.fund_rate_8h, zero)


def inventory_targets(
    state: StrategyState,
    now_ms: Array,
    cfg: StrategyConfig,
    use_clock: bool = True,
) -> tuple[Array, Array]:
    """§10 liquidity weights and per-venue inventory targets.

    `S = max(fair value, 1)` (absent ⇒ 1); `D_v = depth_v/S·w_liq_cfg_v` over venues not Disabled
    with depth > 0; `w_liq_v = D_v/ΣD`; `φ_v = clip(f8_v/FUNDING_TARGET_RATE_SCALE, −1, 1)·
    FUNDING_TARGET_MAX_TAO` (0 if scale ≤ 0), f8 = MM rate-for-decision;
    `q_target_v = w_liq_v·q_t + w_fund_cfg_v·φ_v`; Disabled or ΣD ≤ 0 ⇒ both 0.

    Args:
      now_ms: `[]` int.
      use_clock: static, forwarded to the MM :func:`funding_rate_for_decision`.

    Returns:
      `(w_liq [N], q_target [N])`.
    """
    v = state.venues
    fdt = v.depth_near_mid.dtype
    zero = jnp.zeros((), fdt)
    one = jnp.ones((), fdt)
    fv = jnp.where(state.has_fair_value, state.fair_value.astype(fdt), one)
    s_t = jnp.fmax(fv, one)
    s_inv = 1.0 / s_t
    disabled = v.status == STATUS_DISABLED
    w_cfg = jnp.asarray(cfg.venues.w_liq, fdt)
    d = (v.depth_near_mid * s_inv) * w_cfg  # [N]
    contrib = jnp.where(~disabled & (v.depth_near_mid > 0), d, zero)
    total = zero
    for i in range(contrib.shape[-1]):
        total = total + contrib[i]

    f8 = funding_rate_for_decision(state, now_ms, cfg, "mm", use_clock)
    scale = jnp.asarray(cfg.mm.funding_target_rate_scale, fdt)
    max_tao = jnp.asarray(cfg.mm.funding_target_max_tao, fdt)
    has_scale = scale > 0
    scale_inv = jnp.where(has_scale, 1.0 / jnp.where(has_scale, scale, one), zero)
    total_inv = jnp.where(total > 0, 1.0 / jnp.where(total > 0, total, one), zero)

    w = d * total_inv
    norm = jnp.where(has_scale, jnp.clip(f8 * scale_inv, -1.0, 1.0), zero)
    phi = norm * max_tao
    q_target = w * state.q_global_tao + jnp.asarray(cfg.venues.w_fund, fdt) * phi
    off = disabled | (total <= 0)
    return jnp.where(off, zero, w), jnp.where(off, zero, q_target)
