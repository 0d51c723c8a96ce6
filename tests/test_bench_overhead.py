"""`experiments/bench/shield_overhead.py`: the bootstrap interval of the paired overhead."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments" / "bench"))

import shield_overhead  # noqa: E402


def test_shield_overhead_interval_brackets_the_paired_median():
    rng = np.random.default_rng(3)
    pairs = list(1.0 / (1.0 + rng.normal(0.14, 0.03, 21)))  # off wall / on wall
    lo, hi = shield_overhead.overhead_interval(pairs)
    point = 1.0 - float(np.median(pairs))
    assert lo <= point <= hi
    assert 0.0 < hi - lo < 0.1
    # deterministic (fixed seed), and degenerate when every pair agrees
    assert shield_overhead.overhead_interval(pairs) == (lo, hi)
    c_lo, c_hi = shield_overhead.overhead_interval([0.9] * 7)
    assert abs(c_lo - 0.1) < 1e-12 and abs(c_hi - 0.1) < 1e-12
