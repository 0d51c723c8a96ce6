"""Result tables of the batch harness: one row per run, grouped summaries (SIMULATION §10)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

DEFAULT_QUANTILES: tuple[float, ...] = (0.05, 0.5, 0.95)


def results_to_dataframe(results: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per run: `run_id`, the label columns, the metric columns, then `duration_s`,
    `returncode` and `run_dir`.

    A label key equal to a metric or bookkeeping name is an error (the row would be ambiguous).
    Runs with different label or metric keys give NaN where a key is missing.
    """
    rows = []
    for r in results:
        label = dict(r.get("label") or {})
        metrics = dict(r.get("metrics") or {})
        clash = (set(label) & set(metrics)) | (
            set(label) & {"run_id", "duration_s", "returncode", "run_dir"}
        )
        if clash:
            raise ValueError(
                f"run {r.get('run_id')!r}: label keys {sorted(clash)} clash with result columns"
            )
        rows.append(
            {
                "run_id": r.get("run_id"),
                **label,
                **metrics,
                "duration_s": r.get("duration_s"),
                "returncode": r.get("returncode"),
                "run_dir": r.get("run_dir"),
            }
        )
    return pd.DataFrame(rows)


def _qname(q: float) -> str:
    return f"p{int(round(q * 100)):02d}"


def aggregate_basic(
    df: pd.DataFrame,
    by: str | Sequence[str],
    metrics: Sequence[str] | None = None,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
) -> pd.DataFrame:
    """Group `df` by `by`; per numeric metric `<m>_mean`, `<m>_std` (sample, ddof 1; NaN for one
    run), `<m>_p05/p50/p95` (linear interpolation), plus `n_runs` and `kill_switch_frac`.

    Args:
      df: rows from :func:`results_to_dataframe` (or any frame with numeric metric columns).
      by: grouping column(s), e.g. a label.
      metrics: metric columns (default: every numeric column except the grouping ones,
        `returncode`, `duration_s` and `kill_switch`).
      quantiles: quantile levels in [0, 1].

    Returns:
      One row per group (group keys as columns, sorted by them).
    """
    keys = [by] if isinstance(by, str) else list(by)
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise KeyError(f"aggregate_basic: no column(s) {missing}")
    if metrics is None:
        skip = set(keys) | {"returncode", "duration_s", "kill_switch"}
        metrics = [
            c
            for c in df.columns
            if c not in skip
            and pd.api.types.is_numeric_dtype(df[c])
            and not pd.api.types.is_bool_dtype(df[c])
        ]
    out = []
    for key, g in df.groupby(keys, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = dict(zip(keys, key))
        row["n_runs"] = len(g)
        for m in metrics:
            x = pd.to_numeric(g[m], errors="coerce").to_numpy(dtype=np.float64)
            x = x[np.isfinite(x)]
            row[f"{m}_mean"] = float(np.mean(x)) if len(x) else np.nan
            row[f"{m}_std"] = float(np.std(x, ddof=1)) if len(x) > 1 else np.nan
            for q in quantiles:
                row[f"{m}_{_qname(q)}"] = float(np.quantile(x, q)) if len(x) else np.nan
        if "kill_switch" in g.columns:
            row["kill_switch_frac"] = float(g["kill_switch"].astype(float).mean())
        out.append(row)
    return pd.DataFrame(out)
