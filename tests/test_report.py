"""Reports of `run` without the engine: stdout contract and parsers, tables, files, plots."""

import dataclasses
import math
import os

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib import image as mpimg

from paraphina_jax.config import KILL_REASON_NAMES, make_config
from paraphina_jax.config.types import PURPOSE_EXIT, PURPOSE_HEDGE, PURPOSE_MM
from paraphina_jax.report import outputs
from paraphina_jax.report.adapt import episode_table, tick_series
from paraphina_jax.report.plots import (
    PLOT_FILES,
    PLOT_HEIGHT_PX,
    PLOT_WIDTH_PX,
    write_plots,
)
from paraphina_jax.report.summary import (
    batch_stats,
    daily_summary_lines,
    parse_daily_summary,
    parse_mc_summary,
    parse_run_dir,
    run_line,
    run_summary_lines,
)
from paraphina_jax.report.types import CORE_COLUMNS, EpisodeTable, RunInfo, TickSeries
from paraphina_jax.sim.results import EpisodeResults, Telemetry, TickRecord
from paraphina_jax.strategy.types import FillBatch

VENUES = ("extended", "hyperliquid", "aster", "lighter", "paradex")
N = len(VENUES)


def fake_results(b=6, seed=0):
    """EpisodeResults [B] with varied values; episodes 1 and 4 killed."""
    rng = np.random.default_rng(seed)
    killed = np.zeros(b, bool)
    killed[[1, 4]] = True
    f = lambda: rng.normal(0, 100, b)
    return EpisodeResults(
        pnl_total=f(),
        pnl_realised=f(),
        pnl_unrealised=f(),
        fees_usd=np.abs(f()),
        funding_usd=f(),
        cash_usd=f(),
        max_drawdown=np.abs(f()),
        kill_switch=killed,
        kill_tick=np.where(killed, rng.integers(1, 50, b), -1),
        kill_reason=np.where(killed, 2, 0),
        ticks_executed=np.full(b, 60),
        final_regime=np.where(killed, 2, 0),
        max_abs_delta_usd=np.abs(f()),
        max_abs_basis_usd=np.abs(f()),
        max_abs_q_tao=np.abs(f()),
        max_venue_toxicity=rng.uniform(0, 1, b),
        fills=rng.integers(0, 9, (b, N)),
        maker_fills=rng.integers(0, 9, (b, N)),
        taker_fills=rng.integers(0, 9, (b, N)),
        volume_tao=np.abs(rng.normal(0, 3, (b, N))),
        fees_by_venue=rng.normal(0, 1, (b, N)),
        rejected=rng.integers(0, 3, (b, N)),
        final_position_tao=rng.normal(0, 2, (b, N)),
        shield_interventions=rng.integers(0, 4, (b, 3)),
    )


PER_VENUE_RECORD = {
    "healthy_venues_used",
    "status",
    "toxicity",
    "position_tao",
    "dist_liq_sigma",
    "margin_available_usd",
    "mid",
    "spread",
    "has_mid",
    "last_mid_update_ms",
    "has_mid_update",
    "true_mid",
    "outage",
    "maker_fills",
    "taker_fills",
    "rejected",
}


def fake_telemetry(k=2, t=40, active_ticks=30, seed=1):
    """Telemetry [K, T] with the record and fills the plots read (actions not needed)."""
    rng = np.random.default_rng(seed)
    rec = {}
    for f in dataclasses.fields(TickRecord):
        shape = (k, t, N) if f.name in PER_VENUE_RECORD else (k, t)
        rec[f.name] = rng.normal(0, 1, shape)
    rec["t"] = np.broadcast_to(np.arange(t), (k, t)).copy()
    rec["active"] = np.broadcast_to(np.arange(t) < active_ticks, (k, t)).copy()
    rec["has_fair_value"] = np.ones((k, t), bool)
    rec["has_fair_value"][:, :3] = False
    rec["fair_value"] = 300 + rng.normal(0, 0.1, (k, t))
    rec["true_mid"] = 300 + rng.normal(0, 0.1, (k, t, N)) + 0.4 * np.arange(N)
    rec["risk_regime"] = np.zeros((k, t), int)
    rec["risk_regime"][:, 10:15] = 1
    rec["risk_regime"][:, 20:25] = 2
    m = 4 * N
    purpose = np.zeros((k, t, m), int)
    purpose[..., N : 3 * N] = PURPOSE_EXIT
    purpose[..., 3 * N :] = PURPOSE_HEDGE
    purpose[..., :N] = PURPOSE_MM
    fills = FillBatch(
        valid=rng.random((k, t, m)) < 0.3,
        venue=np.broadcast_to(np.arange(m) % N, (k, t, m)).copy(),
        side=np.where(rng.random((k, t, m)) < 0.5, 1, -1),
        size=rng.uniform(0.1, 2.0, (k, t, m)),
        price=np.full((k, t, m), 300.0),
        fee_bps=np.zeros((k, t, m)),
        purpose=purpose,
        order_id=np.full((k, t, m), -1),
    )
    return Telemetry(
        record=TickRecord(**rec), actions=None, proposed=None, fills=fills, interventions=None
    ), fills


