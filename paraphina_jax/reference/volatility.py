"""Volatility and control scalars, float64 NumPy reference engine (STRATEGY.md §7).

* §7.1 the cadence-scaled floors come from :func:`paraphina_jax.reference.common.sigma_floors`
  (D9 selects the source);
* §7.2 EWMA short/long vol of the fair-value log return, σ_eff with the floor, vol ratio and the
  spread / size / band multipliers (:func:`update_volatility`);
* :func:`update_fair_value_and_vol` composes §6.3 and §7.2 as one main-tick step.
"""

from __future__ import annotations

import math

import numpy as np

from paraphina_jax.config.types import StrategyConfig
from paraphina_jax.reference.common import sigma_floors
from paraphina_jax.reference.fair_value import update_fair_value
from paraphina_jax.strategy.types import StrategyState

ABLATION_VOL_FLOOR = 1e-12  # SIMULATION §6.3: disable_vol_floor ⇒ σ_eff = max(σ_s, 1e-12)


def _ewma_vol(prev: float, ret: float, alpha: float, fallback: float) -> float:
    """σ = sqrt(max((1−α)·σ_prev² + α·ret², 0)); non-finite ⇒ fallback (§7.2)."""
    with np.errstate(all="ignore"):
        var = (1.0 - alpha) * np.float64(prev) * np.float64(prev) + alpha * (
            np.float64(ret) * np.float64(ret)
        )
        sig = float(np.sqrt(np.maximum(var, 0.0)))  # NaN propagates to the fallback
    return sig if math.isfinite(sig) else fallback


def update_volatility(state: StrategyState, ret: float, cfg: StrategyConfig) -> StrategyState:
    """§7.2 EWMA vols, σ_eff, vol ratio and multipliers from this tick's fair-value log return.

    Args:
      state: state after the §6.3 fair-value update.
      ret: ln(S_new / S_ref_for_return) of this tick.
      cfg: strategy config.

    Returns:
      New state with fv_short_vol, fv_long_vol, sigma_eff, vol_ratio_raw, vol_ratio_clipped,
      spread_mult, size_mult, band_mult replaced.
    """
    vc = cfg.vol
    sigma_min_tick, vol_ref_tick = (float(x) for x in sigma_floors(cfg))
    floor = ABLATION_VOL_FLOOR if cfg.flags.disable_vol_floor else sigma_min_tick

    sig_s = _ewma_vol(float(state.fv_short_vol), ret, float(vc.fv_vol_alpha_short), sigma_min_tick)
    sig_l = _ewma_vol(float(state.fv_long_vol), ret, float(vc.fv_vol_alpha_long), sigma_min_tick)
    sig_eff = max(sig_s, floor)
    if not (math.isfinite(sig_eff) and sig_eff > 0.0):
        sig_eff = floor

    if math.isfinite(vol_ref_tick) and vol_ref_tick > 0.0:
        vol_ratio = sig_eff / vol_ref_tick
    else:
        vol_ratio = 1.0
    vr = min(max(vol_ratio, float(vc.vol_ratio_min)), float(vc.vol_ratio_max))
    bump = max(0.0, vr - 1.0)
    spread_mult = 1.0 + float(vc.spread_vol_mult_coeff) * bump
    size_mult = 1.0 / (1.0 + float(vc.size_vol_mult_coeff) * bump)
    band_mult = 1.0 / (1.0 + float(vc.band_vol_mult_coeff) * bump)

    f = np.float64
    return state.replace(
        fv_short_vol=f(sig_s),
        fv_long_vol=f(sig_l),
        sigma_eff=f(sig_eff),
        vol_ratio_raw=f(vol_ratio),
        vol_ratio_clipped=f(vr),
        spread_mult=f(spread_mult),
        size_mult=f(size_mult),
        band_mult=f(band_mult),
    )


def update_fair_value_and_vol(
    state: StrategyState, now_ms: int, cfg: StrategyConfig
) -> StrategyState:
    """§6.3 then §7.2: the KF update followed by the vol/scalar update with its return."""
    state, ret = update_fair_value(state, now_ms, cfg)
    return update_volatility(state, ret, cfg)
