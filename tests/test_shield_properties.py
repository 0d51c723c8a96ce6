"""Property tests of the safety shield: random states × adversarial proposed actions.

After the shield no invariant is ever violated (checked with the independent checker of
safety_shield/checks.py), and the JAX twin (x64) equals the NumPy reference exactly: masks,
counts, venue masks and every float leaf bit for bit. The twin is compiled once per module.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paraphina_jax.config import make_config
from paraphina_jax.config.types import Flags
from paraphina_jax.strategy.types import Controls
from paraphina_jax.testing import CASES, NOW_MS, random_state
from paraphina_jax.utils.x64 import enable_x64
from safety_shield import adversarial, checks, controls, reference, twin
from safety_shield.types import (
    HEDGE_WEIGHT_RANGE,
    N_RULES,
    RULE_CONTROLS_RANGE,
    RULE_NAMES,
    order_layout,
)

CFG = make_config()
CFG_BEST_EFFORT = make_config(flags=Flags(kill_best_effort=True))
LAYOUT = order_layout(CFG.n_venues)
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

_TWIN = {}


def twin_fn(cfg):
    """Module-level jitted twin (one compile per config's static part)."""
    key = cfg.flags
    if key not in _TWIN:
        _TWIN[key] = jax.jit(lambda s, o, v: twin.shield_actions(s, o, v, cfg))
    return _TWIN[key]


def breach_all_limits(rng, state):
    """The state with every limit breached: delta, basis, daily loss, and liquidation-critical
    venues (the proposals then 'breach every limit')."""
    v = state.venues
    dist = np.where(rng.random(v.dist_liq_sigma.shape) < 0.5, 1.0, np.asarray(v.dist_liq_sigma))
    return state.replace(
        venues=v.replace(dist_liq_sigma=dist),
        delta_limit_usd=np.float64(abs(float(state.dollar_delta_usd)) * 0.5),
        basis_limit_hard_usd=np.float64(abs(float(state.basis_usd)) * 0.5),
        daily_pnl_total=np.float64(-abs(float(CFG.risk.daily_loss_limit)) - 1.0),
    )


def make_case(seed: int, case: str, reckless: bool = False, breach: bool = False):
    rng = np.random.default_rng(seed)
    state = random_state(rng, CFG, case)
    if breach:
        state = breach_all_limits(rng, state)
    view = adversarial.random_view(rng, state, NOW_MS)
    out = adversarial.adversarial_output(rng, state, view, CFG, reckless=reckless)
    return state, view, out


def assert_trees_equal(a, b):
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape
        if x.dtype.kind == "f":
            assert np.array_equal(x.view(np.int64), y.astype(np.float64).view(np.int64)), (x, y)
        else:
            assert np.array_equal(x, y.astype(x.dtype)), (x, y)


def check_allowed(state, view, allowed, cfg):
    facts = reference.facts_from_state(state, view, cfg)
    flat = reference.flatten_actions(allowed, LAYOUT)
    found = checks.violations_one(facts, flat, LAYOUT, cfg, cancel=allowed.orders.cancel)
    assert found == [], [(v, RULE_NAMES[r]) for v, r in found]
    return facts, flat


def run_both(state, view, out, cfg):
    ref_out, ref_rec = reference.shield_actions(state, out, view, cfg)
    with enable_x64():
        tw_out, tw_rec = twin_fn(cfg)(*(jax.tree.map(jnp.asarray, t) for t in (state, out, view)))
        tw_out, tw_rec = jax.tree.map(np.asarray, (tw_out, tw_rec))
    return ref_out, ref_rec, tw_out, tw_rec


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    case=st.sampled_from(CASES),
    best_effort=st.booleans(),
    breach=st.booleans(),
)
def test_shield_adversarial_no_violation_and_twin_equal(seed, case, best_effort, breach):
    cfg = CFG_BEST_EFFORT if best_effort else CFG
    state, view, out = make_case(seed, case, breach=breach)
    ref_out, ref_rec, tw_out, tw_rec = run_both(state, view, out, cfg)
    check_allowed(state, view, ref_out, cfg)
    assert_trees_equal(ref_out, tw_out)
    assert np.array_equal(ref_rec.interventions, tw_rec.interventions)
    assert np.array_equal(ref_rec.venue_mask, tw_rec.venue_mask)
    # The proposal itself is hostile: the checker finds something in almost every case, and
    # every change the shield made is accounted for in the record.
    changed = reference.changed_mask(
        reference.flatten_actions(out, LAYOUT), reference.flatten_actions(ref_out, LAYOUT)
    )
    assert int(ref_rec.interventions.sum()) >= int(changed.sum())


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), case=st.sampled_from(("killed", "random", "warning")))
def test_shield_reckless_decision_maker_is_contained(seed, case):
    state, view, out = make_case(seed, case, reckless=True)
    ref_out, ref_rec, tw_out, tw_rec = run_both(state, view, out, CFG)
    check_allowed(state, view, ref_out, CFG)
    assert_trees_equal(ref_out, tw_out)
    assert np.array_equal(ref_rec.interventions, tw_rec.interventions)
    # sizes 100× the venue max cannot survive, nothing crosses, nothing after a kill
    flat = reference.flatten_actions(ref_out, LAYOUT)
    assert np.all(flat.size[flat.valid] <= 20.0)
    if bool(state.kill_switch):
        assert not flat.valid.any()
        assert np.all(ref_out.orders.cancel[np.asarray(state.venues.mm_has)])


