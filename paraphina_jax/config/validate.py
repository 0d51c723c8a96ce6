"""Config validation: every refused value names its key and the allowed range."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


class ConfigError(ValueError):
    """Invalid configuration; the message names the key and the allowed range."""


# Allowed ranges by dotted key: (low, high). Keys not listed must be finite and >= 0 unless
# they are in SIGNED_KEYS.
FRACTION_KEYS = {
    "book.max_mid_jump_pct",
    "vol.fv_vol_alpha_short",
    "vol.fv_vol_alpha_long",
    "risk.delta_warn_frac",
    "risk.basis_warn_frac",
    "risk.pnl_warn_frac",
    "risk.mm_margin_safety",
    "risk.venue_dev_limit",
    "hedge.k_hedge",
    "hedge.depth_fraction",
    "hedge.margin_safety_buffer",
    "exit.depth_fraction",
    "toxicity.tox_med_threshold",
    "toxicity.tox_high_threshold",
    "toxicity.markout_alpha",
    "venues.w_liq",
    "venues.w_fund",
}
SIGNED_KEYS = {
    "loop.initial_q_tao",
    "mm.quote_max_age_ms",
    "venues.stale_override_ms",
    "venues.maker_fee_bps",
    "venues.taker_fee_bps",
    "venues.maker_rebate_bps",
}
# Keys that must be strictly positive (shape or division-critical).
POSITIVE_KEYS = {
    "book.min_healthy_venues_for_kf",
    "book.kf_p_init",
    "book.kf_r_min",
    "book.kf_r_max",
    "loop.main_loop_interval_ms",
    "loop.hedge_loop_interval_ms",
    "loop.risk_loop_interval_ms",
    "loop.fill_agg_interval_ms",
    "venues.tick_size",
    "venues.lot_size",
    "venues.size_step",
    "venues.gamma",
    "venues.k",
    "mm.size_eta",
    "vol.vol_ratio_min",
    "vol.vol_ratio_max",
}


def allowed_range(key: str) -> tuple[float, float, str]:
    """(low, high, description) for a dotted key."""
    if key in FRACTION_KEYS:
        return 0.0, 1.0, "[0, 1]"
    if key in SIGNED_KEYS:
        return -math.inf, math.inf, "any finite number"
    if key in POSITIVE_KEYS:
        return 0.0, math.inf, "(0, inf)"
    return 0.0, math.inf, "[0, inf)"


def check_value(key: str, value: Any, source: str = "config") -> None:
    """Raise ConfigError when `value` (scalar or array) is outside the key's allowed range."""
    arr = np.asarray(value)
    if arr.dtype == bool:
        return
    if not np.issubdtype(arr.dtype, np.number):
        raise ConfigError(f"{source}: {key}: expected a number, got {value!r}")
    lo, hi, desc = allowed_range(key)
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{source}: {key}: non-finite value {value!r} (allowed {desc})")
    strict = key in POSITIVE_KEYS
    bad = (arr <= lo) if strict else (arr < lo)
    bad = bad | (arr > hi)
    if np.any(bad):
        raise ConfigError(f"{source}: {key}: value {value!r} out of range (allowed {desc})")


def validate_config(cfg: Any, source: str = "config") -> None:
    """Validate every leaf of a StrategyConfig plus cross-field constraints."""
    from paraphina_jax.config.types import CONFIG_GROUPS

    n = cfg.venues.n
    for group in CONFIG_GROUPS:
        obj = getattr(cfg, group)
        for f in obj.__dataclass_fields__.values():
            if not f.metadata.get("pytree_node", True):
                continue
            key = f"{group}.{f.name}"
            val = getattr(obj, f.name)
            if group == "venues" and np.shape(val) != (n,):
                raise ConfigError(
                    f"{source}: {key}: expected {n} values (one per venue), got shape {np.shape(val)}"
                )
            check_value(key, val, source)
    t = cfg.toxicity
    if float(t.tox_med_threshold) > float(t.tox_high_threshold):
        raise ConfigError(
            f"{source}: toxicity.tox_med_threshold: must be <= toxicity.tox_high_threshold "
            f"({t.tox_high_threshold}) (allowed [0, tox_high_threshold])"
        )
    r = cfg.risk
    if float(r.liq_crit_sigma) > float(r.liq_warn_sigma):
        raise ConfigError(
            f"{source}: risk.liq_crit_sigma: must be <= risk.liq_warn_sigma ({r.liq_warn_sigma})"
        )
    v = cfg.vol
    if float(v.vol_ratio_min) > float(v.vol_ratio_max):
        raise ConfigError(f"{source}: vol.vol_ratio_min: must be <= vol.vol_ratio_max")
    b = cfg.book
    if float(b.kf_r_min) > float(b.kf_r_max):
        raise ConfigError(f"{source}: book.kf_r_min: must be <= book.kf_r_max")
    fl = cfg.flags
    choices = {
        "sigma_floor_mode": ("tick", "parity"),
        "hedge_band_mode": ("ref", "spec"),
        "toxicity_model": ("markout_v2", "spec_v1"),
        "size_cap_order": ("ref", "spec"),
        "control_surface_mode": ("rec", "ref_env"),
    }
    for name, allowed in choices.items():
        if getattr(fl, name) not in allowed:
            raise ConfigError(
                f"{source}: flags.{name}: {getattr(fl, name)!r} not one of {'|'.join(allowed)}"
            )
