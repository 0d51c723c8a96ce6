"""H1 core runner (SIMULATION.md §1, §3.1, §10, §13.5; STRATEGY.md §17.2) in both engines.

Recorded runs of the original (kill tick, reason, Daily Summary to the cent, stderr lines) and
its per-tick telemetry (PnL, exposures, positions, regime, kill, fill and order counts); JAX
(x64, one compiled chunk for every run) against the NumPy reference engine; output formats.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from paraphina_jax.compat import h1
from paraphina_jax.compat.h1_output import (
    config_dump,
    fnv1a64,
    header_line,
    knob_log_lines,
    result_lines,
    rust_display,
)
from paraphina_jax.config.types import REGIME_NAMES, SIDE_BUY, SIDE_SELL
from paraphina_jax.reference import compat_h1 as ref_h1
from paraphina_jax.utils.x64 import enable_x64


def _runs_dir() -> Path | None:
    here = Path(__file__).resolve().parent.parent
    cands = [os.environ.get("PARAPHINA_REFERENCE_RUNS", "")]
    cands += [here / "shared" / "reference_runs", here.parent / "shared" / "reference_runs"]
    cands += ["/work/shared/reference_runs"]
    for c in cands:
        if c and Path(c).is_dir():
            return Path(c)
    return None


RUNS = _runs_dir()
needs_runs = pytest.mark.skipif(RUNS is None, reason="recorded reference runs not available")

# name -> (env knobs, --ticks, --seed, stdout file, stderr file, telemetry file)
RECORDED = {
    "eta5": (
        {"PARAPHINA_MM_SIZE_ETA": "5"},
        600,
        1,
        "h1_02_bal_eta5.stdout.txt",
        "h1_02_bal_eta5.stderr.txt",
        "h1_02_bal_eta5.telemetry.jsonl.gz",
    ),
    "qp10_hb1": (
        {"PARAPHINA_INIT_Q_TAO": "10", "PARAPHINA_HEDGE_BAND_BASE": "1"},
        400,
        1,
        "h1_05_bal_qp10_hb1.stdout.txt",
        "h1_05_bal_qp10_hb1.stderr.txt",
        "h1_05_bal_qp10_hb1.telemetry.jsonl.gz",
    ),
    "seed42": ({}, 2000, 42, "h1_core_runner_balanced_seed42_2000ticks.txt", None, None),
}
CONTINUOUS = (
    "pnl_realised",
    "pnl_unrealised",
    "pnl_total",
    "q_global_tao",
    "dollar_delta_usd",
    "basis_usd",
    "basis_gross_usd",
    "fair_value",
    "position_tao",
)
DISCRETE = (
    "now_ms",
    "risk_regime",
    "kill_switch",
    "kill_reason",
    "n_places",
    "n_cancels",
    "n_rejected",
    "n_mm_fills",
    "n_exit_fills",
    "n_hedge_fills",
)


def _cfg(name: str):
    env = RECORDED[name][0]
    return h1.h1_config("balanced", env)[0]


def _recorded_stdout(name: str) -> list[str]:
    return (RUNS / RECORDED[name][3]).read_text().rstrip("\n").split("\n")


def _telemetry(name: str) -> list[dict]:
    with gzip.open(RUNS / RECORDED[name][5], "rt") as f:
        return [json.loads(line) for line in f]


def _expected_lines(name: str, res: dict, verbose: bool = False) -> tuple[list[str], list[str]]:
    """(ours, recorded) stdout without the header's opaque cfg_hash."""
    rec = _recorded_stdout(name)
    ours = result_lines(res, verbose)
    if rec[0].startswith("paraphina |"):
        _, ticks, seed = RECORDED[name][:3]
        head = header_line(_cfg(name), ticks, seed).split(" | ")
        rec_head = rec[0].split(" | ")
        assert [p for p in head if not p.startswith("cfg_hash")] == [
            p for p in rec_head if not p.startswith("cfg_hash")
        ]
        rec = rec[1:]
    return ours, rec


