"""Scenario files v1 (SIMULATION §2.4, §7, §14): schema, compilation, library, manifest, CLI."""

import argparse
import copy
import json
import re
import shutil

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from paraphina_jax.cli import scenarios_cmd
from paraphina_jax.config import make_config
from paraphina_jax.scenarios import (
    FUNDING_SWITCHES,
    LIBRARY,
    LIBRARY_DIR,
    ScenarioError,
    compile_scenario,
    list_scenarios,
    load_library,
    load_scenario,
    load_suite,
    parse_scenario,
    parse_scenario_text,
    resolve_scenario,
    scenario_config,
    scenario_overrides,
    verify_manifest,
    write_library,
)
from paraphina_jax.scenarios.library import MANIFEST_NAME, library_files
from paraphina_jax.sim.schedule import identity_schedule

N = 5
T = 1500
LIB = load_library()
BY_SHORT = {e.short: LIB[e.scenario_id] for e in LIBRARY}


def compiled(short):
    return compile_scenario(BY_SHORT[short], N)


# ---------------------------------------------------------------- library files parse & compile


def test_every_library_file_parses_and_compiles():
    files = sorted(p.name for p in LIBRARY_DIR.glob("*.yaml"))
    assert files == sorted(e.filename for e in LIBRARY) and len(files) == 10
    for e in LIBRARY:
        spec = load_scenario(LIBRARY_DIR / e.filename)
        assert spec.scenario_id == e.scenario_id and spec.category == e.category
        assert spec.profile == e.profile and spec.engine == "rl_sim_env"
        assert spec.seeds == (e.base_seed, e.base_seed + 1, e.base_seed + 2)
        assert spec.n_steps == T and spec.horizon.dt_ms == 250
        assert spec.invariants.expect_kill_switch == "allowed"
        params, sched = compile_scenario(spec, N)
        assert float(params.vol) == e.vol and float(params.drift) == 0.0
        assert float(params.jump_intensity) == e.jump_intensity
        assert float(params.jump_sigma) == e.jump_sigma
        np.testing.assert_array_equal(params.maker_fee_bps, np.zeros(N))
        np.testing.assert_array_equal(params.taker_fee_bps, np.full(N, e.taker_bps))
        assert float(params.latency_ms) == e.latency_ms
        assert float(params.init_q_tao) == e.init_q_tao and int(params.dt_ms) == 250
        assert sched.outage.shape == (T, N) and sched.latency_ms.shape == (T,)


def test_library_table_values():
    vh = BY_SHORT["vol_high"].market_model.synthetic
    assert vh.process == "jump_diffusion_stub" and vh.params.jump_intensity == 0.0003
    assert BY_SHORT["liq_spread"].initial_state.init_q_tao == 10.0
    assert BY_SHORT["liq_depth"].initial_state.init_q_tao == -10.0
    assert BY_SHORT["liq_depth"].profile == "conservative"
    assert BY_SHORT["venue_outage"].initial_state.init_q_tao == 5.0
    assert [r.scenario_id for r in list_scenarios()] == sorted(e.scenario_id for e in LIBRARY)


