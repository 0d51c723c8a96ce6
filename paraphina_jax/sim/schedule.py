"""Per-tick scenario schedules: the traced overlay arrays a scenario compiles to (SIMULATION §2.4).

A schedule is built on the host from a scenario file and has a fixed shape `[T, N]` (`T` ticks,
`N` venues), so every scenario of the same horizon runs through one compiled program and a batch of
different scenarios can be vmapped together. The identity schedule changes nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flax import struct

Array = Any


@struct.dataclass
class ScenarioSchedule:
    """Overlays applied by the market and execution step at tick `t` (row `t`)."""

    spread_add_bps: Array  # [T, N] f  spr_v += x·1e-4·S_t (spread_shock_bps)
    spread_mult: Array  # [T, N] f  spreads × (cancel storm)
    depth_mult: Array  # [T, N] f  depth × (depth_shock_pct, cancel storm)
    outage: Array  # [T, N] bool  venue out: no book updates, status Disabled, orders rejected
    funding_sign: Array  # [T, N] f  ±1 multiplier on the funding rate (funding_inversion)
    funding_add: Array  # [T, N] f  additive funding drift per 8h (funding_drift)
    mid_mult: Array  # [T, N] f  venue mid × (1 + magnitude·1e-4) (basis_spike)
    latency_ms: Array  # [T] f  order latency (baseline or latency_spike)
    toxicity_floor: Array  # [T] f  cancel-storm toxicity floor (0 = none)


def identity_schedule(n_ticks: int, n_venues: int, latency_ms: float = 0.0) -> ScenarioSchedule:
    """Schedule with no overlays (NumPy float64 leaves)."""
    t, n = n_ticks, n_venues
    return ScenarioSchedule(
        spread_add_bps=np.zeros((t, n)),
        spread_mult=np.ones((t, n)),
        depth_mult=np.ones((t, n)),
        outage=np.zeros((t, n), dtype=bool),
        funding_sign=np.ones((t, n)),
        funding_add=np.zeros((t, n)),
        mid_mult=np.ones((t, n)),
        latency_ms=np.full(t, float(latency_ms)),
        toxicity_floor=np.zeros(t),
    )
