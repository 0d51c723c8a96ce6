"""`vmap` with the batch kept as the innermost ("lane") axis: a batching interpreter over jaxprs.

XLA on the CPU vectorises a loop kernel along its innermost dimension only. Batched the usual
way, an environment's `[N]` (venue) arrays become `[B, N]` and every elementwise kernel is a loop
of N-wide vectors with remainders; with the batch innermost (`[N, B]`) the same kernel runs
B-wide vectors. `jax.vmap(in_axes=-1)` does not keep that layout: JAX's batching rules move the
batch axis to the front whenever an operation mixes batched and unbatched arrays (a transpose per
operation), and XLA:CPU's layout assignment makes every operand row-major, so a layout constraint
only adds copies (both measured).

:func:`lane_vmap` instead traces the per-environment function to a jaxpr and evaluates it
equation by equation on batched values, each tagged with where its batch axis is: nowhere
(unbatched), in front, or last. The rules keep the batch axis last for everything that can run
that way: elementwise operations (unbatched operands are broadcast with a trailing batch axis),
broadcasts, reshapes (valid because the batch axis is the innermost: `[*s, B] -> [*t, B]` is the
per-environment reshape lane by lane), slices, squeezes, transposes, concatenation, stacking,
reductions, cumulative ops (as explicit steps along a leading axis), sorts, dynamic slices with
unbatched starts, gathers and scatters with unbatched indices (the batch as one more trailing
window dimension), and the control flow (`while` with a batched predicate runs while any lane
is active and keeps the finished lanes, as `vmap` does; `cond` with a batched index evaluates
every branch and selects; `scan`; nested `jit`, custom-derivative and custom-batching calls are
inlined: a custom batching rule changes how a batch is computed, not what). These rules live in
:mod:`paraphina_jax.utils.lane_rules`. Anything else (gathers, scatters and dynamic indexing
with batched indices, dots) runs through `jax.vmap` on the operands with the batch axis in
front, and its results stay in front: a value that lives in front (a
scatter-updated ring buffer, say) is not moved back and forth, because elementwise operations
among front-batched operands keep the front layout. Loop carries settle on a layout by fixed
point, as in `vmap`.

Per environment each primitive computes the same thing as under `vmap`, so results equal the
ordinary `vmap` lane by lane: integers and booleans exactly, floats to the last bits, which can
differ where XLA:CPU associates a computation differently in the two layouts (a multiply and
add contracted into a fused multiply-add in one kernel and not in the other, a windowed
reduction, a dot on transposed operands; `tests/test_lane_vmap.py`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend import core as jcore

try:  # name scopes for profiles (JAX-internal; without it the program is the same, unnamed)
    from jax._src import source_info_util as _siu
except ImportError:  # pragma: no cover
    _siu = None

from paraphina_jax.utils.lane_rules import (
    ELEMENTWISE,
    LAST,
    SCATTERS,
    Array,
    Val,
    bind,
    common_axis,
    elementwise,
    fallback,
    indexed,
    move,
    nary,
    shapes_of,
    structural,
)

_INLINE = {
    "jit": "jaxpr",
    "pjit": "jaxpr",
    "closed_call": "call_jaxpr",
    "core_call": "call_jaxpr",
    "custom_jvp_call": "call_jaxpr",
    "custom_vjp_call": "call_jaxpr",
    "custom_vjp_call_jaxpr": "fun_jaxpr",
    "remat": "jaxpr",
    "checkpoint": "jaxpr",
    # a custom batching rule only changes how a batch is computed, not what: run the function
    "custom_vmap_call": "call",
}


def _out_axes_of(fn: Callable[[], list[Val]]) -> list[int | None]:
    """The batch axes of `fn()`'s results, found by tracing it abstractly."""
    box: list[list[int | None]] = []

    def run() -> list[Array]:
        out = fn()
        box.append([a for _, a in out])
        return [x for x, _ in out]

    jax.eval_shape(run)
    return box[0]


