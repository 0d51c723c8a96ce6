"""The stdout contract of `paraphina-jax run` and its parsers (SIMULATION.md §9.4, §10).

`run` prints, in this order (stdout):

```text
paraphina | cfg=<version> | cfg_hash=0x<16 hex> | profile=<P> | ticks=<T> | seed=<s>    (§10 header)
run | scenario=<id> | episodes=<B> | ticks=<T> | dt_ms=<dt> | backend=<b> | dtype=<d> | run_dir=<dir>
Kill switch active at tick <t> - stopping simulation early (reason: <R>).      (episode 0, if killed)

=== Daily Summary ===                                                         (§10, episode 0)
Daily PnL (realised / unrealised / total): <+r> / <+u> / <+t>
Kill switch: true|false
Kill reason: <R>                                                              (only when killed)
Risk regime: <Normal|Warning|HardLimit>

SUMMARY                                                                       (§9.4, all episodes)
  runs: … kill_rate: … pnl: … max_drawdown: … max_abs_*: …

BATCH <B> episodes                                                            (short table)
  <metric> mean std p05 p50 p95 rows, kill rate with its Wilson 95% interval, throughput
Wrote: <path>                                                                 (one per output file)
```

The Daily Summary block is episode 0's (the episode whose telemetry is written), so a run with
`episodes=1` prints exactly what the original core runner prints for one run. The parsers follow
the orchestrator contract of §10: the LAST match wins, a missing PnL line gives NaN and a missing
kill line gives `kill_switch = False`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from paraphina_jax.compat.mc_output import aggregate, daily_summary, summary_lines
from paraphina_jax.config.types import KILL_REASON_NAMES, REGIME_NAMES
from paraphina_jax.report.types import EpisodeTable, RunInfo
from paraphina_jax.stats.tail import finite_sorted, quantile, wilson

BATCH_TITLE = "BATCH"
TABLE_METRICS: tuple[str, ...] = ("pnl_total", "max_drawdown", "max_abs_q_tao", "max_abs_delta_usd")
TABLE_QUANTILES: tuple[float, ...] = (0.05, 0.50, 0.95)


# ---------------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------------


def run_line(info: RunInfo) -> str:
    """The second header line: what the batch is and where it writes."""
    return (
        f"run | scenario={info.scenario_id} | episodes={info.episodes} | ticks={info.ticks} | "
        f"dt_ms={info.dt_ms:g} | backend={info.backend} | devices={info.devices} | "
        f"dtype={info.dtype} | "
        f"run_dir={info.run_dir}"
    )


def daily_summary_lines(
    realised: float, unrealised: float, total: float, kill: bool, reason: int, regime: int
) -> list[str]:
    """The §10 Daily Summary block (leading blank line included), one string per line."""
    return daily_summary(realised, unrealised, total, kill, reason, regime).split("\n")


def episode_summary_lines(table: EpisodeTable, episode: int = 0) -> list[str]:
    """Kill line (when killed) and Daily Summary of one episode of `table`."""
    c = table.columns
    kill = bool(c["kill_switch"][episode])
    reason = KILL_REASON_NAMES.index(str(c["kill_reason"][episode])) if kill else 0
    lines: list[str] = []
    if kill:
        lines.append(
            f"Kill switch active at tick {int(c['kill_tick'][episode])} - stopping simulation "
            f"early (reason: {KILL_REASON_NAMES[reason]})."
        )
    lines += daily_summary_lines(
        float(c["pnl_realised"][episode]),
        float(c["pnl_unrealised"][episode]),
        float(c["pnl_total"][episode]),
        kill,
        reason,
        int(table.final_regime[episode]),
    )
    return lines


def batch_stats(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """mean, population std, p05, p50, p95 of the finite values (NaN when none)."""
    x = finite_sorted(values)
    if len(x) == 0:
        return {
            "mean": math.nan,
            "std": math.nan,
            "p05": math.nan,
            "p50": math.nan,
            "p95": math.nan,
        }
    out = {"mean": float(np.mean(x)), "std": float(np.std(x))}
    for q in TABLE_QUANTILES:
        out[f"p{int(round(q * 100)):02d}"] = quantile(x, q)
    return out


def throughput_text(
    episodes: int, ticks: int, wall_s: float, first_s: float | None, chunk_ticks: int | None
) -> str:
    """`throughput: …` — wall time, the first chunk (which includes the compile) and the
    episode-ticks per second of the chunks after it."""
    text = f"throughput: {episodes} episodes x {ticks} ticks in {wall_s:.2f} s"
    if first_s is None or chunk_ticks is None:
        return text
    text += f" (first chunk incl. compile {first_s:.2f} s"
    rest_ticks = max(ticks - chunk_ticks, 0)
    rest_s = wall_s - first_s
    if rest_ticks > 0 and rest_s > 0:
        text += f"; then {episodes * rest_ticks / rest_s:,.0f} episode-ticks/s"
    return text + ")"


def batch_table_lines(
    table: EpisodeTable,
    wall_s: float | None = None,
    compile_s: float | None = None,
    ticks: int = 0,
    chunk_ticks: int | None = None,
) -> list[str]:
    """The short batch table: quantiles of the main metrics, kill rate with its Wilson interval
    (SIMULATION §9.3) and, when `wall_s` is given, the throughput."""
    n = table.n_episodes
    head = ("metric", "mean", "std", "p05", "p50", "p95")
    rows = [head]
    for name in TABLE_METRICS:
        if name not in table.columns:
            continue
        s = batch_stats(table.column(name))
        rows.append((name, *(f"{s[k]:.4f}" for k in ("mean", "std", "p05", "p50", "p95"))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["", f"{BATCH_TITLE} {n} episodes"]
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  " + "  ".join(cells))
    k = int(np.sum(table.column("kill_switch").astype(bool)))
    lo, hi = wilson(k, n)
    rate = k / n if n else 0.0
    lines.append(f"  kill_rate: {rate * 100:.2f}% ({k} / {n})  95% CI [{lo:.4f}, {hi:.4f}]")
    if wall_s is not None:
        lines.append("  " + throughput_text(n, ticks, wall_s, compile_s, chunk_ticks))
    return lines


def run_summary_lines(
    table: EpisodeTable,
    seed: int,
    wall_s: float | None = None,
    compile_s: float | None = None,
    ticks: int = 0,
    chunk_ticks: int | None = None,
) -> list[str]:
    """Everything `run` prints after its header: episode 0's Daily Summary, the §9.4 SUMMARY block
    over all episodes and the batch table."""
    lines = episode_summary_lines(table, 0)
    lines += summary_lines(table.mc_records(seed), 0)
    lines += batch_table_lines(table, wall_s, compile_s, ticks, chunk_ticks)
    return lines


def summary_json(table: EpisodeTable, seed: int) -> dict[str, Any]:
    """Machine-readable batch aggregate: the Monte Carlo `aggregate` block plus tail risk."""
    from paraphina_jax.stats.tail import tail_risk_block

    records = table.mc_records(seed)
    return {
        "episodes": table.n_episodes,
        "aggregate": aggregate(records),
        "tail_risk": tail_risk_block(
            [r["pnl_total"] for r in records],
            [r["max_drawdown"] for r in records],
            [r["kill_switch"] for r in records],
        ),
    }


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------

_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+|nan|inf)"
_PNL_RE = re.compile(
    rf"daily pnl \(realised / unrealised / total\):\s*({_NUM})\s*/\s*({_NUM})\s*/\s*({_NUM})",
    re.IGNORECASE,
)
_KILL_RE = re.compile(r"kill switch(?: active)?\s*[:=]\s*(true|false)", re.IGNORECASE)
_REASON_RE = re.compile(r"^kill reason:\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE)
_REGIME_RE = re.compile(r"^risk regime:\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE)


def parse_daily_summary(text: str) -> dict[str, Any]:
    """Metrics of the Daily Summary block in `text` (SIMULATION §10 orchestrator contract).

    Returns:
      `pnl_realised`, `pnl_unrealised`, `pnl_total` (floats; NaN when no PnL line),
      `kill_switch` (bool; False when absent), `kill_reason` (str or None) and `risk_regime`
      (str or None). The last match of each pattern wins.
    """
    out: dict[str, Any] = {
        "pnl_realised": math.nan,
        "pnl_unrealised": math.nan,
        "pnl_total": math.nan,
        "kill_switch": False,
        "kill_reason": None,
        "risk_regime": None,
    }
    pnl = _PNL_RE.findall(text)
    if pnl:
        r, u, t = pnl[-1]
        out.update(pnl_realised=float(r), pnl_unrealised=float(u), pnl_total=float(t))
    kill = _KILL_RE.findall(text)
    if kill:
        out["kill_switch"] = kill[-1].lower() == "true"
    reason = _REASON_RE.findall(text)
    if reason and out["kill_switch"]:
        out["kill_reason"] = reason[-1]
    regime = _REGIME_RE.findall(text)
    if regime:
        out["risk_regime"] = regime[-1]
    return out


_STAT_RE = re.compile(r"([a-z0-9()]+)=(" + _NUM + r")", re.IGNORECASE)
_STAT_NAMES = {"std(pop)": "std"}


def parse_mc_summary(text: str) -> dict[str, float]:
    """Batch metrics of the LAST §9.4 `SUMMARY` block in `text`, flattened.

    Keys: `runs`, `kill_count`, `kill_rate` (a fraction), `kill_tick_{mean,min,max}` (when
    present) and `<metric>_<stat>` for every metric line (`pnl_mean`, `pnl_std`, `pnl_p05`, …,
    `max_drawdown_p95`, `max_abs_q_tao_max`, …). Empty when no block is found.
    """
    start = text.rfind("\nSUMMARY\n")
    if start < 0:
        if not text.startswith("SUMMARY\n"):
            return {}
        start = 0
    out: dict[str, float] = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("  ") or ":" not in line:
            break
        key, _, rest = line.strip().partition(":")
        rest = rest.strip()
        if key == "runs":
            out["runs"] = float(rest.split()[0])
        elif key == "kill_rate":
            m = re.match(r"(" + _NUM + r")%\s*\((\d+)\s*/\s*(\d+)\)", rest)
            if m:
                out["kill_rate"] = float(m.group(1)) / 100.0
                out["kill_count"] = float(m.group(2))
        else:
            for stat, val in _STAT_RE.findall(rest):
                out[f"{key}_{_STAT_NAMES.get(stat, stat)}"] = float(val)
    return out


def parse_run_dir(text: str) -> str | None:
    """The run directory named in `run`'s second header line (the last one), or None."""
    found = re.findall(r"^run \|.*\| run_dir=(.+?)\s*$", text, re.MULTILINE)
    return found[-1] if found else None


def regime_name(index: int) -> str:
    return REGIME_NAMES[int(index)]
