"""`paraphina-jax run` in-process: outputs, stdout contract, determinism, refusals (exit 2).

Every engine run uses the `+debug=tiny` overlay (4 episodes × 60 ticks) and the same scenario
and profile, so the module compiles the chunk program once.
"""

import contextlib
import io
import os
import shutil
import sys
import types

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib import image as mpimg

from paraphina_jax.cli import run_cmd
from paraphina_jax.cli.main import main as cli_main
from paraphina_jax.cli.run_compose import RunInputError, plan_job
from paraphina_jax.report.outputs import CONFIG_FILE, EPISODES_FILE, SUMMARY_JSON, SUMMARY_TXT
from paraphina_jax.report.plots import PLOT_FILES, PLOT_HEIGHT_PX, PLOT_WIDTH_PX
from paraphina_jax.report.summary import parse_daily_summary, parse_mc_summary, parse_run_dir
from paraphina_jax.scenarios import LIBRARY_DIR
from paraphina_jax.sim.telemetry import read_telemetry_jsonl

TINY = ["+debug=tiny"]
PLOTS = ["plots=true", "telemetry_episodes=2", "plot_episode=1"]


def run(args, monkeypatch=None, env=None):
    """main(args) with stdout/stderr captured; returns (rc, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as st:
        if env:
            mp = st.enter_context(pytest.MonkeyPatch.context())
            for k, v in env.items():
                mp.setenv(k, v)
        st.enter_context(contextlib.redirect_stdout(out))
        st.enter_context(contextlib.redirect_stderr(err))
        rc = run_cmd.main(list(args))
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs") / "first"
    rc, out, err = run([*TINY, *PLOTS, f"hydra.run.dir={d}"])
    assert rc == 0, err
    return d, out, err


@pytest.fixture(scope="module")
def second(tmp_path_factory, first):
    d = tmp_path_factory.mktemp("runs") / "second"
    rc, out, err = run([*TINY, *PLOTS, f"hydra.run.dir={d}"])
    assert rc == 0, err
    return d, out, err


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a job reaches the simulation."""

    def boom(*a, **k):
        raise AssertionError("simulation started for a bad input")

    monkeypatch.setattr(run_cmd, "simulate", boom)


def test_run_directory_files_and_one_row_per_episode(first):
    d, out, _ = first
    names = sorted(p.name for p in d.iterdir())
    assert names == sorted(
        [CONFIG_FILE, EPISODES_FILE, SUMMARY_JSON, SUMMARY_TXT, "plots"]
        + ["telemetry_ep0000.jsonl", "telemetry_ep0001.jsonl"]
    )
    assert not [p for p in d.parent.iterdir() if p.name.startswith(".")]  # no staging left
    df = pd.read_parquet(d / EPISODES_FILE)
    assert len(df) == 4 and list(df["episode"]) == [0, 1, 2, 3]
    assert {"pnl_total", "max_drawdown", "kill_switch", "fills_aster", "scenario_id"} <= set(df)
    assert set(df["scenario_id"]) == {"slib_v1_vol_medium"} and set(df["seed"]) == {0}
    assert (df["ticks_executed"] <= 60).all() and np.isfinite(df["pnl_total"]).all()
    cfg = yaml.safe_load((d / CONFIG_FILE).read_text())
    assert cfg["run"]["episodes"] == 4 and cfg["run"]["ticks"] == 60
    assert cfg["strategy"]["profile"] == "balanced" and cfg["info"]["profile_source"] == "scenario"
    assert cfg["scenario"]["scenario_id"] == "slib_v1_vol_medium"
    for ep in (0, 1):
        tel = read_telemetry_jsonl(d / f"telemetry_ep{ep:04d}.jsonl")
        assert len(tel["t"]) == df["ticks_executed"][ep]
        np.testing.assert_allclose(tel["pnl_total"][-1], df["pnl_total"][ep], rtol=1e-6)
    for line in out.splitlines():
        if line.startswith("Wrote: "):
            assert (d.parent / line[len("Wrote: ") :]).exists() or line.startswith(f"Wrote: {d}")


def test_plots_are_pngs_of_the_stated_size(first):
    d, _, _ = first
    assert sorted(p.name for p in (d / "plots").iterdir()) == sorted(PLOT_FILES.values())
    for name in PLOT_FILES.values():
        img = mpimg.imread(d / "plots" / name)
        assert img.shape[:2] == (PLOT_HEIGHT_PX, PLOT_WIDTH_PX)
        assert img[..., :3].std() > 0.05, name  # not blank


