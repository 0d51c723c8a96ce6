"""Canonical market model v2 (SIMULATION §2.3–§2.6, §6.8–§6.9; STRATEGY §5.2 margin [REC]).

Calibration tests run one vmapped batch of paths (B paths × T ticks) and compare sample moments
with the requested values at ≥ 5 standard errors (tolerances stated per test):
realised vol within 2 %, mean log return within 5 SE of (μ − σ²/2)h, jump frequency and mean
count within 5 SE of 1 − e^−λ and λ, stationary high-regime share within 5 SE.

Parity (`-k parity`): JAX under x64 vs the float64 NumPy reference on the same noise, 60 random
param sets × 120 ticks with random schedules: floats rtol 1e-9 (atol 1e-9 × the field's USD or
price scale), ints and masks exactly. float32 JAX: prices rtol 2e-6 over 120 ticks (measured
≤ 2.3e-7; the state carries ln(S/s0), which starts at 0), discrete outputs exactly.
"""

from __future__ import annotations

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np

from paraphina_jax.reference import sim_market as rm
from paraphina_jax.sim import market as jm
from paraphina_jax.sim.schedule import identity_schedule
from paraphina_jax.sim.testing import random_market_params, random_schedule
from paraphina_jax.sim.types import (
    AccountState,
    MarketView,
    StaticSimParams,
    default_market_params,
    draw_episode_noise,
    draw_market_noise,
    noise_at,
)
from paraphina_jax.testing import stack, to_jax
from paraphina_jax.utils.x64 import enable_x64

N = 5
N_PARITY = 60
T_PARITY = 120


# ---------------------------------------------------------------------------------------------
# helpers: every calibration test runs the same compiled program (B_CAL paths × T_CAL ticks, x64)
# ---------------------------------------------------------------------------------------------

B_CAL, T_CAL = 64, 1000
STATIC_CAL = StaticSimParams(n_ticks=T_CAL)


def _episode_views(params, key, sched, q0, static):
    """`(final state, inputs [T], views [T])` of one episode, tick t at t·dt_ms."""
    n_ticks = sched.latency_ms.shape[0]
    noise = draw_market_noise(key, n_ticks, static)
    ms = jm.initial_market_state(params, static, draw_episode_noise(key, static), q0)
    dt = jnp.round(params.dt_ms).astype(ms.tick.dtype)

    def body(ms, xs):
        nz, sc = xs
        ms, inp, view = jm.market_step(params, ms, nz, sc, ms.tick * dt, static)
        return ms, (inp, view)

    ms, (inp, views) = jax.lax.scan(body, ms, (noise, sched))
    return ms, inp, views


@jax.jit
def _calibration_batch(params, keys, sched, q0):
    return jax.vmap(lambda k: _episode_views(params, k, sched, q0, STATIC_CAL))(keys)


def _run(params, seed=0, sched=None, q0=0.0):
    """B_CAL episodes of T_CAL ticks under x64; NumPy `(state, inputs, views)` with leading `[B]`."""
    sched = identity_schedule(T_CAL, N) if sched is None else sched
    keys = jax.random.split(jax.random.PRNGKey(seed), B_CAL)
    with enable_x64():
        out = _calibration_batch(to_jax(params), keys, to_jax(sched), jnp.asarray(q0, jnp.float64))
        return jax.tree.map(np.asarray, out)


def _log_returns(views: MarketView) -> np.ndarray:
    return np.diff(np.log(np.asarray(views.fair, np.float64)), axis=-1)


# ---------------------------------------------------------------------------------------------
# Calibration (§2.3: mean return ≈ drift, realised vol ≈ vol, jump frequency ≈ intensity)
# ---------------------------------------------------------------------------------------------


def test_realised_vol_and_drift_match_request():
    dt_ms, vol, drift = 3_600_000.0, 0.5, 2.0  # hourly ticks, per-day σ and μ
    _, _, views = _run(default_market_params(dt_ms=dt_ms, vol=vol, drift=drift))
    r = _log_returns(views).ravel()
    h = dt_ms / 86_400_000.0
    realised = r.std(ddof=1) / np.sqrt(h)
    assert abs(realised / vol - 1.0) < 0.02  # n ≈ 64k ⇒ SE(σ̂)/σ ≈ 0.3 %
    se = vol * np.sqrt(h) / np.sqrt(r.size)
    assert abs(r.mean() - (drift - 0.5 * vol**2) * h) < 5 * se


