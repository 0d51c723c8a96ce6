"""Local float64 switch for JAX (parity tests and reference-parity runs)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax


def _x64_context(enabled: bool):  # noqa: ANN202
    ctx = getattr(jax, "enable_x64", None)
    if ctx is not None and callable(ctx):
        return ctx(enabled)
    from jax import experimental

    return experimental.enable_x64() if enabled else experimental.disable_x64()


@contextlib.contextmanager
def enable_x64(enabled: bool = True) -> Iterator[None]:
    """Enable (or disable) 64-bit JAX types inside the block only.

    Uses `jax.enable_x64` (current jax) or `jax.experimental.enable_x64` (older releases).
    """
    with _x64_context(enabled):
        yield


EXACT_XLA_FLAG = "--xla_disable_hlo_passes=algsimp"


def request_ieee_exact_xla() -> bool:
    """Ask XLA for IEEE-exact arithmetic in this process (reference-parity runs).

    XLA's algebraic simplifier rewrites `x / broadcast(s)` into `x * broadcast(1/s)`, which changes
    the last bit of quotients such as `floor(Q/lot)` or `e/η` and so flips discrete decisions that
    the original engine takes on exact f64 division. Disabling that pass restores IEEE division.
    The flag only acts before the JAX backend starts; returns whether it is in force.
    """
    import os

    flags = os.environ.get("XLA_FLAGS", "")
    if EXACT_XLA_FLAG in flags:
        return True
    try:
        from jax._src import xla_bridge

        started = xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):
        started = True
    if started:
        return False
    os.environ["XLA_FLAGS"] = (flags + " " + EXACT_XLA_FLAG).strip()
    return True
