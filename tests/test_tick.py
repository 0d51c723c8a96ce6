"""The composed strategy tick (STRATEGY.md §17.3): `strategy_tick`, both engines.

Parity tests (`-k parity`) run 240 random valid states (every edge case of
`paraphina_jax.testing.CASES`: one fresh venue, all stale, one disabled venue, flat and flipped
positions, extreme volatility, killed, Warning, uninitialised filter) with random market inputs
and random cadence counters through one vmapped jit call and through the NumPy reference tick,
state by state, and compare every leaf of the new state and of the `TickOutput`.

Tolerances (docs/parity.md): x64 JAX vs reference — integer and boolean leaves exactly,
floating leaves to rtol 1e-9 / atol 1e-12. float32 JAX vs reference — every discrete leaf equal
on ≥ 97 % of the states; on those states prices to rtol 1e-6 except ≤ 1 % of them one tick
(0.01 USD) apart (a snap rounding to the neighbouring tick), sizes to one lot (0.01 TAO),
per-tick volatilities and the Kalman variance to 1e-6 absolute, everything else to rtol 2e-2
plus atol 1e-2 (USD, TAO, σ multiples).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from paraphina_jax.config import make_config, reference_parity_flags
from paraphina_jax.config.types import REGIME_HARDLIMIT
from paraphina_jax.reference import tick as rt
from paraphina_jax.strategy import tick as jt
from paraphina_jax.strategy.types import Controls, StrategyState, TickOptions, identity_controls
from paraphina_jax.testing import (
    CASES,
    NOW_MS,
    random_controls,
    random_inputs,
    random_states,
    stack,
    to_jax,
)
from paraphina_jax.utils.x64 import enable_x64

CFG = make_config("balanced")
N = CFG.n_venues
N_PARITY = 240
IDENT = identity_controls(N)
LOOPS = TickOptions()
# the Monte Carlo / RL style: every phase every tick, quoting without a clock, [IMPL] flags
IMPL = dataclasses.replace(make_config(parity=True), flags=reference_parity_flags())
EVERY = TickOptions(cadence="every_tick", use_clock=False, h1_account_quirks=True)

PRICE_LEAVES = ("bid_px", "ask_px", "place_px", "price", "mm_price", "mid", "fair_value")
SIZE_LEAVES = ("bid_size", "ask_size", "place_size", "size", "mm_size", "alloc")
SMALL_LEAVES = ("local_vol_short", "local_vol_long", "fv_short_vol", "fv_long_vol")
SMALL_LEAVES += ("sigma_eff", "kf_p", "kf_x_hat", "prev_ln_mid")


def _cadence(rng: np.random.Generator, s: StrategyState) -> StrategyState:
    """Random catch-up counters (risk / flush / hedge due or not at NOW_MS); a third of the
    states get 4× their positions so that the global inventory leaves the hedge band."""
    if rng.random() < 0.33:
        s = s.replace(venues=s.venues.replace(position_tao=4.0 * s.venues.position_tao))
    return s.replace(
        next_risk_ms=np.int64(NOW_MS + rng.choice([-250, 0, 250, 2_750])),
        last_flush_ms=np.int64(NOW_MS - rng.choice([0, 750, 1_000, 1_000, 1_250, 2_000])),
        next_hedge_ms=np.int64(NOW_MS + rng.choice([-250, 0, 0, 250])),
    )


@functools.lru_cache(maxsize=2)
def _cases(seed: int) -> tuple[Any, Any, Any, list[bool]]:
    """(states, inputs, controls, identity mask), N_PARITY each, as stacked NumPy trees."""
    rng = np.random.default_rng(seed)
    states = [_cadence(rng, s) for s in random_states(seed, CFG, N_PARITY)]
    inputs = [random_inputs(rng, s, CFG, NOW_MS) for s in states]
    ident = [i % 3 == 0 for i in range(N_PARITY)]
    ctls = [IDENT if k else random_controls(rng, N) for k in ident]
    return stack(states), stack(inputs), stack(ctls), ident


def _rows(tree: Any, i: int) -> Any:
    return jax.tree.map(lambda x: np.asarray(x)[i], tree)


def _reference(cfg: Any, opts: TickOptions, seed: int) -> Any:
    states, inputs, ctls, _ = _cases(seed)
    outs = [
        rt.strategy_tick(_rows(states, i), _rows(inputs, i), _rows(ctls, i), cfg, opts)
        for i in range(N_PARITY)
    ]
    return stack(outs)


@functools.cache
def _batched_fn(opts: TickOptions, x64: bool) -> Any:
    """One jitted, vmapped tick per (options, precision); it must trace exactly once."""

    @chex.assert_max_traces(n=1)
    def tick(s: StrategyState, i: Any, c: Controls, cfg: Any) -> Any:
        return jt.strategy_tick(s, i, c, cfg, opts)

    return jax.jit(jax.vmap(tick, in_axes=(0, 0, 0, None)))


def _jax(cfg: Any, opts: TickOptions, seed: int) -> Any:
    states, inputs, ctls, _ = _cases(seed)
    x64 = jnp.zeros(()).dtype == jnp.float64
    out = _batched_fn(opts, x64)(to_jax(states), to_jax(inputs), to_jax(ctls), cfg)
    return jax.tree.map(np.asarray, out)


@functools.cache
def _jax_x64_default() -> Any:
    with enable_x64():
        return _jax(CFG, LOOPS, 1)


def _leaves(tree: Any) -> list[tuple[str, np.ndarray]]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [(jax.tree_util.keystr(p), np.asarray(x)) for p, x in flat]


def _assert_x64_parity(got: Any, ref: Any) -> None:
    got_l, ref_l = _leaves(got), _leaves(ref)
    assert [n for n, _ in got_l] == [n for n, _ in ref_l]
    for (name, g), (_, r) in zip(got_l, ref_l):
        assert g.shape == r.shape, name
        if r.dtype.kind in "biu":
            np.testing.assert_array_equal(g, r, err_msg=name)
        else:
            np.testing.assert_allclose(g, r, rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=name)


def _coverage(ref: Any, ident: list[bool]) -> None:
    """The random cases exercise every phase of the tick."""
    _, out = ref
    assert out.quotes.bid_valid.any(axis=1).sum() >= 30
    assert out.orders.place.any(axis=(1, 2)).sum() >= 30 and out.orders.cancel.any()
    assert out.exits.valid.any(axis=1).sum() >= 5
    assert out.hedge.valid.any(axis=1).sum() >= 5
    assert out.kill_transition.sum() >= 5
    for flag in (out.risk_due, out.exit_due, out.hedge_due):
        assert 0 < flag.sum() < N_PARITY
    assert 0 < sum(ident) < N_PARITY


# ---------------------------------------------------------------------------------------------
# Parity: the whole tick, JAX vs the NumPy reference
# ---------------------------------------------------------------------------------------------


def test_tick_parity_x64_default():
    got = _jax_x64_default()
    ref = _reference(CFG, LOOPS, 1)
    _coverage(ref, _cases(1)[3])
    _assert_x64_parity(got, ref)


@pytest.mark.slow
def test_tick_parity_x64_impl_every_tick():
    with enable_x64():
        got = _jax(IMPL, EVERY, 2)
    ref = _reference(IMPL, EVERY, 2)
    _, out = ref
    assert out.hedge.valid.any(axis=1).sum() >= 5 and out.exits.valid.any(axis=1).sum() >= 5
    _assert_x64_parity(got, ref)


@pytest.mark.slow
def test_tick_parity_float32():
    got = _jax(CFG, LOOPS, 1)
    ref = _reference(CFG, LOOPS, 1)
    got_l, ref_l = _leaves(got), _leaves(ref)
    same = np.ones(N_PARITY, bool)
    for (_, g), (_, r) in zip(got_l, ref_l):
        if r.dtype.kind in "biu":
            same &= (g == r).reshape(N_PARITY, -1).all(axis=1)
    assert same.mean() >= 0.97, same.mean()
    for (name, g), (_, r) in zip(got_l, ref_l):
        if r.dtype.kind in "biu":
            continue
        assert g.dtype == np.float32, name
        g, r = g[same].astype(np.float64), r[same]
        leaf = name.rsplit(".", 1)[-1]
        if leaf in PRICE_LEAVES:
            # snapped prices: float32 can land on the neighbouring 0.01 tick (rarely)
            off = ~np.isclose(g, r, rtol=1e-6, atol=0)
            assert off.mean() <= 0.01, name
            np.testing.assert_allclose(g[off], r[off], atol=0.01 + 1e-4, err_msg=name)
        elif leaf in SIZE_LEAVES:
            np.testing.assert_allclose(g, r, atol=0.01 + 1e-5, err_msg=name)
        elif leaf in SMALL_LEAVES:
            np.testing.assert_allclose(g, r, atol=1e-6, err_msg=name)
        else:
            np.testing.assert_allclose(g, r, rtol=2e-2, atol=1e-2, equal_nan=True, err_msg=name)


# ---------------------------------------------------------------------------------------------
# vmap == loop, one compilation, bitwise determinism, identity controls == no controls
# ---------------------------------------------------------------------------------------------


def test_vmap_equals_loop_single_trace_determinism_and_identity_controls():
    """vmap == a Python loop of the unbatched jitted tick (discrete leaves exactly, floating
    leaves to 1e-15 relative: XLA fuses the batched and the unbatched program differently, e.g.
    one more fused multiply-add, which moves a rare result by one ulp); one trace per program;
    the same program twice gives bit-identical results; identity controls and no controls give
    bit-identical results in both engines."""
    states, inputs, ctls, ident = _cases(1)
    batched = _jax_x64_default()
    rows = range(9)
    with enable_x64():
        chex.clear_trace_counter()

        @chex.assert_max_traces(n=1)
        def one(s: StrategyState, i: Any, c: Controls, cfg: Any) -> Any:
            return jt.strategy_tick(s, i, c, cfg), jt.strategy_tick(s, i, None, cfg)

        f = jax.jit(one)
        loop, none = zip(
            *[
                jax.tree.map(
                    np.asarray,
                    f(
                        to_jax(_rows(states, k)),
                        to_jax(_rows(inputs, k)),
                        to_jax(_rows(ctls, k)),
                        CFG,
                    ),
                )
                for k in rows
            ]
        )
        again = _jax(CFG, LOOPS, 1)  # same program, same data: no retrace (max_traces n=1)
    chex.assert_trees_all_equal(again, batched)  # bitwise determinism
    first = jax.tree.map(lambda x: x[: len(rows)], batched)
    for (name, g), (_, r) in zip(_leaves(stack(list(loop))), _leaves(first)):
        if r.dtype.kind in "biu":
            np.testing.assert_array_equal(g, r, err_msg=name)
        else:
            np.testing.assert_allclose(g, r, rtol=1e-15, atol=1e-300, err_msg=name)
    for k in rows:
        if ident[k]:
            chex.assert_trees_all_equal(none[k], loop[k])  # identity == no controls, JAX
    for k in np.flatnonzero(ident)[:20]:  # the reference engine too
        a = rt.strategy_tick(_rows(states, k), _rows(inputs, k), None, CFG)
        b = rt.strategy_tick(_rows(states, k), _rows(inputs, k), IDENT, CFG)
        chex.assert_trees_all_equal(a, b)


# ---------------------------------------------------------------------------------------------
# Behaviour of the composition (reference engine; the parity tests carry it to JAX)
# ---------------------------------------------------------------------------------------------


def test_killed_tick_emits_only_cancels():
    """§19.1: once the kill switch is latched no MM, exit or hedge order is emitted."""
    states, inputs, ctls, _ = _cases(1)
    new, out = _reference(CFG, LOOPS, 1)
    got_new, got = _jax_x64_default()
    killed = new.kill_switch
    assert killed.sum() >= 20
    for o in (out, got):
        assert not o.orders.place[killed].any()
        assert not o.quotes.bid_valid[killed].any() and not o.quotes.ask_valid[killed].any()
        assert not o.exits.valid[killed].any() and not o.hedge.valid[killed].any()
        # every resting MM order of a killed state is cancelled
        np.testing.assert_array_equal(o.orders.cancel[killed], states.venues.mm_has[killed])
    assert (new.risk_regime[killed] == REGIME_HARDLIMIT).all()
    was = states.kill_switch.astype(bool)
    np.testing.assert_array_equal(new.kill_reason[was], states.kill_reason[was])  # §19.2
    np.testing.assert_array_equal(got_new.kill_handled, killed | states.kill_handled)
    np.testing.assert_array_equal(new.tick, states.tick + 1)
    # the "killed" case is killed whatever the inputs; others latch on this tick's risk step
    killed_case = np.array([CASES[i % len(CASES)] == "killed" for i in range(N_PARITY)])
    assert killed[killed_case].all() and (killed & ~killed_case).any()


def test_cadence_counters_advance_like_the_spec():
    """§17.3: risk_due = now ≥ next_risk; flush_due = now − last_flush ≥ FILL_AGG; hedge_due =
    flush_due and now ≥ next_hedge; counters advance only when due (and not killed)."""
    states, _, _, _ = _cases(1)
    new, out = _reference(CFG, LOOPS, 1)
    risk = NOW_MS >= states.next_risk_ms
    flush = NOW_MS - states.last_flush_ms >= 1_000
    hedge = flush & (NOW_MS >= states.next_hedge_ms)
    np.testing.assert_array_equal(out.risk_due, risk)
    np.testing.assert_array_equal(out.exit_due, flush)
    np.testing.assert_array_equal(out.hedge_due, hedge)
    np.testing.assert_array_equal(new.next_risk_ms, states.next_risk_ms + 3_000 * risk)
    live = ~new.kill_switch
    np.testing.assert_array_equal(
        new.last_flush_ms, np.where(flush & live, NOW_MS, states.last_flush_ms)
    )
    np.testing.assert_array_equal(new.next_hedge_ms, states.next_hedge_ms + 500 * (hedge & live))
    assert not out.exits.valid[~flush].any() and not out.hedge.valid[~hedge].any()
