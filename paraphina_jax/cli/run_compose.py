"""Composition and validation of `paraphina-jax run` jobs (Hydra compose API, at the edge).

Turns command-line overrides into validated :class:`RunPlan` objects BEFORE any simulation work:
Hydra composes `conf/config.yaml` (+ groups and overlays), the run keys are checked, the scenario
is resolved and parsed, the risk profile is chosen (command line > `PARAPHINA_RISK_PROFILE` >
the scenario's profile > balanced, STRATEGY §3.10), the strategy config is built (profile →
profile group values → scenario overrides → `overrides` → `PARAPHINA_*` knobs, §3.11) and the
run directory is reserved. Every failure is a :class:`RunInputError` with one line naming the
file or key and the allowed values (the command exits 2).

Hydra and OmegaConf are imported lazily: without them only `run` is unavailable.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from paraphina_jax.config import ConfigError, apply_env_knobs, apply_overrides, config_from_dict
from paraphina_jax.config.defaults import PROFILES, parse_profile
from paraphina_jax.config.env import PREFIX, resolve_profile
from paraphina_jax.config.types import StrategyConfig
from paraphina_jax.report.outputs import OutputError, RunDir
from paraphina_jax.scenarios import ScenarioError, ScenarioSpec, resolve_scenario, scenario_config
from paraphina_jax.scenarios.schema import load_scenario

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
CONFIG_NAME = "config"
CONFIG_FILE = "conf/config.yaml"
PLATFORMS = ("cpu", "gpu", "cuda", "rocm", "tpu")


class RunInputError(Exception):
    """Bad input to `run` (exit code 2); the message is one line."""


@dataclasses.dataclass
class RunPlan:
    """A validated job: everything needed to run it, nothing run yet."""

    run: dict[str, Any]  # composed run keys (plain containers), Hydra node excluded
    overrides: list[str]  # the job's command-line overrides
    spec: ScenarioSpec
    cfg: StrategyConfig
    profile_source: str  # cli | env | scenario | default
    env: dict[str, str]  # PARAPHINA_* variables in force
    env_notes: list[str]  # warnings about ignored PARAPHINA_* values
    run_dir: RunDir
    n_ticks: int
    job_num: int | None = None  # index within a --multirun sweep

    @property
    def episodes(self) -> int:
        return int(self.run["episodes"])

    @property
    def seed(self) -> int:
        return int(self.run["seed"])


def import_hydra() -> tuple[Any, Any]:
    """`(hydra, omegaconf)` or a RunInputError saying how to install them."""
    try:
        import hydra
        import omegaconf
    except ModuleNotFoundError as e:
        raise RunInputError(
            f"run: needs hydra-core and omegaconf ({e.name} is not installed; "
            f"`pip install hydra-core omegaconf`)"
        ) from None
    return hydra, omegaconf


def _one_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__


# ---------------------------------------------------------------------------------------------
# Overrides and sweeps
# ---------------------------------------------------------------------------------------------


def expand_sweep(overrides: Sequence[str], multirun: bool) -> list[list[str]]:
    """Jobs (override lists). Without `multirun` a sweep value is an error; with it, the
    cartesian product of every `key=a,b,…` / `range()` / `choice()` override, in order."""
    import_hydra()
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as e:
        raise RunInputError(f"run: bad override: {_one_line(e)}") from None
    if not multirun:
        for o in parsed:
            if o.is_sweep_override():
                raise RunInputError(
                    f"run: {o.input_line}: sweep values need --multirun (allowed: one value)"
                )
        return [list(overrides)]
    lists: list[list[str]] = []
    for o, raw in zip(parsed, overrides):
        if o.is_sweep_override():
            if not o.is_discrete_sweep():
                raise RunInputError(f"run: {raw}: only discrete sweeps are supported")
            key = raw.split("=", 1)[0]  # with its +, ++ or ~ prefix
            lists.append([f"{key}={v}" for v in o.sweep_string_iterator()])
        else:
            lists.append([raw])
    return [list(job) for job in itertools.product(*lists)]


def _split(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def normalise_overrides(overrides: Sequence[str]) -> tuple[list[str], bool]:
    """Map profile aliases (`profile=cons`) to group names and let `overrides=…` /
    `overrides.KEY=…` add strategy keys (Hydra `++`); returns (overrides, profile given)."""
    out, given = [], False
    for o in overrides:
        key, value = _split(o)
        if (key == "overrides" or key.startswith("overrides.")) and not o.startswith(("+", "~")):
            o = "++" + o
        if key == "profile":
            name = parse_profile(value.strip().strip("'\""))
            if name is None:
                raise RunInputError(
                    f"{CONFIG_FILE}: profile: unknown risk profile {value!r} (allowed: "
                    f"{', '.join(PROFILES)} or their aliases)"
                )
            o = o[: len(o) - len(value)] + name
            given = True
        out.append(o)
    return out, given


# ---------------------------------------------------------------------------------------------
# Composition
# ---------------------------------------------------------------------------------------------


def compose(overrides: Sequence[str], config_dir: Path, config_name: str = CONFIG_NAME) -> Any:
    """Compose the run config (Hydra node included) with `overrides`."""
    import_hydra()
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    if not (config_dir / f"{config_name}.yaml").is_file():
        raise RunInputError(f"{config_dir / (config_name + '.yaml')}: config file not found")
    try:
        with initialize_config_dir(
            config_dir=str(config_dir.resolve()), version_base=None, job_name="run"
        ):
            return hydra_compose(
                config_name=config_name, overrides=list(overrides), return_hydra_config=True
            )
    except MissingConfigException as e:
        opts = getattr(e, "options", None)
        allowed = f" (allowed: {', '.join(opts)})" if opts else ""
        raise RunInputError(f"{CONFIG_FILE}: {_one_line(e)}{allowed}") from None
    except (HydraException, OmegaConfBaseException) as e:
        msg = _one_line(e)
        if msg.startswith("Could not override"):
            msg += " (allowed: the keys `paraphina-jax run --cfg` prints, or +NEW_KEY=VALUE)"
        raise RunInputError(f"{CONFIG_FILE}: {msg}") from None


def _container(node: Any) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True)


def run_keys(cfg: Any) -> dict[str, Any]:
    """The composed run keys as plain containers (Hydra node dropped)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        return {
            k: _container(v) if OmegaConf.is_config(v) else v
            for k, v in cfg.items()
            if k != "hydra"
        }
    except OmegaConfBaseException as e:
        raise RunInputError(f"{CONFIG_FILE}: {_one_line(e)}") from None


