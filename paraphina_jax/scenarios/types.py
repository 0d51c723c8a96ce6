"""Typed scenario files (SIMULATION.md §7.1, §2.4, §14): frozen specs and compiled params.

A scenario file (`scenario_version: 1`) is parsed by :mod:`paraphina_jax.scenarios.schema` into a
frozen :class:`ScenarioSpec`; :func:`paraphina_jax.scenarios.compile.compile_scenario` turns a spec
into a :class:`ScenarioParams` pytree (traced leaves only) and a
:class:`paraphina_jax.sim.schedule.ScenarioSchedule` (per-tick `[T, N]` overlays).

Block defaults follow §14 ("defaults apply per block"): an absent block takes the defaults given
here; a present block must give every field, except `market_model.synthetic.params` (a missing
field is 0) and `invariants` (a missing field is `allowed` / `disabled`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flax import struct

from paraphina_jax.config.defaults import parse_profile
from paraphina_jax.config.validate import ConfigError

Array = Any

SCENARIO_VERSION = 1
U64_MOD = 2**64
# Baseline funding per 8 h on every venue for funding scenarios without another baseline (§2.4).
FUNDING_BASELINE_8H = 1e-4
# FundingConfig switches turned on for funding scenarios (§2.4, STRATEGY §3.4).
FUNDING_SWITCHES: tuple[str, ...] = (
    "mm_funding_enabled",
    "hedge_funding_enabled",
    "exit_funding_enabled",
)
ENGINES: tuple[str, ...] = ("rl_sim_env", "core_sim", "replay_stub")
MARKET_TYPES: tuple[str, ...] = ("synthetic", "historical_stub")
PROCESSES: tuple[str, ...] = ("gbm", "jump_diffusion_stub")
EXPECT_KILL: tuple[str, ...] = ("always", "never", "allowed")
LINEARITY: tuple[str, ...] = ("enabled", "disabled")
FUNDING_INVERSION_TYPES: tuple[str, ...] = ("sign_flip",)
CATEGORIES: tuple[str, ...] = (
    "vol_regime",
    "liquidity_shock",
    "venue_outage",
    "funding_inversion",
    "basis_spike",
)


class ScenarioError(ConfigError):
    """Invalid scenario file; the one-line message names the file, the key path and the range."""


@dataclasses.dataclass(frozen=True)
class Horizon:
    """`horizon` block: episode length in steps of `dt_seconds` (default {1000, 1.0})."""

    steps: int = 1000
    dt_seconds: float = 1.0

    @property
    def dt_ms(self) -> int:
        """`trunc(dt_seconds·1000)` (§14)."""
        return int(self.dt_seconds * 1000.0)


@dataclasses.dataclass(frozen=True)
class RngSpec:
    """`rng` block (default {42, 1}); seeds are `base_seed + k`, k < num_seeds, u64 wrap."""

    base_seed: int = 42
    num_seeds: int = 1

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple((self.base_seed + k) % U64_MOD for k in range(self.num_seeds))


@dataclasses.dataclass(frozen=True)
class InitialState:
    """`initial_state` block (default {balanced, 0}); `risk_profile` as written in the file."""

    risk_profile: str = "balanced"
    init_q_tao: float = 0.0


@dataclasses.dataclass(frozen=True)
class SyntheticParams:
    """`market_model.synthetic.params`: per-day vol and drift, jumps per step, jump σ (§2.3)."""

    vol: float = 0.0
    drift: float = 0.0
    jump_intensity: float = 0.0
    jump_sigma: float = 0.0


@dataclasses.dataclass(frozen=True)
class SyntheticModel:
    """`market_model.synthetic`: `process` and its `params`."""

    process: str = "gbm"
    params: SyntheticParams = dataclasses.field(default_factory=lambda: SyntheticParams(vol=0.015))


@dataclasses.dataclass(frozen=True)
class MarketModel:
    """`market_model` block (default synthetic gbm, vol 0.015, drift 0, no jumps).

    `historical_stub` falls back to the synthetic model (this block's `synthetic` if given, else
    the default) with a warning at compile time (§7.1).
    """

    type: str = "synthetic"
    synthetic: SyntheticModel | None = dataclasses.field(default_factory=SyntheticModel)
    dataset_id: str | None = None  # historical_stub.dataset_id

    def effective_synthetic(self) -> SyntheticModel:
        return self.synthetic if self.synthetic is not None else SyntheticModel()


@dataclasses.dataclass(frozen=True)
class Microstructure:
    """`microstructure_model` block (default {0, 0, 0}); applied to ALL venues."""

    fees_bps_maker: float = 0.0
    fees_bps_taker: float = 0.0
    latency_ms: float = 0.0


@dataclasses.dataclass(frozen=True)
class Invariants:
    """`invariants` block (default {allowed, disabled}); checked per seed by the evaluator."""

    expect_kill_switch: str = "allowed"
    pnl_linearity_check: str = "disabled"


@dataclasses.dataclass(frozen=True)
class PartialFill:
    """`partial_fill` block (§3.4; default disabled {false, 1, 0, 50, 10000, 1, 1, false})."""

    enabled: bool = False
    base_fill_prob: float = 1.0
    latency_sensitivity: float = 0.0
    latency_ref_ms: float = 50.0
    depth_ref: float = 10_000.0
    min_fill_frac: float = 1.0
    max_fill_frac: float = 1.0
    apply_to_mm: bool = False


@dataclasses.dataclass(frozen=True)
class LatencySpike:
    """`latency_spike`: latency = spike_ms on steps [start_step, end_step] (inclusive)."""

    spike_ms: float
    start_step: int
    end_step: int


@dataclasses.dataclass(frozen=True)
class CancelStorm:
    """`cancel_storm`: on steps [start, end] (inclusive) spreads ×, depth ×, toxicity floor."""

    start_step: int
    end_step: int
    spread_mult: float
    depth_mult: float
    toxicity_floor: float


@dataclasses.dataclass(frozen=True)
class VenueOutage:
    """`venue_outage`: venue `venue_index` out on steps [start_step, end_step] (inclusive)."""

    venue_index: int
    start_step: int
    end_step: int


@dataclasses.dataclass(frozen=True)
class FundingInversion:
    """`funding_inversion`: `f8_v ← −f8_v` on every venue from `trigger_step` on."""

    type: str
    trigger_step: int


@dataclasses.dataclass(frozen=True)
class FundingDrift:
    """`funding_drift`: `f8_v(t) = f8_v(0) + drift_bps_per_step·1e-4·max(0, t − start_step)`."""

    drift_bps_per_step: float
    start_step: int


@dataclasses.dataclass(frozen=True)
class BasisSpike:
    """`basis_spike`: venue mid × (1 + magnitude_bps·1e-4) on [trigger, trigger + duration)."""

    magnitude_bps: float
    venue_index: int
    trigger_step: int
    duration_steps: int


@dataclasses.dataclass(frozen=True)
class AdversarialParams:
    """CEM extension (RESEARCH §4.3). `vol_multiplier` is a record only: the file's `vol` already
    equals base vol × multiplier. `daily_loss_limit` (USD) overrides the strategy's loss limit."""

    vol_multiplier: float
    daily_loss_limit: float


