"""`paraphina_jax.utils.fusion.materialize`: the identity, bit for bit, on every dtype."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from paraphina_jax.utils.fusion import materialize, materialize_tree
from paraphina_jax.utils.x64 import enable_x64


def _bits(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x.view(f"u{x.dtype.itemsize}") if x.dtype.kind == "f" else x


SPECIAL_F = [0.0, -0.0, 1.0, -1.5, np.inf, -np.inf, np.nan, 1e-45, -3e38, 7.25]


@pytest.mark.parametrize("dtype", ["float32", "int32", "bool", "uint8", "int16"])
def test_materialize_is_the_identity_bitwise(dtype: str) -> None:
    rng = np.random.default_rng(0)
    if dtype == "float32":
        x = np.array(SPECIAL_F + list(rng.normal(size=22) * 1e3), np.float32).reshape(4, 8)
        x = np.concatenate([x, -x])  # negative NaN payloads and −0 first
    elif dtype == "bool":
        x = rng.random((3, 5)) < 0.5
    else:
        info = np.iinfo(dtype)
        x = np.concatenate(
            [[info.min, info.max, -1, 0, 1], rng.integers(info.min, info.max, 27)]
        ).astype(dtype)
    got = jax.jit(materialize)(jnp.asarray(x))
    assert got.dtype == x.dtype and got.shape == x.shape
    np.testing.assert_array_equal(_bits(np.asarray(got)), _bits(x))


def test_materialize_float64_and_int64_under_x64() -> None:
    with enable_x64():
        x = np.array(SPECIAL_F + [5e-324, -(2.0**1000)], np.float64)
        i = np.array([np.iinfo(np.int64).min, -1, 0, 1, np.iinfo(np.int64).max], np.int64)
        gx, gi = jax.jit(lambda a, b: (materialize(a), materialize(b)))(x, i)
        np.testing.assert_array_equal(_bits(np.asarray(gx)), _bits(x))
        np.testing.assert_array_equal(np.asarray(gi), i)


def test_materialize_under_vmap_and_on_trees() -> None:
    x = jnp.asarray(np.random.default_rng(1).normal(size=(6, 5)), jnp.float32)
    tree = {"a": x, "b": x > 0, "c": jnp.arange(6), "d": jnp.zeros((0,))}
    got = jax.jit(jax.vmap(materialize_tree))({k: v for k, v in tree.items() if k != "d"})
    for k in ("a", "b", "c"):
        np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(tree[k]))
    assert materialize(tree["d"]).shape == (0,)


def test_materialized_producer_is_computed_once() -> None:
    """Read by four kernels, a long elementwise chain appears once in the compiled program."""

    def chain(x: jax.Array) -> jax.Array:
        for _ in range(12):
            x = jnp.where(x > 0.3, x * 1.01 - 0.1, x + 0.2)
        return x

    def readers(p: jax.Array, y: jax.Array) -> tuple[jax.Array, ...]:
        return p * y, p + y, jnp.exp(p - y), jnp.concatenate([p, y])

    x = jnp.ones((16, 5), jnp.float32)

    def n_selects(f):  # noqa: ANN001, ANN202
        return jax.jit(f).lower(x, x).compile().as_text().count(" select(")

    plain = n_selects(lambda a, b: readers(chain(a), b))
    once = n_selects(lambda a, b: readers(materialize(chain(a)), b))
    assert once == 12 and plain >= once
