"""The Monte Carlo harness's outputs (SIMULATION.md §9.2, §9.4, §13.6) and the core runner's
Daily Summary block (§10): exact field names, order and formats of the original."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from paraphina_jax.config.types import KILL_REASON_NAMES, REGIME_NAMES
from paraphina_jax.stats.tail import finite_sorted, quantile, tail_risk_block, welford

MC_VERSION = "0.1.0"
PROFILE_DISPLAY = {
    "balanced": "Balanced",
    "conservative": "Conservative",
    "aggressive": "Aggressive",
}


def run_records(metrics: Any, seeds: Sequence[int], start_index: int = 0) -> list[dict]:
    """mc_runs.jsonl records (schema_version 1, fields in the §9.2 order) from batched metrics."""
    m = {k: np.asarray(getattr(metrics, k)) for k in metrics.__dataclass_fields__}
    out = []
    for i, seed in enumerate(seeds):
        kill = bool(m["kill_switch"][i])
        out.append(
            {
                "schema_version": 1,
                "run_index": start_index + i,
                "seed": int(seed),
                "pnl_total": float(m["pnl_total"][i]),
                "max_drawdown": float(m["max_drawdown"][i]),
                "kill_switch": kill,
                "kill_tick": int(m["kill_tick"][i]) if int(m["kill_tick"][i]) >= 0 else None,
                "kill_reason": KILL_REASON_NAMES[int(m["kill_reason"][i])],
                "ticks_executed": int(m["ticks_executed"][i]),
                "max_abs_delta_usd": float(m["max_abs_delta_usd"][i]),
                "max_abs_basis_usd": float(m["max_abs_basis_usd"][i]),
                "max_abs_q_tao": float(m["max_abs_q_tao"][i]),
                "max_venue_toxicity": float(m["max_venue_toxicity"][i]),
            }
        )
    return out


def _stats(xs: Sequence[float], quantiles: bool) -> dict:
    x = [float(v) for v in xs]
    fs = finite_sorted(x)
    mean, std = welford(x)
    d = {
        "mean": mean,
        "std_pop": std,
        "min": float(fs[0]) if len(fs) else 0.0,
        "max": float(fs[-1]) if len(fs) else 0.0,
    }
    if quantiles:
        d.update(p05=quantile(fs, 0.05), p50=quantile(fs, 0.50), p95=quantile(fs, 0.95))
    return d


def aggregate(records: Sequence[dict]) -> dict:
    """The `aggregate` block of mc_summary.json."""
    n = len(records)
    k = sum(r["kill_switch"] for r in records)
    col = lambda name: [r[name] for r in records]
    return {
        "kill_rate": (k / n) if n else 0.0,
        "kill_count": k,
        "pnl": _stats(col("pnl_total"), True),
        "max_drawdown": _stats(col("max_drawdown"), True),
        "max_abs_delta_usd": _stats(col("max_abs_delta_usd"), False),
        "max_abs_basis_usd": _stats(col("max_abs_basis_usd"), False),
        "max_abs_q_tao": _stats(col("max_abs_q_tao"), False),
        "max_venue_toxicity": _stats(col("max_venue_toxicity"), False),
    }


def summary(records: Sequence[dict], config: dict) -> dict:
    """mc_summary.json (schema_version 2)."""
    runs = [
        {
            "run": i + 1,
            "seed": r["seed"],
            "ticks_executed": r["ticks_executed"],
            "kill_tick": r["kill_tick"],
            "kill_switch": r["kill_switch"],
            "kill_reason": r["kill_reason"],
            "final_pnl": r["pnl_total"],
            "max_drawdown": r["max_drawdown"],
            "max_abs_delta_usd": r["max_abs_delta_usd"],
            "max_abs_basis_usd": r["max_abs_basis_usd"],
            "max_abs_q_tao": r["max_abs_q_tao"],
            "max_venue_toxicity": r["max_venue_toxicity"],
        }
        for i, r in enumerate(records)
    ]
    return {
        "schema_version": 2,
        "paraphina_version": MC_VERSION,
        "config": config,
        "runs": runs,
        "aggregate": aggregate(records),
        "tail_risk": tail_risk_block(
            [r["pnl_total"] for r in records],
            [r["max_drawdown"] for r in records],
            [r["kill_switch"] for r in records],
        ),
    }


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file in the same directory, then rename (never partially written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def jsonl_text(records: Sequence[dict]) -> str:
    """Compact JSON lines, shortest round-trip floats, fields in schema order."""
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)


def run_line(local: int, count: int, r: dict) -> str:
    """Per-run stdout line of §9.4."""
    kt = "-" if r["kill_tick"] is None else str(r["kill_tick"])
    reason = r["kill_reason"] if r["kill_switch"] else "-"
    return (
        f"run {local}/{count} (global={r['run_index']}) seed={r['seed']} pnl={r['pnl_total']:.4f} "
        f"maxDD={r['max_drawdown']:.4f} |maxΔ|={r['max_abs_delta_usd']:.4f} "
        f"|basis|={r['max_abs_basis_usd']:.4f} |q|={r['max_abs_q_tao']:.4f} "
        f"tox={r['max_venue_toxicity']:.3f} kill={'true' if r['kill_switch'] else 'false'} "
        f"kt={kt} reason={reason} ticks={r['ticks_executed']}"
    )


def summary_lines(records: Sequence[dict], start: int) -> list[str]:
    """The SUMMARY block of §9.4."""
    agg = aggregate(records)
    n = len(records)
    lines = ["", "SUMMARY", f"  runs:              {n} (global indices {start}..{start + n})"]
    lines.append(f"  kill_rate:         {agg['kill_rate'] * 100:.2f}% ({agg['kill_count']} / {n})")
    kts = [r["kill_tick"] for r in records if r["kill_tick"] is not None]
    if kts:
        lines.append(
            f"  kill_tick:         mean={np.mean(kts):.2f}  min={min(kts)}  max={max(kts)}"
        )

    def fmt(d: dict, q: bool) -> str:
        s = f"mean={d['mean']:.4f}  std(pop)={d['std_pop']:.4f}  min={d['min']:.4f}  max={d['max']:.4f}"
        if q:
            s += f"  p05={d['p05']:.4f}  p50={d['p50']:.4f}  p95={d['p95']:.4f}"
        return s

    lines.append(f"  pnl:               {fmt(agg['pnl'], True)}")
    lines.append(f"  max_drawdown:      {fmt(agg['max_drawdown'], True)}")
    for key, pad in (
        ("max_abs_delta_usd", " "),
        ("max_abs_basis_usd", " "),
        ("max_abs_q_tao", "     "),
        ("max_venue_toxicity", " "),
    ):
        lines.append(f"  {key}:{pad}{fmt(agg[key], False)}")
    return lines


def signed2(x: float) -> str:
    """Two decimals with an explicit '+' for non-negative values (§13.6: x ≥ 0 ⇒ '+')."""
    return f"+{x:.2f}" if x >= 0 or math.isnan(x) else f"{x:.2f}"


def daily_summary(
    realised: float, unrealised: float, total: float, kill: bool, reason: int, regime: int
) -> str:
    """The core runner's end-of-run summary block (SIMULATION §10), with its leading blank line."""
    lines = [
        "",
        "=== Daily Summary ===",
        f"Daily PnL (realised / unrealised / total): {signed2(realised)} / {signed2(unrealised)} / {signed2(total)}",
        f"Kill switch: {'true' if kill else 'false'}",
    ]
    if kill:
        lines.append(f"Kill reason: {KILL_REASON_NAMES[reason]}")
    lines.append(f"Risk regime: {REGIME_NAMES[regime]}")
    return "\n".join(lines)
