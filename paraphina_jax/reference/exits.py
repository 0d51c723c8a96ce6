"""Cross-venue exit allocator, float64 NumPy reference engine (STRATEGY.md §14.2 [IMPL]).

Written as the spec's loop: global gates, per-venue candidate gates and score, a sort by
(score desc, reduces desc, venue index asc), then the greedy allocation of the `remaining`
budget with the profit cap and lot / min-notional / min-intent rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from paraphina_jax.config.types import (
    REGIME_HARDLIMIT,
    SIDE_BUY,
    SIDE_SELL,
    STATUS_DISABLED,
    StrategyConfig,
)
from paraphina_jax.reference.common import ceil_to, floor_to, gate_stale_ms
from paraphina_jax.reference.targets import funding_rate_for_decision
from paraphina_jax.strategy.types import ExitPlan, StrategyState

EXIT_TICK_FLOOR = 1e-9  # SIMULATION §13.3: tick floor in exits and hedges
OPEN_EPS = 1e-9  # "opens": |q_j| < max(min_intent_size_tao, 1e-9)
STEP_FLOOR = 1e-12  # step_eff = max(size_step, lot, 1e-12)
FUNDING_PERIOD_SEC = 28_800.0  # 8 h


@dataclass
class _Candidate:
    venue: int
    px: float
    cap: float
    base: float
    slip_lin: float
    reduces: bool
    score: float


def _liq_band_mult(x: float, crit: float, warn: float) -> float:
    """1 if not finite or ≤ CRIT or ≥ WARN, else (x − CRIT)/(WARN − CRIT)."""
    if not math.isfinite(x) or x <= crit or x >= warn:
        return 1.0
    return (x - crit) / (warn - crit)


def _empty(n: int, side: int) -> ExitPlan:
    return ExitPlan(
        valid=np.zeros(n, dtype=bool),
        size=np.zeros(n, dtype=np.float64),
        price=np.zeros(n, dtype=np.float64),
        side=np.asarray(side, dtype=np.int32),
        order=np.full(n, n, dtype=np.int32),
        score=np.zeros(n, dtype=np.float64),
        base_edge=np.zeros(n, dtype=np.float64),
        candidate=np.zeros(n, dtype=bool),
    )


def plan_exits(state: StrategyState, now_ms: int, cfg: StrategyConfig) -> ExitPlan:
    """§14.2 exit allocator (see the JAX engine for the full contract).

    Returns:
      `ExitPlan` with `[N]` float64 / bool / int32 fields and the global `side`.
    """
    ven = state.venues
    ec, rc, vt = cfg.exit, cfg.risk, cfg.venues
    n = len(ven.mid)
    q_t = float(state.q_global_tao)
    sell = q_t > 0
    side = SIDE_SELL if sell else SIDE_BUY
    s = -1.0 if sell else 1.0  # sign of the trade
    out = _empty(n, side)

    # Global gates.
    fv = float(state.fair_value)
    fv_ok = bool(state.has_fair_value) and math.isfinite(fv) and fv > 0
    if (
        not ec.enabled
        or bool(state.kill_switch)
        or int(state.risk_regime) == REGIME_HARDLIMIT
        or not fv_ok
        or not abs(q_t) >= float(ec.min_global_abs_tao)  # also catches a NaN q_t
    ):
        return out
    S = fv

    warn, crit = float(rc.liq_warn_sigma), float(rc.liq_crit_sigma)
    dists = [float(d) for d in ven.dist_liq_sigma]
    min_d = min((d for d in dists if math.isfinite(d)), default=math.inf)
    global_reduce_only = min_d < warn
    g = _liq_band_mult(min_d, crit, warn)
    remaining = min(abs(q_t), float(ec.max_total_tao_per_tick) * g)
    thr = float(ec.edge_min_usd) + float(ec.edge_vol_mult) * float(state.vol_ratio_clipped)
    v_buf = (float(ec.vol_buffer_mult) * float(state.sigma_eff)) * S

    # entry_ref: VWAP of the legs on the side of q_t with a known entry (else S).
    num, den = 0.0, 0.0
    for i in range(n):
        qi, avg = float(ven.position_tao[i]), float(ven.avg_entry_price[i])
        if np.sign(qi) == np.sign(q_t) and avg > 0:
            num += abs(qi) * avg
            den += abs(qi)
    entry_ref = num / den if den > 0 else S

    stale_ms = gate_stale_ms(cfg)  # D1
    f8 = funding_rate_for_decision(state, now_ms, cfg, "exit")
    sgn_b = -1.0 if float(state.basis_usd) < 0 else 1.0  # never 0
    w_brp = float(ec.basis_risk_penalty_weight)

    cands: list[_Candidate] = []
    for j in range(n):
        # Candidate gates.
        if int(ven.status[j]) == STATUS_DISABLED:
            continue
        if not bool(ven.has_mid_update[j]) or int(now_ms) - int(ven.last_mid_update_ms[j]) > int(
            stale_ms[j]
        ):
            continue
        if float(ven.toxicity[j]) >= float(cfg.toxicity.tox_high_threshold):
            continue
        mid, spr = float(ven.mid[j]), float(ven.spread[j])
        if not (bool(ven.has_mid[j]) and math.isfinite(mid) and math.isfinite(spr)):
            continue
        bid, ask = mid - spr / 2.0, mid + spr / 2.0
        if bid <= 0 or ask <= bid:
            continue
        depth = float(ven.depth_near_mid[j])
        if not depth >= float(ec.min_depth_usd) or depth <= 0:
            continue

        tick = max(float(vt.tick_size[j]), EXIT_TICK_FLOOR)
        px = floor_to(bid, tick) if sell else ceil_to(ask, tick)
        q_j = float(ven.position_tao[j])
        reduces = q_j * s < 0
        dist = dists[j]
        must_reduce = global_reduce_only or (math.isfinite(dist) and dist < warn)
        if must_reduce and not reduces:
            continue
        cap = min(
            float(ec.max_venue_tao_per_tick),
            float(vt.max_order_size[j]),
            (float(ec.depth_fraction) * depth) / S,
        )
        if must_reduce:
            cap = min(cap, abs(q_j))
        cap *= _liq_band_mult(dist, crit, warn)
        if cap <= 0:
            continue
        fee = (float(vt.taker_fee_bps[j]) / 1e4) * px
        base = ((px - entry_ref) if sell else (entry_ref - px)) - fee - v_buf
        if not base > thr:  # strict
            continue

        slip_lin = float(ec.slippage_linear_coeff) + max(
            ((float(ec.slippage_spread_mult) * S) * spr) / depth, 0.0
        )
        opens = abs(q_j) < max(float(ec.min_intent_size_tao), OPEN_EPS) and not reduces
        increases = q_j * s > 0
        frag_pen = float(ec.fragmentation_penalty_per_tao) if (opens or increases) else 0.0
        frag_bonus = float(ec.fragmentation_reduction_bonus) if reduces else 0.0
        basis_term = (px - S) if sell else (S - px)
        fund = (float(f8[j]) * (float(ec.funding_horizon_sec) / FUNDING_PERIOD_SEC)) * S
        fund_term = fund if sell else -fund
        d_b = (sgn_b * s) * (mid - S)
        brp = w_brp * d_b if d_b > 0 else (0.5 * w_brp) * d_b  # reductions: half credit
        score = (
            base
            + float(ec.basis_weight) * basis_term
            + float(ec.funding_weight) * fund_term
            - frag_pen
            + frag_bonus
            - brp
        )
        if math.isnan(score):
            continue  # cannot be ranked
        cands.append(_Candidate(j, px, cap, base, slip_lin, reduces, score))
        out.candidate[j] = True
        out.score[j] = score
        out.base_edge[j] = base

    # Sort by (score desc, reduces desc, venue index asc), then greedy.
    cands.sort(key=lambda c: (-c.score, not c.reduces, c.venue))
    slip_quad = float(ec.slippage_quadratic_coeff)
    emitted = 0
    for c in cands:
        if not remaining > 0:
            break
        j = c.venue
        cap_c = min(c.cap, remaining)
        if slip_quad > 0:  # profit cap: slip_quad·Q² + slip_lin·Q + (thr − base) ≤ 0
            disc = c.slip_lin * c.slip_lin - (4.0 * slip_quad) * (thr - c.base)
            if disc < 0:
                continue
            q_star = (-c.slip_lin + math.sqrt(disc)) / (2.0 * slip_quad)
            if q_star > 0:
                cap_c = min(cap_c, q_star)
        elif c.slip_lin > 0:
            cap_c = min(cap_c, (c.base - thr) / c.slip_lin)
        if cap_c <= 0 or not math.isfinite(cap_c):
            continue
        lot = float(vt.lot_size[j])
        step_eff = max(float(vt.size_step[j]), lot, STEP_FLOOR)
        size = floor_to(cap_c, step_eff)
        if size < lot:
            continue
        if size * c.px < float(vt.min_notional_usd[j]):
            continue
        if size < float(ec.min_intent_size_tao):
            continue
        out.valid[j] = True
        out.size[j] = size
        out.price[j] = c.px
        out.order[j] = emitted
        emitted += 1
        remaining -= size
    return out