def run_dir_of(cfg: Any, job_num: int | None) -> Path:
    """`hydra.run.dir`, or `hydra.sweep.dir/hydra.sweep.subdir` for job `job_num` of a sweep."""
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import OmegaConfBaseException

    try:
        if job_num is None:
            return Path(str(OmegaConf.select(cfg, "hydra.run.dir"))).expanduser()
        with open_dict(cfg):
            OmegaConf.update(cfg, "hydra.job.num", job_num, force_add=True)
        base = str(OmegaConf.select(cfg, "hydra.sweep.dir"))
        sub = str(OmegaConf.select(cfg, "hydra.sweep.subdir"))
        return Path(base).expanduser() / sub
    except OmegaConfBaseException as e:
        raise RunInputError(f"{CONFIG_FILE}: hydra run directory: {_one_line(e)}") from None


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def check_run_keys(run: Mapping[str, Any]) -> None:
    """Validate the run keys; raises RunInputError naming the first bad key."""

    def bad(key: str, allowed: str) -> RunInputError:
        return RunInputError(f"{CONFIG_FILE}: {key}: {run.get(key)!r} (allowed: {allowed})")

    if not _is_int(run.get("episodes")) or run["episodes"] < 1:
        raise bad("episodes", "integer >= 1")
    if not _is_int(run.get("seed")) or not 0 <= run["seed"] < 2**63:
        raise bad("seed", "integer in [0, 2^63)")
    if run.get("ticks") is not None and (not _is_int(run["ticks"]) or run["ticks"] < 1):
        raise bad("ticks", "null or integer >= 1")
    if not _is_int(run.get("chunk_ticks")) or run["chunk_ticks"] < 1:
        raise bad("chunk_ticks", "integer >= 1")
    te = run.get("telemetry_episodes")
    if not _is_int(te) or not 0 <= te <= run["episodes"]:
        raise bad("telemetry_episodes", f"integer in [0, episodes = {run['episodes']}]")
    pe = run.get("plot_episode", 0)
    if not _is_int(pe) or not 0 <= pe < run["episodes"]:
        raise bad("plot_episode", f"integer in [0, episodes - 1 = {run['episodes'] - 1}]")
    for key in ("parity", "x64", "plots", "progress"):
        if not isinstance(run.get(key), bool):
            raise bad(key, "true or false")
    if not isinstance(run.get("scenario"), str) or not run["scenario"].strip():
        raise bad("scenario", "a library scenario name or id")
    if run.get("scenario_file") is not None and not isinstance(run["scenario_file"], str):
        raise bad("scenario_file", "null or a path")
    if run.get("platform") is not None and run["platform"] not in PLATFORMS:
        raise bad("platform", "null, " + ", ".join(PLATFORMS))
    if run.get("lanes") is not None and not isinstance(run["lanes"], bool):
        raise bad("lanes", "true or false")
    for key in ("devices", "cpu_devices"):
        if run.get(key) is not None and (not _is_int(run[key]) or run[key] < 1):
            raise bad(key, "null or integer >= 1")
    if run.get("compilation_cache") is not None and not isinstance(run["compilation_cache"], str):
        raise bad("compilation_cache", "null or a directory")
    if not isinstance(run.get("overrides"), Mapping):
        raise bad("overrides", "a mapping of strategy keys to values")
    wb = run.get("wandb")
    if not isinstance(wb, Mapping) or not isinstance(wb.get("enabled"), bool):
        raise RunInputError(f"{CONFIG_FILE}: wandb.enabled: (allowed: true or false)")