@pytest.fixture(scope="module")
def table():
    return episode_table(fake_results(), VENUES)


# ------------------------------------------------------------------------------- adapters


def test_episode_table_columns_and_values(table):
    res = fake_results()
    assert list(table.columns)[: len(CORE_COLUMNS)] == list(CORE_COLUMNS)
    assert table.n_episodes == 6
    np.testing.assert_array_equal(table.column("pnl_total"), res.pnl_total)
    assert list(table.column("kill_reason")) == [KILL_REASON_NAMES[int(r)] for r in res.kill_reason]
    np.testing.assert_array_equal(table.column("fills_aster"), res.fills[:, 2])
    np.testing.assert_array_equal(table.column("fees_usd_paradex"), res.fees_by_venue[:, 4])
    np.testing.assert_array_equal(table.column("shield_1"), res.shield_interventions[:, 1])
    np.testing.assert_array_equal(
        table.column("shield_interventions"), res.shield_interventions.sum(1)
    )
    np.testing.assert_array_equal(table.final_regime, res.final_regime)
    with pytest.raises(ValueError, match="missing columns"):
        EpisodeTable(columns={"episode": np.arange(2)}, final_regime=np.zeros(2))


def test_tick_series_cuts_at_last_active_tick_and_signs_fills():
    tel, fills = fake_telemetry()
    s = tick_series(tel, 1, 250.0, VENUES, kill_tick=29)
    assert len(s.time_s) == 30 and s.time_s[1] == pytest.approx(0.25)
    assert np.isnan(s.fair_value[:3]).all() and np.isfinite(s.fair_value[3:]).all()
    ok = fills.valid[1, :30] & (fills.purpose[1, :30] == PURPOSE_HEDGE)
    want = np.where(ok, fills.side[1, :30] * fills.size[1, :30], 0.0).sum(-1)
    np.testing.assert_allclose(s.hedge_tao, want)
    ok = fills.valid[1, :30] & (fills.purpose[1, :30] == PURPOSE_EXIT)
    want = np.where(ok, fills.side[1, :30] * fills.size[1, :30], 0.0).sum(-1)
    np.testing.assert_allclose(s.exit_tao, want)
    assert s.mid.shape == (30, N) and s.kill_tick == 29 and s.episode == 1
    with pytest.raises(ValueError, match="TickSeries.mid"):
        dataclasses.replace(s, mid=s.mid[:, :2])


# ------------------------------------------------------------------------------- stdout


@pytest.mark.parametrize(
    "r,u,t,kill,reason,regime",
    [
        (1123.16, 424.9, 1548.05, True, 2, 2),
        (-5.0, 0.0, -5.0, False, 0, 0),
        (0.0, -0.004, -0.004, False, 0, 1),
        (-1e6 / 3, 12.345, -333320.99, True, 1, 2),
    ],
)
def test_daily_summary_round_trip(r, u, t, kill, reason, regime):
    text = "\n".join(daily_summary_lines(r, u, t, kill, reason, regime))
    got = parse_daily_summary("noise before\n" + text + "\n")
    assert got["pnl_realised"] == pytest.approx(round(r, 2), abs=1e-9)
    assert got["pnl_unrealised"] == pytest.approx(round(u, 2), abs=1e-9)
    assert got["pnl_total"] == pytest.approx(round(t, 2), abs=1e-9)
    assert got["kill_switch"] is kill
    assert got["kill_reason"] == (KILL_REASON_NAMES[reason] if kill else None)
    assert got["risk_regime"] == ("Normal", "Warning", "HardLimit")[regime]


