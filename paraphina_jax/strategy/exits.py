"""Cross-venue exit allocator, JAX engine (STRATEGY.md §14.2 [IMPL], recommended).

Pure function on one environment (`[N]` per-venue arrays); callers vmap it. Every per-venue
quantity is one `[N]` array expression. The ranking (score desc, reduces desc, venue index asc)
counts pairwise "who goes first" over the N ≤ 5 venues (no sort op); the fields the greedy needs
are permuted into greedy order with select chains; the greedy budget (`remaining`) is a fully
unrolled `lax.scan` over the N ranked slots; results are permuted back to venue order. All
selections are exact, so the JAX engine reproduces the reference bit for bit under x64.
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
from paraphina_jax.utils.fusion import materialize_tree

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


def _greedy_rank(score: Array, reduces: Array, cand: Array) -> list[Array]:
    """Greedy order of the venues: candidates by (score desc, reduces desc, venue index asc).

    Non-candidates rank after every candidate with a finite score (their key is −∞; where a
    candidate's own score is −∞ the greedy still skips the non-candidate). Pairwise comparisons
    of N ≤ 5 scalars, no sort op; each pair is compared once.

    Returns:
      N scalars `[]` int32: the position of each venue, a permutation of 0..N−1.
    """
    n = score.shape[-1]
    neg_inf = jnp.asarray(-jnp.inf, score.dtype)
    sc = [jnp.where(cand[i], score[i], neg_inf) for i in range(n)]
    rd = [cand[i] & reduces[i] for i in range(n)]
    rank = [jnp.zeros((), jnp.int32) for _ in range(n)]
    for i in range(n):
        for j in range(i):  # j < i: j goes first unless i is strictly better
            i_first = (sc[i] > sc[j]) | ((sc[i] == sc[j]) & rd[i] & ~rd[j])
            rank[i] = rank[i] + (~i_first).astype(jnp.int32)
            rank[j] = rank[j] + i_first.astype(jnp.int32)
    return rank


def _by_rank(x: Array, is_k: list[list[Array]]) -> Array:
    """`[N]` field of each venue → `[K]` the same field in greedy order (select chains, exact)."""
    n = len(is_k)
    cols = [x[i] for i in range(n)]
    out = []
    for k in range(n):
        o = cols[0]
        for i in range(1, n):
            o = jnp.where(is_k[k][i], cols[i], o)
        out.append(o)
    return jnp.stack(out)


def plan_exits(state: StrategyState, now_ms: Array, cfg: StrategyConfig) -> ExitPlan:
    """§14.2 exit allocator: IOC reduce-only orders that take the global inventory off at a profit.

    Global gates: exit disabled, kill, HardLimit, no valid fair value (present, finite, > 0),
    `|q_t| < min_global_abs_tao` ⇒ nothing. Candidate gates: Disabled; no mid update or stale
    (D1: `flags.stale_per_venue` ⇒ the venue's stale_ms, else BOOK_STALE_MS); `tox ≥ TOX_HIGH`;
    mid/spread absent or non-finite; touch bid ≤ 0 or ask ≤ bid; depth not ≥ min_depth_usd
    (or ≤ 0); must-reduce without reducing; cap ≤ 0; base edge not > thr (strict); NaN score.
    Ranked by (score desc, reduces desc, venue asc); greedy with the profit cap, step flooring,
    lot / min notional / min intent checks. `v_buf` uses `state.sigma_eff` (not the quoting σ);
    funding is the exit rate-for-decision (§9).

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
    # Read by the score, the profit cap and the greedy (many kernels): computed once.
    px, base, cap, cand, reduces, mid, spr, depth = materialize_tree(
        (px, base, cap, cand, reduces, mid, spr, depth)
    )

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

    # Greedy (§14.2) over the ranked candidates. The profit cap does not depend on
    # `remaining`, and min is exact and order-free, so min(min(cap, rem), Q*) = min(cap∧Q*, rem).
    lot = c(vt.lot_size)
    step = jnp.fmax(jnp.fmax(c(vt.size_step), lot), c(STEP_FLOOR))
    min_notional = c(vt.min_notional_usd)
    min_size = jnp.fmax(lot, c(ec.min_intent_size_tao))  # Q < lot or Q < min_intent ⇒ skip
    cand = cand & ~jnp.isnan(score)  # a NaN score cannot be ranked
    cap_p = jnp.where(cand & ~pskip, jnp.fmin(cap, pcap), -one)  # −1 ⇒ never taken
    # Computed once (utils.fusion), so XLA does not re-fuse (and recompute) the whole per-venue
    # chain into every consumer of the ranking.
    rank_in = materialize_tree(
        (score, reduces, cand, cap_p, px, min_size, step, min_notional, remaining0)
    )
    score_b, reduces_b, cand_b, cap_p, px_b, min_size, step, min_notional, remaining0 = rank_in
    rank = materialize_tree(jnp.stack(_greedy_rank(score_b, reduces_b, cand_b)))
    is_k = [[rank[i] == k for i in range(n)] for k in range(n)]  # venue i is k-th
    xs = materialize_tree(
        tuple(_by_rank(x, is_k) for x in (cap_p, px_b, min_size, step, min_notional))
    )

    def take(carry: tuple[Array, Array], x: tuple[Array, ...]) -> tuple[Any, Any]:
        rem, n_emit = carry
        cap_k, px_k, min_size_k, step_k, min_notional_k = x
        cap_c = jnp.fmin(cap_k, rem)
        ok = (rem > 0) & (cap_c > 0) & jnp.isfinite(cap_c)
        size = jnp.floor(jnp.where(ok, cap_c, zero) / step_k) * step_k
        ok = ok & ~(size < min_size_k) & ~(size * px_k < min_notional_k)
        size = jnp.where(ok, size, zero)
        pos = jnp.where(ok, n_emit, n)
        carry = materialize_tree((rem - size, n_emit + ok.astype(jnp.int32)))
        return carry, (size, pos)

    _, (size_k, pos_k) = lax.scan(take, (remaining0, jnp.zeros((), jnp.int32)), xs, unroll=True)
    size_k, pos_k = materialize_tree((size_k, pos_k))  # computed once, then permuted
    # Back to venue order: venue i takes the result of its rank.
    size_out, order = [], []
    for i in range(n):
        sz, pos = size_k[0], pos_k[0]
        for k in range(1, n):
            sz = jnp.where(is_k[k][i], size_k[k], sz)
            pos = jnp.where(is_k[k][i], pos_k[k], pos)
        size_out.append(sz)
        order.append(pos)
    size_out = jnp.stack(size_out)
    order = jnp.stack(order).astype(jnp.int32)
    valid = order < n

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
