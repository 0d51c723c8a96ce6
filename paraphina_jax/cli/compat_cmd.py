"""`paraphina-jax compat {mc,core}`: the original engine's two harnesses in reference-parity mode.

`compat mc` mirrors the original `monte_carlo` binary (H2), `compat core` the core runner (H1).
Both run in either engine: `--engine jax` (float64 under x64, vmapped over runs) or
`--engine reference` (the float64 NumPy reference engine, run by run).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from paraphina_jax.config import ConfigError, make_config, resolve_profile
from paraphina_jax.config.types import StrategyConfig


def _mc_config(profile: str | None, env: dict[str, str]) -> tuple[StrategyConfig, str, str]:
    """H2 config: the profile's defaults in parity mode; only the run-time knobs act (D2, S13)."""
    name, source = resolve_profile(profile, env)
    cfg = make_config(name, parity=True)
    mode = env.get("PARAPHINA_TRADE_MODE")
    if mode is not None:
        cfg = cfg.replace(flags=dataclasses.replace(cfg.flags, trade_mode=mode.lower()))
    return cfg, name, source


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compat", help="the original engine's harnesses (reference-parity mode)")
    s = p.add_subparsers(dest="harness", required=True)
    mc = s.add_parser(
        "mc", help="Monte Carlo harness (H2), writes mc_runs.jsonl and mc_summary.json"
    )
    mc.add_argument("--profile", default=None)
    mc.add_argument("--runs", type=int, default=50)
    mc.add_argument("--ticks", type=int, default=600)
    mc.add_argument("--seed", type=int, default=1)
    mc.add_argument("--tick-ms", type=int, default=1000)
    mc.add_argument("--jitter-ms", type=int, default=0)
    mc.add_argument("--run-start-index", type=int, default=0)
    mc.add_argument("--run-count", type=int, default=None)
    mc.add_argument("--print-every", type=int, default=1)
    mc.add_argument("--quiet", action="store_true")
    mc.add_argument("--out", "--output-dir", dest="out", default="runs/demo_step_7_1")
    mc.add_argument("--engine", choices=("jax", "reference"), default="jax")
    core = s.add_parser("core", help="core runner (H1), prints the Daily Summary")
    core.add_argument("--profile", default=None, choices=("conservative", "balanced", "aggressive"))
    core.add_argument("--seed", type=int, default=None)
    core.add_argument("--ticks", type=int, default=2000)
    core.add_argument("--engine", choices=("jax", "reference"), default="jax")
    core.add_argument("--verbose", action="store_true")


def mc_metrics(cfg: StrategyConfig, now_seqs: np.ndarray, engine: str):
    """Per-run metrics for `now_seqs [B, T]` in the chosen engine (JAX runs in float64)."""
    if engine == "reference":
        from paraphina_jax.compat.h2 import RunMetrics
        from paraphina_jax.reference.compat_h2 import h2_run

        rows = [h2_run(seq, cfg) for seq in now_seqs]
        cols = {
            k: np.asarray([r[k] if r[k] is not None else -1 for r in rows])
            for k in RunMetrics.__dataclass_fields__
        }
        return RunMetrics(**cols)
    from paraphina_jax.sim import devices
    from paraphina_jax.utils.x64 import enable_x64, request_ieee_exact_xla

    devices.configure_cpu_devices()  # one CPU device per core: the runs are sharded over them
    if not request_ieee_exact_xla():
        print(
            "paraphina-jax compat: JAX already started without IEEE-exact division; "
            "discrete decisions may differ from the original in the last bit",
            file=sys.stderr,
        )
    import jax

    from paraphina_jax.compat.h2 import h2_batch

    b = int(np.shape(now_seqs)[0])
    mesh = devices.episode_mesh(None, b)
    seqs = devices.pad_rows(np.asarray(now_seqs, dtype=np.int64), 0, devices.padded_size(b, mesh))
    with enable_x64():
        out = jax.jit(devices.over_mesh(h2_batch, mesh))(seqs, cfg)
        return jax.tree.map(lambda x: np.asarray(x)[:b], out)


def run_mc(args: argparse.Namespace) -> int:
    from paraphina_jax.compat.jitter import run_seed, tick_times
    from paraphina_jax.compat.mc_output import (
        PROFILE_DISPLAY,
        atomic_write_text,
        jsonl_text,
        run_line,
        run_records,
        summary,
        summary_lines,
    )

    for name in ("runs", "ticks", "tick_ms"):
        if getattr(args, name) <= 0:
            print(
                f"paraphina-jax compat mc: --{name.replace('_', '-')} must be > 0", file=sys.stderr
            )
            return 2
    if args.jitter_ms < 0:
        print("paraphina-jax compat mc: --jitter-ms must be >= 0", file=sys.stderr)
        return 2
    try:
        cfg, profile, source = _mc_config(args.profile, dict(os.environ))
    except ConfigError as e:
        print(f"paraphina-jax compat mc: {e}", file=sys.stderr)
        return 2
    start = args.run_start_index
    count = args.run_count if args.run_count is not None else args.runs
    out_dir = Path(args.out)
    disp = PROFILE_DISPLAY[profile]
    print(
        f"paraphina-mc v0.1.0 | profile={disp} ({source}) runs={args.runs} run_start={start} "
        f"run_count={count} ticks={args.ticks} seed={args.seed} tick_ms={args.tick_ms} "
        f"jitter_ms={args.jitter_ms} threads=1 print_every={args.print_every} output_dir={out_dir} csv=-"
    )
    seeds = [run_seed(args.seed, start + i) for i in range(count)]
    seqs = np.stack([tick_times(s, args.ticks, args.tick_ms, args.jitter_ms) for s in seeds])
    t0 = time.perf_counter()
    metrics = mc_metrics(cfg, seqs, args.engine)
    wall = time.perf_counter() - t0
    records = run_records(metrics, seeds, start)
    if not args.quiet:
        for i, r in enumerate(records):
            if args.print_every == 1 or (i + 1) % args.print_every == 0 or i == count - 1:
                print(run_line(i + 1, count, r))
    for line in summary_lines(records, start):
        print(line)
    config = {
        "runs": args.runs,
        "ticks": args.ticks,
        "seed": args.seed,
        "tick_ms": args.tick_ms,
        "jitter_ms": args.jitter_ms,
        "profile": disp,
    }
    atomic_write_text(
        out_dir / "mc_summary.json", json.dumps(summary(records, config), indent=2) + "\n"
    )
    atomic_write_text(out_dir / "mc_runs.jsonl", jsonl_text(records))
    print()
    print(f"Wrote: {out_dir / 'mc_summary.json'}")
    print(f"Wrote: {out_dir / 'mc_runs.jsonl'}")
    ticks = sum(r["ticks_executed"] for r in records)
    print(f"engine={args.engine} wall={wall:.3f}s ticks_executed={ticks}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.harness == "mc":
        return run_mc(args)
    from paraphina_jax.compat.h1 import run_core_cli

    return run_core_cli(args)
