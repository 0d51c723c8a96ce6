"""The per-primitive rules of :mod:`paraphina_jax.utils.lane_vmap`: elementwise, structural,
cumulative, indexed (gather / scatter with unbatched indices) and several-operand operations on
batched values that carry where their batch axis is (`None` unbatched, `0` front, `LAST`).

A rule returns `[(array, axis), ...]`, or `None` when it does not apply (the interpreter then
runs the equation through :func:`fallback`, `jax.vmap` with the batch in front).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

Array = Any
LAST = -1  # batch axis innermost
# A batched value: (array, axis) with axis None (unbatched), 0 (front) or LAST.
Val = tuple[Array, int | None]

ELEMENTWISE = frozenset(
    """abs acos acosh add and asin asinh atan atan2 atanh cbrt ceil clamp clz conj convert_element_type
    copy copy_p cos cosh digamma div eq erf erf_inv erfc exp exp2 expm1 floor ge gt igamma imag
    integer_pow is_finite le lgamma log log1p logistic lt max min mul ne neg nextafter not or pow
    population_count real reduce_precision rem round rsqrt select_n shift_left shift_right_arithmetic
    shift_right_logical sign sin sinh sqrt square sub tan tanh xor""".split()
)
_REDUCTIONS = frozenset(
    "reduce_sum reduce_max reduce_min reduce_prod reduce_and reduce_or reduce_xor argmax argmin".split()
)
_CUMULATIVE = frozenset("cumsum cumprod cummax cummin cumlogsumexp".split())

# --------------------------------------------------------------------------------------------
# Moving batch axes
# --------------------------------------------------------------------------------------------


def move(x: Array, ax: int | None, want: int, shape: tuple[int, ...], b: int) -> Array:
    """`x` (per-environment `shape`, batch axis `ax`) with its batch axis at `want` (0 / LAST);
    an unbatched `x` is broadcast."""
    nd = len(shape)
    if ax is None:
        x = jnp.asarray(x)
        if want == 0:
            return lax.broadcast_in_dim(x, (b, *shape), tuple(range(1, nd + 1)))
        return lax.broadcast_in_dim(x, (*shape, b), tuple(range(nd)))
    if nd == 0 or ax == want:
        return x
    return jnp.moveaxis(x, 0, -1) if want == LAST else jnp.moveaxis(x, -1, 0)


def common_axis(vals: Sequence[Val], shapes: Sequence[tuple[int, ...]]) -> int:
    """Front when every batched operand with per-environment rank ≥ 1 is in front, else LAST."""
    axes = [a for (_, a), s in zip(vals, shapes) if a is not None and len(s) > 0]
    return 0 if axes and all(a == 0 for a in axes) else LAST


def _shift(d: int, want: int) -> int:
    """Per-environment axis `d` in a batched array with the batch axis at `want`."""
    return d + 1 if want == 0 else d


def bind(eqn: Any, args: Sequence[Array], params: dict[str, Any] | None = None) -> list[Array]:
    """The equation's primitive applied to `args` (with `params` in place of its own), as a
    list of results."""
    got = eqn.primitive.get_bind_params(eqn.params if params is None else params)
    # `(subfuns, params)` in older JAX releases, the params alone in newer ones
    subfuns, bind_params = got if isinstance(got, tuple) else ((), got)
    out = eqn.primitive.bind(*subfuns, *args, **bind_params)
    return list(out) if eqn.primitive.multiple_results else [out]


def shapes_of(vs: Sequence[Any]) -> list[tuple[int, ...]]:
    """Per-environment shapes of jaxpr variables."""
    return [tuple(v.aval.shape) for v in vs]


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------


def fallback(eqn: Any, vals: Sequence[Val], b: int) -> list[Val]:
    """`jax.vmap` of the equation with the batch axis in front (results stay in front)."""
    in_axes = [None if a is None else (0 if a == 0 else jnp.ndim(x) - 1) for x, a in vals]
    outs = jax.vmap(lambda *xs: bind(eqn, xs), in_axes=in_axes, out_axes=0, axis_size=b)(
        *[x for x, _ in vals]
    )
    return [(o, 0) for o in outs]


def elementwise(eqn: Any, vals: Sequence[Val], b: int) -> list[Val]:
    shapes = shapes_of(eqn.invars)
    out_shape = tuple(eqn.outvars[0].aval.shape)
    want = common_axis(vals, shapes)
    args = []
    for (x, a), s in zip(vals, shapes):
        x = move(x, a, want, s, b)
        if len(s) == 0 and len(out_shape) > 0:  # a scalar operand (select_n, clamp)
            nd = len(out_shape)
            dims = (0,) if want == 0 else (nd,)
            full = (b, *out_shape) if want == 0 else (*out_shape, b)
            x = lax.broadcast_in_dim(x, full, dims)
        args.append(x)
    return [(o, want) for o in bind(eqn, args)]


_SCAN_OPS = {"cumsum": lax.add, "cumprod": lax.mul, "cummax": lax.max, "cummin": lax.min}
_UNROLL_SCAN = 64  # longest scanned axis written out as explicit steps


def _unrolled_scan(name: str, x: Array, axis: int, reverse: bool) -> Array:
    """A cumulative op along a leading axis as explicit elementwise steps from the identity
    (`((id ∘ x₀) ∘ x₁) ∘ …`, `0 + −0 = +0` included): exact for integers and max / min; a float
    sum or product can differ from XLA's windowed reduction in the last bits (its rewrites
    associate long windows differently).
    XLA:CPU runs a reduce-window along a major axis as a slow generic loop; these steps fuse into
    batch-wide vector kernels."""
    dt = x.dtype
    if name == "cumsum":
        ident = jnp.zeros((), dt)
    elif name == "cumprod":
        ident = jnp.ones((), dt)
    elif jnp.issubdtype(dt, jnp.floating):
        ident = jnp.asarray(-jnp.inf if name == "cummax" else jnp.inf, dt)
    else:
        info = jnp.iinfo(dt)
        ident = jnp.asarray(info.min if name == "cummax" else info.max, dt)
    op = _SCAN_OPS[name]
    n = x.shape[axis]
    order = range(n - 1, -1, -1) if reverse else range(n)
    acc = jnp.broadcast_to(ident, lax.index_in_dim(x, 0, axis, keepdims=True).shape)
    out: list[Array] = [None] * n  # type: ignore[list-item]
    for j in order:
        acc = op(acc, lax.index_in_dim(x, j, axis, keepdims=True))
        out[j] = acc
    return lax.concatenate(out, axis)


def structural(eqn: Any, vals: Sequence[Val], b: int) -> list[Val] | None:
    """Structural one-operand rules that keep the operand's batch axis (front or last)."""
    name = eqn.primitive.name
    (x, a) = vals[0]
    s = tuple(eqn.invars[0].aval.shape)
    want = LAST if (a == LAST or len(s) == 0) else 0
    p = dict(eqn.params)
    if name == "broadcast_in_dim":
        shape, dims = tuple(p["shape"]), tuple(p["broadcast_dimensions"])
        if want == 0:
            p.update(shape=(b, *shape), broadcast_dimensions=(0, *(d + 1 for d in dims)))
        else:
            p.update(shape=(*shape, b), broadcast_dimensions=(*dims, len(shape)))
        p["sharding"] = None
        if any(ax is not None for _, ax in vals[1:]):
            return None
        args = [x, *[v for v, _ in vals[1:]]]
    elif name == "reshape":
        if p.get("dimensions") is not None:
            return None
        ns = tuple(p["new_sizes"])
        p.update(new_sizes=(b, *ns) if want == 0 else (*ns, b), sharding=None)
        args = [x]
    elif name == "squeeze":
        p["dimensions"] = tuple(_shift(d, want) for d in p["dimensions"])
        args = [x]
    elif name == "transpose":
        perm = tuple(p["permutation"])
        n = len(perm)
        p["permutation"] = (0, *(q + 1 for q in perm)) if want == 0 else (*perm, n)
        args = [x]
    elif name in _REDUCTIONS:
        p["axes"] = tuple(_shift(d, want) for d in p["axes"])
        if "out_sharding" in p:
            p["out_sharding"] = None
        args = [x]
    elif name in _CUMULATIVE:
        p["axis"] = _shift(p["axis"], want)
        if want == LAST and name in _SCAN_OPS and s[p["axis"]] <= _UNROLL_SCAN:
            return [(_unrolled_scan(name, x, p["axis"], p["reverse"]), LAST)]
        args = [x]
    elif name == "rev":
        p["dimensions"] = tuple(_shift(d, want) for d in p["dimensions"])
        args = [x]
    elif name == "slice":
        st, li = tuple(p["start_indices"]), tuple(p["limit_indices"])
        sd = p.get("strides")
        if want == 0:
            p.update(start_indices=(0, *st), limit_indices=(b, *li))
            if sd is not None:
                p["strides"] = (1, *sd)
        else:
            p.update(start_indices=(*st, 0), limit_indices=(*li, b))
            if sd is not None:
                p["strides"] = (*sd, 1)
        args = [x]
    elif name == "pad":
        if vals[1][1] is not None:
            return None
        cfg = tuple(p["padding_config"])
        p["padding_config"] = ((0, 0, 0), *cfg) if want == 0 else (*cfg, (0, 0, 0))
        args = [x, vals[1][0]]
    elif name == "split":
        p["axis"] = _shift(p["axis"], want)
        args = [x]
    elif name == "bitcast_convert_type":
        if jnp.dtype(p["new_dtype"]).itemsize != jnp.dtype(eqn.invars[0].aval.dtype).itemsize:
            return None
        args = [x]
    else:
        return None
    return [(o, want) for o in bind(eqn, args, p)]


