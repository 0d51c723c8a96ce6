"""Volatility and control scalars, JAX engine (STRATEGY.md §7).

* §7.1 the cadence-scaled floors come from :func:`paraphina_jax.strategy.common.sigma_floors`
  (D9 selects the source);
* §7.2 EWMA short/long vol of the fair-value log return, σ_eff with the floor, vol ratio and the
  spread / size / band multipliers (:func:`update_volatility`);
* :func:`update_fair_value_and_vol` composes §6.3 and §7.2 as one main-tick step.

Pure functions on one environment; callers vmap. Outputs keep the state's float dtype.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from paraphina_jax.config.types import StrategyConfig
from paraphina_jax.strategy.common import sigma_floors
from paraphina_jax.strategy.fair_value import update_fair_value
from paraphina_jax.strategy.types import StrategyState

ABLATION_VOL_FLOOR = 1e-12  # SIMULATION §6.3: disable_vol_floor ⇒ σ_eff = max(σ_s, 1e-12)


def _ewma_vol(prev: jax.Array, ret: jax.Array, alpha: jax.Array, fallback: jax.Array) -> jax.Array:
    """σ = sqrt(max((1−α)·σ_prev² + α·ret², 0)); non-finite ⇒ fallback (§7.2). `[]`."""
    var = (1.0 - alpha) * prev * prev + alpha * (ret * ret)
    sig = jnp.sqrt(jnp.maximum(var, 0.0))  # NaN propagates to the fallback
    return jnp.where(jnp.isfinite(sig), sig, fallback)


def update_volatility(state: StrategyState, ret: jax.Array, cfg: StrategyConfig) -> StrategyState:
    """§7.2 EWMA vols, σ_eff, vol ratio and multipliers from this tick's fair-value log return.

    Args:
      state: state after the §6.3 fair-value update.
      ret: `[]` ln(S_new / S_ref_for_return) of this tick.
      cfg: strategy config.

    Returns:
      New state with fv_short_vol, fv_long_vol, sigma_eff, vol_ratio_raw, vol_ratio_clipped,
      spread_mult, size_mult, band_mult replaced.
    """
    vc = cfg.vol
    fd = state.sigma_eff.dtype
    sigma_min_tick, vol_ref_tick = sigma_floors(cfg)
    sigma_min_tick = jnp.asarray(sigma_min_tick, fd)
    vol_ref_tick = jnp.asarray(vol_ref_tick, fd)
    floor = jnp.asarray(ABLATION_VOL_FLOOR, fd) if cfg.flags.disable_vol_floor else sigma_min_tick
    ret = jnp.asarray(ret, fd)

    sig_s = _ewma_vol(state.fv_short_vol, ret, vc.fv_vol_alpha_short, sigma_min_tick)
    sig_l = _ewma_vol(state.fv_long_vol, ret, vc.fv_vol_alpha_long, sigma_min_tick)
    sig_eff = jnp.maximum(sig_s, floor)
    sig_eff = jnp.where(jnp.isfinite(sig_eff) & (sig_eff > 0), sig_eff, floor)

    ref_ok = jnp.isfinite(vol_ref_tick) & (vol_ref_tick > 0)
    # Multiply by the reciprocal: XLA rewrites a division by an unbatched scalar that way under
    # vmap, so writing it out keeps vmap and the unbatched call bitwise equal (≤ 1 ulp vs a
    # true division).
    inv_ref = 1.0 / jnp.where(ref_ok, vol_ref_tick, 1.0)
    vol_ratio = jnp.where(ref_ok, sig_eff * inv_ref, jnp.ones_like(sig_eff))
    vr = jnp.minimum(jnp.maximum(vol_ratio, vc.vol_ratio_min), vc.vol_ratio_max)
    bump = jnp.maximum(0.0, vr - 1.0)
    spread_mult = 1.0 + vc.spread_vol_mult_coeff * bump
    size_mult = 1.0 / (1.0 + vc.size_vol_mult_coeff * bump)
    band_mult = 1.0 / (1.0 + vc.band_vol_mult_coeff * bump)

    return state.replace(
        fv_short_vol=sig_s.astype(fd),
        fv_long_vol=sig_l.astype(fd),
        sigma_eff=sig_eff.astype(fd),
        vol_ratio_raw=vol_ratio.astype(fd),
        vol_ratio_clipped=vr.astype(fd),
        spread_mult=spread_mult.astype(fd),
        size_mult=size_mult.astype(fd),
        band_mult=band_mult.astype(fd),
    )


def update_fair_value_and_vol(
    state: StrategyState, now_ms: jax.Array, cfg: StrategyConfig
) -> StrategyState:
    """§6.3 then §7.2: the KF update followed by the vol/scalar update with its return."""
    state, ret = update_fair_value(state, now_ms, cfg)
    return update_volatility(state, ret, cfg)
