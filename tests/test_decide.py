"""`paraphina-jax decide` and the `snapshot_version: 1` format (docs/snapshot.md).

* every example under docs/examples/ decided by both engines agrees (discrete exact, continuous
  1e-9 relative), with default and with reference-parity settings;
* every example shows the situation it is named after;
* malformed snapshots exit 2 with a one-line message naming the field;
* state → snapshot → state round trip (random states of every edge case, with overrides).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st_h

from paraphina_jax import decide as decide_mod
from paraphina_jax.cli.main import main
from paraphina_jax.config import apply_overrides, configs_equal, make_config
from paraphina_jax.decide import decide, decision_to_json
from paraphina_jax.snapshot import (
    SnapshotError,
    load_snapshot,
    schema_markdown,
    snapshot_from_dict,
    state_to_snapshot,
)
from paraphina_jax.strategy.types import pending_entries
from paraphina_jax.testing import CASES, NOW_MS, random_states

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
NAMES = ("calm", "long_inventory", "warning", "stale_venue", "kill")
RTOL, ATOL = 1e-9, 1e-12


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """`paraphina_jax.cli.main.main(argv)` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def decide_example(name: str, engine: str = "reference", parity: bool = False) -> dict[str, Any]:
    argv = ["decide", str(EXAMPLES / f"{name}.json"), "--engine", engine]
    rc, out, err = run_cli(argv + (["--parity-settings"] if parity else []))
    assert rc == 0, err
    return json.loads(out)