def _settle(
    axes: list[int | None], out_axes: Sequence[int | None], shapes: Sequence[tuple[int, ...]]
) -> list[int | None]:
    """Loop-carry layout: batched if batched on either side; LAST where the sides disagree."""
    new = []
    for a, o, s in zip(axes, out_axes, shapes):
        if a is None:
            new.append(o)
        elif o is None or o == a or len(s) == 0:
            new.append(a)
        else:
            new.append(LAST)
    return new


def _conform(vals: Sequence[Val], axes: Sequence[int | None], shapes, b: int) -> list[Array]:
    return [
        x if want is None else move(x, a, want, s, b) for (x, a), want, s in zip(vals, axes, shapes)
    ]


def _lane_mask(p: Array, want: int, shape: tuple[int, ...], b: int) -> Array:
    """A `[B]` lane predicate broadcast to a value of per-environment `shape` at `want`."""
    nd = len(shape)
    if want == 0:
        return lax.broadcast_in_dim(p, (b, *shape), (0,))
    return lax.broadcast_in_dim(p, (*shape, b), (nd,))


def _while(eqn: Any, vals: Sequence[Val], b: int) -> list[Val]:
    p = eqn.params
    cj, bj = p["cond_jaxpr"], p["body_jaxpr"]
    cn, bn = p["cond_nconsts"], p["body_nconsts"]
    cconsts, bconsts, init = list(vals[:cn]), list(vals[cn : cn + bn]), list(vals[cn + bn :])
    shapes = shapes_of(eqn.outvars)

    def cond_val(c: Sequence[Val]) -> Val:
        return _eval_closed(cj, cconsts + list(c), b)[0]

    def body_vals(c: Sequence[Val]) -> list[Val]:
        return _eval_closed(bj, bconsts + list(c), b)

    def abstract(axes: list[int | None]) -> list[Val]:
        return [
            (jax.ShapeDtypeStruct(_batched_shape(s, a, b), v.aval.dtype), a)
            for s, a, v in zip(shapes, axes, eqn.outvars)
        ]

    axes = [a if (a is None or len(s) > 0) else LAST for (_, a), s in zip(init, shapes)]
    pred_batched = False
    for _ in range(len(init) + 2):
        structs = abstract(axes)

        def trial(structs: list[Val] = structs) -> list[Val]:
            c = [(jnp.zeros(t.shape, t.dtype), a) for t, a in structs]
            return [cond_val(c), *body_vals(c)]

        out = _out_axes_of(trial)
        pred_batched = out[0] is not None
        new = _settle(axes, out[1:], shapes)
        if pred_batched:
            new = [LAST if a is None else a for a in new]
        if new == axes:
            break
        axes = new
    start = _conform(init, axes, shapes, b)

    def tagged(c: Sequence[Array]) -> list[Val]:
        return list(zip(c, axes))

    def body_fn(c: Sequence[Array]) -> list[Array]:
        return _conform(body_vals(tagged(c)), axes, shapes, b)

    if not pred_batched:
        res = lax.while_loop(lambda c: cond_val(tagged(c))[0], body_fn, start)
    else:

        def lanes(c: Sequence[Array]) -> Array:
            x, a = cond_val(tagged(c))
            return x if a is not None else jnp.broadcast_to(x, (b,))

        def batched_body(c: Sequence[Array]) -> list[Array]:
            go = lanes(c)
            new = body_fn(c)
            return [
                lax.select(_lane_mask(go, a, s, b), n, o)
                for n, o, a, s in zip(new, c, axes, shapes)
            ]

        res = lax.while_loop(lambda c: jnp.any(lanes(c)), batched_body, start)
    return list(zip(res, axes))


def _batched_shape(s: tuple[int, ...], a: int | None, b: int) -> tuple[int, ...]:
    if a is None:
        return s
    return (b, *s) if a == 0 else (*s, b)