@pytest.fixture(scope="module")
def ref_results() -> dict:
    out = {}
    for name, (_, ticks, seed, *_rest) in RECORDED.items():
        out[name] = ref_h1.h1_run(_cfg(name), seed % 10_000, ticks)
    return out


@pytest.fixture(scope="module")
def jax_results() -> dict:
    out = {}
    before = h1._h1_chunk_jit._cache_size()
    with enable_x64():
        for name, (_, ticks, seed, *_rest) in RECORDED.items():
            out[name] = h1.h1_episode(_cfg(name), seed % 10_000, ticks)
    out["compiles"] = h1._h1_chunk_jit._cache_size() - before
    return out


# ---------------------------------------------------------------------------------------------
# Recorded runs
# ---------------------------------------------------------------------------------------------


@needs_runs
@pytest.mark.parametrize("name", list(RECORDED))
def test_reference_engine_reproduces_recorded_stdout(ref_results, name):
    res = ref_results[name]
    ours, rec = _expected_lines(name, res)
    assert ours == rec
    assert res["kill_tick"] == 36 if name != "eta5" else res["kill_tick"] == 216


@needs_runs
@pytest.mark.parametrize("name", list(RECORDED))
def test_jax_engine_reproduces_recorded_stdout(jax_results, name):
    ours, rec = _expected_lines(name, jax_results[name])
    assert ours == rec
    assert not jax_results[name]["overflow"]


def test_jax_episode_compiles_once(jax_results):
    """Three configs (knob values differ), three tick counts, two seeds: one compiled chunk."""
    assert jax_results["compiles"] <= 1


def _check_telemetry(res: dict, recs: list[dict], rtol: float) -> None:
    assert res["ticks_executed"] == len(recs)
    for t, r in enumerate(recs):
        assert r["t"] == t
        for f in ("pnl_realised", "pnl_unrealised", "pnl_total", "q_global_tao"):
            np.testing.assert_allclose(res[f][t], r[f], rtol=rtol, atol=1e-9, err_msg=f"{f} @ {t}")
        for f in ("dollar_delta_usd", "basis_usd", "basis_gross_usd", "fair_value"):
            np.testing.assert_allclose(res[f][t], r[f], rtol=rtol, atol=1e-9, err_msg=f"{f} @ {t}")
        np.testing.assert_allclose(
            res["position_tao"][t], r["venue_position_tao"], rtol=rtol, atol=1e-9
        )
        assert REGIME_NAMES[int(res["risk_regime"][t])] == r["risk_regime"], t
        assert bool(res["kill_switch"][t]) == r["kill_switch"], t
        n_fill = {p: sum(x["purpose"] == p for x in r["fills"]) for p in ("Mm", "Exit", "Hedge")}
        assert (res["n_mm_fills"][t], res["n_exit_fills"][t], res["n_hedge_fills"][t]) == (
            n_fill["Mm"],
            n_fill["Exit"],
            n_fill["Hedge"],
        ), t
        acks = [o for o in r["orders"] if o["status"] == "ack"]
        assert res["n_places"][t] == sum(
            o["action"] == "place" and o["purpose"] == "Mm" for o in acks
        )
        if r["kill_switch"]:  # cancel-all: logged once per venue, resting orders or not
            n = len(r["venue_position_tao"])
            assert sum(o["action"] == "cancel_all" for o in r["orders"]) == n
            assert res["n_places"][t] == 0
        else:
            assert res["n_cancels"][t] == sum(o["action"] == "cancel" for o in acks), t


@needs_runs
@pytest.mark.parametrize("name", ["eta5", "qp10_hb1"])
def test_reference_engine_matches_recorded_telemetry(ref_results, name):
    """Every tick: PnL, exposures, fair value, positions to 1e-9; regime, kill, counts exact.

    (The NumPy engine's fair value uses np.exp; with a correctly rounded exp it is bitwise.)"""
    _check_telemetry(ref_results[name], _telemetry(name), rtol=1e-9)


