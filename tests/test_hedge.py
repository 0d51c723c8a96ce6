"""Global hedge engine (STRATEGY.md §15), both engines.

Unit tests run the NumPy reference engine and the JAX engine (under x64) on hand-built books
(hand-derived numbers in the comments). Parity tests (`-k parity`) batch 240 random states per
config into one vmapped jit call.

Tolerances: x64 JAX vs reference: validity, candidates, side and `active` exactly; sizes,
prices, allocations and costs to rtol 1e-9 / atol 1e-12 (in practice bit-equal: the JAX engine
performs the reference's IEEE operations in the reference's order). float32 JAX vs reference:
discrete outputs agree on ≥ 97 % of the states (the rest are float32 roundings at the dead band,
a lot floor or a cost tie); on agreeing states guard prices to rtol 1e-6, costs to atol 1e-3
USD/TAO, allocations to atol 1e-4 TAO and sizes to one size step.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from paraphina_jax.config import apply_overrides, make_config, reference_parity_flags
from paraphina_jax.config.types import (
    REGIME_HARDLIMIT,
    SIDE_BUY,
    SIDE_SELL,
    STATUS_DISABLED,
    STATUS_HEALTHY,
)
from paraphina_jax.reference import hedge as rh
from paraphina_jax.strategy import hedge as jh
from paraphina_jax.strategy.types import (
    Controls,
    HedgePlan,
    StrategyState,
    identity_controls,
    init_state,
)
from paraphina_jax.testing import NOW_MS, random_controls, random_states, stack, to_jax
from paraphina_jax.utils.x64 import enable_x64

CFG = make_config("balanced")
N = CFG.n_venues
ENGINES = ("ref", "jax")
N_PARITY = 240
NOW = NOW_MS
IDENT = identity_controls(N)

# §15.3 golden vector config: band_vol_mult = 0, no funding/basis/frag/liq/slippage terms,
# min_depth 100, depth_fraction 0.5, band 1, k 0.5, max step 10, per-venue cap 10, chunk 5.
GOLDEN = {
    "hedge.band_vol_mult": 0.0,
    "hedge.funding_weight": 0.0,
    "hedge.basis_weight": 0.0,
    "hedge.frag_penalty": 0.0,
    "hedge.liq_penalty_scale": 0.0,
    "hedge.slippage_buffer": 0.0,
    "hedge.min_depth_usd": 100.0,
    "hedge.depth_fraction": 0.5,
    "hedge.band_base": 1.0,
    "hedge.k_hedge": 0.5,
    "hedge.max_step": 10.0,
    "hedge.max_venue_tao_per_tick": 10.0,
    "hedge.chunk_size_tao": 5.0,
}


def _cfg(base: Any = CFG, **over: Any) -> Any:
    return apply_overrides(base, {k.replace("__", "."): v for k, v in over.items()})


GCFG = _cfg(**{k.replace(".", "__"): v for k, v in GOLDEN.items()})


def _np_tree(tree: Any) -> Any:
    return jax.tree_util.tree_map(np.asarray, tree)


@functools.cache
def _jitted() -> Any:
    return jax.jit(jh.plan_hedge)


def _hedge(
    engine: str, state: StrategyState, cfg: Any = GCFG, controls: Controls = IDENT, now: int = NOW
) -> HedgePlan:
    if engine == "ref":
        return rh.plan_hedge(state, now, controls, cfg)
    with enable_x64():
        return _np_tree(_jitted()(to_jax(state), jnp.asarray(now), to_jax(controls), cfg))


def _state(
    q: Any = (10.0, 0, 0, 0, 0),
    mid: Any = 100.0,
    spread: Any = 0.5,
    depth: Any = 100_000.0,
    has_mid: Any = True,
    s: float = 100.0,
    age: Any = 0,
    dist: Any = 10.0,
    status: Any = STATUS_HEALTHY,
    tox: Any = 0.0,
    margin: Any = 100_000.0,
    vr: float = 1.0,
    regime: int = 0,
    kill: bool = False,
    funding: Any = 0.0,
) -> StrategyState:
    """A fresh state with the given per-venue book / position (scalars broadcast)."""

    def full(x: Any, dt: Any = np.float64) -> np.ndarray:
        return np.broadcast_to(np.asarray(x, dtype=dt), (N,)).copy()

    st0 = init_state(CFG, 0, xp=np)
    q = full(q)
    hm = full(has_mid, bool)
    venues = st0.venues.replace(
        mid=full(mid),
        spread=full(spread),
        has_mid=hm,
        depth_near_mid=full(depth),
        last_mid_update_ms=NOW - full(age, np.int64),
        has_mid_update=hm.copy(),
        status=full(status, np.int64),
        toxicity=full(tox),
        position_tao=q,
        avg_entry_price=np.where(q != 0, s, 0.0),
        dist_liq_sigma=full(dist),
        margin_available_usd=full(margin),
        fund_rate_8h=full(funding),
        funding_8h=full(funding),
        fund_has_rate=np.ones(N, bool),
        fund_received_ms=np.full(N, NOW - 1_000, np.int64),
    )
    return st0.replace(
        venues=venues,
        fair_value=np.float64(s),
        has_fair_value=np.bool_(True),
        fair_value_prev=np.float64(s),
        fv_available=np.bool_(True),
        vol_ratio_clipped=np.float64(vr),
        q_global_tao=np.float64(q.sum()),
        risk_regime=np.int64(regime),
        kill_switch=np.bool_(kill),
    )


def _orders(plan: HedgePlan) -> dict[int, tuple[float, float]]:
    """{venue: (size, price)} of the emitted orders."""
    return {
        int(i): (float(plan.size[i]), float(plan.price[i])) for i in range(N) if bool(plan.valid[i])
    }


TWO_BOOKS = dict(has_mid=(True, True, False, False, False))


# ---------------------------------------------------------------------------------------------
# §15 unit tests
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_golden_vector(engine):
    # §15.3: q0 = +10 ⇒ band 1, ΔH = 0.5·10 = +5 ⇒ SELL 5 on venue 0 (flat venue 1 ties on cost,
    # venue 0 "extended" ranks before "hyperliquid"); guard = floor((99.75 − 0.5·0.5)/0.01)·0.01
    plan = _hedge(engine, _state(**TWO_BOOKS))
    assert bool(plan.active) and int(plan.side) == SIDE_SELL
    assert float(plan.band) == 1.0 and float(plan.delta_h) == 5.0
    assert list(np.flatnonzero(plan.candidate)) == [0, 1]
    assert _orders(plan) == {0: (5.0, pytest.approx(99.50, abs=1e-9))}


@pytest.mark.parametrize("engine", ENGINES)
def test_dead_band_inclusive(engine):
    # band = 1 (band_vol_mult 0): |X| = 1 exactly ⇒ no hedge; 1.02 ⇒ ΔH = 0.51.
    at = _hedge(engine, _state(q=(1.0, 0, 0, 0, 0), **TWO_BOOKS))
    assert not bool(at.active) and not at.valid.any() and float(at.delta_h) == 0.0
    out = _hedge(engine, _state(q=(1.02, 0, 0, 0, 0), **TWO_BOOKS))
    assert bool(out.active) and float(out.delta_h) == pytest.approx(0.51, rel=1e-12)
    assert sum(_orders(out)[i][0] for i in _orders(out)) == pytest.approx(0.51, abs=1e-12)
    # reference band formula grows with vol: band = 1·(1 + 1·vr) = 3 at vr = 2 (D18 "ref")
    cfg = _cfg(GCFG, hedge__band_vol_mult=1.0)
    assert not bool(_hedge(engine, _state(q=(3.0, 0, 0, 0, 0), vr=2.0), cfg).active)
    assert bool(_hedge(engine, _state(q=(3.01, 0, 0, 0, 0), vr=2.0), cfg).active)


@pytest.mark.parametrize("engine", ENGINES)
def test_total_hedge_within_max_step_and_venue_caps(engine):
    # X = 100 ⇒ ΔH_raw = 50, clamped to max step 10; buy side for a short book.
    for sign, side in ((1.0, SIDE_SELL), (-1.0, SIDE_BUY)):
        plan = _hedge(engine, _state(q=(sign * 60.0, sign * 40.0, 0, 0, 0)))
        assert int(plan.side) == side and float(plan.delta_h) == sign * 10.0
        orders = _orders(plan)
        assert sum(sz for sz, _ in orders.values()) <= 10.0 + 1e-12
    # per-venue cap: depth_fraction·depth/S = 0.5·600/100 = 3 TAO on venue 0, and a per-venue
    # cap of 4 elsewhere ⇒ 3 + 4 + 3 (the target 10 is met across three venues)
    cfg = _cfg(GCFG, hedge__max_venue_tao_per_tick=4.0, hedge__chunk_size_tao=1.0)
    plan = _hedge(engine, _state(q=(60.0, 0, 0, 0, 0), depth=(600.0,) + (1e5,) * 4), cfg)
    sizes = {i: sz for i, (sz, _) in _orders(plan).items()}
    assert sizes[0] == 3.0 and max(sizes.values()) <= 4.0
    assert sum(sizes.values()) == pytest.approx(10.0, abs=1e-12)
    np.testing.assert_array_less(plan.alloc, np.fmin(4.0, 0.5 * np.full(N, 1e5) / 100) + 1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_critical_liquidation_venues_never_hedged(engine):
    # venue 0 is the cheapest by far (tight spread) but at or below liq_crit = 2 σ.
    for d0 in (2.0, 1.0, 0.0):
        plan = _hedge(engine, _state(spread=(0.02, 0.5, 0.5, 0.5, 0.5), dist=(d0, 10, 10, 10, 10)))
        assert not bool(plan.candidate[0]) and not bool(plan.valid[0])
        assert float(plan.alloc[0]) == 0.0 and plan.valid.any()
    # just above the critical distance it is a candidate again (inside the warn band: penalty)
    plan = _hedge(engine, _state(spread=(0.02, 0.5, 0.5, 0.5, 0.5), dist=(2.01, 10, 10, 10, 10)))
    assert bool(plan.candidate[0])
    assert float(plan.liq_penalty[0]) == 0.0  # liq_penalty_scale = 0 in the golden config


@pytest.mark.parametrize("engine", ENGINES)
def test_basis_preference_when_execution_costs_tie(engine):
    # no taker fee ⇒ exec = spread/2 on every venue (a tie); selling, a higher bid is a better
    # basis edge: cost = exec − 0.2·(bid − S). Venue 3 (mid 100.4) wins, then venue 1 (100.2).
    cfg = _cfg(GCFG, venues__taker_fee_bps=0.0, hedge__basis_weight=0.2)
    mids = (100.0, 100.2, 100.0, 100.4, 100.0)
    plan = _hedge(engine, _state(q=(16.0, 0, 0, 0, 0), mid=mids), cfg)  # ΔH = 8
    np.testing.assert_allclose(plan.exec_cost, 0.25)
    assert plan.cost[3] < plan.cost[1] < plan.cost[0]
    assert _orders(plan).keys() == {3} and float(plan.size[3]) == 8.0
    # buying, a lower ask is better: venue 4 (mid 99.7)
    mids = (100.0, 100.0, 99.9, 100.0, 99.7)
    plan = _hedge(engine, _state(q=(-16.0, 0, 0, 0, 0), mid=mids), cfg)
    assert int(plan.side) == SIDE_BUY and _orders(plan).keys() == {4}


@pytest.mark.parametrize("engine", ENGINES)
def test_funding_preference_when_execution_costs_tie(engine):
    # hedge funding on: selling earns f8·(30/28800)·S per TAO ⇒ the highest rate is cheapest.
    cfg = _cfg(GCFG, venues__taker_fee_bps=0.0, hedge__funding_weight=0.2)
    cfg = dataclasses.replace(cfg, funding=cfg.funding.replace(hedge_funding_enabled=True))
    rates = (0.0, 1e-3, 0.0, 3e-3, -1e-3)
    plan = _hedge(engine, _state(q=(16.0, 0, 0, 0, 0), funding=rates), cfg)
    np.testing.assert_allclose(plan.funding_benefit, np.asarray(rates) * 30 / 28_800 * 100)
    assert _orders(plan).keys() == {3}
    plan = _hedge(engine, _state(q=(-16.0, 0, 0, 0, 0), funding=rates), cfg)  # buying: pays f8
    assert _orders(plan).keys() == {4}
    # funding switched off ⇒ the rate is ignored and the id-string tie-break decides (aster = 2)
    plan = _hedge(engine, _state(q=(16.0, 0, 0, 0, 0), funding=rates), _cfg(GCFG))
    assert _orders(plan).keys() == {2}


@pytest.mark.parametrize("engine", ENGINES)
def test_full_tie_breaks_on_venue_id_string(engine):
    # all venues identical ⇒ chunks ordered by id string: aster(2) < extended(0) < hyperliquid(1)
    cfg = _cfg(GCFG, hedge__max_venue_tao_per_tick=4.0, hedge__chunk_size_tao=4.0)
    plan = _hedge(engine, _state(q=(24.0, 0, 0, 0, 0)), cfg)  # ΔH = 10 = 4 + 4 + 2
    assert {i: sz for i, (sz, _) in _orders(plan).items()} == {2: 4.0, 0: 4.0, 1: 2.0}


@pytest.mark.parametrize("engine", ENGINES)
def test_candidate_gates(engine):
    # venue 0 stale, 1 Disabled, 2 toxic, 3 thin book; only venue 4 may hedge
    st = _state(
        age=(5_000, 0, 0, 0, 0),
        status=(0, STATUS_DISABLED, 0, 0, 0),
        tox=(0, 0, 0.95, 0, 0),
        depth=(1e5, 1e5, 1e5, 50.0, 1e5),
    )
    plan = _hedge(engine, st)
    assert list(np.flatnonzero(plan.candidate)) == [4] and _orders(plan).keys() == {4}
    # hedge not allowed on venue 4 either ⇒ nothing
    cfg = _cfg(GCFG, venues__hedge_allowed=[True, True, True, True, False])
    assert not _hedge(engine, st, cfg).candidate.any()


@pytest.mark.parametrize("engine", ENGINES)
def test_kill_blocks_hardlimit_does_not(engine):
    killed = _hedge(engine, _state(kill=True, regime=REGIME_HARDLIMIT))
    assert not killed.valid.any() and not killed.candidate.any() and not bool(killed.active)
    hard = _hedge(engine, _state(regime=REGIME_HARDLIMIT))  # §15.1: regime not checked
    assert hard.valid.any()


@pytest.mark.parametrize("engine", ENGINES)
def test_margin_cap_limits_growth_not_reduction(engine):
    # venue 1 flat with margin 20 USD ⇒ may grow by 20·10·0.95/100 = 1.9 TAO; venue 0 long 10,
    # no margin: selling reduces |q0| so it keeps its full cap.
    cfg = _cfg(GCFG, hedge__chunk_size_tao=1.0)
    st = _state(q=(10.0, 0, 0, 0, 0), margin=(0.0, 20.0, 0.0, 0.0, 0.0), **TWO_BOOKS)
    plan = _hedge(engine, st, cfg)
    assert float(plan.alloc[0]) == 5.0  # the whole step fits on venue 0 (cap 10)
    st = _state(q=(30.0, 0, 0, 0, 0), margin=(0.0, 20.0, 0.0, 0.0, 0.0), **TWO_BOOKS)
    cfg = _cfg(cfg, hedge__max_venue_tao_per_tick=8.0, hedge__max_step=15.0)
    plan = _hedge(engine, st, cfg)  # ΔH = 15: 8 on venue 0, then 1.9 on venue 1
    assert float(plan.alloc[0]) == 8.0
    assert float(plan.alloc[1]) == pytest.approx(1.9, abs=1e-12)
    assert float(plan.size[1]) == math.floor(float(plan.alloc[1]) / 0.01) * 0.01  # no epsilon


@pytest.mark.parametrize("engine", ENGINES)
def test_sizes_floored_to_step_lot_and_min_notional(engine):
    # ΔH = 0.5·7.37 = 3.685 on one venue: step 0.05 ⇒ 3.65; lot 0.5 ⇒ 3.5
    for step, lot, want in ((0.05, 0.01, 3.65), (0.01, 0.5, 3.5)):
        cfg = _cfg(GCFG, venues__size_step=step, venues__lot_size=lot)
        plan = _hedge(engine, _state(q=(7.37, 0, 0, 0, 0), **TWO_BOOKS), cfg)
        assert float(plan.size[0]) == pytest.approx(want, abs=1e-9)
        assert math.isclose(float(plan.size[0]) / step, round(float(plan.size[0]) / step))
    # min notional: 0.51 TAO·99.5 = 50.7 USD < 60 ⇒ rejected
    cfg = _cfg(GCFG, venues__min_notional_usd=60.0)
    plan = _hedge(engine, _state(q=(1.02, 0, 0, 0, 0), **TWO_BOOKS), cfg)
    assert bool(plan.active) and not plan.valid.any()


# ---------------------------------------------------------------------------------------------
# Parity: random states, one vmapped jit call per config
# ---------------------------------------------------------------------------------------------


def _hedgeify(rng: np.random.Generator, s: StrategyState) -> StrategyState:
    """Push a random state towards hedges: large |q_t|, fresh books, varied risk and margin."""
    v = s.venues
    q = np.round(rng.normal(0, 8.0, N), 2) * (rng.random(N) < 0.8)
    q = q + rng.choice([0.0, 1.0, -1.0]) * rng.uniform(5.0, 40.0)
    age = np.where(rng.random(N) < 0.8, rng.integers(0, 900, N), rng.integers(900, 4_000, N))
    dist = np.where(
        rng.random(N) < 0.6, 10.0, rng.choice([8.0, 5.0, 4.0, 2.5, 2.0, 1.0, np.inf], N)
    )
    margin = np.where(rng.random(N) < 0.2, rng.uniform(0.0, 50.0, N), rng.uniform(0.0, 20_000, N))
    depth = np.where(rng.random(N) < 0.15, rng.uniform(100.0, 3_000.0, N), rng.uniform(3e3, 8e4, N))
    venues = v.replace(
        position_tao=q,
        last_mid_update_ms=NOW - age,
        has_mid_update=np.asarray(v.has_mid_update) | (rng.random(N) < 0.5),
        dist_liq_sigma=dist,
        margin_available_usd=margin,
        depth_near_mid=depth,
    )
    return s.replace(
        venues=venues,
        q_global_tao=np.float64(q.sum()),
        kill_switch=np.bool_(rng.random() < 0.05),
    )


@functools.lru_cache(maxsize=1)
def _states() -> tuple[StrategyState, ...]:
    states = random_states(4242, CFG, N_PARITY)
    rng = np.random.default_rng(6)
    return tuple(_hedgeify(rng, s) if i % 5 != 0 else s for i, s in enumerate(states))


@functools.lru_cache(maxsize=1)
def _controls() -> tuple[Controls, ...]:
    rng = np.random.default_rng(7)
    return tuple(random_controls(rng, N) if i % 3 else IDENT for i in range(N_PARITY))


_PARITY_CFGS = {
    "rec_controls": lambda: CFG,
    # [IMPL] flags (global stale gate, ref_env controls) plus the D19 [REC] convexity and odd lots
    "impl_convexity_odd_lots": lambda: apply_overrides(
        make_config(flags=reference_parity_flags(chunk_convexity_times_price=True)),
        {
            "hedge.chunk_convexity_cost_bps": 3.0,
            "hedge.chunk_size_tao": 1.5,
            "hedge.band_vol_mult": 0.0,
            "hedge.band_base": 2.0,
            "venues.lot_size": [0.01, 0.1, 0.5, 0.01, 0.05],
            "venues.size_step": [0.01, 0.05, 0.5, 0.001, 0.1],
            "venues.tick_size": [0.01, 0.05, 0.25, 0.001, 0.1],
        },
    ),
}


def _batched(cfg: Any) -> tuple[HedgePlan, HedgePlan]:
    states = _states()
    ctls = _controls()
    ref = stack([rh.plan_hedge(s, NOW, c, cfg) for s, c in zip(states, ctls)])
    f = jax.jit(jax.vmap(jh.plan_hedge, in_axes=(0, None, 0, None)))
    got = _np_tree(f(to_jax(stack(list(states))), jnp.asarray(NOW), to_jax(stack(ctls)), cfg))
    return got, ref


DISCRETE = ("valid", "candidate", "side", "active")
CONTINUOUS = ("size", "price", "alloc", "cost", "band", "x", "delta_h", "exec_cost")


@pytest.mark.parametrize("name", list(_PARITY_CFGS))
def test_hedge_parity_x64(name):
    cfg = _PARITY_CFGS[name]()
    with enable_x64():
        got, ref = _batched(cfg)
    assert len(ref.valid) == N_PARITY >= 200
    for field in DISCRETE:
        np.testing.assert_array_equal(getattr(got, field), getattr(ref, field), err_msg=field)
    for field in CONTINUOUS + ("funding_benefit", "basis_edge", "liq_penalty", "frag_penalty"):
        np.testing.assert_allclose(
            getattr(got, field), getattr(ref, field), rtol=1e-9, atol=1e-12, err_msg=field
        )
    # coverage of the interesting paths
    n_orders = ref.valid.sum(axis=1)
    assert n_orders.max() >= 2  # split across venues
    assert 30 <= (n_orders > 0).sum() <= N_PARITY - 30
    assert (ref.active & (n_orders == 0)).any()  # wanted but nothing placeable
    assert (ref.candidate & ~ref.valid).any()


def test_hedge_parity_float32():
    got, ref = _batched(CFG)
    same = np.ones(N_PARITY, bool)
    for name in ("valid", "candidate"):
        same &= (getattr(got, name) == getattr(ref, name)).all(axis=1)
    same &= (got.side == ref.side) & (got.active == ref.active)
    assert same.mean() >= 0.97, same.mean()
    g = jax.tree_util.tree_map(lambda x: x[same], got)
    r = jax.tree_util.tree_map(lambda x: x[same], ref)
    np.testing.assert_allclose(g.price, r.price, rtol=1e-6)
    np.testing.assert_allclose(g.cost, r.cost, atol=1e-3)
    np.testing.assert_allclose(g.alloc, r.alloc, atol=1e-4)
    np.testing.assert_allclose(g.size, r.size, atol=0.01 + 1e-5)


# ---------------------------------------------------------------------------------------------
# vmap == loop, one trace, bitwise determinism
# ---------------------------------------------------------------------------------------------


def test_vmap_equals_loop_single_trace_and_determinism():
    states = list(_states()[:8])
    with enable_x64():
        chex.clear_trace_counter()

        def core(s, t):
            return jh.plan_hedge(s, t, IDENT, CFG)

        one = jax.jit(chex.assert_max_traces(core, n=1))
        loop = [_np_tree(one(to_jax(s), jnp.asarray(NOW))) for s in states]
        batched = jax.jit(jax.vmap(core, in_axes=(0, None)))
        bs = to_jax(stack(states))
        b1 = _np_tree(batched(bs, jnp.asarray(NOW)))
        b2 = _np_tree(batched(bs, jnp.asarray(NOW)))
    chex.assert_trees_all_equal(b1, b2)  # bitwise determinism
    chex.assert_trees_all_equal(b1, stack(loop))  # vmap == loop
    # config closed over ⇒ the statically bounded greedy (the parity tests trace the config and
    # run the while loop): bit-equal to the reference's chunk sort too
    assert jh.greedy_steps_bound(CFG) is not None
    ref = stack([rh.plan_hedge(s, NOW, IDENT, CFG) for s in states])
    for field in ("valid", "size", "alloc", "price"):
        np.testing.assert_array_equal(getattr(b1, field), getattr(ref, field), err_msg=field)
