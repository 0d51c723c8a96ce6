"""The Monte Carlo harness's tick-time jitter generator, xorshift64* (SIMULATION.md §13.2).

Host-side: it produces the per-tick `now_ms` sequence of a run, which both engines consume.
"""

from __future__ import annotations

import numpy as np

_MASK = (1 << 64) - 1
_MULT = 0x2545F4914F6CDD1D
_ZERO_SEED = 0x9E3779B97F4A7C15


class XorShift64Star:
    """xorshift64* with the original's seeding (seed 0 ⇒ 0x9E3779B97F4A7C15)."""

    def __init__(self, seed: int) -> None:
        s = seed & _MASK
        self.state = s if s != 0 else _ZERO_SEED

    def next_u64(self) -> int:
        x = self.state
        x ^= x >> 12
        x ^= (x << 25) & _MASK
        x ^= x >> 27
        self.state = x
        return (x * _MULT) & _MASK

    def uniform_int(self, lo: int, hi: int) -> int:
        """lo if lo ≥ hi else lo + (next_u64() mod (hi − lo + 1))."""
        if lo >= hi:
            return lo
        return lo + self.next_u64() % (hi - lo + 1)


def run_seed(base_seed: int, run_index: int) -> int:
    """seed_i = base_seed + i (u64, wrapping)."""
    return (base_seed + run_index) & _MASK


def tick_times(seed: int, n_ticks: int, tick_ms: int, jitter_ms: int) -> np.ndarray:
    """`[T]` int64 tick times: time starts at 0 and advances by dt before each tick.

    dt = tick_ms + U_int[−jitter, +jitter] (one draw per tick, none when jitter is 0),
    floored at 1 ms.
    """
    rng = XorShift64Star(seed)
    out = np.empty(n_ticks, dtype=np.int64)
    now = 0
    for t in range(n_ticks):
        dt = tick_ms + rng.uniform_int(-jitter_ms, jitter_ms) if jitter_ms > 0 else tick_ms
        now += max(dt, 1)
        out[t] = now
    return out
