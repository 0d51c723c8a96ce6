"""`PARAPHINA_*` environment knobs (STRATEGY.md §3.11), applied after the profile.

Unparseable values are ignored with a warning (never fatal); non-finite floats count as
unparseable; integer knobs accept integer literals only. The knobs are read here, at the host
edge, and become config values: the engines never read the process environment (D2, D27).
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from paraphina_jax.config.defaults import make_config, parse_profile
from paraphina_jax.config.types import StrategyConfig

PREFIX = "PARAPHINA_"


def _parse_float(s: str) -> float | None:
    try:
        v = float(s.strip())
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _parse_int(s: str) -> int | None:
    t = s.strip()
    body = t[1:] if t[:1] in "+-" else t
    if not body.isdigit():
        return None
    return int(t)


def _flag_on(s: str) -> bool:
    return s == "1" or s.lower() == "true"


# name -> (kind, dotted path or handler, clamp)
_FLOAT_KNOBS: dict[str, tuple[str, Callable[[float], float]]] = {
    "INIT_Q_TAO": ("loop.initial_q_tao", lambda v: v),
    "HEDGE_BAND_BASE": ("hedge.band_base", lambda v: max(v, 0.0)),
    "HEDGE_MAX_STEP": ("hedge.max_step", lambda v: max(v, 0.0)),
    "HEDGE_K_HEDGE": ("hedge.k_hedge", lambda v: min(max(v, 0.0), 1.0)),
    "HEDGE_FUNDING_WEIGHT": ("hedge.funding_weight", lambda v: v),
    "HEDGE_BASIS_WEIGHT": ("hedge.basis_weight", lambda v: v),
    "MM_SIZE_ETA": ("mm.size_eta", lambda v: max(v, 1e-6)),
    "VOL_REF": ("vol.vol_ref", lambda v: max(v, 1e-6)),
    "VOL_REF_CADENCE_SEC": ("vol.vol_ref_cadence_sec", lambda v: max(v, 1e-3)),
    "SIGMA_MIN_CADENCE_SEC": ("vol.sigma_min_cadence_sec", lambda v: max(v, 1e-3)),
    "DAILY_LOSS_LIMIT": ("risk.daily_loss_limit", abs),
}
_INT_KNOBS: dict[str, tuple[str, Callable[[int], int]]] = {
    "MAIN_LOOP_INTERVAL_MS": ("loop.main_loop_interval_ms", lambda v: max(v, 1)),
    "HEDGE_LOOP_INTERVAL_MS": ("loop.hedge_loop_interval_ms", lambda v: max(v, 1)),
    "RISK_LOOP_INTERVAL_MS": ("loop.risk_loop_interval_ms", lambda v: max(v, 1)),
    "FILL_AGG_INTERVAL_MS": ("loop.fill_agg_interval_ms", lambda v: max(v, 1)),
    "FUNDING_STALE_MS": ("funding.funding_stale_ms", lambda v: max(v, 0)),
    "FUNDING_AVOID_WINDOW_MS": ("funding.funding_avoid_window_ms", lambda v: max(v, 0)),
    "CATASTROPHIC_STALE_MS": ("toxicity.catastrophic_stale_ms", lambda v: max(v, 0)),
}
_STALE_OVERRIDE_KNOBS = {
    "HL_STATE_STALE_MS_OVERRIDE": "hyperliquid",
    "EXTENDED_STATE_STALE_MS_OVERRIDE": "extended",
    "PARADEX_STATE_STALE_MS_OVERRIDE": "paradex",
}
_FUNDING_SWITCHES = {
    "ENABLE_FUNDING_MM": "mm_funding_enabled",
    "ENABLE_FUNDING_HEDGE": "hedge_funding_enabled",
    "ENABLE_FUNDING_EXIT": "exit_funding_enabled",
}


def resolve_profile(
    cli_profile: str | None,
    env: Mapping[str, str],
    scenario_profile: str | None = None,
) -> tuple[str, str]:
    """Profile precedence of §3.10: CLI > env > scenario > balanced. Returns (profile, source)."""
    if cli_profile:
        p = parse_profile(cli_profile)
        if p is None:
            from paraphina_jax.config.validate import ConfigError

            raise ConfigError(f"profile: unknown risk profile {cli_profile!r}")
        return p, "cli"
    raw = env.get(PREFIX + "RISK_PROFILE", "")
    if raw.strip():
        p = parse_profile(raw)
        if p is not None:
            return p, "env"
        warnings.warn(f"{PREFIX}RISK_PROFILE={raw!r} is not a profile; ignored", stacklevel=2)
    if scenario_profile:
        p = parse_profile(scenario_profile)
        if p is not None:
            return p, "scenario"
    return "balanced", "default"


def apply_env_knobs(
    cfg: StrategyConfig, env: Mapping[str, str] | None = None
) -> tuple[StrategyConfig, list[str]]:
    """Apply the numeric, flag and trade-mode knobs of §3.11. Returns (config, warnings)."""
    from paraphina_jax.config.loader import apply_overrides

    env = os.environ if env is None else env
    notes: list[str] = []
    overrides: dict[str, Any] = {}
    for name, (path, clamp) in _FLOAT_KNOBS.items():
        raw = env.get(PREFIX + name)
        if raw is None:
            continue
        v = _parse_float(raw)
        if v is None:
            notes.append(f"{PREFIX}{name}={raw!r} is not a finite number; ignored")
            continue
        overrides[path] = clamp(v)
    for name, (path, clamp) in _INT_KNOBS.items():
        raw = env.get(PREFIX + name)
        if raw is None:
            continue
        iv = _parse_int(raw)
        if iv is None:
            notes.append(f"{PREFIX}{name}={raw!r} is not an integer; ignored")
            continue
        overrides[path] = clamp(iv)
    stale = np.array(cfg.venues.stale_override_ms, copy=True)
    stale_changed = False
    for name, venue in _STALE_OVERRIDE_KNOBS.items():
        raw = env.get(PREFIX + name)
        if raw is None or venue not in cfg.venues.venue_ids:
            continue
        iv = _parse_int(raw)
        if iv is None:
            notes.append(f"{PREFIX}{name}={raw!r} is not an integer; ignored")
            continue
        stale[cfg.venues.venue_ids.index(venue)] = max(iv, 0)
        stale_changed = True
    if stale_changed:
        overrides["venues.stale_override_ms"] = stale
    funding_updates = {}
    for name, field in _FUNDING_SWITCHES.items():
        raw = env.get(PREFIX + name)
        if raw is not None:
            funding_updates[field] = _flag_on(raw)
    flag_updates: dict[str, Any] = {}
    raw = env.get(PREFIX + "TRADE_MODE")
    if raw is not None:
        flag_updates["trade_mode"] = raw.lower()
    raw = env.get(PREFIX + "KILL_BEST_EFFORT")
    if raw is not None:
        flag_updates["kill_best_effort"] = _flag_on(raw)
    out = apply_overrides(cfg, overrides, source="environment") if overrides else cfg
    if funding_updates:
        out = out.replace(funding=out.funding.replace(**funding_updates))
    if flag_updates:
        out = out.replace(flags=dataclasses.replace(out.flags, **flag_updates))
    return out, notes


def config_from_env(
    cli_profile: str | None = None,
    env: Mapping[str, str] | None = None,
    *,
    parity: bool = False,
    scenario_profile: str | None = None,
) -> tuple[StrategyConfig, str, list[str]]:
    """Profile resolution + knobs. Returns (config, profile source, warnings)."""
    env = os.environ if env is None else env
    profile, source = resolve_profile(cli_profile, env, scenario_profile)
    cfg = make_config(profile, parity=parity)
    cfg, notes = apply_env_knobs(cfg, env)
    return cfg, source, notes
