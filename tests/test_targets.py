"""Funding usability (STRATEGY.md §9) and per-venue inventory targets (§10), both engines.

Unit tests run the NumPy reference engine and the JAX engine (under x64) on the same cases.
Parity tests (`-k parity`) batch ≥ 200 random states (plus boundary states) into one vmapped jit
call per config variant.

Tolerances: x64 JAX vs reference: rtol 1e-12, atol 1e-15 (same operations in the same order;
measured: weights bitwise equal, targets within 1 ulp — XLA may fuse the multiply-add); funding
rates exactly. float32 JAX vs reference: funding rates rtol
1e-7; weights rtol 1e-5 / atol 1e-7; targets atol 1e-5 × (1 + |q_t| + FUNDING_TARGET_MAX_TAO).
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paraphina_jax.config import make_config
from paraphina_jax.config.types import (
    STATUS_DISABLED,
    STATUS_HEALTHY,
    STATUS_WARNING,
    StrategyConfig,
)
from paraphina_jax.reference import targets as rtg
from paraphina_jax.strategy import targets as jtg
from paraphina_jax.strategy.types import StrategyState, init_state
from paraphina_jax.testing import NOW_MS, random_states, stack, to_jax, to_numpy
from paraphina_jax.utils.x64 import enable_x64

CFG = make_config("balanced")
N = CFG.n_venues
NOW = NOW_MS
ENGINES = ("ref", "jax")
STALE = int(CFG.funding.funding_stale_ms)
WINDOW = int(CFG.funding.funding_avoid_window_ms)
N_RANDOM = 220


def _funding_cfg(cfg: StrategyConfig = CFG, mm: bool = True, hedge: bool = True, exit: bool = True):
    return cfg.replace(
        funding=cfg.funding.replace(
            mm_funding_enabled=mm, hedge_funding_enabled=hedge, exit_funding_enabled=exit
        )
    )


FCFG = _funding_cfg()


def _state(
    cfg: StrategyConfig = CFG, glob: dict[str, Any] | None = None, **venue: Any
) -> StrategyState:
    st0 = init_state(cfg, 0, xp=np)
    ven = st0.venues.replace(
        **{
            k: np.asarray(x, dtype=np.asarray(getattr(st0.venues, k)).dtype)
            for k, x in venue.items()
        }
    )
    return st0.replace(venues=ven, **(glob or {}))


def _rate(engine: str, state: StrategyState, cfg: StrategyConfig, which: str, clock: bool = True):
    if engine == "ref":
        return rtg.funding_rate_for_decision(state, NOW, cfg, which, clock)
    with enable_x64():
        return np.asarray(
            jtg.funding_rate_for_decision(to_jax(state), jnp.asarray(NOW), cfg, which, clock)
        )


def _targets(engine: str, state: StrategyState, cfg: StrategyConfig, clock: bool = True):
    if engine == "ref":
        return rtg.inventory_targets(state, NOW, cfg, clock)
    with enable_x64():
        w, q = jtg.inventory_targets(to_jax(state), jnp.asarray(NOW), cfg, clock)
        return np.asarray(w), np.asarray(q)


# ---------------------------------------------------------------------------------------------
# §9 funding usability
# ---------------------------------------------------------------------------------------------

RATES = np.array([1e-4, -2e-4, 3e-4, 4e-4, 5e-4])


def _record(**kw: Any) -> StrategyState:
    base = dict(
        fund_rate_8h=RATES,
        fund_has_rate=np.ones(N, bool),
        fund_received_ms=np.full(N, NOW - 1000),
        fund_as_of_ms=np.zeros(N, np.int64),
        fund_next_ms=np.full(N, NOW + 3_600_000),
        fund_has_next=np.ones(N, bool),
        funding_8h=np.full(N, 9e-3),  # the raw funding_8h field is never the decision rate
    )
    base.update(kw)
    return _state(**base)


@pytest.mark.parametrize("engine", ENGINES)
def test_funding_master_switches(engine: str) -> None:
    rec = _record()
    for which in ("mm", "hedge", "exit"):
        np.testing.assert_array_equal(_rate(engine, rec, CFG, which), 0.0)  # all off by default
        only = _funding_cfg(**{k: k == which for k in ("mm", "hedge", "exit")})
        for other in ("mm", "hedge", "exit"):
            want = RATES if other == which else np.zeros(N)
            np.testing.assert_array_equal(_rate(engine, rec, only, other), want)
            np.testing.assert_array_equal(_rate(engine, rec, only, other, clock=False), want)


@pytest.mark.parametrize("engine", ENGINES)
def test_funding_unknown_engine_raises(engine: str) -> None:
    with pytest.raises(ValueError):
        _rate(engine, _record(), FCFG, "quote")


@pytest.mark.parametrize("engine", ENGINES)
def test_funding_age_base_and_staleness(engine: str) -> None:
    rec = _record(
        fund_has_rate=np.array([1, 0, 1, 1, 1], bool),
        # 0: received, age 0 · 1: no rate · 2: received ≤ 0 ⇒ as_of base, age = STALE (usable)
        # 3: as_of age STALE + 1 (stale) · 4: no timestamp at all
        fund_received_ms=np.array([NOW, NOW, 0, -5, 0]),
        fund_as_of_ms=np.array([NOW - 10 * STALE, NOW, NOW - STALE, NOW - STALE - 1, 0]),
    )
    np.testing.assert_array_equal(_rate(engine, rec, FCFG, "hedge"), [RATES[0], 0, RATES[2], 0, 0])
    # received wins over as_of even when as_of is fresher; a future stamp (age < 0) is unusable
    rec2 = _record(
        fund_received_ms=np.array([NOW - STALE - 1, NOW + 1, NOW - STALE, NOW, NOW]),
        fund_as_of_ms=np.full(N, NOW),
    )
    np.testing.assert_array_equal(
        _rate(engine, rec2, FCFG, "exit"), [0, 0, RATES[2], RATES[3], RATES[4]]
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_funding_avoid_window(engine: str) -> None:
    rec = _record(
        fund_next_ms=np.array(
            [NOW + WINDOW, NOW + WINDOW + 1, NOW - WINDOW, NOW - WINDOW - 1, NOW]
        ),
        fund_has_next=np.array([1, 1, 1, 1, 0], bool),
    )
    want = [0, RATES[1], 0, RATES[3], RATES[4]]  # |next − now| ≤ window ⇒ unusable
    np.testing.assert_array_equal(_rate(engine, rec, FCFG, "mm"), want)
    no_window = FCFG.replace(funding=FCFG.funding.replace(funding_avoid_window_ms=0))
    np.testing.assert_array_equal(_rate(engine, rec, no_window, "mm"), RATES)


@pytest.mark.parametrize("engine", ENGINES)
def test_funding_without_clock_uses_raw_rate(engine: str) -> None:
    rec = _record(
        fund_has_rate=np.array([1, 1, 1, 1, 0], bool),
        fund_received_ms=np.array([0, NOW - 10 * STALE, NOW, NOW, NOW]),
        fund_next_ms=np.full(N, NOW),
    )
    np.testing.assert_array_equal(_rate(engine, rec, FCFG, "mm"), 0.0)  # window / stale / unknown
    np.testing.assert_array_equal(_rate(engine, rec, FCFG, "mm", clock=False), [*RATES[:4], 0.0])


# ---------------------------------------------------------------------------------------------
# §10 inventory targets
# ---------------------------------------------------------------------------------------------


def _target_state(**glob: Any) -> StrategyState:
    g = dict(
        fair_value=np.float64(100.0), has_fair_value=np.bool_(True), q_global_tao=np.float64(10.0)
    )
    g.update(glob)
    return _record(
        depth_near_mid=np.array([10_000.0, 20_000.0, 0.0, 5_000.0, 8_000.0]),
        status=np.array(
            [STATUS_HEALTHY, STATUS_WARNING, STATUS_HEALTHY, STATUS_DISABLED, STATUS_HEALTHY]
        ),
    ).replace(**g)


@pytest.mark.parametrize("engine", ENGINES)
def test_targets_example(engine: str) -> None:
    # S = 100, w_liq_cfg = [.25, .25, .20, .15, .15]: D = [25, 50, 0 (no depth), 0 (Disabled), 12]
    # ΣD = 87; q_t = 10. MM funding off ⇒ φ = 0.
    st0 = _target_state()
    w, q = _targets(engine, st0, CFG)
    want_w = np.array([25.0, 50.0, 0.0, 0.0, 12.0]) / 87.0
    np.testing.assert_allclose(w, want_w, rtol=1e-15)
    np.testing.assert_allclose(q, want_w * 10.0, rtol=1e-15)
    # MM funding on: φ_v = clip(f8/1e-3, −1, 1)·5 = [0.5, −1, 1.5, 2, 2.5]; Disabled venue 3 ⇒ 0,
    # venue 2 (no depth, not Disabled) keeps its funding term.
    w2, q2 = _targets(engine, st0, _funding_cfg(mm=True, hedge=False, exit=False))
    w_fund = np.asarray(CFG.venues.w_fund)
    phi = np.clip(RATES / 1e-3, -1, 1) * 5.0
    want_q = want_w * 10.0 + w_fund * phi
    want_q[3] = 0.0
    np.testing.assert_allclose(w2, want_w, rtol=1e-15)
    np.testing.assert_allclose(q2, want_q, rtol=1e-14)
    assert q2[2] == pytest.approx(0.2 * 1.5)


@pytest.mark.parametrize("engine", ENGINES)
def test_targets_fair_value_floor_and_zero_depth(engine: str) -> None:
    st0 = _target_state()
    # absent fair value ⇒ S = 1; S < 1 floored at 1: same weights (S cancels), same targets
    for g in ({"has_fair_value": np.bool_(False)}, {"fair_value": np.float64(0.25)}):
        w, q = _targets(engine, st0.replace(**g), CFG)
        np.testing.assert_allclose(w, np.array([25.0, 50.0, 0.0, 0.0, 12.0]) / 87.0, rtol=1e-14)
    # ΣD ≤ 0 ⇒ every weight and target 0, the funding term included
    dead = st0.replace(venues=st0.venues.replace(depth_near_mid=np.zeros(N)))
    w, q = _targets(engine, dead, _funding_cfg())
    np.testing.assert_array_equal(w, 0.0)
    np.testing.assert_array_equal(q, 0.0)
    # funding scale ≤ 0 ⇒ φ = 0
    no_scale = _funding_cfg().replace(mm=CFG.mm.replace(funding_target_rate_scale=0.0))
    w, q = _targets(engine, st0, no_scale)
    np.testing.assert_allclose(q, np.array([25.0, 50.0, 0.0, 0.0, 12.0]) / 87.0 * 10.0, rtol=1e-15)


@pytest.mark.parametrize("engine", ENGINES)
def test_targets_use_clock_switch(engine: str) -> None:
    st0 = _target_state().replace(
        venues=_target_state().venues.replace(fund_received_ms=np.full(N, NOW - 10 * STALE))
    )
    cfg = _funding_cfg()
    _, q_clock = _targets(engine, st0, cfg)  # stale ⇒ φ = 0
    _, q_raw = _targets(engine, st0, cfg, clock=False)  # raw rates
    base = np.array([25.0, 50.0, 0.0, 0.0, 12.0]) / 87.0 * 10.0
    np.testing.assert_allclose(q_clock, base, rtol=1e-15)
    assert (np.abs(q_raw - base)[[0, 1, 2, 4]] > 0.1).all()


@settings(max_examples=50, deadline=None, derandomize=True)
@given(
    depth=st.lists(st.one_of(st.just(0.0), st.floats(1e-3, 1e6)), min_size=N, max_size=N),
    status=st.lists(
        st.sampled_from([STATUS_HEALTHY, STATUS_WARNING, STATUS_DISABLED]), min_size=N, max_size=N
    ),
    q_t=st.floats(-100.0, 100.0),
)
def test_targets_weights_simplex(depth, status, q_t) -> None:
    st0 = _state(depth_near_mid=np.array(depth), status=np.array(status)).replace(
        fair_value=np.float64(250.0), has_fair_value=np.bool_(True), q_global_tao=np.float64(q_t)
    )
    w, q = rtg.inventory_targets(st0, NOW, CFG)
    live = (np.array(status) != STATUS_DISABLED) & (np.array(depth) > 0)
    if live.any():
        assert w.sum() == pytest.approx(1.0, rel=1e-12)
        np.testing.assert_allclose(q.sum(), q_t, rtol=1e-9, atol=1e-9)  # funding off: Σq = q_t
    else:
        np.testing.assert_array_equal(w, 0.0)
    assert (w[~live] == 0).all()


# ---------------------------------------------------------------------------------------------
# Parity
# ---------------------------------------------------------------------------------------------


def _edge_states() -> list[StrategyState]:
    return [
        _target_state(),
        _target_state(has_fair_value=np.bool_(False)),
        _target_state(fair_value=np.float64(0.5)),
        _record(
            fund_received_ms=np.array([NOW - STALE, NOW - STALE - 1, 0, NOW + 1, 0]),
            fund_as_of_ms=np.array([0, 0, NOW - STALE, NOW, 0]),
            fund_next_ms=np.array([NOW + WINDOW, NOW - WINDOW, NOW + WINDOW + 1, NOW, NOW]),
            fund_has_next=np.array([1, 1, 1, 0, 1], bool),
        ),
    ]


def _parity_states() -> list[StrategyState]:
    return random_states(31, CFG, N_RANDOM) + _edge_states()


def _all_outputs(cfg: StrategyConfig) -> Any:
    now = jnp.asarray(NOW)

    def f(s: StrategyState) -> dict[str, Any]:
        out = {}
        for clock in (True, False):
            for which in ("mm", "hedge", "exit"):
                out[f"{which}_{clock}"] = jtg.funding_rate_for_decision(s, now, cfg, which, clock)
            out[f"targets_{clock}"] = jtg.inventory_targets(s, now, cfg, clock)
        return out

    return jax.jit(jax.vmap(f))


def _ref_outputs(states: list[StrategyState], cfg: StrategyConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for clock in (True, False):
        for which in ("mm", "hedge", "exit"):
            out[f"{which}_{clock}"] = np.stack(
                [rtg.funding_rate_for_decision(s, NOW, cfg, which, clock) for s in states]
            )
        t = [rtg.inventory_targets(s, NOW, cfg, clock) for s in states]
        out[f"targets_{clock}"] = (np.stack([x[0] for x in t]), np.stack([x[1] for x in t]))
    return out


@pytest.mark.parametrize("variant", ["all_on", "mm_only", "all_off"])
def test_funding_and_targets_parity(variant: str) -> None:
    cfg = {
        "all_on": _funding_cfg(),
        "mm_only": _funding_cfg(mm=True, hedge=False, exit=False),
        "all_off": CFG,
    }[variant]
    states = _parity_states()
    before = stack(states)
    with enable_x64():
        out = to_numpy(_all_outputs(cfg)(to_jax(stack(states))))
    ref = _ref_outputs(states, cfg)
    chex.assert_trees_all_equal(stack(states), before)  # the reference never mutates its input
    for key in ref:
        if key.startswith("targets"):
            np.testing.assert_allclose(out[key][0], ref[key][0], rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(out[key][1], ref[key][1], rtol=1e-12, atol=1e-15)
        else:
            np.testing.assert_array_equal(out[key], ref[key], err_msg=key)
    if variant == "all_on":
        usable = ref["hedge_True"] != 0
        assert 0.2 < usable.mean() < 0.9  # both usable and unusable records are exercised


def test_funding_and_targets_float32_parity() -> None:
    cfg = _funding_cfg()
    states = _parity_states()
    out = to_numpy(_all_outputs(cfg)(to_jax(stack(states))))
    assert out["targets_True"][0].dtype == np.float32
    ref = _ref_outputs(states, cfg)
    q_scale = 1.0 + np.abs(np.stack([float(s.q_global_tao) for s in states]))[:, None] + 5.0
    for key in ref:
        if key.startswith("targets"):
            np.testing.assert_allclose(out[key][0], ref[key][0], rtol=1e-5, atol=1e-7)
            np.testing.assert_array_less(
                np.abs(out[key][1] - ref[key][1]),
                np.broadcast_to(1e-5 * q_scale, ref[key][1].shape),
            )
        else:
            np.testing.assert_allclose(out[key], ref[key], rtol=1e-7, atol=0)


def test_vmap_equals_loop_single_trace_and_determinism() -> None:
    cfg = _funding_cfg()
    states = random_states(32, CFG, 8)
    chex.clear_trace_counter()

    @chex.assert_max_traces(n=1)
    def one(s: StrategyState, now: jax.Array) -> tuple[jax.Array, jax.Array]:
        return jtg.inventory_targets(s, now, cfg)

    with enable_x64():
        one_j = jax.jit(one)
        batched = jax.jit(
            jax.vmap(lambda s, t: jtg.inventory_targets(s, t, cfg), in_axes=(0, None))
        )
        b = to_jax(stack(states))
        now = jnp.asarray(NOW)
        out1 = to_numpy(batched(b, now))
        out2 = to_numpy(batched(b, now))
        loop = [to_numpy(one_j(to_jax(s), now)) for s in states]
    chex.assert_trees_all_equal(out1, out2)
    for i, lo in enumerate(loop):
        # equal up to XLA's multiply-add fusion, which can differ between the batched and the
        # unbatched program (measured: ≤ 1 ulp)
        chex.assert_trees_all_close((out1[0][i], out1[1][i]), lo, rtol=1e-14, atol=1e-15)
