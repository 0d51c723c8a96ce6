"""Data ingestion and accounting, float64 NumPy reference engine (STRATEGY.md §5).

Written as per-venue loops that read next to the spec:

* §5.1 book updates and local vols (:func:`apply_book_update`);
* §5.2 margin / liquidation snapshots (:func:`apply_account_snapshot`);
* §5.3 fills, PnL accounting, MM slot clearing and pending markouts (:func:`apply_fill`,
  :func:`apply_fills`, :func:`inject_initial_position`), funding accrual D5
  (:func:`settle_funding`);
* §5.4 the post-batch mark-to-fair recompute (:func:`recompute_exposures`);
* §5.5 the per-TAO markout value (:func:`markout_value`).

Every function returns a new state and never mutates its inputs. Sums over venues are taken in
venue order starting from 0.0, as the original accumulates them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from paraphina_jax.config.types import PURPOSE_INJECT, SIDE_BUY, SIDE_SELL, StrategyConfig
from paraphina_jax.reference.common import fair_value_or_prev
from paraphina_jax.strategy.types import AccountInputs, BookInputs, FillBatch, StrategyState

_LN_MID_FLOOR = 1e-6  # §5.1: ln(max(mid, 1e-6))
_INJECT_MIN_ABS_TAO = 1e-9  # SIMULATION §5: |q0| < 1e-9 ⇒ no injection


def _copy_venues(state: StrategyState) -> dict[str, np.ndarray]:
    """Writable copies of every per-venue array."""
    return {
        f.name: np.array(getattr(state.venues, f.name), copy=True)
        for f in dataclasses.fields(state.venues)
    }


def _with_venues(state: StrategyState, v: dict[str, np.ndarray], **glob: Any) -> StrategyState:
    return state.replace(venues=state.venues.replace(**v), **glob)


def _finite(*xs: float) -> bool:
    return all(math.isfinite(x) for x in xs)


# ---------------------------------------------------------------------------------------------
# §5.1 Book updates
# ---------------------------------------------------------------------------------------------


def _update_local_vol(v: dict[str, np.ndarray], i: int, mid: float, a_s: float, a_l: float) -> None:
    """§5.1 local vol EWMA of ln(mid) (same alphas as the fair-value vol)."""
    ln_mid = math.log(max(mid, _LN_MID_FLOOR))
    if v["has_prev_ln_mid"][i]:
        r = ln_mid - float(v["prev_ln_mid"][i])
        r2 = r * r
        lvs = float(v["local_vol_short"][i])
        lvl = float(v["local_vol_long"][i])
        var_s = (1.0 - a_s) * (lvs * lvs) + a_s * r2
        var_l = (1.0 - a_l) * (lvl * lvl) + a_l * r2
        v["local_vol_short"][i] = math.sqrt(max(var_s, 0.0))
        v["local_vol_long"][i] = math.sqrt(max(var_l, 0.0))
    v["prev_ln_mid"][i] = ln_mid
    v["has_prev_ln_mid"][i] = True


def _top_of_book_notional(bp: float, bs: float, ap: float, az: float) -> float:
    """D4 [IMPL] depth: |bid·size_bid0| + |ask·size_ask0| (0 if non-finite)."""
    bn = abs(bp * bs)
    an = abs(ap * az)
    return bn + an if _finite(bn, an) else 0.0


def apply_book_update(
    state: StrategyState, book: BookInputs, now_ms: int, cfg: StrategyConfig
) -> StrategyState:
    """§5.1 top-of-book update of every venue with `book.updated`.

    Args:
      state: current state.
      book: level-0 prices and sizes `[N]`; a side with size ≤ 0 is empty.
      now_ms: update time.
      cfg: config (local vol alphas = fair-value vol alphas).

    Returns:
      The new state. A venue whose update holds any non-finite price or size is left untouched.
    """
    v = _copy_venues(state)
    a_s = float(cfg.vol.fv_vol_alpha_short)
    a_l = float(cfg.vol.fv_vol_alpha_long)
    for i in range(cfg.n_venues):
        if not bool(book.updated[i]):
            continue
        bp, bs = float(book.bid_px[i]), float(book.bid_sz[i])
        ap, az = float(book.ask_px[i]), float(book.ask_sz[i])
        if not _finite(bp, bs, ap, az):
            continue  # rejected whole: nothing changes
        v["last_book_update_ms"][i] = now_ms
        v["has_book_update"][i] = True
        if bs > 0.0 and az > 0.0:
            mid = (bp + ap) / 2.0  # re-derived from the level-0 prices (SIMULATION §13.3)
            v["mid"][i] = mid
            v["spread"][i] = ap - bp  # crossed books are stored as is
            v["has_mid"][i] = True
            v["last_mid_update_ms"][i] = now_ms
            v["has_mid_update"][i] = True
            v["depth_near_mid"][i] = _top_of_book_notional(bp, bs, ap, az)
            _update_local_vol(v, i, mid, a_s, a_l)
        else:
            v["depth_near_mid"][i] = 0.0  # empty side: mid, spread, vols keep their values
    return _with_venues(state, v)


# ---------------------------------------------------------------------------------------------
# §5.2 Balance, margin and liquidation
# ---------------------------------------------------------------------------------------------


def apply_account_snapshot(
    state: StrategyState,
    acct: AccountInputs,
    now_ms: int,
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
      acct: snapshot fields `[N]`.
      now_ms: snapshot time.
      cfg: config.
      h1_quirks: also set `last_mid_update_ms = now` on venues that never had a mid update (H1).
    """
    v = _copy_venues(state)
    s = float(state.fair_value)
    sig = float(state.sigma_eff)
    s_ok = bool(state.has_fair_value) and _finite(s, sig) and s > 0.0 and sig > 0.0
    for i in range(cfg.n_venues):
        if not bool(acct.updated[i]):
            continue
        v["margin_balance_usd"][i] = acct.margin_balance_usd[i]
        v["margin_used_usd"][i] = acct.margin_used_usd[i]
        v["margin_available_usd"][i] = acct.margin_available_usd[i]
        ok = s_ok and bool(v["has_mid"][i])
        mid = float(v["mid"][i])
        if bool(acct.has_price_liq[i]):
            pl = float(acct.price_liq[i])
            v["price_liq"][i] = pl
            v["has_price_liq"][i] = True
            if ok:
                v["dist_liq_sigma"][i] = abs(mid - pl) / (sig * s)
        else:
            dist = float(acct.dist_liq_sigma[i])
            v["dist_liq_sigma"][i] = dist
            if ok:
                v["price_liq"][i] = mid - dist * sig * s
                v["has_price_liq"][i] = True
        if not abs(float(v["position_tao"][i])) > 0.0:
            v["avg_entry_price"][i] = 0.0
        if h1_quirks and not bool(v["has_mid_update"][i]):
            v["last_mid_update_ms"][i] = now_ms
            v["has_mid_update"][i] = True
    return _with_venues(state, v)