@needs_runs
@pytest.mark.parametrize("name", ["eta5", "qp10_hb1"])
def test_jax_engine_matches_recorded_telemetry(jax_results, name):
    _check_telemetry(jax_results[name], _telemetry(name), rtol=1e-9)


@pytest.mark.parametrize("name", list(RECORDED))
def test_parity_h1_jax_vs_reference(ref_results, jax_results, name):
    a, b = jax_results[name], ref_results[name]
    assert (a["ticks_executed"], a["kill_tick"]) == (b["ticks_executed"], b["kill_tick"])
    for f in CONTINUOUS:
        np.testing.assert_allclose(a[f], b[f], rtol=1e-9, atol=1e-9, err_msg=f)
    for f in DISCRETE:
        np.testing.assert_array_equal(a[f], b[f], err_msg=f)


def test_h1_jax_bitwise_deterministic(jax_results):
    with enable_x64():
        again = h1.h1_episode(_cfg("qp10_hb1"), 1, 400)
    first = jax_results["qp10_hb1"]
    for f in CONTINUOUS + DISCRETE:
        np.testing.assert_array_equal(again[f], first[f], err_msg=f)


@pytest.mark.slow
def test_h1_chunk_vmap_equals_loop():
    """`h1_chunk` vmapped over time bases equals the unbatched chunk run per environment."""
    cfg = _cfg("qp10_hb1")
    bases = (1, 42, 9999)
    with enable_x64():
        cs = [h1.h1_init(cfg, b, h1.queue_capacity(cfg)) for b in bases]
        batched = jax.tree.map(lambda *x: jnp.stack(x), *cs)
        run = lambda c, b: h1.h1_chunk(c, 0, cfg, b, 48, length=h1.DEFAULT_CHUNK)
        cb, yb = jax.jit(jax.vmap(run))(batched, jnp.asarray(bases))
        for i, b in enumerate(bases):
            ci, yi = h1._h1_chunk_jit(cs[i], 0, cfg, b, 48, length=h1.DEFAULT_CHUNK)
            for f in CONTINUOUS:
                np.testing.assert_allclose(
                    np.asarray(getattr(yb, f))[i], np.asarray(getattr(yi, f)), rtol=1e-12, atol=1e-9
                )
            for f in DISCRETE + ("valid",):
                np.testing.assert_array_equal(
                    np.asarray(getattr(yb, f))[i], np.asarray(getattr(yi, f))
                )
            assert int(cb.ticks_executed[i]) == int(ci.ticks_executed)
            assert int(cb.kill_tick[i]) == int(ci.kill_tick)


def test_parity_h1_other_cadences_and_no_kill():
    """Non-default cadences (catch-up counters, not modulo rules) and a run that ends unkilled."""
    env = {
        "PARAPHINA_MAIN_LOOP_INTERVAL_MS": "300",
        "PARAPHINA_FILL_AGG_INTERVAL_MS": "700",
        "PARAPHINA_HEDGE_LOOP_INTERVAL_MS": "900",
        "PARAPHINA_RISK_LOOP_INTERVAL_MS": "2000",
        "PARAPHINA_INIT_Q_TAO": "-3",
    }
    cfg = h1.h1_config("balanced", env)[0]
    assert h1.queue_capacity(cfg) == 30
    b = ref_h1.h1_run(cfg, 777, 25)
    with enable_x64():
        a = h1.h1_episode(cfg, 777, 25, capacity=40)  # the recorded runs' compiled chunk
    assert b["kill_tick"] == -1 and a["kill_tick"] == -1 and a["ticks_executed"] == 25
    # flushes at ticks 0, 3, 6, ... (700 ms over 300 ms ticks); hedge whenever also due
    flush = np.flatnonzero(b["n_mm_fills"] > 0)
    assert list(flush[:4]) == [0, 3, 6, 9]
    for f in CONTINUOUS:
        np.testing.assert_allclose(a[f], b[f], rtol=1e-9, atol=1e-9, err_msg=f)
    for f in DISCRETE:
        np.testing.assert_array_equal(a[f], b[f], err_msg=f)
    lines = result_lines(b)
    assert not any(line.startswith("Kill switch active") for line in lines)
    assert "Kill switch: false" in lines and not any(x.startswith("Kill reason") for x in lines)


