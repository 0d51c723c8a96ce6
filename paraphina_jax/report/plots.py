"""PNG plots of a run (matplotlib, Agg canvas; no pyplot state, no display needed).

Every plot is `PLOT_WIDTH_PX × PLOT_HEIGHT_PX` pixels and written to a temporary file in the
target directory, then renamed. Inputs are host NumPy arrays:

* :func:`plot_fair_value` — fair value with the venue mids (one episode, `[T]`, `[T, N]`);
* :func:`plot_inventory` — inventory per venue and global (`[T, N]`, `[T]`);
* :func:`plot_pnl` — PnL (total, realised) with the risk regime shaded and the kill tick marked;
* :func:`plot_hedge_exit` — hedge and exit fills per tick, and their cumulative volume;
* :func:`plot_distributions` — PnL and max-drawdown histograms across episodes (`[B]`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from paraphina_jax.config.types import REGIME_NAMES
from paraphina_jax.report.outputs import atomic_write
from paraphina_jax.report.types import EpisodeTable, TickSeries

PLOT_WIDTH_PX = 1200
PLOT_HEIGHT_PX = 700
DPI = 100
REGIME_COLOURS = {1: "#f2c94c", 2: "#eb5757"}  # Warning, HardLimit
PLOT_FILES: dict[str, str] = {
    "fair_value": "fair_value.png",
    "inventory": "inventory.png",
    "pnl": "pnl_regime.png",
    "hedge_exit": "hedge_exit.png",
    "distributions": "distributions.png",
}


def _figure(rows: int = 1) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(PLOT_WIDTH_PX / DPI, PLOT_HEIGHT_PX / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, sharex=False, squeeze=False)[:, 0]
    return fig, list(axes)


def _save(fig: Figure, path: Path) -> Path:
    """Render at the fixed size, write to a temporary file next to `path`, rename."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))


def _mark_kill(ax: Axes, s: TickSeries) -> None:
    if 0 <= s.kill_tick < len(s.time_s):
        ax.axvline(s.time_s[s.kill_tick], color="black", ls="--", lw=1.0, label="kill switch")


def _shade_regime(ax: Axes, s: TickSeries) -> None:
    """Shade every maximal run of ticks in Warning / HardLimit."""
    r = np.asarray(s.regime, dtype=int)
    t = np.asarray(s.time_s, dtype=float)
    if len(t) == 0:
        return
    dt = float(t[1] - t[0]) if len(t) > 1 else 1.0
    labelled: set[int] = set()
    start = 0
    for i in range(1, len(r) + 1):
        if i == len(r) or r[i] != r[start]:
            level = int(r[start])
            if level in REGIME_COLOURS:
                label = None if level in labelled else REGIME_NAMES[level]
                labelled.add(level)
                ax.axvspan(
                    t[start],
                    t[i - 1] + dt,
                    color=REGIME_COLOURS[level],
                    alpha=0.3,
                    lw=0,
                    label=label,
                )
            start = i


def _title(s: TickSeries, what: str) -> str:
    return f"{what} (episode {s.episode})"


