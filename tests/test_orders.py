"""MM order management (STRATEGY.md §13, SIMULATION.md §13.5), both engines.

Unit tests run the NumPy reference engine and the JAX engine (under x64) on the same cases.
Parity tests (`-k parity`) batch 240 random states with random desired quotes into one vmapped
jit call (plan + apply chained).

Tolerances: x64 JAX vs reference: masks, ids and slot ints exactly; prices and sizes exactly
(they are copied, never computed). float32 JAX vs reference: the masks agree on ≥ 99.5 % of the
(state, venue, side) slots — the only differences are float32 roundings at the dangerous /
tolerance boundaries (the generated quotes sit exactly on 1-tick boundaries on purpose) — and
placed prices / sizes agree to rtol 1e-6 where both engines place.
"""

from __future__ import annotations

import functools
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paraphina_jax.config import apply_overrides, make_config
from paraphina_jax.reference import orders as rord
from paraphina_jax.strategy import orders as jord
from paraphina_jax.strategy.types import OrderPlan, QuoteSet, StrategyState, init_state
from paraphina_jax.testing import NOW_MS, random_states, stack, to_jax
from paraphina_jax.utils.x64 import enable_x64

CFG = make_config("balanced")
N = CFG.n_venues
ENGINES = ("ref", "jax")
N_PARITY = 240
NOW = 50_000


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _np_tree(tree: Any) -> Any:
    return jax.tree_util.tree_map(np.asarray, tree)


@functools.cache
def _jitted(name: str) -> Any:
    return jax.jit(getattr(jord, name))


def _call(engine: str, name: str, *args: Any) -> Any:
    """Run `name` in `engine`; JAX under x64 with NumPy results."""
    if engine == "ref":
        return getattr(rord, name)(*args)
    with enable_x64():
        jargs = [to_jax(a) if not isinstance(a, int) else jnp.asarray(a) for a in args]
        return _np_tree(_jitted(name)(*jargs))


def _state(
    mid: float = 100.0,
    spread: float = 0.2,
    has_mid: bool = True,
    slots: dict[tuple[int, int], tuple[float, float, int, int]] | None = None,
    next_id: int = 10,
    kill: bool = False,
) -> StrategyState:
    """Fresh state, same book on every venue, resting orders `{(venue, side): (px, sz, ts, id)}`."""
    s = init_state(CFG, 0, xp=np)
    v = s.venues
    has = np.zeros((N, 2), bool)
    px = np.zeros((N, 2))
    sz = np.zeros((N, 2))
    ts = np.zeros((N, 2), np.int64)
    oid = np.zeros((N, 2), np.int64)
    for (i, k), (p, q, t, o) in (slots or {}).items():
        has[i, k], px[i, k], sz[i, k], ts[i, k], oid[i, k] = True, p, q, t, o
    venues = v.replace(
        mid=np.full(N, mid),
        spread=np.full(N, spread),
        has_mid=np.full(N, has_mid),
        mm_has=has,
        mm_price=px,
        mm_size=sz,
        mm_ts_ms=ts,
        mm_id=oid,
    )
    return s.replace(venues=venues, next_order_id=np.int64(next_id), kill_switch=np.bool_(kill))


def _quotes(desired: dict[tuple[int, int], tuple[float, float]]) -> QuoteSet:
    """Desired quotes `{(venue, side): (px, size)}`; everything else absent."""
    px = np.zeros((N, 2))
    sz = np.zeros((N, 2))
    ok = np.zeros((N, 2), bool)
    for (i, k), (p, q) in desired.items():
        px[i, k], sz[i, k], ok[i, k] = p, q, True
    z = np.zeros(N)
    return QuoteSet(
        bid_px=px[:, 0],
        ask_px=px[:, 1],
        bid_size=sz[:, 0],
        ask_size=sz[:, 1],
        bid_valid=ok[:, 0],
        ask_valid=ok[:, 1],
        bid_gate=np.where(ok[:, 0], 0, 13).astype(np.int64),
        ask_gate=np.where(ok[:, 1], 0, 13).astype(np.int64),
        reservation=z,
        half_spread=z,
        edge_bid=z,
        edge_ask=z,
    )


def _plan(engine: str, state: StrategyState, quotes: QuoteSet, now: int = NOW, cfg=CFG):
    return _call(engine, "plan_orders", state, quotes, now, cfg)