def test_shipped_library_is_the_generator_output(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_library(a)
    write_library(b)
    names = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    assert len(names) == 14  # 10 scenarios + README + 2 suites + manifest
    for rel in names:
        assert (a / rel).read_bytes() == (b / rel).read_bytes() == (LIBRARY_DIR / rel).read_bytes()
    assert not list(a.rglob(".*"))  # no temporary files left


def test_manifest_format():
    text = (LIBRARY_DIR / MANIFEST_NAME).read_text()
    m = json.loads(text)
    assert text == json.dumps(m, indent=2, sort_keys=True) + "\n"
    assert m["schema_version"] == 1 and m["seed"] == 20260105 and m["scenario_count"] == 10
    assert m["generated_by"] == {"module": "paraphina_jax.scenarios.library", "version": "1.0.0"}
    assert len(m["files"]) == 11 and "README.md" in m["files"]
    assert all(len(h) == 64 for h in m["files"].values())


def test_suites():
    full = load_suite(LIBRARY_DIR / "suites" / "full.yaml")
    smoke = load_suite(LIBRARY_DIR / "suites" / "smoke.yaml")
    assert [e.resolved.name for e in full.scenarios] == sorted(e.filename for e in LIBRARY)
    assert [e.resolved.name for e in smoke.scenarios] == [
        f"slib_v1_{s}.yaml"
        for s in ("vol_medium", "liq_spread", "venue_outage", "fund_flip", "basis_pos")
    ]
    assert smoke.repeat_runs == 1 and all(e.resolved.is_file() for e in full.scenarios)


# ---------------------------------------------------------------- schedules


def test_venue_outage_window_inclusive():
    _, s = compiled("venue_outage")
    expected = np.zeros((T, N), dtype=bool)
    expected[300:701, 0] = True
    np.testing.assert_array_equal(s.outage, expected)
    assert s.outage[300, 0] and s.outage[700, 0] and not s.outage[299, 0] and not s.outage[701, 0]
    assert s.outage.dtype == bool


def test_funding_flip_at_step_500():
    spec = BY_SHORT["fund_flip"]
    p, s = compile_scenario(spec, N)
    np.testing.assert_array_equal(s.funding_sign[:500], 1.0)
    np.testing.assert_array_equal(s.funding_sign[500:], -1.0)
    np.testing.assert_array_equal(p.funding_8h, np.full(N, 1e-4))
    assert spec.funding_switches == FUNDING_SWITCHES
    np.testing.assert_array_equal(s.funding_add, 0.0)


def test_funding_drift_ramp():
    p, s = compiled("fund_drift")
    t = np.arange(T)
    ramp = 0.5e-4 * np.maximum(0, t - 200)
    np.testing.assert_allclose(s.funding_add, np.repeat(ramp[:, None], N, 1), rtol=1e-15)
    assert s.funding_add[200, 0] == 0.0
    np.testing.assert_allclose(s.funding_add[1499, 3], 1299 * 0.5e-4, rtol=1e-15)
    np.testing.assert_array_equal(s.funding_sign, 1.0)
    np.testing.assert_array_equal(p.funding_8h, np.full(N, 1e-4))


@pytest.mark.parametrize("short,mult", [("basis_pos", 1.01), ("basis_neg", 0.99)])
def test_basis_spike_half_open_window(short, mult):
    _, s = compiled(short)
    expected = np.ones((T, N))
    expected[400:600, 1] = mult
    np.testing.assert_allclose(s.mid_mult, expected, rtol=0, atol=1e-15)
    assert s.mid_mult[599, 1] != 1.0 and s.mid_mult[600, 1] == 1.0 and s.mid_mult[399, 1] == 1.0


def test_liquidity_shocks_whole_episode():
    _, s = compiled("liq_spread")
    np.testing.assert_array_equal(s.spread_add_bps, np.full((T, N), 50.0))
    np.testing.assert_array_equal(s.depth_mult, 1.0)
    _, s = compiled("liq_depth")
    np.testing.assert_allclose(s.depth_mult, np.full((T, N), 0.4), rtol=1e-15)
    np.testing.assert_array_equal(s.spread_add_bps, 0.0)


@pytest.mark.parametrize("short", ["vol_low", "vol_medium", "vol_high"])
def test_vol_regimes_have_identity_schedules(short):
    p, s = compiled(short)
    ident = identity_schedule(T, N, latency_ms=float(p.latency_ms))
    for a, b in zip(jax.tree.leaves(s), jax.tree.leaves(ident)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(p.funding_8h, 0.0)
    assert BY_SHORT[short].funding_switches == ()


def test_latency_spike_and_cancel_storm_inclusive():
    spec = parse_scenario(
        {
            **BASE,
            "latency_spike": {"spike_ms": 80.0, "start_step": 10, "end_step": 20},
            "cancel_storm": {
                "start_step": 5,
                "end_step": 7,
                "spread_mult": 3.0,
                "depth_mult": 0.5,
                "toxicity_floor": 0.8,
            },
            "depth_shock_pct": -50.0,
        }
    )
    _, s = compile_scenario(spec, N)
    lat = np.full(100, 2.0)
    lat[10:21] = 80.0
    np.testing.assert_array_equal(s.latency_ms, lat)
    storm = np.zeros(100, dtype=bool)
    storm[5:8] = True
    np.testing.assert_array_equal(s.toxicity_floor, np.where(storm, 0.8, 0.0))
    np.testing.assert_array_equal(s.spread_mult, np.where(storm[:, None], 3.0, 1.0) * np.ones(N))
    np.testing.assert_allclose(s.depth_mult, np.where(storm[:, None], 0.25, 0.5) * np.ones(N))


def test_same_length_scenarios_share_one_program():
    outs = [compile_scenario(LIB[k], N) for k in LIB]
    ref_def = jax.tree.structure(outs[0])
    ref_meta = [(np.shape(x), np.asarray(x).dtype) for x in jax.tree.leaves(outs[0])]
    for o in outs[1:]:
        assert jax.tree.structure(o) == ref_def
        assert [(np.shape(x), np.asarray(x).dtype) for x in jax.tree.leaves(o)] == ref_meta

    @jax.jit
    @chex.assert_max_traces(n=1)
    def touch(params, sched):
        return jnp.sum(sched.mid_mult * params.taker_fee_bps) + jnp.sum(sched.outage)

    chex.clear_trace_counter()
    vals = [float(touch(p, s)) for p, s in outs]
    assert len(vals) == 10
    stacked = jax.tree.map(lambda *xs: np.stack(xs), *outs)
    assert stacked[1].outage.shape == (10, T, N)
    np.testing.assert_allclose(jax.vmap(touch)(*stacked), vals, rtol=1e-5)


# ---------------------------------------------------------------- strictness

BASE = {
    "scenario_id": "t_base",
    "scenario_version": 1,
    "horizon": {"steps": 100, "dt_seconds": 0.25},
    "rng": {"base_seed": 7, "num_seeds": 2},
    "initial_state": {"risk_profile": "balanced", "init_q_tao": 0.0},
    "market_model": {
        "type": "synthetic",
        "synthetic": {"process": "gbm", "params": {"vol": 0.015, "drift": 0.0}},
    },
    "microstructure_model": {"fees_bps_maker": 0.0, "fees_bps_taker": 1.0, "latency_ms": 2.0},
    "venue_outage": {"venue_index": 0, "start_step": 30, "end_step": 70},
    "basis_spike": {
        "magnitude_bps": 100.0,
        "venue_index": 1,
        "trigger_step": 40,
        "duration_steps": 20,
    },
    "funding_inversion": {"type": "sign_flip", "trigger_step": 50},
    "latency_spike": {"spike_ms": 50.0, "start_step": 10, "end_step": 20},
}
DELETE = object()


def mutate(d, path, value):
    d = copy.deepcopy(d)
    node = d
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[k]
    if value is DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return d


# (key path to set, value, key path named in the message, allowed-range text, problem text)
P = "market_model.synthetic.params"
PF = {
    "enabled": True,
    "base_fill_prob": 0.7,
    "latency_sensitivity": 0.5,
    "latency_ref_ms": 50.0,
    "depth_ref": 10000.0,
    "min_fill_frac": 0.2,
    "max_fill_frac": 0.9,
    "apply_to_mm": True,
}
# fmt: off
MALFORMED = [
    # unknown keys
    ("extra_block", 1, "extra_block", "scenario_id, scenario_version, engine", "unknown key"),
    ("horizon.stepz", 5, "horizon.stepz", "steps, dt_seconds", "unknown key"),
    (f"{P}.volatility", 0.1, f"{P}.volatility", "vol, drift, jump_intensity, jump_sigma", "unknown key"),
    # wrong types
    ("horizon.steps", "1500", "horizon.steps", "integer in [1, 10000000]", "expected an integer, got str"),
    ("horizon.steps", 100.0, "horizon.steps", "integer in [1, 10000000]", "expected an integer, got float"),
    ("microstructure_model.fees_bps_taker", True, "microstructure_model.fees_bps_taker", "number in [-100, 100]", "expected a number, got bool"),
    (f"{P}.vol", "high", f"{P}.vol", "number in [0, 10]", "expected a number, got str"),
    ("venue_outage", [0, 30, 70], "venue_outage", "keys venue_index, start_step, end_step", "expected a mapping"),
    ("partial_fill", {**PF, "enabled": "yes please"}, "partial_fill.enabled", "true | false", "expected true/false"),
    # out of range / not allowed
    (f"{P}.vol", -0.1, f"{P}.vol", "number in [0, 10]", "-0.1 out of range"),
    (f"{P}.vol", float("nan"), f"{P}.vol", "number in [0, 10]", "non-finite"),
    ("rng.num_seeds", 0, "rng.num_seeds", "integer in [1, 100000]", "0 out of range"),
    ("rng.base_seed", -1, "rng.base_seed", "integer in [0, 18446744073709551615]", "out of range"),
    ("scenario_version", 2, "scenario_version", "1", "2 out of range"),
    ("spread_shock_bps", -5.0, "spread_shock_bps", "number in [0, 10000]", "out of range"),
    ("depth_shock_pct", -150.0, "depth_shock_pct", "number in [-100, 1000]", "out of range"),
    ("cancel_storm", {"start_step": 1, "end_step": 2, "spread_mult": 2.0, "depth_mult": 0.5, "toxicity_floor": 1.5}, "cancel_storm.toxicity_floor", "number in [0, 1]", "out of range"),
    ("engine", "gym", "engine", "rl_sim_env | core_sim | replay_stub", "not an allowed value"),
    ("initial_state.risk_profile", "medium", "initial_state.risk_profile", "balanced|bal|b", "unknown risk profile"),
    ("funding_inversion.type", "gradual", "funding_inversion.type", "sign_flip", "not an allowed value"),
    (f"{P}.jump_intensity", 0.001, f"{P}.jump_intensity", "0 for gbm", "with process gbm"),
    # a present block gives every field
    ("horizon", {"steps": 100}, "horizon.dt_seconds", "number in [0.001, 3600]", "missing"),
    ("partial_fill", {"enabled": True}, "partial_fill.base_fill_prob", "number in [0, 1]", "missing"),
    ("partial_fill", {**PF, "max_fill_frac": 0.1}, "partial_fill.max_fill_frac", "number in [0.2, 1]", "below min_fill_frac"),
    ("market_model.type", DELETE, "market_model.type", "synthetic | historical_stub", "missing"),
    # windows outside the horizon (T = 100 ⇒ steps 0..99)
    ("venue_outage.end_step", 100, "venue_outage.end_step", "integer in [30, 99]", "outside the horizon of 100 steps"),
    ("venue_outage.end_step", 20, "venue_outage.end_step", "integer in [30, 99]", "is before start_step 30"),
    ("latency_spike.start_step", -1, "latency_spike.start_step", "integer in [0, 99]", "outside the horizon"),
    ("funding_inversion.trigger_step", 100, "funding_inversion.trigger_step", "integer in [0, 99]", "outside the horizon"),
    ("basis_spike.duration_steps", 61, "basis_spike.duration_steps", "integer in [1, 60]", "runs past the horizon"),
    # venue index out of range (5 venues)
    ("venue_outage.venue_index", 5, "venue_outage.venue_index", "integer in [0, 4]", "5 out of range"),
    ("basis_spike.venue_index", -1, "basis_spike.venue_index", "integer in [0, 4]", "-1 out of range"),
]
# fmt: on


@pytest.mark.parametrize("path,value,key,allowed,problem", MALFORMED)
def test_malformed_refused_with_file_key_and_range(tmp_path, path, value, key, allowed, problem):
    f = tmp_path / "bad_scenario.yaml"
    f.write_text(yaml.safe_dump(mutate(BASE, path, value)))
    with pytest.raises(ScenarioError) as ei:
        load_scenario(f)
    msg = str(ei.value)
    assert "\n" not in msg
    assert msg.startswith(f"{f}: {key}: "), msg
    assert (
        problem in msg and msg.endswith(f"(allowed: {allowed})") or f"(allowed: {allowed}" in msg
    ), msg


def test_base_fixture_is_valid_and_windows_hit_the_horizon_edges():
    spec = parse_scenario(mutate(BASE, "venue_outage.end_step", 99))
    _, s = compile_scenario(spec, N)
    assert s.outage[99, 0] and s.outage.shape == (100, N)
    spec = parse_scenario(mutate(BASE, "basis_spike.duration_steps", 60))
    assert compile_scenario(spec, N)[1].mid_mult[99, 1] == 1.01


def test_duplicate_keys_and_bad_yaml_refused():
    text = "scenario_id: a\nscenario_version: 1\nhorizon:\n  steps: 10\n  steps: 20\n  dt_seconds: 1.0\n"
    with pytest.raises(
        ScenarioError, match=r"^dup\.yaml: line 5: invalid YAML: duplicate key 'steps'"
    ):
        parse_scenario_text(text, "dup.yaml")
    with pytest.raises(ScenarioError, match=r"^x\.yaml: <root>: expected a mapping"):
        parse_scenario_text("- 1\n- 2\n", "x.yaml")
    with pytest.raises(ScenarioError, match=r"missing\.yaml: <file>: cannot read"):
        load_scenario("missing.yaml")


def test_compile_checks_venue_count():
    spec = parse_scenario(BASE, "b.yaml")
    with pytest.raises(
        ScenarioError,
        match=r"^b\.yaml: basis_spike\.venue_index: 1 out of range \(allowed: integer in \[0, 0\]\)",
    ):
        compile_scenario(spec, 1)
    with pytest.raises(ScenarioError, match=r"venue_outage\.venue_index.*\[0, 2\]"):
        parse_scenario(mutate(BASE, "venue_outage.venue_index", 3), "b.yaml", n_venues=3)


def test_block_defaults_per_block():
    spec = parse_scenario({"scenario_id": "minimal", "scenario_version": 1})
    assert spec.horizon.steps == 1000 and spec.horizon.dt_seconds == 1.0
    assert spec.seeds == (42,) and spec.profile == "balanced"
    p = spec.market_model.synthetic
    assert p.process == "gbm" and p.params.vol == 0.015 and p.params.jump_intensity == 0.0
    assert spec.microstructure_model.fees_bps_taker == 0.0
    assert spec.invariants.expect_kill_switch == "allowed" and not spec.partial_fill.enabled
    assert spec.partial_fill.latency_ref_ms == 50.0 and spec.partial_fill.depth_ref == 10_000.0
    # present params block: missing fields are 0; present invariants: missing fields default
    d = mutate(BASE, "market_model.synthetic.params", {"vol": 0.02})
    d["invariants"] = {"expect_kill_switch": "never"}
    spec = parse_scenario(d)
    assert spec.market_model.synthetic.params.drift == 0.0
    assert spec.invariants.pnl_linearity_check == "disabled"
    assert spec.invariants.expect_kill_switch == "never"


def test_yaml12_floats_profiles_and_u64_seeds():
    text = (
        "scenario_id: j\nscenario_version: 1\nrng: {base_seed: 18446744073709551615, num_seeds: 2}\n"
        "initial_state: {risk_profile: ' Cons ', init_q_tao: -3}\n"
        "market_model: {type: synthetic, synthetic: {process: jump_diffusion_stub,"
        " params: {vol: 2e-2, jump_intensity: 5e-4, jump_sigma: .03}}}\n"
    )
    spec = parse_scenario_text(text)
    assert spec.market_model.synthetic.params.jump_intensity == 5e-4
    assert spec.seeds == (2**64 - 1, 0) and spec.profile == "conservative"
    assert spec.initial_state.init_q_tao == -3.0


def test_to_dict_round_trip():
    full = {
        **BASE,
        "partial_fill": PF,
        "adversarial_params": {"vol_multiplier": 1.5, "daily_loss_limit": 1000.0},
        "funding_drift": {"drift_bps_per_step": -0.25, "start_step": 3},
    }
    for spec in [*LIB.values(), parse_scenario(full)]:
        assert parse_scenario(yaml.safe_load(yaml.safe_dump(spec.to_dict()))) == spec
    p, _ = compile_scenario(parse_scenario(full), N)
    assert bool(p.partial_fill.enabled) and float(p.partial_fill.max_fill_frac) == 0.9


def test_stub_markets_fall_back_with_a_warning():
    d = mutate(
        BASE, "market_model", {"type": "historical_stub", "historical_stub": {"dataset_id": "x"}}
    )
    spec = parse_scenario(d, "h.yaml")
    with pytest.warns(UserWarning, match="historical_stub"):
        p, _ = compile_scenario(spec, N)
    assert float(p.vol) == 0.015
    with pytest.warns(UserWarning, match="replay_stub"):
        compile_scenario(parse_scenario({**BASE, "engine": "replay_stub"}), N)


def test_suite_schema(tmp_path):
    text = (
        "suite_id: s\nsuite_version: 2\nenv_overrides: {PARAPHINA_RISK_PROFILE: cons}\n"
        "scenarios:\n  - path: a.yaml\n  - id: inline_one\n    seed: 3\n    profile: agg\n"
        "    adversarial_params: {vol_multiplier: 1.5, daily_loss_limit: 800.0}\n"
    )
    f = tmp_path / "suite.yaml"
    f.write_text(text)
    suite = load_suite(f)
    assert (
        suite.repeat_runs == 1
        and suite.out_dir == "runs/ci"
        and suite.expect_kill_switch == "allowed"
    )
    assert suite.env_overrides == (("PARAPHINA_RISK_PROFILE", "cons"),)
    a, b = suite.scenarios
    assert a.is_path and a.resolved == tmp_path / "a.yaml"
    assert not b.is_path and b.seed == 3 and b.adversarial_params.daily_loss_limit == 800.0
    for bad, where in [
        (text.replace("seed: 3", "seed: -3"), "scenarios[1].seed"),
        (text.replace("cons}", "1}"), "env_overrides.PARAPHINA_RISK_PROFILE"),
        (text + "extra: 1\n", "extra"),
        (text.replace("path: a.yaml", "path: a.yaml\n    id: x"), "scenarios[0].id"),
    ]:
        f.write_text(bad)
        with pytest.raises(ScenarioError, match=rf"^{f}: {re.escape(where)}: .*\(allowed: "):
            load_suite(f)


def test_duplicate_ids_in_a_library_dir_refused(lib_copy):
    shutil.copy(lib_copy / "slib_v1_vol_low.yaml", lib_copy / "zz_copy.yaml")
    with pytest.raises(
        ScenarioError, match=r"zz_copy\.yaml: scenario_id: 'slib_v1_vol_low' already used"
    ):
        load_library(lib_copy)


# ---------------------------------------------------------------- config, resolution


def test_scenario_config_overrides_and_funding_switches():
    spec = BY_SHORT["liq_spread"]
    cfg = scenario_config(spec, make_config(spec.profile))
    assert cfg.profile == "conservative" and cfg.vol.vol_ref == 0.018
    np.testing.assert_array_equal(cfg.venues.taker_fee_bps, np.full(N, 1.5))
    np.testing.assert_array_equal(cfg.venues.maker_fee_bps, np.zeros(N))
    assert cfg.loop.initial_q_tao == 10.0 and not cfg.funding.mm_funding_enabled
    cfg = scenario_config(BY_SHORT["fund_flip"], make_config())
    assert cfg.funding.mm_funding_enabled and cfg.funding.hedge_funding_enabled
    assert cfg.funding.exit_funding_enabled
    adv = parse_scenario(
        {**BASE, "adversarial_params": {"vol_multiplier": 2.0, "daily_loss_limit": 750.0}}
    )
    assert scenario_overrides(adv, N)["risk.daily_loss_limit"] == 750.0
    assert scenario_config(adv, make_config()).risk.daily_loss_limit == 750.0
    assert "vol.vol_ref" not in scenario_overrides(adv, N, set_vol_ref=False)


@pytest.mark.parametrize(
    "name",
    [
        "slib_v1_basis_pos",
        "basis_pos",
        "basis_spike_pos",
        "BASIS_POS",
        " basis_pos ",
        "slib_v1_basis_pos.yaml",
    ],
)
def test_resolve_scenario_names(name):
    assert resolve_scenario(name).scenario_id == "slib_v1_basis_pos"


def test_resolve_scenario_paths_and_unknown(tmp_path):
    assert resolve_scenario("vol_medium").scenario_id == "slib_v1_vol_medium"
    assert resolve_scenario("funding_flip").scenario_id == "slib_v1_fund_flip"
    assert (
        resolve_scenario(LIBRARY_DIR / "slib_v1_liq_depth.yaml").scenario_id == "slib_v1_liq_depth"
    )
    f = tmp_path / "mine.yaml"
    f.write_text(yaml.safe_dump(BASE))
    assert resolve_scenario(str(f)).scenario_id == "t_base"
    with pytest.raises(
        ScenarioError, match=r"^vol_extreme: <name>: unknown scenario \(allowed: .*vol_low"
    ):
        resolve_scenario("vol_extreme")
    with pytest.raises(ScenarioError, match="not found"):
        resolve_scenario(str(tmp_path / "nope.yaml"))


# ---------------------------------------------------------------- manifest verification


@pytest.fixture
def lib_copy(tmp_path):
    d = tmp_path / "lib"
    shutil.copytree(LIBRARY_DIR, d)
    return d


def test_verify_passes_on_shipped_library():
    assert verify_manifest() == []
    assert verify_manifest(LIBRARY_DIR) == []


def test_verify_names_tampered_file(lib_copy):
    f = lib_copy / "slib_v1_vol_low.yaml"
    f.write_text(f.read_text().replace("vol: 0.008", "vol: 0.009"))
    problems = verify_manifest(lib_copy)
    assert len(problems) == 1 and problems[0].startswith("slib_v1_vol_low.yaml: changed")


def test_verify_names_missing_and_extra_files(lib_copy):
    (lib_copy / "slib_v1_fund_flip.yaml").unlink()
    (lib_copy / "notes.txt").write_text("x")
    problems = verify_manifest(lib_copy)
    assert "slib_v1_fund_flip.yaml: missing" in problems
    assert "notes.txt: extra file (not in the manifest)" in problems
    assert any(p.startswith("suites/full.yaml: scenarios[") and "missing" in p for p in problems)


def test_verify_schema_suite_and_manifest_problems(lib_copy):
    f = lib_copy / "slib_v1_vol_low.yaml"
    f.write_text(f.read_text() + "bogus_key: 1\n")
    (lib_copy / "suites" / "smoke.yaml").unlink()
    full = lib_copy / "suites" / "full.yaml"
    full.write_text(full.read_text().replace("  - path: ../slib_v1_basis_neg.yaml\n", ""))
    m = json.loads((lib_copy / MANIFEST_NAME).read_text())
    m["schema_version"] = 2
    (lib_copy / MANIFEST_NAME).write_text(json.dumps(m))
    problems = verify_manifest(lib_copy)
    assert any(p.startswith("slib_v1_vol_low.yaml: changed") for p in problems)
    assert any(
        p.startswith("slib_v1_vol_low.yaml: ") and "bogus_key: unknown key" in p for p in problems
    )
    assert "suites/smoke.yaml: missing" in problems
    assert any(p.startswith("suites/full.yaml: lists") for p in problems)
    assert f"{MANIFEST_NAME}: schema_version 2 (expected 1)" in problems
    (lib_copy / MANIFEST_NAME).unlink()
    assert verify_manifest(lib_copy) == [f"{MANIFEST_NAME}: missing"]


def test_library_text_matches_files():
    for rel, text in library_files().items():
        assert (LIBRARY_DIR / rel).read_text() == text


# ---------------------------------------------------------------- CLI


def cli(argv):
    parser = argparse.ArgumentParser(prog="paraphina-jax")
    sub = parser.add_subparsers(dest="command")
    scenarios_cmd.add_parser(sub)
    return scenarios_cmd.run(parser.parse_args(argv))


def test_cli_list_and_show(capsys):
    assert cli(["scenarios", "list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["id", "category", "profile", "horizon", "shock"]
    assert all(e.scenario_id in out for e in LIBRARY)
    assert "venue 0 out steps 300-700" in out and "1500 x 0.25s" in out
    assert cli(["scenarios", "show", "basis_neg"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["basis_spike"]["magnitude_bps"] == -100.0
    assert cli(["scenarios", "show", "nope"]) == 1
    assert "unknown scenario" in capsys.readouterr().err


def test_cli_verify_and_generate(capsys, lib_copy, tmp_path):
    assert cli(["scenarios", "verify"]) == 0
    assert "ok" in capsys.readouterr().out
    f = lib_copy / "slib_v1_basis_pos.yaml"
    f.write_text(f.read_text().replace("magnitude_bps: 100.0", "magnitude_bps: 150.0"))
    (lib_copy / "slib_v1_vol_high.yaml").unlink()
    assert cli(["scenarios", "verify", str(lib_copy)]) == 1
    err = capsys.readouterr().err
    assert "slib_v1_basis_pos.yaml: changed" in err and "slib_v1_vol_high.yaml: missing" in err
    out_dir = tmp_path / "gen"
    assert cli(["scenarios", "generate", str(out_dir)]) == 0
    assert verify_manifest(out_dir) == []
