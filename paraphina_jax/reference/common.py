"""Small helpers shared by the NumPy reference modules (STRATEGY.md §1, §5.4, §7.1, §13.3)."""

from __future__ import annotations

import math

import numpy as np

from paraphina_jax.config.types import StrategyConfig
from paraphina_jax.strategy.types import StrategyState


def venue_stale_ms(cfg: StrategyConfig) -> np.ndarray:
    """[N] effective stale threshold per venue: override if set, else BOOK_STALE_MS (§1)."""
    out = np.empty(cfg.n_venues, dtype=np.int64)
    for v in range(cfg.n_venues):
        ov = int(cfg.venues.stale_override_ms[v])
        out[v] = ov if ov >= 0 else int(cfg.book.book_stale_ms)
    return out


def gate_stale_ms(cfg: StrategyConfig) -> np.ndarray:
    """[N] threshold of the KF / exit / hedge gates: per venue (D1 [REC]) or the global one."""
    if cfg.flags.stale_per_venue:
        return venue_stale_ms(cfg)
    return np.full(cfg.n_venues, int(cfg.book.book_stale_ms), dtype=np.int64)


def sigma_floors(cfg: StrategyConfig) -> tuple[float, float]:
    """(sigma_min_tick, vol_ref_tick) of §7.1."""
    tick_sec = float(cfg.loop.main_loop_interval_ms) / 1000.0
    vc = float(cfg.vol.vol_ref_cadence_sec)
    sc = float(cfg.vol.sigma_min_cadence_sec)
    vol_ref_tick = float(cfg.vol.vol_ref) * (math.sqrt(tick_sec / vc) if vc > 0 else 1.0)
    sigma_min_tick = float(cfg.vol.sigma_min) * (math.sqrt(tick_sec / sc) if sc > 0 else 1.0)
    return sigma_min_tick, vol_ref_tick


def fair_value_or_prev(state: StrategyState) -> float:
    """S = fair_value if present else fair_value_prev (§5.4)."""
    return float(state.fair_value) if bool(state.has_fair_value) else float(state.fair_value_prev)


def is_valid_pos(x: float) -> bool:
    return math.isfinite(x) and x > 0


def floor_to(x: float, step: float) -> float:
    """floor(x/step)·step — division first, then multiplication (§13.3)."""
    return math.floor(x / step) * step


def ceil_to(x: float, step: float) -> float:
    return math.ceil(x / step) * step
