"""Quoting model per venue, float64 NumPy reference engine (STRATEGY.md §11; sizes in §12).

Per-venue loops in spec order:

* §11.1 global gates (:func:`global_gate`) with the quoting σ of D9 (:func:`quoting_sigma`);
* §11.2 per-venue gates (:func:`venue_gates`), the quote-age guard per D12;
* §11.3 half-spread with the Warning and near-liquidation widening after the max (D13)
  (:func:`half_spreads`);
* §11.4 reservation price in the parity operation order (:func:`reservation_prices`);
* §11.5 passivity and tick snapping (:func:`snap_quotes`);
* §11.6 per-unit edges, D14 (:func:`quote_edges`);
* the entry point :func:`compute_quotes`, which calls the §12 size model
  (:func:`paraphina_jax.reference.sizing.quote_sizes`) and records the first gate that removed
  each side (GATE_* codes).

Control surface (SIMULATION §6.3/§6.6), `cfg.flags.control_surface_mode`:

* 'rec': `δ_vol ← δ_vol·spread_scale_v` before the max with δ_min; `r_v ← r_v + rprice_offset_v`;
  `Q ← Q·size_scale_v` after the vol multiplier (§12 step 2).
* 'ref_env' (the reference env, parity): after snapping, `price ← S + (price − S)·spread_scale_v`
  with no re-snap and no passivity re-check; the offset is ignored; the final rounded size is
  multiplied by `size_scale_v`. Edges, the margin cap and the D16 check use the snapped prices.
  At `spread_scale_v == 1` the snapped price is kept as is (the stretch is then the identity up to
  rounding, and exactly the identity whenever S/2 ≤ price ≤ 2S). A side whose stretched price is
  not > 0 is dropped (GATE_BAD_PRICES).

σ_q = max(σ_eff, σ_floor, 1e-8) with σ_floor the raw SIGMA_MIN (D9 'parity') or the tick-scaled
one (D9 'tick'); `as_sigma_in_price_units` replaces σ_q by σ_q·S in the inventory term.
"""

from __future__ import annotations

import math

import numpy as np

from paraphina_jax.config.types import (
    REGIME_HARDLIMIT,
    REGIME_WARNING,
    STATUS_DISABLED,
    StrategyConfig,
)
from paraphina_jax.reference.common import sigma_floors, venue_stale_ms
from paraphina_jax.reference.sizing import _clip, _fmax, _fmin, quote_sizes
from paraphina_jax.reference.targets import funding_rate_for_decision, inventory_targets
from paraphina_jax.strategy.types import (
    GATE_BAD_BOOK,
    GATE_BAD_PRICES,
    GATE_FV_UNAVAILABLE,
    GATE_KILL_OR_HARDLIMIT,
    GATE_LIQ_CRITICAL,
    GATE_NO_FAIR_VALUE,
    GATE_NO_MID,
    GATE_NONE,
    GATE_NONPOSITIVE_SPREAD,
    GATE_QUOTE_AGE,
    GATE_SIGMA_OR_SIZE_MULT,
    GATE_TOXIC,
    GATE_VENUE_DISABLED,
    Controls,
    QuoteSet,
    StrategyState,
)

SIGMA_Q_FLOOR = 1e-8  # §11.1 gate 4
AS_PARAM_FLOOR = 1e-8  # §11.3 γ, k floors
SPREAD_MULT_FLOOR = 1e-6  # §11.3
TICK_FLOOR = 1e-6  # §11.5
FUNDING_PERIOD_SEC = 28_800.0  # 8 h
ABLATION_SPREAD = 0.01  # §11.2 gate 6 defaults under disable_fair_value_gating
ABLATION_DEPTH = 10_000.0