def assert_same(a: Any, b: Any, path: str = "") -> None:
    """Equal JSON trees: floats to RTOL/ATOL, everything else (ints, bools, strings, null) exact."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), path
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{path}: {a} vs {b}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=RTOL, abs_tol=ATOL), f"{path}: {a} vs {b}"
    else:
        assert type(a) is type(b) and a == b, f"{path}: {a!r} vs {b!r}"


# ---------------------------------------------------------------------------------------------
# Engines agree on every example
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("parity", [False, True], ids=["default", "parity_settings"])
def test_examples_engines_agree_parity(parity: bool) -> None:
    before = None
    for name in NAMES:
        ref = decide_example(name, "reference", parity)
        jx = decide_example(name, "jax", parity)
        if before is None:
            before = decide_mod._DECIDE_JIT._cache_size() - 1
        assert (ref.pop("engine"), jx.pop("engine")) == ("reference", "jax")
        assert_same(ref, jx, name)
    # one compilation serves every example of one flag set
    assert decide_mod._DECIDE_JIT._cache_size() - before <= 1
    assert jnp.zeros(()).dtype == jnp.float32  # x64 stays local to the decision


def test_random_states_engines_agree_parity() -> None:
    cfg = make_config()
    for i, st in enumerate(random_states(11, cfg, len(CASES))):
        a = decision_to_json(
            decide(st, NOW_MS, cfg, "reference"), cfg, NOW_MS, engine="", parity_settings=False
        )
        b = decision_to_json(
            decide(st, NOW_MS, cfg, "jax"), cfg, NOW_MS, engine="", parity_settings=False
        )
        assert_same(a, b, f"{CASES[i]}")


# ---------------------------------------------------------------------------------------------
# Each example shows its situation
# ---------------------------------------------------------------------------------------------


def _quoted(q: dict[str, Any], side: str) -> bool:
    return q[side]["gate"] == "quoted"


def test_example_calm() -> None:
    d = decide_example("calm")
    assert d["risk"]["regime"] == "Normal" and not d["risk"]["kill_switch"]
    assert d["fair_value"] == 300.0 and d["fv_available"]
    for q in d["quotes"]:
        assert _quoted(q, "bid") and _quoted(q, "ask"), q
        assert q["bid"]["price"] < d["fair_value"] < q["ask"]["price"]
        assert q["bid"]["size"] > 0 and q["ask"]["size"] > 0
    assert [(o["action"], o["venue"], o["side"]) for o in d["orders"]] == [
        ("place", j, s) for j in range(5) for s in ("Buy", "Sell")
    ]
    assert d["exits"]["intents"] == [] and not d["hedge"]["active"] and d["hedge"]["orders"] == []


def test_example_long_inventory() -> None:
    d = decide_example("long_inventory")
    assert d["risk"]["regime"] == "Normal" and d["risk"]["q_global_tao"] == 30.0
    h = d["hedge"]
    assert h["active"] and h["side"] == "Sell" and h["x"] == 30.0 and abs(h["x"]) > h["band"]
    assert h["delta_h"] == pytest.approx(0.5 * 30.0)  # K_HEDGE·X, under HEDGE_MAX_STEP
    assert h["orders"] and all(o["side"] == "Sell" and o["size"] > 0 for o in h["orders"])
    assert sum(o["size"] for o in h["orders"]) <= h["delta_h"] + 1e-9
    for o in h["orders"]:  # sell guard below the venue's best bid
        assert o["guard_price"] < d["fair_value"]
        assert set(o["cost_components"]) == {
            "exec_cost", "funding_benefit", "basis_edge", "liq_penalty", "frag_penalty", "total_cost"
        }  # fmt: skip
    ex = d["exits"]
    assert ex["side"] == "Sell" and ex["intents"]
    assert [e["order"] for e in ex["intents"]] == list(range(len(ex["intents"])))
    assert all(e["side"] == "Sell" and e["size"] > 0 for e in ex["intents"])
    assert sum(e["size"] for e in ex["intents"]) <= 10.0 + 1e-9  # EXIT max_total_tao_per_tick
    scores = [e["score"] for e in ex["intents"]]
    assert scores == sorted(scores, reverse=True)


def test_example_warning() -> None:
    cfg = make_config()
    calm, d = decide_example("calm"), decide_example("warning")
    assert d["risk"]["regime"] == "Warning" and not d["risk"]["kill_switch"]
    assert d["risk"]["daily_pnl_total"] <= cfg.risk.pnl_warn_frac * -cfg.risk.daily_loss_limit
    cap = cfg.risk.q_warn_cap
    for qc, qw in zip(calm["quotes"], d["quotes"]):
        assert qw["half_spread"] == pytest.approx(
            qc["half_spread"] * cfg.risk.spread_warn_mult, rel=1e-12
        )
        for side in ("bid", "ask"):
            assert _quoted(qw, side)
            assert qw[side]["size"] <= cap
        assert qw["bid"]["price"] < qc["bid"]["price"] and qw["ask"]["price"] > qc["ask"]["price"]
    assert max(q[s]["size"] for q in calm["quotes"] for s in ("bid", "ask")) > cap  # cap binds


def test_example_stale_venue() -> None:
    d = decide_example("stale_venue")
    assert d["risk"]["regime"] == "Normal"
    for q in d["quotes"]:
        if q["venue_id"] == "aster":
            assert q["bid"] == q["ask"] == {"gate": "quote_age", "price": None, "size": None}
        else:
            assert _quoted(q, "bid") and _quoted(q, "ask")
    assert all(o["venue_id"] != "aster" for o in d["orders"])
    assert len(d["orders"]) == 8


def test_example_kill() -> None:
    d = decide_example("kill")
    r = d["risk"]
    assert r["kill_switch"] and r["kill_transition"] and r["regime"] == "HardLimit"
    assert r["kill_reason"] == "PnlHardBreach"
    for q in d["quotes"]:
        for side in ("bid", "ask"):
            assert q[side] == {"gate": "kill_or_hardlimit", "price": None, "size": None}
    assert [(o["action"], o["venue_id"], o["side"], o["order_id"]) for o in d["orders"]] == [
        ("cancel", "extended", "Buy", 101),
        ("cancel", "extended", "Sell", 102),
        ("cancel", "hyperliquid", "Buy", 103),
        ("cancel", "lighter", "Sell", 104),
    ]
    assert d["exits"]["intents"] == [] and d["hedge"]["orders"] == [] and d["kill_exit"] == []
    assert abs(d["hedge"]["x"]) > d["hedge"]["band"]  # a hedge would be due, but not while killed


# ---------------------------------------------------------------------------------------------
# Malformed snapshots
# ---------------------------------------------------------------------------------------------


def _set(path: tuple, value: Any) -> Any:
    def f(d: dict) -> None:
        node = d
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value

    return f


def _del(path: tuple) -> Any:
    def f(d: dict) -> None:
        node = d
        for k in path[:-1]:
            node = node[k]
        del node[path[-1]]

    return f


MALFORMED = [
    ("mistyped", _set(("venues", 2, "mid"), "abc"), 'venues[2].mid: expected a finite number, got "abc"'),
    ("missing", _del(("venues", 1, "position_tao")), "venues[1].position_tao: required field is missing"),
    ("missing_global", _del(("global", "sigma_eff")), "global.sigma_eff: required field is missing"),
    ("venue_count", lambda d: d["venues"].pop(), "venues: expected 5 venues"),
    ("nan_price", _set(("venues", 3, "mid"), float("nan")), "venues[3].mid: expected a finite number, got NaN"),
    ("inf_price", _set(("global", "fair_value"), float("inf")), "global.fair_value: expected a finite number, got Infinity"),
    ("bool", _set(("global", "fv_available"), "yes"), 'global.fv_available: expected true or false, got "yes"'),
    ("enum", _set(("venues", 0, "status"), "Sick"), 'venues[0].status: expected one of "Healthy"'),
    ("int", _set(("now_ms",), 1.5), "now_ms: expected an integer, got 1.5"),
    ("slot", _set(("venues", 4, "mm_open_ask"), {"price": 300.5}), "venues[4].mm_open_ask.size: required field is missing"),
    ("unknown", _set(("venues", 0, "midd"), 1.0), "venues[0].midd: unknown field"),
    ("venue_id", _set(("venues", 0, "venue_id"), "binance"), 'venues[0].venue_id: expected "extended"'),
    ("spread_mask", _set(("venues", 1, "spread"), None), "venues[1].spread: expected a finite number when mid is given"),
    ("override", _set(("overrides",), {"HEDGE_BAND_BASE": "x"}), "overrides.HEDGE_BAND_BASE: hedge.band_base: expected a number"),
    ("flag_type", _set(("overrides",), {"flags.quote_age_guard": "no"}), 'overrides.flags.quote_age_guard: expected true or false, got "no"'),
    ("version", _set(("snapshot_version",), 2), "snapshot_version: expected 1, got 2"),
    ("kill_reason", _set(("global", "kill_switch"), True), 'global.kill_reason: kill_switch is true but kill_reason is "None"'),
]  # fmt: skip


@pytest.mark.parametrize("case", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_snapshot_exit_2(case: tuple, tmp_path: Path) -> None:
    _, mutate, message = case
    d = json.loads((EXAMPLES / "calm.json").read_text())
    mutate(d)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d))  # NaN / Infinity are written as JSON extensions
    rc, out, err = run_cli(["decide", str(p), "--engine", "reference"])
    assert rc == 2 and out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("paraphina-jax decide: " + message), err


def test_unreadable_files_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    for path, text in ((tmp_path / "none.json", "cannot read"), (bad, "invalid JSON at line 1")):
        rc, _, err = run_cli(["decide", str(path)])
        assert rc == 2 and err.count("\n") == 1 and text in err, err


def test_cli_subprocess_smoke() -> None:
    p = subprocess.run(
        [sys.executable, "-m", "paraphina_jax.cli.main", "decide", str(EXAMPLES / "calm.json"),
         "--engine", "reference", "--compact"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["engine"] == "reference" and len(d["quotes"]) == 5


# ---------------------------------------------------------------------------------------------
# Round trip state → snapshot → state
# ---------------------------------------------------------------------------------------------


def _canonical(st: Any) -> Any:
    """The state as a snapshot can carry it: values hidden by a false mask zeroed (§4 "absent")."""
    v = st.venues
    w = lambda m, x: np.where(m, x, np.zeros_like(x))  # noqa: E731
    pm = {  # the ring in logical order from slot 0, as a snapshot is read back
        f: pending_entries(v, f)
        for f in v.__dataclass_fields__
        if f.startswith("pm_") and f not in ("pm_count", "pm_head")
    }
    pm["pm_head"] = np.zeros_like(v.pm_head)
    venues = v.replace(
        mid=w(v.has_mid, v.mid),
        spread=w(v.has_mid, v.spread),
        last_mid_update_ms=w(v.has_mid_update, v.last_mid_update_ms),
        last_book_update_ms=w(v.has_book_update, v.last_book_update_ms),
        prev_ln_mid=w(v.has_prev_ln_mid, v.prev_ln_mid),
        fund_rate_8h=w(v.fund_has_rate, v.fund_rate_8h),
        fund_received_ms=w(v.fund_received_ms > 0, v.fund_received_ms),
        fund_as_of_ms=w(v.fund_as_of_ms > 0, v.fund_as_of_ms),
        fund_next_ms=w(v.fund_has_next, v.fund_next_ms),
        price_liq=w(v.has_price_liq, v.price_liq),
        dist_liq_sigma=np.where(np.isfinite(v.dist_liq_sigma), v.dist_liq_sigma, np.inf),
        mm_price=w(v.mm_has, v.mm_price),
        mm_size=w(v.mm_has, v.mm_size),
        mm_ts_ms=w(v.mm_has, v.mm_ts_ms),
        mm_id=w(v.mm_has, v.mm_id),
        **pm,
    )
    return st.replace(
        venues=venues,
        fair_value=w(st.has_fair_value, st.fair_value),
        kill_tick=np.where(st.kill_tick >= 0, st.kill_tick, -1),
    )


def _assert_states_equal(a: Any, b: Any) -> None:
    for part_a, part_b in ((a, b), (a.venues, b.venues)):
        for name in part_a.__dataclass_fields__:
            if name == "venues":
                continue
            x, y = np.asarray(getattr(part_a, name)), np.asarray(getattr(part_b, name))
            assert x.dtype == y.dtype and x.shape == y.shape, name
            assert np.array_equal(x, y), (name, x, y)


def test_round_trip_random_states() -> None:
    cfg = apply_overrides(
        make_config("conservative", parity=True),
        {
            "HEDGE_BAND_BASE": 3.0,
            "venues.taker_fee_bps": [5, 4, 5, 5, 6],
            "flags.kill_best_effort": True,
        },
    )
    for st in random_states(5, cfg, 3 * len(CASES)):
        snap = state_to_snapshot(st, cfg, NOW_MS, description="round trip")
        text = json.dumps(snap, allow_nan=False)  # strict JSON: no NaN / Infinity
        cfg2, st2, now2 = snapshot_from_dict(json.loads(text))
        assert now2 == NOW_MS and configs_equal(cfg, cfg2) and cfg2.flags == cfg.flags
        assert cfg2.profile == cfg.profile
        _assert_states_equal(st2, _canonical(st))
        assert state_to_snapshot(st2, cfg2, now2, description="round trip") == snap
        # hidden values never reach a decision
        a = decision_to_json(
            decide(st, NOW_MS, cfg, "reference"), cfg, NOW_MS, engine="", parity_settings=True
        )
        b = decision_to_json(
            decide(st2, NOW_MS, cfg2, "reference"), cfg2, NOW_MS, engine="", parity_settings=True
        )
        assert a == b


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_examples(name: str) -> None:
    cfg, st, now = load_snapshot(EXAMPLES / f"{name}.json")
    full = state_to_snapshot(st, cfg, now)
    cfg2, st2, now2 = snapshot_from_dict(full)
    assert now2 == now and configs_equal(cfg, cfg2)
    _assert_states_equal(st, st2)


def test_optional_fields_take_init_state_defaults() -> None:
    d = json.loads((EXAMPLES / "calm.json").read_text())
    cfg, st, now = snapshot_from_dict(d)
    assert (
        not bool(st.venues.has_book_update[0])
        and float(st.venues.margin_available_usd[0]) == 10_000.0
    )
    assert float(st.venues.dist_liq_sigma[0]) == 10.0 and int(st.kill_tick) == -1
    assert (
        int(st.next_risk_ms) == now and int(st.last_flush_ms) == now - cfg.loop.fill_agg_interval_ms
    )
    assert float(st.kf_p) == cfg.book.kf_p_init
    d["venues"][0]["mid"] = d["venues"][0]["spread"] = None
    d["global"]["fair_value"] = None
    d["venues"][1]["dist_liq_sigma"] = None
    _, st, _ = snapshot_from_dict(d)
    assert not bool(st.venues.has_mid[0]) and float(st.venues.mid[0]) == 0.0
    assert not bool(st.has_fair_value) and math.isinf(float(st.venues.dist_liq_sigma[1]))


def test_parity_settings_start_from_parity_flags() -> None:
    cfg, _, _ = load_snapshot(EXAMPLES / "calm.json", parity=True)
    assert cfg.flags == make_config(parity=True).flags
    d = json.loads((EXAMPLES / "calm.json").read_text())
    d["overrides"] = {"flags.quote_age_guard": True, "SIZE_ETA": 0.2}
    cfg, _, _ = snapshot_from_dict(d, parity=True)
    assert cfg.flags.quote_age_guard and not cfg.flags.stale_per_venue and cfg.mm.size_eta == 0.2
    with pytest.raises(SnapshotError, match=r"^overrides\.NOPE: "):
        d["overrides"] = {"NOPE": 1}
        snapshot_from_dict(d)


def test_docs_render_the_schema() -> None:
    doc = (ROOT / "docs" / "snapshot.md").read_text()
    assert schema_markdown() in doc
    for name in NAMES:
        assert f"examples/{name}.json" in doc
    d = copy.deepcopy(decide_example("calm"))
    for key in d:
        assert f"`{key}`" in doc, key


_JSON_ATOMS = st_h.one_of(
    st_h.none(),
    st_h.booleans(),
    st_h.integers(-(2**70), 2**70),
    st_h.floats(allow_nan=True, allow_infinity=True),
    st_h.text(max_size=6),
    st_h.lists(st_h.integers(0, 3), max_size=6),
    st_h.dictionaries(st_h.sampled_from(["price", "size", "x"]), st_h.integers(), max_size=3),
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


_BASE = json.loads((EXAMPLES / "kill.json").read_text())
_PATHS = _paths(_BASE)


@settings(max_examples=80, derandomize=True, deadline=None)
@given(st_h.lists(st_h.tuples(st_h.sampled_from(_PATHS), _JSON_ATOMS), min_size=1, max_size=3))
def test_fuzzed_snapshots_fail_cleanly(edits: list) -> None:
    """Any edit of a valid snapshot either loads and decides, or fails with one named line."""
    d = copy.deepcopy(_BASE)
    for path, value in edits:
        node = d
        try:
            for k in path[:-1]:
                node = node[k]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    try:
        cfg, state, now = snapshot_from_dict(json.loads(json.dumps(d)))
    except SnapshotError as e:
        msg = str(e)
        assert "\n" not in msg and ": " in msg and msg.split(": ")[0], msg
        return
    with np.errstate(all="ignore"):
        out = decision_to_json(
            decide(state, now, cfg, "reference"), cfg, now, engine="", parity_settings=False
        )
    json.dumps(out, allow_nan=False)
