"""The JAX twin's block form (safety_shield/twin.py): the `[7, N]` block layout is a permutation
of the flat layout, and the packed per-rule counts equal a plain count of the change bits."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from safety_shield import twin
from safety_shield.types import BLOCK_KIND, BLOCK_MM_SIDE, N_RULES, block_index, order_layout


@pytest.mark.parametrize("n", [1, 5, 10])
def test_shield_block_layout_is_the_flat_layout(n):
    lay = order_layout(n)
    idx = block_index(n)
    assert sorted(idx.reshape(-1).tolist()) == list(range(7 * n))
    assert np.array_equal(lay.kind[idx], np.broadcast_to(BLOCK_KIND[:, None], (7, n)))
    assert np.array_equal(lay.mm_side[idx], np.broadcast_to(BLOCK_MM_SIDE[:, None], (7, n)))
    assert np.array_equal(lay.venue[idx], np.broadcast_to(np.arange(n), (7, n)))
    x = jnp.arange(7 * n) * 10
    assert np.array_equal(np.asarray(twin.to_flat(twin.to_blocks(x, lay))), np.asarray(x))


@pytest.mark.parametrize("n", [5, 10])
def test_shield_packed_counts_equal_plain_counts(n):
    rng = np.random.default_rng(n)
    e_n = twin.N_STEPS
    for density in (0.0, 0.3, 1.0):
        bits = rng.random((e_n, 7, n)) < density
        word = np.sum(bits.astype(np.int64) << np.arange(e_n)[:, None, None], axis=0)
        got = np.asarray(twin.counts_of(jnp.asarray(word, jnp.int32)))
        want = np.zeros(N_RULES, np.int64)
        for e, r in enumerate(twin.ENTRY_RULE):
            want[r] += bits[e].sum()
        assert np.array_equal(got, want)
        vm = np.asarray(twin.venue_mask_of(jnp.asarray(word, jnp.int32)))
        want_vm = np.zeros((N_RULES, n), bool)
        for e, r in enumerate(twin.ENTRY_RULE):
            want_vm[r] |= bits[e].any(axis=0)
        assert np.array_equal(vm, want_vm)