@pytest.mark.slow
@needs_runs
def test_h1_float32_runs_reach_the_recorded_kill():
    """float32 JAX episodes: same kill tick and reason; Daily Summary within 1 USD (measured
    ≤ 0.25 USD: discrete quote/size decisions agree, PnL accumulates f32 rounding)."""
    for name, (_, ticks, seed, *_r) in RECORDED.items():
        res = h1.h1_episode(_cfg(name), seed % 10_000, ticks)
        ref = ref_h1.h1_run(_cfg(name), seed % 10_000, ticks)
        assert res["kill_tick"] == ref["kill_tick"]
        assert int(res["state"].kill_reason) == int(ref["state"].kill_reason)
        for f in ("daily_realised_pnl", "daily_unrealised_pnl", "daily_pnl_total"):
            assert abs(float(getattr(res["state"], f)) - float(getattr(ref["state"], f))) < 1.0


# ---------------------------------------------------------------------------------------------
# Command line and formats
# ---------------------------------------------------------------------------------------------


def _cli(
    monkeypatch, capsys, name: str, engine: str, verbose: bool = False
) -> tuple[list[str], list[str]]:
    env, ticks, seed = RECORDED[name][:3]
    for k in list(os.environ):
        if k.startswith("PARAPHINA_"):
            monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    args = argparse.Namespace(
        profile="balanced", seed=seed, ticks=ticks, engine=engine, verbose=verbose
    )
    assert h1.run_core_cli(args) == 0
    cap = capsys.readouterr()
    return cap.out.rstrip("\n").split("\n"), cap.err.rstrip("\n").split("\n")


@needs_runs
@pytest.mark.parametrize(("name", "engine"), [("qp10_hb1", "reference"), ("eta5", "jax")])
def test_cli_matches_recorded_stdout_and_stderr(monkeypatch, capsys, jax_results, name, engine):
    out, err = _cli(monkeypatch, capsys, name, engine)
    rec = _recorded_stdout(name)
    strip = lambda line: " | ".join(p for p in line.split(" | ") if not p.startswith("cfg_hash"))
    assert [strip(x) for x in out] == [strip(x) for x in rec]
    assert err == (RUNS / RECORDED[name][4]).read_text().rstrip("\n").split("\n")


@needs_runs
def test_cli_verbose_lines(monkeypatch, capsys):
    out, _ = _cli(monkeypatch, capsys, "qp10_hb1", "reference", verbose=True)
    ticks = [x for x in out if x.startswith("tick ")]
    assert len(ticks) == 37
    assert ticks[0] == "tick 0: q=7.6700 Δ=1923.64 basis=-29.64 pnl=45.04 regime=Normal kill=false"
    assert ticks[-1].endswith("regime=HardLimit kill=true")
    assert out.index(ticks[-1]) + 1 == out.index(
        "Kill switch active at tick 36 - stopping simulation early (reason: DeltaHardBreach)."
    )


def test_header_and_hash():
    cfg = _cfg("seed42")
    line = header_line(cfg, 2000, None)
    assert line.startswith("paraphina | cfg=v0.1.6-worldmodel-exp08-presets | cfg_hash=0x")
    assert line.endswith(" | profile=Balanced | ticks=2000 | seed=none")
    assert len(line.split(" | ")[2]) == len("cfg_hash=0x") + 16
    assert fnv1a64(b"") == 0xCBF29CE484222325 and fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert config_dump(cfg) == config_dump(_cfg("seed42"))  # deterministic
    assert header_line(cfg, 5, 1) != header_line(_cfg("eta5"), 5, 1)  # knob values are hashed


