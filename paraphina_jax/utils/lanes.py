"""Run a per-environment function with the batch as its innermost ("lane") axis under `vmap`.

XLA on CPU vectorises a loop kernel along its innermost dimension. Vmapped the ordinary way an
environment's `[N]` (venue) arrays become `[B, N]`, so every elementwise kernel is a loop of
5-wide vectors with remainders; `vmap(in_axes=-1)` does not help (JAX's batching rules move the
batch axis back to the front, a transpose per op). :func:`lanes_last` wraps a function in a
`jax.custom_batching.custom_vmap` whose batching rule moves the batch axis of every input last
(unbatched inputs are broadcast to the batch) and calls the function ONCE on those arrays; the
outputs' trailing batch axis is moved back to the front. Called without `vmap` the function sees
a trailing lane axis of 1.

The wrapped function must therefore be written for a trailing lane axis `L` on every array
(`[N] -> [N, L]`, `[] -> [L]`): elementwise arithmetic with broadcasting, indexing and stacking
on the leading axes, reductions over explicit leading axes only (`axis=0`, never `axis=-1` or
all axes), no shapes spelled out. Per environment the arithmetic is the same, so the results
are the same bits as the ordinary vmap (the callers' tests compare them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Array = Any


def lanes_last(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn(*args)` (array pytrees; module docstring) batched lane-last under `jax.vmap`."""

    def one(*args: Any) -> Any:
        lanes = jax.tree.map(lambda x: jnp.asarray(x)[..., None], args)
        return jax.tree.map(lambda x: x[..., 0], fn(*lanes))

    wrapped = jax.custom_batching.custom_vmap(one)

    @wrapped.def_vmap
    def _batched(axis_size: int, in_batched: Any, *args: Any) -> Any:
        def lane(x: Array, batched: bool) -> Array:
            x = jnp.asarray(x)
            if batched:
                return jnp.moveaxis(x, 0, -1)
            return jnp.broadcast_to(x[..., None], (*x.shape, axis_size))

        out = fn(*jax.tree.map(lane, args, tuple(in_batched)))
        out = jax.tree.map(lambda x: jnp.moveaxis(x, -1, 0), out)
        return out, jax.tree.map(lambda _: True, out)

    return wrapped