def test_jump_frequency_and_size_match_request():
    lam, sj, vol, dt_ms = 0.05, 0.01, 0.2, 1000.0
    p = default_market_params(dt_ms=dt_ms, vol=vol, jump_intensity=lam, jump_sigma=sj)
    _, _, views = _run(p, seed=3)
    nj = views.n_jumps.ravel().astype(np.float64)
    m = nj.size
    p_any = 1.0 - np.exp(-lam)
    assert abs((nj > 0).mean() - p_any) < 5 * np.sqrt(p_any * (1 - p_any) / m)
    assert abs(nj.mean() - lam) < 5 * np.sqrt(lam / m)
    # Return variance = σ²h + λσ_J² (jumps add to the diffusion); 5 % tolerance.
    r = _log_returns(views).ravel()
    h = dt_ms / 86_400_000.0
    assert abs(r.var() / (vol**2 * h + lam * sj**2) - 1.0) < 0.05


def test_poisson_count_matches_inverse_cdf():
    u = np.array([0.0, 0.5, 0.9, 0.99, 0.9999])
    lam = 0.7
    cdf = np.cumsum([np.exp(-lam) * lam**k / math.factorial(k) for k in range(6)])
    want = [int(np.sum(x >= cdf[:4])) for x in u]
    got = [int(jm.poisson_count(jnp.asarray(x), jnp.asarray(lam), 4)) for x in u]
    ref = [rm.poisson_count(float(x), lam, 4) for x in u]
    assert got == want == ref


def test_vol_regime_share_and_vol():
    pu, pd, mult, vol, dt_ms = 0.02, 0.08, 3.0, 0.3, 60_000.0
    p = default_market_params(
        dt_ms=dt_ms, vol=vol, regime_p_up=pu, regime_p_down=pd, vol_high_mult=mult
    )
    _, _, views = _run(p, seed=5)
    reg = views.vol_regime[:, 100:].astype(np.float64)  # after burn-in
    share = pu / (pu + pd)
    # Autocorrelated chain: effective sample ≈ n·(1 − ρ)/(1 + ρ), ρ = 1 − pu − pd.
    rho = 1 - pu - pd
    n_eff = reg.size * (1 - rho) / (1 + rho)
    assert abs(reg.mean() - share) < 5 * np.sqrt(share * (1 - share) / n_eff)
    r = _log_returns(views)[:, 100:]
    regime_now = views.vol_regime[:, 101:]  # the regime is updated before the move
    h = dt_ms / 86_400_000.0
    hi = r[regime_now == 1].std() / np.sqrt(h)
    lo = r[regime_now == 0].std() / np.sqrt(h)
    assert abs(hi / (mult * vol) - 1) < 0.03 and abs(lo / vol - 1) < 0.03


def test_basis_ar1_mean_and_autocorrelation():
    rho, sb = 0.9, 1e-4
    _, _, views = _run(default_market_params(basis_rho=rho, basis_sigma=sb, vol=0.0), seed=7)
    b = (views.mid / views.fair[..., None] - 1.0)[:, 100:]  # [B, T, N]
    bbar = 0.4 * np.arange(N) / 300.0
    sd = sb / np.sqrt(1 - rho**2)
    n_eff = b.shape[0] * b.shape[1] * (1 - rho) / (1 + rho)
    assert np.all(np.abs(b.mean(axis=(0, 1)) - bbar) < 5 * sd / np.sqrt(n_eff))
    x = b - bbar
    ac = (x[:, 1:] * x[:, :-1]).mean() / (x * x).mean()
    assert abs(ac - rho) < 0.01
    # σ_b = 0 reduces to the reference static offsets m_v = S + 0.4·v at S = 300 (§2.3)
    _, _, v0 = _run(default_market_params(basis_sigma=0.0, vol=0.0))
    np.testing.assert_allclose(
        v0.mid - 300.0, np.broadcast_to(0.4 * np.arange(N), v0.mid.shape), atol=1e-9
    )


# ---------------------------------------------------------------------------------------------
# Book: spreads, depth, shocks, staleness, outages (§2.2–§2.5)
# ---------------------------------------------------------------------------------------------


