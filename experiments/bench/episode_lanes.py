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

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

KEY = "episode-lanes"


def main(argv: list[str] | None = None) -> int:
    from bench_docs import ab_parser

    args = ab_parser(__doc__.splitlines()[0], repeats=7).parse_args(argv)

    from paraphina_jax.sim.devices import configure_cpu_devices

    configure_cpu_devices(args.cpu_devices)  # before JAX starts its backend

    import numpy as np
    from bench_docs import episode_timer, interleaved_walls, machine, pair_ratio, write_section

    from paraphina_jax.sim import episode as E

    t = args.ticks
    call = episode_timer(t)

    rows = []
    for b in [int(x) for x in args.batches.split(",")]:
        keys = E.episode_keys(np.arange(b))
        walls = interleaved_walls(
            {
                "vmap": lambda k=keys: call(k, lanes=False),
                "lanes": lambda k=keys: call(k, lanes=True),
            },
            args.repeats,
        )
        med = {a: statistics.median(walls[a]) for a in ("vmap", "lanes")}
        rows.append(
            dict(
                B=b,
                **{a: b * t / med[a] for a in med},
                **{f"c_{a}": walls[f"{a}/first"] - med[a] for a in med},
                speedup=pair_ratio(walls["vmap"], walls["lanes"]),
            )
        )
        r = rows[-1]
        print(
            f"B={b}: vmap {r['vmap']:,.0f}, lanes {r['lanes']:,.0f} env-steps/s, "
            f"speed-up {r['speedup']:.2f}×",
            flush=True,
        )
    cmd = "python experiments/bench/episode_lanes.py " + " ".join(argv or sys.argv[1:])
    lines = [
        "## Lane-last batching",
        "",
        f"Command: `{cmd.strip()}`  ",
        f"Machine: {machine()}.  ",
        "The tick batched lane-last (`run_batch(..., lanes=True)`, the default: "
        "`paraphina_jax.utils.lane_vmap`) against the same tick batched by `jax.vmap` "
        "(`lanes=False`), same process, calls interleaved, the batch sharded over the devices "
        f'in both. Episode as in "Episode throughput", T = {t}; env-steps/s are medians of '
        f"{args.repeats} calls, the speed-up is the median over the pairs of (vmap wall / lanes "
        "wall).",
        "",
        "| B | vmap (env-steps/s) | lanes (env-steps/s) | speed-up | compile vmap (s) "
        "| compile lanes (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['B']} | {r['vmap']:,.0f} | {r['lanes']:,.0f} | {r['speedup']:.2f}× "
            f"| {r['c_vmap']:.1f} | {r['c_lanes']:.1f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section(KEY, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