@dataclasses.dataclass(frozen=True)
class ScenarioSpec:
    """A parsed, validated scenario file. `source` (the file path) is used in messages only."""

    scenario_id: str
    scenario_version: int = SCENARIO_VERSION
    engine: str = "rl_sim_env"
    horizon: Horizon = dataclasses.field(default_factory=Horizon)
    rng: RngSpec = dataclasses.field(default_factory=RngSpec)
    initial_state: InitialState = dataclasses.field(default_factory=InitialState)
    market_model: MarketModel = dataclasses.field(default_factory=MarketModel)
    microstructure_model: Microstructure = dataclasses.field(default_factory=Microstructure)
    invariants: Invariants = dataclasses.field(default_factory=Invariants)
    partial_fill: PartialFill = dataclasses.field(default_factory=PartialFill)
    latency_spike: LatencySpike | None = None
    cancel_storm: CancelStorm | None = None
    spread_shock_bps: float | None = None
    depth_shock_pct: float | None = None
    venue_outage: VenueOutage | None = None
    funding_inversion: FundingInversion | None = None
    funding_drift: FundingDrift | None = None
    basis_spike: BasisSpike | None = None
    adversarial_params: AdversarialParams | None = None
    source: str = dataclasses.field(default="<memory>", compare=False)

    @property
    def profile(self) -> str:
        """Canonical risk profile name of `initial_state.risk_profile` (validated at parse)."""
        canon = parse_profile(self.initial_state.risk_profile)
        return canon if canon is not None else "balanced"

    @property
    def seeds(self) -> tuple[int, ...]:
        """Episode seeds `base_seed + k`, k = 0 … num_seeds − 1 (u64 wrap, SIMULATION §6.9)."""
        return self.rng.seeds

    @property
    def n_steps(self) -> int:
        return self.horizon.steps

    @property
    def is_funding_scenario(self) -> bool:
        return self.funding_inversion is not None or self.funding_drift is not None

    @property
    def funding_switches(self) -> tuple[str, ...]:
        """`FundingConfig` switches to turn on (all three for funding scenarios, else none)."""
        return FUNDING_SWITCHES if self.is_funding_scenario else ()

    @property
    def category(self) -> str:
        """Category label of §14, derived from the shock blocks (`vol_regime` when none)."""
        if self.basis_spike is not None:
            return "basis_spike"
        if self.is_funding_scenario:
            return "funding_inversion"
        if self.venue_outage is not None:
            return "venue_outage"
        if (
            self.spread_shock_bps is not None
            or self.depth_shock_pct is not None
            or self.cancel_storm is not None
        ):
            return "liquidity_shock"
        return "vol_regime"

    def to_dict(self) -> dict[str, Any]:
        """The scenario with defaults filled (the shape of `config_resolved.json`, §14).

        Optional blocks appear only when present; parsing the result gives back an equal spec.
        """
        mm = self.market_model
        market: dict[str, Any] = {"type": mm.type}
        if mm.synthetic is not None:
            market["synthetic"] = {
                "process": mm.synthetic.process,
                "params": dataclasses.asdict(mm.synthetic.params),
            }
        if mm.dataset_id is not None:
            market["historical_stub"] = {"dataset_id": mm.dataset_id}
        out: dict[str, Any] = {
            "scenario_id": self.scenario_id,
            "scenario_version": self.scenario_version,
            "engine": self.engine,
            "horizon": dataclasses.asdict(self.horizon),
            "rng": dataclasses.asdict(self.rng),
            "initial_state": dataclasses.asdict(self.initial_state),
            "market_model": market,
            "microstructure_model": dataclasses.asdict(self.microstructure_model),
            "invariants": dataclasses.asdict(self.invariants),
            "partial_fill": dataclasses.asdict(self.partial_fill),
        }
        for name in (
            "latency_spike",
            "cancel_storm",
            "spread_shock_bps",
            "depth_shock_pct",
            "venue_outage",
            "funding_inversion",
            "funding_drift",
            "basis_spike",
            "adversarial_params",
        ):
            val = getattr(self, name)
            if val is None:
                continue
            out[name] = dataclasses.asdict(val) if dataclasses.is_dataclass(val) else val
        return out


