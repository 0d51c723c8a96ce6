"""Global hedge engine, float64 NumPy reference engine (STRATEGY.md §15, SIMULATION.md §6.3).

* §15.1 dead band and LQ step (:func:`hedge_band`, :func:`hedge_step`);
* §15.2 candidate venues and per-unit cost (:func:`hedge_costs`);
* §15.3 chunk knapsack: the literal chunk list, one sort by (unit cost, venue id string, chunk
  index), a greedy pass, per-venue lot flooring (:func:`allocate_hedge`);
* the whole plan (:func:`plan_hedge`).

Control surface (SIMULATION §6.3): in "rec" mode `ΔH = clamp(k·X·hedge_scale, ±HEDGE_MAX_STEP)`
and the hedge venue weights shift the per-unit cost by `−κ_w·ln(max(N·w_v, 1e-6))` (venues with
`w_v < 1e-6` are excluded; all-equal weights leave the costs untouched); in "ref_env" mode the
weights are ignored and `hedge_scale` multiplies the final rounded sizes.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from paraphina_jax.config.types import SIDE_BUY, SIDE_SELL, STATUS_DISABLED, StrategyConfig
from paraphina_jax.reference.common import gate_stale_ms
from paraphina_jax.reference.targets import funding_rate_for_decision
from paraphina_jax.strategy.types import Controls, HedgePlan, StrategyState

EIGHT_HOURS_SEC = 8.0 * 60.0 * 60.0


class HedgeStep(NamedTuple):
    """§15.1 result (all scalars)."""

    band: float  # dead-band half width (TAO)
    x: float  # X = q_t
    delta_h: float  # ΔH after the clamp; 0 when no hedge is wanted
    active: bool  # a hedge is wanted (not killed, S valid, outside the band, |ΔH| ≥ 1e-9)
    side: int  # SIDE_SELL if the clamped ΔH > 0 else SIDE_BUY
    target: float  # |ΔH| when active else 0


class HedgeCosts(NamedTuple):
    """§15.2 per-venue candidates and costs; every field `[N]` (0 where not a candidate)."""

    candidate: np.ndarray  # bool
    guard_px: np.ndarray  # IOC guard price
    bid: np.ndarray  # derived touch (mid − spread/2)
    ask: np.ndarray  # derived touch (mid + spread/2)
    cap: np.ndarray  # min(max_venue_tao_per_tick, max_order_size, depth_fraction·depth/S)
    margin_cap: np.ndarray  # |dq'| of the margin rule
    eff_cap: np.ndarray  # min(cap, margin_cap)
    cost: np.ndarray  # per-unit cost incl. the venue-weight preference
    exec_cost: np.ndarray
    funding_benefit: np.ndarray
    basis_edge: np.ndarray
    liq_penalty: np.ndarray
    frag_penalty: np.ndarray


def _fmax(a: float, b: float) -> float:
    """max that ignores a NaN operand (Rust `f64::max`)."""
    return b if math.isnan(a) else a if math.isnan(b) else max(a, b)


def _fmin(a: float, b: float) -> float:
    """min that ignores a NaN operand (Rust `f64::min`)."""
    return b if math.isnan(a) else a if math.isnan(b) else min(a, b)


def _fair(state: StrategyState) -> float | None:
    """S if present, finite and > 0, else None (§15.1 gate)."""
    if not bool(state.has_fair_value):
        return None
    s = float(state.fair_value)
    return s if (math.isfinite(s) and s > 0.0) else None


def hedge_band(state: StrategyState, cfg: StrategyConfig) -> float:
    """§15.1 dead-band half width (D18 `cfg.flags.hedge_band_mode`).

    "ref" [IMPL]: `max(HEDGE_BAND_BASE, 0)·(1 + band_vol_mult·max(vol_ratio_clipped, 0))`;
    "spec": `HEDGE_BAND_BASE·band_mult`.
    """
    hc = cfg.hedge
    mode = cfg.flags.hedge_band_mode
    if mode == "spec":
        return float(hc.band_base) * float(state.band_mult)
    if mode == "ref":
        vr = _fmax(float(state.vol_ratio_clipped), 0.0)
        return _fmax(float(hc.band_base), 0.0) * (1.0 + float(hc.band_vol_mult) * vr)
    raise ValueError(f"hedge_band_mode must be 'ref' or 'spec', got {mode!r}")


def hedge_step(state: StrategyState, controls: Controls | None, cfg: StrategyConfig) -> HedgeStep:
    """§15.1 gates, dead band (inclusive) and clamped step.

    Kill switch or S absent/non-finite/≤ 0 ⇒ no hedge. `|X| ≤ band` ⇒ no hedge.
    `ΔH = clamp(k_hedge·X[·hedge_scale], ±max(HEDGE_MAX_STEP, 0))` (hedge_scale in "rec" mode
    only); `|ΔH| < 1e-9` (or non-finite) ⇒ no hedge. ΔH > 0 ⇒ sell.
    """
    hc = cfg.hedge
    mode = cfg.flags.control_surface_mode
    if mode not in ("rec", "ref_env"):
        raise ValueError(f"control_surface_mode must be 'rec' or 'ref_env', got {mode!r}")
    x = float(state.q_global_tao)
    band = hedge_band(state, cfg)
    raw = float(hc.k_hedge) * x
    if mode == "rec" and controls is not None:
        raw = raw * float(controls.hedge_scale)
    max_step = _fmax(float(hc.max_step), 0.0)
    dh = min(max(raw, -max_step), max_step) if not math.isnan(raw) else raw
    side = SIDE_SELL if dh > 0.0 else SIDE_BUY
    active = True
    if bool(state.kill_switch) or _fair(state) is None:
        active = False
    elif abs(x) <= band:  # dead band, inclusive
        active = False
    elif not math.isfinite(dh) or abs(dh) < 1e-9:
        active = False
    return HedgeStep(
        band=band,
        x=x,
        delta_h=dh if active else 0.0,
        active=active,
        side=side,
        target=abs(dh) if active else 0.0,
    )


def hedge_costs(
    state: StrategyState,
    side: int,
    now_ms: int,
    controls: Controls | None,
    cfg: StrategyConfig,
) -> HedgeCosts:
    """§15.2 candidate gates, guard prices, caps, margin cap and per-unit cost, per venue.

    Gates (any ⇒ not a candidate): S invalid; not hedge-allowed; Disabled; no mid update or
    (now > 0 and now − last_mid_update > stale_ms_v (D1 flag)); tox ≥ TOX_HIGH; mid or spread
    absent, non-finite or ≤ 0; depth < min_depth_usd; dist finite and ≤ liq_crit; derived bid ≤ 0
    or ask ≤ bid; guard price non-finite or ≤ 0; cap non-finite or ≤ 0; cost non-finite; in
    "rec" mode hedge venue weight < 1e-6.
    """
    hc = cfg.hedge
    vt = cfg.venues
    ven = state.venues
    n = cfg.n_venues
    z = lambda: np.zeros(n, dtype=np.float64)  # noqa: E731
    out = {k: z() for k in HedgeCosts._fields if k != "candidate"}
    candidate = np.zeros(n, dtype=bool)
    fair = _fair(state)
    if fair is None:
        return HedgeCosts(candidate=candidate, **out)

    sell = int(side) == SIDE_SELL
    now = int(now_ms)
    stale = gate_stale_ms(cfg)
    f8 = funding_rate_for_decision(state, now, cfg, "hedge")
    horizon_frac = float(hc.funding_horizon_sec) / EIGHT_HOURS_SEC
    rec = cfg.flags.control_surface_mode == "rec" and controls is not None
    w = np.full(n, 1.0 / n) if controls is None else np.asarray(controls.hedge_venue_weights)
    w = np.asarray(w, dtype=np.float64)
    uniform = bool(np.all(w == w[0]))
    kappa = float(hc.venue_weight_kappa)

    for j in range(n):
        if not bool(vt.hedge_allowed[j]):
            continue
        if int(ven.status[j]) == STATUS_DISABLED:
            continue
        if not bool(ven.has_mid_update[j]):
            continue
        if now > 0 and now - int(ven.last_mid_update_ms[j]) > int(stale[j]):
            continue  # stale book
        if float(ven.toxicity[j]) >= float(cfg.toxicity.tox_high_threshold):
            continue
        if not bool(ven.has_mid[j]):
            continue
        mid = float(ven.mid[j])
        spread = float(ven.spread[j])
        if not (math.isfinite(mid) and mid > 0.0 and math.isfinite(spread) and spread > 0.0):
            continue
        depth_usd = _fmax(float(ven.depth_near_mid[j]), 0.0)
        if depth_usd < float(hc.min_depth_usd):
            continue
        dist = float(ven.dist_liq_sigma[j])
        if math.isfinite(dist) and dist <= float(hc.liq_crit_sigma):
            continue  # at or inside the critical liquidation distance
        half = 0.5 * spread
        bid = mid - half
        ask = mid + half
        if bid <= 0.0 or ask <= bid:
            continue  # invalid derived top of book

        tick = _fmax(float(vt.tick_size[j]), 1e-9)
        if sell:
            guard = math.floor((bid - float(hc.guard_mult) * spread) / tick) * tick
        else:
            guard = math.ceil((ask + float(hc.guard_mult) * spread) / tick) * tick
        if not math.isfinite(guard) or guard <= 0.0:
            continue

        depth_cap = _fmax(float(hc.depth_fraction) * depth_usd / fair, 0.0)
        cap = _fmin(_fmin(float(hc.max_venue_tao_per_tick), float(vt.max_order_size[j])), depth_cap)
        if not math.isfinite(cap) or cap <= 0.0:
            continue

        # Margin cap: exposure may grow by margin·leverage·safety/S at most.
        q = float(ven.position_tao[j])
        margin = float(ven.margin_available_usd[j])
        lev = float(hc.max_leverage)
        safety = float(hc.margin_safety_buffer)
        if margin <= 0.0 or lev <= 0.0 or safety <= 0.0:
            abs_limit = abs(q)
        else:
            abs_limit = abs(q) + (margin * lev * safety) / fair
        dq = -cap if sell else cap
        q_new = q + dq
        if abs(q_new) <= abs_limit:
            dq_capped = dq
        elif q_new >= 0.0:
            dq_capped = _fmax(abs_limit - q, 0.0) if dq >= 0.0 else dq
        else:
            dq_capped = _fmin(-abs_limit - q, 0.0) if dq <= 0.0 else dq
        margin_cap = abs(dq_capped)

        # Per-unit cost.
        taker = abs(float(vt.taker_fee_bps[j]) / 10_000.0) * mid
        exec_cost = half + taker + float(hc.slippage_buffer)
        fund = float(f8[j]) * horizon_frac * fair
        funding_benefit = fund if sell else -fund
        basis_edge = (bid - fair) if sell else (fair - ask)
        if not math.isfinite(dist) or dist >= float(hc.liq_warn_sigma):
            liq_pen = 0.0
        else:
            liq_pen = float(hc.liq_penalty_scale) * (float(hc.liq_warn_sigma) - dist)
        frag = float(hc.frag_penalty) if abs(q) < 1e-9 else 0.0
        total = (
            exec_cost
            - float(hc.funding_weight) * funding_benefit
            - float(hc.basis_weight) * basis_edge
            + liq_pen
            + frag
        )
        if rec:
            # SIMULATION §6.3 venue preference; identity at uniform weights.
            if w[j] < 1e-6:
                continue
            if not uniform:
                total = total - kappa * math.log(_fmax(float(n) * float(w[j]), 1e-6))
        if not math.isfinite(total):
            continue

        candidate[j] = True
        out["guard_px"][j] = guard
        out["bid"][j] = bid
        out["ask"][j] = ask
        out["cap"][j] = cap
        out["margin_cap"][j] = margin_cap
        out["eff_cap"][j] = _fmin(cap, margin_cap)
        out["cost"][j] = total
        out["exec_cost"][j] = exec_cost
        out["funding_benefit"][j] = funding_benefit
        out["basis_edge"][j] = basis_edge
        out["liq_penalty"][j] = liq_pen
        out["frag_penalty"][j] = frag
    return HedgeCosts(candidate=candidate, **out)


def chunk_size(cfg: StrategyConfig) -> float:
    """§15.3 chunk: chunk_size_tao if > 0 else max(max_venue_tao_per_tick/4, 0.1), floored 1e-9."""
    hc = cfg.hedge
    c = float(hc.chunk_size_tao)
    if not c > 0.0:
        c = _fmax(float(hc.max_venue_tao_per_tick) / 4.0, 0.1)
    return _fmax(c, 1e-9)


def convexity_per_chunk(fair: float, cfg: StrategyConfig) -> float:
    """§15.3 extra unit cost per chunk index: bps/1e4 (D19 [IMPL]) or bps/1e4·S ([REC])."""
    conv = float(cfg.hedge.chunk_convexity_cost_bps) / 10_000.0
    if cfg.flags.chunk_convexity_times_price:
        conv = conv * fair
    return conv


def allocate_hedge(
    costs: HedgeCosts,
    target: float,
    fair: float,
    cfg: StrategyConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """§15.3 chunk knapsack, literal: build every chunk, sort, greedy, floor per venue.

    Chunks of venue v (a candidate with eff_cap_v > 0): floor(eff_cap_v/chunk) full chunks plus a
    remainder chunk when the remainder > 1e-9; chunk i has unit cost `cost_v + i·conv`. Sorted
    by (unit cost asc, venue id string asc, chunk index asc); greedy while remaining > 0, chunks
    whose take is < 1e-9 skipped. Then per venue `Q = floor(alloc/step_eff)·step_eff`,
    step_eff = max(size_step, lot, 1e-12); rejected if Q < lot, Q ≤ 0, Q·guard < min notional or
    Q < 1e-6.

    Returns:
      `(alloc [N], size [N], valid [N])`; size is Q where valid, else 0.
    """
    vt = cfg.venues
    n = cfg.n_venues
    rank = vt.id_rank()
    chunk = chunk_size(cfg)
    conv = convexity_per_chunk(fair, cfg)

    chunks: list[
        tuple[float, int, int, int, float]
    ] = []  # (unit cost, id rank, index, venue, size)
    for j in range(n):
        if not bool(costs.candidate[j]):
            continue
        eff = float(costs.eff_cap[j])
        if eff <= 0.0:
            continue
        base = float(costs.cost[j])
        n_full = math.floor(eff / chunk)
        for i in range(n_full):
            chunks.append((base + i * conv, int(rank[j]), i, j, chunk))
        remainder = eff - n_full * chunk
        if remainder > 1e-9:
            chunks.append((base + n_full * conv, int(rank[j]), n_full, j, remainder))
    chunks.sort(key=lambda c: (c[0], c[1], c[2]))

    alloc = np.zeros(n, dtype=np.float64)
    remaining = float(target)
    for _cost, _rank, _idx, j, size in chunks:
        if remaining <= 0.0:
            break
        a = min(size, remaining)
        if a < 1e-9:
            continue
        alloc[j] += a
        remaining -= a

    size_out = np.zeros(n, dtype=np.float64)
    valid = np.zeros(n, dtype=bool)
    for j in range(n):  # venue index ascending
        s = float(alloc[j])
        if not (s > 0.0 and math.isfinite(s)):
            continue
        lot = float(vt.lot_size[j])
        step = _fmax(_fmax(float(vt.size_step[j]), lot), 1e-12)
        qr = math.floor(s / step) * step
        if qr < lot or qr <= 0.0:
            continue
        if qr * float(costs.guard_px[j]) < float(vt.min_notional_usd[j]):
            continue
        if qr < 1e-6:
            continue
        size_out[j] = qr
        valid[j] = True
    return alloc, size_out, valid


def plan_hedge(
    state: StrategyState,
    now_ms: int,
    controls: Controls | None,
    cfg: StrategyConfig,
) -> HedgePlan:
    """§15 hedge plan of one tick: IOC orders at guard prices, emitted venue ascending.

    Killed or S invalid ⇒ no candidates and no orders. In "ref_env" control mode the rounded sizes
    are multiplied by hedge_scale (the order stays emitted; a zero size is rejected downstream).
    """
    n = cfg.n_venues
    step = hedge_step(state, controls, cfg)
    fair = _fair(state)
    if bool(state.kill_switch) or fair is None:  # no plan
        costs = HedgeCosts(
            candidate=np.zeros(n, dtype=bool),
            **{k: np.zeros(n, dtype=np.float64) for k in HedgeCosts._fields if k != "candidate"},
        )
        fair = 1.0
    else:
        costs = hedge_costs(state, step.side, now_ms, controls, cfg)
    alloc, size, valid = allocate_hedge(costs, step.target, fair, cfg)
    if cfg.flags.control_surface_mode == "ref_env" and controls is not None:
        size = size * float(controls.hedge_scale)
    return HedgePlan(
        valid=valid,
        size=np.where(valid, size, 0.0),
        price=np.where(costs.candidate, costs.guard_px, 0.0),
        side=np.int64(step.side),
        band=np.float64(step.band),
        x=np.float64(step.x),
        delta_h=np.float64(step.delta_h),
        active=np.bool_(step.active),
        alloc=alloc,
        cost=costs.cost,
        exec_cost=costs.exec_cost,
        funding_benefit=costs.funding_benefit,
        basis_edge=costs.basis_edge,
        liq_penalty=costs.liq_penalty,
        frag_penalty=costs.frag_penalty,
        candidate=costs.candidate,
    )
