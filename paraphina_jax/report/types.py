"""Host-side report types of `paraphina-jax run`: plain NumPy arrays, no JAX.

Shapes: `[B]` per episode, `[T]` per tick, `[T, N]` per tick × venue. These objects are built
once from the episode engine's device outputs (see :mod:`paraphina_jax.report.adapt`) and feed the
stdout summary, the Parquet table and the plots.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

# Per-episode columns every results table carries, in this order (further columns may follow:
# per-venue fills and fees, shield interventions, PnL parts).
CORE_COLUMNS: tuple[str, ...] = (
    "episode",
    "pnl_total",
    "pnl_realised",
    "pnl_unrealised",
    "max_drawdown",
    "kill_switch",
    "kill_tick",
    "kill_reason",
    "ticks_executed",
    "max_abs_delta_usd",
    "max_abs_basis_usd",
    "max_abs_q_tao",
    "max_venue_toxicity",
)


@dataclasses.dataclass(frozen=True)
class EpisodeTable:
    """Per-episode results of one batch.

    Attributes:
      columns: column name -> `[B]` array; starts with :data:`CORE_COLUMNS` (`kill_tick` is −1
        when the episode was not killed, `kill_reason` holds names such as "None").
      final_regime: `[B]` int, risk regime index at the end of each episode.
    """

    columns: Mapping[str, np.ndarray]  # name -> [B]
    final_regime: np.ndarray  # [B] int

    def __post_init__(self) -> None:
        missing = [c for c in CORE_COLUMNS if c not in self.columns]
        if missing:
            raise ValueError(f"EpisodeTable: missing columns {missing}")
        sizes = {len(v) for v in self.columns.values()}
        if len(sizes) != 1:
            raise ValueError(f"EpisodeTable: columns of different lengths {sorted(sizes)}")

    @property
    def n_episodes(self) -> int:
        return len(self.columns["episode"])

    def column(self, name: str) -> np.ndarray:
        """One column, `[B]`."""
        return np.asarray(self.columns[name])

    def mc_records(self, seed: int) -> list[dict]:
        """Rows in the Monte Carlo record form of SIMULATION §9.2 (for the §9.4 SUMMARY block).

        `run_index` is the episode index and `seed` the run's base seed (episode `i` uses the key
        `fold_in(PRNGKey(seed), i)`).
        """
        c = self.columns
        out = []
        for i in range(self.n_episodes):
            kt = int(c["kill_tick"][i])
            out.append(
                {
                    "schema_version": 1,
                    "run_index": int(c["episode"][i]),
                    "seed": int(seed),
                    "pnl_total": float(c["pnl_total"][i]),
                    "max_drawdown": float(c["max_drawdown"][i]),
                    "kill_switch": bool(c["kill_switch"][i]),
                    "kill_tick": kt if kt >= 0 else None,
                    "kill_reason": str(c["kill_reason"][i]),
                    "ticks_executed": int(c["ticks_executed"][i]),
                    "max_abs_delta_usd": float(c["max_abs_delta_usd"][i]),
                    "max_abs_basis_usd": float(c["max_abs_basis_usd"][i]),
                    "max_abs_q_tao": float(c["max_abs_q_tao"][i]),
                    "max_venue_toxicity": float(c["max_venue_toxicity"][i]),
                }
            )
        return out


@dataclasses.dataclass(frozen=True)
class TickSeries:
    """Per-tick trace of one episode, for the plots.

    Attributes:
      time_s: `[T]` simulated seconds since the episode start.
      fair_value: `[T]` the strategy's fair value (NaN where unavailable).
      mid: `[T, N]` venue mids.
      q_venue: `[T, N]` inventory per venue, TAO.
      q_global: `[T]` global inventory, TAO.
      pnl_total: `[T]` daily PnL total, USD.
      pnl_realised: `[T]` realised part, USD.
      regime: `[T]` int risk regime (0 Normal, 1 Warning, 2 HardLimit).
      hedge_tao: `[T]` signed hedge volume filled at each tick, TAO (+ buy).
      exit_tao: `[T]` signed exit volume filled at each tick, TAO (+ buy).
      kill_tick: tick of the kill (−1 if none).
      venue_names: N venue names.
      episode: index of the episode in its batch.
    """

    time_s: np.ndarray  # [T]
    fair_value: np.ndarray  # [T]
    mid: np.ndarray  # [T, N]
    q_venue: np.ndarray  # [T, N]
    q_global: np.ndarray  # [T]
    pnl_total: np.ndarray  # [T]
    pnl_realised: np.ndarray  # [T]
    regime: np.ndarray  # [T] int
    hedge_tao: np.ndarray  # [T]
    exit_tao: np.ndarray  # [T]
    kill_tick: int
    venue_names: tuple[str, ...]
    episode: int = 0

    def __post_init__(self) -> None:
        t = len(self.time_s)
        n = len(self.venue_names)
        want = {k: (t,) for k in ("fair_value", "q_global", "pnl_total", "pnl_realised")}
        want.update(regime=(t,), hedge_tao=(t,), exit_tao=(t,), mid=(t, n), q_venue=(t, n))
        for name, shape in want.items():
            got = np.shape(getattr(self, name))
            if got != shape:
                raise ValueError(f"TickSeries.{name}: shape {got} (want {shape})")


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What a run was: shown in the stdout header and stored in the resolved config."""

    scenario_id: str
    profile: str
    profile_source: str
    episodes: int
    ticks: int
    dt_ms: float
    seed: int
    backend: str
    dtype: str
    run_dir: str
    devices: int = 1  # devices the episode batch was sharded over
