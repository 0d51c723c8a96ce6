"""Scenario library v1 (SIMULATION.md §7.3, §14): the ten scenarios, suites and manifest.

The library is generated deterministically from the catalogue below (static text, stable names
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

from paraphina_jax.scenarios.compile import describe_shocks
from paraphina_jax.scenarios.schema import load_scenario, parse_scenario_text
from paraphina_jax.scenarios.suite import load_suite
from paraphina_jax.scenarios.types import ScenarioError, ScenarioSpec

GENERATOR_MODULE = "paraphina_jax.scenarios.library"
GENERATOR_VERSION = "1.0.0"
MANIFEST_SEED = 20260105
MANIFEST_SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest_sha256.json"
README_NAME = "README.md"
SUITES_DIR = "suites"
SMOKE_SUITE = "smoke.yaml"
FULL_SUITE = "full.yaml"
LIBRARY_DIR = Path(__file__).resolve().parents[2] / "scenarios" / "v1"
ID_PREFIX = "slib_v1_"


@dataclasses.dataclass(frozen=True)
class LibraryEntry:
    """One library scenario (a row of the §7.3 table) and the YAML of its shock block."""

    short: str
    category: str
    title: str
    base_seed: int
    profile: str
    init_q_tao: float
    process: str
    vol: float
    taker_bps: float
    latency_ms: float
    shock_yaml: str = ""
    jump_intensity: float = 0.0
    jump_sigma: float = 0.0
    aliases: tuple[str, ...] = ()

    @property
    def scenario_id(self) -> str:
        return ID_PREFIX + self.short

    @property
    def filename(self) -> str:
        return self.scenario_id + ".yaml"


# fmt: off
LIBRARY: tuple[LibraryEntry, ...] = (
    LibraryEntry(
        "vol_low", "vol_regime", "Low volatility regime (vol 0.008 per day)",
        1000, "balanced", 0.0, "gbm", 0.008, 0.5, 2.0,
        aliases=("vol_regime_low", "low_vol"),
    ),
    LibraryEntry(
        "vol_medium", "vol_regime", "Medium volatility regime (vol 0.015 per day)",
        1001, "balanced", 0.0, "gbm", 0.015, 0.5, 2.0,
        aliases=("vol_regime_medium", "vol_med", "medium_vol"),
    ),
    LibraryEntry(
        "vol_high", "vol_regime",
        "High volatility regime with jumps (vol 0.035 per day, 0.0003 jumps/step of sigma 0.02)",
        1002, "balanced", 0.0, "jump_diffusion_stub", 0.035, 1.0, 5.0,
        jump_intensity=0.0003, jump_sigma=0.02,
        aliases=("vol_regime_high", "high_vol"),
    ),
    LibraryEntry(
        "liq_spread", "liquidity_shock", "Spread widening shock (+50 bp on every venue)",
        2000, "conservative", 10.0, "gbm", 0.018, 1.5, 10.0,
        shock_yaml=(
            "# Liquidity shock: every venue's spread widened by 50 bp of the price, whole episode\n"
            "spread_shock_bps: 50.0\n"
        ),
        aliases=("liquidity_shock_spread", "liquidity_spread", "spread_shock"),
    ),
    LibraryEntry(
        "liq_depth", "liquidity_shock", "Depth thinning shock (-60% book depth on every venue)",
        2001, "conservative", -10.0, "gbm", 0.018, 1.5, 10.0,
        shock_yaml=(
            "# Liquidity shock: every venue's depth x 0.4, whole episode\n"
            "depth_shock_pct: -60.0\n"
        ),
        aliases=("liquidity_shock_depth", "liquidity_depth", "depth_shock"),
    ),
    LibraryEntry(
        "venue_outage", "venue_outage", "Venue 0 out on steps 300-700",
        3000, "balanced", 5.0, "gbm", 0.015, 0.8, 5.0,
        shock_yaml=(
            "# Venue outage: venue 0 gets no book updates, is Disabled and rejects orders on\n"
            "# steps 300-700 (inclusive)\n"
            "venue_outage:\n"
            "  venue_index: 0\n"
            "  start_step: 300\n"
            "  end_step: 700\n"
        ),
        aliases=("outage",),
    ),
    LibraryEntry(
        "fund_flip", "funding_inversion", "Funding sign flip at step 500",
        4000, "balanced", 0.0, "gbm", 0.012, 0.5, 3.0,
        shock_yaml=(
            "# Funding inversion: every venue's funding rate changes sign from step 500 on\n"
            "funding_inversion:\n"
            "  type: sign_flip\n"
            "  trigger_step: 500\n"
        ),
        aliases=("funding_inversion_flip", "funding_flip", "funding_sign_flip"),
    ),
    LibraryEntry(
        "fund_drift", "funding_inversion", "Funding drift of +0.5 bp per step from step 200",
        4001, "balanced", 0.0, "gbm", 0.012, 0.5, 3.0,
        shock_yaml=(
            "# Funding drift: funding per 8 h rises by 0.5 bp per step from step 200 on\n"
            "funding_drift:\n"
            "  drift_bps_per_step: 0.5\n"
            "  start_step: 200\n"
        ),
        aliases=("funding_inversion_drift", "funding_drift"),
    ),
    LibraryEntry(
        "basis_pos", "basis_spike", "Positive basis spike: venue 1 mid +100 bp on steps 400-599",
        5000, "balanced", 0.0, "gbm", 0.015, 0.8, 5.0,
        shock_yaml=(
            "# Basis spike: venue 1 mid x (1 + 100e-4) on steps [400, 600)\n"
            "basis_spike:\n"
            "  magnitude_bps: 100.0\n"
            "  venue_index: 1\n"
            "  trigger_step: 400\n"
            "  duration_steps: 200\n"
        ),
        aliases=("basis_spike_pos", "basis_spike_positive"),
    ),
    LibraryEntry(
        "basis_neg", "basis_spike", "Negative basis spike: venue 1 mid -100 bp on steps 400-599",
        5001, "balanced", 0.0, "gbm", 0.015, 0.8, 5.0,
        shock_yaml=(
            "# Basis spike: venue 1 mid x (1 - 100e-4) on steps [400, 600)\n"
            "basis_spike:\n"
            "  magnitude_bps: -100.0\n"
            "  venue_index: 1\n"
            "  trigger_step: 400\n"
            "  duration_steps: 200\n"
        ),
        aliases=("basis_spike_neg", "basis_spike_negative"),
    ),
)
# fmt: on
SMOKE_SHORT: tuple[str, ...] = (
    "vol_medium",
    "liq_spread",
    "venue_outage",
    "fund_flip",
    "basis_pos",
)


def _alias_table() -> dict[str, LibraryEntry]:
    table: dict[str, LibraryEntry] = {}
    for e in LIBRARY:
        for name in (
            e.short,
            e.scenario_id,
            f"{e.category}_{e.short.split('_', 1)[-1]}",
            *e.aliases,
        ):
            table.setdefault(name.lower(), e)
    return table


_ALIASES = _alias_table()


def _num(x: float) -> str:
    return repr(float(x))


def scenario_text(e: LibraryEntry) -> str:
    """The static YAML text of one library scenario."""
    shock = f"{e.shock_yaml}\n" if e.shock_yaml else ""
    return (
        f"# Scenario library v1 - {e.category}: {e.title}\n"
        f"# Generated deterministically by {GENERATOR_MODULE} v{GENERATOR_VERSION}; do not edit.\n"
        "# Regenerate with `paraphina-jax scenarios generate` and check with\n"
        "# `paraphina-jax scenarios verify` (manifest_sha256.json seals this file).\n"
        "\n"
        f"scenario_id: {e.scenario_id}\n"
        "scenario_version: 1\n"
        "engine: rl_sim_env\n"
        "\n"
        "horizon:\n"
        "  steps: 1500\n"
        "  dt_seconds: 0.25\n"
        "\n"
        "rng:\n"
        f"  base_seed: {e.base_seed}\n"
        "  num_seeds: 3\n"
        "\n"
        "initial_state:\n"
        f"  risk_profile: {e.profile}\n"
        f"  init_q_tao: {_num(e.init_q_tao)}\n"
        "\n"
        "market_model:\n"
        "  type: synthetic\n"
        "  synthetic:\n"
        f"    process: {e.process}\n"
        "    params:\n"
        f"      vol: {_num(e.vol)}\n"
        "      drift: 0.0\n"
        f"      jump_intensity: {_num(e.jump_intensity)}\n"
        f"      jump_sigma: {_num(e.jump_sigma)}\n"
        "\n"
        "microstructure_model:\n"
        "  fees_bps_maker: 0.0\n"
        f"  fees_bps_taker: {_num(e.taker_bps)}\n"
        f"  latency_ms: {_num(e.latency_ms)}\n"
        "\n"
        f"{shock}"
        "invariants:\n"
        "  expect_kill_switch: allowed\n"
        "  pnl_linearity_check: disabled\n"
    )


def suite_text(name: str) -> str:
    """Static YAML of `suites/smoke.yaml` or `suites/full.yaml` (paths relative to suites/)."""
    if name == SMOKE_SUITE:
        by_short = {e.short: e for e in LIBRARY}
        files = [by_short[s].filename for s in SMOKE_SHORT]
        sid, title, out = "scenario_library_smoke_v1", "Smoke subset (CI, 5 scenarios)", "smoke"
    elif name == FULL_SUITE:
        files = sorted(e.filename for e in LIBRARY)
        sid, title, out = "scenario_library_v1", "Full library (10 scenarios)", "full"
    else:
        raise ScenarioError(
            f"{name}: <suite>: unknown library suite (allowed: {SMOKE_SUITE}, {FULL_SUITE})"
        )
    lines = "".join(f"  - path: ../{f}\n" for f in files)
    return (
        f"# Scenario library v1 - {title}\n"
        f"# Generated deterministically by {GENERATOR_MODULE} v{GENERATOR_VERSION}; do not edit.\n"
        "# Scenario paths are relative to this file's directory.\n"
        "\n"
        f"suite_id: {sid}\n"
        "suite_version: 1\n"
        "repeat_runs: 1\n"
        f"out_dir: runs/ci/scenario_library_v1_{out}\n"
        "\n"
        "scenarios:\n"
        f"{lines}"
    )


def _table_rows() -> str:
    rows = []
    for e in LIBRARY:
        jumps = f"{e.jump_intensity:g}, {e.jump_sigma:g}" if e.jump_intensity else "-"
        proc = "jump" if e.process == "jump_diffusion_stub" else e.process
        spec = parse_scenario_text(scenario_text(e), e.filename)
        q0 = f"{e.init_q_tao:+g}" if e.init_q_tao else "0"
        rows.append(
            f"| {e.scenario_id} | {e.category} | {e.base_seed} | {e.profile} | {q0} "
            f"| {proc} {e.vol:g} | {jumps} | {e.taker_bps:g} | {e.latency_ms:g} "
            f"| {describe_shocks(spec)} |\n"
        )
    return "".join(rows)


def readme_text() -> str:
    """The static README of the library (schema, semantics, scenarios, suites, manifest)."""
    return (
        "# Scenario library v1\n"
        "\n"
        f"Generated deterministically by `{GENERATOR_MODULE}` v{GENERATOR_VERSION}\n"
        f"(manifest seed {MANIFEST_SEED}). Do not edit the files by hand: regenerate with\n"
        "`paraphina-jax scenarios generate` and check with `paraphina-jax scenarios verify`.\n"
        "\n"
        "## Scenarios\n"
        "\n"
        "All ten: engine `rl_sim_env`, 1500 steps of 0.25 s, 3 seeds (`base_seed + k`, k = 0..2),\n"
        "drift 0, maker fee 0 bp, invariants `allowed` / `disabled`. Volatility is per day; jump\n"
        "intensity is the expected number of jumps per step.\n"
        "\n"
        "| id | category | base seed | profile | q0 (TAO) | process / vol | jumps (per step, sigma) "
        "| taker bp | latency ms | shock |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
        f"{_table_rows()}"
        "\n"
        "Short names accepted by `resolve_scenario` and the CLI: the id without `slib_v1_`\n"
        "(`basis_pos`), the category form (`basis_spike_pos`), the id itself, or a file path.\n"
        "\n"
        "## Schema (`scenario_version: 1`, strict)\n"
        "\n"
        "```text\n"
        "scenario_id          required; [A-Za-z0-9][A-Za-z0-9_.-]*\n"
        "scenario_version     required; 1\n"
        "engine               rl_sim_env | core_sim | replay_stub            (default rl_sim_env)\n"
        "horizon              {steps [1, 1e7], dt_seconds [0.001, 3600]}        (default {1000, 1.0})\n"
        "rng                  {base_seed [0, 2^64-1], num_seeds [1, 100000]}    (default {42, 1})\n"
        "initial_state        {risk_profile, init_q_tao [-1e4, 1e4]}      (default {balanced, 0})\n"
        "market_model         {type: synthetic | historical_stub,\n"
        "                      synthetic: {process: gbm | jump_diffusion_stub,\n"
        "                                  params: {vol [0, 10], drift [-10, 10],\n"
        "                                           jump_intensity [0, 1], jump_sigma [0, 1]}},\n"
        "                      historical_stub: {dataset_id}}\n"
        "                     (default synthetic gbm, vol 0.015, drift 0, no jumps)\n"
        "microstructure_model {fees_bps_maker [-100, 100], fees_bps_taker [-100, 100],\n"
        "                      latency_ms [0, 60000]}                        (default {0, 0, 0})\n"
        "invariants           {expect_kill_switch: always | never | allowed,\n"
        "                      pnl_linearity_check: enabled | disabled}   (default allowed/disabled)\n"
        "partial_fill         {enabled, base_fill_prob [0, 1], latency_sensitivity [0, 1],\n"
        "                      latency_ref_ms (0, 1e6], depth_ref (0, 1e12], min_fill_frac [0, 1],\n"
        "                      max_fill_frac [min_fill_frac, 1], apply_to_mm}   (default disabled)\n"
        "latency_spike        {spike_ms [0, 60000], start_step, end_step}\n"
        "cancel_storm         {start_step, end_step, spread_mult (0, 100], depth_mult [0, 100],\n"
        "                      toxicity_floor [0, 1]}\n"
        "spread_shock_bps     [0, 10000]\n"
        "depth_shock_pct      [-100, 1000]\n"
        "venue_outage         {venue_index [0, N-1], start_step, end_step}\n"
        "funding_inversion    {type: sign_flip, trigger_step}\n"
        "funding_drift        {drift_bps_per_step [-100, 100], start_step}\n"
        "basis_spike          {magnitude_bps [-5000, 5000], venue_index [0, N-1], trigger_step,\n"
        "                      duration_steps [1, T - trigger_step]}\n"
        "adversarial_params   {vol_multiplier (0, 10], daily_loss_limit (0, 1e9]}\n"
        "```\n"
        "\n"
        "Steps are 0-based tick indices `t` in `[0, T-1]` (`T` = horizon.steps); `end_step` is\n"
        "inclusive and not before `start_step`. Defaults apply per block: an absent block takes its\n"
        "defaults, a present block must give every field, except `synthetic.params` (a missing\n"
        "field is 0) and `invariants` (a missing field is allowed / disabled). Stricter than the\n"
        "original evaluator: unknown or duplicate keys, wrong types, non-finite numbers, values out\n"
        "of range, windows outside the horizon, venue indices outside the venue table, an\n"
        "incomplete `partial_fill` block and jump parameters with `process: gbm` are refused with\n"
        "one line naming the file, the key path and the allowed range.\n"
        "\n"
        "## Overlay semantics (per tick `t`, every venue unless a venue is named)\n"
        "\n"
        "```text\n"
        "spread_shock_bps x    spread += x * 1e-4 * S_t                             whole episode\n"
        "depth_shock_pct p     depth  *= 1 + p/100                                  whole episode\n"
        "venue_outage          no book updates, status Disabled, orders rejected   t in [start, end]\n"
        "funding_inversion     f8 <- -f8                                             t >= trigger\n"
        "funding_drift         f8 += drift * 1e-4 * max(0, t - start)\n"
        "basis_spike           venue mid *= 1 + magnitude * 1e-4          t in [trigger, trigger+duration)\n"
        "latency_spike         latency = spike_ms                                  t in [start, end]\n"
        "cancel_storm          spread *=, depth *=, toxicity >= floor              t in [start, end]\n"
        "```\n"
        "\n"
        "Funding scenarios run with a baseline funding of +1e-4 per 8 h on every venue (unless\n"
        "domain-randomised funding is on) and the MM, hedge and exit funding switches enabled.\n"
        "Declared vol, jumps, fees and q0 are realised as written (also for jump scenarios).\n"
        "\n"
        "## Suites\n"
        "\n"
        "- `suites/smoke.yaml` (`scenario_library_smoke_v1`, repeat 1): vol_medium, liq_spread,\n"
        "  venue_outage, fund_flip, basis_pos.\n"
        "- `suites/full.yaml` (`scenario_library_v1`, repeat 1): all ten, sorted by file name.\n"
        "\n"
        "Suite paths are relative to the suite file's directory.\n"
        "\n"
        "## Manifest\n"
        "\n"
        f"`{MANIFEST_NAME}` holds `{{schema_version: 1, seed: {MANIFEST_SEED}, generated_by:\n"
        f"{{module, version}}, scenario_count: 10, files: {{name: sha256}}}}` (keys sorted, 2-space\n"
        "indent, trailing newline) over 11 files: the ten scenario files and this README. The\n"
        "suites are not hashed; `verify` checks that they exist, parse, reference only\n"
        "manifest-listed scenarios and list exactly the smoke and full sets. `verify` reports a\n"
        "changed, missing or extra file by name, and any scenario file that fails the schema.\n"
    )


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
        entry = _ALIASES.get(path.stem.lower())
        if entry is None:
            raise ScenarioError(
                f"{text}: <file>: not found (allowed: an existing scenario file or a library name)"
            )
        return _library_spec(entry, lib)
    entry = _ALIASES.get(text.lower())
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
