"""Global hedge engine, JAX engine (STRATEGY.md §15, SIMULATION.md §6.3).

Pure functions on one environment (`[N]` per-venue arrays, scalars `[]`); callers vmap them.

The §15.3 greedy over chunks sorted by (unit cost, venue id string, chunk index) is computed
without materialising or sorting the `N·C` chunk grid: the chunks of one venue are already in
that order (unit cost `cost_v + i·conv` is non-decreasing in i for conv ≥ 0, and the index breaks
ties), so the sorted sequence is the merge of N sorted streams. Each greedy step picks the
smallest head among the venues by (head unit cost, id rank) — an `[N]` reduction — and takes
`min(chunk, remaining)` from it. With zero convexity this visits the venues in (cost, id rank)
order, a venue's chunks back to back. The steps perform the reference's additions and
subtractions in the reference's order, so allocations are bit-identical to the chunk-sort greedy.
The number of steps is bounded statically from concrete config values
(`floor(HEDGE_MAX_STEP/chunk) + N + 2`, at most the chunk count); with traced config leaves a
`lax.while_loop` runs until the target or the chunks are exhausted.

XLA rewrites some float arithmetic in ways IEEE evaluation would not: `a·b + c` becomes a fused
multiply-add, `x / c` and `x / broadcast(s)` become `x·(1/c)`, and products with constants are
reassociated. Intermediate products therefore pass through :func:`_rounded`, divisions through
:func:`_div` (config-only quotients are computed in NumPy float64, :func:`_cdiv`), so the floors
of §15.2–15.3 (guard price, chunk count and remainder, lot flooring) see the same bits as the
float64 reference.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from paraphina_jax.config.types import SIDE_BUY, SIDE_SELL, STATUS_DISABLED, StrategyConfig
from paraphina_jax.strategy.common import gate_stale_ms
from paraphina_jax.strategy.targets import funding_rate_for_decision
from paraphina_jax.strategy.types import Array, Controls, HedgePlan, StrategyState
from paraphina_jax.utils.fusion import materialize_tree

EIGHT_HOURS_SEC = 8.0 * 60.0 * 60.0


class HedgeStep(NamedTuple):
    """§15.1 result (all `[]`)."""

    band: Array  # f  dead-band half width (TAO)
    x: Array  # f  X = q_t
    delta_h: Array  # f  ΔH after the clamp; 0 when no hedge is wanted
    active: Array  # bool  not killed, S valid, outside the band, |ΔH| ≥ 1e-9
    side: Array  # i  SIDE_SELL if the clamped ΔH > 0 else SIDE_BUY
    target: Array  # f  |ΔH| when active else 0


class HedgeCosts(NamedTuple):
    """§15.2 per-venue candidates and costs; every field `[N]` (0 where not a candidate)."""

    candidate: Array  # bool
    guard_px: Array  # f  IOC guard price
    bid: Array  # f  derived touch (mid − spread/2)
    ask: Array  # f  derived touch (mid + spread/2)
    cap: Array  # f  min(max_venue_tao_per_tick, max_order_size, depth_fraction·depth/S)
    margin_cap: Array  # f  |dq'| of the margin rule
    eff_cap: Array  # f  min(cap, margin_cap)
    cost: Array  # f  per-unit cost incl. the venue-weight preference
    exec_cost: Array  # f
    funding_benefit: Array  # f
    basis_edge: Array  # f
    liq_penalty: Array  # f
    frag_penalty: Array  # f


def _rounded(p: Array) -> Array:
    """`p` as an opaque rounded value: XLA can neither fuse it into an FMA nor reassociate it."""
    return jnp.where(p == p, p, jnp.full_like(p, jnp.nan))


def _div(a: Array, b: Array) -> Array:
    """IEEE `a / b` (the divisor is made opaque so XLA cannot turn it into `a·(1/b)`)."""
    b = jnp.asarray(b, jnp.result_type(a))
    return a / jnp.where(a == a, b, jnp.full_like(b, jnp.nan))


def _cdiv(a: Any, b: float, fdt: Any) -> Array:
    """`a / b` for config values: NumPy float64 when `a` is concrete, else :func:`_div`."""
    if isinstance(a, jax.core.Tracer):
        return _div(jnp.asarray(a, fdt), b)
    return jnp.asarray(np.asarray(a, np.float64) / np.float64(b), fdt)


def _fair(state: StrategyState, fdt: Any) -> tuple[Array, Array]:
    """(S or 1 `[]`, S valid `[]` bool): present, finite and > 0 (§15.1 gate)."""
    s = state.fair_value.astype(fdt)
    ok = state.has_fair_value & jnp.isfinite(s) & (s > 0)
    return jnp.where(ok, s, jnp.ones((), fdt)), ok


def _check_mode(cfg: StrategyConfig) -> str:
    mode = cfg.flags.control_surface_mode
    if mode not in ("rec", "ref_env"):
        raise ValueError(f"control_surface_mode must be 'rec' or 'ref_env', got {mode!r}")
    return mode


def hedge_band(state: StrategyState, cfg: StrategyConfig) -> Array:
    """§15.1 dead-band half width `[]` (D18 `cfg.flags.hedge_band_mode`, static).

    "ref" [IMPL]: `max(HEDGE_BAND_BASE, 0)·(1 + band_vol_mult·max(vol_ratio_clipped, 0))`;
    "spec": `HEDGE_BAND_BASE·band_mult`.
    """
    hc = cfg.hedge
    mode = cfg.flags.hedge_band_mode
    fdt = state.q_global_tao.dtype
    if mode == "spec":
        return jnp.asarray(hc.band_base, fdt) * state.band_mult.astype(fdt)
    if mode == "ref":
        vr = jnp.fmax(state.vol_ratio_clipped.astype(fdt), 0.0)
        base = jnp.fmax(jnp.asarray(hc.band_base, fdt), 0.0)
        return base * (1.0 + _rounded(jnp.asarray(hc.band_vol_mult, fdt) * vr))
    raise ValueError(f"hedge_band_mode must be 'ref' or 'spec', got {mode!r}")


def hedge_step(state: StrategyState, controls: Controls | None, cfg: StrategyConfig) -> HedgeStep:
    """§15.1 gates, dead band (inclusive) and clamped step.

    Kill switch or S absent/non-finite/≤ 0 ⇒ no hedge. `|X| ≤ band` ⇒ no hedge.
    `ΔH = clamp(k_hedge·X[·hedge_scale], ±max(HEDGE_MAX_STEP, 0))` (hedge_scale in "rec" control
    mode only); `|ΔH| < 1e-9` (or non-finite) ⇒ no hedge. ΔH > 0 ⇒ sell.

    Args:
      controls: `hedge_scale []` is read in "rec" mode; None = no controls (identity).
    """
    hc = cfg.hedge
    mode = _check_mode(cfg)
    fdt = state.q_global_tao.dtype
    idt = state.kill_reason.dtype
    x = state.q_global_tao
    band = hedge_band(state, cfg)
    raw = _rounded(jnp.asarray(hc.k_hedge, fdt) * x)
    if mode == "rec" and controls is not None:
        raw = _rounded(raw * jnp.asarray(controls.hedge_scale, fdt))
    max_step = jnp.fmax(jnp.asarray(hc.max_step, fdt), 0.0)
    dh = jnp.clip(raw, -max_step, max_step)
    side = jnp.where(dh > 0, jnp.asarray(SIDE_SELL, idt), jnp.asarray(SIDE_BUY, idt))
    _, fair_ok = _fair(state, fdt)
    active = (
        ~state.kill_switch
        & fair_ok
        & ~(jnp.abs(x) <= band)
        & jnp.isfinite(dh)
        & ~(jnp.abs(dh) < 1e-9)
    )
    zero = jnp.zeros((), fdt)
    return HedgeStep(
        band=band,
        x=x,
        delta_h=jnp.where(active, dh, zero),
        active=active,
        side=side,
        target=jnp.where(active, jnp.abs(dh), zero),
    )


def hedge_costs(
    state: StrategyState,
    side: Array,
    now_ms: Array,
    controls: Controls | None,
    cfg: StrategyConfig,
) -> HedgeCosts:
    """§15.2 candidate gates, guard prices, caps, margin cap and per-unit cost, `[N]` each.

    Gates (any ⇒ not a candidate): S invalid; not hedge-allowed; Disabled; no mid update or
    (now > 0 and now − last_mid_update > stale_ms_v (D1 flag)); tox ≥ TOX_HIGH; mid or spread
    absent, non-finite or ≤ 0; depth < min_depth_usd; dist finite and ≤ liq_crit; derived bid ≤ 0
    or ask ≤ bid; guard price non-finite or ≤ 0; cap non-finite or ≤ 0; cost non-finite; in
    "rec" mode hedge venue weight < 1e-6.

    Args:
      side: `[]` int, SIDE_SELL or SIDE_BUY.
      now_ms: `[]` int.
      controls: `hedge_venue_weights [N]` is read in "rec" mode; None = no controls.
    """
    hc = cfg.hedge
    vt = cfg.venues
    v = state.venues
    n = cfg.n_venues
    mode = _check_mode(cfg)
    fdt = v.mid.dtype
    zero = jnp.zeros((), fdt)
    f = lambda x: jnp.asarray(x, fdt)  # noqa: E731

    fair, fair_ok = _fair(state, fdt)
    sell = side == SIDE_SELL
    mid, spread = v.mid, v.spread

    age = now_ms - v.last_mid_update_ms
    stale = jnp.asarray(gate_stale_ms(cfg)).astype(age.dtype)
    fresh = v.has_mid_update & ~((now_ms > 0) & (age > stale))
    book = v.has_mid & jnp.isfinite(mid) & (mid > 0) & jnp.isfinite(spread) & (spread > 0)
    depth_usd = jnp.fmax(v.depth_near_mid, 0.0)
    dist = v.dist_liq_sigma
    dist_fin = jnp.isfinite(dist)
    half = 0.5 * spread
    bid = mid - half
    ask = mid + half
    gate = (
        fair_ok
        & jnp.asarray(vt.hedge_allowed, bool)
        & (v.status != STATUS_DISABLED)
        & fresh
        & ~(v.toxicity >= f(cfg.toxicity.tox_high_threshold))
        & book
        & ~(depth_usd < f(hc.min_depth_usd))
        & ~(dist_fin & (dist <= f(hc.liq_crit_sigma)))
        & ~((bid <= 0) | (ask <= bid))
    )

    tick = jnp.fmax(f(vt.tick_size), 1e-9)
    offset = _rounded(f(hc.guard_mult) * spread)
    guard = jnp.where(
        sell,
        jnp.floor(_div(bid - offset, tick)) * tick,
        jnp.ceil(_div(ask + offset, tick)) * tick,
    )
    gate = gate & jnp.isfinite(guard) & (guard > 0)

    depth_cap = jnp.fmax(_div(_rounded(f(hc.depth_fraction) * depth_usd), fair), 0.0)
    cap = jnp.fmin(jnp.fmin(f(hc.max_venue_tao_per_tick), f(vt.max_order_size)), depth_cap)
    gate = gate & jnp.isfinite(cap) & (cap > 0)

    # Margin cap: exposure may grow by margin·leverage·safety/S at most.
    q = v.position_tao
    margin = v.margin_available_usd
    lev = f(hc.max_leverage)
    safety = f(hc.margin_safety_buffer)
    no_growth = (margin <= 0) | (lev <= 0) | (safety <= 0)
    abs_q = jnp.abs(q)
    extra = _div(_rounded(_rounded(margin * lev) * safety), fair)
    abs_limit = jnp.where(no_growth, abs_q, abs_q + extra)
    dq = jnp.where(sell, -cap, cap)
    q_new = q + dq
    capped = jnp.where(
        jnp.abs(q_new) <= abs_limit,
        dq,
        jnp.where(
            q_new >= 0,
            jnp.where(dq >= 0, jnp.fmax(abs_limit - q, 0.0), dq),
            jnp.where(dq <= 0, jnp.fmin(-abs_limit - q, 0.0), dq),
        ),
    )
    margin_cap = jnp.abs(capped)

    # Per-unit cost.
    taker = _rounded(jnp.abs(_cdiv(vt.taker_fee_bps, 10_000.0, fdt)) * mid)
    exec_cost = half + taker + f(hc.slippage_buffer)
    horizon_frac = _cdiv(hc.funding_horizon_sec, EIGHT_HOURS_SEC, fdt)
    f8 = funding_rate_for_decision(state, now_ms, cfg, "hedge").astype(fdt)
    fund = _rounded(_rounded(f8 * horizon_frac) * fair)
    funding_benefit = jnp.where(sell, fund, -fund)
    basis_edge = jnp.where(sell, bid - fair, fair - ask)
    warn = f(hc.liq_warn_sigma)
    liq_pen = jnp.where(
        ~dist_fin | (dist >= warn), zero, _rounded(f(hc.liq_penalty_scale) * (warn - dist))
    )
    frag = jnp.where(abs_q < 1e-9, f(hc.frag_penalty), zero)
    total = (
        exec_cost
        - _rounded(f(hc.funding_weight) * funding_benefit)
        - _rounded(f(hc.basis_weight) * basis_edge)
        + liq_pen
        + frag
    )
    if mode == "rec" and controls is not None:
        # SIMULATION §6.3 venue preference; identity (no term at all) at uniform weights.
        w = jnp.asarray(controls.hedge_venue_weights).astype(fdt)
        uniform = jnp.all(w == w[0])
        adj = _rounded(f(hc.venue_weight_kappa) * jnp.log(jnp.fmax(n * w, 1e-6)))
        total = jnp.where(uniform, total, total - adj)
        gate = gate & ~(w < 1e-6)
    candidate = gate & jnp.isfinite(total)

    m = lambda x: jnp.where(candidate, x, zero)  # noqa: E731
    return HedgeCosts(
        candidate=candidate,
        guard_px=m(guard),
        bid=m(bid),
        ask=m(ask),
        cap=m(cap),
        margin_cap=m(margin_cap),
        eff_cap=m(jnp.fmin(cap, margin_cap)),
        cost=m(total),
        exec_cost=m(exec_cost),
        funding_benefit=m(funding_benefit),
        basis_edge=m(basis_edge),
        liq_penalty=m(liq_pen),
        frag_penalty=m(frag),
    )


def chunk_size(cfg: StrategyConfig, fdt: Any) -> Array:
    """§15.3 chunk `[]`: chunk_size_tao if > 0 else max(max_venue_tao_per_tick/4, 0.1); ≥ 1e-9."""
    hc = cfg.hedge
    c = jnp.asarray(hc.chunk_size_tao, fdt)
    dflt = jnp.fmax(jnp.asarray(hc.max_venue_tao_per_tick, fdt) / 4.0, 0.1)
    return jnp.fmax(jnp.where(c > 0, c, dflt), 1e-9)


def convexity_per_chunk(fair: Array, cfg: StrategyConfig) -> Array:
    """§15.3 extra unit cost per chunk index `[]`: bps/1e4 (D19 [IMPL]) or bps/1e4·S ([REC])."""
    conv = _cdiv(cfg.hedge.chunk_convexity_cost_bps, 10_000.0, fair.dtype)
    if cfg.flags.chunk_convexity_times_price:
        conv = _rounded(conv * fair)
    return conv


def rank_order(cfg: StrategyConfig) -> tuple[int, ...]:
    """Static venue indices sorted by venue id string (the §15.3 tie-break order)."""
    ids = cfg.venues.venue_ids
    return tuple(sorted(range(len(ids)), key=lambda i: ids[i]))


def _concrete_float(x: Any) -> float | None:
    if isinstance(x, jax.core.Tracer):
        return None
    try:
        return float(np.asarray(x))
    except (TypeError, ValueError):
        return None


def greedy_steps_bound(cfg: StrategyConfig) -> int | None:
    """Static number of greedy steps that always suffices, or None for traced config leaves.

    Every step but the last takes a whole chunk: at most floor(HEDGE_MAX_STEP/chunk) + 1 full
    chunks (one of slack for rounding) and N remainder chunks fit in the target; never more than
    the chunk count Σ_v (floor(min(max_venue, max_order_v)/chunk) + 2).
    """
    hc = cfg.hedge
    max_step = _concrete_float(hc.max_step)
    size = _concrete_float(hc.chunk_size_tao)
    per_venue = _concrete_float(hc.max_venue_tao_per_tick)
    orders = cfg.venues.max_order_size
    if max_step is None or size is None or per_venue is None or isinstance(orders, jax.core.Tracer):
        return None
    orders = np.asarray(orders, dtype=np.float64)
    vals = [max_step, size, per_venue, *orders.tolist()]
    if not all(math.isfinite(x) for x in vals):
        return None
    chunk = size if size > 0 else max(per_venue / 4.0, 0.1)
    chunk = max(chunk, 1e-9)
    n = cfg.n_venues
    total = sum(int(math.floor(max(min(per_venue, o), 0.0) / chunk)) + 2 for o in orders.tolist())
    by_target = int(math.floor(max(max_step, 0.0) / chunk)) + n + 2
    return max(1, min(total, by_target))


def _greedy(
    cost: Array,
    n_full: Array,
    remainder: Array,
    n_chunks: Array,
    chunk: Array,
    conv: Array,
    rank_order: tuple[int, ...],
    target: Array,
    steps: int | None,
) -> Array:
    """Greedy over the merged per-venue chunk streams; returns alloc `[N]`.

    The venue axis is unpacked into N scalars so every step is scalar (under vmap: `[B]`)
    elementwise work with no reductions; the lexicographic (unit cost, id rank) minimum is a
    strict-less-than pass over the venues in static id-rank order.

    Args:
      cost: `[N]` base unit cost; n_full, n_chunks: `[N]` full / total chunk counts (floats);
      remainder: `[N]` remainder chunk size; chunk, conv, target: `[]`.
      rank_order: static venue indices sorted by venue id string.
      steps: static step count, or None for a while loop.
    """
    n = cost.shape[-1]
    inf = jnp.asarray(jnp.inf, cost.dtype)
    cost_v = [cost[i] for i in range(n)]
    full_v = [n_full[i] for i in range(n)]
    rem_v = [remainder[i] for i in range(n)]
    nch_v = [n_chunks[i] for i in range(n)]

    def body(carry: tuple[tuple[Array, ...], Array, tuple[Array, ...]]) -> Any:
        k, rem, alloc = carry
        avail = [k[i] < nch_v[i] for i in range(n)]
        key = [jnp.where(avail[i], cost_v[i] + _rounded(k[i] * conv), inf) for i in range(n)]
        first = rank_order[0]
        best_key, best = key[first], jnp.asarray(first, jnp.int32)
        best_size = jnp.where(k[first] < full_v[first], chunk, rem_v[first])
        for i in rank_order[1:]:
            better = key[i] < best_key  # strict: equal cost keeps the lower id rank
            best_key = jnp.where(better, key[i], best_key)
            best = jnp.where(better, jnp.asarray(i, jnp.int32), best)
            best_size = jnp.where(better, jnp.where(k[i] < full_v[i], chunk, rem_v[i]), best_size)
        found = best_key < inf
        a = jnp.minimum(best_size, rem)
        go = found & (rem > 0) & ~(a < 1e-9)
        # read by every carry element's update: the selection is computed once per step
        best, a, go, found = materialize_tree((best, a, go, found))
        pick = [found & (best == i) for i in range(n)]
        alloc = tuple(jnp.where(pick[i] & go, alloc[i] + a, alloc[i]) for i in range(n))
        k = tuple(k[i] + pick[i].astype(k[i].dtype) for i in range(n))
        return k, jnp.where(go, rem - a, rem), alloc

    zeros = tuple(jnp.zeros_like(c) for c in cost_v)
    init = (zeros, target, zeros)
    if steps is None:

        def cond(c: Any) -> Array:
            more = c[0][0] < nch_v[0]
            for i in range(1, n):
                more = more | (c[0][i] < nch_v[i])
            return more & (c[1] >= 1e-9)

        _, _, alloc = lax.while_loop(cond, body, init)
    else:
        # A fixed-trip loop. (Unrolling the steps in Python compiled, but the XLA CPU executable
        # never returned on jax 0.10.2.)
        _, _, alloc = lax.fori_loop(0, steps, lambda _, c: body(c), init)
    return jnp.stack(alloc)


def allocate_hedge(
    costs: HedgeCosts,
    target: Array,
    fair: Array,
    cfg: StrategyConfig,
) -> tuple[Array, Array, Array]:
    """§15.3 chunk knapsack and per-venue lot flooring.

    Chunks of venue v (a candidate with eff_cap_v > 0): floor(eff_cap_v/chunk) full chunks plus a
    remainder chunk when the remainder > 1e-9; chunk i has unit cost `cost_v + i·conv`. Greedy in
    (unit cost, venue id string, chunk index) order while remaining > 0 (takes < 1e-9 skipped);
    then `Q = floor(alloc/step_eff)·step_eff`, step_eff = max(size_step, lot, 1e-12); rejected if
    Q < lot, Q ≤ 0, Q·guard < min notional or Q < 1e-6.

    Args:
      costs: §15.2 result (`[N]` fields).
      target: `[]` |ΔH| (0 ⇒ nothing).
      fair: `[]` S (scales the convexity under the D19 [REC] flag).

    Returns:
      `(alloc [N], size [N], valid [N])`; size is Q where valid, else 0.
    """
    vt = cfg.venues
    fdt = costs.cost.dtype
    zero = jnp.zeros((), fdt)
    chunk = chunk_size(cfg, fdt)
    conv = convexity_per_chunk(fair.astype(fdt), cfg)
    eff = costs.eff_cap
    part = costs.candidate & (eff > 0)
    n_full = jnp.where(part, jnp.floor(_div(eff, chunk)), zero)
    remainder = eff - _rounded(n_full * chunk)
    has_rem = part & (remainder > 1e-9)
    n_chunks = n_full + has_rem.astype(fdt)
    alloc = _greedy(
        costs.cost,
        n_full,
        remainder,
        n_chunks,
        chunk,
        conv,
        rank_order(cfg),
        target.astype(fdt),
        greedy_steps_bound(cfg),
    )

    lot = jnp.asarray(vt.lot_size, fdt)
    step = jnp.fmax(jnp.fmax(jnp.asarray(vt.size_step, fdt), lot), 1e-12)
    qr = jnp.floor(_div(alloc, step)) * step
    valid = (
        (alloc > 0)
        & jnp.isfinite(alloc)
        & ~(qr < lot)
        & (qr > 0)
        & ~(qr * costs.guard_px < jnp.asarray(vt.min_notional_usd, fdt))
        & ~(qr < 1e-6)
    )
    return alloc, jnp.where(valid, qr, zero), valid


def plan_hedge(
    state: StrategyState,
    now_ms: Array,
    controls: Controls | None,
    cfg: StrategyConfig,
) -> HedgePlan:
    """§15 hedge plan of one tick: IOC orders at guard prices, emitted venue ascending.

    Killed or S invalid ⇒ no candidates and no orders. In "ref_env" control mode the rounded sizes
    are multiplied by hedge_scale (the order stays emitted; a zero size is rejected downstream).

    Args:
      now_ms: `[]` int.
      controls: hedge_scale `[]`, hedge_venue_weights `[N]`; None = no controls (identity).

    Returns:
      :class:`HedgePlan` with `[N]` orders and `[]` step diagnostics.
    """
    step = hedge_step(state, controls, cfg)
    fdt = state.venues.mid.dtype
    fair, fair_ok = _fair(state, fdt)
    costs = hedge_costs(state, step.side, now_ms, controls, cfg)
    plan_ok = fair_ok & ~state.kill_switch
    costs = HedgeCosts(*[jnp.where(plan_ok, c, jnp.zeros_like(c)) for c in costs])
    alloc, size, valid = allocate_hedge(costs, step.target, fair, cfg)
    if cfg.flags.control_surface_mode == "ref_env" and controls is not None:
        size = size * jnp.asarray(controls.hedge_scale, fdt)
    zero = jnp.zeros((), fdt)
    return HedgePlan(
        valid=valid,
        size=jnp.where(valid, size, zero),
        price=jnp.where(costs.candidate, costs.guard_px, zero),
        side=step.side,
        band=step.band,
        x=step.x,
        delta_h=step.delta_h,
        active=step.active,
        alloc=alloc,
        cost=costs.cost,
        exec_cost=costs.exec_cost,
        funding_benefit=costs.funding_benefit,
        basis_edge=costs.basis_edge,
        liq_penalty=costs.liq_penalty,
        frag_penalty=costs.frag_penalty,
        candidate=costs.candidate,
    )
