"""Strategy state, per-tick inputs, controls and actions (STRATEGY.md §4, SIMULATION.md §6.6).

All are `flax.struct` dataclasses of fixed-shape arrays. Shapes are written for one environment:
`[N]` = per venue, `[N, M]` = per venue × pending-markout capacity, `[N, 2]` = per venue × side
(0 = bid/buy, 1 = ask/sell), `[K]` = fills in a batch. A batch of environments adds a leading
`[B]` axis. "Absent" values are masks (`has_*`), never NaN. Times are integer milliseconds.

The same classes hold `jax.Array` leaves in the JAX engine and `np.ndarray` float64/int64 leaves
in the NumPy reference engine (`paraphina_jax.reference`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from flax import struct

from paraphina_jax.config.types import (
    KILL_NONE,
    REGIME_NORMAL,
    STATUS_HEALTHY,
    StrategyConfig,
)

Array = Any  # jax.Array | np.ndarray


@struct.dataclass
class VenueState:
    """Per-venue state (§4.1). Every field is `[N]` unless noted."""

    # Book (§5.1)
    mid: Array  # [N] f  venue mid (valid where has_mid)
    spread: Array  # [N] f  best ask − best bid (valid where has_mid)
    has_mid: Array  # [N] bool
    depth_near_mid: Array  # [N] f  top-of-book USD notional (D4)
    last_mid_update_ms: Array  # [N] i  (valid where has_mid_update)
    has_mid_update: Array  # [N] bool
    last_book_update_ms: Array  # [N] i  (valid where has_book_update)
    has_book_update: Array  # [N] bool
    # Local vol (§5.1)
    local_vol_short: Array  # [N] f
    local_vol_long: Array  # [N] f
    prev_ln_mid: Array  # [N] f  (valid where has_prev_ln_mid)
    has_prev_ln_mid: Array  # [N] bool
    # Health (§8)
    status: Array  # [N] i  0 Healthy, 1 Warning, 2 Disabled
    toxicity: Array  # [N] f  in [0, 1]
    markout_ewma_usd_per_tao: Array  # [N] f
    # Pending markouts (§4.1, §5.5): a FIFO ring per venue — logical entry j (insertion order,
    # j < pm_count) lives at slot (pm_head + j) mod M; slots outside it hold stale values.
    pm_count: Array  # [N] i
    pm_head: Array  # [N] i  slot of the oldest entry
    pm_t_eval_ms: Array  # [N, M] i
    pm_side: Array  # [N, M] i  +1 buy, −1 sell
    pm_size: Array  # [N, M] f
    pm_price: Array  # [N, M] f
    pm_fair_at_fill: Array  # [N, M] f
    pm_mid_at_fill: Array  # [N, M] f
    pm_fill_seq: Array  # [N, M] i
    fill_seq: Array  # [N] i  next per-venue fill sequence number
    # Position / funding (§4.1, §9)
    position_tao: Array  # [N] f
    avg_entry_price: Array  # [N] f  (0 when position is 0)
    funding_8h: Array  # [N] f  latest observed 8h rate
    fund_rate_8h: Array  # [N] f  funding record rate (valid where fund_has_rate)
    fund_has_rate: Array  # [N] bool
    fund_received_ms: Array  # [N] i  (<= 0 = absent)
    fund_as_of_ms: Array  # [N] i  (<= 0 = absent)
    fund_next_ms: Array  # [N] i  next settlement (valid where fund_has_next)
    fund_has_next: Array  # [N] bool
    # Margin / liquidation (§5.2)
    margin_balance_usd: Array  # [N] f
    margin_used_usd: Array  # [N] f
    margin_available_usd: Array  # [N] f
    price_liq: Array  # [N] f  (valid where has_price_liq)
    has_price_liq: Array  # [N] bool
    dist_liq_sigma: Array  # [N] f
    # MM order slots (§13): side axis 0 = bid, 1 = ask
    mm_has: Array  # [N, 2] bool
    mm_price: Array  # [N, 2] f
    mm_size: Array  # [N, 2] f
    mm_ts_ms: Array  # [N, 2] i
    mm_id: Array  # [N, 2] i
    # Venue-level protections (§16.6, D22)
    dev_breach_count: Array  # [N] i
    dev_disabled: Array  # [N] bool (latching until reset)


@struct.dataclass
class StrategyState:
    """Global strategy state (§4.2) plus the per-venue block."""

    venues: VenueState
    # Kalman filter (§6)
    kf_x_hat: Array  # [] f  ln S estimate
    kf_p: Array  # [] f  state variance
    kf_last_update_ms: Array  # [] i
    kf_initialised: Array  # [] bool (D3 explicit flag)
    # Fair value and vol (§6–7)
    fair_value: Array  # [] f  (valid where has_fair_value)
    has_fair_value: Array  # [] bool
    fair_value_prev: Array  # [] f
    fv_short_vol: Array  # [] f
    fv_long_vol: Array  # [] f
    sigma_eff: Array  # [] f
    fv_available: Array  # [] bool
    healthy_venues_used: Array  # [N] bool  KF observations of the last update
    healthy_venues_used_count: Array  # [] i
    # Scalars (§7.2)
    vol_ratio_raw: Array  # [] f  σ_eff / vol_ref_tick before clipping (telemetry)
    vol_ratio_clipped: Array  # [] f
    spread_mult: Array  # [] f
    size_mult: Array  # [] f
    band_mult: Array  # [] f
    # Exposure (§5.4)
    q_global_tao: Array  # [] f
    dollar_delta_usd: Array  # [] f
    basis_usd: Array  # [] f
    basis_gross_usd: Array  # [] f
    # PnL (§16.2); "daily" = since episode start
    daily_realised_pnl: Array  # [] f
    daily_unrealised_pnl: Array  # [] f
    daily_pnl_total: Array  # [] f
    # Risk (§16)
    risk_regime: Array  # [] i  0 Normal, 1 Warning, 2 HardLimit
    kill_switch: Array  # [] bool
    kill_reason: Array  # [] i  KILL_* codes
    kill_handled: Array  # [] bool  kill transition already handled (§16.5)
    kill_tick: Array  # [] i  tick the kill latched (−1 = never)
    delta_limit_usd: Array  # [] f
    basis_limit_warn_usd: Array  # [] f
    basis_limit_hard_usd: Array  # [] f
    # Cadences (§17.3) and counters
    tick: Array  # [] i  ticks processed so far
    next_risk_ms: Array  # [] i
    next_hedge_ms: Array  # [] i
    last_flush_ms: Array  # [] i
    next_order_id: Array  # [] i


def init_state(
    cfg: StrategyConfig,
    base_ms: int = 0,
    xp: Any = np,
    float_dtype: Any = None,
    int_dtype: Any = None,
) -> StrategyState:
    """Fresh state (§4 initial values; SIMULATION §5) for one environment.

    Args:
      cfg: strategy config (fixes N and the markout capacity M).
      base_ms: episode start time; the cadence counters start there (§17.2).
      xp: `numpy` (reference engine, float64/int64) or `jax.numpy`.
    """
    n = cfg.n_venues
    m = cfg.toxicity.max_pending_per_venue
    if xp is np:
        fd = float_dtype or np.float64
        idt = int_dtype or np.int64
    else:
        import jax.numpy as jnp

        fd = float_dtype or jnp.zeros(()).dtype
        idt = int_dtype or jnp.zeros((), dtype=int).dtype

    def f(shape: tuple[int, ...] = (n,), v: Any = 0.0) -> Array:
        return xp.full(shape, v, dtype=fd)

    def i(shape: tuple[int, ...] = (n,), v: Any = 0) -> Array:
        return xp.full(shape, v, dtype=idt)

    def b(shape: tuple[int, ...] = (n,), v: bool = False) -> Array:
        return xp.full(shape, v, dtype=bool)

    venues = VenueState(
        mid=f(),
        spread=f(),
        has_mid=b(),
        depth_near_mid=f(),
        last_mid_update_ms=i(),
        has_mid_update=b(),
        last_book_update_ms=i(),
        has_book_update=b(),
        local_vol_short=f(),
        local_vol_long=f(),
        prev_ln_mid=f(),
        has_prev_ln_mid=b(),
        status=i(v=STATUS_HEALTHY),
        toxicity=f(),
        markout_ewma_usd_per_tao=f(),
        pm_count=i(),
        pm_head=i(),
        pm_t_eval_ms=i((n, m)),
        pm_side=i((n, m)),
        pm_size=f((n, m)),
        pm_price=f((n, m)),
        pm_fair_at_fill=f((n, m)),
        pm_mid_at_fill=f((n, m)),
        pm_fill_seq=i((n, m)),
        fill_seq=i(),
        position_tao=f(),
        avg_entry_price=f(),
        funding_8h=f(),
        fund_rate_8h=f(),
        fund_has_rate=b(),
        fund_received_ms=i(),
        fund_as_of_ms=i(),
        fund_next_ms=i(),
        fund_has_next=b(),
        margin_balance_usd=f(),
        margin_used_usd=f(),
        margin_available_usd=f(v=10_000.0),
        price_liq=f(),
        has_price_liq=b(),
        dist_liq_sigma=f(v=10.0),
        mm_has=b((n, 2)),
        mm_price=f((n, 2)),
        mm_size=f((n, 2)),
        mm_ts_ms=i((n, 2)),
        mm_id=i((n, 2)),
        dev_breach_count=i(),
        dev_disabled=b(),
    )
    hard = cfg.risk.basis_hard_limit_usd
    return StrategyState(
        venues=venues,
        kf_x_hat=f(()),
        kf_p=f((), cfg.book.kf_p_init),
        kf_last_update_ms=i(()),
        kf_initialised=b(()),
        fair_value=f(()),
        has_fair_value=b(()),
        fair_value_prev=f(()),
        fv_short_vol=f(()),
        fv_long_vol=f(()),
        sigma_eff=f((), cfg.vol.sigma_min),
        fv_available=b(()),
        healthy_venues_used=b(),
        healthy_venues_used_count=i(()),
        vol_ratio_raw=f((), 1.0),
        vol_ratio_clipped=f((), 1.0),
        spread_mult=f((), 1.0),
        size_mult=f((), 1.0),
        band_mult=f((), 1.0),
        q_global_tao=f(()),
        dollar_delta_usd=f(()),
        basis_usd=f(()),
        basis_gross_usd=f(()),
        daily_realised_pnl=f(()),
        daily_unrealised_pnl=f(()),
        daily_pnl_total=f(()),
        risk_regime=i((), REGIME_NORMAL),
        kill_switch=b(()),
        kill_reason=i((), KILL_NONE),
        kill_handled=b(()),
        kill_tick=i((), -1),
        delta_limit_usd=f((), cfg.risk.delta_hard_limit_usd_base),
        basis_limit_warn_usd=f((), cfg.risk.basis_warn_frac * hard),
        basis_limit_hard_usd=f((), hard),
        tick=i(()),
        next_risk_ms=i((), base_ms),
        next_hedge_ms=i((), base_ms),
        last_flush_ms=i((), base_ms - cfg.loop.fill_agg_interval_ms),
        next_order_id=i(()),
    )


PM_RING_FIELDS = (
    "pm_t_eval_ms",
    "pm_side",
    "pm_size",
    "pm_price",
    "pm_fair_at_fill",
    "pm_mid_at_fill",
    "pm_fill_seq",
)  # the `[N, M]` ring arrays; written only by pushes (fills), never by pops


def pending_slots(pm_head: Array, m: int) -> np.ndarray:
    """Ring slot of each logical pending-markout entry: `(pm_head + j) mod M`, `[..., N, M]`
    (host-side, NumPy)."""
    head = np.asarray(pm_head)
    return (head[..., None] + np.arange(m)) % m


def pending_entries(venues: VenueState, name: str) -> np.ndarray:
    """A `pm_*` ring field in logical (insertion) order, entries at or beyond `pm_count` zeroed:
    `[..., N, M]` (host-side, NumPy; for snapshots, reports and tests)."""
    arr = np.asarray(getattr(venues, name))
    m = arr.shape[-1]
    out = np.take_along_axis(arr, pending_slots(venues.pm_head, m), axis=-1)
    live = np.arange(m) < np.asarray(venues.pm_count)[..., None]
    return np.where(live, out, np.zeros((), out.dtype))


@struct.dataclass
class BookInputs:
    """Top-of-book updates for one tick (§5.1); `[N]` each. Depth is the USD definition (D4)."""

    updated: Array  # [N] bool  an update arrived for this venue this tick
    bid_px: Array  # [N] f  best bid (level 0)
    bid_sz: Array  # [N] f  size at best bid (<= 0 ⇒ side empty)
    ask_px: Array  # [N] f
    ask_sz: Array  # [N] f


@struct.dataclass
class FundingInputs:
    """Funding observations (§9); `[N]` each."""

    updated: Array  # [N] bool  a funding record arrived (received_ms = now)
    rate_8h: Array  # [N] f
    next_funding_ms: Array  # [N] i
    has_next: Array  # [N] bool


@struct.dataclass
class AccountInputs:
    """Synthetic account snapshots (§5.2); `[N]` each."""

    updated: Array  # [N] bool  a snapshot arrived this tick
    margin_balance_usd: Array  # [N] f
    margin_used_usd: Array  # [N] f
    margin_available_usd: Array  # [N] f
    price_liq: Array  # [N] f  liquidation price (used where has_price_liq)
    has_price_liq: Array  # [N] bool  else dist_liq_sigma below is taken as is (constant mode)
    dist_liq_sigma: Array  # [N] f


@struct.dataclass
class VenueOverlay:
    """Simulator overlays on the strategy's venue health (SIMULATION §2.4), applied right after the
    toxicity update: the cancel-storm toxicity floor and the venue-outage forced Disabled status."""

    toxicity_floor: Array  # [] f  tox ← max(tox, floor) and status recomputed where floor > 0
    force_disabled: Array  # [N] bool  status forced to Disabled (toxicity untouched)


@struct.dataclass
class MarketInputs:
    """Everything the strategy observes in one tick."""

    now_ms: Array  # [] i
    book: BookInputs
    funding: FundingInputs
    account: AccountInputs


@struct.dataclass
class FillBatch:
    """A batch of fills to apply in order (§5.3); `[K]` each."""

    valid: Array  # [K] bool
    venue: Array  # [K] i
    side: Array  # [K] i  +1 buy, −1 sell
    size: Array  # [K] f  > 0
    price: Array  # [K] f  > 0
    fee_bps: Array  # [K] f  (negative = rebate)
    purpose: Array  # [K] i  PURPOSE_* code
    order_id: Array  # [K] i  MM order id (−1 = none): clears the matching MM slot


@struct.dataclass
class Controls:
    """Control surface (SIMULATION §6.6). Identity = (1, 1, 0; 1; 1/N)."""

    spread_scale: Array  # [N] f  in [0.5, 3]
    size_scale: Array  # [N] f  in [0, 2]
    rprice_offset_usd: Array  # [N] f  in [−10, 10]
    hedge_scale: Array  # [] f  in [0, 2]
    hedge_venue_weights: Array  # [N] f  on the simplex


def identity_controls(n: int, xp: Any = np, dtype: Any = None) -> Controls:
    """The identity control value: reproduces the heuristic strategy exactly."""
    dt = dtype or (np.float64 if xp is np else None)

    def full(shape: tuple[int, ...], v: float) -> Array:
        return xp.full(shape, v, dtype=dt)

    return Controls(
        spread_scale=full((n,), 1.0),
        size_scale=full((n,), 1.0),
        rprice_offset_usd=full((n,), 0.0),
        hedge_scale=full((), 1.0),
        hedge_venue_weights=full((n,), 1.0 / n),
    )


# Why a quote side is absent (§11.1–§12); 0 = quoted. Shared by both engines and `decide`.
GATE_NONE = 0
GATE_FV_UNAVAILABLE = 1  # §11.1.1
GATE_NO_FAIR_VALUE = 2  # §11.1.2
GATE_KILL_OR_HARDLIMIT = 3  # §11.1.3
GATE_SIGMA_OR_SIZE_MULT = 4  # §11.1.4
GATE_VENUE_DISABLED = 5  # §11.2.1
GATE_QUOTE_AGE = 6  # §11.2.2
GATE_LIQ_CRITICAL = 7  # §11.2.3
GATE_TOXIC = 8  # §11.2.4
GATE_NO_MID = 9  # §11.2.5
GATE_BAD_BOOK = 10  # §11.2.6
GATE_NONPOSITIVE_SPREAD = 11  # §11.3 δ ≤ 0
GATE_BAD_PRICES = 12  # §11.5 bid ≤ 0 or ask ≤ bid
GATE_EDGE = 13  # §11.6 edge filter
GATE_DELTA_THROTTLE = 14  # §12 step 8
GATE_LIQ_REDUCE_ONLY = 15  # §12 step 5
GATE_SIZE_BELOW_LOT = 16  # §12 step 12
GATE_MIN_NOTIONAL = 17  # D16
GATE_NAMES = (
    "quoted",
    "fv_unavailable",
    "no_fair_value",
    "kill_or_hardlimit",
    "sigma_or_size_mult",
    "venue_disabled",
    "quote_age",
    "liq_critical",
    "toxic",
    "no_mid",
    "bad_book",
    "nonpositive_spread",
    "bad_prices",
    "edge_below_min",
    "delta_throttle",
    "liq_reduce_only",
    "size_below_lot",
    "min_notional",
)


@struct.dataclass
class QuoteSet:
    """Desired MM quotes of one tick (§11–§12); `[N]` each (side 0 = bid, 1 = ask)."""

    bid_px: Array  # [N] f
    ask_px: Array  # [N] f
    bid_size: Array  # [N] f
    ask_size: Array  # [N] f
    bid_valid: Array  # [N] bool
    ask_valid: Array  # [N] bool
    bid_gate: Array  # [N] i  GATE_* code (GATE_NONE where valid)
    ask_gate: Array  # [N] i
    reservation: Array  # [N] f  r_v (§11.4)
    half_spread: Array  # [N] f  δ after Warning / liquidation widening (§11.3)
    edge_bid: Array  # [N] f  per-unit edges (§11.6)
    edge_ask: Array  # [N] f


@struct.dataclass
class OrderPlan:
    """Order-management decisions (§13); `[N, 2]` each (side 0 = buy/bid, 1 = sell/ask).

    Emission order: venue ascending, buy then sell; a replace is cancel then place.
    """

    cancel: Array  # [N, 2] bool  cancel the resting MM order on this side
    place: Array  # [N, 2] bool  place a new post-only GTC order
    place_px: Array  # [N, 2] f
    place_size: Array  # [N, 2] f


@struct.dataclass
class ExitPlan:
    """Cross-venue exit IOC orders (§14); at most one per venue."""

    valid: Array  # [N] bool
    size: Array  # [N] f  TAO
    price: Array  # [N] f  limit price (touch, snapped)
    side: Array  # [] i  +1 buy, −1 sell (the global reducing side)
    order: Array  # [N] i  emission position of each venue's order (greedy order), N if none
    score: Array  # [N] f  ranking score (§14.2), valid where candidate
    base_edge: Array  # [N] f  base profit per TAO
    candidate: Array  # [N] bool  venue passed the candidate gates


@struct.dataclass
class HedgePlan:
    """Global hedge IOC orders (§15); emitted venue ascending."""

    valid: Array  # [N] bool
    size: Array  # [N] f  TAO (rounded)
    price: Array  # [N] f  guard price
    side: Array  # [] i  +1 buy, −1 sell
    band: Array  # [] f  dead band half width (§15.1)
    x: Array  # [] f  X = q_t
    delta_h: Array  # [] f  ΔH after clamp (0 when inside the band)
    active: Array  # [] bool  a hedge was wanted (outside band, not killed)
    alloc: Array  # [N] f  allocation before rounding
    cost: Array  # [N] f  per-unit cost (§15.2), valid where candidate
    exec_cost: Array  # [N] f
    funding_benefit: Array  # [N] f
    basis_edge: Array  # [N] f
    liq_penalty: Array  # [N] f
    frag_penalty: Array  # [N] f
    candidate: Array  # [N] bool


@dataclasses.dataclass(frozen=True)
class TickOptions:
    """Static choices of how the tick is scheduled (part of the compiled program).

    cadence: "loops" = §17.3 catch-up counters (risk on RISK_LOOP, exits on fill-flush ticks,
      hedge when also due) ; "every_tick" = risk, MM, exits and hedge every tick (H2/H3 style).
    use_clock: pass the clock to quoting (quote-age guard, MM funding staleness; D12).
    h1_account_quirks: the core runner's account-snapshot quirks (§5.2).
    """

    cadence: str = "loops"
    use_clock: bool = True
    h1_account_quirks: bool = False


@struct.dataclass
class TickOutput:
    """What one tick decides. Shapes: `[N]` per venue, `[N, 2]` per venue × side."""

    quotes: QuoteSet  # desired quotes (all invalid when killed / not quoting)
    orders: OrderPlan  # cancels and post-only places (cancel-all on the kill transition)
    order_ids: Array  # [N, 2] i  ids assigned to this tick's places (−1 where none)
    exits: ExitPlan  # exit IOC orders (valid only on exit-due ticks)
    hedge: HedgePlan  # hedge IOC orders (valid only on hedge-due ticks)
    kill_exit: ExitPlan  # §16.5 best-effort reduce-only exit on the kill transition
    kill_transition: Array  # [] bool  the kill switch was seen for the first time this tick
    risk_due: Array  # [] bool
    exit_due: Array  # [] bool  (fill-flush tick)
    hedge_due: Array  # [] bool