def quoting_sigma(state: StrategyState, cfg: StrategyConfig) -> float:
    """§11.1 σ_q = max(σ_eff, σ_floor, 1e-8); σ_floor per D9 (raw SIGMA_MIN in 'parity')."""
    if cfg.flags.sigma_floor_mode == "parity":
        floor = float(cfg.vol.sigma_min)
    else:
        floor = float(sigma_floors(cfg)[0])
    return _fmax(_fmax(float(state.sigma_eff), floor), SIGMA_Q_FLOOR)


def global_gate(state: StrategyState, cfg: StrategyConfig) -> int:
    """§11.1 the first global gate that fires (GATE_NONE if quoting may go on)."""
    if not cfg.flags.disable_fair_value_gating and not bool(state.fv_available):
        return GATE_FV_UNAVAILABLE
    if not bool(state.has_fair_value):
        return GATE_NO_FAIR_VALUE
    if bool(state.kill_switch) or int(state.risk_regime) == REGIME_HARDLIMIT:
        return GATE_KILL_OR_HARDLIMIT
    size_mult = _fmax(float(state.size_mult), 0.0)
    if quoting_sigma(state, cfg) <= 0.0 or size_mult <= 0.0:
        return GATE_SIGMA_OR_SIZE_MULT
    return GATE_NONE


