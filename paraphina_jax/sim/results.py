"""Episode outputs: per-episode results reduced inside the scan and per-tick telemetry records.

Shapes are for ONE episode: `[]` scalar, `[N]` per venue, `[R]` per shield rule, `[T, ...]` per
tick. A batch adds a leading `[B]` (results) or `[K]` (telemetry of the first K episodes).
The JAX episode (`paraphina_jax.sim.episode`) and the float64 NumPy reference episode
(`paraphina_jax.reference.sim_episode`) fill the same classes, so they compare field by field.

Reductions (SIMULATION §4, §9.1): the drawdown tracker starts at the first finite total PnL
(peak = max(peak, e), max_dd = max(max_dd, peak − e)); peaks of |Δ$|, |B_gross|, |q_t| and
max_v toxicity are taken on the fresh state (after the initial inventory) and at the end of every
executed tick. Frozen ticks (after the kill, or past the horizon) change nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flax import struct

from paraphina_jax.strategy.types import FillBatch, TickOutput

Array = Any


@struct.dataclass
class EpisodeResults:
    """Per-episode results (`[B]` leading axis when batched)."""

    pnl_total: Array  # [] f  final daily_pnl_total, USD (realised + unrealised)
    pnl_realised: Array  # [] f  final realised PnL incl. fees and funding, USD
    pnl_unrealised: Array  # [] f  final unrealised PnL marked to the fair value, USD
    fees_usd: Array  # [] f  fees paid over the episode (negative = net rebates), USD
    funding_usd: Array  # [] f  funding paid over the episode (+ = paid), USD
    cash_usd: Array  # [] f  −Σ signed trade notional − fees − funding (incl. initial inventory)
    max_drawdown: Array  # [] f  max(peak − total PnL), USD
    kill_switch: Array  # [] bool
    kill_tick: Array  # [] i  tick the kill switch latched (−1 = never)
    kill_reason: Array  # [] i  KILL_* code (0 = None)
    ticks_executed: Array  # [] i  ticks run before freezing (kill tick included)
    final_regime: Array  # [] i  REGIME_* code at the end
    max_abs_delta_usd: Array  # [] f  max |dollar delta|, USD
    max_abs_basis_usd: Array  # [] f  max |gross basis| (as the Monte Carlo harness), USD
    max_abs_q_tao: Array  # [] f  max |q_global|, TAO
    max_venue_toxicity: Array  # [] f  max over ticks and venues of toxicity
    fills: Array  # [N] i  number of fills (maker + taker) per venue
    maker_fills: Array  # [N] i
    taker_fills: Array  # [N] i
    volume_tao: Array  # [N] f  traded TAO per venue
    fees_by_venue: Array  # [N] f  fees per venue, USD
    rejected: Array  # [N] i  orders rejected by the venue (post-only cross, outage, busy IOC)
    final_position_tao: Array  # [N] f  strategy position per venue at the end
    shield_interventions: Array  # [R] i  summed interventions per shield rule


@struct.dataclass
class TickRecord:
    """What one executed tick looked like (global `[]`, per venue `[N]`)."""

    t: Array  # [] i  tick index
    now_ms: Array  # [] i
    active: Array  # [] bool  the tick ran (False once frozen)
    # Global strategy state after the tick
    pnl_realised: Array  # [] f
    pnl_unrealised: Array  # [] f
    pnl_total: Array  # [] f
    risk_regime: Array  # [] i
    kill_switch: Array  # [] bool
    kill_reason: Array  # [] i
    q_global_tao: Array  # [] f
    dollar_delta_usd: Array  # [] f
    basis_usd: Array  # [] f
    basis_gross_usd: Array  # [] f
    fv_available: Array  # [] bool
    has_fair_value: Array  # [] bool
    fair_value: Array  # [] f  (valid where has_fair_value)
    sigma_eff: Array  # [] f
    healthy_venues_used_count: Array  # [] i
    healthy_venues_used: Array  # [N] bool
    delta_limit_usd: Array  # [] f
    basis_limit_warn_usd: Array  # [] f
    basis_limit_hard_usd: Array  # [] f
    cash_usd: Array  # [] f  running cash (see EpisodeResults.cash_usd)
    fees_usd: Array  # [] f  fees of this tick
    funding_usd: Array  # [] f  funding paid this tick
    # Per-venue strategy state after the tick
    status: Array  # [N] i  STATUS_* code
    toxicity: Array  # [N] f
    position_tao: Array  # [N] f
    dist_liq_sigma: Array  # [N] f
    margin_available_usd: Array  # [N] f
    mid: Array  # [N] f  strategy's venue mid (valid where has_mid)
    spread: Array  # [N] f
    has_mid: Array  # [N] bool
    last_mid_update_ms: Array  # [N] i  (valid where has_mid_update)
    has_mid_update: Array  # [N] bool
    # Market truth of the tick
    true_fair: Array  # [] f  latent S_t
    true_mid: Array  # [N] f
    outage: Array  # [N] bool
    vol_regime: Array  # [] i  market vol regime (0 normal, 1 high)
    # Execution of the tick
    maker_fills: Array  # [N] i
    taker_fills: Array  # [N] i
    rejected: Array  # [N] i


@struct.dataclass
class Telemetry:
    """Per-tick outputs of the first K episodes, stacked `[K, T, ...]` (`[T, ...]` for one)."""

    record: TickRecord  # [K, T, ...]
    actions: TickOutput  # [K, T, ...] post-shield actions (what was executed)
    proposed: TickOutput | None  # [K, T, ...] pre-shield actions (None with the identity shield)
    fills: FillBatch  # [K, T, 4N] fills in application order (MM, exits, hedges)
    interventions: Array  # [K, T, R] i  shield interventions per rule
    shield_facts: Any = None  # [K, T, ...] what the shield saw (a shield with `facts_fn`)


def episode_slice(tree: Any, k: int) -> Any:
    """Episode `k` of a `[B, ...]` or `[K, T, ...]` pytree, as NumPy leaves (None stays None)."""
    import jax

    return jax.tree.map(lambda x: np.asarray(x)[k], tree)


def update_drawdown(dd_init: Any, dd_peak: Any, dd_max: Any, total: Any) -> tuple[Any, Any, Any]:
    """The running max-drawdown tracker on one more total-PnL value (`[]` each, jnp): a non-finite
    total is skipped; the first finite one sets the peak. Returns `(init, peak, max_drawdown)`."""
    import jax.numpy as jnp

    fin = jnp.isfinite(total)
    peak = jnp.where(fin, jnp.where(dd_init, jnp.maximum(dd_peak, total), total), dd_peak)
    mdd = jnp.where(fin & dd_init, jnp.maximum(dd_max, peak - total), dd_max)
    return dd_init | fin, peak, mdd
