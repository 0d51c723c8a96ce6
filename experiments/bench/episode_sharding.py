"""Episode throughput with the batch on one device against the batch sharded over every device,
same process, same batch, calls interleaved (one, all, one, all, …).

    python experiments/bench/episode_sharding.py [--batches 1024,4096] [--ticks 64]
        [--repeats 5] [--cpu-devices D] [--no-write]

On a CPU the host is split into `--cpu-devices` devices (default one per core) before JAX
starts (`paraphina_jax.sim.devices.configure_cpu_devices`, which also turns XLA's intra-op
threading off, for both arms); "one" = `run_batch(..., devices=1)`, "all" = `devices=None`
(the default). env-steps/s = B·T / wall (float32, no telemetry, the main job's default config),
medians of the repeats after a compiling call; speed-up = median over the pairs of one wall /
all wall. Writes docs/BENCHMARKS.md, section "Sharding over devices".
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

KEY = "episode-sharding"


def main(argv: list[str] | None = None) -> int:
    from bench_docs import episode_ab, finish_section

    arms = {"one": {"devices": 1}, "all": {"devices": None}}
    args, rows = episode_ab(argv, __doc__.splitlines()[0], 5, arms)
    import jax

    n_dev = len(jax.local_devices())
    lines = [
        "## Sharding over devices",
        f"The batch on one device against the batch sharded over all {n_dev} (`run_batch(..., "
        "devices=1)` vs the default), same process, calls interleaved; XLA intra-op threading "
        'off in both (the setting `configure_cpu_devices` makes). Episode as in "Episode '
        f'throughput", T = {args.ticks}; env-steps/s are medians of {args.repeats} calls, the '
        "speed-up is the median over the pairs of (one wall / sharded wall).",
        "",
        f"| B | one device (env-steps/s) | {n_dev} devices (env-steps/s) | speed-up |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['B']} | {r['one']:,.0f} | {r['all']:,.0f} | {r['speedup']:.2f}× |" for r in rows
    ]
    finish_section(KEY, "episode_sharding.py", argv, lines, args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
