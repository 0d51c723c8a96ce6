"""`paraphina-jax run`: the main job — a batch of vmapped episodes of one scenario (Hydra app).

```text
paraphina-jax run [--multirun|-m] [--config-dir DIR] [--config-name NAME] [--cfg] [KEY=VALUE …]
```
Keys and defaults: `conf/config.yaml` (see docs/run.md). Every job is validated before any
simulation work (:mod:`paraphina_jax.cli.run_compose`); bad input exits 2 with one line on stderr.
A job runs `paraphina_jax.sim.episode.run_batch` in jitted chunks with a progress bar between
chunks, prints the stdout contract of :mod:`paraphina_jax.report.summary` and writes its run
directory (:mod:`paraphina_jax.report.outputs`). Exit codes: 0 done, 1 failed while running,
2 bad input (nothing run).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from paraphina_jax.cli.run_compose import (
    CONF_DIR,
    CONFIG_FILE,
    CONFIG_NAME,
    RunInputError,
    RunPlan,
    compose,
    expand_sweep,
    plan_job,
    run_keys,
)
from paraphina_jax.report import outputs
from paraphina_jax.report.summary import parse_mc_summary, run_line, run_summary_lines
from paraphina_jax.report.types import EpisodeTable, RunInfo, TickSeries
from paraphina_jax.sim.devices import configure_cpu_devices

# Below this many episode-ticks every episode's per-tick records are kept, so the whole batch runs
# through ONE compiled program (a separate telemetry group would compile a second one); ≈1.7 kB
# per episode-tick.
RECORD_ALL_MAX_EPISODE_TICKS = 100_000

USAGE = """\
usage: paraphina-jax run [--multirun|-m] [--config-dir DIR] [--config-name NAME] [--cfg] [KEY=VALUE ...]

Run a batch of episodes of one scenario and write a run directory (config.yaml,
episodes.parquet, summary.json, summary.txt, telemetry JSONL, plots/).

examples:
  paraphina-jax run
  paraphina-jax run scenario=basis_spike_pos profile=conservative episodes=1024 seed=7
  paraphina-jax run scenario_file=my_scenario.yaml 'overrides={HEDGE_BAND_BASE: 3.0}'
  paraphina-jax run --multirun profile=balanced,conservative seed=1,2
  paraphina-jax run +debug=tiny hydra.run.dir=/tmp/r1

keys (conf/config.yaml): scenario, scenario_file, profile, episodes, seed, ticks, chunk_ticks,
parity, x64, telemetry_episodes, plots, plot_episode, progress, platform, devices, lanes,
cpu_devices, compilation_cache, overrides,
wandb.enabled, wandb.project, hydra.run.dir, hydra.sweep.dir. PARAPHINA_* environment knobs
(STRATEGY §3.11) are applied on top. Exit codes: 0 ok, 1 failed while running, 2 bad input.
"""


def _err(msg: str) -> None:
    print(f"paraphina-jax run: {msg}", file=sys.stderr)


def parse_args(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Split flags from Hydra overrides."""
    flags: dict[str, Any] = {
        "multirun": False,
        "config_dir": CONF_DIR,
        "config_name": CONFIG_NAME,
        "cfg": False,
        "help": False,
    }
    overrides: list[str] = []
    it = iter(argv)
    for a in it:
        if a in ("--multirun", "-m"):
            flags["multirun"] = True
        elif a in ("--help", "-h"):
            flags["help"] = True
        elif a in ("--cfg", "-c"):
            flags["cfg"] = True
        elif a in ("--config-dir", "-cd", "--config-name", "-cn"):
            value = next(it, None)
            if value is None:
                raise RunInputError(f"{a}: needs a value")
            key = "config_dir" if a in ("--config-dir", "-cd") else "config_name"
            flags[key] = Path(value) if key == "config_dir" else value
        elif a.startswith("--config-dir="):
            flags["config_dir"] = Path(a.split("=", 1)[1])
        elif a.startswith("--config-name="):
            flags["config_name"] = a.split("=", 1)[1]
        elif a.startswith("-"):
            raise RunInputError(
                f"{a}: unknown option (allowed: --multirun, --config-dir, --config-name, --cfg, --help)"
            )
        else:
            overrides.append(a)
    return flags, overrides


