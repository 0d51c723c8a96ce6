"""Random simulator inputs for tests: market params, scenario schedules and IOC/quote drives.

Everything is NumPy float64 / int64 so the same objects feed the NumPy reference engine directly
and the JAX engine through `paraphina_jax.testing.to_jax`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from paraphina_jax.sim.schedule import ScenarioSchedule
from paraphina_jax.sim.types import MarketParams, default_market_params


def random_market_params(rng: np.random.Generator, n: int = 5, **overrides: Any) -> MarketParams:
    """Market params drawn over wide, valid ranges (every mechanism switched on with some odds).

    Funding periods are short (1–30 s) so settlements happen inside short test episodes; vol is
    high (up to 5 per day) so fills, crossings and ladder walks all occur.
    """
    u = rng.uniform
    dt = float(rng.choice([100.0, 250.0, 1000.0, 5000.0]))
    lo_st = int(rng.integers(0, 4))
    lo_dis = int(rng.integers(1, 20))
    fmin = float(u(0.05, 1.0))
    fields: dict[str, Any] = dict(
        dt_ms=dt,
        s0=u(50.0, 500.0),
        vol=u(0.01, 5.0),
        drift=u(-2.0, 2.0),
        jump_intensity=u(0.0, 0.3) if rng.random() < 0.7 else 0.0,
        jump_sigma=u(0.0, 0.02),
        vol_high_mult=u(1.0, 3.0),
        regime_p_up=u(0.0, 0.2),
        regime_p_down=u(0.0, 0.3),
        vol_regime0=int(rng.integers(0, 2)),
        basis_mean=u(-0.005, 0.005, n),
        basis_rho=u(0.5, 1.0),
        basis_sigma=u(0.0, 5e-4),
        spread_base=u(0.01, 1.0, n),
        spread_mult=u(0.8, 1.5),
        spread_offset=u(-0.1, 0.1, n),
        spread_kappa=u(0.0, 1.0),
        spread_min=u(0.005, 0.02),
        depth_usd=u(0.0, 30_000.0, n) * (rng.random(n) > 0.05),
        thin_prob=u(0.0, 0.3),
        thin_mult=u(0.05, 1.0),
        stale_prob=u(0.0, 0.1),
        stale_min_ticks=lo_st,
        stale_max_ticks=lo_st + int(rng.integers(0, 6)),
        disable_prob=u(0.0, 0.5),
        disable_min_ticks=lo_dis,
        disable_max_ticks=lo_dis + int(rng.integers(0, 40)),
        funding_8h=u(-0.005, 0.005, n),
        funding_period_ms=int(rng.integers(1, 30)) * 1000,
        funding_first_ms=int(rng.integers(0, 20_000)),
        fill_a=u(0.1, 5.0, n),
        fill_k=u(0.1, 5.0, n),
        fill_frac_min=fmin,
        fill_frac_max=float(u(fmin, 1.0)),
        ladder_step_usd=u(0.0, 0.2, n),
        ladder_growth=u(0.0, 0.5),
        maker_fee_bps=u(-1.0, 3.0, n),
        maker_rebate_bps=u(0.0, 1.0, n),
        taker_fee_bps=u(0.0, 8.0, n),
        collateral_usd=u(50.0, 10_000.0, n),
        maint_margin_ratio=u(0.005, 0.1, n),
        leverage=u(1.0, 25.0, n),
        flat_dist_liq_sigma=u(5.0, 20.0),
    )
    fields.update(overrides)
    return default_market_params(n_venues=n, **fields)


def random_schedule(
    rng: np.random.Generator, n_ticks: int, n: int = 5, dt_ms: float = 250.0
) -> ScenarioSchedule:
    """A schedule with random windows of every overlay (SIMULATION §2.4) and random latency."""
    t = np.arange(n_ticks)[:, None]

    def window(p: float) -> np.ndarray:
        on = rng.random(n) < p
        start = rng.integers(0, n_ticks, n)
        length = rng.integers(1, max(2, n_ticks // 3), n)
        return on & (t >= start) & (t < start + length)

    w = window(0.5)
    flip = window(0.3)
    lat_base = float(rng.choice([0.0, 0.3 * dt_ms, 1.5 * dt_ms]))
    lat = np.full(n_ticks, lat_base)
    s0, s1 = sorted(rng.integers(0, n_ticks, 2))
    lat[s0:s1] = float(rng.uniform(0.0, 4.0 * dt_ms))
    return ScenarioSchedule(
        spread_add_bps=np.where(window(0.4), rng.uniform(0.0, 80.0, n), 0.0),
        spread_mult=np.where(w, rng.uniform(1.0, 4.0, n), 1.0),
        depth_mult=np.where(window(0.4), rng.uniform(0.1, 1.5, n), 1.0),
        outage=window(0.3),
        funding_sign=np.where(flip, -1.0, 1.0),
        funding_add=np.where(window(0.3), rng.uniform(-1e-3, 1e-3, n) * (t + 1) / n_ticks, 0.0),
        mid_mult=np.where(window(0.3), 1.0 + rng.uniform(-0.01, 0.01, n), 1.0),
        latency_ms=lat,
        toxicity_floor=np.zeros(n_ticks),
    )
