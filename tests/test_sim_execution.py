"""Canonical execution / fill model (SIMULATION §3.5 [REC]; STRATEGY §5.3 on the venue account).

A toy driver stands in for the strategy: each tick it steps the market, fills the resting quotes
left by the previous tick, places new post-only quotes at `mid ∓ offset` (some cross), and sends
IOC exits and hedges with limits `touch ± slip`, all from pre-drawn `[T, ...]` arrays. The same
driver runs on both engines; every property test reuses its one compiled x64 program
(B = 60 episodes × T = 120 ticks).

Tolerances: x64 JAX vs the NumPy reference on the same noise: floats rtol 1e-9 with atol 1e-9 ×
the field's scale (1e4 for USD fields, 1e3 otherwise), ints / masks / fill validity exactly
(the JAX engine walks the ladder in closed form, the reference level by level; measured
differences ≤ 1e-12 relative). float32: fill decisions equal to the reference except where
|u − p| < 1e-5; ladder fills rtol 1e-5. Statistical checks at 5 standard errors.
"""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from paraphina_jax.config import make_config
from paraphina_jax.config.types import PURPOSE_EXIT, PURPOSE_HEDGE, PURPOSE_MM, SIDE_BUY, SIDE_SELL
from paraphina_jax.reference import accounting as racc
from paraphina_jax.reference import sim_execution as re_
from paraphina_jax.reference import sim_market as rm
from paraphina_jax.sim import execution as je
from paraphina_jax.sim import market as jm
from paraphina_jax.sim.schedule import identity_schedule
from paraphina_jax.sim.testing import random_market_params, random_schedule
from paraphina_jax.sim.types import (
    StaticSimParams,
    default_market_params,
    draw_episode_noise,
    draw_market_noise,
    noise_at,
)
from paraphina_jax.strategy.types import ExitPlan, HedgePlan, OrderPlan, init_state
from paraphina_jax.testing import stack, to_jax
from paraphina_jax.utils.x64 import enable_x64

N = 5
B, T = 60, 120
STATIC = StaticSimParams(n_ticks=T)
START_MS = 1000


# ---------------------------------------------------------------------------------------------
# The toy driver (one definition, both engines)
# ---------------------------------------------------------------------------------------------


@struct.dataclass
class Slots:
    """The strategy's MM slots `[N, 2]`."""

    mm_has: object
    mm_price: object
    mm_size: object
    mm_ts_ms: object
    mm_id: object


@struct.dataclass
class Drive:
    """Pre-drawn orders per tick (`[T, ...]`)."""

    q_place: object  # [T, N, 2] bool
    q_off: object  # [T, N, 2] f  bid = mid − off, ask = mid + off (off < 0 may cross)
    q_size: object  # [T, N, 2] f
    e_valid: object  # [T, N] bool
    e_size: object  # [T, N] f
    e_slip: object  # [T, N] f  limit = touch + s·slip
    e_order: object  # [T, N] i  plan order (N = none)
    e_side: object  # [T] i
    h_valid: object  # [T, N] bool
    h_size: object  # [T, N] f
    h_slip: object  # [T, N] f
    h_side: object  # [T] i


def _hedge_plan(xp, valid, size, price, side) -> HedgePlan:
    z = xp.zeros_like(size)
    zs = xp.zeros_like(size[0])
    return HedgePlan(
        valid=valid, size=size, price=price, side=side, band=zs, x=zs, delta_h=zs,
        active=xp.any(valid), alloc=z, cost=z, exec_cost=z, funding_benefit=z, basis_edge=z,
        liq_penalty=z, frag_penalty=z, candidate=valid,
    )  # fmt: skip