def test_rust_display():
    assert [rust_display(x) for x in (5.0, 10.0, 0.1, 1e-7, -0.5, 2.5e20, 7, True)] == [
        "5",
        "10",
        "0.1",
        "0.0000001",
        "-0.5",
        "250000000000000000000",
        "7",
        "true",
    ]


def test_knob_log_lines_order_clamp_and_unparseable():
    env = {
        "PARAPHINA_HEDGE_BAND_BASE": "-2",  # clamped to 0
        "PARAPHINA_INIT_Q_TAO": "2.5",
        "PARAPHINA_MM_SIZE_ETA": "nan",  # non-finite ⇒ ignored with a warning
        "PARAPHINA_FILL_AGG_INTERVAL_MS": "500",
        "PARAPHINA_HL_STATE_STALE_MS_OVERRIDE": "4000",
        "PARAPHINA_ENABLE_FUNDING_MM": "true",
        "PARAPHINA_TRADE_MODE": "paper",  # run-time variable: no line
    }
    cfg, source, notes = h1.h1_config(None, env)
    assert source == "default"
    lines = [x for x in notes if x.startswith("[config]")]
    assert lines == [
        "[config] PARAPHINA_INIT_Q_TAO = 2.5 (overrode default)",
        "[config] PARAPHINA_HEDGE_BAND_BASE = 0 (overrode default)",
        "[config] PARAPHINA_FILL_AGG_INTERVAL_MS = 500 (overrode default)",
        "[config] PARAPHINA_HL_STATE_STALE_MS_OVERRIDE = 4000 (overrode default)",
        "[config] PARAPHINA_ENABLE_FUNDING_MM = true (overrode default)",
    ]
    assert any("MM_SIZE_ETA" in x for x in notes if not x.startswith("[config]"))
    assert knob_log_lines(cfg, {}) == []
    assert cfg.flags.paper_mode and cfg.flags.paper_pnl_masks_other_kills  # parity flags


def test_f1_gateway_rules_both_engines():
    """Post-only: crossing ⇒ rejected; IOC: not crossing ⇒ rejected; bad size/price ⇒ rejected."""
    bid, ask = 249.8, 250.2
    cases = [  # side, size, price, ioc, expected
        (SIDE_BUY, 1.0, 249.8, False, True),
        (SIDE_BUY, 1.0, 250.2, False, False),
        (SIDE_SELL, 1.0, 249.8, False, False),
        (SIDE_SELL, 1.0, 250.21, False, True),
        (SIDE_BUY, 1.0, 250.2, True, True),
        (SIDE_BUY, 1.0, 250.19, True, False),
        (SIDE_SELL, 1.0, 249.8, True, True),
        (SIDE_SELL, 1.0, 249.81, True, False),
        (SIDE_SELL, 0.0, 249.0, True, False),
        (SIDE_BUY, 1.0, float("nan"), False, False),
        (SIDE_BUY, 1.0, -1.0, False, False),
    ]
    book = h1.BookInputs(
        updated=np.ones(1, bool),
        bid_px=np.array([bid]),
        bid_sz=np.ones(1),
        ask_px=np.array([ask]),
        ask_sz=np.ones(1),
    )
    for side, size, price, ioc, want in cases:
        assert ref_h1.f1_accepts(side, size, price, book, 0, ioc) is want
        got = h1.f1_accepts(np.int32(side), np.float64(size), np.float64(price), bid, ask, ioc)
        assert bool(got) is want


def test_queue_capacity_bounds_placements_between_flushes():
    cfg = _cfg("seed42")
    assert h1.queue_capacity(cfg) == 2 * 5 * 4
    cfg2 = h1.h1_config("balanced", {"PARAPHINA_FILL_AGG_INTERVAL_MS": "1"})[0]
    assert h1.queue_capacity(cfg2) == 10
