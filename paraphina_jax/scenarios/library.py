"""Scenario library v1 (SIMULATION.md §7.3, §14): the ten scenarios, suites and manifest.

The library is generated deterministically from :mod:`paraphina_jax.scenarios.catalogue` (static text, stable names
`<scenario_id>.yaml`, a README, `suites/smoke.yaml`, `suites/full.yaml`) and sealed by
`manifest_sha256.json`. The manifest lists exactly 11 files (the 10 YAML files and README.md),
as in §7.3; the suites are not hashed but :func:`verify_manifest` checks them structurally (they
exist, parse, reference only manifest-listed scenarios, and list exactly the smoke / full sets).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

from paraphina_jax.scenarios.catalogue import (
    ALIASES,
    FULL_SUITE,
    GENERATOR_MODULE,
    GENERATOR_VERSION,
    ID_PREFIX,
    LIBRARY,
    LIBRARY_DIR,
    MANIFEST_NAME,
    MANIFEST_SCHEMA_VERSION,
    MANIFEST_SEED,
    README_NAME,
    SMOKE_SHORT,
    SMOKE_SUITE,
    SUITES_DIR,
    LibraryEntry,
    readme_text,
    scenario_text,
    suite_text,
)
from paraphina_jax.scenarios.compile import describe_shocks
from paraphina_jax.scenarios.schema import load_scenario, parse_scenario_text
from paraphina_jax.scenarios.suite import load_suite
from paraphina_jax.scenarios.types import ScenarioError, ScenarioSpec


def library_files() -> dict[str, str]:
    """Relative path -> text of every generated file except the manifest."""
    files = {e.filename: scenario_text(e) for e in LIBRARY}
    files[README_NAME] = readme_text()
    files[f"{SUITES_DIR}/{SMOKE_SUITE}"] = suite_text(SMOKE_SUITE)
    files[f"{SUITES_DIR}/{FULL_SUITE}"] = suite_text(FULL_SUITE)
    return files


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_text(sealed: dict[str, bytes]) -> str:
    """Manifest JSON (§7.3) over `sealed` (file name -> bytes): keys sorted, indent 2, newline."""
    obj = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "seed": MANIFEST_SEED,
        "generated_by": {"module": GENERATOR_MODULE, "version": GENERATOR_VERSION},
        "scenario_count": sum(1 for n in sealed if n.endswith(".yaml")),
        "files": {n: sha256_hex(b) for n, b in sealed.items()},
    }
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(text.encode("utf-8"))
    os.replace(tmp, path)


def write_library(out_dir: str | Path | None = None) -> list[Path]:
    """Write the library (scenarios, README, suites, then the manifest) into `out_dir`.

    Deterministic: the same bytes on every call. Returns the written paths.
    """
    root = Path(out_dir) if out_dir is not None else LIBRARY_DIR
    (root / SUITES_DIR).mkdir(parents=True, exist_ok=True)
    files = library_files()
    written = []
    for rel, text in files.items():
        _write_atomic(root / rel, text)
        written.append(root / rel)
    sealed = {n: t.encode("utf-8") for n, t in files.items() if "/" not in n}
    _write_atomic(root / MANIFEST_NAME, manifest_text(sealed))
    written.append(root / MANIFEST_NAME)
    return written


def load_library(directory: str | Path | None = None) -> dict[str, ScenarioSpec]:
    """Parse every top-level `*.yaml` of a library directory, keyed by scenario_id (file order).

    Without `directory`: the shipped `scenarios/v1/` when present, else the generated text.
    """
    root = Path(directory) if directory is not None else LIBRARY_DIR
    if directory is None and not root.is_dir():
        specs = [parse_scenario_text(scenario_text(e), e.filename) for e in LIBRARY]
        return {s.scenario_id: s for s in sorted(specs, key=lambda s: s.source)}
    out: dict[str, ScenarioSpec] = {}
    for path in sorted(root.glob("*.yaml")):
        spec = load_scenario(path)
        if spec.scenario_id in out:
            raise ScenarioError(
                f"{path}: scenario_id: {spec.scenario_id!r} already used by "
                f"{out[spec.scenario_id].source} (allowed: unique ids)"
            )
        out[spec.scenario_id] = spec
    return out


def _library_spec(e: LibraryEntry, library_dir: Path | None) -> ScenarioSpec:
    root = library_dir if library_dir is not None else LIBRARY_DIR
    path = root / e.filename
    if path.is_file():
        return load_scenario(path)
    if library_dir is not None:
        raise ScenarioError(f"{path}: <file>: missing (allowed: an existing scenario file)")
    return parse_scenario_text(scenario_text(e), e.filename)


def resolve_scenario(
    name_or_path: str | Path, library_dir: str | Path | None = None
) -> ScenarioSpec:
    """A scenario from a file path, a library id (`slib_v1_basis_pos`) or a short name.

    Short names: `basis_pos`, `basis_spike_pos`, `vol_medium`, … (case-insensitive). A path that
    does not exist is also looked up by file name in the library directory.
    """
    lib = Path(library_dir) if library_dir is not None else None
    text = str(name_or_path).strip()
    path = Path(text)
    if path.is_file():
        return load_scenario(path)
    looks_like_path = path.suffix in (".yaml", ".yml") or "/" in text or os.sep in text
    if looks_like_path:
        candidate = (lib if lib is not None else LIBRARY_DIR) / path.name
        if candidate.is_file():
            return load_scenario(candidate)
        entry = ALIASES.get(path.stem.lower())
        if entry is None:
            raise ScenarioError(
                f"{text}: <file>: not found (allowed: an existing scenario file or a library name)"
            )
        return _library_spec(entry, lib)
    entry = ALIASES.get(text.lower())
    if entry is None:
        names = ", ".join(e.short for e in LIBRARY)
        raise ScenarioError(
            f"{text}: <name>: unknown scenario (allowed: a file path, {ID_PREFIX}<name> or one "
            f"of {names})"
        )
    return _library_spec(entry, lib)


@dataclasses.dataclass(frozen=True)
class ScenarioRow:
    """One row of `scenarios list`."""

    scenario_id: str
    category: str
    profile: str
    horizon: str
    shock: str
    source: str


def list_scenarios(directory: str | Path | None = None) -> list[ScenarioRow]:
    """Rows (id, category, profile, horizon, shock) of every scenario of a library directory."""
    rows = []
    for spec in load_library(directory).values():
        h = spec.horizon
        rows.append(
            ScenarioRow(
                scenario_id=spec.scenario_id,
                category=spec.category,
                profile=spec.profile,
                horizon=f"{h.steps} x {h.dt_seconds:g}s",
                shock=describe_shocks(spec),
                source=spec.source,
            )
        )
    return rows


def _verify_suites(root: Path, listed: set[str]) -> list[str]:
    problems: list[str] = []
    sdir = root / SUITES_DIR
    if not sdir.is_dir():
        return [f"{SUITES_DIR}/: missing"]
    expected = {
        SMOKE_SUITE: [f"{ID_PREFIX}{s}.yaml" for s in SMOKE_SHORT],
        FULL_SUITE: sorted(e.filename for e in LIBRARY),
    }
    for name in sorted(expected):
        if not (sdir / name).is_file():
            problems.append(f"{SUITES_DIR}/{name}: missing")
    for path in sorted(sdir.iterdir()):
        rel = f"{SUITES_DIR}/{path.name}"
        if not path.is_file() or path.suffix != ".yaml":
            problems.append(f"{rel}: extra file (not a suite .yaml)")
            continue
        try:
            suite = load_suite(path)
        except ScenarioError as e:
            problems.append(f"{rel}: {e}")
            continue
        names = []
        for i, entry in enumerate(suite.scenarios):
            if not entry.is_path or entry.resolved is None:
                continue
            target = entry.resolved
            inside = target.resolve().parent == root.resolve()
            if not inside or target.name not in listed:
                problems.append(
                    f"{rel}: scenarios[{i}].path: {entry.path!r} is not a manifest-listed scenario"
                )
            elif not target.is_file():
                problems.append(f"{rel}: scenarios[{i}].path: {entry.path!r} missing")
            names.append(target.name)
        if path.name in expected and names != expected[path.name]:
            problems.append(f"{rel}: lists {names} (expected {expected[path.name]})")
    return problems


def verify_manifest(directory: str | Path | None = None) -> list[str]:
    """Check a library directory against its manifest; returns problems (empty = ok).

    Reported by file name: a changed file (sha256 mismatch), a listed file that is missing, an
    extra file not in the manifest, a scenario file that fails the schema, manifest fields
    (schema_version ≠ 1, scenario_count), and suite problems (see module docstring).
    """
    root = Path(directory) if directory is not None else LIBRARY_DIR
    if not root.is_dir():
        return [f"{root}: not a directory"]
    mpath = root / MANIFEST_NAME
    if not mpath.is_file():
        return [f"{MANIFEST_NAME}: missing"]
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return [f"{MANIFEST_NAME}: unreadable ({type(e).__name__}: {e})"]
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        return [f"{MANIFEST_NAME}: 'files' must map file names to sha256 hex strings"]
    problems: list[str] = []
    if manifest.get("schema_version") != MANIFEST_SCHEMA_VERSION:
        problems.append(
            f"{MANIFEST_NAME}: schema_version {manifest.get('schema_version')!r} (expected 1)"
        )
    n_yaml = sum(1 for n in files if n.endswith(".yaml"))
    if manifest.get("scenario_count") != n_yaml:
        problems.append(
            f"{MANIFEST_NAME}: scenario_count {manifest.get('scenario_count')!r} "
            f"(the manifest lists {n_yaml} scenario files)"
        )
    for name in sorted(files):
        path = root / name
        if Path(name).name != name or name.startswith("."):
            problems.append(f"{name}: not a plain file name in the manifest")
            continue
        if not path.is_file():
            problems.append(f"{name}: missing")
            continue
        got = sha256_hex(path.read_bytes())
        if got != files[name]:
            problems.append(
                f"{name}: changed (sha256 {got[:16]}..., manifest {files[name][:16]}...)"
            )
        if name.endswith(".yaml"):
            try:
                load_scenario(path)
            except ScenarioError as e:
                problems.append(f"{name}: {e}")
    for path in sorted(root.iterdir()):
        if path.name in files or path.name == MANIFEST_NAME:
            continue
        if path.name == SUITES_DIR and path.is_dir():
            continue
        problems.append(f"{path.name}: extra file (not in the manifest)")
    problems.extend(_verify_suites(root, set(files)))
    return problems
