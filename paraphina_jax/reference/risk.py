"""Risk limits, regime, kill switch and venue protections, float64 NumPy reference engine (§16).

* §16.1 limits stored in the state (:func:`update_risk_limits`) and the liquidation distance
  minimum (:func:`min_dist_liq`);
* §16.3 regime from the reference inequalities (D21) (:func:`evaluate_regime`);
* §16.4 the latching kill switch with its priority chain and the paper-mode rule (D27)
  (:func:`update_risk`);
* §16.6 venue deviation protection (D22) (:func:`update_venue_deviation`).
"""

from __future__ import annotations

import math

import numpy as np

from paraphina_jax.config.types import (
    KILL_BASIS,
    KILL_DELTA,
    KILL_LIQ,
    KILL_NONE,
    KILL_PNL,
    REGIME_HARDLIMIT,
    REGIME_NORMAL,
    REGIME_WARNING,
    STATUS_DISABLED,
    StrategyConfig,
)
from paraphina_jax.reference.common import fair_value_or_prev
from paraphina_jax.strategy.types import StrategyState

VOL_RATIO_FLOOR = 1e-6  # §16.1: L_delta = base / max(vr, 1e-6)
# Order of the hard flags returned by evaluate_regime (index k ⇒ kill reason k + 1).
HARD_REASONS = (KILL_PNL, KILL_DELTA, KILL_BASIS, KILL_LIQ)


def _f(x: float) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _i(x: int) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def update_risk_limits(state: StrategyState, cfg: StrategyConfig) -> StrategyState:
    """§16.1: store `L_delta = DELTA_HARD_LIMIT_USD_BASE / max(vr, 1e-6)`, `B_hard`, `B_warn`.

    `vr` is the clipped vol ratio. Skipped (limits keep their values) under the
    `disable_risk_regime` ablation.
    """
    if cfg.flags.disable_risk_regime:
        return state
    vr = float(state.vol_ratio_clipped)
    vr_floored = VOL_RATIO_FLOOR if math.isnan(vr) else max(vr, VOL_RATIO_FLOOR)
    l_delta = float(cfg.risk.delta_hard_limit_usd_base) / vr_floored
    b_hard = float(cfg.risk.basis_hard_limit_usd)
    b_warn = float(cfg.risk.basis_warn_frac) * b_hard
    return state.replace(
        delta_limit_usd=_f(l_delta),
        basis_limit_warn_usd=_f(b_warn),
        basis_limit_hard_usd=_f(b_hard),
    )


def min_dist_liq(state: StrategyState) -> float:
    """§16.1 minD: min of the venues' dist_liq that are finite and ≥ 0 (∞ if none)."""
    out = math.inf
    for d in np.asarray(state.venues.dist_liq_sigma, dtype=np.float64):
        d = float(d)
        if math.isfinite(d) and d >= 0.0 and d < out:
            out = d
    return out


def evaluate_regime(state: StrategyState, cfg: StrategyConfig) -> tuple[int, np.ndarray]:
    """§16.3 regime with the reference inequalities (≥ / ≤, liquidation warning kept; D21).

    Reads the stored limits. Does not apply the kill override.

    Returns:
      `(regime, hard)`: REGIME_* code and `[4]` bool hard breaches in kill-priority order
      (PnL, delta, basis, liquidation distance).
    """
    rc = cfg.risk
    loss_lim = -abs(float(rc.daily_loss_limit))
    pnl_warn = float(rc.pnl_warn_frac) * loss_lim
    total = float(state.daily_pnl_total)
    dd = abs(float(state.dollar_delta_usd))
    basis = abs(float(state.basis_usd))
    l_delta = float(state.delta_limit_usd)
    b_hard = float(state.basis_limit_hard_usd)
    b_warn = float(state.basis_limit_warn_usd)
    min_d = min_dist_liq(state)

    hard = np.array(
        [
            total <= loss_lim,
            dd >= l_delta,
            basis >= b_hard,
            min_d <= float(rc.liq_crit_sigma),
        ],
        dtype=bool,
    )
    warn = (
        dd >= float(rc.delta_warn_frac) * l_delta
        or basis >= b_warn
        or total <= pnl_warn
        or min_d <= float(rc.liq_warn_sigma)
    )
    if hard.any():
        regime = REGIME_HARDLIMIT
    elif warn:
        regime = REGIME_WARNING
    else:
        regime = REGIME_NORMAL
    return regime, hard


