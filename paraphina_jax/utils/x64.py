"""Local float64 switch for JAX (parity tests and reference-parity runs)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax


@contextlib.contextmanager
def enable_x64(enabled: bool = True) -> Iterator[None]:
    """Enable (or disable) 64-bit JAX types inside the block only.

    Works across jax versions: `jax.enable_x64` (new) or `jax.experimental.enable_x64` (old).
    """
    ctx = getattr(jax, "enable_x64", None)
    if ctx is not None and not isinstance(ctx, type(lambda: None)) and hasattr(ctx, "__call__"):
        try:
            with ctx(enabled):
                yield
            return
        except TypeError:
            pass
    from jax.experimental import enable_x64 as _old, disable_x64 as _old_off  # type: ignore

    with (_old() if enabled else _old_off()):
        yield
