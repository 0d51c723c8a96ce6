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

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

KEY = "episode-sharding"


def main(argv: list[str] | None = None) -> int:
    from bench_docs import ab_parser

    args = ab_parser(__doc__.splitlines()[0], repeats=5).parse_args(argv)

    from paraphina_jax.sim.devices import configure_cpu_devices

    configure_cpu_devices(args.cpu_devices)  # before JAX starts its backend

    import jax
    import numpy as np
    from bench_docs import episode_timer, interleaved_walls, machine, pair_ratio, write_section

    from paraphina_jax.sim import episode as E

    t = args.ticks
    call = episode_timer(t)
    n_dev = len(jax.local_devices())

    rows = []
    for b in [int(x) for x in args.batches.split(",")]:
        keys = E.episode_keys(np.arange(b))
        walls = interleaved_walls(
            {"one": lambda k=keys: call(k, devices=1), "all": lambda k=keys: call(k, devices=None)},
            args.repeats,
        )
        one, all_ = (b * t / statistics.median(walls[d]) for d in ("one", "all"))
        rows.append(dict(B=b, one=one, all=all_, speedup=pair_ratio(walls["one"], walls["all"])))
        print(
            f"B={b}: one device {one:,.0f}, {n_dev} devices {all_:,.0f} env-steps/s, "
            f"speed-up {rows[-1]['speedup']:.2f}×",
            flush=True,
        )
    cmd = "python experiments/bench/episode_sharding.py " + " ".join(argv or sys.argv[1:])
    lines = [
        "## Sharding over devices",
        "",
        f"Command: `{cmd.strip()}`  ",
        f"Machine: {machine()}.  ",
        f"The batch on one device against the batch sharded over all {n_dev} (`run_batch(..., "
        "devices=1)` vs the default), same process, calls interleaved; XLA intra-op threading "
        'off in both (the setting `configure_cpu_devices` makes). Episode as in "Episode '
        f'throughput", T = {t}; env-steps/s are medians of {args.repeats} calls, the speed-up is '
        "the median over the pairs of (one wall / sharded wall).",
        "",
        f"| B | one device (env-steps/s) | {n_dev} devices (env-steps/s) | speed-up |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['B']} | {r['one']:,.0f} | {r['all']:,.0f} | {r['speedup']:.2f}× |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section(KEY, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
