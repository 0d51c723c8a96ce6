"""Accounting parity (STRATEGY.md §5): JAX engine vs the NumPy reference engine.

≥ 200 random states from `paraphina_jax.testing` (every edge case, a third with queues near
capacity) with random book / account / fill / funding inputs (empty sides, crossed and
non-finite books, exact-flat and flipping fills, malformed fills, MM order ids), batched into one
vmapped jit call per function.

Tolerances. x64: rtol 1e-9, atol 1e-12 × the magnitude of the terms (measured: ≤ 2 ulp, from
XLA CPU fusing a·b + c into an FMA and from `log`); ints, masks, queue positions exactly.
float32: rtol 1e-4 plus atol 2e-4 on prices / spreads / mids (a float32 ulp at 600 USD is
6e-5), 5e-3 on USD quantities (PnL, exposures, depth, margins; measured ≤ 1.4e-3), 1e-5 on TAO
sizes, 1e-6 otherwise (local vols: measured ≤ 2.2e-7); discrete outputs exactly.
"""

from __future__ import annotations

import functools
from typing import Any

import chex
import jax
import numpy as np
import pytest

from paraphina_jax.config import make_config
from paraphina_jax.config.types import SIDE_BUY, SIDE_SELL
from paraphina_jax.reference import accounting as racc
from paraphina_jax.strategy import accounting as jacc
from paraphina_jax.strategy.types import AccountInputs, BookInputs, FillBatch, StrategyState
from paraphina_jax.testing import random_states, stack, to_jax
from paraphina_jax.utils.x64 import enable_x64

CFG = make_config("balanced")
N = CFG.n_venues
M = CFG.toxicity.max_pending_per_venue
N_PARITY = 240
K = 10


def _np_tree(tree: Any) -> Any:
    return jax.tree_util.tree_map(np.asarray, tree)


# ---------------------------------------------------------------------------------------------
# Parity: ≥ 200 random states, one vmapped jit call per function
# ---------------------------------------------------------------------------------------------


def _random_inputs(rng: np.random.Generator, state: StrategyState) -> dict[str, Any]:
    """Book, account, fills, funding inputs for one state, with edge cases mixed in."""
    v = state.venues
    base = np.where(v.has_mid, v.mid, 250.0)
    mid = base * np.exp(rng.normal(0, 0.003, N))
    spr = rng.uniform(0.01, 0.8, N) * np.where(rng.random(N) < 0.1, -1.0, 1.0)  # some crossed
    bid_sz = rng.uniform(0.1, 5.0, N) * (rng.random(N) > 0.1)  # some empty sides
    ask_sz = rng.uniform(0.1, 5.0, N) * (rng.random(N) > 0.1)
    bid_px = mid - spr / 2
    ask_px = mid + spr / 2
    bad = rng.random(N) < 0.07
    bid_px = np.where(bad, np.nan, bid_px)
    ask_sz = np.where(rng.random(N) < 0.03, np.inf, ask_sz)
    book = BookInputs(
        updated=rng.random(N) < 0.85, bid_px=bid_px, bid_sz=bid_sz, ask_px=ask_px, ask_sz=ask_sz
    )
    acct = AccountInputs(
        updated=rng.random(N) < 0.8,
        margin_balance_usd=rng.uniform(0, 1e4, N),
        margin_used_usd=rng.uniform(0, 1e4, N),
        margin_available_usd=rng.uniform(0, 1e4, N),
        price_liq=base * rng.uniform(0.5, 1.5, N),
        has_price_liq=rng.random(N) < 0.5,
        dist_liq_sigma=rng.uniform(0.5, 20, N),
    )
    q = np.asarray(v.position_tao)
    venue = rng.integers(0, N, K)
    side = rng.choice([SIDE_BUY, SIDE_SELL], K)
    size = np.round(rng.uniform(0.01, 8.0, K), 2)
    kind = rng.random(K)
    size = np.where(kind < 0.15, np.abs(q[venue]), size)  # exact flat (first touch of a venue)
    size = np.where((kind >= 0.15) & (kind < 0.3), np.abs(q[venue]) + 1.5, size)  # flips
    side = np.where(kind < 0.3, np.where(q[venue] > 0, SIDE_SELL, SIDE_BUY), side)
    price = np.round(base[venue] * rng.uniform(0.97, 1.03, K), 2)
    fee = rng.choice([-1.0, 0.0, 1.5, 2.0, 5.0], K)
    order_id = np.where(
        rng.random(K) < 0.5,
        np.asarray(v.mm_id)[venue, rng.integers(0, 2, K)],
        rng.integers(-1, 50, K),
    )
    junk = rng.random(K)
    size = np.where(junk < 0.04, 0.0, np.where(junk < 0.07, np.nan, size))
    price = np.where((junk >= 0.07) & (junk < 0.1), -1.0, price)
    venue = np.where((junk >= 0.1) & (junk < 0.12), N, venue)
    side = np.where((junk >= 0.12) & (junk < 0.14), 0, side)
    fills = FillBatch(
        valid=rng.random(K) < 0.9,
        venue=venue.astype(np.int64),
        side=side.astype(np.int64),
        size=size,
        price=price,
        fee_bps=fee,
        purpose=rng.integers(0, 3, K).astype(np.int64),
        order_id=order_id.astype(np.int64),
    )
    return {
        "book": book,
        "acct": acct,
        "fills": fills,
        "now": np.asarray(int(rng.integers(1, 10**7)), dtype=np.int64),
        "settle": rng.random(N) < 0.5,
        "mark": base * rng.uniform(0.99, 1.01, N),
        "q0": np.asarray(rng.choice([0.0, 1e-10, 3.0, -2.5]) * rng.uniform(0.5, 1.5)),
        "px0": np.asarray(rng.uniform(100, 400)),
    }


