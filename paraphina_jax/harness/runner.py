"""`run_many`: run a list of `paraphina-jax run` jobs (or commands) and parse what they print.

In-process by default: each spec calls `paraphina_jax.cli.run_cmd.main(overrides)` with stdout
and stderr captured, its env overlay applied to `os.environ` and its working directory entered
for the duration of the run (both restored after). Runs of equal shapes reuse the compiled
program of the first one. `in_process=False` (or a spec with `command`) starts a subprocess
instead, as the original orchestrator does. Metrics come from the printed text: the Daily
Summary (:func:`~paraphina_jax.report.summary.parse_daily_summary`) and the batch `SUMMARY`
block (:func:`~paraphina_jax.report.summary.parse_mc_summary`), parsed even on failure.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from paraphina_jax.harness.types import RunResult, RunSpec
from paraphina_jax.report.summary import parse_daily_summary, parse_mc_summary, parse_run_dir

SpecLike = RunSpec | Mapping[str, Any] | Sequence[str]


def _value(v: Any) -> str:
    """A Python value as a Hydra override value."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, Mapping | list | tuple):
        return json.dumps(v)
    return str(v)


def override_list(overrides: Sequence[str] | Mapping[str, Any]) -> list[str]:
    """`key=value` strings from a list (kept) or a mapping."""
    if isinstance(overrides, Mapping):
        return [f"{k}={_value(v)}" for k, v in overrides.items()]
    return [str(o) for o in overrides]


def as_spec(item: SpecLike) -> RunSpec:
    """A :class:`RunSpec` from a spec, a dict of RunSpec fields, or a list of overrides."""
    if isinstance(item, RunSpec):
        return item
    if isinstance(item, Mapping):
        unknown = set(item) - set(RunSpec.__dataclass_fields__)
        if unknown:
            raise ValueError(f"run spec: unknown fields {sorted(unknown)}")
        return RunSpec(**item)
    if isinstance(item, str):
        raise TypeError("run spec: a single string; pass a list of overrides")
    return RunSpec(overrides=list(item))


@contextlib.contextmanager
def _overlay(env: Mapping[str, str], cwd: str | None) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in env}
    old_cwd = os.getcwd()
    try:
        os.environ.update({k: str(v) for k, v in env.items()})
        if cwd is not None:
            os.chdir(cwd)
        yield
    finally:
        os.chdir(old_cwd)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _in_process(args: list[str], spec: RunSpec) -> tuple[int, str, str]:
    from paraphina_jax.cli.run_cmd import main

    out, err = io.StringIO(), io.StringIO()
    with (
        _overlay(spec.env, spec.cwd),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            rc = int(main(args))
        except SystemExit as e:  # defensive: main returns codes, never exits
            rc = int(e.code) if isinstance(e.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


def _subprocess(cmd: list[str], spec: RunSpec) -> tuple[int, str, str]:
    env = {**os.environ, **{k: str(v) for k, v in spec.env.items()}}
    proc = subprocess.run(cmd, env=env, cwd=spec.cwd, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def parse_metrics(stdout: str) -> dict[str, Any]:
    """Daily Summary metrics plus `batch_<name>` metrics of the SUMMARY block."""
    metrics: dict[str, Any] = parse_daily_summary(stdout)
    metrics.update({f"batch_{k}": v for k, v in parse_mc_summary(stdout).items()})
    return metrics


def run_many(
    specs: Sequence[SpecLike],
    *,
    out_root: str | os.PathLike[str] | None = None,
    in_process: bool = True,
    progress: bool = False,
    base_overrides: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Run every spec in order; returns one result dict per spec (:class:`RunResult` fields).

    Args:
      specs: :class:`RunSpec` objects, dicts of their fields, or plain override lists.
      out_root: parent of the run directories (`<out_root>/<run_id>`, each must not exist);
        default `runs/harness/<timestamp>`. Ignored for specs with a `command`.
      in_process: call `run` in this process (shares compiled programs) or start subprocesses.
      progress: show each run's progress bar (off: the bar would go to the captured stderr).
      base_overrides: overrides put before every spec's own (e.g. `["+debug=tiny"]`).

    Returns:
      `[{run_id, label, metrics, duration_s, returncode, stdout, stderr, run_dir}]`; metrics are
      :func:`parse_metrics` of the run's stdout, parsed whatever the return code.
    """
    root = (
        Path(out_root)
        if out_root is not None
        else Path("runs/harness") / datetime.now().strftime("%Y-%m-%d/%H-%M-%S-%f")
    )
    results = []
    for i, item in enumerate(specs):
        spec = as_spec(item)
        run_id = spec.run_id or f"run_{i:04d}"
        if spec.command is not None:
            cmd = [str(c) for c in spec.command]
            t0 = time.perf_counter()
            rc, out, err = _subprocess(cmd, spec)
        else:
            run_dir = root.resolve() / run_id
            args = [
                f"progress={_value(progress)}",
                *base_overrides,
                *override_list(spec.overrides),
                f"hydra.run.dir={run_dir}",
            ]
            t0 = time.perf_counter()
            if in_process:
                rc, out, err = _in_process(args, spec)
            else:
                cmd = [sys.executable, "-m", "paraphina_jax.cli.main", "run", *args]
                rc, out, err = _subprocess(cmd, spec)
        duration = time.perf_counter() - t0
        res = RunResult(
            run_id=run_id,
            label=dict(spec.label),
            metrics=parse_metrics(out),
            duration_s=duration,
            returncode=rc,
            stdout=out,
            stderr=err,
            run_dir=parse_run_dir(out),
        )
        results.append(res.to_dict())
    return results
