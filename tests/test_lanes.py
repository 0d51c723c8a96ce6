"""`paraphina_jax.utils.lanes.lanes_last`: a per-environment function written for a trailing lane
axis, batched lane-last under vmap, equals its one-environment calls, whatever is batched."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from paraphina_jax.utils.lanes import lanes_last


def _fn(x, w, s):
    """x [K, N], w [N], s [] (each with a trailing lane axis inside): leading-axis indexing,
    stacking, a leading-axis reduction and broadcasting of per-venue and scalar values."""
    rows = [jnp.where(x[k] > s, x[k] * w, -x[k]) for k in range(x.shape[0])]
    y = jnp.stack(rows)  # [K, N, L]
    return y, jnp.sum(y, axis=(0, 1)), jnp.any(y > 1.0, axis=0)


def test_lanes_last_equals_one_environment_calls():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(6, 3, 4)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
    s = jnp.asarray(rng.normal(size=(6,)), jnp.float32)
    f = lanes_last(_fn)
    one = [jax.tree.map(np.asarray, jax.jit(f)(x[i], w[i], s[i])) for i in range(6)]
    both = jax.tree.map(np.asarray, jax.jit(jax.vmap(f))(x, w, s))
    shared = jax.tree.map(np.asarray, jax.jit(jax.vmap(f, in_axes=(0, None, None)))(x, w[0], s[0]))
    grid = jax.tree.map(lambda a: a.reshape((2, 3) + a.shape[1:]), (x, w, s))
    nested = jax.tree.map(np.asarray, jax.jit(jax.vmap(jax.vmap(f)))(*grid))
    for i in range(6):
        for a, b in zip(one[i], both):
            np.testing.assert_array_equal(a, b[i])
        for a, b in zip(one[i], nested):
            np.testing.assert_array_equal(a, b.reshape((6,) + b.shape[2:])[i])
        want = jax.tree.map(np.asarray, jax.jit(f)(x[i], w[0], s[0]))
        for a, b in zip(want, shared):
            np.testing.assert_array_equal(a, b[i])
    assert one[0][0].shape == (3, 4) and one[0][1].shape == () and one[0][2].shape == (4,)