# ---------------------------------------------------------------------------------------------
# §5.3 Fills and PnL accounting
# ---------------------------------------------------------------------------------------------


def fill_is_valid(venue: int, side: int, size: float, price: float, fee_bps: float, n: int) -> bool:
    """§5.3 fill validity: venue in range, side ±1, finite size > 0, finite price > 0, finite fee."""
    return (
        0 <= venue < n
        and side in (SIDE_BUY, SIDE_SELL)
        and _finite(size, price, fee_bps)
        and size > 0.0
        and price > 0.0
    )


def _account_fill(
    q0: float, p0: float, side: int, size: float, price: float, fee_bps: float
) -> tuple[float, float, float]:
    """§5.3 exact algorithm for one valid fill. Returns (q_new, avg_new, realised incl. fee)."""
    d = size if side == SIDE_BUY else -size
    fee = (fee_bps / 1e4) * price * size
    realised = 0.0
    if q0 == 0.0:
        q, avg = d, price
    elif (q0 > 0.0) == (d > 0.0):
        q_new = q0 + d
        if q_new != 0.0:
            w0, w1 = abs(q0), abs(d)
            q, avg = q_new, (p0 * w0 + price * w1) / (w0 + w1)
        else:
            q, avg = 0.0, 0.0  # exactly flat
    else:
        c = min(abs(d), abs(q0))
        if c > 0.0:
            realised += (price - p0) * c if q0 > 0.0 else (p0 - price) * c
        if abs(q0) > abs(d):
            q, avg = q0 + d, p0  # partial close
        elif abs(q0) < abs(d):
            q, avg = q0 + d, price  # flip through zero
        else:
            q, avg = 0.0, 0.0  # exactly flat
    realised -= fee
    return q, avg, realised


