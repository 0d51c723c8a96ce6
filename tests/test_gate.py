"""`paraphina_jax.utils.gate.batch_gate`: a step skipped for a whole vmapped batch when no
element's predicate is true; otherwise run on every element (the caller's contract makes that
exact)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from paraphina_jax.utils.gate import batch_gate

CALLS = {"traced": 0}


def _step(k, carry):
    # deliberately NOT the identity where the predicate is false, so the tests can see which
    # elements the step ran on
    CALLS["traced"] += 1
    x, n = carry
    return x * k + 1.0, n + 1


GATED = batch_gate(_step)


def test_gate_unbatched_is_a_cond():
    f = jax.jit(GATED)
    out_t = f(True, 2.0, (jnp.float32(3.0), jnp.int32(4)))
    out_f = f(False, 2.0, (jnp.float32(3.0), jnp.int32(4)))
    assert (float(out_t[0]), int(out_t[1])) == (7.0, 5)
    assert (float(out_f[0]), int(out_f[1])) == (3.0, 4)


def test_gate_batched_all_false_skips_any_true_runs_all():
    x = jnp.arange(4.0, dtype=jnp.float32)
    n = jnp.arange(4, dtype=jnp.int32)
    f = jax.jit(jax.vmap(GATED, in_axes=(0, None, 0)))
    off = f(jnp.zeros(4, bool), 2.0, (x, n))
    assert np.array_equal(off[0], x) and np.array_equal(off[1], n)
    on = f(jnp.array([False, False, True, False]), 2.0, (x, n))
    assert np.array_equal(on[0], x * 2.0 + 1.0) and np.array_equal(on[1], n + 1)


def test_gate_mixed_batched_consts_and_unbatched_carry():
    k = jnp.array([1.0, 2.0, 3.0], jnp.float32)
    f = jax.jit(jax.vmap(GATED, in_axes=(0, 0, None)))
    off = f(jnp.zeros(3, bool), k, (jnp.float32(5.0), jnp.int32(0)))
    # unbatched carry comes back broadcast to the batch
    assert off[0].shape == (3,) and np.array_equal(off[0], np.full(3, 5.0))
    on = f(jnp.array([True, False, False]), k, (jnp.float32(5.0), jnp.int32(0)))
    assert np.array_equal(on[0], 5.0 * np.asarray(k) + 1.0) and np.array_equal(on[1], [1, 1, 1])


def test_gate_nested_vmap_gates_per_outer_row():
    pred = jnp.array([[False, True], [False, False]])
    x = jnp.arange(4.0, dtype=jnp.float32).reshape(2, 2)
    n = jnp.zeros((2, 2), jnp.int32)
    inner = jax.vmap(GATED, in_axes=(0, None, 0))
    out = jax.jit(jax.vmap(inner, in_axes=(0, None, 0)))(pred, 3.0, (x, n))
    want_x = np.asarray(x).copy()
    want_x[0] = want_x[0] * 3.0 + 1.0  # row 0 has a true element: the whole row ran
    assert np.array_equal(out[0], want_x)
    assert np.array_equal(out[1], [[1, 1], [0, 0]])


def test_gate_exact_under_its_contract():
    """A step that is the identity wherever the predicate is false: gated == ungated, bit for
    bit, whatever the batch's mix."""

    def clip_step(lim, carry):
        (x,) = carry
        return (jnp.where(x > lim, lim, x),)

    gated = batch_gate(clip_step)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    lim = np.float32(1.5)
    for frac in (0.0, 0.02, 1.0):
        xs = np.where(rng.random((64, 1)) < frac, x * 10.0, np.clip(x, -1.0, 1.0))
        pred = jnp.any(jnp.asarray(xs) > lim, axis=1)
        got = jax.jit(jax.vmap(gated, in_axes=(0, None, 0)))(pred, lim, (jnp.asarray(xs),))[0]
        want = jax.vmap(clip_step, in_axes=(None, 0))(lim, (jnp.asarray(xs),))[0]
        assert np.array_equal(np.asarray(got).view(np.int32), np.asarray(want).view(np.int32))