def test_stdout_contract_parses_back(first):
    d, out, err = first
    lines = out.splitlines()
    assert lines[0].startswith("paraphina | cfg=") and "| ticks=60 | seed=0" in lines[0]
    assert parse_run_dir(out) == str(d)
    df = pd.read_parquet(d / EPISODES_FILE)
    ds = parse_daily_summary(out)
    for k in ("pnl_realised", "pnl_unrealised", "pnl_total"):
        assert ds[k] == pytest.approx(round(float(df[k][0]), 2), abs=0.0051)
    assert ds["kill_switch"] is bool(df["kill_switch"][0])
    mc = parse_mc_summary(out)
    assert mc["runs"] == 4
    assert mc["pnl_mean"] == pytest.approx(df["pnl_total"].mean(), abs=1e-3)
    assert mc["kill_rate"] == pytest.approx(df["kill_switch"].mean(), abs=1e-4)
    assert "BATCH 4 episodes" in out and "throughput:" in out
    printed = (d / SUMMARY_TXT).read_text()
    assert parse_daily_summary(printed) == ds and printed.strip() in out
    assert "effective_risk_profile=balanced source=scenario" in err


def test_two_identical_runs_are_bitwise_equal(first, second):
    a = pd.read_parquet(first[0] / EPISODES_FILE)
    b = pd.read_parquet(second[0] / EPISODES_FILE)
    assert a.equals(b)
    for col in a.columns:
        if a[col].dtype.kind == "f":
            assert a[col].to_numpy().tobytes() == b[col].to_numpy().tobytes()
    ta = (first[0] / "telemetry_ep0001.jsonl").read_bytes()
    assert ta == (second[0] / "telemetry_ep0001.jsonl").read_bytes()


def test_existing_run_directory_is_never_overwritten(first, no_work):
    d, _, _ = first
    before = {p: p.read_bytes() for p in d.rglob("*") if p.is_file()}
    rc, out, err = run([*TINY, f"hydra.run.dir={d}"])
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "already exists" in err
    assert {p: p.read_bytes() for p in d.rglob("*") if p.is_file()} == before


@pytest.fixture
def bad_scenario(tmp_path):
    text = (LIBRARY_DIR / "slib_v1_vol_medium.yaml").read_text()
    p = tmp_path / "bad.yaml"
    p.write_text(text.replace("steps: 1500", "steps: -5"))
    q = tmp_path / "broken.yaml"
    q.write_text("scenario_id: [unclosed\n")
    return p, q


@pytest.mark.parametrize(
    "args,needle",
    [
        (["profile=nope"], "profile"),
        (["scenario=nope"], "unknown scenario"),
        (["episodes=0"], "episodes"),
        (["episodes=-3"], "episodes"),
        (["chunk_ticks=0"], "chunk_ticks"),
        (["devices=0"], "devices"),
        (["cpu_devices=two"], "cpu_devices"),
        (["lanes=3"], "lanes"),
        (["telemetry_episodes=9"], "telemetry_episodes"),
        (["plot_episode=4"], "plot_episode"),
        (["seed=1,2"], "--multirun"),
        (["no_such_key=1"], "no_such_key"),
        (["overrides={HEDGE_BAND_BASE: -1.0}"], "band_base"),
        (["scenario_file=BAD"], "horizon.steps"),
        (["scenario_file=BROKEN"], "broken.yaml"),
        (["scenario_file=/nonexistent/x.yaml"], "no such file"),
        (["hydra.run.dir=FILE/run"], "not writable"),
        (["--bogus"], "unknown option"),
    ],
)
def test_bad_input_exits_2_with_one_line_before_any_work(
    args, needle, tmp_path, bad_scenario, no_work
):
    blocker = tmp_path / "file"
    blocker.write_text("")
    subst = {"BAD": str(bad_scenario[0]), "BROKEN": str(bad_scenario[1]), "FILE": str(blocker)}
    for k, v in subst.items():
        args = [a.replace(f"={k}", f"={v}") for a in args]
    target = tmp_path / "never"
    if not any(a.startswith("hydra.run.dir=") for a in args):
        args = [*args, f"hydra.run.dir={target}"]
    rc, out, err = run([*TINY, *args])
    assert rc == 2, err
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err
    assert not target.exists()


def test_wandb_requested_but_missing_is_bad_input(tmp_path, monkeypatch, no_work):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setitem(sys.modules, "wandb", None)
    rc, out, err = run([*TINY, "wandb.enabled=true", f"hydra.run.dir={tmp_path / 'w'}"])
    assert rc == 2 and out == "" and "wandb.enabled" in err and not (tmp_path / "w").exists()


def test_wandb_logs_the_batch_aggregate_offline(tmp_path, monkeypatch, first):
    calls = {}

    class FakeRun:
        def log(self, d):
            calls["log"] = d

        def finish(self):
            calls["finish"] = True

    class FakeWandb(types.ModuleType):
        def init(self, **kw):
            calls["init"] = kw
            os.makedirs(os.path.join(kw["dir"], "wandb"))
            return FakeRun()

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setitem(sys.modules, "wandb", FakeWandb("wandb"))
    d = tmp_path / "w"
    rc, _, err = run([*TINY, "wandb.enabled=true", "wandb.project=p1", f"hydra.run.dir={d}"])
    assert rc == 0, err
    assert calls["init"]["project"] == "p1" and calls["init"]["mode"] == "offline"
    assert calls["finish"] and (d / "wandb").is_dir()
    df = pd.read_parquet(d / EPISODES_FILE)
    assert calls["log"]["pnl/mean"] == pytest.approx(df["pnl_total"].mean())
    assert calls["log"]["kill_rate"] == pytest.approx(df["kill_switch"].mean())


