"""The original's deterministic dummy book (SIMULATION.md §2.1, bit-exact form of §13.3).

`dummy_book(now_ms, cfg, xp)` returns level-0 prices and sizes `[N]` for both engines; the
strategy's book update re-derives mid and spread from the stored level-0 prices exactly as the
original does. `xp` is `numpy` (reference) or `jax.numpy`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from paraphina_jax.config.types import StrategyConfig
from paraphina_jax.strategy.types import BookInputs


def dummy_book(now_ms: Any, cfg: StrategyConfig, xp: Any = np) -> BookInputs:
    """Level-0 book of every venue at `now_ms`: base = 250 + 0.001·now, mid_v = base + 0.4·v,
    spread_v = 0.4 + 0.02·v, bid/ask = mid ∓ spread/2, level-0 size = max(base_size, 1e-6)."""
    n = cfg.n_venues
    v = xp.arange(n)
    dtype = xp.asarray(0.0).dtype if xp is not np else np.float64
    base = 250.0 + xp.asarray(now_ms).astype(dtype) * 0.001
    mid_raw = base + v.astype(dtype) * 0.4
    spr_raw = 0.4 + v.astype(dtype) * 0.02
    bb = mid_raw - spr_raw / 2.0
    ba = mid_raw + spr_raw / 2.0
    size0 = xp.maximum(xp.asarray(cfg.venues.base_size, dtype=dtype), 1e-6)
    return BookInputs(
        updated=xp.ones(n, dtype=bool),
        bid_px=bb,
        bid_sz=size0,
        ask_px=ba,
        ask_sz=size0,
    )