SCATTERS = frozenset("scatter scatter-add scatter-mul scatter-min scatter-max".split())


def indexed(eqn: Any, vals: Sequence[Val], b: int) -> list[Val] | None:
    """Gather / scatter with unbatched indices: the batch becomes one more trailing window
    dimension (its start is always 0, so the bounds modes act per lane as per environment)."""
    name = eqn.primitive.name
    p = dict(eqn.params)
    if name == "gather":
        (op, oa), (idx, ia) = vals
        dn = p["dimension_numbers"]
        if ia is not None or dn.operand_batching_dims:
            return None
        s = tuple(eqn.invars[0].aval.shape)
        out_rank = len(eqn.outvars[0].aval.shape)
        p["dimension_numbers"] = dn._replace(offset_dims=(*dn.offset_dims, out_rank))
        p["slice_sizes"] = (*p["slice_sizes"], b)
        return [(o, LAST) for o in bind(eqn, [move(op, oa, LAST, s, b), idx], p)]
    if name in SCATTERS and len(vals) == 3:
        (op, oa), (idx, ia), (up, ua) = vals
        dn = p["dimension_numbers"]
        if ia is not None or dn.operand_batching_dims:
            return None
        so, su = (tuple(v.aval.shape) for v in (eqn.invars[0], eqn.invars[2]))
        p["dimension_numbers"] = dn._replace(update_window_dims=(*dn.update_window_dims, len(su)))
        args = [move(op, oa, LAST, so, b), idx, move(up, ua, LAST, su, b)]
        return [(o, LAST) for o in bind(eqn, args, p)]
    return None


