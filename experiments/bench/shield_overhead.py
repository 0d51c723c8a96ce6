"""Shield overhead: episode throughput with and without the safety shield, same process, same
batch, calls interleaved (off, on, off, on, …) so both see the same machine load.

    python experiments/bench/shield_overhead.py [--batches 1024,4096] [--ticks 256]
        [--chunk 128] [--repeats 21] [--no-write]

"on" = `shield_fn=safety_shield.twin.shield_hook` (orders) and the control-surface clip
(`shielded_controls_fn` around the identity controls): the shield acting twice per tick as in
ARCHITECTURE.md. env-steps/s = B·T / wall (float32, no telemetry), median of the repeats after
a compiling call; overhead = 1 − median over the (off, on) pairs of off wall / on wall, with a
95 % bootstrap interval of that median (10,000 resamples of the pairs, fixed seed). The
batch is sharded over one CPU device per core, as `paraphina-jax run` and
`episode_throughput.py` run it.
Target: overhead ≤ 15 %. Writes docs/BENCHMARKS.md, section "Shield overhead".
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from paraphina_jax.sim.devices import configure_cpu_devices  # noqa: E402

configure_cpu_devices()  # one CPU device per core, before JAX starts (as `paraphina-jax run`)

from bench_docs import machine, run_config, write_section  # noqa: E402

from paraphina_jax.sim import episode as E  # noqa: E402
from paraphina_jax.sim.types import StaticSimParams  # noqa: E402
from safety_shield.controls import shielded_controls_fn  # noqa: E402
from safety_shield.twin import shield_hook  # noqa: E402
from safety_shield.types import RULE_NAMES  # noqa: E402

CFG = run_config()
SHIELDED_CONTROLS = shielded_controls_fn(E.identity_controls_fn, CFG.n_venues)


LAST: dict[str, np.ndarray] = {}


def timed_call(keys, params, n_ticks: int, chunk: int, on: bool) -> float:
    kw = dict(shield_fn=shield_hook, controls_fn=SHIELDED_CONTROLS) if on else {}
    t0 = time.perf_counter()
    res, _ = E.run_batch(
        keys, params, CFG, StaticSimParams(), n_ticks=n_ticks, chunk_ticks=chunk, **kw
    )
    wall = time.perf_counter() - t0
    assert res.pnl_total.shape == (keys.shape[0],)
    if on:
        LAST["interventions"] = np.asarray(res.shield_interventions).sum(axis=0)
        LAST["steps"] = np.asarray(res.ticks_executed).sum()
    return wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="1024,4096")
    ap.add_argument("--ticks", type=int, default=256)
    ap.add_argument("--chunk", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    params = E.default_episode_params(CFG, args.ticks, vol=0.5, fill_a=np.full(5, 20.0))
    rows = []
    for b in [int(x) for x in args.batches.split(",")]:
        keys = E.episode_keys(np.arange(b))
        first = {m: timed_call(keys, params, args.ticks, args.chunk, m) for m in (False, True)}
        walls: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.repeats):
            for m in (False, True):
                walls[m].append(timed_call(keys, params, args.ticks, args.chunk, m))
        med = {m: statistics.median(w) for m, w in walls.items()}
        row = dict(
            B=b,
            off=b * args.ticks / med[False],
            on=b * args.ticks / med[True],
            compile_off=max(first[False] - med[False], 0.0),
            compile_on=max(first[True] - med[True], 0.0),
        )
        # paired: each on-call against the off-call just before it (slow drifts of the machine's
        # load cancel), median over the pairs
        pairs = [off / on for off, on in zip(walls[False], walls[True], strict=True)]
        print(f"B={b} walls off {[round(w, 3) for w in walls[False]]} "
              f"on {[round(w, 3) for w in walls[True]]}", flush=True)  # fmt: skip
        row["overhead"] = 1.0 - statistics.median(pairs)
        row["ci"] = overhead_interval(pairs)
        row["interventions"] = LAST["interventions"]
        row["steps"] = int(LAST["steps"])
        rows.append(row)
        print(
            f"B={b}: off {row['off']:,.0f}, on {row['on']:,.0f} env-steps/s, "
            f"overhead {100 * row['overhead']:.1f} % "
            f"(95 % interval {100 * row['ci'][0]:.1f}–{100 * row['ci'][1]:.1f} %)",
            flush=True,
        )
    text = render(args, rows)
    print(text)
    if not args.no_write:
        write_section("shield-overhead", text)
    return 0


N_BOOT = 10_000  # bootstrap resamples of the pairs


def overhead_interval(pairs: list[float], n_boot: int = N_BOOT) -> tuple[float, float]:
    """95 % bootstrap interval of 1 − median(off wall / on wall) over the pairs."""
    x = np.asarray(pairs)
    rng = np.random.default_rng(0)
    med = np.median(rng.choice(x, size=(n_boot, x.size), replace=True), axis=1)
    lo, hi = np.percentile(1.0 - med, [2.5, 97.5])
    return float(lo), float(hi)


def render(args: argparse.Namespace, rows: list[dict]) -> str:
    lines = [
        "## Shield overhead",
        "",
        f"Command: `python experiments/bench/shield_overhead.py --batches {args.batches} "
        f"--ticks {args.ticks} --chunk {args.chunk} --repeats {args.repeats}`  ",
        f"Machine: {machine()}; load average at the end "
        + " / ".join(f"{x:.1f}" for x in os.getloadavg())
        + " (the benchmark's own two threads ≈ 2).  ",
        'Episode as in "Episode throughput" (canonical market, the main job’s default config, float32, no telemetry); '
        "shield on = order shield hook + control-surface clip; calls interleaved off/on; "
        f"env-steps/s are medians of {args.repeats} calls, the overhead is 1 − the median over the "
        "pairs of (off wall / on wall), with a 95 % bootstrap interval of that median "
        f"({N_BOOT:,} resamples of the pairs). Target: overhead ≤ 15 %.",
        "",
        "| B | off (env-steps/s) | on (env-steps/s) | overhead | 95 % interval | compile off (s) "
        "| compile on (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['B']} | {r['off']:,.0f} | {r['on']:,.0f} | {100 * r['overhead']:.1f} % | "
            f"{100 * r['ci'][0]:.1f}–{100 * r['ci'][1]:.1f} % | "
            f"{r['compile_off']:.1f} | {r['compile_on']:.1f} |"
        )
    r = rows[-1]
    fired = ", ".join(
        f"{RULE_NAMES[i]} {int(c):,}" for i, c in enumerate(r["interventions"]) if c > 0
    )
    lines += [
        "",
        f"Interventions on the heuristic strategy's own actions (identity controls, B = {r['B']}, "
        f"{r['steps']:,} env-steps): {fired or 'none'}.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