def test_spread_and_depth_overlays_exact():
    p = default_market_params(spread_mult=1.2, spread_kappa=0.0)
    sched = identity_schedule(T_CAL, N).replace(
        spread_add_bps=np.full((T_CAL, N), 50.0),
        spread_mult=np.full((T_CAL, N), 2.0),
        depth_mult=np.full((T_CAL, N), 0.4),
    )
    _, inp, v = _run(p, sched=sched)
    want_spr = (0.4 + 0.02 * np.arange(N)) * 1.2 * 2.0 + 50e-4 * v.fair[..., None]
    np.testing.assert_allclose(v.spread, want_spr, rtol=1e-12)
    np.testing.assert_allclose(v.ask - v.bid, v.spread, rtol=1e-9)
    np.testing.assert_allclose(v.depth_usd, 4000.0, rtol=1e-12)
    # D4: both touches together hold exactly depth_v of notional; the strategy sees the same
    np.testing.assert_allclose((v.bid + v.ask) * v.touch_size, v.depth_usd, rtol=1e-12)
    np.testing.assert_allclose(
        inp.book.bid_px * inp.book.bid_sz + inp.book.ask_px * inp.book.ask_sz, 4000.0
    )


def test_spread_widens_with_abs_z_and_floor():
    p = default_market_params(spread_kappa=0.5, spread_offset=-0.5, spread_min=0.02)
    _, _, v = _run(p, seed=2)
    assert np.all(v.spread >= 0.02 - 1e-15)
    assert np.any(v.spread > 0.02)  # large |Z| lifts the venues above the floor
    _, _, v1 = _run(default_market_params(spread_kappa=0.5), seed=2)
    _, _, v0 = _run(default_market_params(spread_kappa=0.0), seed=2)
    # spr = spr̄·(1 + κ|Z|): the ratio is the same on every venue and ≥ 1
    ratio = v1.spread / v0.spread
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[..., :1], ratio.shape), rtol=1e-12)
    assert np.all(ratio >= 1.0)


def test_thin_book_frequency_and_multiplier():
    _, _, v = _run(default_market_params(thin_prob=0.1, thin_mult=0.2), seed=4)
    m = v.thin.size
    assert abs(v.thin.mean() - 0.1) < 5 * np.sqrt(0.09 / m)
    np.testing.assert_allclose(v.depth_usd[v.thin], 2000.0)
    np.testing.assert_allclose(v.depth_usd[~v.thin], 10_000.0)


def test_stale_windows_frequency_and_lengths():
    lo, hi, ps = 3, 6, 0.02
    _, inp, v = _run(
        default_market_params(stale_prob=ps, stale_min_ticks=lo, stale_max_ticks=hi), seed=6
    )
    stale = v.stale
    assert np.array_equal(v.book_updated, ~stale) and np.array_equal(inp.book.updated, ~stale)
    lengths = []
    for b in range(stale.shape[0]):
        for n in range(N):
            edges = np.diff(np.concatenate([[0], stale[b, :, n].astype(int), [0]]))
            starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
            lengths.extend((ends - starts)[ends < T_CAL])  # runs cut by the horizon dropped
    lengths = np.array(lengths)
    assert lengths.min() >= lo  # back-to-back windows merge into longer runs
    assert np.mean(lengths <= hi) > 0.9
    # start rate per non-stale venue-tick ≈ p (binomial, ~3 000 starts ⇒ SE ≈ 2 %)
    starts = (stale[:, 1:] & ~stale[:, :-1]).sum()
    assert abs(starts / (~stale[:, :-1]).sum() - ps) < 0.15 * ps


def test_outage_window_no_book_update():
    out = np.zeros((T_CAL, N), bool)
    out[10:20, 2] = True
    _, inp, v = _run(default_market_params(), sched=identity_schedule(T_CAL, N).replace(outage=out))
    want = np.broadcast_to(out, v.outage.shape)
    assert np.array_equal(v.outage, want)
    assert np.array_equal(inp.book.updated, ~want)
    assert np.array_equal(inp.funding.updated, ~want)
    assert np.array_equal(inp.account.updated, ~want)


def test_episode_disable_windows():
    lo, hi = 20, 50
    _, _, v = _run(
        default_market_params(disable_prob=1.0, disable_min_ticks=lo, disable_max_ticks=hi), seed=9
    )
    length = v.outage.sum(axis=1)  # [B, N]; a window may be cut by the horizon
    starts = v.outage.argmax(axis=1)
    assert np.all(length <= hi) and np.all((length >= lo) | (starts + length == T_CAL))
    # each venue's outage is one contiguous window
    assert np.all(np.abs(np.diff(v.outage.astype(int), axis=1)).sum(axis=1) <= 2)
    _, _, v0 = _run(
        default_market_params(disable_prob=0.0, disable_min_ticks=lo, disable_max_ticks=hi), seed=9
    )
    assert not v0.outage.any()


