"""The scenario library v1 catalogue (SIMULATION.md §7.3): the ten scenarios as static text.

Everything here is deterministic text built from the table of §7.3: one YAML file per scenario
(`<scenario_id>.yaml`), the two suites and the README. :mod:`paraphina_jax.scenarios.library`
writes it to disk, seals it with the manifest and verifies it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from paraphina_jax.scenarios.compile import describe_shocks
from paraphina_jax.scenarios.schema import parse_scenario_text
from paraphina_jax.scenarios.types import ScenarioError

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


ALIASES = _alias_table()


def _num(x: float) -> str:
    return repr(float(x))


def scenario_text(e: LibraryEntry) -> str:
    """The static YAML text of one library scenario."""
    shock = f"{e.shock_yaml}\n" if e.shock_yaml else ""
    return (
        f"# Scenario library v1 - {e.category}\n"
        f"# {e.title}\n"
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
