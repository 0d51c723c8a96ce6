"""`paraphina-jax parity`: report, exit codes and bad input.

The default tests use the shapes of tests/test_episode_parity.py (4 varied episodes × 120 ticks
in chunks of 60, float64), so in one pytest process they share its compiled program.
"""

from __future__ import annotations

import json

import pytest

from paraphina_jax.cli.main import main
from paraphina_jax.reference import sim_episode

ARGS = ["parity", "--varied", "--episodes", "4", "--ticks", "120", "--chunk-ticks", "60"]


def test_parity_command_reports_ok(tmp_path, capsys):
    out = tmp_path / "parity.json"
    rc = main([*ARGS, "--seed", "3", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "parity: OK" in text
    assert "first differing tick" in text and "pnl_total" in text
    rep = json.loads(out.read_text())
    assert rep["ok"] and rep["precision"] == "float64" and rep["episodes"] == 4
    assert rep["tolerance"] == {"rtol": 1e-6, "discrete_exact": True}
    assert all(v["first_tick"] == -1 for v in rep["discrete"].values())
    assert all(v["max_rel"] <= 1e-6 for v in rep["continuous"].values())
    assert not list(tmp_path.glob("*.tmp"))


def test_parity_command_fails_beyond_tolerance(monkeypatch, capsys):
    """A reference that books one extra USD from tick 50 on: exit 1, the field is named."""
    real = sim_episode.run_episode

    def skewed(*a, **kw):
        res, tel = real(*a, **kw)
        rec = tel.record
        bump = (rec.t >= 50).astype(float)
        tel = tel.replace(record=rec.replace(cash_usd=rec.cash_usd + bump))
        return res, tel

    monkeypatch.setattr(sim_episode, "run_episode", skewed)
    rc = main([*ARGS, "--seed", "3"])
    text = capsys.readouterr().out
    assert rc == 1
    assert "parity: FAIL" in text
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("cash_usd"))
    assert float(line.split()[1]) > 1e-6


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--episodes", "0"], "--episodes: 0 (allowed: integer >= 1)"),
        (["--ticks", "-3"], "--ticks: -3 (allowed: integer >= 1)"),
        (["--scenario-file", "/nonexistent/x.yaml"], "/nonexistent/x.yaml"),
        (["--scenario", "no_such_scenario"], "no_such_scenario"),
    ],
)
def test_parity_command_bad_input_exits_2(extra, needle, capsys):
    rc = main(["parity", *extra])
    err = capsys.readouterr().err
    assert rc == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow  # compiles the scenario-shaped (unbatched) program
def test_parity_command_on_a_library_scenario(capsys):
    rc = main(["parity", "--scenario", "basis_pos", "--episodes", "2", "--ticks", "600"])
    text = capsys.readouterr().out
    assert rc == 0, text


@pytest.mark.slow  # compiles the float32 program
def test_parity_command_float32(capsys):
    rc = main([*ARGS, "--float32", "--seed", "3"])
    text = capsys.readouterr().out
    assert "float32" in text
    assert rc in (0, 1)
    assert "parity: OK" in text if rc == 0 else "parity: FAIL" in text