def test_mid_mult_overlay_basis_spike():
    mm = np.ones((T_CAL, N))
    mm[4:7, 1] = 1.01
    p = default_market_params(basis_sigma=0.0)
    _, _, a = _run(p, sched=identity_schedule(T_CAL, N).replace(mid_mult=mm), seed=1)
    _, _, b = _run(p, seed=1)
    np.testing.assert_allclose(a.mid / b.mid, np.broadcast_to(mm, a.mid.shape), rtol=1e-13)


# ---------------------------------------------------------------------------------------------
# Funding (§2.3, §2.4) and margin (STRATEGY §5.2 [REC])
# ---------------------------------------------------------------------------------------------


def test_funding_settles_every_8h_with_sign():
    dt_ms = 600_000.0  # 10 min ⇒ 48 ticks per 8 h
    rate = np.array([1e-4, -2e-4, 3e-4, 0.0, 1e-4])
    p = default_market_params(dt_ms=dt_ms, funding_8h=rate, vol=0.0, basis_sigma=0.0)
    flip = np.ones((T_CAL, N))
    flip[100:] = -1.0
    sched = identity_schedule(T_CAL, N).replace(
        funding_sign=flip, funding_add=np.full((T_CAL, N), 1e-5)
    )
    ms_end, inp, v = _run(p, sched=sched, q0=4.0)
    ms_end, inp, v = jax.tree.map(lambda x: x[0], (ms_end, inp, v))
    ticks = np.nonzero(v.settle[:, 0])[0]
    np.testing.assert_array_equal(ticks, np.arange(48, T_CAL, 48))  # now = 48·10 min = 8 h, …
    assert np.all(v.settle == v.settle[:, :1])  # every venue settles together
    f8 = (rate + 1e-5) * flip
    np.testing.assert_allclose(v.funding_8h, f8, rtol=1e-13)
    np.testing.assert_allclose(inp.funding.rate_8h, f8, rtol=1e-13)
    assert np.all(inp.funding.next_funding_ms[:, 0] > v.now_ms)
    assert np.all(inp.funding.next_funding_ms[:, 0] - v.now_ms <= 28_800_000)
    # q0 = +4 on venue 0: longs pay when the rate is positive and receive after the flip
    paid = v.funding_paid_usd[:, 0]
    np.testing.assert_allclose(paid[ticks], f8[ticks, 0] * 4.0 * v.mid[ticks, 0], rtol=1e-12)
    assert paid[48] > 0 and paid[144] < 0
    assert np.all(paid[~v.settle[:, 0]] == 0) and np.all(v.funding_paid_usd[:, 1:] == 0)
    np.testing.assert_allclose(ms_end.account.collateral_usd[0], 10_000.0 - paid.sum(), rtol=1e-12)
    pay = jm.funding_payments(
        jnp.array([1e-3, 1e-3, 1e-3]),
        jnp.array([2.0, -2.0, 2.0]),
        jnp.array([100.0, 100.0, 100.0]),
        jnp.array([True, True, False]),
    )
    np.testing.assert_allclose(pay, [0.2, -0.2, 0.0], rtol=1e-6)


def test_margin_liquidation_distance_finite_and_shrinks_with_position():
    p = default_market_params(collateral_usd=2_000.0, maint_margin_ratio=0.05, leverage=10.0)
    mid = np.full(N, 300.0)
    for sign in (1.0, -1.0):
        dists = []
        for q in (5.0, 20.0, 50.0, 100.0):
            acct = AccountState(
                position_tao=np.array([sign * q, 0, 0, 0, 0]),
                entry_price=np.array([300.0, 0, 0, 0, 0]),
                collateral_usd=np.full(N, 2_000.0),
            )
            for eng, xp in ((rm, np), (jm, jnp)):
                with enable_x64():
                    snap = eng.account_snapshot(
                        to_jax(p) if eng is jm else p,
                        to_jax(acct) if eng is jm else acct,
                        xp.asarray(mid),
                        xp.ones(N, bool),
                    )
                    snap = jax.tree.map(np.asarray, snap)
                if eng is rm:
                    ref = snap
                else:
                    for a, b in zip(jax.tree.leaves(snap), jax.tree.leaves(ref)):
                        np.testing.assert_allclose(a, b, rtol=1e-12)
            if q * 300.0 > 2_000.0 or sign < 0:
                assert snap.has_price_liq[0] and not snap.has_price_liq[1:].any()
                pl = snap.price_liq[0]
                # equity at p_liq equals the maintenance margin
                eq = 2_000.0 + sign * q * (pl - 300.0)
                np.testing.assert_allclose(eq, 0.05 * q * pl, rtol=1e-12)
                dists.append(abs(300.0 - pl))
            np.testing.assert_allclose(snap.margin_used_usd[0], q * 300.0 / 10.0)
            np.testing.assert_allclose(snap.margin_available_usd[0], max(2_000.0 - q * 30.0, 0.0))
        assert np.all(np.isfinite(dists)) and np.all(np.diff(dists) < 0)
    # flat venues report the constant distance
    assert np.all(snap.dist_liq_sigma == float(p.flat_dist_liq_sigma))