# ---------------------------------------------------------------------------------------------
# §13 rules
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_place_when_no_current_and_ids_deterministic(engine):
    state = _state(next_id=10)
    desired = {(0, 0): (99.5, 1.0), (0, 1): (100.5, 2.0), (1, 1): (100.6, 3.0)}
    desired |= {(3, 0): (99.4, 4.0), (3, 1): (100.4, 5.0)}
    plan = _plan(engine, state, _quotes(desired))
    assert not np.asarray(plan.cancel).any()
    expect = np.zeros((N, 2), bool)
    for key in desired:
        expect[key] = True
    np.testing.assert_array_equal(plan.place, expect)
    assert float(plan.place_px[1, 1]) == 100.6 and float(plan.place_size[3, 1]) == 5.0
    new, ids = _call(engine, "apply_order_plan", state, plan, NOW, CFG)
    # emission order: venue ascending, buy then sell
    want_ids = np.full((N, 2), -1)
    want_ids[0] = [10, 11]
    want_ids[1, 1] = 12
    want_ids[3] = [13, 14]
    np.testing.assert_array_equal(ids, want_ids)
    assert int(new.next_order_id) == 15
    np.testing.assert_array_equal(new.venues.mm_has, expect)
    np.testing.assert_array_equal(np.asarray(new.venues.mm_id)[expect], want_ids[expect])
    assert (np.asarray(new.venues.mm_ts_ms)[expect] == NOW).all()
    assert float(new.venues.mm_price[0, 1]) == 100.5 and float(new.venues.mm_size[3, 0]) == 4.0


@pytest.mark.parametrize("engine", ENGINES)
def test_young_order_not_replaced_old_one_replaced(engine):
    # book 99.9 / 100.1, tick 0.01: a bid at 99.5 is safely passive.
    for age, replaced in ((100, False), (499, False), (500, True), (5_000, True)):
        state = _state(slots={(2, 0): (99.5, 1.0, NOW - age, 7)})
        plan = _plan(engine, state, _quotes({(2, 0): (99.7, 1.0)}))  # 20 ticks away
        assert bool(plan.cancel[2, 0]) == replaced and bool(plan.place[2, 0]) == replaced
        assert int(np.asarray(plan.cancel).sum() + np.asarray(plan.place).sum()) == 2 * replaced


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "desired, replaced",
    [
        ((99.505, 1.0), False),  # half a tick: within PRICE_TOL_TICKS = 1
        ((99.52, 1.0), True),  # two ticks
        ((99.5, 1.05), False),  # |Δs|/s_des = 0.048 ≤ 0.10
        ((99.5, 1.2), True),  # 0.2/1.2 = 0.167 > 0.10
        ((99.5, 0.005), True),  # denominator max(s_des, lot) = 0.01: 0.995/0.01 > 0.10
    ],
)
def test_tolerances_on_old_orders(engine, desired, replaced):
    state = _state(slots={(1, 0): (99.5, 1.0, NOW - 10_000, 3)})
    plan = _plan(engine, state, _quotes({(1, 0): desired}))
    assert bool(plan.cancel[1, 0]) == replaced and bool(plan.place[1, 0]) == replaced
    if replaced:
        assert float(plan.place_px[1, 0]) == desired[0]


@pytest.mark.parametrize("engine", ENGINES)
def test_dangerous_replaced_immediately_d25(engine):
    # young (10 ms) orders identical to the desired ones, but too close to the touch
    slots = {(0, 0): (99.95, 1.0, NOW - 10, 1), (0, 1): (100.05, 1.0, NOW - 10, 2)}
    slots |= {(1, 0): (99.5, 1.0, NOW - 10, 3)}  # safe and young: kept
    state = _state(slots=slots)
    quotes = _quotes({(0, 0): (99.95, 1.0), (0, 1): (100.05, 1.0), (1, 0): (99.5, 1.0)})
    plan = _plan(engine, state, quotes)
    assert plan.cancel[0].all() and plan.place[0].all()
    assert not plan.cancel[1, 0] and not plan.place[1, 0]
    # D25 spec option: a dangerous order within both tolerances is kept
    cfg = apply_overrides(CFG, {"flags.order_keep_dangerous_in_tol": True})
    plan = _plan(engine, state, quotes, cfg=cfg)
    assert not np.asarray(plan.cancel).any() and not np.asarray(plan.place).any()
    # ... but still bypasses the lifetime when out of tolerance
    plan = _plan(engine, state, _quotes({(0, 0): (99.7, 1.0)}), cfg=cfg)
    assert plan.cancel[0, 0] and plan.place[0, 0] and plan.cancel[0, 1] and not plan.place[0, 1]