def test_multirun_sweeps_jobs_and_validates_all_first(tmp_path, first, no_work):
    sweep = tmp_path / "sweep"
    rc, _, err = run(["--multirun", *TINY, "episodes=4,0", f"hydra.sweep.dir={sweep}"])
    assert rc == 2 and "episodes" in err and not sweep.exists()


def test_multirun_runs_every_job(tmp_path, first):
    sweep = tmp_path / "sweep"
    rc, out, err = run(["-m", *TINY, "seed=5,6", f"hydra.sweep.dir={sweep}"])
    assert rc == 0, err
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "1"]
    seeds = [int(pd.read_parquet(sweep / j / EPISODES_FILE)["seed"][0]) for j in ("0", "1")]
    assert seeds == [5, 6]
    assert "MULTIRUN" in out and out.count("  job ") == 2


def test_failure_while_running_leaves_nothing(tmp_path, monkeypatch):
    def fail(*a, **k):
        raise RuntimeError("device lost")

    monkeypatch.setattr(run_cmd, "simulate", fail)
    target = tmp_path / "r"
    rc, _, err = run([*TINY, f"hydra.run.dir={target}"])
    assert rc == 1 and "device lost" in err
    assert list(tmp_path.iterdir()) == []


def test_scenario_names_profiles_and_env_precedence(tmp_path, monkeypatch):
    for name in ("PARAPHINA_RISK_PROFILE", "PARAPHINA_HEDGE_BAND_BASE"):
        monkeypatch.delenv(name, raising=False)
    p = plan_job([*TINY, "scenario=basis_spike_pos"], reserve=False)
    assert p.spec.scenario_id == "slib_v1_basis_pos" and p.n_ticks == 60
    p = plan_job([*TINY, "scenario=liq_spread"], reserve=False)
    assert (p.cfg.profile, p.profile_source) == ("conservative", "scenario")
    env = {"PARAPHINA_RISK_PROFILE": "aggressive"}
    p = plan_job([*TINY, "scenario=liq_spread"], env=env, reserve=False)
    assert (p.cfg.profile, p.profile_source) == ("aggressive", "env")
    p = plan_job([*TINY, "scenario=liq_spread", "profile=bal"], env=env, reserve=False)
    assert (p.cfg.profile, p.profile_source) == ("balanced", "cli")
    assert p.run["profile"]["name"] == "balanced"
    ovr = [*TINY, "overrides={HEDGE_BAND_BASE: 3.0, mm.size_eta: 0.2}"]
    p = plan_job(ovr, env={"PARAPHINA_HEDGE_BAND_BASE": "1.5"}, reserve=False)
    assert float(p.cfg.hedge.band_base) == 1.5 and float(p.cfg.mm.size_eta) == 0.2
    assert p.env == {"PARAPHINA_HEDGE_BAND_BASE": "1.5"}
    p = plan_job([*TINY, "episodes=1024", "seed=7", "ticks=null"], reserve=False)
    assert (p.episodes, p.seed, p.n_ticks) == (1024, 7, 1500)
    custom = tmp_path / "mine.yaml"
    text = (LIBRARY_DIR / "slib_v1_basis_pos.yaml").read_text()
    custom.write_text(
        text.replace("slib_v1_basis_pos", "my_basis").replace("steps: 1500", "steps: 700")
    )
    p = plan_job([*TINY, f"scenario_file={custom}", "ticks=null"], reserve=False)
    assert p.spec.scenario_id == "my_basis" and p.n_ticks == 700
    with pytest.raises(RunInputError, match="episodes"):
        plan_job([*TINY, "episodes=1.5"], reserve=False)


def test_help_cfg_dispatch_and_missing_hydra(monkeypatch):
    rc, out, _ = run(["--help"])
    assert rc == 0 and "usage: paraphina-jax run" in out
    rc, out, _ = run(["--cfg", *TINY, "seed=3"])
    assert rc == 0 and yaml.safe_load(out)["seed"] == 3 and "hydra" not in yaml.safe_load(out)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli_main(["run", "--help"]) == 0
    assert "usage: paraphina-jax run" in buf.getvalue()
    monkeypatch.setitem(sys.modules, "hydra", None)
    rc, out, err = run(TINY)
    assert rc == 2 and out == "" and "hydra-core" in err and len(err.strip().splitlines()) == 1


def test_output_copy_is_independent_of_run_dir(first, tmp_path):
    # a finished run directory can be moved: nothing inside refers to absolute staging paths
    d, _, _ = first
    shutil.copytree(d, tmp_path / "copy")
    assert ".tmp" not in (tmp_path / "copy" / CONFIG_FILE).read_text()