def test_initial_inventory_and_latency_ticks():
    static = StaticSimParams()
    p = default_market_params(s0=250.0)
    with enable_x64():
        ms = jm.initial_market_state(to_jax(p), static, None, -3.0)
    np.testing.assert_allclose(np.asarray(ms.account.position_tao), [-3.0, 0, 0, 0, 0])
    np.testing.assert_allclose(np.asarray(ms.account.entry_price), [250.0, 0, 0, 0, 0])
    for lat, want in ((0.0, 0), (2.0, 1), (250.0, 1), (251.0, 2), (1e6, static.max_latency_ticks)):
        assert int(jm.latency_ticks(jnp.asarray(lat), 250.0, static)) == want
        assert rm.latency_ticks(lat, 250.0, static) == want


# ---------------------------------------------------------------------------------------------
# Parity with the NumPy reference, vmap == loop, one trace, determinism
# ---------------------------------------------------------------------------------------------


STATIC_PAR = StaticSimParams(n_ticks=T_PARITY)


def _jax_episode(params, noise, ep_noise, sched):
    ms = jm.initial_market_state(params, STATIC_PAR, ep_noise, 2.0)
    dt = jnp.round(params.dt_ms).astype(ms.tick.dtype)

    def body(ms, xs):
        nz, sc = xs
        ms, inp, view = jm.market_step(params, ms, nz, sc, 1000 + ms.tick * dt, STATIC_PAR)
        return ms, (inp, view)

    return jax.lax.scan(body, ms, (noise, sched))


_parity_batch = jax.jit(jax.vmap(_jax_episode))


def _ref_episode(params, noise, ep_noise, sched):
    ms = rm.initial_market_state(params, STATIC_PAR, ep_noise, 2.0)
    dt = int(round(float(params.dt_ms)))
    outs = []
    for t in range(noise.z.shape[0]):
        ms, inp, view = rm.market_step(
            params, ms, noise_at(noise, t), noise_at(sched, t), 1000 + t * dt, STATIC_PAR
        )
        outs.append((inp, view))
    return ms, stack(outs)


@jax.jit
def _draw_parity_noise(keys):
    noise = jax.vmap(lambda k: draw_market_noise(k, T_PARITY, STATIC_PAR))(keys)
    return noise, jax.vmap(lambda k: draw_episode_noise(k, STATIC_PAR))(keys)


@functools.lru_cache(maxsize=2)
def _cases(seed: int):
    """N_PARITY random param sets and schedules, and their noise (NumPy)."""
    rng = np.random.default_rng(seed)
    params = [random_market_params(rng, N) for _ in range(N_PARITY)]
    scheds = [random_schedule(rng, T_PARITY, N, float(p.dt_ms)) for p in params]
    keys = jax.random.split(jax.random.PRNGKey(seed), N_PARITY)
    with enable_x64():  # float64 draws (the float32 run rounds them on conversion)
        noise, ep = _draw_parity_noise(keys)
    return params, scheds, jax.tree.map(np.asarray, noise), jax.tree.map(np.asarray, ep)


def _batched_args(seed: int):
    params, scheds, noise, ep = _cases(seed)
    return to_jax(stack(params)), to_jax(noise), to_jax(ep), to_jax(stack(scheds))


def _scale(name: str) -> float:
    if any(k in name for k in ("usd", "margin", "collateral", "paid")):
        return 1e4
    return 1e3


def _compare(got, want, rtol: float, label: str) -> None:
    flat_g = jax.tree_util.tree_flatten_with_path(got)[0]
    flat_w = jax.tree.leaves(want)
    assert len(flat_g) == len(flat_w)
    for (path, g), w in zip(flat_g, flat_w):
        name = jax.tree_util.keystr(path)
        g, w = np.asarray(g), np.asarray(w)
        if g.dtype.kind in "biu":
            np.testing.assert_array_equal(g, w, err_msg=f"{label}{name}")
        else:
            np.testing.assert_allclose(
                g, w, rtol=rtol, atol=rtol * _scale(name), err_msg=f"{label}{name}"
            )