def nary(eqn: Any, vals: Sequence[Val], b: int) -> list[Val] | None:
    """Several same-layout operands: concatenate, stack, sort, dynamic (update) slice."""
    name = eqn.primitive.name
    p = dict(eqn.params)
    shapes = shapes_of(eqn.invars)
    if name in ("concatenate", "stack", "sort"):
        want = common_axis(vals, shapes)
        args = [move(x, a, want, s, b) for (x, a), s in zip(vals, shapes)]
        key = {"concatenate": "dimension", "stack": "axis", "sort": "dimension"}[name]
        p[key] = _shift(p[key], want)
    elif name in ("dynamic_slice", "dynamic_update_slice"):
        n_arr = 1 if name == "dynamic_slice" else 2
        starts = vals[n_arr:]
        if any(a is not None for _, a in starts):
            return None
        want = common_axis(vals[:n_arr], shapes[:n_arr])
        arrs = [move(x, a, want, s, b) for (x, a), s in zip(vals[:n_arr], shapes[:n_arr])]
        idx = [x for x, _ in starts]
        zero = jnp.zeros((), idx[0].dtype if idx else jnp.int32)
        idx = [zero, *idx] if want == 0 else [*idx, zero]
        if name == "dynamic_slice":
            ss = tuple(p["slice_sizes"])
            p["slice_sizes"] = (b, *ss) if want == 0 else (*ss, b)
        args = [*arrs, *idx]
    else:
        return None
    return [(o, want) for o in bind(eqn, args, p)]
