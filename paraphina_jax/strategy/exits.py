"""Cross-venue exit allocator, JAX engine (STRATEGY.md §14.2 [IMPL], recommended).

Pure function on one environment (`[N]` per-venue arrays); callers vmap it. Every per-venue
quantity is computed as one `[N]` array expression; the only sequential piece is the greedy
budget (`remaining`), a fully unrolled `lax.scan` over the N ranked candidates. The ranking
(score desc, reduces desc, venue index asc) is a pairwise "ranks ahead of me" count over N ≤ 5
items (no sort op); each scan step selects its venue with a one-hot mask.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jax import lax

from paraphina_jax.config.types import (
    REGIME_HARDLIMIT,
    SIDE_BUY,
    SIDE_SELL,
    STATUS_DISABLED,
    StrategyConfig,
)
from paraphina_jax.strategy.common import gate_stale_ms
from paraphina_jax.strategy.targets import funding_rate_for_decision
from paraphina_jax.strategy.types import ExitPlan, StrategyState

Array = Any

EXIT_TICK_FLOOR = 1e-9  # SIMULATION §13.3: tick floor in exits and hedges
OPEN_EPS = 1e-9  # "opens": |q_j| < max(min_intent_size_tao, 1e-9)
STEP_FLOOR = 1e-12  # step_eff = max(size_step, lot, 1e-12)
FUNDING_PERIOD_SEC = 28_800.0  # 8 h


def _liq_band_mult(x: Array, crit: Array, warn: Array) -> Array:
    """1 if not finite or ≤ CRIT or ≥ WARN, else (x − CRIT)/(WARN − CRIT)."""
    inside = jnp.isfinite(x) & (x > crit) & (x < warn)
    width = jnp.where(inside, warn - crit, jnp.ones_like(x))
    return jnp.where(inside, (x - crit) / width, jnp.ones_like(x))


def _seq_sum(x: Array) -> Array:
    """Σ over the last axis, venue ascending from 0.0 (same bits as the reference loop)."""
    total = jnp.zeros(x.shape[:-1], x.dtype)
    for i in range(x.shape[-1]):
        total = total + x[..., i]
    return total


def _greedy_rank(score: Array, reduces: Array, cand: Array) -> Array:
    """[N] int position of each venue in the order (candidates first; score desc, reduces desc,
    venue asc; then non-candidates by index) — a permutation of 0..N−1."""
    n = score.shape[-1]
    idx = jnp.arange(n)
    sc = jnp.where(cand, score, jnp.zeros_like(score))
    rd = cand & reduces
    # ahead[i, j]: venue j is ranked before venue i.
    ci, cj = cand[:, None], cand[None, :]
    si, sj = sc[:, None], sc[None, :]
    ri, rj = rd[:, None], rd[None, :]
    tie_r = (ri == rj) & (idx[None, :] < idx[:, None])
    tie_s = (si == sj) & ((rj & ~ri) | tie_r)
    ahead = (cj & ~ci) | ((ci == cj) & ((sj > si) | tie_s))
    return jnp.sum(ahead.astype(jnp.int32), axis=-1)


def plan_exits(state: StrategyState, now_ms: Array, cfg: StrategyConfig) -> ExitPlan:
    """§14.2 exit allocator: IOC reduce-only orders that take the global inventory off at a profit.

    Global gates: exit disabled, kill, HardLimit, no valid fair value (present, finite, > 0),
    `|q_t| < min_global_abs_tao` ⇒ nothing. Candidate gates: Disabled; no mid update or stale
    (D1: `flags.stale_per_venue` ⇒ the venue's stale_ms, else BOOK_STALE_MS); `tox ≥ TOX_HIGH`;
    mid/spread absent or non-finite; touch bid ≤ 0 or ask ≤ bid; depth not ≥ min_depth_usd (or
    ≤ 0); must-reduce without reducing; cap ≤ 0; base edge not > thr; NaN score. Ranked by (score desc,
    reduces desc, venue asc); greedy with the profit cap, step flooring, lot / min notional / min
    intent checks. `v_buf` uses `state.sigma_eff`; funding is the exit rate-for-decision (§9).

    Args:
      state: strategy state (re-marked after the fill batch).
      now_ms: `[]` int.

    Returns:
      `ExitPlan`: `valid/size/price [N]` (0 where not valid), `side []`, `order [N]` (emission
      position, N where none), `score/base_edge [N]` (0 where not a candidate), `candidate [N]`.
    """
    v = state.venues
    fdt = v.mid.dtype
    n = v.mid.shape[-1]
    ec, rc, vt = cfg.exit, cfg.risk, cfg.venues

    def c(x: Any) -> Array:
        return jnp.asarray(x, fdt)

    zero, one = c(0.0), c(1.0)
    inf = c(jnp.inf)

    # Global gates and scalars.
    q = v.position_tao.astype(fdt)
    q_t = state.q_global_tao.astype(fdt)
    fv = state.fair_value.astype(fdt)
    fv_ok = state.has_fair_value & jnp.isfinite(fv) & (fv > 0)
    s_t = jnp.where(fv_ok, fv, one)
    active = (
        fv_ok
        & ~state.kill_switch
        & (state.risk_regime != REGIME_HARDLIMIT)
        & (jnp.abs(q_t) >= c(ec.min_global_abs_tao))
    )
    if not ec.enabled:  # static master switch
        active = jnp.zeros_like(active)

    warn, crit = c(rc.liq_warn_sigma), c(rc.liq_crit_sigma)
    dist = v.dist_liq_sigma.astype(fdt)
    dist_fin = jnp.isfinite(dist)
    min_d = jnp.min(jnp.where(dist_fin, dist, inf))
    global_reduce_only = min_d < warn
    g = _liq_band_mult(min_d, crit, warn)
    remaining0 = jnp.fmin(jnp.abs(q_t), c(ec.max_total_tao_per_tick) * g)
    sell = q_t > 0
    s = jnp.where(sell, -one, one)
    thr = c(ec.edge_min_usd) + c(ec.edge_vol_mult) * state.vol_ratio_clipped.astype(fdt)
    v_buf = (c(ec.vol_buffer_mult) * state.sigma_eff.astype(fdt)) * s_t

    aq = jnp.abs(q)
    avg = v.avg_entry_price.astype(fdt)
    same = (jnp.sign(q) == jnp.sign(q_t)) & (avg > 0)
    num = _seq_sum(jnp.where(same, aq * avg, zero))
    den = _seq_sum(jnp.where(same, aq, zero))
    entry_ref = jnp.where(den > 0, num / jnp.where(den > 0, den, one), s_t)

    # Candidate gates (per venue).
    age = now_ms - v.last_mid_update_ms
    stale = ~v.has_mid_update | (age > gate_stale_ms(cfg))
    mid, spr = v.mid.astype(fdt), v.spread.astype(fdt)
    book_ok = v.has_mid & jnp.isfinite(mid) & jnp.isfinite(spr)
    bid = mid - spr / 2.0
    ask = mid + spr / 2.0
    depth = v.depth_near_mid.astype(fdt)
    gate_ok = (
        (v.status != STATUS_DISABLED)
        & ~stale
        & ~(v.toxicity.astype(fdt) >= c(cfg.toxicity.tox_high_threshold))
        & book_ok
        & (bid > 0)
        & (ask > bid)
        & (depth >= c(ec.min_depth_usd))
        & (depth > 0)
    )
    tick = jnp.fmax(c(vt.tick_size), c(EXIT_TICK_FLOOR))
    px = jnp.where(sell, jnp.floor(bid / tick) * tick, jnp.ceil(ask / tick) * tick)
    reduces = q * s < 0
    must_reduce = global_reduce_only | (dist_fin & (dist < warn))
    cap = jnp.fmin(
        jnp.fmin(c(ec.max_venue_tao_per_tick), c(vt.max_order_size)),
        (c(ec.depth_fraction) * depth) / s_t,
    )
    cap = jnp.where(must_reduce, jnp.fmin(cap, aq), cap)
    cap = cap * _liq_band_mult(dist, crit, warn)
    fee = (c(vt.taker_fee_bps) / 1e4) * px
    base = jnp.where(sell, px - entry_ref, entry_ref - px) - fee - v_buf
    cand = active & gate_ok & ~(must_reduce & ~reduces) & ~(cap <= 0) & (base > thr)

    # Ranking score.
    depth_safe = jnp.where(depth > 0, depth, one)
    slip_lin = c(ec.slippage_linear_coeff) + jnp.fmax(
        ((c(ec.slippage_spread_mult) * s_t) * spr) / depth_safe, zero
    )
    slip_quad = c(ec.slippage_quadratic_coeff)
    opens = (aq < jnp.fmax(c(ec.min_intent_size_tao), c(OPEN_EPS))) & ~reduces
    increases = q * s > 0
    frag_pen = jnp.where(opens | increases, c(ec.fragmentation_penalty_per_tao), zero)
    frag_bonus = jnp.where(reduces, c(ec.fragmentation_reduction_bonus), zero)
    basis_term = jnp.where(sell, px - s_t, s_t - px)
    f8 = funding_rate_for_decision(state, now_ms, cfg, "exit").astype(fdt)
    fund = (f8 * (c(ec.funding_horizon_sec) / FUNDING_PERIOD_SEC)) * s_t
    fund_term = jnp.where(sell, fund, -fund)
    sgn_b = jnp.where(state.basis_usd < 0, -one, one)
    d_b = (sgn_b * s) * (mid - s_t)
    w_brp = c(ec.basis_risk_penalty_weight)
    brp = jnp.where(d_b > 0, w_brp * d_b, (0.5 * w_brp) * d_b)
    score = (
        base
        + c(ec.basis_weight) * basis_term
        + c(ec.funding_weight) * fund_term
        - frag_pen
        + frag_bonus
        - brp
    )

    # Profit cap (independent of `remaining`, so computed per venue up front).
    quad = slip_quad > 0
    disc = slip_lin * slip_lin - (4.0 * slip_quad) * (thr - base)
    q_star = (-slip_lin + jnp.sqrt(jnp.fmax(disc, zero))) / jnp.where(quad, 2.0 * slip_quad, one)
    lin_cap = (base - thr) / jnp.where(slip_lin > 0, slip_lin, one)
    pcap = jnp.where(
        quad,
        jnp.where(q_star > 0, q_star, inf),
        jnp.where(slip_lin > 0, lin_cap, inf),
    )
    pskip = quad & (disc < 0)

    lot = c(vt.lot_size)
    step = jnp.fmax(jnp.fmax(c(vt.size_step), lot), c(STEP_FLOOR))
    min_notional = c(vt.min_notional_usd)
    min_intent = c(ec.min_intent_size_tao)

    cand = cand & ~jnp.isnan(score)  # a NaN score cannot be ranked
    rank = _greedy_rank(score, reduces, cand)

    def take(carry: tuple[Array, ...], k: Array) -> tuple[tuple[Array, ...], None]:
        rem, n_emit, size_out, pos_out, valid = carry
        sel = rank == k
        # One-hot pick of the k-th ranked venue's fields (exact: a single non-zero term).
        pick = lambda x: jnp.sum(jnp.where(sel, x, jnp.zeros_like(x)))
        ok = jnp.any(sel & cand & ~pskip) & (rem > 0)
        cap_c = jnp.fmin(jnp.fmin(pick(cap), rem), pick(pcap))
        ok = ok & (cap_c > 0) & jnp.isfinite(cap_c)
        st = pick(step)
        size = jnp.floor(jnp.where(ok, cap_c, zero) / st) * st
        ok = (
            ok
            & ~(size < pick(lot))
            & ~(size * pick(px) < pick(min_notional))
            & ~(size < min_intent)
        )
        emit = sel & ok
        carry = (
            jnp.where(ok, rem - size, rem),
            n_emit + ok.astype(jnp.int32),
            jnp.where(emit, size, size_out),
            jnp.where(emit, n_emit, pos_out),
            valid | emit,
        )
        return carry, None

    init = (
        remaining0,
        jnp.zeros((), jnp.int32),
        jnp.zeros((n,), fdt),
        jnp.full((n,), n, jnp.int32),
        jnp.zeros((n,), bool),
    )
    (_, _, size_out, order, valid), _ = lax.scan(
        take, init, jnp.arange(n, dtype=jnp.int32), unroll=True
    )
    side = jnp.where(sell, SIDE_SELL, SIDE_BUY).astype(jnp.int32)
    return ExitPlan(
        valid=valid,
        size=size_out,
        price=jnp.where(valid, px, zero),
        side=side,
        order=order,
        score=jnp.where(cand, score, zero),
        base_edge=jnp.where(cand, base, zero),
        candidate=cand,
    )