# ---------------------------------------------------------------------------------------------
# Running one job
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _device_context(plan: RunPlan) -> Iterator[None]:
    import jax

    from paraphina_jax.utils.x64 import enable_x64

    with contextlib.ExitStack() as stack:
        stack.enter_context(enable_x64(bool(plan.run["x64"])))
        platform = plan.run.get("platform")
        if platform is not None:
            try:
                dev = jax.devices(platform)[0]
            except RuntimeError as e:
                raise RunInputError(
                    f"platform: {platform!r} not available ({str(e).splitlines()[0]})"
                ) from None
            stack.enter_context(jax.default_device(dev))
        yield


def _enable_cache(path: str | None) -> None:
    """Persistent XLA compilation cache (first run compiles, reruns load)."""
    if not path:
        return
    import jax

    if jax.config.jax_compilation_cache_dir:
        return
    directory = Path(path).expanduser()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        _err(f"compilation_cache: {directory}: not usable ({e.strerror}); compiling without it")
        return
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def episode_keys(seed: int, episodes: int) -> Any:
    """`[B, 2]` uint32 keys: episode i uses `fold_in(PRNGKey(seed), i)`."""
    import jax
    import jax.numpy as jnp

    base = jax.random.PRNGKey(seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(episodes, dtype=jnp.uint32))


class _Progress:
    """tqdm bar over the horizon, updated by `run_batch`'s `on_chunk` between jitted chunks."""

    def __init__(self, n_ticks: int, episodes: int, enabled: bool):
        self.t0 = time.perf_counter()
        self.first: float | None = None
        self.done = 0
        self.episodes = episodes
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=n_ticks,
                unit="tick",
                desc=f"{episodes} episodes",
                file=sys.stderr,
                dynamic_ncols=True,
            )

    def __call__(self, ticks_done: int) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now - self.t0
        step = ticks_done - self.done
        self.done = ticks_done
        if self.bar is not None:
            rate = self.episodes * ticks_done / max(now - self.t0, 1e-9)
            self.bar.set_postfix_str(f"{rate:,.0f} episode-ticks/s", refresh=False)
            self.bar.update(step)

    def close(self) -> float:
        if self.bar is not None:
            self.bar.close()
        return time.perf_counter() - self.t0


def simulate(plan: RunPlan, progress: bool) -> tuple[Any, Any, float, float | None, int]:
    """Run the batch. Returns (results [B], telemetry [K, T] | None, wall s, first chunk s, K)."""
    from paraphina_jax.sim.episode import episode_params_from_scenario, run_batch
    from paraphina_jax.sim.types import StaticSimParams

    cfg = plan.cfg
    b, t = plan.episodes, plan.n_ticks
    params = episode_params_from_scenario(plan.spec, cfg, n_ticks=t)
    params = params.replace(initial_q_tao=np.asarray(float(cfg.loop.initial_q_tao), np.float64))
    k_tel = b if b * t <= RECORD_ALL_MAX_EPISODE_TICKS else int(plan.run["telemetry_episodes"])
    if plan.run["plots"]:
        k_tel = max(k_tel, int(plan.run.get("plot_episode", 0)) + 1)
    bar = _Progress(t, b, progress)
    try:
        res, tel = run_batch(
            episode_keys(plan.seed, b),
            params,
            cfg,
            StaticSimParams(n_venues=cfg.n_venues),
            n_ticks=t,
            chunk_ticks=min(int(plan.run["chunk_ticks"]), t),
            telemetry_episodes=k_tel,
            on_chunk=bar,
            devices=plan.run.get("devices"),
            lanes=bool(plan.run.get("lanes", True)),
        )
    finally:
        wall = bar.close()
    return res, tel, wall, bar.first, k_tel


def _devices_used(plan: RunPlan) -> int:
    """How many devices `run_batch` shards this job's batch over (checks the `devices` key)."""
    import jax

    from paraphina_jax.sim.devices import episode_mesh

    n_dev = plan.run.get("devices")
    have = len(jax.local_devices())
    if n_dev is not None and n_dev > have:
        raise RunInputError(f"{CONFIG_FILE}: devices: {n_dev} (allowed: null or 1 … {have})")
    mesh = episode_mesh(n_dev, plan.episodes)
    return 1 if mesh is None else mesh.size