@pytest.mark.parametrize("engine", ENGINES)
def test_dangerous_boundaries_exact(engine):
    # tick 0.25 and a 1.0 spread: touches 99.5 / 100.5, all sums exact in binary.
    cfg = apply_overrides(CFG, {"venues.tick_size": 0.25})
    slots = {
        (0, 0): (99.25, 1.0, NOW - 10, 1),  # bid − tick: not dangerous (strict >)
        (1, 0): (99.5, 1.0, NOW - 10, 2),  # at the bid: dangerous
        (2, 1): (100.75, 1.0, NOW - 10, 3),  # ask + tick: not dangerous (strict <)
        (3, 1): (100.5, 1.0, NOW - 10, 4),  # at the ask: dangerous
    }
    state = _state(mid=100.0, spread=1.0, slots=slots)
    got = _call(engine, "dangerous_mask", state, cfg)
    assert not got[0, 0] and got[1, 0] and not got[2, 1] and got[3, 1]
    # tight book (spread = tick): a buy at bid is also ≥ ask − tick
    state = _state(mid=100.0, spread=0.25, slots={(0, 0): (99.625, 1.0, NOW, 1)})
    assert not _call(engine, "dangerous_mask", state, cfg)[0, 0]
    state = _state(mid=100.0, spread=0.25, slots={(0, 0): (99.875, 1.0, NOW, 1)})
    assert _call(engine, "dangerous_mask", state, cfg)[0, 0]


@pytest.mark.parametrize("engine", ENGINES)
def test_unknown_book_is_dangerous(engine):
    state = _state(has_mid=False, slots={(4, 1): (101.0, 1.0, NOW - 10, 9)})
    plan = _plan(engine, state, _quotes({(4, 1): (101.0, 1.0)}))
    assert plan.cancel[4, 1] and plan.place[4, 1]
    state = _state(mid=np.nan, slots={(4, 1): (101.0, 1.0, NOW - 10, 9)})
    assert _call(engine, "dangerous_mask", state, CFG)[4, 1]


@pytest.mark.parametrize("engine", ENGINES)
def test_desired_absent_cancels(engine):
    state = _state(slots={(2, 1): (100.5, 1.0, NOW - 10, 5), (3, 0): (99.5, 1.0, NOW, 6)})
    plan = _plan(engine, state, _quotes({(3, 0): (99.5, 1.0)}))
    assert plan.cancel[2, 1] and not plan.place[2, 1]
    assert not plan.cancel[3, 0] and not plan.place[3, 0]
    new, ids = _call(engine, "apply_order_plan", state, plan, NOW, CFG)
    assert not new.venues.mm_has[2, 1] and new.venues.mm_has[3, 0]
    assert (np.asarray(ids) == -1).all() and int(new.next_order_id) == 10


@pytest.mark.parametrize("engine", ENGINES)
def test_kill_emits_only_cancels(engine):
    slots = {(i, k): (99.0 + k * 2, 1.0, NOW - 10_000, i * 2 + k) for i in range(N) for k in (0, 1)}
    del slots[(2, 0)]
    state = _state(slots=slots, kill=True)
    desired = {(i, k): (98.0 + k * 4, 3.0) for i in range(N) for k in (0, 1)}
    plan = _plan(engine, state, _quotes(desired))
    np.testing.assert_array_equal(plan.cancel, state.venues.mm_has)
    assert not np.asarray(plan.place).any()
    new, ids = _call(engine, "apply_order_plan", state, plan, NOW, CFG)
    assert not np.asarray(new.venues.mm_has).any() and (np.asarray(ids) == -1).all()