def _drive_step(M, E, xp, params, carry, x):
    """One tick: market, resting-quote fills, new quotes (post-only check), IOC orders."""
    ms, slots = carry
    noise_t, sched_t, d, t = x
    dt = xp.round(params.dt_ms)
    now = (START_MS + t * dt).astype(ms.tick.dtype) if xp is jnp else START_MS + t * int(dt)
    ms, inputs, view = M.market_step(params, ms, noise_t, sched_t, now, STATIC)
    ms, mm, r1 = E.fill_quotes(params, ms, view, slots, noise_t)
    has = slots.mm_has & ~mm.valid.reshape(N, 2)  # apply_fills clears a filled slot
    sgn = xp.asarray([1.0, -1.0])
    px = view.mid[:, None] - sgn[None, :] * d.q_off
    plan = OrderPlan(cancel=d.q_place, place=d.q_place, place_px=px, place_size=d.q_size)
    rej = E.post_only_rejects(view, plan)
    ok = d.q_place & ~rej
    ids = t * 2 * N + xp.arange(2 * N).reshape(N, 2)
    slots = Slots(
        mm_has=xp.where(d.q_place, ok, has),
        mm_price=xp.where(ok, px, slots.mm_price),
        mm_size=xp.where(ok, d.q_size, slots.mm_size),
        mm_ts_ms=xp.where(ok, now, slots.mm_ts_ms),
        mm_id=xp.where(ok, ids, slots.mm_id),
    )
    e_px = xp.where(d.e_side == SIDE_BUY, view.ask + d.e_slip, view.bid - d.e_slip)
    z = xp.zeros_like(d.e_size)
    exit_plan = ExitPlan(
        valid=d.e_valid, size=d.e_size, price=e_px, side=d.e_side, order=d.e_order,
        score=z, base_edge=z, candidate=d.e_valid,
    )  # fmt: skip
    h_px = xp.where(d.h_side == SIDE_BUY, view.ask + d.h_slip, view.bid - d.h_slip)
    hedge_plan = _hedge_plan(xp, d.h_valid, d.h_size, h_px, d.h_side)
    ms, ioc, r2 = E.execute_ioc(params, ms, view, exit_plan, hedge_plan, STATIC)
    return (ms, slots), (inputs, view, mm, ioc, r1, r2, rej)


def _empty_slots(xp, fd, idt):
    return Slots(
        mm_has=xp.zeros((N, 2), bool),
        mm_price=xp.zeros((N, 2), fd),
        mm_size=xp.zeros((N, 2), fd),
        mm_ts_ms=xp.zeros((N, 2), idt),
        mm_id=xp.zeros((N, 2), idt),
    )


def _jax_drive(params, noise, ep, sched, drive, q0):
    ms = jm.initial_market_state(params, STATIC, ep, q0)
    carry = (ms, _empty_slots(jnp, ms.log_s.dtype, ms.tick.dtype))

    def body(c, x):
        return _drive_step(jm, je, jnp, params, c, x)

    return jax.lax.scan(body, carry, (noise, sched, drive, jnp.arange(T)))


_drive_batch = jax.jit(jax.vmap(_jax_drive))


def _ref_drive(params, noise, ep, sched, drive, q0):
    ms = rm.initial_market_state(params, STATIC, ep, float(q0))
    carry = (ms, _empty_slots(np, np.float64, np.int64))
    outs = []
    for t in range(T):
        x = (noise_at(noise, t), noise_at(sched, t), noise_at(drive, t), t)
        carry, out = _drive_step(rm, re_, np, params, carry, x)
        outs.append(out)
    return carry, stack(outs)


def _random_drive(rng: np.random.Generator) -> Drive:
    perm = np.argsort(rng.random((T, N)), axis=1)
    e_valid = rng.random((T, N)) < 0.3
    return Drive(
        q_place=rng.random((T, N, 2)) < 0.6,
        q_off=rng.uniform(-0.3, 1.5, (T, N, 2)),
        q_size=rng.uniform(0.0, 5.0, (T, N, 2)) * (rng.random((T, N, 2)) > 0.05),
        e_valid=e_valid,
        e_size=rng.uniform(0.0, 40.0, (T, N)),
        e_slip=rng.uniform(-0.05, 0.5, (T, N)),
        e_order=np.where(e_valid, perm, N),
        e_side=rng.choice([SIDE_BUY, SIDE_SELL], T),
        h_valid=rng.random((T, N)) < 0.3,
        h_size=rng.uniform(0.0, 40.0, (T, N)),
        h_slip=rng.uniform(-0.05, 1.0, (T, N)),
        h_side=rng.choice([SIDE_BUY, SIDE_SELL], T),
    )