def test_daily_summary_parser_contract_last_match_and_defaults():
    assert math.isnan(parse_daily_summary("nothing here")["pnl_total"])
    assert parse_daily_summary("nothing here")["kill_switch"] is False
    text = (
        "Kill switch active at tick 36 - stopping simulation early (reason: DeltaHardBreach).\n"
        "daily pnl (realised / unrealised / total): +1.00 / +2.00 / +3.00\nKill switch: true\n"
        "Daily PnL (realised / unrealised / total): -4.50 / +0.25 / -4.25\nkill switch = false\n"
    )
    got = parse_daily_summary(text)
    assert (got["pnl_realised"], got["pnl_unrealised"], got["pnl_total"]) == (-4.5, 0.25, -4.25)
    assert got["kill_switch"] is False
    # the kill line alone is not a "Kill switch: …" line
    assert parse_daily_summary(text.splitlines()[0])["kill_switch"] is False


def test_run_summary_lines_parse_back(table):
    info = RunInfo(
        "slib_v1_vol_medium", "balanced", "cli", 6, 60, 250.0, 3, "cpu", "float32", "/x/y"
    )
    lines = [run_line(info), *run_summary_lines(table, 3, 12.5, 8.0, 60, 30)]
    text = "\n".join(lines)
    assert parse_run_dir(text) == "/x/y"
    ds = parse_daily_summary(text)
    c = table.columns
    assert ds["pnl_total"] == pytest.approx(round(float(c["pnl_total"][0]), 2), abs=1e-9)
    assert ds["kill_switch"] is bool(c["kill_switch"][0])
    mc = parse_mc_summary(text)
    assert mc["runs"] == 6 and mc["kill_count"] == 2
    assert mc["kill_rate"] == pytest.approx(2 / 6, abs=1e-4)
    st = batch_stats(c["pnl_total"])
    assert mc["pnl_mean"] == pytest.approx(st["mean"], abs=1e-4)
    assert mc["pnl_std"] == pytest.approx(st["std"], abs=1e-4)
    assert mc["pnl_p05"] == pytest.approx(st["p05"], abs=1e-4)
    assert mc["max_drawdown_p95"] == pytest.approx(batch_stats(c["max_drawdown"])["p95"], abs=1e-4)
    assert mc["max_abs_q_tao_max"] == pytest.approx(float(np.max(c["max_abs_q_tao"])), abs=1e-4)
    ticks = c["kill_tick"][c["kill_switch"]]
    assert mc["kill_tick_min"] == ticks.min() and mc["kill_tick_max"] == ticks.max()
    batch = text[text.index("BATCH 6 episodes") :]
    assert "kill_rate: 33.33% (2 / 6)" in batch and "throughput:" in batch
    # 6 episodes x (60 - 30) ticks after the first chunk in 12.5 - 8.0 s
    assert "6 episodes x 60 ticks in 12.50 s" in batch and "then 40 episode-ticks/s" in batch


def test_batch_stats_quantiles_and_empty():
    s = batch_stats([4.0, 1.0, 3.0, 2.0, np.nan])
    assert s["mean"] == 2.5 and s["p50"] == 2.5
    assert s["p05"] == pytest.approx(1.15) and s["p95"] == pytest.approx(3.85)
    assert s["std"] == pytest.approx(np.std([1, 2, 3, 4]))
    assert all(math.isnan(v) for v in batch_stats([np.nan]).values())


# ------------------------------------------------------------------------------- files


