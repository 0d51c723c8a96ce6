"""Whole-episode properties of the vectorised episode (float32, the production dtype).

Every default test runs through ONE compiled chunk program (B = 4 episodes, T = 96 ticks in two
chunks of 48, telemetry on all four, unbatched params): the scenarios differ only in traced
market / config values, which is itself what the no-recompile test checks.
"""

from __future__ import annotations

import dataclasses
import json

import jax
import numpy as np
import pytest

from paraphina_jax.config.defaults import make_config
from paraphina_jax.config.types import (
    KILL_LIQ,
    PURPOSE_MM,
    REGIME_HARDLIMIT,
    SIDE_BUY,
)
from paraphina_jax.sim import episode as E
from paraphina_jax.sim.telemetry import (
    REQUIRED_FIELDS,
    TelemetryError,
    read_telemetry_jsonl,
    telemetry_to_jsonl,
)
from paraphina_jax.sim.types import StaticSimParams

_BAL = make_config("balanced")
# A wide toxicity vol-floor scale keeps the venues Healthy in the canonical market (with the
# default 0.5 the KF fair value's σ_eff is far below the venue mids' local vol and the floor
# disables every venue after the first tick), so the strategy trades all episode long.
CFG = _BAL.replace(toxicity=_BAL.toxicity.replace(vol_tox_scale=50.0))
T, B, CHUNK = 96, 4, 48
STATIC = StaticSimParams()
SEEDS = np.arange(B)


def _run(params, seeds=SEEDS, cfg=CFG, **kw):
    return E.run_batch(
        seeds, params, cfg, STATIC, n_ticks=T, chunk_ticks=CHUNK, telemetry_episodes=B, **kw
    )


def _params(**kw):
    return E.default_episode_params(CFG, T, **kw)


@pytest.fixture(scope="module")
def base():
    return _run(_params(vol=0.5, fill_a=np.full(5, 20.0)))


