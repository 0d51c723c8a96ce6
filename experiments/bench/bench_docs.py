"""Write one benchmark's section of docs/BENCHMARKS.md (replace it if present, else append).

Each section sits between `<!-- bench:<key>:start -->` / `<!-- bench:<key>:end -->` markers;
only the named block is touched. The file is written to a temporary name and renamed.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs" / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nOne section per benchmark: command, machine, numbers, ratios.\n"


RUN_OVERRIDES = {"VOL_TOX_SCALE": 50.0}  # conf/config.yaml's default `overrides`


def run_config(profile: str = "balanced"):  # noqa: ANN201
    """The main job's default strategy config: `profile` with conf/config.yaml's overrides (the
    strategy keeps trading in the canonical market; docs/simulator.md)."""
    from paraphina_jax.config import apply_overrides, make_config

    return apply_overrides(make_config(profile), dict(RUN_OVERRIDES))


def machine() -> str:
    """One line describing this machine (CPU model, cores, Python, jax)."""
    import jax

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"jax {jax.__version__} ({jax.default_backend()}, {len(jax.local_devices())} device(s))"
    )


def write_section(key: str, text: str, path: Path = DOCS) -> None:
    """Replace the block between `<!-- bench:{key}:start -->` and `...:end -->` in `path` with
    `text` (a `## ...` section), or append it with its markers when absent."""
    start, end = f"<!-- bench:{key}:start -->", f"<!-- bench:{key}:end -->"
    block = f"{start}\n{text.strip()}\n{end}"
    old = path.read_text(encoding="utf-8") if path.exists() else HEADER
    if start in old and end in old:
        head, rest = old.split(start, 1)
        _, tail = rest.split(end, 1)
        new = head + block + tail
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, path)


def interleaved_walls(calls: dict, repeats: int) -> dict:
    """Same-process A/B: every call once (compiling), then `repeats` rounds calling each in
    turn. `calls` maps a name to a zero-argument function returning its wall (s); returns
    `{name: [wall, ...]}` and the first (compiling) wall under `"<name>/first"`."""
    walls: dict = {}
    for name, call in calls.items():
        walls[f"{name}/first"] = call()
        walls[name] = []
    for _ in range(repeats):
        for name, call in calls.items():
            walls[name].append(call())
    return walls


def pair_ratio(a: list, b: list) -> float:
    """Median over the interleaved pairs of wall a / wall b (> 1: b is faster)."""
    import statistics

    return statistics.median([x / y for x, y in zip(a, b, strict=True)])


def ab_parser(description: str, repeats: int):  # noqa: ANN201
    """The arguments of the episode A/B benchmarks (`--batches --ticks --repeats
    --cpu-devices --no-write`)."""
    import argparse

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--batches", default="1024,4096")
    ap.add_argument("--ticks", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=repeats)
    ap.add_argument("--cpu-devices", type=int, default=None)
    ap.add_argument("--no-write", action="store_true")
    return ap


def episode_timer(ticks: int):  # noqa: ANN201
    """`call(keys, **run_batch_kwargs) -> wall (s)`: one `run_batch` of the benchmark episode
    (canonical market, vol 0.5/day, A = 20 s⁻¹, the main job's default config, float32, `ticks`
    ticks in one chunk, no telemetry)."""
    import time

    import numpy as np

    from paraphina_jax.sim import episode as E
    from paraphina_jax.sim.types import StaticSimParams

    cfg = run_config()
    params = E.default_episode_params(cfg, ticks, vol=0.5, fill_a=np.full(cfg.n_venues, 20.0))
    static = StaticSimParams(n_venues=cfg.n_venues)

    def call(keys, **kw) -> float:  # noqa: ANN001, ANN003
        t0 = time.perf_counter()
        res, _ = E.run_batch(keys, params, cfg, static, n_ticks=ticks, chunk_ticks=ticks, **kw)
        assert res.pnl_total.shape == (keys.shape[0],)
        return time.perf_counter() - t0

    return call


def episode_ab(argv, description: str, repeats: int, arms: dict):  # noqa: ANN001, ANN201
    """Run an episode A/B benchmark: parse `ab_parser` arguments, split the CPU into devices
    (`configure_cpu_devices`, before JAX starts), then per batch size time the two `arms`
    (`{name: run_batch kwargs}`, base arm first) interleaved. Returns `(args, rows)`, a row per
    B with env-steps/s and compile seconds per arm (`rows[i][name]`, `rows[i]["c_" + name]`)
    and `speedup` = median over the pairs of base wall / other wall."""
    import statistics

    args = ab_parser(description, repeats=repeats).parse_args(argv)
    from paraphina_jax.sim.devices import configure_cpu_devices

    configure_cpu_devices(args.cpu_devices)

    import numpy as np

    from paraphina_jax.sim import episode as E

    t = args.ticks
    call = episode_timer(t)
    base, other = list(arms)
    rows = []
    for b in [int(x) for x in args.batches.split(",")]:
        keys = E.episode_keys(np.arange(b))
        walls = interleaved_walls(
            {name: (lambda kw=kw, k=keys: call(k, **kw)) for name, kw in arms.items()}, args.repeats
        )
        med = {a: statistics.median(walls[a]) for a in arms}
        rows.append(
            dict(
                B=b,
                **{a: b * t / med[a] for a in arms},
                **{f"c_{a}": walls[f"{a}/first"] - med[a] for a in arms},
                speedup=pair_ratio(walls[base], walls[other]),
            )
        )
        r = rows[-1]
        print(
            f"B={b}: {base} {r[base]:,.0f}, {other} {r[other]:,.0f} env-steps/s, "
            f"speed-up {r['speedup']:.2f}×",
            flush=True,
        )
    return args, rows


def finish_section(key: str, script: str, argv, lines: list, no_write: bool) -> None:  # noqa: ANN001
    """Print a benchmark section (`lines` after its title) with its command line and machine
    inserted, and write it to docs/BENCHMARKS.md unless `no_write`."""
    import sys

    cmd = f"python experiments/bench/{script} " + " ".join(argv or sys.argv[1:])
    text = "\n".join([lines[0], "", f"Command: `{cmd.strip()}`  ", f"Machine: {machine()}.  "])
    text += "\n" + "\n".join(lines[1:]) + "\n"
    print(text)
    if not no_write:
        write_section(key, text)
