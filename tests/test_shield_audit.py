"""`paraphina-jax audit`: exit codes, one-line errors, reported ticks/venues/rules, and the
record layouts it reads (exact "shield" block; episode "state" block rolled back by the tick's
IOC fills). Synthetic records only: no compilation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from paraphina_jax.cli.main import main
from paraphina_jax.config import make_config
from safety_shield import audit
from safety_shield.types import (
    RULE_KILL_SWITCH,
    RULE_LIQUIDATION,
    RULE_NAMES,
    RULE_PASSIVITY,
)

CFG = make_config()
N = 5


def shield_block(**kw):
    b = dict(
        now_ms=1000,
        kill_switch=False,
        risk_regime="Normal",
        q_global_tao=1.0,
        dollar_delta_usd=100.0,
        basis_usd=0.0,
        daily_pnl_total=0.0,
        delta_limit_usd=1e5,
        basis_limit_hard_usd=1e4,
        fair_value=100.0,
        status=["Healthy"] * N,
        dev_disabled=[False] * N,
        toxicity=[0.0] * N,
        mid_age_ms=[0] * N,
        position_tao=[1.0, 0.0, 0.0, 0.0, 0.0],
        dist_liq_sigma=[10.0] * N,
        mid=[100.0] * N,
        has_mid=[True] * N,
        mm_has=[[False, False]] * N,
        book_bid=[99.9] * N,
        book_ask=[100.1] * N,
        outage=[False] * N,
    )
    b.update(kw)
    return b


def actions(place_px=(99.8, 100.2), place=(True, True), exit_valid=False, exit_size=1.0):
    z = [0.0] * N
    f = [False] * N
    ioc = {"valid": f, "size": z, "price": z, "side": -1}
    ex = dict(ioc, valid=[exit_valid] + [False] * 4, size=[exit_size] + z[1:], price=[99.9] + z[1:])
    return {
        "quotes": {
            "bid_px": z, "ask_px": z, "bid_size": z, "ask_size": z,
            "bid_valid": f, "ask_valid": f,
        },
        "orders": {
            "cancel": [[False, False]] * N,
            "place": [list(place)] + [[False, False]] * (N - 1),
            "place_px": [list(place_px)] + [[0.0, 0.0]] * (N - 1),
            "place_size": [[1.0, 1.0]] + [[0.0, 0.0]] * (N - 1),
        },
        "exits": ex,
        "hedge": dict(ioc),
        "kill_exit": dict(ioc),
    }  # fmt: skip


def write(path, recs):
    with open(path, "w") as fh:
        for r in recs:
            fh.write(json.dumps(r) + "\n")
    return str(path)


def test_shield_audit_clean_file_exits_0(tmp_path, capsys):
    p = write(
        tmp_path / "ok.jsonl",
        [{"t": t, "shield": shield_block(), "actions": actions()} for t in range(3)],
    )
    assert main(["audit", p]) == 0
    assert "3 records, 0 violations" in capsys.readouterr().out


def test_shield_audit_reports_tick_venue_rule_and_exits_1(tmp_path, capsys):
    recs = [
        {"t": 0, "shield": shield_block(), "actions": actions()},
        {"t": 1, "shield": shield_block(), "actions": actions(place_px=(100.1, 100.2))},
        {"t": 2, "shield": shield_block(kill_switch=True), "actions": actions(place=(False, False), exit_valid=True)},
    ]  # fmt: skip
    p = write(tmp_path / "bad.jsonl", recs)
    assert main(["audit", p]) == 1
    out = capsys.readouterr().out
    assert f"t=1 venue 0 rule {RULE_PASSIVITY} (passivity)" in out
    assert f"t=2 venue 0 rule {RULE_KILL_SWITCH} (kill_switch)" in out
    _, found = audit.audit_file(p, CFG)
    assert [(v.tick, v.venue, RULE_NAMES[v.rule]) for v in found] == [
        (1, 0, "passivity"),
        (2, 0, "kill_switch"),
    ]


@pytest.mark.parametrize(
    "content,needle",
    [
        (None, "cannot read"),
        ("not json\n", "not JSON"),
        ('{"t": 0, "actions": {}}\n', "missing field"),
        ("", "no records"),
    ],
)
def test_shield_audit_unreadable_input_exits_2(tmp_path, capsys, content, needle):
    p = tmp_path / "x.jsonl"
    if content is not None:
        p.write_text(content)
    assert main(["audit", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and str(p) in err


def test_shield_audit_missing_actions_field_names_it(tmp_path, capsys):
    a = actions()
    del a["hedge"]
    p = write(tmp_path / "m.jsonl", [{"t": 0, "shield": shield_block(), "actions": a}])
    assert main(["audit", p]) == 2
    err = capsys.readouterr().err
    assert "'hedge'" in err and ":1:" in err


def test_shield_audit_state_block_rolls_back_ioc_fills():
    """Episode layout: the state is recorded after this tick's IOC fills; the audit checks the
    allowed exit against the position BEFORE the fill (q0 = 3 → 1 after selling 2)."""
    venues = {
        "status": ["Healthy"] * N,
        "staleness_ms": [0] * N,
        "toxicity": [0.0] * N,
        "position_tao": [1.0, 0.0, 0.0, 0.0, 0.0],
        "dist_liq_sigma": [1.5] + [10.0] * 4,  # venue 0 critical: only reductions ≤ |q0|
        "mid": [100.0] * N,
        "best_bid": [99.9] * N,
        "best_ask": [100.1] * N,
        "has_mid": [True] * N,
    }
    state = {
        "now_ms": 1000, "risk_regime": "Normal", "kill_switch": False, "q_global_tao": 1.0,
        "dollar_delta_usd": 100.0, "basis_usd": 0.0, "delta_limit_usd": 1e5,
        "basis_limit_hard_usd": 1e4, "fair_value": 100.0, "has_fair_value": True,
        "venues": venues,
    }  # fmt: skip
    fill = {"venue": 0, "side": -1, "size": 2.0, "price": 99.9, "fee_bps": 5.0, "purpose": "EXIT"}
    rec = {
        "t": 7,
        "pnl_total": 0.0,
        "state": state,
        "actions": actions(place=(False, False), exit_valid=True, exit_size=2.0),
        "market": {"outage": [False] * N},
        "fills": [fill],
    }
    f = audit.facts_from_record(rec, CFG)
    assert f.position_tao[0] == pytest.approx(3.0)
    assert float(f.q_global_tao) == pytest.approx(3.0)
    assert float(f.dollar_delta_usd) == pytest.approx(300.0)
    # selling 2 at 99.9 with S = 100 and 5 bp: Δtotal = −2·(100 − 99.9) − 0.0999 = −0.2999
    assert float(f.daily_pnl_total) == pytest.approx(0.2999)
    assert audit.audit_records([rec], CFG) == []
    # an exit of 4 TAO (2 of which filled) would overshoot the pre-fill position (3)
    rec["actions"] = actions(place=(False, False), exit_valid=True, exit_size=4.0)
    found = audit.audit_records([rec], CFG)
    assert (7, 0, RULE_LIQUIDATION) in [tuple(v) for v in found]


def test_shield_check_invariants_on_arrays():
    f = audit._facts_from_shield_block(shield_block(kill_switch=True), "x")
    from safety_shield.types import order_layout

    lay = order_layout(N)
    acts = audit.actions_from_record({"actions": actions()}, lay)
    found = audit.check_invariants(f, acts, CFG)
    assert {v.rule for v in found} == {RULE_KILL_SWITCH}
    assert sorted({v.venue for v in found}) == [0]
    assert np.all([v.tick == 0 for v in found])