def test_market_parity_x64_random_params():
    params, scheds, noise, ep = _cases(11)
    with enable_x64():
        out_j = jax.tree.map(np.asarray, _parity_batch(*_batched_args(11)))
    n_settle = n_out = n_stale = 0
    for i in range(N_PARITY):
        ref = _ref_episode(params[i], noise_at(noise, i), noise_at(ep, i), scheds[i])
        got = jax.tree.map(lambda x, i=i: x[i], out_j)
        _compare(got, ref, 1e-9, f"set {i}: ")
        n_settle += int(ref[1][1].settle.any())
        n_out += int(ref[1][1].outage.any())
        n_stale += int(ref[1][1].stale.any())
    assert n_settle > N_PARITY // 2 and n_out > N_PARITY // 3 and n_stale > N_PARITY // 3


def test_market_parity_float32_tolerance():
    params, scheds, noise, ep = _cases(11)
    _, (_, view) = _parity_batch(*_batched_args(11))
    view = jax.tree.map(np.asarray, view)
    for i in range(0, N_PARITY, 4):
        _, (_, rv) = _ref_episode(params[i], noise_at(noise, i), noise_at(ep, i), scheds[i])
        for f in ("mid", "bid", "ask", "fair"):
            np.testing.assert_allclose(getattr(view, f)[i], getattr(rv, f), rtol=2e-6, err_msg=f)
        for f in ("n_jumps", "vol_regime", "stale", "outage", "settle", "latency_ticks", "thin"):
            np.testing.assert_array_equal(getattr(view, f)[i], getattr(rv, f), err_msg=f)


def test_vmap_equals_loop_one_trace_and_determinism():
    params, scheds, noise, ep = _cases(11)
    with enable_x64():
        chex.clear_trace_counter()
        one = jax.jit(chex.assert_max_traces(_jax_episode, n=1))
        got_b = _parity_batch(*_batched_args(11))
        for i in range(6):  # different params, same shapes: no retrace
            args = (params[i], noise_at(noise, i), noise_at(ep, i), scheds[i])
            got_i = one(*to_jax(args))
            for a, b in zip(jax.tree.leaves(got_i), jax.tree.leaves(got_b)):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b)[i])
        # bitwise determinism per key: same key ⇒ same draws and path; other key ⇒ different
        k = jax.random.PRNGKey(42)
        n1 = draw_market_noise(k, T_PARITY, STATIC_PAR)
        n2 = draw_market_noise(k, T_PARITY, STATIC_PAR)
        for a, b in zip(jax.tree.leaves(n1), jax.tree.leaves(n2)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        p0, e0, s0 = to_jax((params[0], noise_at(ep, 0), scheds[0]))
        r1 = one(p0, n1, e0, s0)
        r2 = one(p0, n2, e0, s0)
        for a, b in zip(jax.tree.leaves(r1), jax.tree.leaves(r2)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        n3 = draw_market_noise(jax.random.PRNGKey(43), T_PARITY, STATIC_PAR)
        assert not np.array_equal(np.asarray(n1.z), np.asarray(n3.z))


def test_noise_of_a_tick_independent_of_chunking():
    _, _, noise, _ = _cases(11)  # 120 ticks drawn in one block per key
    keys = jax.random.split(jax.random.PRNGKey(11), N_PARITY)
    draw = jax.jit(draw_market_noise, static_argnums=(1, 2))
    with enable_x64():
        for t0 in (0, 40, 104):
            part = draw(keys[3], 16, STATIC_PAR, t0)
            for name in (
                "z",
                "z_jump",
                "eps_basis",
                "u_jump",
                "u_regime",
                "u_stale",
                "u_thin",
                "u_fill",
            ):
                np.testing.assert_array_equal(
                    np.asarray(getattr(part, name)), getattr(noise, name)[3, t0 : t0 + 16]
                )
    u = np.concatenate([noise.u_fill.ravel(), noise.u_stale.ravel(), noise.u_jump.ravel()])
    assert np.all((u >= 0) & (u < 1)) and abs(u.mean() - 0.5) < 0.01
    z = np.concatenate([noise.z.ravel(), noise.eps_basis.ravel()])
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02
