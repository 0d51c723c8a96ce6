"""Quoting model per venue, JAX engine (STRATEGY.md §11; sizes in §12).

Pure functions on one environment (`[N]` per-venue arrays); callers vmap them. Gates are masks;
the GATE_* code of a removed side is the first gate that fired, in spec order. The
control-surface mode, the D-flags, the ablations, `use_clock` and whether `controls` is None are
static. Semantics (operation order, control surface, D9/D12/D13/D14/D15/D16/D24 options) are
those of :mod:`paraphina_jax.reference.quoting` and :mod:`paraphina_jax.reference.sizing`.

Numerics: every division by a config value or constant goes through
:func:`paraphina_jax.strategy.sizing.exact_div` (XLA otherwise turns `x / broadcast(y)` into a
multiplication by the reciprocal, which moves floor-to-tick and floor-to-lot results). Bid and
ask are carried as separate `[N]` arrays (no `[N, 2]` side axis) to keep the fused CPU kernels
small."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from paraphina_jax.config.types import (
    REGIME_HARDLIMIT,
    REGIME_WARNING,
    STATUS_DISABLED,
    StrategyConfig,
)
from paraphina_jax.strategy.common import sigma_floors, venue_stale_ms
from paraphina_jax.strategy.sizing import GATE_DTYPE, _mark, exact_div, side_sizes
from paraphina_jax.strategy.targets import funding_rate_for_decision, inventory_targets
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

Array = Any

SIGMA_Q_FLOOR = 1e-8  # §11.1 gate 4
AS_PARAM_FLOOR = 1e-8  # §11.3 γ, k floors
SPREAD_MULT_FLOOR = 1e-6  # §11.3
TICK_FLOOR = 1e-6  # §11.5
FUNDING_PERIOD_SEC = 28_800.0  # 8 h
ABLATION_SPREAD = 0.01  # §11.2 gate 6 defaults under disable_fair_value_gating
ABLATION_DEPTH = 10_000.0


def _first_gate(conds: list[tuple[Array, int]], shape: tuple[int, ...]) -> Array:
    """GATE_* code of the first condition (in list order) that holds, GATE_NONE if none."""
    gate = jnp.full(shape, GATE_NONE, GATE_DTYPE)
    for cond, code in reversed(conds):
        gate = jnp.where(cond, jnp.asarray(code, GATE_DTYPE), gate)
    return gate


def _fdt(state: StrategyState) -> Any:
    return state.venues.mid.dtype


def quoting_sigma(state: StrategyState, cfg: StrategyConfig) -> Array:
    """§11.1 `[]` σ_q = max(σ_eff, σ_floor, 1e-8); σ_floor per D9 (raw SIGMA_MIN in 'parity')."""
    fdt = _fdt(state)
    if cfg.flags.sigma_floor_mode == "parity":
        floor = jnp.asarray(cfg.vol.sigma_min, fdt)
    else:
        floor = jnp.asarray(sigma_floors(cfg)[0], fdt)
    return jnp.fmax(jnp.fmax(state.sigma_eff.astype(fdt), floor), SIGMA_Q_FLOOR)


def global_gate(state: StrategyState, cfg: StrategyConfig) -> Array:
    """§11.1 `[]` int32: the first global gate that fires (GATE_NONE if quoting may go on)."""
    conds = []
    if not cfg.flags.disable_fair_value_gating:
        conds.append((~state.fv_available, GATE_FV_UNAVAILABLE))
    size_mult = jnp.fmax(state.size_mult, 0.0)
    conds += [
        (~state.has_fair_value, GATE_NO_FAIR_VALUE),
        (state.kill_switch | (state.risk_regime == REGIME_HARDLIMIT), GATE_KILL_OR_HARDLIMIT),
        ((quoting_sigma(state, cfg) <= 0.0) | (size_mult <= 0.0), GATE_SIGMA_OR_SIZE_MULT),
    ]
    return _first_gate(conds, ())


def venue_gates(
    state: StrategyState,
    now_ms: Array,
    cfg: StrategyConfig,
    use_clock: bool = True,
) -> tuple[Array, Array, Array]:
    """§11.2 per-venue gates in order, plus the mid and spread quoting uses.

    Gates: 1 Disabled; 2 quote-age guard (D12 flag and `use_clock`: no mid update ever, or
    `now − last_mid_update > QUOTE_MAX_AGE_MS`, unset ⇒ the venue's stale_ms); 3 dist_liq ≤
    LIQ_CRIT (kept open by the D15 option); 4 tox ≥ TOX_HIGH (off under disable_toxicity_gate);
    5 no mid; 6 spread ≤ 0 or depth ≤ 0. Under disable_fair_value_gating a missing mid reads S,
    a missing spread 0.01 and a non-positive depth 10 000.

    Args:
      now_ms: `[]` int.
      use_clock: static.

    Returns:
      `(gate [N] int32, mid [N], spread [N])` (mid and spread 0 where absent).
    """
    v = state.venues
    fl = cfg.flags
    fdt = _fdt(state)
    zero = jnp.zeros((), fdt)
    abl_fv = fl.disable_fair_value_gating
    if abl_fv:
        mid = jnp.where(v.has_mid, v.mid, state.fair_value.astype(fdt))
        spread = jnp.where(v.has_mid, v.spread, jnp.asarray(ABLATION_SPREAD, fdt))
        depth = jnp.where(
            v.depth_near_mid <= 0.0, jnp.asarray(ABLATION_DEPTH, fdt), v.depth_near_mid
        )
    else:
        mid = jnp.where(v.has_mid, v.mid, zero)
        spread = jnp.where(v.has_mid, v.spread, zero)
        depth = v.depth_near_mid
    conds = [(v.status == STATUS_DISABLED, GATE_VENUE_DISABLED)]
    if fl.quote_age_guard and use_clock:
        qmax = jnp.asarray(cfg.mm.quote_max_age_ms)
        stale = venue_stale_ms(cfg)
        max_age = jnp.where(qmax >= 0, qmax, stale)
        age = now_ms - v.last_mid_update_ms
        conds.append(((~v.has_mid_update) | (age > max_age), GATE_QUOTE_AGE))
    if not fl.mm_reduce_only_at_crit:
        conds.append((v.dist_liq_sigma <= cfg.risk.liq_crit_sigma, GATE_LIQ_CRITICAL))
    if not fl.disable_toxicity_gate:
        conds.append((v.toxicity >= cfg.toxicity.tox_high_threshold, GATE_TOXIC))
    if not abl_fv:
        conds.append((~v.has_mid, GATE_NO_MID))
    conds.append(((spread <= 0.0) | (depth <= 0.0), GATE_BAD_BOOK))
    return _first_gate(conds, v.mid.shape), mid, spread


def half_spreads(
    state: StrategyState, controls: Controls | None, cfg: StrategyConfig
) -> tuple[Array, Array, Array]:
    """§11.3 half-spread δ per venue with the Warning and near-liquidation widening.

    `δ* = (1/γ)·ln(1 + γ/k)`; `δ_vol = δ*·max(spread_mult, 1e-6)` ('rec': ·spread_scale_v);
    `c_maker = (fee/1e4 − rebate/1e4)·S`; `v_buf = EDGE_VOL_MULT·σ_q·S`;
    `δ = max(δ_vol, (max(E, 0) + c_maker + v_buf)/2, 0)`; Warning ⇒ `δ·max(SPREAD_WARN_MULT, 1)`;
    `0 < dist < LIQ_WARN` ⇒ `δ·(1 + 2·clip((LIQ_WARN − dist)/LIQ_WARN, 0, 1))`.

    Returns:
      `(delta [N], c_maker [N], v_buf [])`.
    """
    v = state.venues
    vt = cfg.venues
    rc = cfg.risk
    fdt = _fdt(state)

    def f(x: Any) -> Array:
        return jnp.asarray(x, fdt)

    s = state.fair_value.astype(fdt)
    sigma_q = quoting_sigma(state, cfg)
    spread_mult = jnp.fmax(jnp.fmax(state.spread_mult.astype(fdt), 0.0), SPREAD_MULT_FLOOR)
    gamma = jnp.maximum(f(vt.gamma), AS_PARAM_FLOOR)
    k = jnp.maximum(f(vt.k), AS_PARAM_FLOOR)
    delta_as = (1.0 / gamma) * jnp.log(1.0 + (gamma / k))
    delta_vol = delta_as * spread_mult
    if controls is not None and cfg.flags.control_surface_mode == "rec":
        delta_vol = delta_vol * controls.spread_scale.astype(fdt)  # [REC] policy hook
    c_maker = (
        exact_div(f(vt.maker_fee_bps), 10_000.0) - exact_div(f(vt.maker_rebate_bps), 10_000.0)
    ) * s
    v_buf = f(cfg.mm.edge_vol_mult) * sigma_q * s
    edge_min = jnp.maximum(f(cfg.mm.edge_local_min), 0.0)
    delta_min = (edge_min + c_maker + v_buf) / 2.0
    d = jnp.maximum(jnp.maximum(delta_vol, delta_min), 0.0)
    warn_mult = jnp.maximum(f(rc.spread_warn_mult), 1.0)
    d = jnp.where(state.risk_regime == REGIME_WARNING, d * warn_mult, d)  # [IMPL] after max (D13)
    dist = v.dist_liq_sigma.astype(fdt)
    liq_warn = f(rc.liq_warn_sigma)
    t = jnp.clip(exact_div(liq_warn - dist, liq_warn), 0.0, 1.0)
    d = jnp.where((dist > 0.0) & (dist < liq_warn), d * (1.0 + 2.0 * t), d)
    return d, c_maker, v_buf


def reservation_prices(
    state: StrategyState,
    now_ms: Array,
    controls: Controls | None,
    cfg: StrategyConfig,
    mid: Array,
    use_clock: bool = True,
) -> Array:
    """§11.4 `[N]` r_v = ((S + β_b·(m_v − S)) + β_f·f_v) − γ·(σ_q·σ_q·τ)·dev ('rec': + offset_v).

    `f_v = f8_v·(τ/28800)·S` with f8 the MM rate-for-decision (§9), `τ = max(QUOTE_HORIZON, 1)`,
    `dev = q_t − λ_inv·(q_v − q_target_v)` (§10 targets).

    Args:
      now_ms: `[]` int.
      mid: `[N]` the mid from :func:`venue_gates`.
      use_clock: static, forwarded to the funding rate and targets.
    """
    v = state.venues
    mm = cfg.mm
    fdt = _fdt(state)

    def f(x: Any) -> Array:
        return jnp.asarray(x, fdt)

    s = state.fair_value.astype(fdt)
    sigma = quoting_sigma(state, cfg)
    if cfg.flags.as_sigma_in_price_units:
        sigma = sigma * s
    tau = jnp.maximum(f(mm.quote_horizon_sec), 1.0)
    horizon_frac = exact_div(tau, FUNDING_PERIOD_SEC)
    sigma_sq_tau = sigma * sigma * tau
    f8 = funding_rate_for_decision(state, now_ms, cfg, "mm", use_clock).astype(fdt)
    _, q_target = inventory_targets(state, now_ms, cfg, use_clock)
    gamma = jnp.maximum(f(cfg.venues.gamma), AS_PARAM_FLOOR)
    basis_adj = f(mm.basis_weight) * (mid - s)
    funding_adj = f(mm.funding_weight) * (f8 * horizon_frac * s)
    dev = state.q_global_tao.astype(fdt) - f(mm.lambda_inv) * (
        v.position_tao.astype(fdt) - q_target.astype(fdt)
    )
    inv_term = gamma * sigma_sq_tau * dev
    r = ((s + basis_adj) + funding_adj) - inv_term
    if controls is not None and cfg.flags.control_surface_mode == "rec":
        r = r + controls.rprice_offset_usd.astype(fdt)  # [REC] policy hook
    return r


def snap_quotes(
    reservation: Array,
    delta: Array,
    mid: Array,
    spread: Array,
    cfg: StrategyConfig,
) -> tuple[Array, Array]:
    """§11.5 raw quotes r ∓ δ, passivity one tick behind the touch, tick snapping.

    `lim_b = (m − spr/2) − tick`, `lim_a = (m + spr/2) + tick` (tick floored at 1e-6);
    `bid = floor(min(r − δ, lim_b)/tick)·tick`, `ask = ceil(max(r + δ, lim_a)/tick)·tick`, then
    re-snapped to the limit if the snapped price crossed it. All `[N]`.

    Returns:
      `(bid [N], ask [N])`.
    """
    fdt = reservation.dtype
    half = spread / 2.0
    tick = jnp.maximum(jnp.asarray(cfg.venues.tick_size, fdt), TICK_FLOOR)
    lim_b = (mid - half) - tick
    lim_a = (mid + half) + tick
    bid = jnp.floor(exact_div(jnp.minimum(reservation - delta, lim_b), tick)) * tick
    ask = jnp.ceil(exact_div(jnp.maximum(reservation + delta, lim_a), tick)) * tick
    bid = jnp.where(bid > lim_b, jnp.floor(exact_div(lim_b, tick)) * tick, bid)
    ask = jnp.where(ask < lim_a, jnp.ceil(exact_div(lim_a, tick)) * tick, ask)
    return bid, ask


def quote_edges(
    state: StrategyState,
    bid: Array,
    ask: Array,
    c_maker: Array,
    v_buf: Array,
    cfg: StrategyConfig,
) -> tuple[Array, Array]:
    """§11.6 `[N]` edges: `S − bid − c_maker [− v_buf]`, `ask − S − c_maker [− v_buf]` (D14)."""
    s = state.fair_value.astype(bid.dtype)
    e_bid = s - bid - c_maker
    e_ask = ask - s - c_maker
    if cfg.flags.quote_edge_includes_vbuf:
        e_bid = e_bid - v_buf
        e_ask = e_ask - v_buf
    return e_bid, e_ask


def compute_quotes(
    state: StrategyState,
    now_ms: Array,
    controls: Controls | None,
    cfg: StrategyConfig,
    *,
    use_clock: bool = True,
) -> QuoteSet:
    """§11–§12 desired MM quotes of one tick.

    Args:
      state: strategy state after this tick's fair value, vol, toxicity and risk updates.
      now_ms: `[]` int tick time (quote-age guard and funding rate when `use_clock`).
      controls: control surface (SIMULATION §6.6, `[N]` fields), or None for none (static).
      cfg: config.
      use_clock: static; False reproduces the reference harnesses, which quote without a clock
        (no quote-age guard, raw funding rate).

    Returns:
      QuoteSet (`[N]` fields). Prices and sizes are 0 where a side is not quoted; reservation
      and half-spread are 0 where a global or per-venue gate fired; edges are 0 where no prices
      were formed.
    """
    fdt = _fdt(state)
    zero = jnp.zeros((), fdt)
    s = state.fair_value.astype(fdt)

    g0 = global_gate(state, cfg)
    vgate, mid, spread = venue_gates(state, now_ms, cfg, use_clock)
    delta, c_maker, v_buf = half_spreads(state, controls, cfg)
    r = reservation_prices(state, now_ms, controls, cfg, mid, use_clock)
    bid, ask = snap_quotes(r, delta, mid, spread, cfg)
    e_bid, e_ask = quote_edges(state, bid, ask, c_maker, v_buf, cfg)

    gate = jnp.where(g0 != GATE_NONE, g0, vgate)
    open_v = gate == GATE_NONE
    gate = _mark(gate, delta <= 0.0, GATE_NONPOSITIVE_SPREAD)
    gate = _mark(gate, (bid <= 0.0) | (ask <= bid), GATE_BAD_PRICES)
    priced = gate == GATE_NONE
    edge_min = jnp.maximum(jnp.asarray(cfg.mm.edge_local_min, fdt), 0.0)
    stretch = controls is not None and cfg.flags.control_surface_mode == "ref_env"

    sides = []
    for k, (px, edge) in enumerate(((bid, e_bid), (ask, e_ask))):
        size, sgate = side_sizes(state, px, edge, edge >= edge_min, k, controls, cfg)
        sgate = jnp.where(priced, sgate, gate)
        if stretch:
            scale = controls.spread_scale.astype(fdt)
            px = jnp.where(scale == 1.0, px, s + (px - s) * scale)  # [IMPL] ref env, no re-snap
            sgate = _mark(sgate, ~(px > 0.0), GATE_BAD_PRICES)
        valid = sgate == GATE_NONE
        sides.append((jnp.where(valid, px, zero), jnp.where(valid, size, zero), valid, sgate))
    (bid_px, bid_size, bid_valid, bid_gate), (ask_px, ask_size, ask_valid, ask_gate) = sides
    return QuoteSet(
        bid_px=bid_px,
        ask_px=ask_px,
        bid_size=bid_size,
        ask_size=ask_size,
        bid_valid=bid_valid,
        ask_valid=ask_valid,
        bid_gate=bid_gate,
        ask_gate=ask_gate,
        reservation=jnp.where(open_v, r, zero),
        half_spread=jnp.where(open_v, delta, zero),
        edge_bid=jnp.where(priced, e_bid, zero),
        edge_ask=jnp.where(priced, e_ask, zero),
    )
