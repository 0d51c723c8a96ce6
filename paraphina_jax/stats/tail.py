"""Tail-risk metrics (SIMULATION.md §9.3): quantiles, VaR/CVaR, Wilson kill-probability CI.

Host-side float64 NumPy with the original's exact forms, so Monte Carlo summaries reproduce it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

_C = (2.515517, 0.802853, 0.010328)
_D = (1.432788, 0.189269, 0.001308)


def finite_sorted(xs: Sequence[float] | np.ndarray) -> np.ndarray:
    """Sorted finite samples."""
    a = np.asarray(xs, dtype=np.float64)
    return np.sort(a[np.isfinite(a)])


def quantile(sorted_x: np.ndarray, p: float) -> float:
    """NaN if n = 0; x[0] if n = 1; else linear interpolation at idx = clip(p,0,1)·(n−1)."""
    n = len(sorted_x)
    if n == 0:
        return math.nan
    if n == 1:
        return float(sorted_x[0])
    idx = min(max(p, 0.0), 1.0) * (n - 1)
    lo, hi = math.floor(idx), math.ceil(idx)
    w = idx - lo
    return float(sorted_x[lo]) * (1 - w) + float(sorted_x[hi]) * w


def var_cvar(
    xs: Sequence[float] | np.ndarray, alpha: float = 0.95, upper: bool = False
) -> tuple[float, float]:
    """Lower tail (the original's convention): VaR = quantile(1 − α), CVaR = mean of samples ≤ VaR.

    `upper=True` (S12 [REC] for loss-like quantities): VaR = quantile(α), CVaR = mean of samples ≥ VaR.
    """
    x = finite_sorted(xs)
    if upper:
        v = quantile(x, alpha)
        tail = x[x >= v]
    else:
        v = quantile(x, 1.0 - alpha)
        tail = x[x <= v]
    if math.isnan(v):
        return v, v
    return v, (float(np.mean(tail)) if len(tail) else v)


def inv_norm_cdf_as(p: float) -> float:
    """Φ⁻¹ by Abramowitz–Stegun 26.2.23 (the original's parity form, accuracy ≈ 4.5e-4)."""
    if abs(p - 0.5) < 1e-15:
        return 0.0
    pp = 1.0 - p if p > 0.5 else p
    t = math.sqrt(-2.0 * math.log(pp))
    x = t - (_C[0] + _C[1] * t + _C[2] * t * t) / (1.0 + _D[0] * t + _D[1] * t * t + _D[2] * t**3)
    return x if p > 0.5 else -x


def wilson(k: int, n: int, ci_level: float = 0.95) -> tuple[float, float]:
    """Two-sided Wilson interval with the A–S z (SIMULATION §9.3); n = 0 ⇒ (0, 1)."""
    if n == 0:
        return 0.0, 1.0
    alpha = 1.0 - ci_level
    z = inv_norm_cdf_as(1.0 - alpha / 2.0)
    p = k / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    denom = 1 + z * z / n
    return max(0.0, (centre - margin) / denom), min(1.0, (centre + margin) / denom)


def welford(xs: Sequence[float]) -> tuple[float, float]:
    """(mean, population std) by Welford's algorithm over finite values; (0, 0) when empty."""
    n, mean, m2 = 0, 0.0, 0.0
    for x in xs:
        if not math.isfinite(x):
            continue
        n += 1
        d = x - mean
        mean += d / n
        m2 += d * (x - mean)
    return (mean, math.sqrt(m2 / n)) if n > 0 else (0.0, 0.0)


def tail_risk_block(
    pnl: Sequence[float], max_dd: Sequence[float], kills: Sequence[bool], alpha: float = 0.95
) -> dict:
    """The `tail_risk` block of mc_summary.json (schema_version 1), original conventions."""
    ps, ds = finite_sorted(pnl), finite_sorted(max_dd)
    qs = {f"p{int(round(p * 100)):02d}": quantile(ps, p) for p in (0.01, 0.05, 0.50, 0.95, 0.99)}
    dq = {f"p{int(round(p * 100)):02d}": quantile(ds, p) for p in (0.01, 0.05, 0.50, 0.95, 0.99)}
    pv, pc = var_cvar(pnl, alpha)
    dv, dc = var_cvar(max_dd, alpha)
    k, n = int(sum(bool(x) for x in kills)), len(kills)
    lo, hi = wilson(k, n)

    def nn(x: float) -> float | None:
        return None if isinstance(x, float) and math.isnan(x) else x

    return {
        "schema_version": 1,
        "pnl_quantiles": {k2: nn(v) for k2, v in qs.items()},
        "pnl_var_cvar": {"alpha": alpha, "var": nn(pv), "cvar": nn(pc)},
        "max_drawdown_quantiles": {k2: nn(v) for k2, v in dq.items()},
        "max_drawdown_var_cvar": {"alpha": alpha, "var": nn(dv), "cvar": nn(dc)},
        "kill_probability": {
            "point_estimate": (k / n) if n else 0.0,
            "ci_lower": lo,
            "ci_upper": hi,
            "ci_level": 0.95,
            "kill_count": k,
            "total_runs": n,
        },
    }