def _equal_trees(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_same_seed_is_bitwise_identical_and_params_do_not_recompile(base):
    res, tel = base
    before = E.trace_count()
    res2, tel2 = _run(_params(vol=0.5, fill_a=np.full(5, 20.0)))
    _equal_trees(res, res2)
    _equal_trees(tel, tel2)
    # Different market values and config values of the same shapes: no new trace.
    cfg2 = CFG.replace(risk=CFG.risk.replace(daily_loss_limit=777.0))
    res3, _ = _run(_params(vol=0.9, drift=3.0, taker_fee_bps=np.full(5, 7.0)), cfg=cfg2)
    assert E.trace_count() == before
    assert not np.array_equal(res3.pnl_total, res.pnl_total)
    want_ticks = np.where(res.kill_switch, res.kill_tick + 1, T)
    np.testing.assert_array_equal(res.ticks_executed, want_ticks)
    assert int(res.fills.sum()) > 0


def test_episode_is_independent_of_its_batch_neighbours(base):
    """Episode of seed s is the same whatever the other episodes of the vmapped batch are."""
    res, tel = base
    seeds2 = np.array([2, 11, 0, 3])
    res2, tel2 = _run(_params(vol=0.5, fill_a=np.full(5, 20.0)), seeds=seeds2)
    for j, s in enumerate(seeds2):
        if s in SEEDS:
            i = int(np.flatnonzero(SEEDS == s)[0])
            _equal_trees(E.episode_slice(res, i), E.episode_slice(res2, j))
            _equal_trees(E.episode_slice(tel.record, i), E.episode_slice(tel2.record, j))
    assert not np.array_equal(res.pnl_total[1], res2.pnl_total[1])


def test_results_agree_with_the_telemetry(base):
    res, tel = base
    r = tel.record
    np.testing.assert_array_equal(res.maker_fills, r.maker_fills.sum(axis=1))
    np.testing.assert_array_equal(res.taker_fills, r.taker_fills.sum(axis=1))
    np.testing.assert_allclose(res.fees_usd, r.fees_usd.sum(axis=1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(res.pnl_total, r.pnl_total[:, -1])
    np.testing.assert_allclose(res.max_abs_q_tao, np.abs(r.q_global_tao).max(axis=1), rtol=1e-6)
    pnl = r.pnl_total.astype(np.float64)
    dd = (np.maximum.accumulate(pnl, axis=1) - pnl).max(axis=1)
    np.testing.assert_allclose(res.max_drawdown, dd, rtol=1e-5, atol=1e-4)
    assert np.all(tel.record.t == np.arange(T)[None, :])


def test_pnl_identity_every_tick(base):
    """cash + Σ_v q_v·S = realised + unrealised = total, every tick (S = the strategy's fair value)."""
    _, tel = base
    r = tel.record
    ok = r.has_fair_value & r.active
    assert ok.sum() > B * T // 2
    marked = (
        r.cash_usd.astype(np.float64) + r.position_tao.astype(np.float64).sum(-1) * r.fair_value
    )
    scale = np.abs(r.position_tao).sum(-1) * r.fair_value + 1.0
    err = np.abs(marked - r.pnl_total)[ok] / scale[ok]
    assert err.max() < 1e-5
    np.testing.assert_allclose(
        (r.pnl_realised + r.pnl_unrealised)[ok], r.pnl_total[ok], rtol=1e-5, atol=1e-3
    )


def _maker_markouts(tel, h):
    f, rec = tel.fills, tel.record
    out = []
    for k in range(B):
        for t in range(T - h):
            sel = f.valid[k, t] & (f.purpose[k, t] == PURPOSE_MM)
            fair = rec.true_fair[k, t + h]
            out.extend(f.side[k, t][sel] * (fair - f.price[k, t][sel]))
    return np.asarray(out)


def test_adverse_selection_in_a_trending_market(base):
    """Passive fills in a trend are on the wrong side: the mean markout of maker fills is < 0."""
    _, tel_flat = base
    h = 8
    trend = {}
    for drift in (2000.0, -2000.0):
        _, tel = _run(_params(vol=0.5, drift=drift, fill_a=np.full(5, 20.0)))
        trend[drift] = _maker_markouts(tel, h)
        assert trend[drift].size >= 10
        assert trend[drift].mean() < 0.0
    flat = _maker_markouts(tel_flat, h)
    assert flat.size >= 10
    assert np.concatenate(list(trend.values())).mean() < flat.mean()


def test_fee_and_funding_signs():
    """Positive fees are paid; funding: longs pay at a positive rate, every settlement equals
    Σ_v f8·q_v·m_v on the positions held before the tick's fills, and it reaches realised PnL."""
    f8 = 1e-3
    res, tel = _run(
        _params(
            initial_q_tao=10.0,
            vol=0.5,
            funding_8h=np.full(5, f8),
            funding_period_ms=5000,
            funding_first_ms=5000,
            fill_a=np.full(5, 20.0),
        )
    )
    r = tel.record
    assert np.all(res.fees_usd > 0.0) and np.all(res.fees_by_venue >= 0.0)
    settle = np.arange(20, T, 20)
    paid = r.funding_usd[:, settle]
    want = f8 * (r.position_tao[:, settle - 1] * r.true_mid[:, settle]).sum(-1)
    want = np.where(r.active[:, settle], want, 0.0)  # nothing settles once frozen
    assert r.active[:, settle].sum() >= 4
    np.testing.assert_allclose(paid, want, rtol=1e-5, atol=1e-4)
    assert np.count_nonzero(r.funding_usd) == np.count_nonzero(paid)
    np.testing.assert_allclose(res.funding_usd, r.funding_usd.sum(1), rtol=1e-5, atol=1e-4)
    # The first settlement (tick 20) charges the long inventory still held on venue 0.
    long0 = r.position_tao[:, 19, 0] > 0
    assert long0.any()
    # Negative rate: the long side receives.
    res_n, tel_n = _run(
        _params(
            initial_q_tao=10.0,
            vol=0.5,
            funding_8h=np.full(5, -f8),
            funding_period_ms=5000,
            funding_first_ms=5000,
            fill_a=np.full(5, 20.0),
        )
    )
    r_n = tel_n.record
    expo_n = (r_n.position_tao[:, settle - 1] * r_n.true_mid[:, settle]).sum(-1)
    paid_n = r_n.funding_usd[:, settle]
    np.testing.assert_allclose(
        paid_n, np.where(r_n.active[:, settle], -f8 * expo_n, 0.0), rtol=1e-5, atol=1e-4
    )
    # Sign convention: a net long exposure pays at a positive rate and receives at a negative one.
    expo = (r.position_tao[:, settle - 1] * r.true_mid[:, settle]).sum(-1)
    live, live_n = r.active[:, settle], r_n.active[:, settle]
    assert (expo[live] > 1.0).any() and (expo_n[live_n] > 1.0).any()
    assert np.all(paid[live & (expo > 1.0)] > 0.0)
    assert np.all(paid_n[live_n & (expo_n > 1.0)] < 0.0)
    np.testing.assert_allclose(res_n.funding_usd, r_n.funding_usd.sum(1), rtol=1e-5, atol=1e-4)


def test_margin_binds_and_liquidation_distance_triggers_protections():
    # Thin collateral everywhere: margin available ≈ 0, quote sizes collapse.
    res_m, tel_m = _run(_params(vol=0.5, collateral_usd=np.full(5, 5.0), fill_a=np.full(5, 20.0)))
    _, tel_b = _run(_params(vol=0.5, fill_a=np.full(5, 20.0)))
    q_m = tel_m.actions.quotes
    q_b = tel_b.actions.quotes
    size_m = (q_m.bid_size * q_m.bid_valid + q_m.ask_size * q_m.ask_valid).sum()
    size_b = (q_b.bid_size * q_b.bid_valid + q_b.ask_size * q_b.ask_valid).sum()
    assert size_m < 0.2 * size_b
    assert tel_m.record.margin_available_usd.max() < 50.0  # 5 USD collateral + small PnL
    # Long 10 TAO on venue 0 with little more than maintenance margin: the liquidation price sits
    # ~1.6 USD under the mid, a few σ_eff·S at a vol of 2 per day.
    res_l, tel_l = _run(
        _params(initial_q_tao=10.0, vol=2.0, collateral_usd=np.array([155.0, 1e4, 1e4, 1e4, 1e4])),
        cfg=_BAL,  # default toxicity scale: no trading noise, the inventory stays on venue 0
    )
    r, a = tel_l.record, tel_l.actions
    crit = float(CFG.risk.liq_crit_sigma)
    near0 = (r.dist_liq_sigma[:, :, 0] <= crit) & r.active
    assert near0.any()
    # Venue protection: no quote on a venue at or below LIQ_CRIT.
    assert not (a.quotes.bid_valid[:, :, 0] | a.quotes.ask_valid[:, :, 0])[near0].any()
    # Global protection: a risk evaluation that sees min dist ≤ LIQ_CRIT latches the kill.
    hit = a.risk_due & (r.dist_liq_sigma.min(-1) <= crit) & r.active
    assert hit.any()
    assert np.all(r.risk_regime[hit] == REGIME_HARDLIMIT) and np.all(r.kill_switch[hit])
    assert np.any(res_l.kill_reason == KILL_LIQ)
    # Once killed the episode is frozen: nothing changes after the kill tick.
    for k in np.flatnonzero(res_l.kill_switch):
        kt = int(res_l.kill_tick[k])
        assert int(res_l.ticks_executed[k]) == kt + 1
        assert not r.active[k, kt + 1 :].any()
        assert (r.maker_fills[k, kt + 1 :] == 0).all() and (r.taker_fills[k, kt + 1 :] == 0).all()
        assert (r.position_tao[k, kt + 1 :] == r.position_tao[k, kt][None]).all()
        assert not a.quotes.bid_valid[k, kt].any()
        assert not a.orders.place[k, kt].any() and not a.exits.valid[k, kt].any()


def _json_ok(x):
    """Every number finite, no NaN/inf tokens (json.dumps(allow_nan=False) would have raised)."""
    if isinstance(x, dict):
        return all(_json_ok(v) for v in x.values())
    if isinstance(x, list):
        return all(_json_ok(v) for v in x)
    if isinstance(x, float):
        return np.isfinite(x)
    return x is None or isinstance(x, (bool, int, str))


def test_telemetry_jsonl_schema_and_round_trip(base, tmp_path):
    res, tel = base
    path = tmp_path / "tel.jsonl"
    n = telemetry_to_jsonl(tel, CFG, path, episode=1)
    assert n == int(res.ticks_executed[1]) == T
    assert not list(tmp_path.glob("*.tmp"))
    lines = path.read_text().splitlines()
    objs = [json.loads(line) for line in lines]
    for o in objs:
        for f in REQUIRED_FIELDS:
            assert f in o
        assert o["schema_version"] == 1 and isinstance(o["t"], int)
        assert isinstance(o["kill_switch"], bool) and isinstance(o["fv_available"], bool)
        assert o["risk_regime"] in ("Normal", "Warning", "HardLimit")
        assert isinstance(o["healthy_venues_used_count"], int)
        assert set(o["state"]["venues"]) >= {"status", "staleness_ms", "toxicity", "position_tao",
                                              "dist_liq_sigma", "mid", "best_bid", "best_ask",
                                              "spread", "has_mid"}  # fmt: skip
        assert set(o["actions"]) == {f.name for f in dataclasses.fields(type(tel.actions))}
        assert "proposed" not in o
        assert _json_ok(o)
    assert '"t":3,' in lines[3] and "NaN" not in lines[3]
    back = read_telemetry_jsonl(path)
    r = tel.record
    np.testing.assert_array_equal(back["t"], np.arange(T))
    np.testing.assert_allclose(back["pnl_total"], r.pnl_total[1], rtol=1e-7)
    np.testing.assert_allclose(back["state"]["venues"]["position_tao"], r.position_tao[1])
    np.testing.assert_array_equal(back["actions"]["orders"]["place"], tel.actions.orders.place[1])
    np.testing.assert_allclose(
        back["actions"]["quotes"]["bid_px"], tel.actions.quotes.bid_px[1], rtol=1e-7
    )
    assert back["kill_switch"].dtype == bool
    n_fills = sum(len(f) for f in back["fills"])
    assert n_fills == int(tel.fills.valid[1].sum())
    # A broken file is refused with the line and the field.
    objs[2].pop("basis_usd")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(json.dumps(o) for o in objs) + "\n")
    with pytest.raises(TelemetryError, match=r"bad.jsonl:3: missing required field 'basis_usd'"):
        read_telemetry_jsonl(bad)


@pytest.mark.slow  # a second compiled program (the shield is static)
def test_shield_hook_receives_and_restricts_actions():
    """A shield that removes every bid placement: no bid rests, interventions are counted."""

    def no_bids(state, out, view, cfg):
        o = out.orders
        blocked = o.place[:, 0]
        orders = o.replace(place=o.place.at[:, 0].set(False))
        return out.replace(orders=orders), blocked.sum(keepdims=True).astype(np.int32)

    res, tel = _run(_params(vol=0.5, fill_a=np.full(5, 20.0)), shield_fn=no_bids)
    assert res.shield_interventions.shape == (B, 1)
    assert int(res.shield_interventions.sum()) > 0
    np.testing.assert_array_equal(res.shield_interventions[:, 0], tel.interventions[:, :, 0].sum(1))
    assert tel.proposed is not None
    assert not tel.actions.orders.place[..., 0].any()
    assert tel.proposed.orders.place[..., 0].any()
    buys = tel.fills.valid & (tel.fills.purpose == PURPOSE_MM) & (tel.fills.side == SIDE_BUY)
    assert not buys.any()


def test_bad_arguments_are_refused():
    p = _params()
    with pytest.raises(ValueError, match="telemetry_episodes"):
        E.run_batch(SEEDS, p, CFG, STATIC, n_ticks=T, chunk_ticks=CHUNK, telemetry_episodes=9)
    with pytest.raises(ValueError, match="chunk_ticks"):
        E.run_batch(SEEDS, p, CFG, STATIC, n_ticks=T, chunk_ticks=0)
    assert dataclasses.replace(STATIC).n_ticks == STATIC.n_ticks


def test_identity_shield_reports_no_rules(base):
    res, tel = base
    assert res.shield_interventions.shape == (B, 0)
    assert tel.interventions.shape == (B, T, 0)
    assert tel.proposed is None


def _same_events_close_values(a, b, rtol=1e-12):
    """Integer / boolean leaves identical; float leaves within `rtol` relative."""
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x), np.asarray(y)
        if np.issubdtype(x.dtype, np.floating):
            np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-9)
        else:
            np.testing.assert_array_equal(x, y)


