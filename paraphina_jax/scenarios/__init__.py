"""Scenario files v1: strict schema, compilation to params + per-tick schedules, library, manifest.

SIMULATION.md §2.3–§2.5, §7, §14. Host-side Python; the compiled arrays are NumPy.
"""

from paraphina_jax.scenarios.compile import (
    compile_params,
    compile_scenario,
    compile_schedule,
    describe_shocks,
    scenario_config,
    scenario_overrides,
)
from paraphina_jax.scenarios.library import (
    LIBRARY,
    LIBRARY_DIR,
    list_scenarios,
    load_library,
    resolve_scenario,
    verify_manifest,
    write_library,
)
from paraphina_jax.scenarios.schema import load_scenario, parse_scenario, parse_scenario_text
from paraphina_jax.scenarios.suite import SuiteSpec, load_suite, parse_suite
from paraphina_jax.scenarios.types import (
    FUNDING_BASELINE_8H,
    FUNDING_SWITCHES,
    PartialFillParams,
    ScenarioError,
    ScenarioParams,
    ScenarioSpec,
)

__all__ = [
    "FUNDING_BASELINE_8H",
    "FUNDING_SWITCHES",
    "LIBRARY",
    "LIBRARY_DIR",
    "PartialFillParams",
    "ScenarioError",
    "ScenarioParams",
    "ScenarioSpec",
    "SuiteSpec",
    "compile_params",
    "compile_scenario",
    "compile_schedule",
    "describe_shocks",
    "list_scenarios",
    "load_library",
    "load_scenario",
    "load_suite",
    "parse_scenario",
    "parse_scenario_text",
    "parse_suite",
    "resolve_scenario",
    "scenario_config",
    "scenario_overrides",
    "verify_manifest",
    "write_library",
]
