"""Every library scenario's shock visibly happens in the simulated market (SIMULATION §2.4, §7.3).

Market level: the ten scenarios' markets run through one compiled, vmapped `market_path` with the
same noise, each beside the same market under the identity schedule, so a shock shows as the
difference between the two paths. Episode level: the ten scenarios run as one vmapped batch of
whole episodes (strategy, execution, accounting) through `run_batch`, one compiled program.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from paraphina_jax.config import apply_overrides, make_config
from paraphina_jax.config.types import STATUS_DISABLED
from paraphina_jax.scenarios import LIBRARY, load_library, scenario_config
from paraphina_jax.sim import market as jm
from paraphina_jax.sim.episode import episode_params_from_scenario, run_batch
from paraphina_jax.sim.schedule import identity_schedule
from paraphina_jax.sim.types import StaticSimParams, draw_market_noise

N, T = 5, 1500
LIB = load_library()
SHORTS = [e.short for e in LIBRARY]
IDX = {s: i for i, s in enumerate(SHORTS)}
# The canonical market needs the raised toxicity vol-floor scale to keep trading (docs/simulator.md).
BASE_CFG = apply_overrides(make_config("balanced"), {"VOL_TOX_SCALE": 50.0})
CFGS = [scenario_config(LIB[e.scenario_id], BASE_CFG) for e in LIBRARY]
PARAMS = [
    episode_params_from_scenario(LIB[e.scenario_id], c, n_ticks=T)
    for e, c in zip(LIBRARY, CFGS, strict=True)
]
STATIC = StaticSimParams(n_venues=N, n_ticks=T)


def _stack(trees):
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


@pytest.fixture(scope="module")
def views():
    """`(shocked, base)` MarketViews `[10, T, ...]`: each scenario's market with its schedule and
    with the identity schedule, the same noise for all."""
    market = _stack([p.market for p in PARAMS])
    sched = _stack([p.schedule for p in PARAMS])
    ident = _stack([identity_schedule(T, N, latency_ms=0.0)] * len(PARAMS))
    noise = draw_market_noise(jax.random.PRNGKey(11), T, STATIC)

    @jax.jit
    @jax.vmap
    def path(mp, sc):
        ms = jm.initial_market_state(mp, STATIC, None, 0.0)
        return jm.market_path(mp, ms, noise, sc, 0, STATIC)[1]

    shocked = jax.tree.map(np.asarray, path(market, sched))
    base = jax.tree.map(np.asarray, path(market, ident))
    return shocked, base


@pytest.fixture(scope="module")
def episodes():
    """The ten scenarios as one batch of whole episodes, with telemetry for all of them.

    One strategy config for the batch: the funding scenarios switch static funding flags
    (another program), and the signatures here are the market's, not the config's.
    """
    return run_batch(
        np.arange(len(PARAMS)),
        _stack(PARAMS),
        BASE_CFG,
        STATIC,
        n_ticks=T,
        chunk_ticks=500,
        telemetry_episodes=len(PARAMS),
    )


def test_every_library_scenario_runs_to_finite_results(episodes):
    res, tel = episodes
    assert res.pnl_total.shape == (10,)
    for name in ("pnl_total", "pnl_realised", "max_drawdown", "max_abs_q_tao"):
        assert np.all(np.isfinite(getattr(res, name))), name
    ran = tel.record.active.sum(axis=1)
    assert np.all(ran >= 300), dict(zip(SHORTS, ran, strict=True))
    fills = tel.record.maker_fills.sum(axis=(1, 2)) + tel.record.taker_fills.sum(axis=(1, 2))
    assert np.all(fills > 0), dict(zip(SHORTS, fills, strict=True))


@pytest.mark.parametrize("short", ["liq_spread", "liq_depth"])
def test_liquidity_shock_widens_spreads_and_thins_depth(views, short):
    shocked, base = views
    i = IDX[short]
    s_spread, b_spread = shocked.spread[i], base.spread[i]
    s_depth, b_depth = shocked.depth_usd[i], base.depth_usd[i]
    if short == "liq_spread":  # +50 bps of the fair price on every venue, the whole episode
        extra_bps = (s_spread - b_spread) / shocked.fair[i][:, None] * 1e4
        np.testing.assert_allclose(extra_bps, 50.0, rtol=1e-4)  # float32 engine
        np.testing.assert_array_equal(s_depth, b_depth)
    else:  # depth −60 % on every venue, spreads unchanged
        np.testing.assert_allclose(s_depth / b_depth, 0.4, rtol=1e-6)
        assert np.all(shocked.touch_size[i] < base.touch_size[i])
        np.testing.assert_array_equal(s_spread, b_spread)


def test_venue_outage_no_fresh_book_and_disabled(views, episodes):
    shocked, _ = views
    i = IDX["venue_outage"]
    win = slice(300, 701)
    assert np.all(shocked.outage[i, win, 0]) and not np.any(shocked.book_updated[i, win, 0])
    assert np.all(shocked.book_updated[i, win, 1:])
    assert np.all(shocked.book_updated[i, :300, 0]) and np.all(shocked.book_updated[i, 701:, 0])
    rec = episodes[1].record
    active = rec.active[i, win]
    assert active.sum() > 100
    assert np.all(rec.status[i, win, 0][active] == STATUS_DISABLED)
    last = rec.last_mid_update_ms[i, win, 0][active]
    assert np.all(last == last[0]) and last[0] < 300 * 250  # frozen at its pre-outage value
    # the other venues keep quoting and updating meanwhile
    assert np.any(rec.status[i, win, 1:][active] != STATUS_DISABLED)


def test_funding_sign_flip_at_the_trigger_and_drift(views):
    shocked, base = views
    f = shocked.funding_8h[IDX["fund_flip"]]
    assert np.all(f[:500] > 0) and np.all(f[500:] < 0)
    np.testing.assert_allclose(f[500:], np.broadcast_to(-f[0], (1000, N)), rtol=1e-6)
    d = shocked.funding_8h[IDX["fund_drift"]]
    np.testing.assert_array_equal(d[:201], base.funding_8h[IDX["fund_drift"]][:201])
    assert np.all(np.diff(d[200:, 0]) > 0)
    np.testing.assert_allclose(d[1499] - d[200], 1299 * 0.5e-4, rtol=1e-5)


@pytest.mark.parametrize(("short", "bps"), [("basis_pos", 100.0), ("basis_neg", -100.0)])
def test_basis_spike_moves_the_venue_mid_by_the_stated_bps_for_the_window(views, short, bps):
    shocked, base = views
    i = IDX[short]
    jump_bps = (shocked.mid[i] / base.mid[i] - 1.0) * 1e4
    np.testing.assert_allclose(jump_bps[400:600, 1], bps, rtol=1e-4)  # float32 engine
    np.testing.assert_allclose(jump_bps[:400], 0.0, atol=1e-2)
    np.testing.assert_allclose(jump_bps[600:], 0.0, atol=1e-2)
    np.testing.assert_allclose(jump_bps[:, [0, 2, 3, 4]], 0.0, atol=1e-2)


def test_realised_vol_ordered_low_medium_high(views):
    shocked, _ = views
    rv = {
        s: np.std(np.diff(np.log(shocked.fair[IDX[s]])))
        for s in ("vol_low", "vol_medium", "vol_high")
    }
    assert rv["vol_low"] < rv["vol_medium"] < rv["vol_high"], rv
