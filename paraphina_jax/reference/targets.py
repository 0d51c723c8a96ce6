"""Funding usability and per-venue inventory targets, float64 NumPy reference engine.

* §9 the funding rate an engine may use (:func:`funding_rate_for_decision`);
* §10 liquidity weights and inventory targets (:func:`inventory_targets`).

Loops run in venue order; sums start from 0.0 as the original accumulates them.
"""

from __future__ import annotations

import math

import numpy as np

from paraphina_jax.config.types import STATUS_DISABLED, StrategyConfig
from paraphina_jax.strategy.types import StrategyState

ENGINES = ("mm", "hedge", "exit")


def funding_enabled(cfg: StrategyConfig, engine: str) -> bool:
    """§3.4 static master switch of `engine` ∈ {"mm", "hedge", "exit"}."""
    if engine == "mm":
        return bool(cfg.funding.mm_funding_enabled)
    if engine == "hedge":
        return bool(cfg.funding.hedge_funding_enabled)
    if engine == "exit":
        return bool(cfg.funding.exit_funding_enabled)
    raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")


def funding_rate_for_decision(
    state: StrategyState,
    now_ms: int,
    cfg: StrategyConfig,
    engine: str,
    use_clock: bool = True,
) -> np.ndarray:
    """§9 rate_for_decision per venue, `[N]` float64 (0 where unusable).

    0 unless the engine's master switch is on and the record has a rate. With a clock the
    record must also be Healthy — age base `received_ms` if > 0 else `as_of_ms` if > 0 (else
    unusable), `0 ≤ now − base ≤ FUNDING_STALE_MS` — and outside the avoid window
    (`|next_funding_ms − now| ≤ FUNDING_AVOID_WINDOW_MS` with a known next time and a window
    > 0 ⇒ unusable). Without a clock (`use_clock=False`, the core runner's MM quoting) the raw
    record rate is used.
    """
    ven = state.venues
    n = len(ven.fund_rate_8h)
    out = np.zeros(n, dtype=np.float64)
    if not funding_enabled(cfg, engine):
        return out
    now = int(now_ms)
    stale = int(cfg.funding.funding_stale_ms)
    window = int(cfg.funding.funding_avoid_window_ms)
    for i in range(n):
        if not bool(ven.fund_has_rate[i]):
            continue  # Unknown: no rate
        rate = float(ven.fund_rate_8h[i])
        if not use_clock:
            out[i] = rate
            continue
        received = int(ven.fund_received_ms[i])
        as_of = int(ven.fund_as_of_ms[i])
        if received > 0:
            base = received
        elif as_of > 0:
            base = as_of
        else:
            continue  # no timestamp: Unknown
        age = now - base
        if not (0 <= age <= stale):
            continue  # Stale
        if window > 0 and bool(ven.fund_has_next[i]):
            if abs(int(ven.fund_next_ms[i]) - now) <= window:
                continue  # inside the settlement avoid window
        out[i] = rate
    return out


def inventory_targets(
    state: StrategyState,
    now_ms: int,
    cfg: StrategyConfig,
    use_clock: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """§10 liquidity weights and per-venue inventory targets.

    `S = max(fair value, 1)` (absent ⇒ 1); `D_v = depth_v/S·w_liq_cfg_v` over venues not Disabled
    with depth > 0; `w_liq_v = D_v/ΣD`; `φ_v = clip(f8_v/FUNDING_TARGET_RATE_SCALE, −1, 1)·
    FUNDING_TARGET_MAX_TAO` (0 if the scale ≤ 0) with f8 the MM rate-for-decision;
    `q_target_v = w_liq_v·q_t + w_fund_cfg_v·φ_v`; Disabled venues or ΣD ≤ 0 ⇒ both 0.

    Args:
      use_clock: passed to the MM :func:`funding_rate_for_decision` (False = raw rate, as the
        core runner quotes without a clock).

    Returns:
      `(w_liq [N], q_target [N])` float64.
    """
    ven = state.venues
    vt = cfg.venues
    n = len(ven.depth_near_mid)
    fv = float(state.fair_value) if bool(state.has_fair_value) else 1.0
    s_t = 1.0 if math.isnan(fv) else max(fv, 1.0)
    s_inv = 1.0 / s_t
    disabled = [int(ven.status[i]) == STATUS_DISABLED for i in range(n)]

    total = 0.0
    for i in range(n):
        depth = float(ven.depth_near_mid[i])
        if not disabled[i] and depth > 0.0:
            total += (depth * s_inv) * float(vt.w_liq[i])

    f8 = funding_rate_for_decision(state, now_ms, cfg, "mm", use_clock)
    scale = float(cfg.mm.funding_target_rate_scale)
    max_tao = float(cfg.mm.funding_target_max_tao)
    scale_inv = 1.0 / scale if scale > 0.0 else 0.0
    total_inv = 1.0 / total if total > 0.0 else 0.0
    q_t = float(state.q_global_tao)

    w_liq = np.zeros(n, dtype=np.float64)
    q_target = np.zeros(n, dtype=np.float64)
    for i in range(n):
        if disabled[i] or total <= 0.0:
            continue
        w = ((float(ven.depth_near_mid[i]) * s_inv) * float(vt.w_liq[i])) * total_inv
        norm = min(max(float(f8[i]) * scale_inv, -1.0), 1.0) if scale > 0.0 else 0.0
        phi = norm * max_tao
        w_liq[i] = w
        q_target[i] = w * q_t + float(vt.w_fund[i]) * phi
    return w_liq, q_target