def test_run_dir_reserve_commit_and_refuse(tmp_path):
    final = tmp_path / "a" / "run"
    rd = outputs.RunDir.reserve(final)
    assert final.is_dir() and not any(final.iterdir()) and rd.staging.parent == final.parent
    outputs.write_text(rd.path("x.txt"), "hello\n")
    assert not (final / "x.txt").exists()  # nothing visible before the commit
    rd.commit()
    assert (final / "x.txt").read_text() == "hello\n" and not rd.staging.exists()
    assert oct((final / "x.txt").stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    with pytest.raises(outputs.OutputError, match="already exists"):
        outputs.RunDir.reserve(final)
    assert (final / "x.txt").read_text() == "hello\n"
    rd2 = outputs.RunDir.reserve(tmp_path / "b")
    outputs.write_text(rd2.path("y.txt"), "y")
    rd2.abort()
    assert not (tmp_path / "b").exists() and not rd2.staging.exists()
    rd3 = outputs.RunDir.reserve(tmp_path / "c" / "d" / "run")
    rd3.abort()  # parents created by the reservation go too
    assert not (tmp_path / "c").exists()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(outputs.OutputError, match="not writable"):
        outputs.RunDir.reserve(blocker / "run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "file"]


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_atomic_writers_leave_no_temporaries(tmp_path):
    outputs.write_json(tmp_path / "s.json", {"a": np.float64(1.5), "b": np.nan, "c": np.arange(3)})
    outputs.write_yaml(tmp_path / "c.yaml", {"z": 1, "a": (1, 2)})
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["c.yaml", "s.json"]
    assert yaml.safe_load((tmp_path / "c.yaml").read_text()) == {"z": 1, "a": [1, 2]}
    assert list(yaml.safe_load((tmp_path / "c.yaml").read_text())) == ["z", "a"]
    assert (tmp_path / "s.json").read_text().count("null") == 1

    def boom(tmp):
        open(tmp, "w").write("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        outputs.atomic_write(tmp_path / "x.bin", boom)
    assert not (tmp_path / "x.bin").exists()
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["c.yaml", "s.json"]


def test_parquet_one_row_per_episode_with_labels(table, tmp_path):
    df = outputs.episodes_dataframe(table, {"scenario_id": "s", "seed": 3})
    outputs.write_parquet(tmp_path / "e.parquet", df)
    back = pd.read_parquet(tmp_path / "e.parquet")
    assert len(back) == table.n_episodes and list(back["episode"]) == list(range(6))
    np.testing.assert_array_equal(back["pnl_total"].to_numpy(), table.column("pnl_total"))
    assert set(back["scenario_id"]) == {"s"} and back["kill_switch"].dtype == bool
    with pytest.raises(ValueError, match="collides"):
        outputs.episodes_dataframe(table, {"pnl_total": 1})


def test_resolved_config_is_complete_yaml(tmp_path):
    cfg = make_config("conservative")
    d = outputs.resolved_config(
        {"episodes": 4}, cfg, {"scenario_id": "x"}, {"backend": "cpu"}, {"PARAPHINA_B": "1"}
    )
    outputs.write_yaml(tmp_path / "config.yaml", d)
    back = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert back["strategy"]["profile"] == "conservative"
    assert back["strategy"]["hedge"]["band_base"] == pytest.approx(float(cfg.hedge.band_base))
    assert back["strategy"]["venues"]["venue_ids"] == list(VENUES)
    assert back["environment"] == {"PARAPHINA_B": "1"} and back["run"] == {"episodes": 4}


# ------------------------------------------------------------------------------- plots


def test_plots_are_non_empty_pngs_of_the_stated_size(table, tmp_path):
    tel, _ = fake_telemetry()
    s = tick_series(tel, 0, 250.0, VENUES, kill_tick=25)
    paths = write_plots(s, table, tmp_path / "plots")
    assert sorted(p.name for p in paths) == sorted(PLOT_FILES.values())
    for p in paths:
        img = mpimg.imread(p)
        assert img.shape[:2] == (PLOT_HEIGHT_PX, PLOT_WIDTH_PX), p.name
        # not a blank canvas: many distinct colours
        assert len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 50, p.name
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(PLOT_FILES.values())
    only = write_plots(None, table, tmp_path / "only")
    assert [p.name for p in only] == [PLOT_FILES["distributions"]]


def test_tick_series_type_checks_shapes():
    t = np.arange(3.0)
    with pytest.raises(ValueError, match="regime"):
        TickSeries(t, t, np.zeros((3, 2)), np.zeros((3, 2)), t, t, t, t[:2], t, t, -1, ("a", "b"))