def _push_markout(
    v: dict[str, np.ndarray],
    i: int,
    t_eval: int,
    side: int,
    size: float,
    price: float,
    fair: float,
    mid: float,
    seq: int,
) -> None:
    """Append to venue i's FIFO ring at slot `(pm_head + pm_count) mod M`; when full the oldest
    entry is dropped (the head advances) and its slot reused."""
    m = v["pm_t_eval_ms"].shape[1]
    cnt = int(v["pm_count"][i])
    head = int(v["pm_head"][i])
    names = (
        "pm_t_eval_ms",
        "pm_side",
        "pm_size",
        "pm_price",
        "pm_fair_at_fill",
        "pm_mid_at_fill",
        "pm_fill_seq",
    )
    values = (t_eval, side, size, price, fair, mid, seq)
    if cnt >= m:
        head = (head + 1) % m
        cnt = m - 1
    slot = (head + cnt) % m
    for name, val in zip(names, values):
        v[name][i, slot] = val
    v["pm_head"][i] = head
    v["pm_count"][i] = cnt + 1


def apply_fill(
    state: StrategyState,
    venue: int,
    side: int,
    size: float,
    price: float,
    fee_bps: float,
    purpose: int,
    order_id: int,
    now_ms: int,
    cfg: StrategyConfig,
    *,
    record: bool = True,
) -> StrategyState:
    """Apply one fill (§5.3). An invalid fill is dropped whole.

    Accounting: position, average entry, `daily_realised_pnl += realised − fee`,
    `daily_pnl_total = realised + (not yet recomputed) unrealised`. With `record` also: clear the
    MM slot holding `order_id` on that venue (fills are complete), take the next per-venue
    `fill_seq` and push a pending markout due at `now + MARKOUT_HORIZON_SHORT_MS` holding the
    venue mid at fill (else `max(S, 1)`) and `max(S, 1)`, S = fair value or its previous value.

    Args:
      purpose: PURPOSE_* code of the fill (the state keeps no per-fill ledger; informational).
      order_id: MM order id (−1 = none).
      record: False = accounting only (H2 fills, initial inventory).
    """
    del purpose  # not part of the state (no recent-fill ring)
    venue, side = int(venue), int(side)
    size, price, fee_bps = float(size), float(price), float(fee_bps)
    if not fill_is_valid(venue, side, size, price, fee_bps, cfg.n_venues):
        return state
    v = _copy_venues(state)
    q, avg, realised = _account_fill(
        float(v["position_tao"][venue]),
        float(v["avg_entry_price"][venue]),
        side,
        size,
        price,
        fee_bps,
    )
    v["position_tao"][venue] = q
    v["avg_entry_price"][venue] = avg
    daily_realised = float(state.daily_realised_pnl) + realised
    total = daily_realised + float(state.daily_unrealised_pnl)
    if record:
        oid = int(order_id)
        if oid >= 0:
            for k in range(2):
                if bool(v["mm_has"][venue, k]) and int(v["mm_id"][venue, k]) == oid:
                    v["mm_has"][venue, k] = False
        seq = int(v["fill_seq"][venue])
        v["fill_seq"][venue] = seq + 1
        s = fair_value_or_prev(state)
        fair = 1.0 if math.isnan(s) else max(s, 1.0)  # f64::max semantics
        mid = float(v["mid"][venue]) if bool(v["has_mid"][venue]) else fair
        t_eval = int(now_ms) + int(cfg.toxicity.markout_horizon_short_ms)
        _push_markout(v, venue, t_eval, side, size, price, fair, mid, seq)
    return _with_venues(
        state,
        v,
        daily_realised_pnl=np.asarray(daily_realised, dtype=np.float64),
        daily_pnl_total=np.asarray(total, dtype=np.float64),
    )


