"""Batch harness: run many `paraphina-jax run` jobs and tabulate them (SIMULATION §10)."""

from paraphina_jax.harness.frame import aggregate_basic, results_to_dataframe
from paraphina_jax.harness.runner import as_spec, override_list, parse_metrics, run_many
from paraphina_jax.harness.types import RunResult, RunSpec
from paraphina_jax.report.summary import parse_daily_summary, parse_mc_summary

__all__ = [
    "RunResult",
    "RunSpec",
    "aggregate_basic",
    "as_spec",
    "override_list",
    "parse_daily_summary",
    "parse_mc_summary",
    "parse_metrics",
    "results_to_dataframe",
    "run_many",
]
