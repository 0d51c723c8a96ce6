"""From the episode engine's outputs (`paraphina_jax.sim.results`) to the host report types.

* :func:`episode_table` — `EpisodeResults [B]` → :class:`EpisodeTable` (one column per metric,
  per-venue arrays split into `<name>_<venue>` columns, kill reasons as names);
* :func:`tick_series` — one episode of `Telemetry [K, T]` → :class:`TickSeries` (cut at the
  last executed tick), for the plots.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from paraphina_jax.config.types import KILL_REASON_NAMES, PURPOSE_EXIT, PURPOSE_HEDGE
from paraphina_jax.report.types import CORE_COLUMNS, EpisodeTable, TickSeries

# EpisodeResults fields `[N]` per venue -> column prefix
_PER_VENUE = {
    "fills": "fills",
    "maker_fills": "maker_fills",
    "taker_fills": "taker_fills",
    "volume_tao": "volume_tao",
    "fees_by_venue": "fees_usd",
    "rejected": "rejected",
    "final_position_tao": "final_q_tao",
}
_SCALARS = (
    "pnl_total",
    "pnl_realised",
    "pnl_unrealised",
    "max_drawdown",
    "kill_switch",
    "kill_tick",
    "ticks_executed",
    "max_abs_delta_usd",
    "max_abs_basis_usd",
    "max_abs_q_tao",
    "max_venue_toxicity",
    "fees_usd",
    "funding_usd",
    "cash_usd",
)


def episode_table(results: Any, venue_names: tuple[str, ...]) -> EpisodeTable:
    """Host table of a batch's results.

    Args:
      results: `EpisodeResults` with leading `[B]` (NumPy or device arrays).
      venue_names: N venue ids, used in the per-venue column names.
    Returns:
      :class:`EpisodeTable` with the core columns, fees/funding/cash, per-venue columns
      (`fills_<venue>`, `volume_tao_<venue>`, `fees_usd_<venue>`, …) and one
      `shield_<r>` column per shield rule plus their total `shield_interventions`.
    """
    r = {k: np.asarray(getattr(results, k)) for k in results.__dataclass_fields__}
    b = int(r["pnl_total"].shape[0])
    cols: dict[str, np.ndarray] = {"episode": np.arange(b, dtype=np.int64)}
    for k in _SCALARS:
        cols[k] = r[k]
    reasons = np.asarray(KILL_REASON_NAMES, dtype=object)
    cols["kill_reason"] = reasons[r["kill_reason"].astype(np.int64)]
    cols["kill_switch"] = r["kill_switch"].astype(bool)
    cols["kill_tick"] = r["kill_tick"].astype(np.int64)
    cols["ticks_executed"] = r["ticks_executed"].astype(np.int64)
    for field, prefix in _PER_VENUE.items():
        arr = r[field]
        for v, name in enumerate(venue_names):
            cols[f"{prefix}_{name}"] = arr[:, v]
    shield = r["shield_interventions"].reshape(b, -1)
    for i in range(shield.shape[1]):
        cols[f"shield_{i}"] = shield[:, i].astype(np.int64)
    cols["shield_interventions"] = shield.sum(axis=1).astype(np.int64)
    ordered = {k: cols[k] for k in CORE_COLUMNS}
    ordered.update({k: v for k, v in cols.items() if k not in ordered})
    return EpisodeTable(columns=ordered, final_regime=r["final_regime"].astype(np.int64))


def _signed_volume(fills: Any, purpose: int) -> np.ndarray:
    """`[T]` signed volume (+ buy) of the fills of one purpose, from a `[T, K]` FillBatch."""
    ok = np.asarray(fills.valid) & (np.asarray(fills.purpose) == purpose)
    signed = np.asarray(fills.side, dtype=np.float64) * np.asarray(fills.size, dtype=np.float64)
    return np.where(ok, signed, 0.0).sum(axis=-1)


def tick_series(
    telemetry: Any,
    episode: int,
    dt_ms: float,
    venue_names: tuple[str, ...],
    kill_tick: int = -1,
) -> TickSeries:
    """Per-tick trace of episode `episode` of a `Telemetry [K, T]`, up to its last executed tick.

    The fair value is the strategy's (NaN where it has none); mids are the venues' true book
    mids; hedge and exit activity are the signed fills of those purposes.
    """
    rec = telemetry.record
    fills = telemetry.fills

    def ep(x: Any) -> np.ndarray:
        return np.asarray(x)[episode]

    active = ep(rec.active).astype(bool)
    n_exec = int(active.sum())
    n_exec = max(n_exec, 1)
    sl = slice(0, n_exec)
    t = ep(rec.t)[sl].astype(np.float64)
    fv = np.where(ep(rec.has_fair_value)[sl], ep(rec.fair_value)[sl], np.nan).astype(np.float64)
    ep_fills = type(fills)(**{k: ep(getattr(fills, k))[sl] for k in fills.__dataclass_fields__})
    return TickSeries(
        time_s=t * float(dt_ms) / 1000.0,
        fair_value=fv,
        mid=ep(rec.true_mid)[sl].astype(np.float64),
        q_venue=ep(rec.position_tao)[sl].astype(np.float64),
        q_global=ep(rec.q_global_tao)[sl].astype(np.float64),
        pnl_total=ep(rec.pnl_total)[sl].astype(np.float64),
        pnl_realised=ep(rec.pnl_realised)[sl].astype(np.float64),
        regime=ep(rec.risk_regime)[sl].astype(np.int64),
        hedge_tao=_signed_volume(ep_fills, PURPOSE_HEDGE),
        exit_tao=_signed_volume(ep_fills, PURPOSE_EXIT),
        kill_tick=int(kill_tick),
        venue_names=tuple(venue_names),
        episode=int(episode),
    )