def plot_fair_value(s: TickSeries, path: Path) -> Path:
    """Fair value `[T]` with the venue mids `[T, N]` against simulated time."""
    fig, (ax,) = _figure()
    for v, name in enumerate(s.venue_names):
        ax.plot(s.time_s, s.mid[:, v], lw=0.8, alpha=0.8, label=f"mid {name}")
    ax.plot(s.time_s, s.fair_value, color="black", lw=1.6, label="fair value")
    _mark_kill(ax, s)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("price (USD)")
    ax.set_title(_title(s, "Fair value and venue mids"))
    ax.legend(loc="best", fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_inventory(s: TickSeries, path: Path) -> Path:
    """Inventory per venue `[T, N]` (thin) and global `[T]` (bold), TAO."""
    fig, (ax,) = _figure()
    for v, name in enumerate(s.venue_names):
        ax.plot(s.time_s, s.q_venue[:, v], lw=0.9, label=f"q {name}")
    ax.plot(s.time_s, s.q_global, color="black", lw=1.8, label="q global")
    ax.axhline(0.0, color="grey", lw=0.6)
    _mark_kill(ax, s)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("inventory (TAO)")
    ax.set_title(_title(s, "Inventory per venue and global"))
    ax.legend(loc="best", fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_pnl(s: TickSeries, path: Path) -> Path:
    """PnL total and realised `[T]`, USD, with Warning / HardLimit ticks shaded."""
    fig, (ax,) = _figure()
    _shade_regime(ax, s)
    ax.plot(s.time_s, s.pnl_total, color="tab:blue", lw=1.5, label="PnL total")
    ax.plot(s.time_s, s.pnl_realised, color="tab:green", lw=1.0, alpha=0.8, label="PnL realised")
    ax.axhline(0.0, color="grey", lw=0.6)
    _mark_kill(ax, s)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("PnL (USD)")
    ax.set_title(_title(s, "PnL with risk regime"))
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_hedge_exit(s: TickSeries, path: Path) -> Path:
    """Signed hedge and exit fills per tick (+ buy) and their cumulative absolute volume."""
    fig, (top, bottom) = _figure(2)
    # one line segment per tick (a single collection: fast for long horizons)
    top.vlines(s.time_s, 0.0, s.hedge_tao, color="tab:purple", lw=1.2, label="hedge fills")
    top.vlines(s.time_s, 0.0, s.exit_tao, color="tab:orange", lw=1.2, alpha=0.8, label="exit fills")
    top.axhline(0.0, color="grey", lw=0.6)
    _mark_kill(top, s)
    top.set_ylabel("signed volume (TAO)")
    top.set_title(_title(s, "Hedge and exit activity"))
    top.legend(loc="best", fontsize=8)
    top.grid(alpha=0.3)
    bottom.plot(
        s.time_s, np.cumsum(np.abs(s.hedge_tao)), color="tab:purple", label="hedge, cumulative"
    )
    bottom.plot(
        s.time_s, np.cumsum(np.abs(s.exit_tao)), color="tab:orange", label="exit, cumulative"
    )
    bottom.set_xlabel("time (s)")
    bottom.set_ylabel("volume (TAO)")
    bottom.legend(loc="best", fontsize=8)
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _histogram(ax: Axes, x: np.ndarray, killed: np.ndarray, label: str) -> None:
    finite = np.isfinite(x)
    x, killed = x[finite], killed[finite]
    if len(x) == 0:
        ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
        return
    bins = max(5, min(50, int(np.sqrt(len(x))) * 2))
    lo, hi = float(np.min(x)), float(np.max(x))
    edges = np.linspace(lo, hi, bins + 1) if hi > lo else np.array([lo - 0.5, lo + 0.5])
    ax.hist(
        [x[~killed], x[killed]],
        bins=edges,
        stacked=True,
        color=["tab:blue", "tab:red"],
        label=["not killed", "killed"],
    )
    q05, q50, q95 = np.quantile(x, [0.05, 0.5, 0.95])
    ax.axvline(float(np.mean(x)), color="black", lw=1.2, label="mean")
    for q, name in ((q05, "p05"), (q50, "p50"), (q95, "p95")):
        ax.axvline(float(q), color="grey", ls=":", lw=1.0)
        ax.annotate(
            name,
            (float(q), 0.98),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            ha="left",
            va="top",
        )
    ax.set_xlabel(label)
    ax.set_ylabel("episodes")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)


def plot_distributions(table: EpisodeTable, path: Path) -> Path:
    """Histograms of final PnL and max drawdown across the batch's `B` episodes."""
    fig, (top, bottom) = _figure(2)
    killed = table.column("kill_switch").astype(bool)
    _histogram(top, table.column("pnl_total").astype(float), killed, "final PnL (USD)")
    top.set_title(f"Distributions across {table.n_episodes} episodes")
    _histogram(bottom, table.column("max_drawdown").astype(float), killed, "max drawdown (USD)")
    fig.tight_layout()
    return _save(fig, path)


def write_plots(series: TickSeries | None, table: EpisodeTable, out_dir: Path) -> list[Path]:
    """Every plot into `out_dir` (names in :data:`PLOT_FILES`); per-tick plots need `series`."""
    jobs: list[tuple[str, Callable[[], Path]]] = []
    if series is not None:
        jobs += [
            ("fair_value", lambda: plot_fair_value(series, out_dir / PLOT_FILES["fair_value"])),
            ("inventory", lambda: plot_inventory(series, out_dir / PLOT_FILES["inventory"])),
            ("pnl", lambda: plot_pnl(series, out_dir / PLOT_FILES["pnl"])),
            ("hedge_exit", lambda: plot_hedge_exit(series, out_dir / PLOT_FILES["hedge_exit"])),
        ]
    jobs.append(
        ("distributions", lambda: plot_distributions(table, out_dir / PLOT_FILES["distributions"]))
    )
    return [job() for _, job in jobs]