def _parity_cases() -> tuple[list[StrategyState], list[dict[str, Any]]]:
    states = random_states(1234, CFG, N_PARITY)
    rng = np.random.default_rng(99)
    out = []
    for i, s in enumerate(states):
        if i % 3 == 0:  # queues near / at capacity
            cnt = rng.integers(M - 3, M + 1, N).astype(np.asarray(s.venues.pm_count).dtype)
            s = s.replace(venues=s.venues.replace(pm_count=cnt))
        out.append(s)
    return out, [_random_inputs(rng, s) for s in out]


@functools.lru_cache(maxsize=1)
def _cases() -> tuple[list[StrategyState], list[dict[str, Any]]]:
    return _parity_cases()


# name -> (reference call, jax call taking (state, inputs))
_FUNCS: dict[str, tuple[Any, Any]] = {
    "apply_book_update": (
        lambda s, x: racc.apply_book_update(s, x["book"], int(x["now"]), CFG),
        lambda s, x, c: jacc.apply_book_update(s, x["book"], x["now"], c),
    ),
    "apply_account_snapshot": (
        lambda s, x: racc.apply_account_snapshot(s, x["acct"], int(x["now"]), CFG),
        lambda s, x, c: jacc.apply_account_snapshot(s, x["acct"], x["now"], c),
    ),
    "apply_account_snapshot_h1": (
        lambda s, x: racc.apply_account_snapshot(s, x["acct"], int(x["now"]), CFG, h1_quirks=True),
        lambda s, x, c: jacc.apply_account_snapshot(s, x["acct"], x["now"], c, h1_quirks=True),
    ),
    "apply_fills": (
        lambda s, x: racc.apply_fills(s, x["fills"], int(x["now"]), CFG),
        lambda s, x, c: jacc.apply_fills(s, x["fills"], x["now"], c),
    ),
    "apply_fills_accounting_only": (
        lambda s, x: racc.apply_fills(s, x["fills"], int(x["now"]), CFG, record=False),
        lambda s, x, c: jacc.apply_fills(s, x["fills"], x["now"], c, record=False),
    ),
    "apply_fill": (
        lambda s, x: racc.apply_fill(s, *(_fill_args(x)), int(x["now"]), CFG),
        lambda s, x, c: jacc.apply_fill(s, *(_fill_args(x)), x["now"], c),
    ),
    "settle_funding": (
        lambda s, x: racc.settle_funding(s, x["settle"], x["mark"], CFG),
        lambda s, x, c: jacc.settle_funding(s, x["settle"], x["mark"], c),
    ),
    "recompute_exposures": (
        lambda s, x: racc.recompute_exposures(s, CFG),
        lambda s, x, c: jacc.recompute_exposures(s, c),
    ),
    "inject_initial_position": (
        lambda s, x: racc.inject_initial_position(s, float(x["q0"]), float(x["px0"]), CFG),
        lambda s, x, c: jacc.inject_initial_position(s, x["q0"], x["px0"], c),
    ),
}


