"""Strict parser for suite files (SIMULATION.md §7.2, suite schema 2).

```text
suite_id: str (non-empty)    suite_version: int ≥ 1    repeat_runs: int ≥ 1 (default 1)
out_dir: str (default runs/ci)    env_overrides: {PARAPHINA_*: str} (default {})
scenarios: non-empty list of either {path: <scenario yaml>} or inline
    {id: str, seed: u64 (default 0), profile: str (default balanced),
     env_overrides: {VAR: str}, adversarial_params: {vol_multiplier, daily_loss_limit}}
invariants: {evidence_pack_valid: bool (default true), expect_kill_switch (default allowed)}
```
A relative `path` is resolved against the directory of the suite file. Unknown keys, wrong types
and out-of-range values are refused with a one-line :class:`ScenarioError` naming the file, the
key path and the allowed range.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from paraphina_jax.config.defaults import parse_profile
from paraphina_jax.scenarios.schema import (
    PROFILE_CHOICES,
    Field,
    Reader,
    choice_field,
    int_field,
    load_yaml,
    num_field,
)
from paraphina_jax.scenarios.types import (
    EXPECT_KILL,
    U64_MOD,
    AdversarialParams,
    ScenarioError,
)

SUITE_KEYS = (
    "suite_id",
    "suite_version",
    "repeat_runs",
    "out_dir",
    "env_overrides",
    "scenarios",
    "invariants",
)
INLINE_KEYS = ("id", "seed", "profile", "env_overrides", "adversarial_params")


@dataclasses.dataclass(frozen=True)
class SuiteEntry:
    """One suite entry: a path reference (`path`, `resolved`) or an inline scenario (`id` …)."""

    path: str | None = None
    resolved: Path | None = None
    id: str | None = None
    seed: int = 0
    profile: str = "balanced"
    env_overrides: tuple[tuple[str, str], ...] = ()
    adversarial_params: AdversarialParams | None = None

    @property
    def is_path(self) -> bool:
        return self.path is not None


@dataclasses.dataclass(frozen=True)
class SuiteSpec:
    """A parsed suite file."""

    suite_id: str
    suite_version: int
    scenarios: tuple[SuiteEntry, ...]
    repeat_runs: int = 1
    out_dir: str = "runs/ci"
    env_overrides: tuple[tuple[str, str], ...] = ()
    evidence_pack_valid: bool = True
    expect_kill_switch: str = "allowed"
    source: str = dataclasses.field(default="<memory>", compare=False)


def _env(r: Reader, raw: Any, path: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, Mapping):
        r.fail(path, "expected a mapping of variable names to strings", "{VAR: str}")
    out = []
    for key, val in raw.items():
        if not isinstance(key, str) or not key:
            r.fail(f"{path}.{key}", "variable name must be a non-empty string", "{VAR: str}")
        if not isinstance(val, str):
            r.fail(f"{path}.{key}", f"expected a string, got {type(val).__name__}", "str")
        out.append((key, val))
    return tuple(sorted(out))


def _entry(r: Reader, raw: Any, path: str, base_dir: Path) -> SuiteEntry:
    if isinstance(raw, Mapping) and "path" in raw:
        r.mapping(raw, path, ("path",))
        p = r.value(raw["path"], f"{path}.path", Field("str"))
        resolved = Path(p) if Path(p).is_absolute() else base_dir / p
        return SuiteEntry(path=p, resolved=resolved)
    m = r.mapping(raw, path, INLINE_KEYS)
    if "id" not in m:
        r.fail(f"{path}.id", "missing (an entry is {path: ...} or an inline scenario)", "str")
    sid = r.value(m["id"], f"{path}.id", Field("str"))
    seed = r.value(m.get("seed", 0), f"{path}.seed", int_field(0, U64_MOD - 1))
    profile = r.value(m.get("profile", "balanced"), f"{path}.profile", Field("str"))
    if parse_profile(profile) is None:
        r.fail(f"{path}.profile", f"unknown risk profile {profile!r}", PROFILE_CHOICES)
    env = _env(r, m["env_overrides"], f"{path}.env_overrides") if "env_overrides" in m else ()
    adv = None
    if "adversarial_params" in m:
        adv = AdversarialParams(
            **r.block(
                m["adversarial_params"],
                f"{path}.adversarial_params",
                {
                    "vol_multiplier": num_field(0, 10, lo_open=True),
                    "daily_loss_limit": num_field(0, 1e9, lo_open=True),
                },
            )
        )
    return SuiteEntry(id=sid, seed=seed, profile=profile, env_overrides=env, adversarial_params=adv)


def parse_suite(data: Any, source: str = "<memory>", base_dir: str | Path = ".") -> SuiteSpec:
    """Validate a loaded suite document; relative scenario paths resolve against `base_dir`."""
    r = Reader(str(source))
    m = r.mapping(data, "", SUITE_KEYS)
    for key in ("suite_id", "suite_version", "scenarios"):
        if key not in m:
            r.fail(key, "missing", "required key")
    sid = r.value(m["suite_id"], "suite_id", Field("str"))
    version = r.value(m["suite_version"], "suite_version", int_field(1, 1e6))
    repeat = r.value(m.get("repeat_runs", 1), "repeat_runs", int_field(1, 1e6))
    out_dir = r.value(m.get("out_dir", "runs/ci"), "out_dir", Field("str"))
    env = _env(r, m["env_overrides"], "env_overrides") if "env_overrides" in m else ()
    raw = m["scenarios"]
    if not isinstance(raw, list) or not raw:
        r.fail("scenarios", "expected a non-empty list", "list of {path} or inline entries")
    entries = tuple(_entry(r, e, f"scenarios[{i}]", Path(base_dir)) for i, e in enumerate(raw))
    inv = {"evidence_pack_valid": True, "expect_kill_switch": "allowed"}
    if "invariants" in m:
        inv = r.block(
            m["invariants"],
            "invariants",
            {
                "evidence_pack_valid": Field("bool"),
                "expect_kill_switch": choice_field(*EXPECT_KILL),
            },
            inv,
        )
    return SuiteSpec(
        suite_id=sid,
        suite_version=version,
        scenarios=entries,
        repeat_runs=repeat,
        out_dir=out_dir,
        env_overrides=env,
        evidence_pack_valid=inv["evidence_pack_valid"],
        expect_kill_switch=inv["expect_kill_switch"],
        source=str(source),
    )


def load_suite(path: str | Path) -> SuiteSpec:
    """Read and parse a suite file (paths relative to the suite file's directory)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(
            f"{p}: <file>: cannot read ({type(e).__name__}) (allowed: a UTF-8 YAML file)"
        ) from None
    return parse_suite(load_yaml(text, str(p)), str(p), p.parent)
