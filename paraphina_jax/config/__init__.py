"""Configuration: frozen typed config objects, profiles, env knobs, validation (STRATEGY.md §3)."""

from paraphina_jax.config.defaults import (
    PROFILES,
    default_venue_table,
    make_config,
    parse_profile,
    reference_parity_flags,
)
from paraphina_jax.config.env import apply_env_knobs, config_from_env, resolve_profile
from paraphina_jax.config.loader import (
    apply_overrides,
    config_from_dict,
    configs_equal,
    resolve_key,
)
from paraphina_jax.config.types import (
    CONFIG_VERSION_ID,
    KILL_REASON_NAMES,
    REGIME_NAMES,
    STATUS_NAMES,
    VENUE_IDS,
    Flags,
    StrategyConfig,
    VenueTable,
)
from paraphina_jax.config.validate import ConfigError, validate_config

__all__ = [
    "CONFIG_VERSION_ID",
    "KILL_REASON_NAMES",
    "PROFILES",
    "REGIME_NAMES",
    "STATUS_NAMES",
    "VENUE_IDS",
    "ConfigError",
    "Flags",
    "StrategyConfig",
    "VenueTable",
    "apply_env_knobs",
    "apply_overrides",
    "config_from_dict",
    "config_from_env",
    "configs_equal",
    "default_venue_table",
    "make_config",
    "parse_profile",
    "reference_parity_flags",
    "resolve_key",
    "resolve_profile",
    "validate_config",
]
