"""Risk limits, regime, kill switch and venue protections, JAX engine (STRATEGY.md §16).

Pure functions on one environment; callers vmap them. Ablations, the trade mode and the D22 /
D27 switches are static flags.

* §16.1 limits stored in the state (:func:`update_risk_limits`), minD (:func:`min_dist_liq`);
* §16.3 regime, reference inequalities (D21) (:func:`evaluate_regime`);
* §16.4 latching kill switch, priority chain, paper mode (D27) (:func:`update_risk`);
* §16.6 venue deviation protection (D22) (:func:`update_venue_deviation`).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

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
from paraphina_jax.strategy.common import fair_value_or_prev
from paraphina_jax.strategy.types import StrategyState

Array = Any

VOL_RATIO_FLOOR = 1e-6  # §16.1: L_delta = base / max(vr, 1e-6)
# Order of the hard flags returned by evaluate_regime (index k ⇒ kill reason k + 1).
HARD_REASONS = (KILL_PNL, KILL_DELTA, KILL_BASIS, KILL_LIQ)


def update_risk_limits(state: StrategyState, cfg: StrategyConfig) -> StrategyState:
    """§16.1: store `L_delta = DELTA_HARD_LIMIT_USD_BASE / max(vr, 1e-6)`, `B_hard`, `B_warn`.

    `vr` = the clipped vol ratio. Skipped under the `disable_risk_regime` ablation.
    """
    if cfg.flags.disable_risk_regime:
        return state
    fdt = state.delta_limit_usd.dtype
    rc = cfg.risk
    vr = jnp.fmax(state.vol_ratio_clipped.astype(fdt), jnp.asarray(VOL_RATIO_FLOOR, fdt))
    l_delta = jnp.asarray(rc.delta_hard_limit_usd_base, fdt) / vr
    b_hard = jnp.asarray(rc.basis_hard_limit_usd, fdt)
    b_warn = jnp.asarray(rc.basis_warn_frac, fdt) * b_hard
    return state.replace(
        delta_limit_usd=l_delta,
        basis_limit_warn_usd=b_warn,
        basis_limit_hard_usd=b_hard,
    )


def min_dist_liq(state: StrategyState) -> Array:
    """§16.1 minD `[]`: min of dist_liq over venues where it is finite and ≥ 0 (∞ if none)."""
    d = state.venues.dist_liq_sigma
    ok = jnp.isfinite(d) & (d >= 0)
    return jnp.min(jnp.where(ok, d, jnp.asarray(jnp.inf, d.dtype)))


def evaluate_regime(state: StrategyState, cfg: StrategyConfig) -> tuple[Array, Array]:
    """§16.3 regime with the reference inequalities (D21), from the stored limits.

    Returns:
      `(regime [] int32, hard [4] bool)`: hard breaches in kill-priority order (PnL, delta,
      basis, liquidation distance). The kill override is not applied here.
    """
    rc = cfg.risk
    fdt = state.daily_pnl_total.dtype
    loss_lim = -jnp.abs(jnp.asarray(rc.daily_loss_limit, fdt))
    pnl_warn = jnp.asarray(rc.pnl_warn_frac, fdt) * loss_lim
    total = state.daily_pnl_total
    dd = jnp.abs(state.dollar_delta_usd)
    basis = jnp.abs(state.basis_usd)
    l_delta = state.delta_limit_usd
    min_d = min_dist_liq(state)
    hard = jnp.stack(
        [
            total <= loss_lim,
            dd >= l_delta,
            basis >= state.basis_limit_hard_usd,
            min_d <= rc.liq_crit_sigma,
        ]
    )
    warn = (
        (dd >= jnp.asarray(rc.delta_warn_frac, fdt) * l_delta)
        | (basis >= state.basis_limit_warn_usd)
        | (total <= pnl_warn)
        | (min_d <= rc.liq_warn_sigma)
    )
    regime = jnp.where(
        jnp.any(hard), REGIME_HARDLIMIT, jnp.where(warn, REGIME_WARNING, REGIME_NORMAL)
    ).astype(jnp.int32)
    return regime, hard


def kill_reason_for(hard: Array, cfg: StrategyConfig) -> Array:
    """§16.4 priority chain PnL > delta > basis > liquidation (else-if), with paper mode.

    Paper mode: with `paper_pnl_masks_other_kills` ([IMPL], parity) a PnL breach latches nothing
    and stops the chain; otherwise ([REC], D27) only the PnL reason is skipped.

    Args:
      hard: `[4]` bool hard breaches.

    Returns:
      `[]` int32 KILL_* code (KILL_NONE when nothing latches).
    """
    pnl, delta, basis, liq = hard[0], hard[1], hard[2], hard[3]
    rest = jnp.where(
        delta,
        KILL_DELTA,
        jnp.where(basis, KILL_BASIS, jnp.where(liq, KILL_LIQ, KILL_NONE)),
    )
    if not cfg.flags.paper_mode:
        reason = jnp.where(pnl, KILL_PNL, rest)
    elif cfg.flags.paper_pnl_masks_other_kills:
        reason = jnp.where(pnl, KILL_NONE, rest)
    else:
        reason = rest
    return jnp.asarray(reason, jnp.int32)


def update_risk(state: StrategyState, tick: Array, cfg: StrategyConfig) -> StrategyState:
    """§16.1–16.4 risk update: limits, regime, latching kill switch (first reason kept).

    Once killed, the regime reads HardLimit. Ablation `disable_risk_regime`: no limits, no kill
    evaluation, regime Normal (HardLimit if already killed).

    Args:
      tick: `[]` int index of the current tick (recorded as `kill_tick` on latching).
    """
    rdt = state.risk_regime.dtype
    killed = state.kill_switch
    if cfg.flags.disable_risk_regime:
        regime = jnp.where(killed, REGIME_HARDLIMIT, REGIME_NORMAL).astype(rdt)
        return state.replace(risk_regime=regime)
    state = update_risk_limits(state, cfg)
    regime, hard = evaluate_regime(state, cfg)
    new_reason = kill_reason_for(hard, cfg)
    latch = ~killed & (new_reason != KILL_NONE)
    killed_now = killed | latch
    kdt = state.kill_reason.dtype
    return state.replace(
        risk_regime=jnp.where(killed_now, REGIME_HARDLIMIT, regime).astype(rdt),
        kill_switch=killed_now,
        kill_reason=jnp.where(latch, new_reason.astype(kdt), state.kill_reason),
        kill_tick=jnp.where(latch, jnp.asarray(tick, state.kill_tick.dtype), state.kill_tick),
    )


def update_venue_deviation(state: StrategyState, cfg: StrategyConfig) -> StrategyState:
    """§16.6 venue mispricing protection (D22; a no-op unless `cfg.flags.venue_dev_disable`).

    Checked venues (finite mid, S = fair value or previous, finite and > 0): breach iff
    `|m_v − S|/S > VENUE_DEV_LIMIT` ⇒ counter + 1, else counter reset to 0; unchecked venues keep
    their counter. `dev_disabled` latches at counter ≥ VENUE_DEV_BREACH_COUNT; latched venues get
    status Disabled.
    """
    if not cfg.flags.venue_dev_disable:
        return state
    v = state.venues
    fdt = v.mid.dtype
    s = jnp.asarray(fair_value_or_prev(state), fdt)
    s_ok = jnp.isfinite(s) & (s > 0)
    checked = s_ok & v.has_mid & jnp.isfinite(v.mid)
    dev = jnp.abs(v.mid - s) / jnp.where(s_ok, s, jnp.ones((), fdt))
    breach = dev > cfg.risk.venue_dev_limit
    count = jnp.where(
        checked, jnp.where(breach, v.dev_breach_count + 1, 0), v.dev_breach_count
    ).astype(v.dev_breach_count.dtype)
    latched = v.dev_disabled | (count >= cfg.risk.venue_dev_breach_count)
    status = jnp.where(latched, jnp.asarray(STATUS_DISABLED, v.status.dtype), v.status)
    return state.replace(
        venues=v.replace(dev_breach_count=count, dev_disabled=latched, status=status)
    )
