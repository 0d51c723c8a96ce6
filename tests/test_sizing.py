"""Quote size model (STRATEGY.md §12), both engines, called directly on prices and edges.

Unit tests run the NumPy reference engine and the JAX engine (eager, under x64) on the same
hand-built cases with the numbers written out. Parity (`-k parity`): 240 random states with
random prices, edges and controls in one vmapped jit call per flag set; x64 equals the reference
to rtol 1e-9 (sizes are floored to the lot, so they agree exactly in practice) and exactly on the
gate codes. float32: gate codes agree on ≥ 99 % of sides; emitted sizes within one lot plus
(one lot of the size before flooring)·max(1, size_scale), and within 1e-5 relative on ≥ 98 %.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from paraphina_jax.config import make_config, reference_parity_flags
from paraphina_jax.config.types import REGIME_WARNING, STATUS_WARNING, Flags
from paraphina_jax.reference import sizing as rsz
from paraphina_jax.strategy import sizing as jsz
from paraphina_jax.strategy.types import (
    GATE_DELTA_THROTTLE,
    GATE_EDGE,
    GATE_LIQ_REDUCE_ONLY,
    GATE_MIN_NOTIONAL,
    GATE_NONE,
    GATE_SIZE_BELOW_LOT,
    Controls,
    identity_controls,
    init_state,
)
from paraphina_jax.testing import random_controls, random_states, stack, to_jax
from paraphina_jax.utils.x64 import enable_x64

ENGINES = ("ref", "jax")
PARITY = make_config("balanced", parity=True)
REC = make_config("balanced")
N = PARITY.n_venues


def _cfg(base: Any, **flags: Any) -> Any:
    return base.replace(flags=dataclasses.replace(base.flags, **flags))


def _state(cfg: Any = PARITY, glob: dict[str, Any] | None = None, **venue: Any) -> Any:
    st = init_state(cfg, 0)
    v = {
        k: np.broadcast_to(
            np.asarray(x, dtype=np.asarray(getattr(st.venues, k)).dtype), (N,)
        ).copy()
        for k, x in venue.items()
    }
    g = {k: np.asarray(x, dtype=np.asarray(getattr(st, k)).dtype) for k, x in (glob or {}).items()}
    return st.replace(venues=st.venues.replace(**v), **g)


def _sizes(engine: str, state: Any, px: Any, edge: Any, cfg: Any, controls: Any = None, ok=None):
    px = np.broadcast_to(np.asarray(px, dtype=np.float64), (N, 2)).copy()
    edge = np.broadcast_to(np.asarray(edge, dtype=np.float64), (N, 2)).copy()
    edge_ok = edge >= max(float(cfg.mm.edge_local_min), 0.0) if ok is None else np.asarray(ok)
    if engine == "ref":
        return rsz.quote_sizes(state, px, edge, edge_ok, controls, cfg)
    with enable_x64():
        s, c = to_jax(state), (None if controls is None else to_jax(controls))
        size, gate = jsz.quote_sizes(
            s, jnp.asarray(px), jnp.asarray(edge), jnp.asarray(edge_ok), c, cfg
        )
        return np.asarray(size), np.asarray(gate)


@pytest.mark.parametrize("engine", ENGINES)
def test_worked_example_sizes(engine):
    """§12 example: e_bid = 0.53, e_ask = 0.65 (f64 values) ⇒ Q = 5.2999…, 6.4999… ⇒ 5.29, 6.49."""
    e_bid, e_ask = 300.0 - 299.41 - 0.06, 300.71 - 300.0 - 0.06
    size, gate = _sizes(engine, _state(), [299.41, 300.71], [e_bid, e_ask], PARITY)
    np.testing.assert_array_equal(gate, GATE_NONE)
    np.testing.assert_array_equal(size[0], [5.29, 6.49])


@pytest.mark.parametrize("engine", ENGINES)
def test_floor_to_lot_without_epsilon(engine):
    """§0: floor(2.3/0.01)·0.01 = 2.29 in f64 (2.3/0.01 = 229.99999999999997); 1.15 ⇒ 1.14."""
    cfg = PARITY.replace(mm=PARITY.mm.replace(size_eta=1.0, edge_local_min=0.0))
    for q, want in ((2.3, 229 * 0.01), (1.15, 114 * 0.01)):
        size, gate = _sizes(engine, _state(), [299.0, 301.0], q, cfg)
        np.testing.assert_array_equal(size, want)
        np.testing.assert_array_equal(gate, GATE_NONE)


@pytest.mark.parametrize("engine", ENGINES)
def test_d24_cap_order(engine):
    """D24: Q = 40 with a liquidation factor ≈ 0.5 ⇒ 20 (reference order) vs 10 (spec order)."""
    dist = 3.5000001  # k_liq = (3.5000001 − 2)/(3 + 1e-9) = 0.50000003…
    st = _state(dist_liq_sigma=dist, margin_available_usd=1e6)
    edge = 4.0  # Q = e/η = 40
    ref_size, _ = _sizes(engine, st, [299.0, 301.0], edge, PARITY)
    spec_size, _ = _sizes(engine, st, [299.0, 301.0], edge, _cfg(PARITY, size_cap_order="spec"))
    np.testing.assert_array_equal(ref_size, 20.0)
    np.testing.assert_array_equal(spec_size, 10.0)


@pytest.mark.parametrize("engine", ENGINES)
def test_lot_bump_only_in_reference_order(engine):
    """Step 3: a tiny positive optimum is bumped to one lot ([IMPL]); the spec order drops it."""
    ctl = identity_controls(N)
    ctl = ctl.replace(size_scale=np.zeros(N))
    size, gate = _sizes(
        engine, _state(), [299.0, 301.0], 0.6, _cfg(REC, mm_enforce_min_notional=False), ctl
    )
    np.testing.assert_array_equal(size, 0.01)  # 0·Q bumped to one lot, nothing shrinks it
    size, gate = _sizes(
        engine, _state(), [299.0, 301.0], 0.6, _cfg(REC, size_cap_order="spec"), ctl
    )
    np.testing.assert_array_equal(size, 0.0)
    np.testing.assert_array_equal(gate, GATE_SIZE_BELOW_LOT)


@pytest.mark.parametrize("engine", ENGINES)
def test_margin_cap_operation_order(engine):
    """Step 4: min(Q, (margin·(lev·safety))/price) = (100·5)/250 = 2.0."""
    size, _ = _sizes(engine, _state(margin_available_usd=100.0), [250.0, 250.0], 0.6, PARITY)
    np.testing.assert_array_equal(size, (100.0 * (10.0 * 0.5)) / 250.0)


@pytest.mark.parametrize("engine", ENGINES)
def test_liq_shrink_warning_venue_and_toxicity(engine):
    """Steps 5–7 multiply in order; Q = 0.6/0.1 before them."""
    st = _state(
        dist_liq_sigma=[10.0, 3.5, 10.0, 10.0, 3.5],
        status=[0, 0, STATUS_WARNING, STATUS_WARNING, STATUS_WARNING],
        toxicity=[0.0, 0.0, 0.0, 0.75, 0.75],
    )
    size, _ = _sizes(engine, st, [299.0, 301.0], 0.6, PARITY)
    k_liq = (3.5 - 2.0) / (5.0 - 2.0 + 1e-9)
    tox = min(max(1.0 - (0.75 - 0.6) / 0.3, 0.1), 1.0)
    q0 = 0.6 / 0.1  # 5.999999999999999 in f64
    want = [q0, q0 * k_liq, q0 * 0.5, q0 * 0.5 * tox, q0 * k_liq * 0.5 * tox]
    np.testing.assert_allclose(size[:, 0], np.floor(np.asarray(want) / 0.01) * 0.01, rtol=0, atol=0)
    # the toxicity ablation skips steps 6–7
    size, _ = _sizes(engine, st, [299.0, 301.0], 0.6, _cfg(PARITY, disable_toxicity_gate=True))
    np.testing.assert_array_equal(size[3], 5.99)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("q_t", [3.0, -3.0, 0.0])
def test_delta_throttle(engine, q_t):
    """Step 8: 1 < ρ < 2 keeps only the risk-reducing side, ·(2 − ρ); ρ ≥ 2 removes both."""
    glob = {"q_global_tao": q_t, "dollar_delta_usd": 150_000.0, "delta_limit_usd": 100_000.0}
    size, gate = _sizes(engine, _state(glob=glob), [299.0, 301.0], 0.6, PARITY)
    half = np.floor(0.6 / 0.1 * 0.5 / 0.01) * 0.01  # φ = 0.5 ⇒ 2.99
    if q_t > 0:
        np.testing.assert_array_equal(gate[:, 0], GATE_DELTA_THROTTLE)
        np.testing.assert_array_equal(size[:, 1], half)
    elif q_t < 0:
        np.testing.assert_array_equal(gate[:, 1], GATE_DELTA_THROTTLE)
        np.testing.assert_array_equal(size[:, 0], half)
    else:
        np.testing.assert_array_equal(size, half)
    glob["dollar_delta_usd"] = 200_000.0
    size, gate = _sizes(engine, _state(glob=glob), [299.0, 301.0], 0.6, PARITY)
    np.testing.assert_array_equal(gate, GATE_DELTA_THROTTLE)
    np.testing.assert_array_equal(size, 0.0)


@pytest.mark.parametrize("engine", ENGINES)
def test_warning_cap_max_order_and_edge_gate(engine):
    """Step 9 caps at Q_WARN_CAP = 5, step 10 at the venue max 20; a failed edge is GATE_EDGE."""
    edge = [[0.6, 9.0], [0.49, 9.0], [0.6, 9.0], [0.6, 9.0], [0.6, 9.0]]
    size, gate = _sizes(engine, _state(margin_available_usd=1e6), [299.0, 301.0], edge, PARITY)
    assert size[0, 1] == 20.0 and size[0, 0] == 5.99  # 0.6/0.1 = 5.999999999999999
    assert gate[1, 0] == GATE_EDGE and size[1, 0] == 0.0
    st = _state(glob={"risk_regime": REGIME_WARNING}, margin_available_usd=1e6)
    size, _ = _sizes(engine, st, [299.0, 301.0], edge, PARITY)
    assert size[0, 0] == 5.0 and size[0, 1] == 5.0


@pytest.mark.parametrize("engine", ENGINES)
def test_min_notional_d16(engine):
    """D16: 0.03 TAO · 300 = 9 USD < 10 ⇒ dropped when enforced, emitted in parity mode."""
    st = _state(margin_available_usd=1.8)  # cap = 1.8·5/300 = 0.03
    size, gate = _sizes(engine, st, [300.0, 300.0], 0.6, PARITY)
    np.testing.assert_array_equal(size, 0.03)
    size, gate = _sizes(engine, st, [300.0, 300.0], 0.6, _cfg(PARITY, mm_enforce_min_notional=True))
    np.testing.assert_array_equal(gate, GATE_MIN_NOTIONAL)
    np.testing.assert_array_equal(size, 0.0)


@pytest.mark.parametrize("engine", ENGINES)
def test_reduce_only_at_crit_d15(engine):
    """D15 option: dist ≤ LIQ_CRIT ⇒ long venue bid 0, short venue ask 0, flat venue both 0."""
    st = _state(dist_liq_sigma=1.5, position_tao=[2.0, -2.0, 0.0, 2.0, -2.0])
    size, gate = _sizes(engine, st, [299.0, 301.0], 0.6, _cfg(PARITY, mm_reduce_only_at_crit=True))
    np.testing.assert_array_equal(gate[:3], [[15, 0], [0, 15], [15, 15]])
    assert GATE_LIQ_REDUCE_ONLY == 15
    np.testing.assert_array_equal(size[0], [0.0, 5.99])


@pytest.mark.parametrize("engine", ENGINES)
def test_control_surface_size_scale_modes(engine):
    """'rec': Q·size_scale after size_mult (then floored); 'ref_env': rounded size·size_scale."""
    ctl = identity_controls(N).replace(size_scale=np.full(N, 0.5))
    e_bid = 300.0 - 299.41 - 0.06  # Q = 5.2999…
    size, _ = _sizes(
        engine, _state(), [299.41, 300.71], e_bid, _cfg(PARITY, control_surface_mode="rec"), ctl
    )
    np.testing.assert_array_equal(size, np.floor(e_bid / 0.1 * 0.5 / 0.01) * 0.01)
    size, _ = _sizes(engine, _state(), [299.41, 300.71], e_bid, PARITY, ctl)
    np.testing.assert_array_equal(size, 5.29 * 0.5)
    ctl0 = identity_controls(N).replace(size_scale=np.zeros(N))
    size, gate = _sizes(engine, _state(), [299.41, 300.71], e_bid, PARITY, ctl0)
    np.testing.assert_array_equal(gate, GATE_SIZE_BELOW_LOT)


# ---------------------------------------------------------------------------------------------
# parity
# ---------------------------------------------------------------------------------------------

N_PARITY = 240
_FLAG_SETS: dict[str, Flags] = {
    "parity": reference_parity_flags(),
    "rec": Flags(),
    "options": dataclasses.replace(
        Flags(), size_cap_order="spec", mm_reduce_only_at_crit=True, disable_toxicity_gate=True
    ),
    "parity_rec_controls": reference_parity_flags(control_surface_mode="rec"),
}


def _inputs(seed: int, cfg: Any) -> tuple[list[Any], list[dict[str, np.ndarray]], list[Controls]]:
    rng = np.random.default_rng(seed)
    states = random_states(seed, cfg, N_PARITY)
    out_s, ins, ctls = [], [], []
    for i, st in enumerate(states):
        s_t = float(st.fair_value) if bool(st.has_fair_value) else 300.0
        glob = {}
        if i % 4 == 1:  # delta throttle band and beyond
            dd = abs(float(st.dollar_delta_usd)) + 1.0
            glob["delta_limit_usd"] = np.float64(dd / rng.uniform(0.7, 2.5))
        if i % 7 == 3:
            glob["q_global_tao"] = np.float64(0.0)
        st = st.replace(**glob)
        px = s_t + np.stack([-rng.uniform(0.02, 3.0, N), rng.uniform(0.02, 3.0, N)], axis=1)
        px = np.round(px / 0.01) * 0.01
        if i % 11 == 5:
            px[rng.integers(N), 0] = 0.0
        edge = rng.uniform(-0.5, 4.0, (N, 2))
        edge_ok = edge >= 0.5
        out_s.append(st)
        ins.append({"px": px, "edge": edge, "edge_ok": edge_ok})
        ctls.append(random_controls(rng, N))
    return out_s, ins, ctls


@pytest.mark.parametrize("name", list(_FLAG_SETS))
def test_parity_quote_sizes(name):
    cfg = PARITY.replace(flags=_FLAG_SETS[name])
    states, ins, ctls = _inputs(7, cfg)
    ref = [
        rsz.quote_sizes(s, x["px"], x["edge"], x["edge_ok"], c, cfg)
        for s, x, c in zip(states, ins, ctls)
    ]
    ref_size = np.stack([r[0] for r in ref])
    ref_gate = np.stack([r[1] for r in ref])
    fn = jax.jit(
        jax.vmap(
            lambda s, x, c, cf: jsz.quote_sizes(s, x["px"], x["edge"], x["edge_ok"], c, cf),
            in_axes=(0, 0, 0, None),
        )
    )
    bs, bx, bc = stack(states), stack(ins), stack(ctls)
    with enable_x64():
        size, gate = jax.tree.map(np.asarray, fn(to_jax(bs), to_jax(bx), to_jax(bc), cfg))
    np.testing.assert_array_equal(gate, ref_gate)
    np.testing.assert_allclose(size, ref_size, rtol=1e-9, atol=1e-12)
    # every sizing gate is exercised across the flag sets
    seen = set(np.unique(ref_gate).tolist())
    assert {GATE_NONE, GATE_EDGE, GATE_DELTA_THROTTLE, GATE_SIZE_BELOW_LOT} <= seen
    if name == "options":
        assert GATE_LIQ_REDUCE_ONLY in seen
    if name == "rec":
        assert GATE_MIN_NOTIONAL in seen

    # float32 run
    size32, gate32 = jax.tree.map(np.asarray, fn(to_jax(bs), to_jax(bx), to_jax(bc), cfg))
    assert np.mean(gate32 != ref_gate) <= 0.01
    both = (gate32 == 0) & (ref_gate == 0)
    scale = np.maximum(1.0, bc.size_scale)[:, :, None] * np.ones((1, 1, 2))
    diff = np.abs(size32 - ref_size)
    assert np.all(diff[both] <= (0.02 * scale[both] + 1e-4))
    close = np.isclose(size32, ref_size, rtol=1e-5, atol=1e-6)
    assert np.mean(close[both]) >= 0.98


def test_sizes_emitted_are_lot_multiples_within_caps():
    """Every emitted size (reference order, no ref_env scaling) is ≥ lot, ≤ max order, on the lot grid."""
    cfg = _cfg(REC, mm_enforce_min_notional=False)
    states, ins, _ = _inputs(11, cfg)
    for st, x in zip(states, ins):
        size, gate = rsz.quote_sizes(st, x["px"], x["edge"], x["edge_ok"], None, cfg)
        emitted = gate == GATE_NONE
        assert np.all(size[emitted] >= 0.01) and np.all(size[emitted] <= 20.0)
        steps = size[emitted] / 0.01
        np.testing.assert_allclose(steps, np.round(steps), atol=1e-6)
        assert np.all(size[~emitted] == 0.0)


def test_jax_float_dtype_follows_inputs():
    st = to_jax(_state())
    px = jnp.full((N, 2), 300.0, dtype=jnp.float32)
    fn = jax.jit(lambda s, p: jsz.quote_sizes(s, p, p * 0 + 0.6, p > 0, None, PARITY))
    size, gate = fn(st, px)
    assert size.dtype == jnp.float32 and gate.dtype == jnp.int32
