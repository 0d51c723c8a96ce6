"""Files of a run directory: reservation, atomic writers, Parquet table, resolved config.

A run directory is reserved by creating it empty (`mkdir` fails when it already exists, so a
run never writes into an existing directory); every output is written into a hidden sibling
staging directory, each file to a temporary name then renamed, and the staging directory finally
replaces the empty reserved one. A failed run leaves neither partial files nor the reservation.

Layout of a finished run directory:

```text
config.yaml                 resolved configuration (run keys, strategy config, scenario, env)
episodes.parquet            one row per episode (EpisodeTable columns + run labels)
summary.json                batch aggregate and tail risk (SIMULATION §9.2/§9.3 field names)
summary.txt                 what `run` printed after its header (Daily Summary, SUMMARY, BATCH)
telemetry_ep<i:04>.jsonl    per-tick telemetry (schema_version 1) of the first episodes
plots/*.png                 the plots of paraphina_jax.report.plots
```
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from paraphina_jax.config.types import CONFIG_GROUPS, StrategyConfig
from paraphina_jax.report.types import EpisodeTable

CONFIG_FILE = "config.yaml"
EPISODES_FILE = "episodes.parquet"
SUMMARY_JSON = "summary.json"
SUMMARY_TXT = "summary.txt"
PLOTS_DIR = "plots"


class OutputError(Exception):
    """The run directory cannot be used; the one-line message names the path and the reason."""


def telemetry_file(episode: int) -> str:
    """File name of one episode's per-tick telemetry."""
    return f"telemetry_ep{episode:04d}.jsonl"


# ---------------------------------------------------------------------------------------------
# Run directory
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class RunDir:
    """A reserved run directory and the staging directory the run writes into."""

    final: Path
    staging: Path
    committed: bool = False
    created: Path | None = None  # topmost parent directory created by the reservation

    @classmethod
    def reserve(cls, final: str | Path) -> RunDir:
        """Reserve `final` (must not exist) and create its staging sibling.

        Raises:
          OutputError: `final` exists, or its parent cannot be created or written.
        """
        final = Path(final)
        created = None
        for parent in reversed(final.parents):
            if not parent.exists():
                created = parent
                break
        if final.exists() or final.is_symlink():
            raise OutputError(
                f"{final}: run directory already exists (refusing to overwrite; choose another "
                f"hydra.run.dir)"
            )
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(
                tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
            )
            os.chmod(staging, 0o777 & ~_umask())
        except OSError as e:
            raise OutputError(
                f"{final.parent}: output directory not writable ({e.strerror or e})"
            ) from None
        try:
            final.mkdir()
        except FileExistsError:
            shutil.rmtree(staging, ignore_errors=True)
            raise OutputError(
                f"{final}: run directory already exists (refusing to overwrite; choose another "
                f"hydra.run.dir)"
            ) from None
        except OSError as e:
            shutil.rmtree(staging, ignore_errors=True)
            raise OutputError(f"{final}: cannot create run directory ({e.strerror or e})") from None
        return cls(final=final, staging=staging, created=created)

    def path(self, name: str) -> Path:
        """Where an output named `name` is written during the run (inside the staging dir)."""
        return self.staging / name

    def commit(self) -> Path:
        """Move the staged outputs into place (the reserved directory must still be empty)."""
        if any(self.final.iterdir()):
            raise OutputError(
                f"{self.final}: run directory was written by someone else during the run"
            )
        os.replace(self.staging, self.final)
        self.committed = True
        return self.final

    def abort(self) -> None:
        """Remove the staging directory and the (empty) reservation."""
        shutil.rmtree(self.staging, ignore_errors=True)
        if self.committed:
            return
        doomed = [self.final]
        if self.created is not None:
            doomed += [p for p in self.final.parents if self.created in (p, *p.parents)]
        for path in doomed:
            try:
                path.rmdir()
            except OSError:
                return


# ---------------------------------------------------------------------------------------------
# Atomic writers
# ---------------------------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[str], Any]) -> Path:
    """`write(tmp)` to a temporary file next to `path` (usual permissions), then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text(path: Path, text: str) -> Path:
    """Write `text` (UTF-8) through a temporary file and a rename."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _plain(x: Any) -> Any:
    """JSON/YAML-safe plain Python value (arrays to lists, NaN/inf to None)."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return [_plain(v) for v in x.tolist()]
    if isinstance(x, np.generic):
        return _plain(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: _plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    return x


def write_yaml(path: Path, obj: Mapping[str, Any]) -> Path:
    """Write a mapping as block YAML, keys in insertion order."""
    return write_text(path, yaml.safe_dump(_plain(obj), sort_keys=False, default_flow_style=False))


def write_json(path: Path, obj: Any) -> Path:
    """Write as indented JSON (NaN written as null)."""
    return write_text(path, json.dumps(_plain(obj), indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# Tables and config
# ---------------------------------------------------------------------------------------------


def episodes_dataframe(
    table: EpisodeTable, labels: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """One row per episode: the table's columns, then one constant column per label."""
    data: dict[str, Any] = {k: np.asarray(v) for k, v in table.columns.items()}
    data["final_regime"] = np.asarray(table.final_regime)
    df = pd.DataFrame(data)
    for k, v in (labels or {}).items():
        if k in df.columns:
            raise ValueError(f"label {k!r} collides with a result column")
        df[k] = v
    return df


def write_parquet(path: Path, df: pd.DataFrame) -> Path:
    """Write a DataFrame as Parquet (pyarrow, no index) through a temporary file."""
    return atomic_write(path, lambda tmp: df.to_parquet(tmp, engine="pyarrow", index=False))


def strategy_config_dict(cfg: StrategyConfig) -> dict[str, Any]:
    """The whole strategy config as a nested plain dict (groups, flags, profile)."""
    out: dict[str, Any] = {"profile": cfg.profile}
    for group in CONFIG_GROUPS:
        obj = getattr(cfg, group)
        out[group] = {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    out["flags"] = {
        f.name: _plain(getattr(cfg.flags, f.name)) for f in dataclasses.fields(cfg.flags)
    }
    return out


def resolved_config(
    run: Mapping[str, Any],
    cfg: StrategyConfig,
    scenario: Mapping[str, Any],
    info: Mapping[str, Any],
    env: Mapping[str, str],
) -> dict[str, Any]:
    """Everything that determined a run, for `config.yaml`.

    Args:
      run: the composed run keys (episodes, seed, ticks, …), Hydra node excluded.
      cfg: the final strategy config (profile, scenario, overrides and env knobs applied).
      scenario: the resolved scenario (defaults filled).
      info: facts of the run (profile source, backend, dtype, versions, command line).
      env: the `PARAPHINA_*` variables that were set.
    """
    return {
        "run": dict(run),
        "info": dict(info),
        "environment": {k: env[k] for k in sorted(env)},
        "scenario": dict(scenario),
        "strategy": strategy_config_dict(cfg),
    }