@pytest.mark.parametrize("engine", ENGINES)
def test_replace_is_cancel_then_place_with_new_id(engine):
    state = _state(slots={(1, 1): (100.5, 1.0, NOW - 1_000, 77)}, next_id=100)
    plan = _plan(engine, state, _quotes({(0, 0): (99.0, 1.0), (1, 1): (100.9, 1.5)}))
    assert plan.cancel[1, 1] and plan.place[1, 1] and plan.place[0, 0]
    new, ids = _call(engine, "apply_order_plan", state, plan, NOW + 5, CFG)
    assert int(ids[0, 0]) == 100 and int(ids[1, 1]) == 101
    assert int(new.venues.mm_id[1, 1]) == 101 and float(new.venues.mm_price[1, 1]) == 100.9
    assert int(new.venues.mm_ts_ms[1, 1]) == NOW + 5 and int(new.next_order_id) == 102
    cleared = _call(engine, "cancel_all", new)
    assert not np.asarray(cleared.venues.mm_has).any()
    assert int(cleared.next_order_id) == 102


# ---------------------------------------------------------------------------------------------
# Parity: random states and desired quotes, one vmapped jit call
# ---------------------------------------------------------------------------------------------


def _random_quotes(
    rng: np.random.Generator, state: StrategyState, boundaries: bool = True
) -> QuoteSet:
    """Desired quotes near the resting ones: equal, on the 1-tick boundary, half a tick, two
    ticks, +10 % / +50 % size, or random sizes. `boundaries=False` leaves out the exact 1-tick
    boundary (a coin flip in float32)."""
    v = state.venues
    mid = np.where(v.has_mid, v.mid, 250.0)
    base_px = np.where(v.mm_has, v.mm_price, np.round((mid[:, None] + [-0.5, 0.5]) / 0.01) * 0.01)
    base_sz = np.where(v.mm_has, v.mm_size, 1.0)
    kind = rng.choice([0, 1, 2, 3, 4, 5] if boundaries else [0, 3, 4, 5], (N, 2))
    tick = np.asarray(CFG.venues.tick_size)[:, None]
    px = base_px + np.choose(kind, [0 * base_px, tick, -tick, 0.5 * tick, 2 * tick, 0 * base_px])
    sz = base_sz * np.choose(kind, [1.0, 1.0, 1.0, 1.1, 1.0, 1.5])
    sz = np.where(rng.random((N, 2)) < 0.15, np.round(rng.uniform(0.01, 5.0, (N, 2)), 2), sz)
    ok = rng.random((N, 2)) < 0.75
    z = np.zeros(N)
    return QuoteSet(
        bid_px=px[:, 0],
        ask_px=px[:, 1],
        bid_size=sz[:, 0],
        ask_size=sz[:, 1],
        bid_valid=ok[:, 0],
        ask_valid=ok[:, 1],
        bid_gate=np.zeros(N, np.int64),
        ask_gate=np.zeros(N, np.int64),
        reservation=z,
        half_spread=z,
        edge_bid=z,
        edge_ask=z,
    )


@functools.lru_cache(maxsize=2)
def _cases(boundaries: bool = True) -> tuple[Any, Any, np.ndarray]:
    states = random_states(2024, CFG, N_PARITY)
    rng = np.random.default_rng(7)
    quotes = [_random_quotes(rng, s, boundaries) for s in states]
    now = NOW_MS + rng.integers(0, 700, N_PARITY)  # straddles MIN_QUOTE_LIFETIME_MS
    return states, quotes, now


def _chain_ref(state, quotes, now, cfg):
    plan = rord.plan_orders(state, quotes, now, cfg)
    new, ids = rord.apply_order_plan(state, plan, now, cfg)
    return plan, new, ids


def _chain_jax(state, quotes, now, cfg):
    plan = jord.plan_orders(state, quotes, now, cfg)
    new, ids = jord.apply_order_plan(state, plan, now, cfg)
    return plan, new, ids


def _batched(cfg: Any, boundaries: bool = True) -> tuple[Any, Any]:
    states, quotes, now = _cases(boundaries)
    ref = stack([_chain_ref(s, q, int(t), cfg) for s, q, t in zip(states, quotes, now)])
    f = jax.jit(jax.vmap(_chain_jax, in_axes=(0, 0, 0, None)))
    got = _np_tree(f(to_jax(stack(states)), to_jax(stack(quotes)), jnp.asarray(now), cfg))
    return got, ref


@pytest.mark.parametrize("spec_d25", [False, True])
def test_parity_x64(spec_d25):
    cfg = apply_overrides(CFG, {"flags.order_keep_dangerous_in_tol": spec_d25})
    with enable_x64():
        got, ref = _batched(cfg)
    chex.assert_trees_all_equal(got, ref)  # everything is copied or discrete: exact
    plan = ref[0]
    # the cases exercise every branch
    assert plan.cancel.sum() > 100 and plan.place.sum() > 100
    assert (plan.cancel & plan.place).sum() > 50 and (plan.cancel & ~plan.place).sum() > 50