def _quiet_drive(q_off: float | np.ndarray = 0.5, q_size: float = 1.0) -> Drive:
    """Quotes on every side every tick, no IOC orders (every array its own, to edit in place)."""

    def zf():
        return np.zeros((T, N))

    def zb():
        return np.zeros((T, N), bool)

    return Drive(
        q_place=np.ones((T, N, 2), bool),
        q_off=np.broadcast_to(np.asarray(q_off, np.float64), (T, N, 2)).copy(),
        q_size=np.full((T, N, 2), q_size),
        e_valid=zb(), e_size=zf(), e_slip=zf(), e_order=np.full((T, N), N),
        e_side=np.ones(T, np.int64),
        h_valid=zb(), h_size=zf(), h_slip=zf(), h_side=np.ones(T, np.int64),
    )  # fmt: skip


@jax.jit
def _draw(keys):
    noise = jax.vmap(lambda k: draw_market_noise(k, T, STATIC))(keys)
    return noise, jax.vmap(lambda k: draw_episode_noise(k, STATIC))(keys)


def _noise(seed: int):
    with enable_x64():
        out = _draw(jax.random.split(jax.random.PRNGKey(seed), B))
        return jax.tree.map(np.asarray, out)


def _run(params, drives, scheds=None, seed=0, q0=0.0):
    """The driver on B episodes (x64). `params`/`drives`/`scheds`: one object or a list of B."""

    def many(x):
        return stack(x) if isinstance(x, list) else stack([x] * B)

    scheds = identity_schedule(T, N) if scheds is None else scheds
    noise, ep = _noise(seed)
    with enable_x64():
        args = to_jax((many(params), noise, ep, many(scheds), many(drives)))
        out = _drive_batch(*args, jnp.full((B,), q0, jnp.float64))
        return jax.tree.map(np.asarray, out)


def _at(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


# ---------------------------------------------------------------------------------------------
# Parity with the NumPy reference
# ---------------------------------------------------------------------------------------------


def _parity_cases(seed: int):
    rng = np.random.default_rng(seed)
    params = [random_market_params(rng, N) for _ in range(B)]
    scheds = [random_schedule(rng, T, N, float(p.dt_ms)) for p in params]
    drives = [_random_drive(rng) for _ in range(B)]
    return params, scheds, drives


def _scale(name: str) -> float:
    if any(k in name for k in ("usd", "margin", "collateral", "paid")):
        return 1e4
    return 1e3


def _compare(got, want, label: str) -> None:
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
                g, w, rtol=1e-9, atol=1e-9 * _scale(name), err_msg=f"{label}{name}"
            )


def test_execution_parity_x64_random_params():
    params, scheds, drives = _parity_cases(21)
    got = _run(params, drives, scheds, seed=21, q0=1.5)
    noise, ep = _noise(21)
    n_mm = n_ioc = n_rej = n_busy = n_partial_ladder = 0
    for i in range(B):
        ref = _ref_drive(params[i], noise_at(noise, i), noise_at(ep, i), scheds[i], drives[i], 1.5)
        _compare(_at(got, i), ref, f"set {i}: ")
        _, view, mm, ioc, r1, r2, rej = ref[1]
        n_mm += int(mm.valid.sum())
        n_ioc += int(ioc.valid.sum())
        n_rej += int(rej.sum())
        n_busy += int(r2.rejected.sum())
        n_partial_ladder += int((ioc.valid & (ioc.size < np.concatenate(
            [drives[i].e_size, drives[i].h_size], axis=1) - 1e-9)).sum())  # fmt: skip
    # every mechanism was exercised
    assert min(n_mm, n_ioc, n_rej, n_busy, n_partial_ladder) > 100


