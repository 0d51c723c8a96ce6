"""Batch-harness types (SIMULATION.md §10 orchestrator contract).

A run spec is (command or `run` overrides, env overlay, label, run id, working dir); a result is
(run id, label, parsed metrics, duration, return code, stdout, stderr, run directory).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of a batch.

    Attributes:
      overrides: Hydra overrides of `paraphina-jax run` (`["scenario=basis_pos", "seed=7"]`), or
        a mapping `{key: value}` turned into `key=value` strings.
      label: free-form label columns of the result row (`{"profile": "cons", "q0": 5}`).
      env: environment overlay merged over the process environment (`PARAPHINA_*` knobs).
      run_id: name of the run (default `run_<index:04d>`); also the run directory's name.
      cwd: working directory of the run (default: the current one).
      command: an arbitrary command line to run instead of `paraphina-jax run` (always a
        subprocess); its stdout is parsed the same way.
    """

    overrides: Sequence[str] | Mapping[str, Any] = ()
    label: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    run_id: str | None = None
    cwd: str | None = None
    command: Sequence[str] | None = None


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What one run gave (`metrics` are parsed even when `returncode != 0`)."""

    run_id: str
    label: Mapping[str, Any]
    metrics: Mapping[str, Any]
    duration_s: float
    returncode: int
    stdout: str
    stderr: str
    run_dir: str | None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
