"""Episode throughput with the tick batched lane-last (`run_batch(lanes=True)`, the default)
against the same tick batched by `jax.vmap` (`lanes=False`): same process, same batch, calls
interleaved (vmap, lanes, vmap, lanes, …).

    python experiments/bench/episode_lanes.py [--batches 1024,4096] [--ticks 64]
        [--repeats 7] [--cpu-devices D] [--no-write]

The host is split into devices as the run job does (`configure_cpu_devices`, one per core,
for both arms). env-steps/s = B·T / wall (float32, no telemetry, the main job's default
config), medians of the repeats after a compiling call; compile = first call − median;
speed-up = median over the pairs of vmap wall / lanes wall. Writes docs/BENCHMARKS.md,
section "Lane-last batching".
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

KEY = "episode-lanes"


def main(argv: list[str] | None = None) -> int:
    from bench_docs import episode_ab, finish_section

    arms = {"vmap": {"lanes": False}, "lanes": {"lanes": True}}
    args, rows = episode_ab(argv, __doc__.splitlines()[0], 7, arms)
    lines = [
        "## Lane-last batching",
        "The tick batched lane-last (`run_batch(..., lanes=True)`, the default: "
        "`paraphina_jax.utils.lane_vmap`) against the same tick batched by `jax.vmap` "
        "(`lanes=False`), same process, calls interleaved, the batch sharded over the devices "
        f'in both. Episode as in "Episode throughput", T = {args.ticks}; env-steps/s are '
        f"medians of {args.repeats} calls, the speed-up is the median over the pairs of (vmap "
        "wall / lanes wall).",
        "",
        "| B | vmap (env-steps/s) | lanes (env-steps/s) | speed-up | compile vmap (s) "
        "| compile lanes (s) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['B']} | {r['vmap']:,.0f} | {r['lanes']:,.0f} | {r['speedup']:.2f}× "
        f"| {r['c_vmap']:.1f} | {r['c_lanes']:.1f} |"
        for r in rows
    ]
    finish_section(KEY, "episode_lanes.py", argv, lines, args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
