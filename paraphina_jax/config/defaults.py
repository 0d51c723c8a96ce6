"""Default venue table (§1), risk profiles (§3.10) and reference-parity flags (§20)."""

from __future__ import annotations

import dataclasses

import numpy as np

from paraphina_jax.config.types import VENUE_IDS, Flags, StrategyConfig, VenueTable

PROFILES: tuple[str, ...] = ("balanced", "conservative", "aggressive")
_PROFILE_ALIASES = {
    "balanced": "balanced",
    "bal": "balanced",
    "b": "balanced",
    "conservative": "conservative",
    "cons": "conservative",
    "c": "conservative",
    "aggressive": "aggressive",
    "agg": "aggressive",
    "a": "aggressive",
    "loose": "aggressive",
    "l": "aggressive",
}

# §3.10: dotted config path -> value, per profile (on top of the balanced defaults).
PROFILE_OVERRIDES: dict[str, dict[str, float]] = {
    "balanced": {},
    "conservative": {
        "hedge.band_base": 2.62125,
        "mm.size_eta": 0.0466,
        "vol.vol_ref": 0.028125,
        "risk.delta_hard_limit_usd_base": 46_600.0,
        "risk.daily_loss_limit": 2_000.0,
        "loop.initial_q_tao": 0.0,
    },
    "aggressive": {
        "hedge.band_base": 4.86,
        "mm.size_eta": 0.0864,
        "vol.vol_ref": 0.028125,
        "risk.delta_hard_limit_usd_base": 86_400.0,
        "risk.daily_loss_limit": 2_000.0,
        "loop.initial_q_tao": 0.0,
    },
}


def parse_profile(name: str) -> str | None:
    """Profile name parsing of §3.10 (trimmed, case-insensitive); None when unknown."""
    return _PROFILE_ALIASES.get(str(name).strip().lower())


def default_venue_table() -> VenueTable:
    """The five-venue table of STRATEGY.md §1."""
    n = len(VENUE_IDS)

    def full(x: float) -> np.ndarray:
        return np.full(n, x, dtype=np.float64)

    return VenueTable(
        tick_size=full(0.01),
        base_size=full(1.0),
        max_order_size=full(20.0),
        maker_fee_bps=np.array([2.0, 1.5, 2.0, 2.0, 2.0]),
        taker_fee_bps=full(5.0),
        maker_rebate_bps=full(0.0),
        gamma=np.array([0.10, 0.09, 0.11, 0.10, 0.10]),
        k=np.array([1.5, 1.6, 1.4, 1.5, 1.5]),
        w_liq=np.array([0.25, 0.25, 0.20, 0.15, 0.15]),
        w_fund=np.array([0.25, 0.25, 0.20, 0.15, 0.15]),
        hedge_allowed=np.ones(n, dtype=bool),
        lot_size=full(0.01),
        size_step=full(0.01),
        min_notional_usd=full(10.0),
        stale_override_ms=np.array([-1, 2000, -1, -1, 3000], dtype=np.int64),
        venue_ids=VENUE_IDS,
    )


def reference_parity_flags(**overrides: object) -> Flags:
    """Flags reproducing the original engine ([IMPL] side of every D-item)."""
    base = Flags(
        stale_per_venue=False,
        kf_explicit_init=False,
        funding_accrual=False,
        kf_outlier_gate_after_init=False,
        sigma_floor_mode="parity",
        toxicity_recovery=False,
        quote_age_guard=False,
        quote_edge_includes_vbuf=False,
        mm_reduce_only_at_crit=False,
        mm_enforce_min_notional=False,
        hedge_band_mode="ref",
        chunk_convexity_times_price=False,
        venue_dev_disable=False,
        toxicity_model="markout_v2",
        size_cap_order="ref",
        order_keep_dangerous_in_tol=False,
        paper_pnl_masks_other_kills=True,
        as_sigma_in_price_units=False,
        control_surface_mode="ref_env",
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def make_config(
    profile: str = "balanced",
    *,
    parity: bool = False,
    flags: Flags | None = None,
) -> StrategyConfig:
    """Balanced defaults with the profile's overrides applied; `parity` selects [IMPL] flags."""
    from paraphina_jax.config.loader import apply_overrides

    canon = parse_profile(profile)
    if canon is None:
        from paraphina_jax.config.validate import ConfigError

        raise ConfigError(
            f"profile: unknown risk profile {profile!r} (allowed: balanced|bal|b, "
            "conservative|cons|c, aggressive|agg|a|loose|l)"
        )
    if flags is None:
        flags = reference_parity_flags() if parity else Flags()
    cfg = StrategyConfig(venues=default_venue_table(), flags=flags, profile=canon)
    return apply_overrides(cfg, PROFILE_OVERRIDES[canon], source=f"profile {canon}")