@pytest.mark.slow  # compiles three float64 programs (B = 4 and B = 1, two chunk sizes)
def test_batch_equals_per_episode_loop_and_chunking_is_invisible_x64():
    """float64: the vmapped batch equals a loop of single-episode runs and the chunk size is
    invisible — identical events, values equal to the last bits (XLA:CPU compiles the B = 1 and
    B = 4 programs with different vectorisation, which moves float results by an ulp; within one
    program an episode never depends on its neighbours, bitwise — the default test above)."""
    from paraphina_jax.utils.x64 import enable_x64

    with enable_x64():
        p = _params(vol=0.5, fill_a=np.full(5, 20.0))
        res, tel = _run(p)
        for i, s in enumerate(SEEDS):
            r1, t1 = E.run_batch(
                np.array([s]), p, CFG, STATIC, n_ticks=T, chunk_ticks=CHUNK, telemetry_episodes=1
            )
            _same_events_close_values(E.episode_slice(res, i), E.episode_slice(r1, 0))
            _same_events_close_values(E.episode_slice(tel.record, i), E.episode_slice(t1.record, 0))
        r3, t3 = E.run_batch(SEEDS, p, CFG, STATIC, n_ticks=T, chunk_ticks=32, telemetry_episodes=B)
        _same_events_close_values(res, r3)
        _same_events_close_values(tel.record, t3.record)
        assert int(res.fills.sum()) > 0


def test_lanes_layout_equals_vmap_x64():
    """float64: the tick batched lane-last (`lanes=True`, the default) and with `jax.vmap`
    (`lanes=False`) give identical events (fills, regimes, kills, every integer and boolean of
    the results and the telemetry) and values to ~1e-12 relative: the same operations per
    episode, with XLA:CPU contracting some multiply-adds differently in the two layouts."""
    from paraphina_jax.utils.x64 import enable_x64

    with enable_x64():
        p = _params(vol=0.5, fill_a=np.full(5, 20.0))
        lanes, lanes_tel = _run(p)
        plain, plain_tel = _run(p, lanes=False)
    _same_events_close_values(lanes, plain, rtol=1e-10)
    _same_events_close_values(lanes_tel.record, plain_tel.record, rtol=1e-10)
    _same_events_close_values(lanes_tel.fills, plain_tel.fills, rtol=1e-10)
    assert int(lanes.fills.sum()) > 0
