"""Compute a value once: a fusion boundary that XLA keeps, with no effect on the bits.

XLA's fusion duplicates a cheap elementwise producer into every consumer that reads it (on the
CPU there are no multi-output fusions), so a value with a long elementwise history (an order
plan, a slot mask cleared fill by fill) read by several kernels is re-derived in each of them.
`lax.optimization_barrier` does not stop this on XLA:CPU: it is expanded before fusion.

:func:`materialize` passes the value through a floating-point division by a runtime 1. XLA counts
a division as expensive and does not duplicate it into several consumers, so the value is
computed once into a buffer that its readers load. The divisor is derived elementwise from the
value itself (`float((bits >>> (w − 1)) | 1)`), so neither constant folding nor the
`x / broadcast(s) → x · (1/s)` rewrite can remove it. The division is exact: floats divide as
they are (IEEE: x / 1 = x, −0, ±inf, subnormals and quiet-NaN payloads included) and bools as
float 0/1, and these vectorise. Integers take an integer division by a runtime 1 instead, which
has no SIMD form on x86 and so runs the producer kernel as scalar code. :func:`materialize_bits`
is the integer division on any value's bits (the boundary used before float division, kept
where it measured faster). Use either only where a profile shows a producer re-derived by
several kernels; it costs one pass over `x`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

Array = Any


def _div_one(f: Array) -> Array:
    """`f / 1` with the 1 computed from `f`'s own bits (floating `f`)."""
    it = {2: jnp.int16, 4: jnp.int32, 8: jnp.int64}[jnp.dtype(f.dtype).itemsize]
    bits = lax.bitcast_convert_type(f, it)
    w = jnp.iinfo(it).bits
    one = lax.shift_right_logical(bits, jnp.asarray(w - 1, it)) | jnp.asarray(1, it)
    return f / one.astype(f.dtype)


def _materialize_int(x: Array) -> Array:
    """Integer `x` through an integer division by a runtime 1 (one kernel reads `x`; an integer
    split into float-exact chunks would be read by two, which re-derives it twice)."""
    w = jnp.iinfo(x.dtype).bits
    one = lax.shift_right_logical(x, jnp.asarray(w - 1, x.dtype)) | jnp.asarray(1, x.dtype)
    return lax.div(x, one)


def materialize(x: Array) -> Array:
    """`x` unchanged (bit for bit), computed once instead of inside every consumer.

    Args:
      x: any array (bool, integer or float, any shape; size ≥ 1).
    """
    x = jnp.asarray(x)
    if x.size == 0:
        return x
    dt = jnp.dtype(x.dtype)
    if dt == jnp.bool_:
        return _div_one(x.astype(jnp.float32)) != 0
    if jnp.issubdtype(dt, jnp.integer):
        return _materialize_int(x)
    return _div_one(x)


def materialize_bits(x: Array) -> Array:
    """:func:`materialize` through an integer division of the value's bits (any dtype), for
    producers whose kernel XLA runs as scalar code anyway: a float division there was measured
    slower (the shield facts)."""
    x = jnp.asarray(x)
    if x.size == 0:
        return x
    dt = jnp.dtype(x.dtype)
    if dt == jnp.bool_:
        return _materialize_int(x.astype(jnp.uint8)) != 0
    if jnp.issubdtype(dt, jnp.integer):
        return _materialize_int(x)
    it = {2: jnp.int16, 4: jnp.int32, 8: jnp.int64}[dt.itemsize]
    return lax.bitcast_convert_type(_materialize_int(lax.bitcast_convert_type(x, it)), dt)


def materialize_tree(tree: Any) -> Any:
    """:func:`materialize` on every array leaf of a pytree."""
    return jax.tree.map(materialize, tree)