def test_vmap_equals_loop_one_trace_and_determinism():
    params, scheds, drives = _parity_cases(21)
    got = _run(params, drives, scheds, seed=21, q0=1.5)
    noise, ep = _noise(21)
    with enable_x64():
        chex.clear_trace_counter()
        one = jax.jit(chex.assert_max_traces(_jax_drive, n=1))
        for i in range(4):  # new params each call: no retrace
            args = to_jax((params[i], noise_at(noise, i), noise_at(ep, i), scheds[i], drives[i]))
            out = one(*args, jnp.float64(1.5))
            # batched and unbatched programs may fuse differently: floats to a few ulps
            for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(_at(got, i))):
                if b.dtype.kind == "f":
                    np.testing.assert_allclose(np.asarray(a), b, rtol=1e-13, atol=1e-12)
                else:
                    np.testing.assert_array_equal(np.asarray(a), b)
        again = _run(params, drives, scheds, seed=21, q0=1.5)  # bitwise determinism per key
        for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(got)):
            np.testing.assert_array_equal(a, b)
        other = _run(params, drives, scheds, seed=22, q0=1.5)
        assert not np.array_equal(other[1][3].valid, got[1][3].valid)


def test_float32_fill_decisions_and_ladder():
    params, scheds, drives = _parity_cases(23)
    noise, ep = _noise(23)
    rng = np.random.default_rng(0)
    # Stateless: random views and quotes through fill_quotes, float32 JAX vs reference.
    p = params[0]
    rows = _at(noise, 0)  # [T, ...] rows of one key
    ms_r = rm.initial_market_state(p, STATIC)
    ms_r, _, view_r = rm.market_step(p, ms_r, noise_at(rows, 0), noise_at(scheds[0], 0), 0, STATIC)
    slots = Slots(
        mm_has=np.ones((N, 2), bool),
        mm_price=view_r.mid[:, None] + rng.uniform(-0.5, 0.5, (N, 2)),
        mm_size=np.ones((N, 2)),
        mm_ts_ms=np.full((N, 2), -10_000_000, np.int64),
        mm_id=np.arange(2 * N).reshape(N, 2),
    )
    fq = jax.jit(jax.vmap(je.fill_quotes, in_axes=(None, None, None, None, 0)))
    _, fills, _ = fq(
        to_jax(p),
        to_jax(jm.initial_market_state(to_jax(p), STATIC)),
        to_jax(view_r),
        to_jax(slots),
        to_jax(rows),
    )
    valid = np.asarray(fills.valid)
    n_diff = 0
    for t in range(T):
        _, ref, _ = re_.fill_quotes(p, ms_r, view_r, slots, noise_at(rows, t))
        n_diff += int((valid[t] != ref.valid).sum())
        np.testing.assert_allclose(np.asarray(fills.size)[t], ref.size, rtol=1e-5, atol=1e-6)
    assert n_diff == 0
    # Ladder in float32 vs the level-by-level reference
    sizes = rng.uniform(0, 60, 200)
    touch = rng.uniform(0.5, 20, 200)
    step = rng.uniform(0.001, 0.1, 200)
    lim = 300.0 + rng.uniform(-0.05, 1.0, 200)
    g = rng.uniform(0, 0.5, 200)
    f, a = jax.jit(
        jax.vmap(je.walk_ladder, in_axes=(None, 0, 0, None, 0, 0, 0, None)), static_argnums=7
    )(SIDE_BUY, sizes, lim, 300.0, touch, step, g, 10)
    for k in range(200):
        rf, ra = re_.walk_ladder(SIDE_BUY, sizes[k], lim[k], 300.0, touch[k], step[k], g[k], 10)
        np.testing.assert_allclose([float(f[k]), float(a[k])], [rf, ra], rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Passive fills (§3.5): probability, adverse selection, partial fills, crossing, latency
# ---------------------------------------------------------------------------------------------


def test_fill_probability_falls_with_distance_and_matches_model():
    deltas = np.array([0.0, 0.25, 0.5, 1.0, 2.0])  # per venue, USD from the mid
    dt_ms, a, k = 1000.0, 1.0, 1.5
    p = default_market_params(
        vol=0.0, basis_sigma=0.0, dt_ms=dt_ms, fill_a=a, fill_k=k, spread_base=5.0
    )
    _, (inp, view, mm, *_rest) = _run(p, _quiet_drive(np.broadcast_to(deltas[:, None], (N, 2))))
    filled = mm.valid[:, 1:].reshape(B, T - 1, N, 2)  # tick 0 has no resting quotes
    rate = filled.mean(axis=(0, 1, 3))
    want = 1.0 - np.exp(-a * np.exp(-k * deltas) * dt_ms / 1000.0)
    se = np.sqrt(want * (1 - want) / filled[..., 0, 0].size / 2)
    assert np.all(np.abs(rate - want) < 5 * se + 1e-12)
    assert np.all(np.diff(rate) < 0)
    # fills happen at the quote price, maker fee net of rebate, order id of the slot
    price = mm.price.reshape(B, T, N, 2)
    mid = view.mid[:, :, :, None]
    sgn = np.array([1.0, -1.0])
    ok = mm.valid.reshape(B, T, N, 2)
    np.testing.assert_allclose((mid - price)[ok] / np.broadcast_to(sgn, ok.shape)[ok],
                               np.broadcast_to(deltas[:, None], ok.shape)[ok], atol=1e-9)  # fmt: skip
    assert np.all(mm.purpose == PURPOSE_MM)
    fee = mm.fee_bps.reshape(B, T, N, 2)[..., 0]
    np.testing.assert_allclose(fee, np.broadcast_to([2.0, 1.5, 2.0, 2.0, 2.0], fee.shape))


def test_adverse_selection_quotes_the_market_moves_through_fill_more():
    p = default_market_params(
        vol=3.0, dt_ms=1000.0, fill_a=0.5, basis_sigma=0.0
    )  # σ·S ≈ 3 USD/tick
    _, (inp, view, mm, *_rest) = _run(p, _quiet_drive(0.5))
    filled = mm.valid.reshape(B, T, N, 2)[:, 1:]
    dm = np.diff(view.mid, axis=1)  # move into the fill tick
    toward = np.stack([dm < 0, dm > 0], axis=-1)  # bid: market falls; ask: market rises
    r_toward, r_away = filled[toward].mean(), filled[~toward].mean()
    assert r_toward > 2.0 * r_away
    # and the fill is a loss against the post-move mid more often than not
    px = mm.price.reshape(B, T, N, 2)[:, 1:]
    edge = (view.mid[:, 1:, :, None] - px) * np.array([1.0, -1.0])
    assert np.mean(edge[filled] < 0) > 0.5


def test_partial_fill_fraction_and_crossed_quotes_fill_fully():
    p = default_market_params(vol=0.0, basis_sigma=0.0, fill_frac_min=0.2, fill_frac_max=0.6)
    off = np.full((N, 2), 0.1)
    off[4] = -0.5  # venue 4 quotes through the touch (spread/2 ≈ 0.24): crossed, post-only rejects
    _, (inp, view, mm, ioc, r1, r2, rej) = _run(p, _quiet_drive(off, 2.0))
    assert rej[:, :, 4].all() and not rej[:, :, :4].any()
    frac = mm.size.reshape(B, T, N, 2)[mm.valid.reshape(B, T, N, 2)] / 2.0
    assert frac.min() >= 0.2 - 1e-12 and frac.max() <= 0.6 + 1e-12
    assert abs(frac.mean() - 0.4) < 5 * 0.4 / np.sqrt(12 * frac.size)
    assert not mm.valid.reshape(B, T, N, 2)[:, :, 4].any()  # rejected quotes never rest
    # A resting quote the market crosses fills in full with certainty (direct call)
    ms0 = rm.initial_market_state(p, STATIC)
    noise, _ = _noise(0)
    _, _, v0 = rm.market_step(
        p, ms0, noise_at(_at(noise, 0), 0), noise_at(identity_schedule(1, N), 0), 0, STATIC
    )
    slots = Slots(
        mm_has=np.ones((N, 2), bool),
        mm_price=np.stack([v0.ask + 0.01, v0.bid - 0.01], axis=1),
        mm_size=np.full((N, 2), 3.0),
        mm_ts_ms=np.full((N, 2), -10_000, np.int64),
        mm_id=np.arange(2 * N).reshape(N, 2),
    )
    for eng in (re_, je):
        with enable_x64():
            args = (p, ms0, v0, slots) if eng is re_ else to_jax((p, ms0, v0, slots))
            nz = noise_at(_at(noise, 0), 5)
            _, f, rep = eng.fill_quotes(*args, nz if eng is re_ else to_jax(nz))
        assert np.all(np.asarray(f.valid)) and np.allclose(np.asarray(f.size), 3.0)
        np.testing.assert_array_equal(np.asarray(rep.maker_fills), 2)


def test_latency_delays_quotes_and_iocs_and_busy_slot_rejects():
    dt = 250.0
    p = default_market_params(dt_ms=dt, vol=1.0)
    sched = identity_schedule(T, N, latency_ms=600.0)  # ceil(600/250) = 3 ticks
    d = _quiet_drive(0.05)
    d.q_place[:] = False
    d.q_place[10] = True  # quotes placed once at tick 10, resting afterwards
    d.e_valid[20, 1] = True  # exit on venue 1 at tick 20, another at 21 (busy ⇒ rejected)
    d.e_valid[21, 1] = True
    d.e_size[20:22, 1] = 2.0
    d.e_slip[20:22, 1] = 50.0  # wide limit: always fills at the book of the execution tick
    d.e_order[20:22, 1] = 0
    d.e_side[20:22] = SIDE_SELL
    _, (inp, view, mm, ioc, r1, r2, rej) = _run(p, d, sched)
    assert np.all(view.latency_ticks == 3)
    first_fill = np.argmax(mm.valid.reshape(B, T, 2 * N).any(axis=2), axis=1)
    assert first_fill.min() >= 14  # live at 10 + 3, resting over (13, 14]
    ex = ioc.valid[:, :, :N]
    assert ex[:, 23].any(axis=1).all() and ex.sum(axis=(1, 2)).max() == 1
    np.testing.assert_array_equal(r2.rejected[:, 21, 1], 1)
    # the fill is priced on the book of tick 23 (touch of that tick, 2 TAO < touch size)
    np.testing.assert_allclose(ioc.price[:, 23, 0], view.bid[:, 23, 1], rtol=1e-12)
    np.testing.assert_allclose(ioc.size[:, 23, 0], 2.0)
    assert np.all(ioc.purpose[:, :, :N] == PURPOSE_EXIT) and np.all(
        ioc.purpose[:, :, N:] == PURPOSE_HEDGE
    )


# ---------------------------------------------------------------------------------------------
# IOC ladder, post-only, outage, fees, FillBatch order, accounting hand-off
# ---------------------------------------------------------------------------------------------


def test_ladder_hand_values_and_slippage_grows_with_size_and_thin_depth():
    # touch 10 TAO, step 0.01, growth 0.1: 15 TAO = 10 @ P + 5 @ P + 0.01 ⇒ avg P + 1/300
    for eng in (re_, je):
        with enable_x64():
            f, a = eng.walk_ladder(SIDE_BUY, 15.0, 400.0, 300.0, 10.0, 0.01, 0.1, 10)
            np.testing.assert_allclose([float(f), float(a)], [15.0, 300.0 + 0.01 / 3.0], rtol=1e-12)
            f, a = eng.walk_ladder(SIDE_SELL, 30.0, 299.985, 300.0, 10.0, 0.01, 0.1, 10)
            np.testing.assert_allclose(
                [float(f), float(a)], [21.0, 300.0 - 0.11 / 21.0], rtol=1e-12
            )
            f, a = eng.walk_ladder(SIDE_BUY, 5.0, 299.99, 300.0, 10.0, 0.01, 0.1, 10)
            assert float(f) == 0.0  # limit below the touch: nothing, IOC cancelled
            avail = 10.0 * (10 + 0.1 * 45)  # whole 10-level ladder
            f, _ = eng.walk_ladder(SIDE_BUY, 1e6, 1e6, 300.0, 10.0, 0.01, 0.1, 10)
            np.testing.assert_allclose(float(f), avail, rtol=1e-12)
    with enable_x64():
        sizes = jnp.array([1.0, 5.0, 20.0, 50.0, 100.0])
        slip = {}
        for touch in (20.0, 5.0):
            _, avg = je.walk_ladder(SIDE_BUY, sizes, 1e6, 300.0, touch, 0.01, 0.1, 10)
            slip[touch] = np.asarray(avg) - 300.0
            assert np.all(np.diff(slip[touch]) >= 0) and slip[touch][-1] > slip[touch][0]
        assert np.all(slip[5.0][2:] > slip[20.0][2:]) and np.all(slip[5.0] >= slip[20.0])
    # through the simulator: a depth shock raises realised slippage of the same hedges
    d = _quiet_drive(0.5)
    d.q_place[:] = False
    d.h_valid[:] = True
    d.h_size[:] = 30.0
    d.h_slip[:] = 5.0
    shocked = identity_schedule(T, N).replace(depth_mult=np.full((T, N), 0.3))
    p = default_market_params()
    slip_n = _run(p, d)[1][5].slippage_usd.sum()
    slip_s = _run(p, d, shocked)[1][5].slippage_usd.sum()
    assert slip_s > 2.0 * slip_n > 0


def test_post_only_crossing_malformed_and_outage_rejected():
    view = _at(_run(default_market_params(), _quiet_drive())[1][1], 0)
    v = jax.tree.map(lambda x: x[0], view)  # tick 0 of episode 0
    v = v.replace(outage=np.array([False, False, False, False, True]))
    px = np.stack([v.ask - 0.01, v.bid + 0.01], axis=1)  # passive by one cent
    px[1, 0] = v.ask[1]  # buy at the ask: crosses
    px[2, 1] = v.bid[2] - 0.5  # sell through the bid: crosses
    size = np.ones((N, 2))
    size[3, 0] = 0.0  # malformed
    plan = OrderPlan(
        cancel=np.ones((N, 2), bool), place=np.ones((N, 2), bool), place_px=px, place_size=size
    )
    want = np.zeros((N, 2), bool)
    want[1, 0] = want[2, 1] = want[3, 0] = True
    want[4] = True  # outage venue
    np.testing.assert_array_equal(re_.post_only_rejects(v, plan), want)
    with enable_x64():
        np.testing.assert_array_equal(np.asarray(je.post_only_rejects(*to_jax((v, plan)))), want)
        plan2 = plan.replace(place=np.zeros((N, 2), bool))
        assert not np.asarray(je.post_only_rejects(*to_jax((v, plan2)))).any()


def test_outage_venue_rejects_iocs_and_gets_no_fills():
    out = np.zeros((T, N), bool)
    out[30:60, 2] = True
    sched = identity_schedule(T, N).replace(outage=out)
    d = _quiet_drive(0.0)
    d.h_valid[:, 2] = True
    d.h_size[:, 2] = 1.0
    d.h_slip[:, 2] = 1.0
    p = default_market_params(vol=1.0)
    _, (inp, view, mm, ioc, r1, r2, rej) = _run(p, d, sched)
    assert not inp.book.updated[:, 30:60, 2].any() and inp.book.updated[:, 60:, 2].all()
    assert not ioc.valid[:, 30:60, N + 2].any() and ioc.valid[:, 60:, N + 2].all()
    np.testing.assert_array_equal(r2.rejected[:, 30:60, 2], 1)
    assert not mm.valid.reshape(B, T, N, 2)[:, 30:60, 2].any()
    assert rej[:, 30:60, 2].all()
    assert mm.valid.reshape(B, T, N, 2)[:, 61:, 2].any()  # recovers after the window


def test_fees_report_and_exit_plan_order():
    params, scheds, drives = _parity_cases(31)
    (ms, _), (inp, view, mm, ioc, r1, r2, rej) = _run(params[0], drives[0], seed=31)
    p = params[0]
    d = drives[0]
    # fees: MM pay maker − rebate, IOC pay taker; the report sums fee_bps/1e4·price·size
    maker = np.asarray(p.maker_fee_bps) - np.asarray(p.maker_rebate_bps)
    fee = mm.fee_bps.reshape(B, T, N, 2)[..., 0]
    np.testing.assert_allclose(fee, np.broadcast_to(maker, fee.shape))
    taker = np.asarray(p.taker_fee_bps)
    assert np.all(np.isin(ioc.fee_bps[ioc.valid], taker))
    fee_usd = lambda f: np.where(f.valid, f.fee_bps / 1e4 * f.price * f.size, 0.0)
    np.testing.assert_allclose(fee_usd(mm).sum(), r1.fees_usd.sum(), rtol=1e-12)
    np.testing.assert_allclose(fee_usd(ioc).sum(), r2.fees_usd.sum(), rtol=1e-12)
    np.testing.assert_array_equal(r2.taker_fills.sum(axis=2), ioc.valid.sum(axis=2))
    # exits appear in plan order among the filled ones (latency 0 here: executed same tick)
    for b in range(3):
        for t in range(T):
            slots = np.nonzero(ioc.valid[b, t, :N])[0]
            venues = ioc.venue[b, t, slots]
            assert list(slots) == list(range(len(slots)))
            assert np.all(np.diff(d.e_order[t, venues]) > 0)


def test_fill_batches_apply_with_strategy_accounting_like_the_venue_account():
    """FillBatch → STRATEGY §5.3 apply_fills gives the venue account's positions and PnL."""
    params, scheds, drives = _parity_cases(41)
    p = params[0].replace(funding_8h=np.zeros(N))
    sched = scheds[0].replace(funding_add=np.zeros((T, N)))
    (ms, _), (inp, view, mm, ioc, r1, r2, rej) = _run(p, drives[0], sched, seed=41)
    cfg = make_config("balanced")
    st = init_state(cfg)
    for t in range(T):
        for fills in (mm, ioc):
            st = racc.apply_fills(st, _at(_at(fills, 0), t), int(view.now_ms[0, t]), cfg)
    np.testing.assert_allclose(
        st.venues.position_tao, ms.account.position_tao[0], rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(
        st.venues.avg_entry_price, ms.account.entry_price[0], rtol=1e-9, atol=1e-9
    )
    pnl = (ms.account.collateral_usd[0] - np.asarray(p.collateral_usd)).sum()
    np.testing.assert_allclose(st.daily_realised_pnl, pnl, rtol=1e-9, atol=1e-6)
    assert int(mm.valid[0].sum()) > 10 and int(ioc.valid[0].sum()) > 10


def test_execute_equals_quotes_then_ioc():
    params, scheds, drives = _parity_cases(51)
    noise, ep = _noise(51)
    p = params[0].replace(depth_usd=np.full(N, 10_000.0))
    ms = rm.initial_market_state(p, STATIC)
    sched = noise_at(identity_schedule(1, N), 0)
    ms, _, view = rm.market_step(p, ms, noise_at(_at(noise, 0), 0), sched, 0, STATIC)
    rng = np.random.default_rng(1)
    slots = Slots(
        mm_has=np.ones((N, 2), bool),
        mm_price=view.mid[:, None] + rng.uniform(-1, 1, (N, 2)),
        mm_size=np.ones((N, 2)),
        mm_ts_ms=np.full((N, 2), -10_000_000, np.int64),
        mm_id=np.arange(2 * N).reshape(N, 2),
    )
    ev = np.array([True, False, True, True, False])
    exit_plan = ExitPlan(
        valid=ev, size=np.full(N, 3.0), price=view.bid - 0.3, side=np.asarray(SIDE_SELL),
        order=np.array([2, N, 0, 1, N]), score=np.zeros(N), base_edge=np.zeros(N), candidate=ev,
    )  # fmt: skip
    hedge_plan = _hedge_plan(np, ~ev, np.full(N, 2.0), view.ask + 0.3, np.asarray(SIDE_BUY))
    nz = noise_at(_at(noise, 0), 1)
    a = re_.execute(p, ms, view, slots, exit_plan, hedge_plan, nz, STATIC)
    ms1, f1, q1 = re_.fill_quotes(p, ms, view, slots, nz)
    ms2, f2, q2 = re_.execute_ioc(p, ms1, view, exit_plan, hedge_plan, STATIC)
    _compare(a, (ms2, re_.concat_fills(f1, f2), re_.add_reports(q1, q2)), "ref: ")
    np.testing.assert_array_equal(a[1].venue[2 * N : 3 * N][a[1].valid[2 * N : 3 * N]], [2, 3, 0])
    with enable_x64():
        j = je.execute(*to_jax((p, ms, view, slots, exit_plan, hedge_plan, nz)), STATIC)
    _compare(j, a, "jax: ")
    assert a[1].valid.shape == (4 * N,)
    assert dataclasses.is_dataclass(a[2])
