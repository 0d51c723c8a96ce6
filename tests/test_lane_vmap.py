"""`paraphina_jax.utils.lane_vmap`: the lane-last batching interpreter equals `jax.vmap`.

Each case batches one per-environment function both ways (float64 where floats are involved,
enabled locally), with the lane arm's inputs batch-first and batch-last. Batch-first inputs
keep the batch-first layout, and the results are compared bit for bit. Batch-last inputs run
the lane-last rules; integers and booleans are compared exactly and floats to the last bits:
XLA:CPU associates some float computations differently by layout (its windowed reductions
for a cumulative sum, a dot on transposed operands, multiply-adds contracted in one kernel
layout and not in the other). The cases cover every rule of the
interpreter: elementwise operations mixing batched and unbatched operands, the structural
operations, reductions, sorts, dynamic slices, gathers and scatters with unbatched indices, the
operations that fall back to `vmap` (gather and scatter with batched indices, dot), `while` (batched and unbatched predicates), `cond` (batched and
unbatched index), `scan`, nested `jit` and custom-derivative / custom-batching calls, front and
last batch axes on inputs and outputs, and the loop-carry layout helper.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import lax

from paraphina_jax.utils.lane_vmap import (
    LAST,
    lane_vmap,
    loop_carry_axes,
    move_axes,
    natural_out_axes,
)
from paraphina_jax.utils.lanes import lanes_last
from paraphina_jax.utils.x64 import enable_x64

B, N = 7, 5


def _data(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.normal(size=(B, N)),  # batched [N]
        "m": rng.normal(size=(B, N, 3)),  # batched [N, 3]
        "s": rng.normal(size=(B,)),  # batched scalar
        "i": rng.integers(0, N, size=(B,)).astype(np.int32),  # batched index
        "k": rng.integers(-9, 9, size=(B, N)).astype(np.int32),
        "w": rng.normal(size=(N,)),  # unbatched [N]
    }


def _same(a: object, b: object, exact: bool = True) -> None:
    """Equal leaves: bit for bit, or (`exact=False`) integers and booleans exactly and floats to
    the last bits (see the module docstring)."""
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape and x.dtype == y.dtype
        if not exact and np.issubdtype(x.dtype, np.floating):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-13)
        else:
            np.testing.assert_array_equal(x, y)


def _both(fn, in_axes, *args, out_axes=0, last=False):  # noqa: ANN001, ANN202
    """`(vmap result, lane_vmap result)`; with `last` the lane arm gets its batched inputs
    batch-last (`in_axes=-1`), so that the lane-last rules run, not only the batch-first ones."""
    want = jax.jit(jax.vmap(fn, in_axes=in_axes, out_axes=out_axes))(*args)
    if last:
        args = tuple(x if a is None else jnp.moveaxis(x, 0, -1) for x, a in zip(args, in_axes))
        in_axes = tuple(a if a is None else LAST for a in in_axes)
    got = jax.jit(lane_vmap(fn, in_axes=in_axes, out_axes=out_axes))(*args)
    return want, got


def elementwise(x, m, s, i, k, w):  # noqa: ANN001, ANN201
    y = jnp.where(x > 0, x * w - s, jnp.exp(x) + 1.0)  # batched ⊗ unbatched ⊗ scalar
    z = lax.select(s > 0, y, -y)  # scalar predicate
    c = jnp.clip(z, -0.5, w)  # clamp against an unbatched bound
    q = (k >> 1) ^ (k & 3) + jnp.int32(7)
    lo = m[:, :1] - m  # size-1 broadcasting inside lax
    b32 = lax.bitcast_convert_type(x.astype(jnp.float32), jnp.int32)
    return c, q, lo, jnp.isfinite(c) & (q > 0), b32, jnp.round(y), y.astype(jnp.int32)


def structural(x, m, s, i, k, w):  # noqa: ANN001, ANN201
    r = m.reshape(N * 3)[::2]
    t = jnp.transpose(m)[1]
    e = jnp.expand_dims(x, 0)[0, 1:4]
    p = jnp.pad(x, (2, 1), constant_values=3.0)
    cat = jnp.concatenate([x, w, x[::-1]])
    st = jnp.stack([x, w], axis=1)
    a, b_ = jnp.split(m, [1], axis=1)
    red = (jnp.sum(m, axis=0), jnp.max(x), jnp.min(m, axis=(0, 1)), jnp.argmax(x), jnp.any(k > 3))
    neg0 = jnp.where(x > 0, -0.0, x)  # −0 entries: a cumulative sum starts from +0
    cum = (
        jnp.cumsum(k),
        jnp.cumsum(neg0),
        lax.cumsum(m, axis=1, reverse=True),
        jnp.cumprod(x[:3]),
        lax.cummax(x),
        lax.cummin(k, reverse=True),
        lax.cummax((x > 0).astype(jnp.int8)),
    )
    srt = jnp.sort(x), jnp.argsort(x, stable=True), lax.sort((x, k), num_keys=1)
    bc = jnp.broadcast_to(s, (2, N)) + x
    return r, t, e, p, cat, st, a, b_, red, cum, srt, bc


def indexing(x, m, s, i, k, w):  # noqa: ANN001, ANN201
    ds = lax.dynamic_slice_in_dim(x, 1, 3)  # unbatched start
    db = lax.dynamic_slice_in_dim(x, jnp.minimum(i, N - 2), 2)  # batched start (fallback)
    du = lax.dynamic_update_slice_in_dim(m, x[:2, None] * jnp.ones((2, 3)), 2, 0)
    g = x[i], m[i, 1], jnp.take_along_axis(m, k[:, None] % 3, axis=1)
    sc = jnp.zeros((N, 3)).at[i, k[0] % 3].set(s).at[k % N, 0].add(x, mode="drop")
    # unbatched indices on batched operands (the batch as a trailing window dimension)
    fixed = jnp.array([4, 0, 2, 9])
    gu = x[fixed[:3]], m[:, 1], m[fixed, 2], x.at[fixed].get(mode="fill", fill_value=-1.0)
    su = (
        x.at[2].set(s),
        m.at[1:3, 0].add(x[:2]),
        m.at[fixed, 1].set(s, mode="drop"),
        x.at[fixed[:2]].max(w[:2]),
        jnp.zeros(N).at[fixed[:3]].set(s),  # unbatched operand, batched updates
    )
    dot = m.T @ x, jnp.einsum("ij,ij->i", m, m)
    return ds, db, du, g, sc, dot, gu, su


def control(x, m, s, i, k, w):  # noqa: ANN001, ANN201
    # while, batched predicate: a different trip count per lane
    def c1(st):  # noqa: ANN001, ANN202
        return st[0] < i + 2

    def b1(st):  # noqa: ANN001, ANN202
        return st[0] + 1, st[1] * 0.5 + x, st[2] + w

    wl = lax.while_loop(c1, b1, (jnp.int32(0), x, jnp.zeros(N)))
    # while, unbatched predicate (trip count 3 everywhere)
    wu = lax.fori_loop(0, jnp.int32(3), lambda j, a: a * 1.5 + s * j, x)
    # scan with a batched carry and batched xs; a static fori_loop
    sc = lax.scan(lambda c, r: (c + r.sum() * s, c * r), jnp.zeros(3), m)
    fl = lax.fori_loop(0, 4, lambda j, a: a.at[j % N].add(s), x)
    # cond: batched predicate, and an unbatched index
    cb = lax.cond(s > 0, lambda a: (a * 2.0, i), lambda a: (a - w, i + 1), x)
    cu = lax.switch(1, [lambda a: a + 1.0, lambda a: a * s], x)
    return wl, wu, sc, fl, cb, cu


@jax.jit
def _inner(a, b):  # noqa: ANN001, ANN202
    return jnp.tanh(a) * b


def calls(x, m, s, i, k, w):  # noqa: ANN001, ANN201
    relu = jax.nn.relu(x - s)  # custom_jvp
    lanes = lanes_last(lambda a, b: a * b + 1.0)(x, w)  # custom_vmap
    return _inner(x, w), relu, lanes, jax.checkpoint(lambda a: jnp.sin(a) * 2.0)(x)


ALL = (0, 0, 0, 0, 0, None)


@pytest.mark.parametrize("last", [False, True], ids=["front", "last"])
@pytest.mark.parametrize("fn", [elementwise, structural, indexing, control, calls])
def test_lane_vmap_equals_vmap(fn, last) -> None:  # noqa: ANN001
    with enable_x64():
        d = {k: jnp.asarray(v) for k, v in _data().items()}
        args = (d["x"], d["m"], d["s"], d["i"], d["k"], d["w"])
        want, got = _both(fn, ALL, *args, last=last)
        _same(got, want, exact=not last)


def test_batch_last_inputs_and_outputs() -> None:
    """Inputs given batch-last, outputs asked batch-last or front, a pytree spec."""
    with enable_x64():
        d = {k: jnp.asarray(v) for k, v in _data(1).items()}

        def fn(tree, w):  # noqa: ANN001, ANN202
            return {"y": tree["a"] * w + tree["b"][:, 0], "n": jnp.sum(tree["a"])}

        tree_front = {"a": d["x"], "b": d["m"]}
        tree_last = move_axes(tree_front, 0, {"a": LAST, "b": 0})
        want = jax.vmap(fn, in_axes=(0, None))(tree_front, d["w"])
        got = lane_vmap(fn, in_axes=({"a": LAST, "b": 0}, None), out_axes={"y": LAST, "n": 0})(
            tree_last, d["w"]
        )
        _same(got["y"], jnp.moveaxis(want["y"], 0, -1))
        _same(got["n"], want["n"])


def test_unbatched_output_and_errors() -> None:
    d = _data(2)
    x = jnp.asarray(d["x"], jnp.float32)
    f = lane_vmap(lambda a, b: (a + 1.0, b * 2.0), in_axes=(0, None), out_axes=(0, None))
    y, z = f(x, jnp.ones(3))
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x) + 1.0)
    np.testing.assert_array_equal(np.asarray(z), np.full(3, 2.0))
    with pytest.raises(ValueError, match="out_axes None"):
        lane_vmap(lambda a: a, in_axes=0, out_axes=None)(x)
    with pytest.raises(ValueError, match="one batch size"):
        lane_vmap(lambda a, b: a + b, in_axes=(0, 0))(x, x[:3])


def test_scatter_target_stays_in_front_and_carry_axes_settle() -> None:
    """A buffer updated by a scatter (which runs batch-first) comes back batch-first; the loop
    carry helper keeps it there and puts everything else last."""

    def step(c, v):  # noqa: ANN001, ANN202
        ring = c["ring"].at[c["head"] % 4].set(v)
        return {"ring": ring, "acc": c["acc"] * 0.5 + v, "head": c["head"] + 1}, jnp.sum(ring)

    carry = {
        "ring": jnp.zeros((B, 4, N)),
        "acc": jnp.zeros((B, N)),
        "head": jnp.arange(B, dtype=jnp.int32),
    }
    v = jnp.asarray(_data(3)["x"], jnp.float32)
    nat = natural_out_axes(step, (LAST, LAST), move_axes(carry, 0, LAST), v.T)
    assert nat[0]["ring"] == 0 and nat[0]["acc"] == LAST
    axes = loop_carry_axes(step, carry, (LAST,), v.T)
    assert axes == {"ring": 0, "acc": LAST, "head": LAST}

    def loop(c0, vs, batched):  # noqa: ANN001, ANN202
        def body(c, x):  # noqa: ANN001, ANN202
            return batched(c, x)

        return lax.scan(body, c0, vs)

    vs = jnp.stack([v, v * 2.0, -v])
    want = jax.jit(lambda c0, vs: loop(c0, vs, jax.vmap(step)))(carry, vs)
    lane = lane_vmap(step, in_axes=(axes, LAST), out_axes=(axes, 0))
    got_c, got_y = jax.jit(
        lambda c0, vs: loop(move_axes(c0, 0, axes), jnp.moveaxis(vs, 1, -1), lane)
    )(carry, vs)
    _same(move_axes(got_c, axes, 0), want[0])
    _same(got_y, want[1])


# Random programs: a chain of steps drawn from the rules' menu, each reading the state
# (`v [N]`, `m [N, 3]`, `c []`) and writing one part of it, with inputs batched in front, last or
# not at all. The lane-last interpreter must equal `jax.vmap` on every one: integers and booleans
# exactly, floats to the last bits. Not bit for bit in general: XLA:CPU contracts `a * b - c`
# into a fused multiply-add in some kernel layouts and not in others (found by this test: a
# 1-ulp difference in one lane of `v * w - c`); the hand-written cases above happen to be exact.
def _step(op: int, v, m, c, w, i):  # noqa: ANN001, ANN202
    if op == 0:  # elementwise with an unbatched operand and a scalar
        return jnp.where(v > c, v * w - c, jnp.exp(-jnp.abs(v))), m, c
    if op == 1:  # reductions
        return v, m, jnp.sum(m) * 0.1 + jnp.max(v) - jnp.min(m[:, 1])
    if op == 2:  # reshape / transpose / concatenate / slice
        t = jnp.concatenate([m.T.reshape(-1), v])[: 3 * N].reshape(N, 3)
        return v, t[::-1] + m, c
    if op == 3:  # cumulative along the venue axis, sort
        return jnp.sort(lax.cumsum(v, reverse=True)), lax.cummax(m, axis=0), c
    if op == 4:  # gather with a batched index, scatter with an unbatched one
        return v.at[jnp.array([1, 3])].add(c), m.at[i % N].set(v[:3] * c), v[i % N]
    if op == 5:  # while with a per-lane trip count

        def body(st):  # noqa: ANN001, ANN202
            return st[0] + 1, st[1] * 0.75 + w

        _, vv = lax.while_loop(lambda st: st[0] < i % 4, body, (jnp.int32(0), v))
        return vv, m, c
    if op == 6:  # cond with a batched predicate
        return lax.cond(c > 0, lambda a: a + 1.0, lambda a: a * w, v), m, c
    # op == 7: scan over the rows of m, carrying the scalar
    c2, ys = lax.scan(lambda a, r: (a * 0.5 + r[0], r * a), c, m)
    return v, ys, c2


def _program(ops: tuple[int, ...]):  # noqa: ANN202
    def fn(v, m, c, w, i):  # noqa: ANN001, ANN202
        for op in ops:
            v, m, c = _step(op, v, m, c, w, i)
        return v, m, c

    return fn


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    ops=st.lists(st.integers(0, 7), min_size=1, max_size=6).map(tuple),
    axes=st.tuples(*[st.sampled_from([0, -1, None])] * 3),
    seed=st.integers(0, 2**16),
)
def test_random_programs_equal_vmap(ops, axes, seed) -> None:  # noqa: ANN001
    rng = np.random.default_rng(seed)
    with enable_x64():
        v, m, c = (jnp.asarray(rng.normal(size=(B, *s))) for s in ((N,), (N, 3), ()))
        w = jnp.asarray(rng.normal(size=N))
        i = jnp.asarray(rng.integers(0, 9, size=B), jnp.int32)
        fn = _program(ops)
        front_axes = (*(None if a is None else 0 for a in axes), None, 0)
        unb = tuple(x[0] if a is None else x for x, a in zip((v, m, c), axes))
        want = jax.jit(jax.vmap(fn, in_axes=front_axes))(*unb, w, i)
        lane_in = tuple(x if a in (None, 0) else jnp.moveaxis(x, 0, -1) for x, a in zip(unb, axes))
        got = jax.jit(lane_vmap(fn, in_axes=(*axes, None, 0), out_axes=0))(*lane_in, w, i)
        _same(got, want, exact=False)