def apply_fills(
    state: StrategyState,
    fills: FillBatch,
    now_ms: int,
    cfg: StrategyConfig,
    *,
    record: bool = True,
) -> StrategyState:
    """Apply the `[K]` fills of a batch in order (entries with `valid = False` are skipped)."""
    for k in range(len(fills.valid)):
        if not bool(fills.valid[k]):
            continue
        state = apply_fill(
            state,
            int(fills.venue[k]),
            int(fills.side[k]),
            float(fills.size[k]),
            float(fills.price[k]),
            float(fills.fee_bps[k]),
            int(fills.purpose[k]),
            int(fills.order_id[k]),
            now_ms,
            cfg,
            record=record,
        )
    return state


def inject_initial_position(
    state: StrategyState, q0: float, price: float, cfg: StrategyConfig
) -> StrategyState:
    """Initial inventory (SIMULATION §5): fee-free accounting-only fill of |q0| on venue 0.

    Buy if q0 > 0, sell if q0 < 0; skipped when |q0| < 1e-9.
    """
    q0 = float(q0)
    if not abs(q0) >= _INJECT_MIN_ABS_TAO:
        return state
    side = SIDE_BUY if q0 > 0.0 else SIDE_SELL
    return apply_fill(state, 0, side, abs(q0), price, 0.0, PURPOSE_INJECT, -1, 0, cfg, record=False)


def settle_funding(
    state: StrategyState, settle_mask: np.ndarray, mark: np.ndarray, cfg: StrategyConfig
) -> StrategyState:
    """D5 funding accrual at settlement: `realised −= f8_v·q_v·mark_v` for each settling venue.

    Longs pay when the rate is positive. Venues with a non-finite payment are skipped. A no-op
    unless `cfg.flags.funding_accrual`. `daily_pnl_total = realised + unrealised` afterwards.

    Args:
      settle_mask: `[N]` bool, venues settling now.
      mark: `[N]` settlement mark price.
    """
    if not cfg.flags.funding_accrual:
        return state
    realised = float(state.daily_realised_pnl)
    f8 = state.venues.funding_8h
    q = state.venues.position_tao
    for i in range(cfg.n_venues):
        pay = float(f8[i]) * float(q[i]) * float(mark[i])
        if bool(settle_mask[i]) and math.isfinite(pay):
            realised = realised - pay
    total = realised + float(state.daily_unrealised_pnl)
    return state.replace(
        daily_realised_pnl=np.asarray(realised, dtype=np.float64),
        daily_pnl_total=np.asarray(total, dtype=np.float64),
    )


# ---------------------------------------------------------------------------------------------
# §5.4 Post-batch recompute ("mark to fair") and §5.5 markout value
# ---------------------------------------------------------------------------------------------


def recompute_exposures(state: StrategyState, cfg: StrategyConfig) -> StrategyState:
    """§5.4 mark to fair: q_t, Δ$, B, B_gross, unrealised and total PnL.

    S = fair value if present else its previous value; all exposures are 0 (total = realised)
    when S is not finite or ≤ 0. Sums run in venue order.
    """
    s = fair_value_or_prev(state)
    realised = float(state.daily_realised_pnl)
    q_t = dd = basis = gross = unreal = 0.0
    if math.isfinite(s) and s > 0.0:
        ven = state.venues
        for i in range(cfg.n_venues):
            q = float(ven.position_tao[i])
            q_t += q
            dd += q * s
            b = (float(ven.mid[i]) if bool(ven.has_mid[i]) else s) - s
            basis += q * b
            gross += abs(q) * abs(b)
            if q != 0.0:
                unreal += q * (s - float(ven.avg_entry_price[i]))

    def f(x: float) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)

    return state.replace(
        q_global_tao=f(q_t),
        dollar_delta_usd=f(dd),
        basis_usd=f(basis),
        basis_gross_usd=f(gross),
        daily_unrealised_pnl=f(unreal),
        daily_pnl_total=f(realised + unreal),
    )


def markout_value(side: int, price: float, mid_now: float) -> float:
    """§5.5 [IMPL] per-TAO markout against the venue mid: buy ⇒ mid − price, sell ⇒ price − mid."""
    return mid_now - price if int(side) == SIDE_BUY else price - mid_now