def test_parity_float32():
    got, ref = _batched(CFG, boundaries=False)
    gp, rp = got[0], ref[0]
    agree = (gp.cancel == rp.cancel) & (gp.place == rp.place)
    assert agree.mean() >= 0.995, agree.mean()
    both = gp.place & rp.place
    np.testing.assert_allclose(gp.place_px[both], rp.place_px[both], rtol=1e-6)
    np.testing.assert_allclose(gp.place_size[both], rp.place_size[both], rtol=1e-6)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    age=st.integers(0, 2_000),
    dp_ticks=st.sampled_from([0.0, 0.5, 1.0, 1.5, 3.0, -2.0]),
    size_ratio=st.sampled_from([1.0, 1.05, 1.1, 1.25, 0.5]),
    off_ticks=st.integers(-3, 60),
    side=st.sampled_from([0, 1]),
    want=st.booleans(),
    has=st.booleans(),
)
def test_rules_property_parity(age, dp_ticks, size_ratio, off_ticks, side, want, has):
    """Single-slot cases on a 0.25-tick grid: both engines equal the rule written out."""
    cfg = apply_overrides(CFG, {"venues.tick_size": 0.25})
    tick = 0.25
    sgn = -1.0 if side == 0 else 1.0
    touch = 100.0 + sgn * 0.5  # mid 100, spread 1
    p_cur = touch + sgn * off_ticks * tick  # off_ticks > 0 = passive
    slots = {(2, side): (p_cur, 2.0, NOW - age, 5)} if has else {}
    state = _state(mid=100.0, spread=1.0, slots=slots)
    p_des, s_des = p_cur + dp_ticks * tick, 2.0 * size_ratio
    quotes = _quotes({(2, side): (p_des, s_des)} if want else {})
    # the rule, written out
    dangerous = off_ticks < 1
    if not want:
        exp_cancel, exp_place = has, False
    elif not has:
        exp_cancel, exp_place = False, True
    elif age < 500 and not dangerous:
        exp_cancel = exp_place = False
    else:
        rep = dangerous or abs(dp_ticks) > 1.0 or abs(2.0 - s_des) / s_des > 0.10
        exp_cancel = exp_place = rep
    for engine in ENGINES:
        plan = _plan(engine, state, quotes, cfg=cfg)
        assert bool(plan.cancel[2, side]) == exp_cancel, engine
        assert bool(plan.place[2, side]) == exp_place, engine
        assert int(np.asarray(plan.cancel).sum() + np.asarray(plan.place).sum()) == int(
            exp_cancel
        ) + int(exp_place)


# ---------------------------------------------------------------------------------------------
# vmap == loop, one trace, bitwise determinism
# ---------------------------------------------------------------------------------------------


def test_vmap_equals_loop_single_trace_and_determinism():
    states, quotes, now = _cases()
    states, quotes, now = states[:8], quotes[:8], now[:8]
    with enable_x64():
        chex.clear_trace_counter()

        def core(s, q, t):
            return _chain_jax(s, q, t, CFG)

        one = jax.jit(chex.assert_max_traces(core, n=1))
        loop = [
            _np_tree(one(to_jax(s), to_jax(q), jnp.asarray(t)))
            for s, q, t in zip(states, quotes, now)
        ]
        batched = jax.jit(jax.vmap(core))
        args = (to_jax(stack(states)), to_jax(stack(quotes)), jnp.asarray(now))
        b1 = _np_tree(batched(*args))
        b2 = _np_tree(batched(*args))
    chex.assert_trees_all_equal(b1, b2)  # bitwise determinism
    chex.assert_trees_all_equal(b1, stack(loop))  # vmap == loop
    assert isinstance(b1[0], OrderPlan)


def test_float32_dtypes_follow_inputs():
    states, quotes, now = _cases()
    plan, new, ids = jax.jit(_chain_jax)(to_jax(states[0]), to_jax(quotes[0]), int(now[0]), CFG)
    assert plan.place_px.dtype == jnp.float32 and new.venues.mm_price.dtype == jnp.float32
    assert ids.dtype == new.venues.mm_id.dtype