def kill_reason_for(hard: np.ndarray, cfg: StrategyConfig) -> int:
    """§16.4 priority chain PnL > delta > basis > liquidation (else-if), with paper mode.

    Paper mode (`cfg.flags.paper_mode`): with `paper_pnl_masks_other_kills` ([IMPL], parity) a
    PnL breach latches nothing and stops the chain; otherwise ([REC], D27) only the PnL reason is
    skipped and the chain continues.
    """
    pnl, delta, basis, liq = (bool(x) for x in hard)
    if pnl:
        if not cfg.flags.paper_mode:
            return KILL_PNL
        if cfg.flags.paper_pnl_masks_other_kills:
            return KILL_NONE
    if delta:
        return KILL_DELTA
    if basis:
        return KILL_BASIS
    if liq:
        return KILL_LIQ
    return KILL_NONE


def update_risk(state: StrategyState, tick: int, cfg: StrategyConfig) -> StrategyState:
    """§16.1–16.4 risk update: limits, regime, latching kill switch.

    If not yet killed, the first reason of the priority chain latches `kill_switch`,
    `kill_reason` and `kill_tick = tick`; once killed the reason never changes and the regime
    reads HardLimit. Ablation `disable_risk_regime`: no limits, no kill evaluation, regime Normal
    (HardLimit if already killed).

    Args:
      tick: index of the current tick (recorded as `kill_tick` on latching).
    """
    killed = bool(state.kill_switch)
    if cfg.flags.disable_risk_regime:
        return state.replace(risk_regime=_i(REGIME_HARDLIMIT if killed else REGIME_NORMAL))
    state = update_risk_limits(state, cfg)
    regime, hard = evaluate_regime(state, cfg)
    reason = int(state.kill_reason)
    kill_tick = int(state.kill_tick)
    if not killed:
        new_reason = kill_reason_for(hard, cfg)
        if new_reason != KILL_NONE:
            killed = True
            reason = new_reason
            kill_tick = int(tick)
    if killed:
        regime = REGIME_HARDLIMIT
    return state.replace(
        risk_regime=_i(regime),
        kill_switch=np.asarray(killed, dtype=bool),
        kill_reason=_i(reason),
        kill_tick=_i(kill_tick),
    )


def update_venue_deviation(state: StrategyState, cfg: StrategyConfig) -> StrategyState:
    """§16.6 venue mispricing protection (D22; a no-op unless `cfg.flags.venue_dev_disable`).

    With S = fair value or its previous value (finite and > 0) and a finite venue mid, a check
    breaches when `|m_v − S|/S > VENUE_DEV_LIMIT`: the per-venue counter of consecutive breaches
    increments, a clean check resets it to 0, and a venue without a check (no mid or no S) keeps
    it. `dev_disabled` latches once the counter reaches VENUE_DEV_BREACH_COUNT (until episode
    reset) and every latched venue gets status Disabled.
    """
    if not cfg.flags.venue_dev_disable:
        return state
    ven = state.venues
    count = np.array(ven.dev_breach_count, copy=True)
    latched = np.array(ven.dev_disabled, copy=True)
    status = np.array(ven.status, copy=True)
    s = float(fair_value_or_prev(state))
    s_ok = math.isfinite(s) and s > 0.0
    limit = float(cfg.risk.venue_dev_limit)
    need = int(cfg.risk.venue_dev_breach_count)
    for i in range(len(count)):
        mid = float(ven.mid[i])
        if s_ok and bool(ven.has_mid[i]) and math.isfinite(mid):
            dev = abs(mid - s) / s
            count[i] = int(count[i]) + 1 if dev > limit else 0
        if int(count[i]) >= need:
            latched[i] = True
        if bool(latched[i]):
            status[i] = STATUS_DISABLED
    return state.replace(
        venues=ven.replace(dev_breach_count=count, dev_disabled=latched, status=status)
    )
