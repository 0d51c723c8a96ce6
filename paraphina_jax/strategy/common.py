"""Small helpers shared by the JAX strategy modules (STRATEGY.md §1, §5.4, §7.1, §13.3)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from paraphina_jax.config.types import StrategyConfig
from paraphina_jax.strategy.types import Array, StrategyState


def venue_stale_ms(cfg: StrategyConfig) -> Array:
    """[N] effective stale threshold `stale_ms_v` (override if set, else BOOK_STALE_MS), §1."""
    ov = jnp.asarray(cfg.venues.stale_override_ms)
    return jnp.where(ov >= 0, ov, jnp.asarray(cfg.book.book_stale_ms, dtype=ov.dtype))


def gate_stale_ms(cfg: StrategyConfig) -> Array:
    """[N] stale threshold used by the KF, exit and hedge gates: per venue (D1 [REC]) or global."""
    if cfg.flags.stale_per_venue:
        return venue_stale_ms(cfg)
    ov = jnp.asarray(cfg.venues.stale_override_ms)
    return jnp.full(ov.shape, cfg.book.book_stale_ms, dtype=ov.dtype)


def sigma_floors(cfg: StrategyConfig) -> tuple[Array, Array]:
    """(sigma_min_tick, vol_ref_tick), §7.1: rescaled from their cadence to the main-loop tick."""
    tick_sec = jnp.asarray(cfg.loop.main_loop_interval_ms) / 1000.0
    vc = jnp.asarray(cfg.vol.vol_ref_cadence_sec) * 1.0
    sc = jnp.asarray(cfg.vol.sigma_min_cadence_sec) * 1.0
    vref = cfg.vol.vol_ref * jnp.where(vc > 0, jnp.sqrt(tick_sec / jnp.where(vc > 0, vc, 1.0)), 1.0)
    smin = cfg.vol.sigma_min * jnp.where(
        sc > 0, jnp.sqrt(tick_sec / jnp.where(sc > 0, sc, 1.0)), 1.0
    )
    return smin, vref


def fair_value_or_prev(state: StrategyState) -> Array:
    """[] S = fair_value if present else fair_value_prev (§5.4)."""
    return jnp.where(state.has_fair_value, state.fair_value, state.fair_value_prev)


def is_valid_pos(x: Array) -> Array:
    """finite and > 0."""
    return jnp.isfinite(x) & (x > 0)


def floor_to(x: Array, step: Array) -> Array:
    """floor(x/step)·step — division first, then multiplication (§13.3)."""
    return jnp.floor(x / step) * step


def ceil_to(x: Array, step: Array) -> Array:
    """ceil(x/step)·step."""
    return jnp.ceil(x / step) * step


def id_rank(cfg: StrategyConfig) -> Array:
    """[N] lexicographic rank of the venue id strings (static)."""
    return jnp.asarray(np.asarray(cfg.venues.id_rank()))
