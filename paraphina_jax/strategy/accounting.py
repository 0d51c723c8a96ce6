"""Data ingestion and accounting, JAX engine (STRATEGY.md §5).

Pure functions on one environment (per-venue arrays `[N]`, pending markouts `[N, M]`, MM slots
`[N, 2]`); callers vmap them. Everything is masked array arithmetic:

* §5.1 book updates and local vols (:func:`apply_book_update`);
* §5.2 margin / liquidation snapshots (:func:`apply_account_snapshot`);
* §5.3 fills, PnL accounting, MM slot clearing and pending markouts (:func:`apply_fill`,
  :func:`apply_fills` — a `lax.scan` over the `[K]` fills — and
  :func:`inject_initial_position`), funding accrual D5 (:func:`settle_funding`);
* §5.4 the post-batch mark-to-fair recompute (:func:`recompute_exposures`);
* §5.5 the per-TAO markout value (:func:`markout_value`).

Fills: the accounting is a `lax.scan` over the K fills (each selects its venue with a one-hot
`[N]` mask) carrying only positions, entries and realised PnL; MM slot clearing, `fill_seq` and
the markout pushes of the whole batch are computed at once (per-venue ranks, then per `pm_*`
field one K-update scatter into the ring), so the `[N, M]` queues are never shifted or rewritten
per fill. Sums over venues run in venue order from 0.0, as the original
accumulates them.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jax import lax

from paraphina_jax.config.types import PURPOSE_INJECT, SIDE_BUY, SIDE_SELL, StrategyConfig
from paraphina_jax.strategy.common import fair_value_or_prev
from paraphina_jax.strategy.types import (
    PM_RING_FIELDS,
    AccountInputs,
    BookInputs,
    FillBatch,
    StrategyState,
)
from paraphina_jax.utils.fusion import materialize, materialize_tree

Array = Any

_LN_MID_FLOOR = 1e-6  # §5.1: ln(max(mid, 1e-6))
_INJECT_MIN_ABS_TAO = 1e-9  # SIMULATION §5: |q0| < 1e-9 ⇒ no injection


def _seq_sum(x: Array) -> Array:
    """`[N]` -> `[]`: sum in venue order starting from 0.0."""
    acc = jnp.zeros((), x.dtype)
    for i in range(x.shape[-1]):
        acc = acc + x[i]
    return acc


def _pick(onehot: Array, x: Array) -> Array:
    """Value of `x [N]` at the single True entry of `onehot [N]` (0 when none)."""
    return jnp.sum(jnp.where(onehot, x, jnp.zeros((), x.dtype)))


# ---------------------------------------------------------------------------------------------
# §5.1 Book updates
# ---------------------------------------------------------------------------------------------


def apply_book_update(
    state: StrategyState, book: BookInputs, now_ms: Array, cfg: StrategyConfig
) -> StrategyState:
    """§5.1 top-of-book update of every venue with `book.updated`.

    Both sides present (size > 0): mid = (bid + ask)/2, spread = ask − bid (crossed books stored
    as is), last mid/book update = now, D4 USD depth |bid·bid_sz| + |ask·ask_sz|, local vols
    updated from ln(max(mid, 1e-6)). A side empty: only last book update = now and depth 0.
    Any non-finite price or size rejects that venue's update whole.

    Args:
      state: current state.
      book: level-0 prices and sizes, `[N]` each.
      now_ms: `[]` int update time.
      cfg: config (local vol alphas = fair-value vol alphas).
    """
    v = state.venues
    bp, bs, ap, az = book.bid_px, book.bid_sz, book.ask_px, book.ask_sz
    finite = jnp.isfinite(bp) & jnp.isfinite(bs) & jnp.isfinite(ap) & jnp.isfinite(az)
    upd = book.updated & finite
    both = upd & (bs > 0) & (az > 0)

    mid_new = (bp + ap) / 2.0
    spread_new = ap - bp
    bn = jnp.abs(bp * bs)
    an = jnp.abs(ap * az)
    depth_new = jnp.where(jnp.isfinite(bn) & jnp.isfinite(an), bn + an, 0.0)

    a_s = cfg.vol.fv_vol_alpha_short
    a_l = cfg.vol.fv_vol_alpha_long
    ln_mid = jnp.log(jnp.maximum(mid_new, _LN_MID_FLOOR))
    r = ln_mid - v.prev_ln_mid
    r2 = r * r
    var_s = (1.0 - a_s) * (v.local_vol_short * v.local_vol_short) + a_s * r2
    var_l = (1.0 - a_l) * (v.local_vol_long * v.local_vol_long) + a_l * r2
    vol_upd = both & v.has_prev_ln_mid

    now_i = jnp.asarray(now_ms).astype(v.last_book_update_ms.dtype)
    venues = v.replace(
        mid=jnp.where(both, mid_new, v.mid),
        spread=jnp.where(both, spread_new, v.spread),
        has_mid=v.has_mid | both,
        depth_near_mid=jnp.where(both, depth_new, jnp.where(upd, 0.0, v.depth_near_mid)),
        last_mid_update_ms=jnp.where(both, now_i, v.last_mid_update_ms),
        has_mid_update=v.has_mid_update | both,
        last_book_update_ms=jnp.where(upd, now_i, v.last_book_update_ms),
        has_book_update=v.has_book_update | upd,
        local_vol_short=jnp.where(vol_upd, jnp.sqrt(jnp.maximum(var_s, 0.0)), v.local_vol_short),
        local_vol_long=jnp.where(vol_upd, jnp.sqrt(jnp.maximum(var_l, 0.0)), v.local_vol_long),
        prev_ln_mid=jnp.where(both, ln_mid, v.prev_ln_mid),
        has_prev_ln_mid=v.has_prev_ln_mid | both,
    )
    return state.replace(venues=venues)


# ---------------------------------------------------------------------------------------------
# §5.2 Balance, margin and liquidation
# ---------------------------------------------------------------------------------------------


def apply_account_snapshot(
    state: StrategyState,
    acct: AccountInputs,
    now_ms: Array,
    cfg: StrategyConfig,
    h1_quirks: bool = False,
) -> StrategyState:
    """§5.2 account snapshot of every venue with `acct.updated`.

    With `acct.has_price_liq`: `price_liq` is stored and `dist_liq = |m_v − price_liq|/(σ_eff·S)`
    with the state's current σ_eff and fair value (kept when mid, fair value or σ_eff is not
    valid). Otherwise (constant mode, [IMPL]) `dist_liq = acct.dist_liq_sigma` and
    `price_liq = m_v − dist_liq·σ_eff·S` is back-computed when valid (else the old one stays).
    `avg_entry_price` is zeroed where the position is 0.

    Args:
      state: current state.
      acct: snapshot fields, `[N]` each.
      now_ms: `[]` int snapshot time.
      cfg: config.
      h1_quirks: static; also set `last_mid_update_ms = now` on venues that never had a mid
        update (H1 runner).
    """
    del cfg
    v = state.venues
    s = state.fair_value
    sig = state.sigma_eff
    s_ok = state.has_fair_value & jnp.isfinite(s) & jnp.isfinite(sig) & (s > 0) & (sig > 0)
    upd = acct.updated
    ok = upd & v.has_mid & s_ok
    use_pl = upd & acct.has_price_liq
    const = upd & ~acct.has_price_liq

    dist_from_pl = jnp.abs(v.mid - acct.price_liq) / (sig * s)
    pl_back = v.mid - acct.dist_liq_sigma * sig * s
    dist = jnp.where(
        use_pl & ok, dist_from_pl, jnp.where(const, acct.dist_liq_sigma, v.dist_liq_sigma)
    )
    price_liq = jnp.where(use_pl, acct.price_liq, jnp.where(const & ok, pl_back, v.price_liq))
    zero_avg = upd & ~(jnp.abs(v.position_tao) > 0)

    last_mid = v.last_mid_update_ms
    has_mid_update = v.has_mid_update
    if h1_quirks:
        quirk = upd & ~v.has_mid_update
        last_mid = jnp.where(quirk, jnp.asarray(now_ms).astype(last_mid.dtype), last_mid)
        has_mid_update = has_mid_update | quirk

    venues = v.replace(
        margin_balance_usd=jnp.where(upd, acct.margin_balance_usd, v.margin_balance_usd),
        margin_used_usd=jnp.where(upd, acct.margin_used_usd, v.margin_used_usd),
        margin_available_usd=jnp.where(upd, acct.margin_available_usd, v.margin_available_usd),
        price_liq=price_liq,
        has_price_liq=v.has_price_liq | use_pl | (const & ok),
        dist_liq_sigma=dist,
        avg_entry_price=jnp.where(zero_avg, 0.0, v.avg_entry_price),
        last_mid_update_ms=last_mid,
        has_mid_update=has_mid_update,
    )
    return state.replace(venues=venues)


# ---------------------------------------------------------------------------------------------
# §5.3 Fills and PnL accounting
# ---------------------------------------------------------------------------------------------


def _fill_valid(fills: FillBatch, n: int) -> Array:
    """`[K]` §5.3 validity: flagged valid, venue in [0, N), side ±1, finite size/price > 0,
    finite fee."""
    return (
        fills.valid
        & (fills.venue >= 0)
        & (fills.venue < n)
        & ((fills.side == SIDE_BUY) | (fills.side == SIDE_SELL))
        & jnp.isfinite(fills.size)
        & jnp.isfinite(fills.price)
        & jnp.isfinite(fills.fee_bps)
        & (fills.size > 0)
        & (fills.price > 0)
    )


def _account_core(
    q0: Array, p0: Array, side: Array, size: Array, price: Array, fee_bps: Array
) -> tuple[Array, Array, Array]:
    """§5.3 exact accounting of one fill on a position (elementwise: `[]` or `[N]`).

    Returns `(q_new, avg_new, realised − fee)`.
    """
    d = jnp.where(side == SIDE_BUY, size, -size)
    fee = (fee_bps / 1e4) * price * size
    aq0, ad = jnp.abs(q0), jnp.abs(d)
    # Same direction: VWAP entry (an exactly flat result ⇒ 0, 0).
    q_same = q0 + d
    flat_same = q_same == 0
    avg_same = (p0 * aq0 + price * ad) / (aq0 + ad)
    # Opposite direction: realise the closed part, then partial close / flip / flat.
    c = jnp.minimum(ad, aq0)
    pnl_close = jnp.where(q0 > 0, (price - p0) * c, (p0 - price) * c)
    q_opp = jnp.where(aq0 == ad, 0.0, q0 + d)
    avg_opp = jnp.where(aq0 > ad, p0, jnp.where(aq0 < ad, price, 0.0))

    opening = q0 == 0
    same = (q0 > 0) == (d > 0)
    q_new = jnp.where(opening, d, jnp.where(same, jnp.where(flat_same, 0.0, q_same), q_opp))
    avg_new = jnp.where(
        opening, price, jnp.where(same, jnp.where(flat_same, 0.0, avg_same), avg_opp)
    )
    realised = jnp.where(opening | same | ~(c > 0), 0.0, pnl_close) - fee
    return q_new, avg_new, realised


def _account_step(
    carry: tuple[Array, Array, Array], fill: tuple[Array, ...]
) -> tuple[tuple[Array, Array, Array], None]:
    """§5.3 exact accounting of one fill on carry (position [N], avg entry [N], realised [])."""
    q, avg, realised_total = carry
    oh, side, size, price, fee_bps = fill  # oh: [N] one-hot of the venue, all False if invalid
    q_new, avg_new, realised = _account_core(
        _pick(oh, q), _pick(oh, avg), side, size, price, fee_bps
    )
    any_ = jnp.any(oh)
    return (
        jnp.where(oh, q_new, q),
        jnp.where(oh, avg_new, avg),
        jnp.where(any_, realised_total + realised, realised_total),
    ), None


def _account_rounds(
    carry: tuple[Array, Array, Array],
    oh: Array,
    fills: FillBatch,
    rounds: tuple[tuple[int, ...], ...],
) -> tuple[Array, Array, Array]:
    """:func:`_account_step` over the whole batch, one `[N]`-vectorised pass per round.

    `rounds` (static) partitions the batch slots so that a round holds at most one fill per
    venue and each venue's fills come in increasing slot order across rounds; the accounting is
    then exactly the sequential one (venues are independent), and the realised PnL is added
    fill by fill in slot order, as the sequential loop adds it.
    """
    q, avg, total = carry
    k = oh.shape[0]
    realised_k: list[Array | None] = [None] * k
    for slots in rounds:
        sl = jnp.asarray(slots)
        ohr = oh[sl]  # [R, N]
        has = jnp.any(ohr, axis=0)  # [N]

        def per_venue(x: Array, ohr: Array = ohr, sl: Array = sl) -> Array:
            xr = x[sl]  # [R]
            acc = jnp.where(ohr[0], xr[0], jnp.zeros((), xr.dtype))
            for j in range(1, ohr.shape[0]):
                acc = jnp.where(ohr[j], xr[j], acc)
            return acc

        q_new, avg_new, r_v = _account_core(
            q, avg, per_venue(fills.side), per_venue(fills.size), per_venue(fills.price),
            per_venue(fills.fee_bps),
        )  # fmt: skip
        # read by the position, the entry, and each fill's realised PnL: computed once
        q_new, avg_new, r_v = materialize_tree((q_new, avg_new, r_v))
        q = jnp.where(has, q_new, q)
        avg = jnp.where(has, avg_new, avg)
        for slot in slots:
            realised_k[slot] = _pick(oh[slot], r_v)
    for slot in range(k):
        r = realised_k[slot]
        if r is not None:
            total = jnp.where(jnp.any(oh[slot]), total + r, total)
    return q, avg, total


def _push_markouts(
    state: StrategyState,
    fills: FillBatch,
    oh: Array,
    now_ms: Array,
    cfg: StrategyConfig,
) -> dict[str, Array]:
    """Append the valid fills to their venues' FIFO rings in batch order.

    Sequential semantics (push at the tail, drop the oldest beyond capacity M) computed at once:
    fill k has rank r_k among the batch's fills on its venue and lands at ring slot
    `(pm_head + pm_count + r_k) mod M` — overwriting exactly the oldest entries when the ring
    overflows — so the head advances by `drop_v = max(count + n_v − M, 0)` and fills with
    `r_k < n_v − M` (overwritten within the batch) are skipped. Per field one K-update scatter;
    the `[N, M]` arrays are never shifted.

    Returns the updated `pm_*` fields, `pm_count`, `pm_head` and `fill_seq`.
    """
    v = state.venues
    m = v.pm_size.shape[-1]
    n = v.pm_count.shape[-1]
    cnt = v.pm_count
    ohi = oh.astype(cnt.dtype)  # [K, N]
    # Per-venue ranks and counts as K unrolled `[N]` steps (elementwise; no reduction over K).
    run = jnp.zeros_like(cnt)
    ranks = []
    for kk in range(ohi.shape[0]):
        ranks.append(jnp.sum(ohi[kk] * run))
        run = run + ohi[kk]
    # read by the ring indices, the heads, counts and sequence numbers: computed once
    rank = materialize(jnp.stack(ranks))  # [K]
    n_new = materialize(run)  # [N]
    drop = jnp.maximum(cnt + n_new - m, 0)  # [N]
    valid = jnp.any(oh, axis=1)  # [K]
    tail = jnp.sum(ohi * (v.pm_head + cnt)[None, :], axis=1)  # [K]
    skip = jnp.sum(ohi * (n_new - m)[None, :], axis=1)  # [K]
    slot = lax.rem(tail + rank, m)  # non-negative operands
    row = jnp.where(valid & (rank >= skip), fills.venue, n)  # N ⇒ not written
    seq = jnp.sum(ohi * v.fill_seq[None, :], axis=1) + rank

    s = fair_value_or_prev(state)
    fair = jnp.where(jnp.isnan(s), 1.0, jnp.maximum(s, 1.0))  # f64::max semantics
    mid_v = jnp.where(v.has_mid, v.mid, fair)  # [N] mid at fill, fallback max(S, 1)
    mid = jnp.sum(jnp.where(oh, mid_v[None, :], 0.0), axis=1)
    t_eval = jnp.asarray(now_ms) + cfg.toxicity.markout_horizon_short_ms
    k = fills.venue.shape[0]
    values = {
        "pm_t_eval_ms": jnp.broadcast_to(t_eval, (k,)),
        "pm_side": fills.side,
        "pm_size": fills.size,
        "pm_price": fills.price,
        "pm_fair_at_fill": jnp.broadcast_to(fair, (k,)),
        "pm_mid_at_fill": mid,
        "pm_fill_seq": seq,
    }
    # The indices and values computed once: fused into the scatters, XLA:CPU would recompute
    # the rank chain for every index component.
    row, slot, values = materialize_tree((row, slot, values))
    out = {}
    for name in PM_RING_FIELDS:
        a = getattr(v, name)
        out[name] = a.at[row, slot].set(values[name].astype(a.dtype), mode="drop")
    out["pm_count"] = jnp.minimum(cnt + n_new, m)
    out["pm_head"] = lax.rem(v.pm_head + drop, m).astype(v.pm_head.dtype)
    out["fill_seq"] = v.fill_seq + n_new.astype(v.fill_seq.dtype)
    return out


def apply_fills(
    state: StrategyState,
    fills: FillBatch,
    now_ms: Array,
    cfg: StrategyConfig,
    *,
    record: bool = True,
    rounds: tuple[tuple[int, ...], ...] | None = None,
) -> StrategyState:
    """Apply the `[K]` fills of a batch in order (§5.3); invalid entries are dropped whole.

    Validity: `valid`, venue in [0, N), side ±1, finite size > 0, finite price > 0, finite fee.
    Accounting (a `lax.scan` over K, the only sequential part): position, average entry,
    `daily_realised_pnl += realised − fee`; `daily_pnl_total = realised + (not yet recomputed)
    unrealised` when any fill applied. With the static `record` also, for every valid fill:
    clear the MM slot holding its `order_id` on its venue (fills are complete), take the next
    per-venue `fill_seq` and push a pending markout due at `now + MARKOUT_HORIZON_SHORT_MS` with
    the venue mid at fill (else `max(S, 1)`) and `max(S, 1)`, S = fair value or its previous
    value (neither changes with fills); full queues drop their oldest entries.
    `record=False` = accounting only (H2 fills, initial inventory).

    Args:
      fills: `[K]` batch.
      now_ms: `[]` int application time.
      rounds: static; a partition of the K slots into rounds of at most one fill per venue,
        each venue's fills in increasing slot order across rounds (e.g. the simulator's MM batch:
        the bids, then the asks). The accounting then runs one `[N]` pass per round instead of
        the K-step scan — the same arithmetic and order, bit for bit. None = the scan.
    """
    v = state.venues
    n = v.position_tao.shape[-1]
    fdt = v.position_tao.dtype
    fills = fills.replace(
        size=fills.size.astype(fdt),
        price=fills.price.astype(fdt),
        fee_bps=fills.fee_bps.astype(fdt),
    )
    valid = _fill_valid(fills, n)
    # Each valid fill's venue, N where invalid: computed once (the validity chain) and read by
    # every part below through the `[K, N]` one-hot, a single compare recomputed by each reader
    # (materialising the one-hot itself costs 5× the integer divisions).
    vk = materialize(jnp.where(valid, fills.venue, n))
    oh = vk[:, None] == jnp.arange(n)[None, :]
    carry0 = (v.position_tao, v.avg_entry_price, state.daily_realised_pnl)
    if rounds is None:
        xs = (oh, fills.side, fills.size, fills.price, fills.fee_bps)
        (q, avg, realised), _ = lax.scan(_account_step, carry0, xs)
    else:
        q, avg, realised = _account_rounds(carry0, oh, fills, rounds)
    total = jnp.where(jnp.any(valid), realised + state.daily_unrealised_pnl, state.daily_pnl_total)
    upd: dict[str, Array] = {"position_tao": q, "avg_entry_price": avg}
    if record:
        oid = fills.order_id
        hit = jnp.zeros_like(v.mm_has)  # [N, 2]: slots holding the order of some fill
        for kk in range(oid.shape[0]):
            hit = hit | (oh[kk][:, None] & (oid[kk] >= 0) & (v.mm_id == oid[kk]))
        # read by order management, the shield and execution: computed once, not per reader
        upd["mm_has"] = materialize(v.mm_has & ~hit)
        upd.update(_push_markouts(state, fills, oh, now_ms, cfg))
    return state.replace(
        venues=v.replace(**upd), daily_realised_pnl=realised, daily_pnl_total=total
    )


def interleaved_rounds(n: int) -> tuple[tuple[int, ...], ...]:
    """`apply_fills` rounds of a `[2N]` batch laid out venue ascending, bid then ask: the
    bids (even slots), then the asks (odd slots)."""
    return tuple(range(0, 2 * n, 2)), tuple(range(1, 2 * n, 2))


def block_rounds(n: int, blocks: int) -> tuple[tuple[int, ...], ...]:
    """`apply_fills` rounds of a `[blocks·N]` batch of consecutive blocks of N slots, each
    block holding at most one fill per venue (e.g. exits, then hedges)."""
    return tuple(tuple(range(i * n, (i + 1) * n)) for i in range(blocks))


def _single(
    valid: Array,
    venue: Array,
    side: Array,
    size: Array,
    price: Array,
    fee_bps: Array,
    purpose: Array,
    order_id: Array,
) -> FillBatch:
    """A `[1]` FillBatch from scalars."""

    def one(x: Array) -> Array:
        return jnp.reshape(jnp.asarray(x), (1,))

    return FillBatch(
        valid=one(valid).astype(bool),
        venue=one(venue),
        side=one(side),
        size=one(size),
        price=one(price),
        fee_bps=one(fee_bps),
        purpose=one(purpose),
        order_id=one(order_id),
    )


def apply_fill(
    state: StrategyState,
    venue: Array,
    side: Array,
    size: Array,
    price: Array,
    fee_bps: Array,
    purpose: Array,
    order_id: Array,
    now_ms: Array,
    cfg: StrategyConfig,
    *,
    record: bool = True,
) -> StrategyState:
    """Apply one fill (§5.3); :func:`apply_fills` with K = 1 (same validity and effects).

    Args:
      venue, side, size, price, fee_bps, order_id: `[]` scalars (order_id −1 = none).
      purpose: `[]` PURPOSE_* code (the state keeps no per-fill ledger; informational).
      now_ms: `[]` int application time.
      record: static; False = accounting only.
    """
    fill = _single(True, venue, side, size, price, fee_bps, purpose, order_id)
    return apply_fills(state, fill, now_ms, cfg, record=record)


def inject_initial_position(
    state: StrategyState, q0: Array, price: Array, cfg: StrategyConfig
) -> StrategyState:
    """Initial inventory (SIMULATION §5): fee-free accounting-only fill of |q0| on venue 0.

    Buy if q0 > 0, sell if q0 < 0; skipped when |q0| < 1e-9.
    """
    q0 = jnp.asarray(q0, state.venues.position_tao.dtype)
    side = jnp.where(q0 > 0, SIDE_BUY, SIDE_SELL)
    valid = jnp.abs(q0) >= _INJECT_MIN_ABS_TAO
    fill = _single(valid, 0, side, jnp.abs(q0), price, 0.0, PURPOSE_INJECT, -1)
    return apply_fills(state, fill, 0, cfg, record=False)


def settle_funding(
    state: StrategyState, settle_mask: Array, mark: Array, cfg: StrategyConfig
) -> StrategyState:
    """D5 funding accrual at settlement: `realised −= f8_v·q_v·mark_v` for each settling venue.

    Longs pay when the rate is positive; venues with a non-finite payment are skipped. A no-op
    unless the static `cfg.flags.funding_accrual`. `daily_pnl_total = realised + unrealised`.

    Args:
      settle_mask: `[N]` bool, venues settling now.
      mark: `[N]` settlement mark price.
    """
    if not cfg.flags.funding_accrual:
        return state
    v = state.venues
    pay = v.funding_8h * v.position_tao * mark
    apply = settle_mask & jnp.isfinite(pay)
    realised = state.daily_realised_pnl
    for i in range(pay.shape[-1]):
        realised = jnp.where(apply[i], realised - pay[i], realised)
    return state.replace(
        daily_realised_pnl=realised, daily_pnl_total=realised + state.daily_unrealised_pnl
    )


# ---------------------------------------------------------------------------------------------
# §5.4 Post-batch recompute ("mark to fair") and §5.5 markout value
# ---------------------------------------------------------------------------------------------


def recompute_exposures(state: StrategyState, cfg: StrategyConfig) -> StrategyState:
    """§5.4 mark to fair: q_t, Δ$, B, B_gross, unrealised and total PnL.

    S = fair value if present else its previous value; all exposures are 0 (total = realised)
    when S is not finite or ≤ 0. Sums run in venue order.
    """
    del cfg
    v = state.venues
    s = fair_value_or_prev(state)
    ok = jnp.isfinite(s) & (s > 0)
    q = v.position_tao
    b = jnp.where(v.has_mid, v.mid, s) - s
    q_t = _seq_sum(q)
    dd = _seq_sum(q * s)
    basis = _seq_sum(q * b)
    gross = _seq_sum(jnp.abs(q) * jnp.abs(b))
    unreal = _seq_sum(jnp.where(q != 0, q * (s - v.avg_entry_price), 0.0))

    def z(x: Array) -> Array:
        return jnp.where(ok, x, jnp.zeros_like(x))

    unreal = z(unreal)
    return state.replace(
        q_global_tao=z(q_t),
        dollar_delta_usd=z(dd),
        basis_usd=z(basis),
        basis_gross_usd=z(gross),
        daily_unrealised_pnl=unreal,
        daily_pnl_total=state.daily_realised_pnl + unreal,
    )


def markout_value(side: Array, price: Array, mid_now: Array) -> Array:
    """§5.5 [IMPL] per-TAO markout against the venue mid: buy ⇒ mid − price, sell ⇒ price − mid.

    Shapes broadcast (e.g. `[N, M]` pending entries against `[N, 1]` mids).
    """
    return jnp.where(side == SIDE_BUY, mid_now - price, price - mid_now)
