"""Build StrategyConfig objects from overrides: dotted paths, spec constant names, Hydra dicts."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from paraphina_jax.config.types import CONFIG_GROUPS, Flags, StrategyConfig
from paraphina_jax.config.validate import ConfigError, check_value, validate_config

# Spec constant names (STRATEGY.md §3) that are not simply UPPER(field) of a unique field.
_EXPLICIT_ALIASES: dict[str, str] = {
    "SPREAD_VOL_MULT_COEFF": "vol.spread_vol_mult_coeff",
    "C_S": "vol.spread_vol_mult_coeff",
    "C_Q": "vol.size_vol_mult_coeff",
    "C_BAND": "vol.band_vol_mult_coeff",
    "BASIS_WEIGHT": "mm.basis_weight",
    "FUNDING_WEIGHT": "mm.funding_weight",
    "HEDGE_BAND_BASE": "hedge.band_base",
    "HEDGE_MAX_STEP": "hedge.max_step",
    "HEDGE_MARGIN_SAFETY": "hedge.margin_safety_buffer",
    "HEDGE_MAX_LEVERAGE": "hedge.max_leverage",
    "K_HEDGE": "hedge.k_hedge",
    "EDGE_EXIT_MIN": "exit.edge_min_usd",
    "EXIT_BASIS_WEIGHT": "exit.basis_weight",
    "EXIT_FUNDING_WEIGHT": "exit.funding_weight",
    "EXIT_FRAGMENTATION_PENALTY": "exit.fragmentation_penalty_per_tao",
    "EXIT_BASIS_PENALTY": "exit.basis_risk_penalty_weight",
    "MARKOUT_SCALE_USD_PER_TAO": "toxicity.markout_scale_usd_per_tao",
    "INITIAL_Q_TAO": "loop.initial_q_tao",
    "INIT_Q_TAO": "loop.initial_q_tao",
    "MM_SIZE_ETA": "mm.size_eta",
}


def _build_alias_table() -> dict[str, str]:
    from paraphina_jax.config import types as t

    group_classes = {
        "venues": t.VenueTable,
        "book": t.BookConfig,
        "vol": t.VolConfig,
        "risk": t.RiskConfig,
        "funding": t.FundingConfig,
        "mm": t.MMConfig,
        "hedge": t.HedgeConfig,
        "exit": t.ExitConfig,
        "toxicity": t.ToxicityConfig,
        "loop": t.LoopConfig,
    }
    seen: dict[str, list[str]] = {}
    for g, cls in group_classes.items():
        for f in dataclasses.fields(cls):
            seen.setdefault(f.name.upper(), []).append(f"{g}.{f.name}")
            if g in ("hedge", "exit"):
                seen.setdefault(f"{g.upper()}_{f.name.upper()}", []).append(f"{g}.{f.name}")
    table = {k: v[0] for k, v in seen.items() if len(v) == 1}
    table.update(_EXPLICIT_ALIASES)
    return table


SPEC_ALIASES: dict[str, str] = _build_alias_table()


def resolve_key(key: str) -> str:
    """Map a dotted path or a spec constant name to a dotted `group.field` path."""
    if "." in key:
        group, _, field = key.partition(".")
        if group == "flags":
            if field not in {f.name for f in dataclasses.fields(Flags)}:
                raise ConfigError(f"unknown config key {key!r}")
            return key
        if group not in CONFIG_GROUPS:
            raise ConfigError(
                f"unknown config key {key!r} (groups: {', '.join(CONFIG_GROUPS)}, flags)"
            )
        return key
    path = SPEC_ALIASES.get(key.upper())
    if path is None:
        raise ConfigError(f"unknown config key {key!r} (not a spec constant or dotted path)")
    return path


def _coerce(old: Any, value: Any, key: str, n: int, source: str) -> Any:
    if isinstance(old, np.ndarray):
        arr = np.asarray(value, dtype=old.dtype)
        if arr.ndim == 0:
            arr = np.full(old.shape, arr, dtype=old.dtype)
        if arr.shape != old.shape:
            raise ConfigError(
                f"{source}: {key}: expected {old.shape[0]} values (one per venue), got {arr.shape}"
            )
        return arr
    if isinstance(old, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key}: expected true/false, got {value!r}")
        return value
    if isinstance(old, int):
        if isinstance(value, bool) or not float(value).is_integer():
            raise ConfigError(f"{source}: {key}: expected an integer, got {value!r}")
        return int(value)
    if isinstance(old, float):
        if isinstance(value, bool):
            raise ConfigError(f"{source}: {key}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: {key}: expected a number, got {value!r}") from None
    return value


def apply_overrides(
    cfg: StrategyConfig, overrides: Mapping[str, Any], source: str = "overrides"
) -> StrategyConfig:
    """Return a copy of `cfg` with `overrides` applied and validated.

    Keys are dotted paths (`hedge.band_base`, `flags.hedge_band_mode`) or spec constant names
    (`HEDGE_BAND_BASE`, `SIZE_ETA`). Per-venue keys take a scalar (broadcast) or a list of N.
    """
    groups: dict[str, dict[str, Any]] = {}
    flag_updates: dict[str, Any] = {}
    for raw_key, value in overrides.items():
        path = resolve_key(str(raw_key))
        group, _, field = path.partition(".")
        if group == "flags":
            flag_updates[field] = value
            continue
        obj = getattr(cfg, group)
        if field not in obj.__dataclass_fields__:
            raise ConfigError(f"{source}: unknown config key {raw_key!r}")
        old = getattr(obj, field)
        new = _coerce(old, value, path, cfg.n_venues, source)
        check_value(path, new, source)
        groups.setdefault(group, {})[field] = new
    repl: dict[str, Any] = {g: getattr(cfg, g).replace(**kv) for g, kv in groups.items()}
    if flag_updates:
        try:
            repl["flags"] = dataclasses.replace(cfg.flags, **flag_updates)
        except TypeError as e:
            raise ConfigError(f"{source}: flags: {e}") from None
    out = cfg.replace(**repl) if repl else cfg
    validate_config(out, source)
    return out


def flatten_overrides(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a nested mapping ({'hedge': {'band_base': 1}}) to dotted keys."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten_overrides(v, key + "."))
        else:
            out[key] = v
    return out


def config_from_dict(d: Mapping[str, Any], source: str = "config") -> StrategyConfig:
    """Build a config from a Hydra-style mapping: `{profile: str, parity: bool, <group>: {...}}`."""
    from paraphina_jax.config.defaults import make_config

    d = dict(d)
    profile = d.pop("profile", "balanced")
    if isinstance(profile, Mapping):  # Hydra group node: {name: ..., overrides...}
        profile = dict(profile)
        name = profile.pop("name", "balanced")
        d = {**flatten_overrides(profile), **flatten_overrides(d)}
        profile = name
    parity = bool(d.pop("parity", False))
    cfg = make_config(str(profile), parity=parity)
    return apply_overrides(cfg, flatten_overrides(d), source)


def configs_equal(a: StrategyConfig, b: StrategyConfig) -> bool:
    """True when two configs have the same static part and equal leaves."""
    import jax

    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    return ta == tb and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))