def _info(plan: RunPlan) -> RunInfo:
    import jax

    return RunInfo(
        scenario_id=plan.spec.scenario_id,
        profile=plan.cfg.profile,
        profile_source=plan.profile_source,
        episodes=plan.episodes,
        ticks=plan.n_ticks,
        dt_ms=float(plan.spec.horizon.dt_ms),
        seed=plan.seed,
        backend=jax.default_backend()
        if plan.run.get("platform") is None
        else str(plan.run["platform"]),
        dtype="float64" if plan.run["x64"] else "float32",
        run_dir=str(plan.run_dir.final),
        devices=_devices_used(plan),
    )


def _log_wandb(plan: RunPlan, summary: dict[str, Any]) -> None:
    if not plan.run["wandb"]["enabled"] or os.environ.get("WANDB_MODE") == "disabled":
        return
    import wandb

    mode = os.environ.get("WANDB_MODE", "offline")
    wb = wandb.init(
        project=str(plan.run["wandb"]["project"]),
        mode=mode,
        dir=str(plan.run_dir.staging),
        config=plan.run,
        reinit=True,
    )
    agg = summary["aggregate"]
    wb.log(
        {
            "kill_rate": agg["kill_rate"],
            **{f"pnl/{k}": v for k, v in agg["pnl"].items()},
            **{f"max_drawdown/{k}": v for k, v in agg["max_drawdown"].items()},
        }
    )
    wb.finish()


def write_outputs(
    plan: RunPlan,
    info: RunInfo,
    table: EpisodeTable,
    series: TickSeries | None,
    tel: Any,
    printed: list[str],
    timing: dict[str, Any],
) -> list[Path]:
    """Every output file into the staging directory; returns their final paths."""
    from paraphina_jax import __version__
    from paraphina_jax.report.plots import write_plots
    from paraphina_jax.report.summary import summary_json
    from paraphina_jax.sim.telemetry import telemetry_to_jsonl

    rd = plan.run_dir
    names: list[str] = []
    import jax

    facts = {
        **{k: getattr(info, k) for k in info.__dataclass_fields__},
        "overrides": plan.overrides,
        "command": "paraphina-jax run " + " ".join(plan.overrides),
        "paraphina_jax_version": __version__,
        "jax_version": jax.__version__,
        **timing,
    }
    outputs.write_yaml(
        rd.path(outputs.CONFIG_FILE),
        outputs.resolved_config(plan.run, plan.cfg, plan.spec.to_dict(), facts, plan.env),
    )
    names.append(outputs.CONFIG_FILE)
    labels = {"scenario_id": info.scenario_id, "profile": info.profile, "seed": info.seed}
    outputs.write_parquet(rd.path(outputs.EPISODES_FILE), outputs.episodes_dataframe(table, labels))
    names.append(outputs.EPISODES_FILE)
    summary = {"run": facts, **summary_json(table, info.seed)}
    outputs.write_json(rd.path(outputs.SUMMARY_JSON), summary)
    names.append(outputs.SUMMARY_JSON)
    outputs.write_text(rd.path(outputs.SUMMARY_TXT), "\n".join(printed) + "\n")
    names.append(outputs.SUMMARY_TXT)
    for ep in range(int(plan.run["telemetry_episodes"])):
        name = outputs.telemetry_file(ep)
        telemetry_to_jsonl(tel, plan.cfg, rd.path(name), episode=ep)
        names.append(name)
    if plan.run["plots"]:
        for p in write_plots(series, table, rd.path(outputs.PLOTS_DIR)):
            names.append(f"{outputs.PLOTS_DIR}/{p.name}")
    _log_wandb(plan, summary)
    return [rd.final / n for n in names]


