"""Episode throughput: env-steps/s of the vectorised episode, against the NumPy reference episode
and the original engine's Monte Carlo figures (`compat mc`).

    python experiments/bench/episode_throughput.py [--quick] [--ticks T] [--chunk C]
        [--batches 1,64,1024,4096,16384] [--skip-mc] [--no-write] [--cpu-devices D]

* env-steps/s = B·T / wall of one `run_batch` call (float32, no telemetry), median of 3 timed
  calls after a first (compiling) call; compile time = first call − median; peak RSS of the
  process after the batch (ru_maxrss, monotone over the run).
* reference: float64 NumPy episode, ticks/s over a few episodes; ratio = JAX / reference.
* compat mc: the H2 harness (`compat.h2.h2_batch`, float64 as the `compat mc` command runs it),
  1000 runs × 600 ticks, at the default 1000 ms tick and with `--tick-ms 2 --jitter-ms 1`;
  compared with the original's published figures (1.9 M and 0.75 M ticks/s on two threads).

Writes its figures to docs/BENCHMARKS.md, section "Episode throughput" (replaced in place).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_docs import run_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SECTION = "Episode throughput"
START, END = "<!-- bench:episode-throughput:start -->", "<!-- bench:episode-throughput:end -->"


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_jax(
    batches: list[int], n_ticks: int, chunk: int, unroll: int, shield: bool = False
) -> list[dict]:
    from paraphina_jax.sim.episode import default_episode_params, episode_keys, run_batch
    from paraphina_jax.sim.types import StaticSimParams

    cfg = run_config()
    hooks: dict = {}
    if shield:  # the safety shield on orders and controls (experiments/bench/shield_overhead.py)
        from paraphina_jax.sim.episode import identity_controls_fn
        from safety_shield.controls import shielded_controls_fn
        from safety_shield.twin import shield_hook

        hooks = dict(
            shield_fn=shield_hook,
            controls_fn=shielded_controls_fn(identity_controls_fn, cfg.n_venues),
        )
    params = default_episode_params(cfg, n_ticks, vol=0.5, fill_a=np.full(cfg.n_venues, 20.0))
    static = StaticSimParams(n_venues=cfg.n_venues)
    rows = []
    for b in batches:
        keys = episode_keys(np.arange(b))

        def call(keys=keys) -> float:
            t0 = time.perf_counter()
            res, _ = run_batch(
                keys, params, cfg, static, n_ticks=n_ticks, chunk_ticks=chunk, unroll=unroll,
                **hooks,
            )  # fmt: skip
            assert res.pnl_total.shape == (keys.shape[0],)
            return time.perf_counter() - t0

        first = call()
        walls = [call() for _ in range(3)]
        med = statistics.median(walls)
        rows.append(
            dict(
                B=b,
                steps_per_s=b * n_ticks / med,
                wall_s=med,
                compile_s=max(first - med, 0.0),
                rss_mib=_rss_mib(),
            )
        )
        print(f"B={b}: {rows[-1]['steps_per_s']:,.0f} env-steps/s, wall {med:.3f} s, "
              f"compile {rows[-1]['compile_s']:.1f} s, peak RSS {rows[-1]['rss_mib']:.0f} MiB",
              flush=True)  # fmt: skip
    return rows


def bench_reference(n_episodes: int, n_ticks: int) -> float:
    """NumPy reference episode ticks/s (the draws are made beforehand, not timed)."""
    from paraphina_jax.reference.sim_episode import draw_episode_inputs, run_episode
    from paraphina_jax.sim.episode import default_episode_params, episode_keys
    from paraphina_jax.sim.types import StaticSimParams

    cfg = run_config()
    p = default_episode_params(cfg, n_ticks, vol=0.5, fill_a=np.full(cfg.n_venues, 20.0))
    static = StaticSimParams(n_venues=cfg.n_venues)
    keys = episode_keys(np.arange(n_episodes))
    draws = [draw_episode_inputs(k, n_ticks, static) for k in keys]
    t0 = time.perf_counter()
    ticks = 0
    for noise, ep in draws:
        res, _ = run_episode(noise, ep, p.market, p.schedule, cfg, static, n_ticks=n_ticks)
        ticks += int(res.ticks_executed)
    wall = time.perf_counter() - t0
    print(f"reference: {ticks / wall:,.0f} ticks/s ({ticks} ticks in {wall:.1f} s)", flush=True)
    return ticks / wall


def bench_mc(runs: int, n_ticks: int, tick_ms: int, jitter_ms: int) -> dict:
    """H2 harness as `compat mc` runs it (float64, vmapped over runs, sharded over the devices);
    first call compiles."""
    from paraphina_jax.compat.h2 import h2_batch
    from paraphina_jax.compat.jitter import run_seed, tick_times
    from paraphina_jax.config.defaults import make_config
    from paraphina_jax.utils.x64 import enable_x64

    cfg = make_config("balanced", parity=True)
    seqs = np.stack([tick_times(run_seed(1, i), n_ticks, tick_ms, jitter_ms) for i in range(runs)])
    from paraphina_jax.sim import devices

    mesh = devices.episode_mesh(None, runs)
    seqs = devices.pad_rows(seqs, 0, devices.padded_size(runs, mesh))
    with enable_x64():
        f = jax.jit(devices.over_mesh(h2_batch, mesh))
        t0 = time.perf_counter()
        jax.block_until_ready(f(seqs, cfg))
        first = time.perf_counter() - t0
        walls = []
        for _ in range(3):
            t0 = time.perf_counter()
            jax.block_until_ready(f(seqs, cfg))
            walls.append(time.perf_counter() - t0)
    med = statistics.median(walls)
    out = dict(tick_ms=tick_ms, jitter_ms=jitter_ms, wall_s=med, ticks_per_s=runs * n_ticks / med,
               compile_s=max(first - med, 0.0))  # fmt: skip
    print(f"compat mc tick_ms={tick_ms} jitter_ms={jitter_ms}: {out['ticks_per_s']:,.0f} ticks/s "
          f"(wall {med:.3f} s)", flush=True)  # fmt: skip
    return out


def render(args: argparse.Namespace, rows: list[dict], ref: float, mc: list[dict]) -> str:
    cmd = "python experiments/bench/episode_throughput.py " + " ".join(sys.argv[1:])
    load = os.getloadavg()
    lines = [
        START,
        f"## {SECTION}",
        "",
        f"Command: `{cmd.strip()}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, jax {jax.__version__} "
        f"({jax.default_backend()}, {len(jax.local_devices())} device(s), the batch sharded "
        f"over all of them, XLA_FLAGS `{os.environ.get('XLA_FLAGS', '')}`); load average at the end {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f}{' — the CPU was shared with other jobs while measuring' if load[0] > 2.6 else ' (the benchmark alone: its two threads)'}.  ",
        f"Episode: canonical market (vol 0.5/day, A = 20 s⁻¹), the main job's default strategy config "
        "(balanced profile, VOL_TOX_SCALE 50), float32, "
        f"T = {args.ticks} ticks in chunks of {args.chunk}, no telemetry, scan unroll {args.unroll}. "
        "env-steps/s = B·T / wall, median of 3 calls after the compiling call.",
        "",
        "| B | env-steps/s | wall (s) | compile (s) | peak RSS (MiB) | × reference |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['B']} | {r['steps_per_s']:,.0f} | {r['wall_s']:.3f} | {r['compile_s']:.1f} | "
            f"{r['rss_mib']:.0f} | {r['steps_per_s'] / ref:,.0f}× |"
        )
    lines += [
        "",
        f"NumPy reference episode (float64, one episode at a time): {ref:,.0f} ticks/s.",
    ]
    best = {r["B"]: r["steps_per_s"] for r in rows}
    if 4096 in best:
        lines.append(
            f"Targets: ≥ 300,000 env-steps/s at B = 4096 → {best[4096]:,.0f} "
            f"({'met' if best[4096] >= 3e5 else 'NOT met'}); ≥ 100× the reference → "
            f"{best[4096] / ref:,.0f}× ({'met' if best[4096] / ref >= 100 else 'NOT met'})."
        )
    if mc:
        lines += [
            "",
            "`compat mc` (H2 harness, float64, 1000 runs × 600 ticks, vmapped), against the "
            "original's published figures on two threads:",
            "",
            "| tick | ticks/s | wall (s) | original | ratio |",
            "|---|---|---|---|---|",
        ]
        for m in mc:
            orig = 1.9e6 if m["jitter_ms"] == 0 else 0.75e6
            lines.append(
                f"| {m['tick_ms']} ms ± {m['jitter_ms']} | {m['ticks_per_s']:,.0f} | "
                f"{m['wall_s']:.3f} | {orig:,.0f} | {m['ticks_per_s'] / orig:.2f} |"
            )
    lines += ["", END]
    return "\n".join(lines) + "\n"


def write_section(text: str, path: Path) -> None:
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n"
    if START in old and END in old:
        head, rest = old.split(START, 1)
        _, tail = rest.split(END, 1)
        new = head + text.rstrip("\n") + tail
    else:
        new = old.rstrip("\n") + "\n\n" + text
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="B = 1, 64, 1024; T = 128; no compat mc")
    ap.add_argument("--ticks", type=int, default=None)
    ap.add_argument("--chunk", type=int, default=None)
    ap.add_argument("--batches", default=None, help="comma-separated batch sizes")
    ap.add_argument("--unroll", type=int, default=1)
    ap.add_argument("--skip-mc", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument(
        "--shield",
        action="store_true",
        help="run with the safety shield (prints only; the on/off comparison is written by "
        "experiments/bench/shield_overhead.py)",
    )
    ap.add_argument(
        "--cpu-devices",
        type=int,
        default=None,
        help="CPU devices the batch is sharded over (default: one per core, as `paraphina-jax "
        "run` does; 1 = one device)",
    )
    args = ap.parse_args(argv)
    from paraphina_jax.sim.devices import configure_cpu_devices

    configure_cpu_devices(args.cpu_devices)  # before JAX starts its backend
    if args.shield:
        args.no_write = True
    args.ticks = args.ticks or (128 if args.quick else 256)
    args.chunk = args.chunk or min(args.ticks, 128)
    default_b = "1,64,1024" if args.quick else "1,64,1024,4096,16384"
    batches = [int(x) for x in (args.batches or default_b).split(",")]
    rows = bench_jax(batches, args.ticks, args.chunk, args.unroll, shield=args.shield)
    ref = bench_reference(2 if args.quick else 4, args.ticks)
    mc = []
    if not (args.quick or args.skip_mc):
        mc = [bench_mc(1000, 600, 1000, 0), bench_mc(1000, 600, 2, 1)]
    text = render(args, rows, ref, mc)
    print(text)
    if not args.no_write:
        write_section(text, ROOT / "docs" / "BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