def venue_gates(
    state: StrategyState,
    now_ms: int,
    cfg: StrategyConfig,
    use_clock: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """§11.2 per-venue gates in order, plus the mid and spread quoting uses.

    Gates: 1 Disabled; 2 quote-age guard (D12 flag and a clock: no mid update ever, or
    `now − last_mid_update > QUOTE_MAX_AGE_MS`, unset ⇒ the venue's stale_ms); 3 dist_liq ≤
    LIQ_CRIT (kept open by the D15 option); 4 tox ≥ TOX_HIGH (off under disable_toxicity_gate);
    5 no mid; 6 spread ≤ 0 or depth ≤ 0. Under disable_fair_value_gating a missing mid reads S,
    a missing spread 0.01 and a non-positive depth 10 000.

    Returns:
      `(gate [N] int, mid [N], spread [N])`.
    """
    ven = state.venues
    fl = cfg.flags
    n = len(ven.mid)
    s_t = float(state.fair_value)
    guard = fl.quote_age_guard and use_clock
    stale = venue_stale_ms(cfg)
    max_age_cfg = int(cfg.mm.quote_max_age_ms)
    abl_fv = fl.disable_fair_value_gating
    gate = np.zeros(n, dtype=np.int64)
    mid = np.zeros(n, dtype=np.float64)
    spread = np.zeros(n, dtype=np.float64)
    for v in range(n):
        has_mid = bool(ven.has_mid[v])
        mid[v] = float(ven.mid[v]) if has_mid else (s_t if abl_fv else 0.0)
        spread[v] = float(ven.spread[v]) if has_mid else (ABLATION_SPREAD if abl_fv else 0.0)
        depth = float(ven.depth_near_mid[v])
        if abl_fv and depth <= 0.0:
            depth = ABLATION_DEPTH
        max_age = max_age_cfg if max_age_cfg >= 0 else int(stale[v])
        if int(ven.status[v]) == STATUS_DISABLED:
            gate[v] = GATE_VENUE_DISABLED
        elif guard and (
            not bool(ven.has_mid_update[v])
            or int(now_ms) - int(ven.last_mid_update_ms[v]) > max_age
        ):
            gate[v] = GATE_QUOTE_AGE
        elif not fl.mm_reduce_only_at_crit and float(ven.dist_liq_sigma[v]) <= float(
            cfg.risk.liq_crit_sigma
        ):
            gate[v] = GATE_LIQ_CRITICAL
        elif not fl.disable_toxicity_gate and float(ven.toxicity[v]) >= float(
            cfg.toxicity.tox_high_threshold
        ):
            gate[v] = GATE_TOXIC
        elif not has_mid and not abl_fv:
            gate[v] = GATE_NO_MID
        elif spread[v] <= 0.0 or depth <= 0.0:
            gate[v] = GATE_BAD_BOOK
    return gate, mid, spread


def half_spreads(
    state: StrategyState, controls: Controls | None, cfg: StrategyConfig
) -> tuple[np.ndarray, np.ndarray, float]:
    """§11.3 half-spread δ per venue with the Warning and near-liquidation widening.

    `δ* = (1/γ)·ln(1 + γ/k)`; `δ_vol = δ*·max(spread_mult, 1e-6)` ('rec': ·spread_scale_v);
    `c_maker = (fee/1e4 − rebate/1e4)·S`; `v_buf = EDGE_VOL_MULT·σ_q·S`;
    `δ = max(δ_vol, (max(E, 0) + c_maker + v_buf)/2, 0)`; Warning ⇒ `δ·max(SPREAD_WARN_MULT, 1)`;
    `0 < dist < LIQ_WARN` ⇒ `δ·(1 + 2·clip((LIQ_WARN − dist)/LIQ_WARN, 0, 1))`.

    Returns:
      `(delta [N], c_maker [N], v_buf)`.
    """
    ven = state.venues
    vt = cfg.venues
    rc = cfg.risk
    n = len(ven.mid)
    s_t = float(state.fair_value)
    sigma_q = quoting_sigma(state, cfg)
    spread_mult = _fmax(_fmax(float(state.spread_mult), 0.0), SPREAD_MULT_FLOOR)
    edge_min = _fmax(float(cfg.mm.edge_local_min), 0.0)
    v_buf = float(cfg.mm.edge_vol_mult) * sigma_q * s_t
    warning = int(state.risk_regime) == REGIME_WARNING
    warn_mult = _fmax(float(rc.spread_warn_mult), 1.0)
    liq_warn = float(rc.liq_warn_sigma)
    delta = np.zeros(n, dtype=np.float64)
    c_maker = np.zeros(n, dtype=np.float64)
    for v in range(n):
        gamma = _fmax(float(vt.gamma[v]), AS_PARAM_FLOOR)
        k = _fmax(float(vt.k[v]), AS_PARAM_FLOOR)
        delta_as = (1.0 / gamma) * math.log(1.0 + (gamma / k))
        delta_vol = delta_as * spread_mult
        if controls is not None and cfg.flags.control_surface_mode == "rec":
            delta_vol = delta_vol * float(controls.spread_scale[v])  # [REC] policy hook
        c = (float(vt.maker_fee_bps[v]) / 10_000.0 - float(vt.maker_rebate_bps[v]) / 10_000.0) * s_t
        delta_min = (edge_min + c + v_buf) / 2.0
        d = _fmax(_fmax(delta_vol, delta_min), 0.0)
        if warning:
            d = d * warn_mult  # [IMPL] after the max (D13)
        dist = float(ven.dist_liq_sigma[v])
        if dist > 0.0 and dist < liq_warn:
            t = _clip((liq_warn - dist) / liq_warn, 0.0, 1.0)
            d = d * (1.0 + 2.0 * t)
        delta[v] = d
        c_maker[v] = c
    return delta, c_maker, v_buf


def reservation_prices(
    state: StrategyState,
    now_ms: int,
    controls: Controls | None,
    cfg: StrategyConfig,
    mid: np.ndarray,
    use_clock: bool = True,
) -> np.ndarray:
    """§11.4 r_v = ((S + β_b·(m_v − S)) + β_f·f_v) − γ·(σ_q·σ_q·τ)·dev ('rec': + offset_v).

    `f_v = f8_v·(τ/28800)·S` with f8 the MM rate-for-decision (§9), `τ = max(QUOTE_HORIZON, 1)`,
    `dev = q_t − λ_inv·(q_v − q_target_v)` (§10 targets).

    Args:
      mid: `[N]` the mid from :func:`venue_gates`.

    Returns:
      `[N]` reservation prices.
    """
    ven = state.venues
    vt = cfg.venues
    mm = cfg.mm
    n = len(ven.mid)
    s_t = float(state.fair_value)
    sigma = quoting_sigma(state, cfg)
    if cfg.flags.as_sigma_in_price_units:
        sigma = sigma * s_t
    tau = _fmax(float(mm.quote_horizon_sec), 1.0)
    horizon_frac = tau / FUNDING_PERIOD_SEC
    sigma_sq_tau = sigma * sigma * tau
    f8 = funding_rate_for_decision(state, now_ms, cfg, "mm", use_clock)
    _, q_target = inventory_targets(state, now_ms, cfg, use_clock)
    q_t = float(state.q_global_tao)
    out = np.zeros(n, dtype=np.float64)
    for v in range(n):
        gamma = _fmax(float(vt.gamma[v]), AS_PARAM_FLOOR)
        basis_adj = float(mm.basis_weight) * (float(mid[v]) - s_t)
        funding_adj = float(mm.funding_weight) * (float(f8[v]) * horizon_frac * s_t)
        dev = q_t - float(mm.lambda_inv) * (float(ven.position_tao[v]) - float(q_target[v]))
        inv_term = gamma * sigma_sq_tau * dev
        r = ((s_t + basis_adj) + funding_adj) - inv_term
        if controls is not None and cfg.flags.control_surface_mode == "rec":
            r = r + float(controls.rprice_offset_usd[v])  # [REC] policy hook
        out[v] = r
    return out


def snap_quotes(
    reservation: np.ndarray,
    delta: np.ndarray,
    mid: np.ndarray,
    spread: np.ndarray,
    cfg: StrategyConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """§11.5 raw quotes r ∓ δ, passivity one tick behind the touch, tick snapping.

    `lim_b = (m − spr/2) − tick`, `lim_a = (m + spr/2) + tick` (tick floored at 1e-6);
    `bid = floor(min(r − δ, lim_b)/tick)·tick`, `ask = ceil(max(r + δ, lim_a)/tick)·tick`, then
    re-snapped to the limit if the snapped price crossed it.

    Returns:
      `(bid [N], ask [N])`.
    """
    n = len(reservation)
    bid = np.zeros(n, dtype=np.float64)
    ask = np.zeros(n, dtype=np.float64)
    for v in range(n):
        r = float(reservation[v])
        d = float(delta[v])
        half = float(spread[v]) / 2.0
        best_bid = float(mid[v]) - half
        best_ask = float(mid[v]) + half
        tick = _fmax(float(cfg.venues.tick_size[v]), TICK_FLOOR)
        lim_b = best_bid - tick
        lim_a = best_ask + tick
        b = float(np.floor(_fmin(r - d, lim_b) / tick)) * tick
        a = float(np.ceil(_fmax(r + d, lim_a) / tick)) * tick
        if b > lim_b:
            b = float(np.floor(lim_b / tick)) * tick
        if a < lim_a:
            a = float(np.ceil(lim_a / tick)) * tick
        bid[v] = b
        ask[v] = a
    return bid, ask


def quote_edges(
    state: StrategyState,
    bid: np.ndarray,
    ask: np.ndarray,
    c_maker: np.ndarray,
    v_buf: float,
    cfg: StrategyConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """§11.6 per-unit edges: `S − bid − c_maker [− v_buf]`, `ask − S − c_maker [− v_buf]` (D14)."""
    s_t = float(state.fair_value)
    with_vbuf = cfg.flags.quote_edge_includes_vbuf
    n = len(bid)
    e_bid = np.zeros(n, dtype=np.float64)
    e_ask = np.zeros(n, dtype=np.float64)
    for v in range(n):
        eb = s_t - float(bid[v]) - float(c_maker[v])
        ea = float(ask[v]) - s_t - float(c_maker[v])
        if with_vbuf:
            eb = eb - v_buf
            ea = ea - v_buf
        e_bid[v] = eb
        e_ask[v] = ea
    return e_bid, e_ask


def compute_quotes(
    state: StrategyState,
    now_ms: int,
    controls: Controls | None,
    cfg: StrategyConfig,
    *,
    use_clock: bool = True,
) -> QuoteSet:
    """§11–§12 desired MM quotes of one tick.

    Args:
      state: strategy state after this tick's fair value, vol, toxicity and risk updates.
      now_ms: tick time (used by the quote-age guard and the funding rate when `use_clock`).
      controls: control surface (SIMULATION §6.6), or None for none.
      cfg: config.
      use_clock: False reproduces the reference harnesses, which quote without a clock (no
        quote-age guard, raw funding rate).

    Returns:
      QuoteSet (`[N]` fields). Prices and sizes are 0 where a side is not quoted; reservation
      and half-spread are 0 where a global or per-venue gate fired; edges are 0 where no prices
      were formed.
    """
    ven = state.venues
    n = len(ven.mid)
    z = lambda: np.zeros(n, dtype=np.float64)
    out = dict(
        bid_px=z(),
        ask_px=z(),
        bid_size=z(),
        ask_size=z(),
        bid_valid=np.zeros(n, dtype=bool),
        ask_valid=np.zeros(n, dtype=bool),
        bid_gate=np.zeros(n, dtype=np.int64),
        ask_gate=np.zeros(n, dtype=np.int64),
        reservation=z(),
        half_spread=z(),
        edge_bid=z(),
        edge_ask=z(),
    )
    g0 = global_gate(state, cfg)
    if g0 != GATE_NONE:
        out["bid_gate"][:] = g0
        out["ask_gate"][:] = g0
        return QuoteSet(**out)

    s_t = float(state.fair_value)
    vgate, mid, spread = venue_gates(state, now_ms, cfg, use_clock)
    delta, c_maker, v_buf = half_spreads(state, controls, cfg)
    r = reservation_prices(state, now_ms, controls, cfg, mid, use_clock)
    bid, ask = snap_quotes(r, delta, mid, spread, cfg)
    e_bid, e_ask = quote_edges(state, bid, ask, c_maker, v_buf, cfg)
    edge_min = _fmax(float(cfg.mm.edge_local_min), 0.0)

    gate = vgate.copy()
    for v in range(n):
        if gate[v] != GATE_NONE:
            continue
        out["reservation"][v] = r[v]
        out["half_spread"][v] = delta[v]
        if delta[v] <= 0.0:
            gate[v] = GATE_NONPOSITIVE_SPREAD
        elif bid[v] <= 0.0 or ask[v] <= bid[v]:
            gate[v] = GATE_BAD_PRICES
        else:
            out["edge_bid"][v] = e_bid[v]
            out["edge_ask"][v] = e_ask[v]

    px = np.stack([bid, ask], axis=1)
    edge = np.stack([e_bid, e_ask], axis=1)
    edge_ok = edge >= edge_min
    size, sgate = quote_sizes(state, px, edge, edge_ok, controls, cfg)

    stretch = controls is not None and cfg.flags.control_surface_mode == "ref_env"
    for v in range(n):
        for s, side in enumerate(("bid", "ask")):
            g = int(gate[v]) if gate[v] != GATE_NONE else int(sgate[v, s])
            price = float(px[v, s])
            if stretch and g == GATE_NONE:
                scale = float(controls.spread_scale[v])
                if scale != 1.0:
                    price = s_t + (price - s_t) * scale  # [IMPL] reference env, no re-snap
                if not (price > 0.0):
                    g = GATE_BAD_PRICES
            out[f"{side}_gate"][v] = g
            if g == GATE_NONE:
                out[f"{side}_valid"][v] = True
                out[f"{side}_px"][v] = price
                out[f"{side}_size"][v] = size[v, s]
    return QuoteSet(**out)
