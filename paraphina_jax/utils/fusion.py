"""Compute a value once: a fusion boundary that XLA keeps, with no effect on the bits.

XLA's fusion duplicates a cheap elementwise producer into every consumer that reads it (on the
CPU there are no multi-output fusions), so a value with a long elementwise history (an order
plan, a slot mask cleared fill by fill) read by several kernels is re-derived in each of them.
`lax.optimization_barrier` does not stop this on XLA:CPU: it is expanded before fusion.

:func:`materialize` passes the value through an integer division by a runtime 1 (the value's
bits, divided by 1, bitcast back: the identity on every input, NaN payloads and −0 included).
XLA counts a division as expensive and does not duplicate it into several consumers, so the
value is computed once into a buffer that its readers load. The divisor is derived from the
value itself (`(bits >>> (w − 1)) | 1`), so no constant folding can remove it. Use it only
where a profile shows a producer re-derived by several kernels; it costs one pass over `x`.

Measured alternative (not used): a float division by a runtime 1 (exact on floats, vectorises)
was no faster in interleaved same-process A/B runs of the episode, and with it the same
float64 accounting computed in two program shapes (tests/test_accounting_parity.py, rounds vs
sequential scan) differed in the last bit, only on the last venue of `[B, 5]` arrays: a
lane-dependent multiply-add contraction in the kernels it lets XLA:CPU vectorise.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

Array = Any

_INT_OF = {1: jnp.uint8, 2: jnp.int16, 4: jnp.int32, 8: jnp.int64}


def _as_int(x: Array) -> tuple[Array, Any]:
    """`(integer view of x, how to turn it back)`."""
    dt = jnp.dtype(x.dtype)
    if dt == jnp.bool_:
        return x.astype(jnp.uint8), lambda y: y != 0
    if jnp.issubdtype(dt, jnp.integer):
        return x, lambda y: y
    it = _INT_OF[dt.itemsize]
    return lax.bitcast_convert_type(x, it), lambda y: lax.bitcast_convert_type(y, dt)


def materialize(x: Array) -> Array:
    """`x` unchanged (bit for bit), computed once instead of inside every consumer.

    Args:
      x: any array (bool, integer or float, any shape; size ≥ 1).
    """
    x = jnp.asarray(x)
    if x.size == 0:
        return x
    xi, back = _as_int(x)
    anchor = jnp.ravel(xi)[0]
    width = jnp.iinfo(xi.dtype).bits
    one = lax.shift_right_logical(anchor, jnp.asarray(width - 1, xi.dtype)) | jnp.asarray(
        1, xi.dtype
    )
    return back(lax.div(xi, one))


def materialize_tree(tree: Any) -> Any:
    """:func:`materialize` on every array leaf of a pytree."""
    return jax.tree.map(materialize, tree)