def _fill_args(x: dict[str, Any]) -> tuple:
    f = x["fills"]
    return (f.venue[0], f.side[0], f.size[0], f.price[0], f.fee_bps[0], f.purpose[0], f.order_id[0])


def _ref_batch(name: str) -> tuple[Any, Any, Any]:
    states, inputs = _cases()
    ref_fn = _FUNCS[name][0]
    ref = stack([ref_fn(s, x) for s, x in zip(states, inputs)])
    return stack(states), stack(inputs), ref


_PNL_FIELDS = (
    "daily_realised_pnl",
    "daily_pnl_total",
    "daily_unrealised_pnl",
    "basis_usd",
    "basis_gross_usd",
    "dollar_delta_usd",
)
# float32 absolute tolerances by field-name fragment (first match wins), with rtol 1e-4.
_F32_ATOL = (
    ("pnl", 5e-3),
    ("usd", 5e-3),
    ("depth", 5e-3),
    ("mid", 2e-4),
    ("spread", 2e-4),
    ("price", 2e-4),
    ("fair", 2e-4),
    ("tao", 1e-5),
    ("size", 1e-5),
)


def _x64_atol(name: str, r: np.ndarray, ref: StrategyState) -> float:
    """1e-12 × the magnitude of the terms behind a leaf."""
    if name in _PNL_FIELDS:
        v = ref.venues
        notional = np.abs(v.position_tao) * np.maximum(np.abs(v.avg_entry_price), 300.0)
        return 1e-12 * (4.0 * float(np.max(notional)) + 1.0)
    return 1e-12 * float(np.max(np.abs(r[np.isfinite(r)]), initial=1.0))


def _f32_atol(name: str, r: np.ndarray, ref: StrategyState) -> float:
    return next((tol for key, tol in _F32_ATOL if key in name), 1e-6)


def _compare(got: Any, ref: Any, rtol: float, atol_fn: Any) -> None:
    """Ints and masks exactly; floats within rtol / atol_fn(name, ref_leaf, ref)."""
    gl = jax.tree_util.tree_leaves_with_path(got)
    rl = jax.tree_util.tree_leaves(ref)
    assert len(gl) == len(rl)
    for (path, g), r in zip(gl, rl):
        name = jax.tree_util.keystr(path).split(".")[-1]
        g, r = np.asarray(g), np.asarray(r)
        if r.dtype.kind in "biu":
            np.testing.assert_array_equal(g, r, err_msg=name)
            continue
        atol = atol_fn(name, r, ref)
        np.testing.assert_allclose(g, r, rtol=rtol, atol=atol, equal_nan=True, err_msg=name)


def _jax_batched(name: str, states: Any, inputs: Any) -> Any:
    jfn = _FUNCS[name][1]
    f = jax.jit(jax.vmap(jfn, in_axes=(0, 0, None)))
    return _np_tree(f(to_jax(states), to_jax(inputs), CFG))