def _cond(eqn: Any, vals: Sequence[Val], b: int) -> list[Val]:
    branches = eqn.params["branches"]
    (index, ia), ops = vals[0], list(vals[1:])
    shapes = shapes_of(eqn.outvars)
    if ia is not None:  # every branch, then a per-lane select (as vmap)
        outs = [_eval_closed(br, ops, b) for br in branches]
        res = []
        for i, s in enumerate(shapes):
            cand = [o[i] for o in outs]
            want = common_axis(cand, [s] * len(cand))
            xs = [move(x, a, want, s, b) for x, a in cand]
            idx = _lane_mask(index, want, s, b) if len(s) else index
            res.append((lax.select_n(idx, *xs), want))
        return res
    per = [_out_axes_of(lambda br=br: _eval_closed(br, ops, b)) for br in branches]
    axes: list[int | None] = []
    for i in range(len(shapes)):
        got = {o[i] for o in per if o[i] is not None}
        axes.append(None if not got else (got.pop() if len(got) == 1 else LAST))

    def fn(br: Any) -> Callable[..., list[Array]]:
        return lambda *_: _conform(_eval_closed(br, ops, b), axes, shapes, b)

    res = lax.switch(index, [fn(br) for br in branches])
    return list(zip(res, axes))


def _scan(eqn: Any, vals: Sequence[Val], b: int) -> list[Val]:
    p = eqn.params
    jx = p["jaxpr"]
    nc, nk = p["num_consts"], p["num_carry"]
    consts, init, xs = list(vals[:nc]), list(vals[nc : nc + nk]), list(vals[nc + nk :])
    x_shapes = shapes_of(eqn.invars[nc + nk :])
    xs = [
        (x, None) if a is None else (move(x, a, LAST, s, b), LAST)
        for (x, a), s in zip(xs, x_shapes)
    ]
    c_shapes = shapes_of(eqn.outvars[:nk])
    y_shapes = [s[1:] for s in shapes_of(eqn.outvars[nk:])]
    x_axes = [a for _, a in xs]

    def run(c: Sequence[Val], xv: Sequence[Array]) -> list[Val]:
        return _eval_closed(jx, consts + list(c) + list(zip(xv, x_axes)), b)

    axes = [a if (a is None or len(s) > 0) else LAST for (_, a), s in zip(init, c_shapes)]
    y_axes: list[int | None] = []
    for _ in range(len(init) + 2):

        def trial(axes: list[int | None] = axes) -> list[Val]:
            c = [
                (jnp.zeros(_batched_shape(s, a, b), v.aval.dtype), a)
                for s, a, v in zip(c_shapes, axes, eqn.outvars[:nk])
            ]
            xv = [jnp.zeros(jnp.shape(x)[1:], jnp.result_type(x)) for x, _ in xs]
            return run(c, xv)

        out = _out_axes_of(trial)
        new = _settle(axes, out[:nk], c_shapes)
        y_axes = [None if a is None else LAST for a in out[nk:]]
        if new == axes:
            break
        axes = new

    def body(c: Sequence[Array], xv: Sequence[Array]) -> tuple[list[Array], list[Array]]:
        out = run(list(zip(c, axes)), xv)
        return _conform(out[:nk], axes, c_shapes, b), _conform(out[nk:], y_axes, y_shapes, b)

    carry, ys = lax.scan(
        body,
        _conform(init, axes, c_shapes, b),
        [x for x, _ in xs],
        length=p["length"],
        reverse=p["reverse"],
        unroll=p["unroll"],
    )
    return list(zip(carry, axes)) + list(zip(ys, y_axes))


# --------------------------------------------------------------------------------------------
# The interpreter
# --------------------------------------------------------------------------------------------


