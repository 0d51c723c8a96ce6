"""Compile a parsed scenario into traced params and per-tick overlays (SIMULATION.md §2.3–§2.4).

Row `t` of every schedule array is the overlay of the episode's tick `t`, `t = 0 … T−1` with
`T = horizon.steps`; scenario windows index the same `t`. [REC] semantics of §2.4:

```text
spread_shock_bps x       spread_add_bps[t, v] = x                      every tick, every venue
depth_shock_pct p        depth_mult[t, v]    ×= 1 + p/100               every tick, every venue
cancel_storm             spread_mult, depth_mult ×=, toxicity_floor  on t ∈ [start, end]
venue_outage             outage[t, venue] = true                     on t ∈ [start, end]
funding_inversion        funding_sign[t, v] = −1                     on t ≥ trigger_step
funding_drift            funding_add[t, v] = drift·1e-4·max(0, t − start_step)   (per 8 h)
basis_spike              mid_mult[t, venue] = 1 + magnitude·1e-4     on t ∈ [trigger, trigger+duration)
latency_spike            latency_ms[t] = spike_ms on t ∈ [start, end], else the baseline latency
```
The funding rate a venue sees is `funding_sign·f8_v + funding_add`, with `f8_v` the baseline
(`ScenarioParams.funding_8h`, or the domain-randomised funding when that is on). Funding scenarios
get a baseline of +1e-4 per 8 h on every venue and the three engine funding switches.

Declared market values are realised as given ([REC], §14): a jump scenario keeps its vol, jumps,
fees and q0. `historical_stub` markets and the `replay_stub` engine fall back to the synthetic
model with a warning (§7.1).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from paraphina_jax.config.loader import apply_overrides
from paraphina_jax.config.types import StrategyConfig
from paraphina_jax.scenarios.types import (
    FUNDING_BASELINE_8H,
    PartialFillParams,
    ScenarioError,
    ScenarioParams,
    ScenarioSpec,
)
from paraphina_jax.sim.schedule import ScenarioSchedule, identity_schedule


def _check_venues(spec: ScenarioSpec, n_venues: int) -> None:
    for block in ("venue_outage", "basis_spike"):
        b = getattr(spec, block)
        if b is not None and not 0 <= b.venue_index < n_venues:
            raise ScenarioError(
                f"{spec.source}: {block}.venue_index: {b.venue_index} out of range "
                f"(allowed: integer in [0, {n_venues - 1}])"
            )


def _fallback_warnings(spec: ScenarioSpec) -> None:
    if spec.engine == "replay_stub":
        warnings.warn(
            f"{spec.source}: engine replay_stub is not available; running the synthetic market",
            stacklevel=3,
        )
    if spec.market_model.type == "historical_stub":
        warnings.warn(
            f"{spec.source}: market_model historical_stub (dataset "
            f"{spec.market_model.dataset_id!r}) is not available; running the synthetic market",
            stacklevel=3,
        )


def compile_params(spec: ScenarioSpec, n_venues: int) -> ScenarioParams:
    """Traced scalar/per-venue parameters of a scenario (leaves `[]` or `[N]`, NumPy)."""
    _check_venues(spec, n_venues)
    f = lambda x: np.asarray(x, dtype=np.float64)
    p = spec.market_model.effective_synthetic().params
    micro = spec.microstructure_model
    pf = spec.partial_fill
    baseline = FUNDING_BASELINE_8H if spec.is_funding_scenario else 0.0
    return ScenarioParams(
        vol=f(p.vol),
        drift=f(p.drift),
        jump_intensity=f(p.jump_intensity),
        jump_sigma=f(p.jump_sigma),
        dt_seconds=f(spec.horizon.dt_seconds),
        dt_ms=np.asarray(spec.horizon.dt_ms, dtype=np.int64),
        maker_fee_bps=np.full(n_venues, micro.fees_bps_maker, dtype=np.float64),
        taker_fee_bps=np.full(n_venues, micro.fees_bps_taker, dtype=np.float64),
        latency_ms=f(micro.latency_ms),
        init_q_tao=f(spec.initial_state.init_q_tao),
        funding_8h=np.full(n_venues, baseline, dtype=np.float64),
        partial_fill=PartialFillParams(
            enabled=np.asarray(pf.enabled, dtype=bool),
            base_fill_prob=f(pf.base_fill_prob),
            latency_sensitivity=f(pf.latency_sensitivity),
            latency_ref_ms=f(pf.latency_ref_ms),
            depth_ref=f(pf.depth_ref),
            min_fill_frac=f(pf.min_fill_frac),
            max_fill_frac=f(pf.max_fill_frac),
            apply_to_mm=np.asarray(pf.apply_to_mm, dtype=bool),
        ),
    )


def compile_schedule(spec: ScenarioSpec, n_venues: int) -> ScenarioSchedule:
    """Per-tick overlays `[T, N]` / `[T]` (NumPy float64, bool outage) with the §2.4 semantics."""
    _check_venues(spec, n_venues)
    steps = spec.horizon.steps
    base = identity_schedule(steps, n_venues, latency_ms=spec.microstructure_model.latency_ms)
    spread_add = base.spread_add_bps
    spread_mult = base.spread_mult
    depth_mult = base.depth_mult
    outage = base.outage
    funding_sign = base.funding_sign
    funding_add = base.funding_add
    mid_mult = base.mid_mult
    latency = base.latency_ms
    tox_floor = base.toxicity_floor
    t = np.arange(steps)

    if spec.spread_shock_bps is not None:
        spread_add[:, :] = spec.spread_shock_bps
    if spec.depth_shock_pct is not None:
        depth_mult *= 1.0 + spec.depth_shock_pct / 100.0
    if (cs := spec.cancel_storm) is not None:
        win = slice(cs.start_step, cs.end_step + 1)
        spread_mult[win, :] *= cs.spread_mult
        depth_mult[win, :] *= cs.depth_mult
        tox_floor[win] = cs.toxicity_floor
    if (vo := spec.venue_outage) is not None:
        outage[vo.start_step : vo.end_step + 1, vo.venue_index] = True
    if (fi := spec.funding_inversion) is not None:
        funding_sign[fi.trigger_step :, :] = -1.0
    if (fd := spec.funding_drift) is not None:
        ramp = fd.drift_bps_per_step * 1e-4 * np.maximum(0, t - fd.start_step)
        funding_add[:, :] = ramp[:, None]
    if (bs := spec.basis_spike) is not None:
        win = slice(bs.trigger_step, bs.trigger_step + bs.duration_steps)
        mid_mult[win, bs.venue_index] = 1.0 + bs.magnitude_bps / 1e4
    if (ls := spec.latency_spike) is not None:
        latency[ls.start_step : ls.end_step + 1] = ls.spike_ms
    return ScenarioSchedule(
        spread_add_bps=spread_add,
        spread_mult=spread_mult,
        depth_mult=depth_mult,
        outage=outage,
        funding_sign=funding_sign,
        funding_add=funding_add,
        mid_mult=mid_mult,
        latency_ms=latency,
        toxicity_floor=tox_floor,
    )


def compile_scenario(spec: ScenarioSpec, n_venues: int) -> tuple[ScenarioParams, ScenarioSchedule]:
    """Compile a scenario for `n_venues` venues.

    Returns:
        `(params, schedule)`: traced :class:`ScenarioParams` (leaves `[]`/`[N]`) and the
        :class:`ScenarioSchedule` of `T = spec.horizon.steps` rows. Scenarios of the same horizon
        and venue count give identical tree structures, shapes and dtypes. The host-side facts
        come from the spec: `spec.profile`, `spec.seeds`, `spec.n_steps`,
        `spec.funding_switches`, and :func:`scenario_overrides` for the strategy config.

    Raises:
        ScenarioError: a venue index outside `[0, n_venues − 1]`.
    """
    _fallback_warnings(spec)
    return compile_params(spec, n_venues), compile_schedule(spec, n_venues)


def scenario_overrides(
    spec: ScenarioSpec, n_venues: int, *, set_vol_ref: bool = True
) -> dict[str, Any]:
    """Strategy-config overrides a scenario carries (dotted keys for `apply_overrides`).

    As the original evaluator (STRATEGY §3.11): fees on every venue, the initial inventory and,
    when `vol > 0` and `set_vol_ref`, VOL_REF ← vol. An `adversarial_params` block also sets the
    daily loss limit (RESEARCH §4: every search dimension reaches the simulator).
    """
    micro = spec.microstructure_model
    out: dict[str, Any] = {
        "venues.maker_fee_bps": np.full(n_venues, micro.fees_bps_maker),
        "venues.taker_fee_bps": np.full(n_venues, micro.fees_bps_taker),
        "loop.initial_q_tao": spec.initial_state.init_q_tao,
    }
    vol = spec.market_model.effective_synthetic().params.vol
    if set_vol_ref and vol > 0.0:
        out["vol.vol_ref"] = vol
    if spec.adversarial_params is not None:
        out["risk.daily_loss_limit"] = spec.adversarial_params.daily_loss_limit
    return out


def scenario_config(
    spec: ScenarioSpec, cfg: StrategyConfig, *, set_vol_ref: bool = True
) -> StrategyConfig:
    """`cfg` with the scenario's overrides and funding switches applied (validated).

    The profile is not chosen here: build `cfg` from the resolved profile first
    (`config_from_env(cli_profile, env, scenario_profile=spec.profile)`, precedence CLI > env >
    scenario > balanced, STRATEGY §3.10).
    """
    out = apply_overrides(
        cfg,
        scenario_overrides(spec, cfg.n_venues, set_vol_ref=set_vol_ref),
        source=f"scenario {spec.source}",
    )
    if spec.funding_switches:
        out = out.replace(funding=out.funding.replace(**dict.fromkeys(spec.funding_switches, True)))
    return out


def describe_shocks(spec: ScenarioSpec) -> str:
    """One-line summary of a scenario's overlays ("-" when none), for tables."""
    parts: list[str] = []
    if spec.spread_shock_bps is not None:
        parts.append(f"spread {spec.spread_shock_bps:+g} bp")
    if spec.depth_shock_pct is not None:
        parts.append(f"depth {spec.depth_shock_pct:+g}%")
    if (vo := spec.venue_outage) is not None:
        parts.append(f"venue {vo.venue_index} out steps {vo.start_step}-{vo.end_step}")
    if (fi := spec.funding_inversion) is not None:
        parts.append(f"funding sign flip at step {fi.trigger_step}")
    if (fd := spec.funding_drift) is not None:
        parts.append(f"funding {fd.drift_bps_per_step:+g} bp/step from step {fd.start_step}")
    if (bs := spec.basis_spike) is not None:
        last = bs.trigger_step + bs.duration_steps - 1
        parts.append(
            f"venue {bs.venue_index} mid {bs.magnitude_bps:+g} bp steps {bs.trigger_step}-{last}"
        )
    if (ls := spec.latency_spike) is not None:
        parts.append(f"latency {ls.spike_ms:g} ms steps {ls.start_step}-{ls.end_step}")
    if (cs := spec.cancel_storm) is not None:
        parts.append(
            f"cancel storm steps {cs.start_step}-{cs.end_step} "
            f"(spread x{cs.spread_mult:g}, depth x{cs.depth_mult:g})"
        )
    if spec.partial_fill.enabled:
        parts.append(f"partial fills p={spec.partial_fill.base_fill_prob:g}")
    if (ap := spec.adversarial_params) is not None:
        parts.append(f"adversarial loss limit {ap.daily_loss_limit:g}")
    return "; ".join(parts) if parts else "-"