def test_parity_cases_cover_edge_cases():
    """The random batch really hits flips, exact flats, malformed fills, overflow and slots."""
    states, inputs = _cases()
    flips = flats = invalid = overflow = slots = empty = nonfinite = crossed = 0
    for s, x in zip(states, inputs):
        out = racc.apply_fills(s, x["fills"], int(x["now"]), CFG)
        q0, q1 = np.asarray(s.venues.position_tao), np.asarray(out.venues.position_tao)
        flips += int(np.sum(q0 * q1 < 0))
        flats += int(np.sum((q0 != 0) & (q1 == 0)))
        f = x["fills"]
        ok = [
            racc.fill_is_valid(
                int(f.venue[k]), int(f.side[k]), f.size[k], f.price[k], f.fee_bps[k], N
            )
            for k in range(K)
        ]
        invalid += int(np.sum(np.asarray(f.valid) & ~np.asarray(ok)))
        pushed = np.asarray(out.venues.fill_seq) - np.asarray(s.venues.fill_seq)
        overflow += int(np.sum(np.asarray(s.venues.pm_count) + pushed > M))
        slots += int(np.sum(np.asarray(s.venues.mm_has) & ~np.asarray(out.venues.mm_has)))
        b = x["book"]
        upd = np.asarray(b.updated)
        fin = (
            np.isfinite(b.bid_px)
            & np.isfinite(b.bid_sz)
            & np.isfinite(b.ask_px)
            & np.isfinite(b.ask_sz)
        )
        nonfinite += int(np.sum(upd & ~fin))
        empty += int(np.sum(upd & fin & ((b.bid_sz <= 0) | (b.ask_sz <= 0))))
        crossed += int(np.sum(upd & fin & (b.ask_px <= b.bid_px)))
    counts = dict(
        flips=flips,
        flats=flats,
        invalid=invalid,
        overflow=overflow,
        slots=slots,
        empty=empty,
        nonfinite=nonfinite,
        crossed=crossed,
    )
    assert len(states) >= 200
    assert all(c >= 20 for c in counts.values()), counts


@pytest.mark.parametrize("name", list(_FUNCS))
def test_parity_x64(name):
    states, inputs, ref = _ref_batch(name)
    with enable_x64():
        got = _jax_batched(name, states, inputs)
    _compare(got, ref, rtol=1e-9, atol_fn=_x64_atol)


@pytest.mark.parametrize(
    "name",
    [
        "apply_book_update",
        "apply_account_snapshot",
        "apply_fills",
        "recompute_exposures",
        "settle_funding",
    ],
)
def test_parity_float32(name):
    states, inputs, ref = _ref_batch(name)
    got = _jax_batched(name, states, inputs)
    _compare(got, ref, rtol=1e-4, atol_fn=_f32_atol)


def test_parity_pipeline_x64():
    """Book → account → fills → funding → recompute chained, x64 JAX vs reference."""
    states, inputs = _cases()

    def ref_one(s, x):
        s = racc.apply_book_update(s, x["book"], int(x["now"]), CFG)
        s = racc.apply_account_snapshot(s, x["acct"], int(x["now"]), CFG)
        s = racc.apply_fills(s, x["fills"], int(x["now"]), CFG)
        s = racc.settle_funding(s, x["settle"], x["mark"], CFG)
        return racc.recompute_exposures(s, CFG)

    def jax_one(s, x, c):
        s = jacc.apply_book_update(s, x["book"], x["now"], c)
        s = jacc.apply_account_snapshot(s, x["acct"], x["now"], c)
        s = jacc.apply_fills(s, x["fills"], x["now"], c)
        s = jacc.settle_funding(s, x["settle"], x["mark"], c)
        return jacc.recompute_exposures(s, c)

    ref = stack([ref_one(s, x) for s, x in zip(states, inputs)])
    with enable_x64():
        f = jax.jit(jax.vmap(jax_one, in_axes=(0, 0, None)))
        got = _np_tree(f(to_jax(stack(states)), to_jax(stack(inputs)), CFG))
    _compare(got, ref, rtol=1e-9, atol_fn=_x64_atol)