def _eval_eqn(eqn: Any, vals: list[Val], b: int) -> list[Val]:
    name = eqn.primitive.name
    if all(a is None for _, a in vals) and name not in _INLINE:
        return [(o, None) for o in bind(eqn, [x for x, _ in vals])]
    if name in _INLINE:
        sub = eqn.params[_INLINE[name]]
        if isinstance(sub, jcore.ClosedJaxpr):
            return _eval_closed(sub, vals, b)
        return _eval(sub, [], vals, b)
    if name in ELEMENTWISE:
        return elementwise(eqn, vals, b)
    if name == "optimization_barrier":
        return list(zip(bind(eqn, [x for x, _ in vals]), [a for _, a in vals]))
    if name == "while":
        return _while(eqn, vals, b)
    if name == "cond":
        return _cond(eqn, vals, b)
    if name == "scan":
        return _scan(eqn, vals, b)
    out = structural(eqn, vals, b) if len(vals) >= 1 else None
    if out is None:
        out = nary(eqn, vals, b)
    if out is None and (name == "gather" or name in SCATTERS):
        out = indexed(eqn, vals, b)
    if out is None:
        out = fallback(eqn, vals, b)
    return out


def _scope(eqn: Any) -> Any:
    """The equation's name scope and traceback, as `jax.core.eval_jaxpr` sets them."""
    try:
        stack = _siu.current_name_stack() + eqn.source_info.name_stack
        return _siu.user_context(eqn.source_info.traceback, name_stack=stack)
    except AttributeError:  # pragma: no cover
        return contextlib.nullcontext()


def _eval_closed(cj: Any, args: Sequence[Val], b: int) -> list[Val]:
    return _eval(cj.jaxpr, [(c, None) for c in cj.consts], args, b)


def _eval(jaxpr: Any, consts: Sequence[Val], args: Sequence[Val], b: int) -> list[Val]:
    env: dict[Any, Val] = {}

    def read(v: Any) -> Val:
        if isinstance(v, jcore.Literal):
            return (v.val, None)
        return env[v]

    for v, x in zip(jaxpr.constvars, consts):
        env[v] = x
    for v, x in zip(jaxpr.invars, args):
        env[v] = x
    for eqn in jaxpr.eqns:
        with _scope(eqn):
            outs = _eval_eqn(eqn, [read(v) for v in eqn.invars], b)
        for v, o in zip(eqn.outvars, outs):
            if not isinstance(v, jcore.DropVar):
                env[v] = o
    return [read(v) for v in jaxpr.outvars]


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def _leaf_axes(axes: Any, args: tuple[Any, ...]) -> list[int | None]:
    """Per-leaf batch axes from a spec per argument: an int/None, or a pytree prefix of it."""
    if not isinstance(axes, (tuple, list)):
        axes = (axes,) * len(args)
    if len(axes) != len(args):
        raise ValueError(f"lane_vmap: {len(axes)} axis specs for {len(args)} arguments")
    out: list[int | None] = []
    for spec, arg in zip(axes, args):
        per = jax.tree.map(
            lambda sp, sub: [sp] * len(jax.tree.leaves(sub)),
            spec,
            arg,
            is_leaf=lambda x: x is None,
        )
        for lst in jax.tree.leaves(per, is_leaf=lambda x: isinstance(x, list)):
            out.extend(lst)
    return [None if a is None else (0 if a == 0 else LAST) for a in out]


