"""Whole episodes with a reckless decision-maker (safety_shield/reckless.py), shield on and off.

Two compiled episode programs (B = 2, T = 32, float32). The reckless rewrite followed by the
shield: `paraphina-jax audit` finds no violation in the executed actions (checked against the
telemetry's exact "shield" facts; nor in the heuristic strategy's own proposals), and the
shield's counts name the rules it enforced. The same run with the shield bypassed (test-only
switch) is caught by the audit with the right rules named.
"""

from __future__ import annotations

import numpy as np
import pytest

from paraphina_jax.cli.main import main
from paraphina_jax.config import make_config
from paraphina_jax.sim import episode as E
from paraphina_jax.sim.telemetry import telemetry_to_jsonl
from paraphina_jax.sim.types import StaticSimParams
from safety_shield import reckless as RK
from safety_shield.audit import audit_file, facts_from_record, read_records
from safety_shield.types import (
    N_RULES,
    RULE_IOC_CAPS,
    RULE_KILL_SWITCH,
    RULE_ORDER_SIZE,
    RULE_PASSIVITY,
)

CFG = make_config()
T, B = 32, 2


def _run(shield_fn, controls_fn):
    params = E.default_episode_params(CFG, T, vol=0.5, fill_a=np.full(5, 20.0))
    return E.run_batch(
        np.arange(B),
        params,
        CFG,
        StaticSimParams(),
        n_ticks=T,
        chunk_ticks=T,
        telemetry_episodes=B,
        shield_fn=shield_fn,
        controls_fn=controls_fn,
    )


@pytest.fixture(scope="module")
def shielded(tmp_path_factory):
    res, tel = _run(RK.RECKLESS_SHIELDED, RK.RECKLESS_CONTROLS_SHIELDED)
    paths = []
    for e in range(B):
        p = tmp_path_factory.mktemp("shield") / f"ep{e}.jsonl"
        telemetry_to_jsonl(tel, CFG, p, episode=e)
        paths.append(p)
    return res, tel, paths


def test_shield_episode_reckless_actor_audits_clean(shielded, capsys):
    res, tel, paths = shielded
    assert res.shield_interventions.shape == (B, N_RULES)
    assert res.shield_interventions.sum() > 0
    # the per-episode totals are the per-tick counts summed
    np.testing.assert_array_equal(
        res.shield_interventions, np.asarray(tel.interventions).sum(axis=1)
    )
    for p in paths:
        assert main(["audit", str(p)]) == 0
        assert "0 violations" in capsys.readouterr().out
    # the audit checked against exactly what the shield saw: the telemetry's "shield" block
    recs = read_records(paths[0])
    assert all("shield" in r for r in recs)
    facts = facts_from_record(recs[0], CFG)
    assert facts.position_tao.shape == (CFG.n_venues,)
    assert isinstance(recs[0]["shield"]["risk_regime"], str)


def test_shield_episode_heuristic_proposals_audit_clean_and_reckless_ones_were_cut(
    shielded, capsys
):
    res, _, paths = shielded
    # "proposed" = the heuristic strategy's own actions (the reckless rewrite happens inside
    # the shield_fn slot): they already satisfy every invariant.
    for p in paths:
        assert main(["audit", "--proposed", str(p)]) == 0
    capsys.readouterr()
    # the reckless rewrite was cut by the rules it breaks
    total = res.shield_interventions.sum(axis=0)
    for rule in (RULE_KILL_SWITCH, RULE_PASSIVITY, RULE_ORDER_SIZE, RULE_IOC_CAPS):
        assert total[rule] > 0


def test_shield_episode_bypassed_is_caught(tmp_path, capsys):
    res, tel = _run(RK.RECKLESS_BYPASS, RK.reckless_controls_fn)
    assert int(np.asarray(res.shield_interventions).sum()) == 0
    for e in range(B):
        p = tmp_path / f"bypass{e}.jsonl"
        telemetry_to_jsonl(tel, CFG, p, episode=e)
        assert main(["audit", str(p)]) == 1
        _, found = audit_file(p, CFG)
        rules = {v.rule for v in found}
        assert {RULE_PASSIVITY, RULE_ORDER_SIZE, RULE_IOC_CAPS, RULE_KILL_SWITCH} <= rules
    capsys.readouterr()
