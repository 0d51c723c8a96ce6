"""Skip a step for a whole batch when no element of the batch needs it.

Under `jax.vmap` a `lax.cond` on a per-element predicate becomes a `select`: both branches run
for every element. Many steps of an episode are the identity for most elements most of the time
(a limit that is not breached, a venue that is not at its liquidation distance), yet the batch
pays for them on every tick. :func:`batch_gate` wraps such a step so that, once vmapped, it runs
only when at least one element's predicate is true (one `lax.cond` on `any(pred)` over the batch,
then the vmapped step on the whole batch) and returns its inputs unchanged otherwise.

Results are bit-for-bit those of the ungated step, provided the caller's contract holds: for an
element whose predicate is false, `step(x) == x` exactly. The predicate must be a cheap
sufficient condition for "the step may change something"; it can be conservative (true more
often than needed), never the other way round. Unbatched calls (`pred` a plain scalar) take the
same `lax.cond`. Nested `vmap`s gate on the outermost batch that reaches the rule and fall back to
a per-element `select` inside, which is still exact.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

Array = Any


def batch_gate(step: Callable[[Any, Any], Any]) -> Callable[[Array, Any, Any], Any]:
    """`gated(pred, consts, carry) = step(consts, carry) if pred else carry`, skipped for a whole
    vmapped batch when `pred` is false for every element.

    Args:
      step: a pure function `(consts, carry) -> carry'` (pytrees; `carry'` has the structure,
        shapes and dtypes of `carry`), e.g. a pipeline stage and the arrays it updates.
    Returns:
      `gated(pred [] bool, consts, carry) -> carry'`. Contract: `step(consts, carry) == carry`
      wherever `pred` is false (bit for bit).
    """

    def identity(consts: Any, carry: Any) -> Any:
        return carry

    @jax.custom_batching.custom_vmap
    def gated(pred: Array, consts: Any, carry: Any) -> Any:
        return lax.cond(pred, step, identity, consts, carry)

    @gated.def_vmap
    def _batched(
        axis_size: int, in_batched: Any, pred: Array, consts: Any, carry: Any
    ) -> tuple[Any, Any]:
        pred_b, consts_b, carry_b = in_batched
        any_pred = jnp.any(pred) if pred_b else pred

        def axes(batched: Any) -> Any:
            return jax.tree.map(lambda b: 0 if b else None, batched)

        def on(k: Any, c: Any) -> Any:
            return jax.vmap(step, in_axes=(axes(consts_b), axes(carry_b)))(k, c)

        def off(k: Any, c: Any) -> Any:
            return jax.tree.map(
                lambda x, b: x if b else jnp.broadcast_to(x, (axis_size, *jnp.shape(x))),
                c,
                carry_b,
            )

        out = lax.cond(any_pred, on, off, consts, carry)
        return out, jax.tree.map(lambda _: True, out)

    return gated