@struct.dataclass
class PartialFillParams:
    """Partial-fill model of SIMULATION §3.4 as traced scalars (every leaf `[]`)."""

    enabled: Array  # [] bool
    base_fill_prob: Array  # [] f  in [0, 1]
    latency_sensitivity: Array  # [] f  in [0, 1]
    latency_ref_ms: Array  # [] f  > 0
    depth_ref: Array  # [] f  USD > 0
    min_fill_frac: Array  # [] f  in [0, 1]
    max_fill_frac: Array  # [] f  in [min_fill_frac, 1]
    apply_to_mm: Array  # [] bool


@struct.dataclass
class ScenarioParams:
    """Traced per-scenario market/execution parameters (no static fields).

    Every scenario of the same venue count compiles to the same tree structure, shapes and dtypes,
    so one compiled episode program serves them all and a batch of scenarios can be stacked and
    vmapped. Host-only facts (risk profile, seeds, horizon, funding switches, config overrides)
    live on :class:`ScenarioSpec` (`spec.profile`, `spec.seeds`, `spec.n_steps`,
    `spec.funding_switches`) and in :func:`paraphina_jax.scenarios.compile.scenario_overrides`.
    Leaves are NumPy float64 (bool / int64 where noted); the consumer casts.
    """

    vol: Array  # [] f  price vol per day (market model §2.3)
    drift: Array  # [] f  drift per day
    jump_intensity: Array  # [] f  expected jumps per step (0 for gbm)
    jump_sigma: Array  # [] f  σ of the log jump size (0 for gbm)
    dt_seconds: Array  # [] f  step length, s
    dt_ms: Array  # [] int64  trunc(dt_seconds·1000)
    maker_fee_bps: Array  # [N] f  fees_bps_maker on every venue
    taker_fee_bps: Array  # [N] f  fees_bps_taker on every venue
    latency_ms: Array  # [] f  baseline latency (per-tick value in schedule.latency_ms)
    init_q_tao: Array  # [] f  initial inventory injected on venue 0 (§5)
    funding_8h: Array  # [N] f  baseline funding rate per 8 h (used when DR funding is off)
    partial_fill: PartialFillParams