def test_shield_is_idempotent_and_deterministic():
    for seed in range(6):
        state, view, out = make_case(1000 + seed, CASES[seed % len(CASES)])
        once, _ = reference.shield_actions(state, out, view, CFG)
        twice, rec2 = reference.shield_actions(state, once, view, CFG)
        flat1 = reference.flatten_actions(once, LAYOUT)
        flat2 = reference.flatten_actions(twice, LAYOUT)
        assert np.array_equal(flat1.valid, flat2.valid)
        assert np.array_equal(flat1.size, flat2.size)
        again, _ = reference.shield_actions(state, out, view, CFG)
        assert_trees_equal(once, again)
        # a second pass may only add the kill cancels it already added: no order changes
        assert int(rec2.interventions.sum()) == 0


def test_shield_batch_reference_equals_vmapped_twin():
    cases = [make_case(77 + i, CASES[i % len(CASES)]) for i in range(8)]
    stack = lambda xs: jax.tree.map(lambda *a: np.stack([np.asarray(x) for x in a]), *xs)  # noqa: E731
    states, views, outs = (stack([c[k] for c in cases]) for k in (0, 1, 2))
    ref_out, ref_rec = reference.shield_actions(states, outs, views, CFG)
    with enable_x64():
        f = jax.jit(jax.vmap(lambda s, o, v: twin.shield_actions(s, o, v, CFG)))
        tw_out, tw_rec = jax.tree.map(
            np.asarray, f(*(jax.tree.map(jnp.asarray, t) for t in (states, outs, views)))
        )
    assert_trees_equal(ref_out, tw_out)
    assert np.array_equal(ref_rec.interventions, tw_rec.interventions)
    assert ref_rec.interventions.shape == (8, N_RULES)


_finite_or_not = st.one_of(
    st.floats(-50, 50, allow_nan=False),
    st.sampled_from([np.nan, np.inf, -np.inf, 1e300, -1e300]),
)


@SETTINGS
@given(
    vals=st.lists(_finite_or_not, min_size=16, max_size=16),
)
def test_shield_controls_clipped_to_encoded_ranges(vals):
    n = 5
    a = np.asarray(vals, np.float64)
    c = Controls(
        spread_scale=a[0:5],
        size_scale=a[5:10],
        rprice_offset_usd=a[10:15] * 10.0,
        hedge_scale=np.float64(a[15]),
        hedge_venue_weights=a[0:5] / 10.0,
    )
    new, rec = reference.clip_controls(c, n)
    assert np.all((new.spread_scale >= 0.5) & (new.spread_scale <= 3.0))
    assert np.all((new.size_scale >= 0.0) & (new.size_scale <= 2.0))
    assert np.all(np.abs(new.rprice_offset_usd) <= 10.0)
    assert 0.0 <= float(new.hedge_scale) <= 2.0
    w = new.hedge_venue_weights
    assert np.all((w >= HEDGE_WEIGHT_RANGE[0]) & (w <= HEDGE_WEIGHT_RANGE[1]))
    assert abs(float(w.sum()) - 1.0) <= 1e-6
    with enable_x64():
        tw, trec = jax.tree.map(np.asarray, controls.clip_controls(jax.tree.map(jnp.asarray, c), n))
    assert_trees_equal(new, tw)
    assert np.array_equal(rec.interventions, trec.interventions)
    assert np.array_equal(rec.venue_mask, trec.venue_mask)
    bad = int(np.sum(~np.isfinite(a[:15]))) + int(not np.isfinite(a[15]))
    assert int(rec.interventions[RULE_CONTROLS_RANGE]) >= min(bad, 1)


def test_shield_identity_controls_untouched():
    from paraphina_jax.strategy.types import identity_controls

    c = identity_controls(5)
    new, rec = reference.clip_controls(c, 5)
    assert int(rec.interventions.sum()) == 0
    assert_trees_equal(c, new)