def load_run_scenario(run: Mapping[str, Any]) -> ScenarioSpec:
    """The scenario of a run: `scenario_file` (must exist) or the library name `scenario`."""
    try:
        if run.get("scenario_file") is not None:
            path = Path(run["scenario_file"]).expanduser()
            if not path.is_file():
                raise RunInputError(
                    f"{path}: scenario_file: no such file (allowed: an existing scenario YAML)"
                )
            return load_scenario(path)
        return resolve_scenario(run["scenario"])
    except ScenarioError as e:
        raise RunInputError(_one_line(e)) from None


def paraphina_env(env: Mapping[str, str]) -> dict[str, str]:
    """The `PARAPHINA_*` variables of `env`, sorted."""
    return {k: env[k] for k in sorted(env) if k.startswith(PREFIX)}


def strategy_config(
    run: Mapping[str, Any], spec: ScenarioSpec, env: Mapping[str, str]
) -> tuple[StrategyConfig, list[str]]:
    """Profile (group values) → scenario → `overrides` → `PARAPHINA_*` knobs; validated."""
    try:
        cfg = config_from_dict(
            {"profile": run["profile"], "parity": run["parity"]}, source=CONFIG_FILE
        )
        cfg = scenario_config(spec, cfg)
        if run["overrides"]:
            cfg = apply_overrides(cfg, dict(run["overrides"]), source=f"{CONFIG_FILE}: overrides")
        cfg, notes = apply_env_knobs(cfg, env)
    except ConfigError as e:
        raise RunInputError(_one_line(e)) from None
    return cfg, notes


def check_wandb(run: Mapping[str, Any]) -> None:
    if run["wandb"]["enabled"] and os.environ.get("WANDB_MODE", "") != "disabled":
        try:
            import wandb  # noqa: F401
        except ModuleNotFoundError:
            raise RunInputError(
                f"{CONFIG_FILE}: wandb.enabled: true but wandb is not installed "
                f"(allowed: false, or `pip install paraphina_jax[wandb]`)"
            ) from None


def plan_job(
    overrides: Sequence[str],
    *,
    config_dir: Path = CONF_DIR,
    config_name: str = CONFIG_NAME,
    env: Mapping[str, str] | None = None,
    job_num: int | None = None,
    reserve: bool = True,
) -> RunPlan:
    """Compose, validate and (with `reserve`) reserve the run directory of one job."""
    env = dict(os.environ if env is None else env)
    overrides, profile_given = normalise_overrides(overrides)
    composed = compose(overrides, config_dir, config_name)
    run = run_keys(composed)
    check_run_keys(run)
    spec = load_run_scenario(run)
    try:
        name, source = resolve_profile(None, env, spec.profile)
    except ConfigError as e:
        raise RunInputError(_one_line(e)) from None
    if profile_given:
        source = "cli"
    elif name != run["profile"].get("name"):
        overrides = [*overrides, f"profile={name}"]
        composed = compose(overrides, config_dir, config_name)
        run = run_keys(composed)
    cfg, notes = strategy_config(run, spec, env)
    check_wandb(run)
    n_ticks = int(run["ticks"]) if run["ticks"] is not None else spec.horizon.steps
    final = run_dir_of(composed, job_num)
    run_dir = RunDir(final=final, staging=final)
    if reserve:
        try:
            run_dir = RunDir.reserve(final)
        except OutputError as e:
            raise RunInputError(str(e)) from None
    return RunPlan(
        run=run,
        overrides=list(overrides),
        spec=spec,
        cfg=cfg,
        profile_source=source,
        env=paraphina_env(env),
        env_notes=notes,
        run_dir=run_dir,
        n_ticks=n_ticks,
        job_num=job_num,
    )
