"""Frozen, typed strategy configuration (STRATEGY.md §3).

The configuration is a pytree of `flax.struct` dataclasses:

* numeric values that may be swept or randomised are **leaves** (Python floats/ints for scalars,
  `np.ndarray [N]` for per-venue fields), so a batch of configs can be stacked and vmapped;
* values that fix shapes or select code paths (venue ids, book depth, markout capacity,
  reference-parity flags, ablations, trade mode, funding master switches) are **static**
  (`pytree_node=False`) and part of the compiled program's identity.

Both engines (the JAX strategy and the float64 NumPy reference) read these same objects.
Field names are the spec's constant names, lower-cased, grouped by spec section.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from flax import struct

VENUE_IDS: tuple[str, ...] = ("extended", "hyperliquid", "aster", "lighter", "paradex")
CONFIG_VERSION_ID = "v0.1.6-worldmodel-exp08-presets"

# Risk regimes (§16.3) and kill reasons (§16.4) as integer codes.
REGIME_NORMAL, REGIME_WARNING, REGIME_HARDLIMIT = 0, 1, 2
REGIME_NAMES = ("Normal", "Warning", "HardLimit")
KILL_NONE, KILL_PNL, KILL_DELTA, KILL_BASIS, KILL_LIQ = 0, 1, 2, 3, 4
KILL_REASON_NAMES = (
    "None",
    "PnlHardBreach",
    "DeltaHardBreach",
    "BasisHardBreach",
    "LiquidationDistanceBreach",
)
# Venue status (§8.2).
STATUS_HEALTHY, STATUS_WARNING, STATUS_DISABLED = 0, 1, 2
STATUS_NAMES = ("Healthy", "Warning", "Disabled")
# Order sides and purposes.
SIDE_BUY, SIDE_SELL = 1, -1
PURPOSE_MM, PURPOSE_EXIT, PURPOSE_HEDGE, PURPOSE_INJECT = 0, 1, 2, 3
PURPOSE_NAMES = ("MM", "EXIT", "HEDGE", "INJECT")


def _f(default: float) -> Any:
    return struct.field(default=default)


def _static(default: Any) -> Any:
    return struct.field(pytree_node=False, default=default)


@struct.dataclass
class VenueTable:
    """Per-venue table of §1; every leaf is `[N]`."""

    tick_size: np.ndarray  # [N] USD
    base_size: np.ndarray  # [N] TAO (synthetic book level size only)
    max_order_size: np.ndarray  # [N] TAO
    maker_fee_bps: np.ndarray  # [N] bp
    taker_fee_bps: np.ndarray  # [N] bp
    maker_rebate_bps: np.ndarray  # [N] bp
    gamma: np.ndarray  # [N] AS risk aversion
    k: np.ndarray  # [N] AS intensity decay
    w_liq: np.ndarray  # [N] liquidity weight for targets
    w_fund: np.ndarray  # [N] funding weight for targets
    hedge_allowed: np.ndarray  # [N] bool
    lot_size: np.ndarray  # [N] TAO
    size_step: np.ndarray  # [N] TAO
    min_notional_usd: np.ndarray  # [N] USD
    stale_override_ms: np.ndarray  # [N] ms, -1 = none (use BOOK_STALE_MS)
    venue_ids: tuple[str, ...] = _static(VENUE_IDS)

    @property
    def n(self) -> int:
        return len(self.venue_ids)

    def id_rank(self) -> np.ndarray:
        """[N] lexicographic rank of the venue id string (hedge tie-break, §15.3)."""
        order = sorted(range(self.n), key=lambda i: self.venue_ids[i])
        rank = np.empty(self.n, dtype=np.int32)
        rank[np.asarray(order)] = np.arange(self.n, dtype=np.int32)
        return rank


@struct.dataclass
class BookConfig:
    """§3.1 order book / fair value."""

    book_stale_ms: int = _f(1000)
    min_healthy_venues_for_kf: int = _f(2)
    max_mid_jump_pct: float = _f(0.02)
    kf_q_base: float = _f(1e-6)
    kf_r_a: float = _f(1e-6)
    kf_r_b: float = _f(100.0)
    kf_r_min: float = _f(1e-8)
    kf_r_max: float = _f(1e-2)
    kf_p_init: float = _f(1.0)
    book_depth_levels: int = _static(10)


@struct.dataclass
class VolConfig:
    """§3.2 volatility and control scalars."""

    fv_vol_alpha_short: float = _f(0.2)
    fv_vol_alpha_long: float = _f(0.05)
    sigma_min: float = _f(0.001)
    vol_ref: float = _f(0.028125)
    sigma_min_cadence_sec: float = _f(86400.0)
    vol_ref_cadence_sec: float = _f(86400.0)
    vol_ratio_min: float = _f(0.25)
    vol_ratio_max: float = _f(4.0)
    spread_vol_mult_coeff: float = _f(1.0)
    size_vol_mult_coeff: float = _f(2.0)
    band_vol_mult_coeff: float = _f(1.0)


@struct.dataclass
class RiskConfig:
    """§3.3 risk."""

    delta_hard_limit_usd_base: float = _f(100_000.0)
    delta_warn_frac: float = _f(0.7)
    basis_hard_limit_usd: float = _f(10_000.0)
    basis_warn_frac: float = _f(0.7)
    daily_loss_limit: float = _f(5_000.0)
    pnl_warn_frac: float = _f(0.5)
    spread_warn_mult: float = _f(1.5)
    q_warn_cap: float = _f(5.0)
    mm_margin_safety: float = _f(0.5)
    mm_max_leverage: float = _f(10.0)
    liq_warn_sigma: float = _f(5.0)
    liq_crit_sigma: float = _f(2.0)
    venue_dev_limit: float = _f(0.02)
    venue_dev_breach_count: int = _f(3)


@struct.dataclass
class FundingConfig:
    """§3.4 funding policy. Engine master switches are static."""

    funding_stale_ms: int = _f(600_000)
    funding_avoid_window_ms: int = _f(60_000)
    mm_funding_enabled: bool = _static(False)
    hedge_funding_enabled: bool = _static(False)
    exit_funding_enabled: bool = _static(False)


@struct.dataclass
class MMConfig:
    """§3.5 market making."""

    basis_weight: float = _f(0.3)
    funding_weight: float = _f(0.3)
    edge_local_min: float = _f(0.5)
    edge_vol_mult: float = _f(0.2)
    size_eta: float = _f(0.10)
    lambda_inv: float = _f(0.3)
    quote_horizon_sec: float = _f(30.0)
    funding_target_rate_scale: float = _f(0.001)
    funding_target_max_tao: float = _f(5.0)
    min_quote_lifetime_ms: int = _f(500)
    price_tol_ticks: float = _f(1.0)
    size_tol_rel: float = _f(0.10)
    quote_max_age_ms: int = _f(-1)  # -1 = unset ⇒ venue's effective stale_ms


@struct.dataclass
class HedgeConfig:
    """§3.6 hedge engine."""

    band_base: float = _f(5.625)
    band_vol_mult: float = _f(1.0)
    k_hedge: float = _f(0.5)
    max_step: float = _f(20.0)
    max_venue_tao_per_tick: float = _f(10.0)
    depth_fraction: float = _f(0.10)
    min_depth_usd: float = _f(500.0)
    funding_weight: float = _f(0.20)
    basis_weight: float = _f(0.20)
    funding_horizon_sec: float = _f(30.0)
    slippage_buffer: float = _f(0.05)
    guard_mult: float = _f(0.5)
    frag_penalty: float = _f(0.02)
    liq_warn_sigma: float = _f(5.0)
    liq_crit_sigma: float = _f(2.0)
    liq_penalty_scale: float = _f(0.10)
    margin_safety_buffer: float = _f(0.95)
    max_leverage: float = _f(10.0)
    chunk_size_tao: float = _f(0.0)
    chunk_convexity_cost_bps: float = _f(0.0)
    venue_weight_kappa: float = _f(0.05)  # SIMULATION §6.3 hedge venue preference κ_w


@struct.dataclass
class ExitConfig:
    """§3.7 cross-venue exit engine."""

    max_total_tao_per_tick: float = _f(10.0)
    max_venue_tao_per_tick: float = _f(6.0)
    min_global_abs_tao: float = _f(0.25)
    min_intent_size_tao: float = _f(0.01)
    edge_min_usd: float = _f(0.25)
    edge_vol_mult: float = _f(0.10)
    basis_weight: float = _f(0.20)
    funding_weight: float = _f(0.20)
    funding_horizon_sec: float = _f(30.0)
    fragmentation_penalty_per_tao: float = _f(0.05)
    fragmentation_reduction_bonus: float = _f(0.02)
    basis_risk_penalty_weight: float = _f(0.10)
    depth_fraction: float = _f(0.10)
    min_depth_usd: float = _f(500.0)
    slippage_linear_coeff: float = _f(0.01)
    slippage_quadratic_coeff: float = _f(0.001)
    slippage_spread_mult: float = _f(1.0)
    vol_buffer_mult: float = _f(0.5)
    enabled: bool = _static(True)


@struct.dataclass
class ToxicityConfig:
    """§3.8 toxicity / venue health."""

    vol_tox_scale: float = _f(0.5)
    tox_med_threshold: float = _f(0.6)
    tox_high_threshold: float = _f(0.9)
    markout_horizon_short_ms: int = _f(5000)
    markout_alpha: float = _f(0.1)
    markout_scale_usd_per_tao: float = _f(2.0)
    depth_fallback_grace_ms: int = _f(500)
    catastrophic_stale_ms: int = _f(120_000)
    flow_tox_scale: float = _f(50.0)
    spec_weights: np.ndarray = struct.field(
        default_factory=lambda: np.array([0.3, 0.3, 0.1, 0.15, 0.15])
    )  # [5] spec_v1 feature weights (D23 option)
    recovery_halflife_ms: int = _f(0)  # D10 option: 0 = no decay (reference)
    max_pending_per_venue: int = _static(100)


@struct.dataclass
class LoopConfig:
    """§3.9 loop cadences and misc."""

    main_loop_interval_ms: int = _f(250)
    hedge_loop_interval_ms: int = _f(500)
    risk_loop_interval_ms: int = _f(3000)
    fill_agg_interval_ms: int = _f(1000)
    initial_q_tao: float = _f(0.0)


@dataclasses.dataclass(frozen=True)
class Flags:
    """Static behaviour switches: every spec/reference divergence (D-numbers, §20) and ablation.

    Defaults follow the spec's [REC]; :func:`paraphina_jax.config.defaults.reference_parity_flags`
    gives the [IMPL] settings that reproduce the original engine.
    """

    stale_per_venue: bool = True  # D1
    kf_explicit_init: bool = True  # D3
    funding_accrual: bool = True  # D5
    kf_outlier_gate_after_init: bool = True  # D7
    sigma_floor_mode: str = "tick"  # D9: "tick" (one tick-scaled source) | "parity"
    toxicity_recovery: bool = False  # D10 option (canonical sim turns it on)
    quote_age_guard: bool = True  # D12
    quote_edge_includes_vbuf: bool = True  # D14
    mm_reduce_only_at_crit: bool = False  # D15
    mm_enforce_min_notional: bool = True  # D16
    hedge_band_mode: str = "ref"  # D18: "ref" | "spec"
    chunk_convexity_times_price: bool = True  # D19
    venue_dev_disable: bool = True  # D22
    toxicity_model: str = "markout_v2"  # D23: "markout_v2" | "spec_v1"
    size_cap_order: str = "ref"  # D24: "ref" | "spec"
    order_keep_dangerous_in_tol: bool = False  # D25: True = spec (keep within tolerance)
    paper_pnl_masks_other_kills: bool = False  # D27
    as_sigma_in_price_units: bool = False  # §7.2 dimensional note
    control_surface_mode: str = "rec"  # "rec" (spec appendix) | "ref_env" (H3 quirks)
    trade_mode: str = "live"  # live | paper | shadow | testnet ... (§3.11, §16.4)
    kill_best_effort: bool = False  # §16.5
    disable_vol_floor: bool = False  # ablations (SIMULATION §8)
    disable_fair_value_gating: bool = False
    disable_toxicity_gate: bool = False
    disable_risk_regime: bool = False

    @property
    def paper_mode(self) -> bool:
        return self.trade_mode in ("paper", "p")

    @property
    def shadow_warmup(self) -> bool:
        return self.trade_mode in ("shadow", "safe", "s", "paper", "p", "testnet", "tn", "t")


@struct.dataclass
class StrategyConfig:
    """The whole strategy configuration. `flags` and `profile` are static."""

    venues: VenueTable
    book: BookConfig = struct.field(default_factory=BookConfig)
    vol: VolConfig = struct.field(default_factory=VolConfig)
    risk: RiskConfig = struct.field(default_factory=RiskConfig)
    funding: FundingConfig = struct.field(default_factory=FundingConfig)
    mm: MMConfig = struct.field(default_factory=MMConfig)
    hedge: HedgeConfig = struct.field(default_factory=HedgeConfig)
    exit: ExitConfig = struct.field(default_factory=ExitConfig)
    toxicity: ToxicityConfig = struct.field(default_factory=ToxicityConfig)
    loop: LoopConfig = struct.field(default_factory=LoopConfig)
    flags: Flags = struct.field(pytree_node=False, default_factory=Flags)
    profile: str = struct.field(pytree_node=False, default="balanced")

    @property
    def n_venues(self) -> int:
        return self.venues.n


# The groups of StrategyConfig that hold scalar/array knobs, in spec order.
CONFIG_GROUPS: tuple[str, ...] = (
    "venues",
    "book",
    "vol",
    "risk",
    "funding",
    "mm",
    "hedge",
    "exit",
    "toxicity",
    "loop",
)