# ---------------------------------------------------------------------------------------------
# vmap == loop, one trace, bitwise determinism
# ---------------------------------------------------------------------------------------------


def test_vmap_equals_loop_single_trace_and_determinism():
    states, inputs = _cases()
    states, inputs = states[:8], inputs[:8]
    with enable_x64():
        chex.clear_trace_counter()

        def core(s, x):
            s = jacc.apply_book_update(s, x["book"], x["now"], CFG)
            s = jacc.apply_fills(s, x["fills"], x["now"], CFG)
            return jacc.recompute_exposures(s, CFG)

        one = jax.jit(chex.assert_max_traces(core, n=1))
        loop = [_np_tree(one(to_jax(s), to_jax(x))) for s, x in zip(states, inputs)]
        batched_fn = jax.jit(jax.vmap(core))
        bs, bx = to_jax(stack(states)), to_jax(stack(inputs))
        b1 = _np_tree(batched_fn(bs, bx))
        b2 = _np_tree(batched_fn(bs, bx))
    chex.assert_trees_all_equal(b1, b2)  # bitwise determinism
    # vmap == loop: ints and masks exactly, floats to a few ulp (XLA CPU contracts a·b + c into
    # an FMA differently in the batched and the unbatched program).
    _compare(b1, stack(loop), rtol=1e-14, atol_fn=lambda n, r, ref: 1e-2 * _x64_atol(n, r, ref))


def _round_batch(rng: np.random.Generator, state: StrategyState, layout: str) -> FillBatch:
    """A `[2N]` batch in the simulator's MM layout (venue ascending, bid then ask) or IOC layout
    (exits in a random venue order, then hedges venue ascending), some slots invalid."""
    s = float(np.asarray(state.fair_value))
    if layout == "mm":
        venue = np.repeat(np.arange(N), 2)
        side = np.tile([SIDE_BUY, SIDE_SELL], N)
    else:
        venue = np.concatenate([rng.permutation(N), np.arange(N)])
        side = np.concatenate([np.full(N, rng.choice([-1, 1])), np.full(N, rng.choice([-1, 1]))])
    k = 2 * N
    return FillBatch(
        valid=rng.random(k) < 0.6,
        venue=venue,
        side=side,
        size=np.round(rng.uniform(0.01, 30.0, k), 2),
        price=s * (1 + rng.normal(0, 0.01, k)),
        fee_bps=rng.choice([-1.0, 0.0, 2.5, 5.0], k),
        purpose=np.zeros(k, np.int64),
        order_id=np.where(rng.random(k) < 0.5, rng.integers(0, 1400, k), -1),
    )


@pytest.mark.parametrize("layout", ["mm", "ioc"])
def test_accounting_rounds_equal_the_sequential_scan_bitwise(layout):
    """`apply_fills(rounds=…)` (one `[N]` pass per round) equals the K-step scan bit for bit."""
    rng = np.random.default_rng(11 if layout == "mm" else 12)
    rounds = jacc.interleaved_rounds(N) if layout == "mm" else jacc.block_rounds(N, 2)
    with enable_x64():
        states = random_states(np.random.default_rng(5), CFG, 40)
        batches = [_round_batch(rng, s, layout) for s in states]
        st, fb = to_jax(stack(states)), to_jax(stack(batches))

        def both(s, f):
            return (
                jacc.apply_fills(s, f, 1000, CFG),
                jacc.apply_fills(s, f, 1000, CFG, rounds=rounds),
            )

        seq, rnd = jax.jit(jax.vmap(both))(st, fb)
        for a, b in zip(jax.tree.leaves(_np_tree(seq)), jax.tree.leaves(_np_tree(rnd))):
            np.testing.assert_array_equal(a, b)
    assert np.any(np.asarray(seq.venues.position_tao) != np.asarray(st.venues.position_tao))
