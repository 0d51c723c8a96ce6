"""Batch harness: run_many (in-process and subprocess), result rows, grouped summaries."""

import math
import os
import sys

import numpy as np
import pandas as pd
import pytest

from paraphina_jax.harness import (
    RunSpec,
    aggregate_basic,
    as_spec,
    override_list,
    parse_daily_summary,
    results_to_dataframe,
    run_many,
)
from paraphina_jax.report.outputs import EPISODES_FILE

SUMMARY_SCRIPT = (
    "import os, sys\n"
    "from paraphina_jax.report.summary import daily_summary_lines\n"
    "x = float(os.environ['PNL'])\n"
    "print('\\n'.join(daily_summary_lines(x, 1.0, x + 1.0, x < 0, 2 if x < 0 else 0, 0)))\n"
    "sys.exit(int(os.environ.get('RC', '0')))\n"
)


def test_run_many_subprocess_commands_parse_even_on_failure(tmp_path):
    specs = [
        RunSpec(
            command=[sys.executable, "-c", SUMMARY_SCRIPT], env={"PNL": "12.5"}, label={"g": "a"}
        ),
        {
            "command": [sys.executable, "-c", SUMMARY_SCRIPT],
            "env": {"PNL": "-3.25", "RC": "3"},
            "label": {"g": "b"},
            "run_id": "neg",
            "cwd": str(tmp_path),
        },
    ]
    res = run_many(specs)
    assert [r["run_id"] for r in res] == ["run_0000", "neg"]
    assert [r["returncode"] for r in res] == [0, 3]
    assert res[0]["metrics"]["pnl_total"] == 13.5 and res[0]["metrics"]["kill_switch"] is False
    assert res[1]["metrics"]["pnl_realised"] == -3.25 and res[1]["metrics"]["kill_switch"] is True
    assert res[1]["metrics"]["kill_reason"] == "DeltaHardBreach"
    assert all(r["duration_s"] > 0 for r in res) and "PNL" not in os.environ
    df = results_to_dataframe(res)
    assert len(df) == 2 and list(df["g"]) == ["a", "b"] and list(df["returncode"]) == [0, 3]


def test_specs_and_overrides_normalise():
    assert override_list({"seed": 7, "plots": False, "ticks": None, "x": [1, 2]}) == [
        "seed=7",
        "plots=false",
        "ticks=null",
        "x=[1, 2]",
    ]
    assert as_spec(["seed=1"]).overrides == ["seed=1"]
    assert as_spec({"overrides": {"seed": 1}, "label": {"a": 1}}).label == {"a": 1}
    with pytest.raises(ValueError, match="unknown fields"):
        as_spec({"override": []})
    with pytest.raises(TypeError):
        as_spec("seed=1")


def _results():
    rows = []
    rng = np.random.default_rng(3)
    for i in range(12):
        pnl = float(rng.normal(10 * (i % 3), 2))
        rows.append(
            {
                "run_id": f"r{i}",
                "label": {"profile": ("bal", "cons", "agg")[i % 3], "q0": i % 2},
                "metrics": {"pnl_total": pnl, "kill_switch": i % 4 == 0, "batch_pnl_mean": pnl / 2},
                "duration_s": 1.0,
                "returncode": 0,
                "run_dir": None,
            }
        )
    return rows


def test_results_to_dataframe_one_row_per_run():
    res = _results()
    df = results_to_dataframe(res)
    assert len(df) == 12 and df["run_id"].tolist() == [f"r{i}" for i in range(12)]
    assert {"profile", "q0", "pnl_total", "kill_switch", "batch_pnl_mean", "returncode"} <= set(df)
    assert df["pnl_total"].tolist() == [r["metrics"]["pnl_total"] for r in res]
    bad = [{**res[0], "label": {"pnl_total": 1}}]
    with pytest.raises(ValueError, match="clash"):
        results_to_dataframe(bad)


def test_aggregate_basic_by_label():
    df = results_to_dataframe(_results())
    agg = aggregate_basic(df, "profile")
    assert agg["profile"].tolist() == ["agg", "bal", "cons"]
    for _, row in agg.iterrows():
        g = df[df["profile"] == row["profile"]]
        x = g["pnl_total"].to_numpy()
        assert row["n_runs"] == len(g)
        assert row["pnl_total_mean"] == pytest.approx(x.mean())
        assert row["pnl_total_std"] == pytest.approx(x.std(ddof=1))
        assert row["pnl_total_p05"] == pytest.approx(np.quantile(x, 0.05))
        assert row["pnl_total_p95"] == pytest.approx(np.quantile(x, 0.95))
        assert row["kill_switch_frac"] == pytest.approx(g["kill_switch"].mean())
    assert "returncode_mean" not in agg and "kill_switch_mean" not in agg
    two = aggregate_basic(df, ["profile", "q0"], metrics=["pnl_total"], quantiles=(0.5,))
    assert len(two) == 6 and set(two.columns) == {
        "profile",
        "q0",
        "n_runs",
        "pnl_total_mean",
        "pnl_total_std",
        "pnl_total_p50",
        "kill_switch_frac",
    }
    one = aggregate_basic(df.iloc[:1], "profile")
    assert math.isnan(one["pnl_total_std"][0])
    with pytest.raises(KeyError):
        aggregate_basic(df, "nope")


def test_run_many_in_process_round_trips_what_run_prints(tmp_path):
    specs = [
        RunSpec(overrides=["seed=1"], label={"arm": "a"}, env={"PARAPHINA_HEDGE_BAND_BASE": "2.0"}),
        RunSpec(overrides={"seed": 2}, label={"arm": "b"}, run_id="second"),
    ]
    before = dict(os.environ)
    res = run_many(specs, out_root=tmp_path / "h", base_overrides=["+debug=tiny"])
    assert dict(os.environ) == before
    assert [r["returncode"] for r in res] == [0, 0], res[0]["stderr"]
    assert [r["run_dir"] for r in res] == [
        str(tmp_path / "h" / "run_0000"),
        str(tmp_path / "h" / "second"),
    ]
    assert "PARAPHINA_HEDGE_BAND_BASE = 2" in res[0]["stderr"]
    for r in res:
        ep = pd.read_parquet(os.path.join(r["run_dir"], EPISODES_FILE))
        m = r["metrics"]
        assert m == {**m, **parse_daily_summary(r["stdout"])}
        assert m["pnl_total"] == pytest.approx(round(float(ep["pnl_total"][0]), 2), abs=0.0051)
        assert m["batch_runs"] == 4
        assert m["batch_pnl_mean"] == pytest.approx(ep["pnl_total"].mean(), abs=1e-3)
    df = results_to_dataframe(res)
    assert len(df) == 2 and df["arm"].tolist() == ["a", "b"]
    again = run_many([RunSpec(overrides=["seed=1"], run_id="second")], out_root=tmp_path / "h")
    assert again[0]["returncode"] == 2 and "already exists" in again[0]["stderr"]
    assert math.isnan(again[0]["metrics"]["pnl_total"])