def execute(plan: RunPlan) -> int:
    """Run one validated job: simulate, print, write, commit the run directory."""
    from paraphina_jax.compat.h1_output import header_line, knob_log_lines
    from paraphina_jax.report.adapt import episode_table, tick_series

    print(
        f"effective_risk_profile={plan.cfg.profile} source={plan.profile_source}", file=sys.stderr
    )
    for note in plan.env_notes:
        print(f"[config] {note}", file=sys.stderr)
    for line in knob_log_lines(plan.cfg, plan.env):
        print(line, file=sys.stderr)
    try:
        configure_cpu_devices(plan.run.get("cpu_devices"))  # before JAX starts its backend
        _enable_cache(plan.run.get("compilation_cache"))
        with _device_context(plan):
            info = _info(plan)
            head = [header_line(plan.cfg, plan.n_ticks, plan.seed), run_line(info)]
            print("\n".join(head), flush=True)
            res, tel, wall, first, _ = simulate(plan, bool(plan.run["progress"]))
        venues = tuple(plan.cfg.venues.venue_ids)
        table = episode_table(res, venues)
        series = None
        ep = int(plan.run.get("plot_episode", 0))
        if tel is not None and ep < np.shape(tel.record.t)[0]:
            kt = int(table.column("kill_tick")[ep])
            series = tick_series(tel, ep, float(plan.spec.horizon.dt_ms), venues, kill_tick=kt)
        chunk = min(int(plan.run["chunk_ticks"]), plan.n_ticks)
        body = run_summary_lines(table, plan.seed, wall, first, plan.n_ticks, chunk)
        print("\n".join(body), flush=True)
        timing = {
            "wall_s": round(wall, 3),
            "first_chunk_s": None if first is None else round(first, 3),
        }
        written = write_outputs(plan, info, table, series, tel, head + body, timing)
        plan.run_dir.commit()
    except BaseException:
        plan.run_dir.abort()
        raise
    print("")
    for path in written:
        print(f"Wrote: {path}")
    return 0


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def _print_cfg(flags: dict[str, Any], overrides: list[str]) -> int:
    import yaml

    composed = compose(overrides, flags["config_dir"], flags["config_name"])
    print(yaml.safe_dump(run_keys(composed), sort_keys=False), end="")
    return 0


def _sweep_table(rows: list[tuple[int, list[str], str, int]]) -> list[str]:
    lines = ["", "MULTIRUN"]
    for num, ovr, out, rc in rows:
        m = parse_mc_summary(out)
        pnl = m.get("pnl_mean", float("nan"))
        kill = m.get("kill_rate", float("nan"))
        lines.append(
            f"  job {num}: rc={rc} pnl_mean={pnl:.4f} kill_rate={kill:.4f} | {' '.join(ovr)}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """`paraphina-jax run` entry point; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        flags, overrides = parse_args(argv)
        if flags["help"]:
            print(USAGE, end="")
            return 0
        if flags["cfg"]:
            return _print_cfg(flags, overrides)
        jobs = expand_sweep(overrides, flags["multirun"])
        plans: list[RunPlan] = []
        try:
            for i, job in enumerate(jobs):
                plans.append(
                    plan_job(
                        job,
                        config_dir=flags["config_dir"],
                        config_name=flags["config_name"],
                        job_num=i if flags["multirun"] else None,
                    )
                )
        except BaseException:
            for p in plans:
                p.run_dir.abort()
            raise
    except RunInputError as e:
        _err(str(e))
        return 2
    if not flags["multirun"]:
        return _run_one(plans[0])
    rows = []
    worst = 0
    for plan in plans:
        print(f"[multirun] job {plan.job_num}: {' '.join(plan.overrides)}", flush=True)
        buf = _Tee()
        with contextlib.redirect_stdout(buf):
            rc = _run_one(plan)
        rows.append((int(plan.job_num or 0), plan.overrides, buf.text(), rc))
        worst = max(worst, rc)
    print("\n".join(_sweep_table(rows)))
    return worst


def _run_one(plan: RunPlan) -> int:
    try:
        return execute(plan)
    except RunInputError as e:
        _err(str(e))
        return 2
    except KeyboardInterrupt:
        _err("interrupted; run directory removed")
        return 130
    except Exception as e:  # a failure while running: one line, no partial outputs
        traceback.print_exc(file=sys.stderr)
        _err(f"failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        return 1


class _Tee:
    """stdout that is also kept (multirun jobs print as usual and are summarised after)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.out = sys.stdout

    def write(self, s: str) -> int:
        self.parts.append(s)
        return self.out.write(s)

    def flush(self) -> None:
        self.out.flush()

    def text(self) -> str:
        return "".join(self.parts)


if __name__ == "__main__":
    sys.exit(main())