def _trace(fn: Callable[..., Any], in_axes: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """`(outputs as (array, axis) pairs, output treedef, per-environment output structs)`."""
    leaves, treedef = jax.tree.flatten(args)
    axes = _leaf_axes(in_axes, args)
    sizes = {jnp.shape(x)[0 if a == 0 else -1] for x, a in zip(leaves, axes) if a is not None}
    if len(sizes) != 1:
        raise ValueError(f"lane_vmap: batched inputs need one batch size, got {sizes}")
    (b,) = sizes

    def env_struct(x: Any, a: int | None) -> Any:
        s = tuple(jnp.shape(x))
        if a is not None:
            s = s[1:] if a == 0 else s[:-1]
        return jax.ShapeDtypeStruct(s, jnp.result_type(x))

    def flat_fn(*flat: Any) -> Any:
        return fn(*jax.tree.unflatten(treedef, flat))

    closed, out_shape = jax.make_jaxpr(flat_fn, return_shape=True)(
        *[env_struct(x, a) for x, a in zip(leaves, axes)]
    )
    outs = _eval_closed(closed, list(zip(leaves, axes)), b)
    out_leaves, out_tree = jax.tree.flatten(out_shape)
    return outs, out_tree, out_leaves, b


def lane_vmap(fn: Callable[..., Any], in_axes: Any = 0, out_axes: Any = 0) -> Callable[..., Any]:
    """`jax.vmap(fn, in_axes, out_axes)` evaluated with the batch axis innermost where it can be.

    Args:
      fn: a per-environment function of array pytrees.
      in_axes: per positional argument, `0` (batch in front), `-1` (batch last), `None`
        (unbatched), or a pytree of those matching the argument.
      out_axes: the same for the result (a single spec, or a pytree matching the result). An
        unbatched result asked for with a batch axis is broadcast.
    Returns:
      The batched function. Batched inputs may mix front and last axes.
    """

    def batched(*args: Any) -> Any:
        outs, out_tree, out_leaves, b = _trace(fn, in_axes, args)
        want = _leaf_axes((out_axes,), (jax.tree.unflatten(out_tree, out_leaves),))
        for (_, a), w in zip(outs, want):
            if w is None and a is not None:
                raise ValueError("lane_vmap: out_axes None for a batched result")
        res = [
            x if w is None else move(x, a, w, tuple(s.shape), b)
            for (x, a), w, s in zip(outs, want, out_leaves)
        ]
        return jax.tree.unflatten(out_tree, res)

    return batched


def natural_out_axes(fn: Callable[..., Any], in_axes: Any, *args: Any) -> Any:
    """The batch axes (`0`, `-1`, `None`) that :func:`lane_vmap` leaves `fn`'s results in, a
    pytree like the result (traced abstractly; nothing is computed). Loop carries use it to
    settle on a layout that needs no moves."""
    box: list[Any] = []

    def run(*a: Any) -> Any:
        outs, out_tree, _, _ = _trace(fn, in_axes, a)
        box.append(jax.tree.unflatten(out_tree, [ax for _, ax in outs]))
        return [x for x, _ in outs]

    jax.eval_shape(run, *args)
    return box[0]


def move_axes(tree: Any, src: Any, dst: Any) -> Any:
    """Every batched leaf of `tree` with its batch axis moved from `src` to `dst` (axis specs:
    `0`, `-1`, or pytrees of those like `tree`; per-environment scalars `[B]` need no move)."""

    def one(x: Array, a: int, d: int) -> Array:
        if jnp.ndim(x) <= 1 or (a == 0) == (d == 0):
            return x
        return jnp.moveaxis(x, 0, -1) if a == 0 else jnp.moveaxis(x, -1, 0)

    def spec(ax: Any) -> Any:
        return jax.tree.map(lambda _: ax, tree) if isinstance(ax, int) else ax

    return jax.tree.map(one, tree, spec(src), spec(dst))


def loop_carry_axes(fn: Callable[..., Any], carry: Any, rest_axes: tuple[Any, ...], *rest: Any):
    """Batch axes for a loop carry `c -> fn(c, *rest)[0]` under :func:`lane_vmap`: batch-last,
    except the leaves that `fn` returns batch-first (for example buffers updated by a scatter,
    which runs batch-first), so that no carry leaf is moved in the loop.

    Args:
      fn: the per-environment step; its first argument and first result are the carry.
      carry: the batched carry, batch axis in front (leaves `[B, ...]`).
      rest_axes: axis specs of the other arguments (as for :func:`lane_vmap`).
      rest: the other arguments.
    Returns:
      A pytree like `carry` of `0` / `-1`.
    """
    axes = jax.tree.map(lambda _: LAST, carry)
    nat = natural_out_axes(fn, (axes, *rest_axes), move_axes(carry, 0, axes), *rest)[0]
    return jax.tree.map(
        lambda x, a, o: a if (o is None or jnp.ndim(x) <= 1) else o, carry, axes, nat
    )


__all__ = ["LAST", "lane_vmap", "loop_carry_axes", "move_axes", "natural_out_axes"]