@pytest.mark.parametrize("seed", [3, 4])
def test_shield_hook_signature_matches_episode(seed):
    state, view, out = make_case(seed, "random")
    new, counts = reference.reference_shield(state, out, view, CFG)
    assert counts.shape == (N_RULES,) and counts.dtype == np.int32
    with enable_x64():
        args = tuple(jax.tree.map(jnp.asarray, t) for t in (state, out, view))
        shape = jax.eval_shape(lambda s, o, v: twin.shield_hook(s, o, v, CFG), *args)
        _, tw_rec = twin_fn(CFG)(*args)
    assert shape[1].shape == (N_RULES,) and shape[1].dtype == jnp.int32
    assert jax.tree.structure(shape[0]) == jax.tree.structure(out)
    assert np.array_equal(np.asarray(tw_rec.interventions), counts)


def _benign(state):
    """No limit near breach, no venue near liquidation: the rare-event rules have nothing to do."""
    return state.replace(
        venues=state.venues.replace(dist_liq_sigma=np.full_like(state.venues.dist_liq_sigma, 1e3)),
        delta_limit_usd=np.float64(1e15),
        basis_limit_hard_usd=np.float64(1e15),
        daily_pnl_total=np.float64(0.0),
    )


@pytest.mark.parametrize("hostile", [0, 1])
def test_shield_batch_benign_and_hostile_equal_reference(hostile):
    """A batch in which no limit is near breach (the rare-event rules have nothing to do), and
    the same with one environment breaching every limit: the vmapped twin hook equals the
    reference on every environment, counts included."""
    cases = []
    for i in range(6):
        state, view, out = make_case(300 + i, CASES[i % len(CASES)], reckless=i % 2 == 0)
        cases.append((_benign(state), view, out))
    if hostile:
        cases[3] = make_case(399, "random", reckless=True, breach=True)
    stack = lambda xs: jax.tree.map(lambda *a: np.stack([np.asarray(x) for x in a]), *xs)  # noqa: E731
    states, views, outs = (stack([c[k] for c in cases]) for k in (0, 1, 2))
    ref_out, ref_rec = reference.shield_actions(states, outs, views, CFG)
    rare = [
        RULE_NAMES.index(n) for n in ("liquidation", "delta_limit", "basis_limit", "daily_loss")
    ]
    assert (ref_rec.interventions[:, rare].sum() > 0) == bool(hostile)
    with enable_x64():
        args = [jax.tree.map(jnp.asarray, t) for t in (states, outs, views)]
        hook = jax.jit(jax.vmap(lambda s, o, v: twin.shield_hook(s, o, v, CFG)))
        tw_out, tw_counts = jax.tree.map(np.asarray, hook(*args))
    assert_trees_equal(ref_out, tw_out)
    assert np.array_equal(ref_rec.interventions, tw_counts)


def test_shield_lanes_batching_equals_one_environment():
    """The twin's core batches lane-last (`safety_shield.twin.shield_core`, a custom_vmap): a
    doubly vmapped hook ([2, 3] environments), and a vmap over the actions only (state and book
    shared, so part of the inputs are unbatched and broadcast), equal one-environment calls
    bit for bit, counts included; the kill-exit flag (static) is honoured in both paths."""
    for cfg in (CFG, CFG_BEST_EFFORT):
        cases = [
            make_case(500 + i, CASES[i % len(CASES)], reckless=i % 2 == 0, breach=i == 4)
            for i in range(6)
        ]
        stack = lambda xs: jax.tree.map(lambda *a: np.stack([np.asarray(x) for x in a]), *xs)  # noqa: E731
        with enable_x64():

            def one(s, o, v, cfg=cfg):
                return twin.shield_hook(s, o, v, cfg)

            singles = [jax.tree.map(np.asarray, jax.jit(one)(c[0], c[2], c[1])) for c in cases]
            states, views, outs = (stack([c[k] for c in cases]) for k in (0, 1, 2))
            grid = jax.tree.map(lambda x: x.reshape((2, 3) + x.shape[1:]), (states, outs, views))
            nested = jax.jit(jax.vmap(jax.vmap(one)))(*grid)
            nested = jax.tree.map(lambda x: np.asarray(x).reshape((6,) + x.shape[2:]), nested)
            shared = jax.jit(jax.vmap(one, in_axes=(None, 0, None)))(cases[0][0], outs, cases[0][1])
            shared = jax.tree.map(np.asarray, shared)
            solo = [
                jax.tree.map(np.asarray, jax.jit(one)(cases[0][0], c[2], cases[0][1]))
                for c in cases
            ]
        for i in range(6):
            assert_trees_equal(singles[i], jax.tree.map(lambda x, i=i: x[i], nested))
            assert_trees_equal(solo[i], jax.tree.map(lambda x, i=i: x[i], shared))
        assert sum(int(s[1].sum()) for s in singles) > 0  # the shield did intervene
