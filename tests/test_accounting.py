"""Data ingestion and accounting (STRATEGY.md §5, §19 invariants 4–5), both engines.

Every unit test runs the NumPy reference engine and the JAX engine (jitted, under x64) on the
same hand-built case with the spec's exact numbers. Random-state parity, vmap == loop, trace
count and determinism live in `test_accounting_parity.py`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
from typing import Any

import chex
import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paraphina_jax.config import make_config
from paraphina_jax.config.types import PURPOSE_EXIT, PURPOSE_MM, SIDE_BUY, SIDE_SELL
from paraphina_jax.reference import accounting as racc
from paraphina_jax.strategy import accounting as jacc
from paraphina_jax.strategy.types import (
    AccountInputs,
    BookInputs,
    FillBatch,
    StrategyState,
    init_state,
    pending_entries,
)
from paraphina_jax.testing import to_jax
from paraphina_jax.utils.x64 import enable_x64

CFG = make_config("balanced")
N = CFG.n_venues
M = CFG.toxicity.max_pending_per_venue
HORIZON = int(CFG.toxicity.markout_horizon_short_ms)
ENGINES = ("ref", "jax")


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _ctx(engine: str) -> Any:
    return enable_x64() if engine == "jax" else contextlib.nullcontext()


_STATIC = {
    "apply_fills": ("record",),
    "apply_fill": ("record",),
    "apply_account_snapshot": ("h1_quirks",),
}
_JITTED = types.SimpleNamespace(
    **{
        name: jax.jit(getattr(jacc, name), static_argnames=_STATIC.get(name, ()))
        for name in (
            "apply_book_update",
            "apply_account_snapshot",
            "apply_fill",
            "apply_fills",
            "inject_initial_position",
            "settle_funding",
            "recompute_exposures",
        )
    }
)


def _mod(engine: str) -> Any:
    """The engine's functions (JAX ones jitted once, so unit tests compile each shape once)."""
    return _JITTED if engine == "jax" else racc


def _np_tree(tree: Any) -> Any:
    return jax.tree_util.tree_map(np.asarray, tree)


def _prep(engine: str, *trees: Any) -> list[Any]:
    """Trees for the engine (call inside `_ctx(engine)`)."""
    return [to_jax(t) if engine == "jax" else t for t in trees]


def _fresh(cfg: Any = CFG) -> StrategyState:
    return init_state(cfg, 0, xp=np)


def _set(state: StrategyState, glob: dict[str, Any] | None = None, **venue: Any) -> StrategyState:
    """Replace per-venue fields (full arrays) and globals of a NumPy state."""
    v = {
        k: np.asarray(val, dtype=np.asarray(getattr(state.venues, k)).dtype)
        for k, val in venue.items()
    }
    g = {
        k: np.asarray(val, dtype=np.asarray(getattr(state, k)).dtype)
        for k, val in (glob or {}).items()
    }
    return state.replace(venues=state.venues.replace(**v), **g)


def _book(updated, bid_px, bid_sz, ask_px, ask_sz) -> BookInputs:
    f = lambda x: np.asarray(x, dtype=np.float64)
    return BookInputs(
        updated=np.asarray(updated, dtype=bool),
        bid_px=f(bid_px),
        bid_sz=f(bid_sz),
        ask_px=f(ask_px),
        ask_sz=f(ask_sz),
    )


def _fills(rows: list[tuple]) -> FillBatch:
    """rows of (venue, side, size, price, fee_bps, order_id[, valid])."""
    rows = [r if len(r) == 7 else (*r, True) for r in rows]
    col = lambda j, dt: np.asarray([r[j] for r in rows], dtype=dt)
    return FillBatch(
        valid=col(6, bool),
        venue=col(0, np.int64),
        side=col(1, np.int64),
        size=col(2, np.float64),
        price=col(3, np.float64),
        fee_bps=col(4, np.float64),
        purpose=np.full(len(rows), PURPOSE_EXIT, dtype=np.int64),
        order_id=col(5, np.int64),
    )


def _run_fills(engine: str, state: StrategyState, rows: list[tuple], now: int = 0, record=True):
    with _ctx(engine):
        s, f = _prep(engine, state, _fills(rows))
        out = _mod(engine).apply_fills(s, f, now, CFG, record=record)
        return _np_tree(out)


def _call(engine: str, name: str, state: StrategyState, *args: Any, **kw: Any) -> StrategyState:
    with _ctx(engine):
        prepped = _prep(engine, state, *args)
        out = getattr(_mod(engine), name)(*prepped, **kw)
        return _np_tree(out)


# ---------------------------------------------------------------------------------------------
# §19 invariant 4: PnL identities
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_long_round_trip_no_fees(engine):
    # long 10 @100 → sell 10 @110 ⇒ realised +100, flat, avg 0.
    out = _run_fills(
        engine,
        _fresh(),
        [(0, SIDE_BUY, 10.0, 100.0, 0.0, -1), (0, SIDE_SELL, 10.0, 110.0, 0.0, -1)],
    )
    assert float(out.daily_realised_pnl) == 100.0
    assert float(out.daily_pnl_total) == 100.0
    assert float(out.venues.position_tao[0]) == 0.0
    assert float(out.venues.avg_entry_price[0]) == 0.0


@pytest.mark.parametrize("engine", ENGINES)
def test_short_round_trip_with_fees(engine):
    # short 10 @110 → buy 10 @100, 5 bp both ways ⇒ 100 − 0.55 − 0.50 = 98.95.
    out = _run_fills(
        engine,
        _fresh(),
        [(0, SIDE_SELL, 10.0, 110.0, 5.0, -1), (0, SIDE_BUY, 10.0, 100.0, 5.0, -1)],
    )
    assert float(out.daily_realised_pnl) == pytest.approx(98.95, abs=1e-12)
    assert float(out.venues.position_tao[0]) == 0.0
    st0 = _set(_fresh(), glob={"fair_value": 100.0, "has_fair_value": True})
    out2 = _run_fills(
        engine, st0, [(0, SIDE_SELL, 10.0, 110.0, 5.0, -1), (0, SIDE_BUY, 10.0, 100.0, 5.0, -1)]
    )
    marked = _call(engine, "recompute_exposures", out2, CFG)
    assert float(marked.daily_unrealised_pnl) == 0.0
    assert float(marked.daily_pnl_total) == pytest.approx(98.95, abs=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_partial_close_keeps_entry_and_rebate(engine):
    # long 4 @100 + 6 @105 ⇒ 10 @103; sell 4 @110 (rebate −1 bp) ⇒ +28 + 0.044, avg stays 103.
    out = _run_fills(
        engine,
        _fresh(),
        [
            (2, SIDE_BUY, 4.0, 100.0, 0.0, -1),
            (2, SIDE_BUY, 6.0, 105.0, 0.0, -1),
            (2, SIDE_SELL, 4.0, 110.0, -1.0, -1),
        ],
    )
    assert float(out.venues.position_tao[2]) == pytest.approx(6.0, abs=1e-12)
    assert float(out.venues.avg_entry_price[2]) == pytest.approx(103.0, abs=1e-12)
    assert float(out.daily_realised_pnl) == pytest.approx(28.0 + 0.044, abs=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_flip_through_zero(engine):
    # long 3 @100, sell 5 @90 ⇒ realised −30, short 2 @90; buy 2 @95 ⇒ realised −10 more, flat.
    out = _run_fills(
        engine, _fresh(), [(1, SIDE_BUY, 3.0, 100.0, 0.0, -1), (1, SIDE_SELL, 5.0, 90.0, 0.0, -1)]
    )
    assert float(out.venues.position_tao[1]) == -2.0
    assert float(out.venues.avg_entry_price[1]) == 90.0
    assert float(out.daily_realised_pnl) == -30.0
    out = _run_fills(engine, out, [(1, SIDE_BUY, 2.0, 95.0, 0.0, -1)])
    assert float(out.venues.position_tao[1]) == 0.0
    assert float(out.venues.avg_entry_price[1]) == 0.0
    assert float(out.daily_realised_pnl) == -40.0
    # short → long flip.
    out = _run_fills(
        engine, out, [(1, SIDE_SELL, 1.0, 100.0, 0.0, -1), (1, SIDE_BUY, 4.0, 80.0, 0.0, -1)]
    )
    assert float(out.venues.position_tao[1]) == 3.0
    assert float(out.venues.avg_entry_price[1]) == 80.0
    assert float(out.daily_realised_pnl) == -20.0


@pytest.mark.parametrize("engine", ENGINES)
def test_invalid_fills_dropped_whole(engine):
    st0 = _set(
        _fresh(),
        glob={"daily_unrealised_pnl": 7.0},
        position_tao=[1.0, 0, 0, 0, 0],
        avg_entry_price=[100.0, 0, 0, 0, 0],
        mm_has=np.ones((N, 2), bool),
        mm_id=np.arange(2 * N).reshape(N, 2),
    )
    bad = [
        (0, SIDE_SELL, 0.0, 100.0, 0.0, 0),
        (0, SIDE_SELL, -1.0, 100.0, 0.0, 0),
        (0, SIDE_SELL, np.nan, 100.0, 0.0, 0),
        (0, SIDE_SELL, 1.0, 0.0, 0.0, 0),
        (0, SIDE_SELL, 1.0, -5.0, 0.0, 0),
        (0, SIDE_SELL, 1.0, np.inf, 0.0, 0),
        (0, SIDE_SELL, 1.0, 100.0, np.nan, 0),
        (-1, SIDE_SELL, 1.0, 100.0, 0.0, 0),
        (N, SIDE_SELL, 1.0, 100.0, 0.0, 0),
        (0, 0, 1.0, 100.0, 0.0, 0),
        (0, SIDE_SELL, 1.0, 100.0, 0.0, 0, False),
    ]
    out = _run_fills(engine, st0, bad, now=5)
    chex.assert_trees_all_equal(out, st0)
    for row in bad[:-1]:
        with _ctx(engine):
            (s,) = _prep(engine, st0)
            o = _mod(engine).apply_fill(s, *row[:5], PURPOSE_MM, row[5], 5, CFG)
            chex.assert_trees_all_equal(_np_tree(o), st0)


@pytest.mark.parametrize("engine", ENGINES)
def test_fill_total_uses_stale_unrealised(engine):
    st0 = _set(_fresh(), glob={"daily_unrealised_pnl": 12.5, "daily_realised_pnl": 1.0})
    out = _run_fills(engine, st0, [(0, SIDE_BUY, 2.0, 100.0, 10.0, -1)])
    assert float(out.daily_realised_pnl) == pytest.approx(1.0 - 0.2, abs=1e-12)
    assert float(out.daily_pnl_total) == pytest.approx(1.0 - 0.2 + 12.5, abs=1e-12)
    assert float(out.daily_unrealised_pnl) == 12.5


def _cash_flow_pnl(fills: list[tuple], mark: float) -> float:
    q, cash = 0.0, 0.0
    for _, side, size, price, fee_bps, _ in fills:
        d = size if side == SIDE_BUY else -size
        q += d
        cash -= d * price + fee_bps / 1e4 * price * size
    return cash + q * mark


@settings(max_examples=80, derandomize=True, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([SIDE_BUY, SIDE_SELL]),
            st.integers(1, 500),
            st.integers(9000, 11000),
            st.sampled_from([-1.0, 0.0, 2.0, 5.0]),
        ),
        min_size=1,
        max_size=25,
    ),
    st.integers(9000, 11000),
)
def test_pnl_identity_property(rows, mark_cents):
    """realised + unrealised (marked at S) equals the cash-flow PnL of any fill sequence."""
    fills = [(0, side, sz / 100.0, px / 100.0, fee, -1) for side, sz, px, fee in rows]
    mark = mark_cents / 100.0
    st0 = _set(_fresh(), glob={"fair_value": mark, "has_fair_value": True})
    out = racc.recompute_exposures(racc.apply_fills(st0, _fills(fills), 0, CFG), CFG)
    scale = sum(sz * px for _, _, sz, px, _, _ in fills)
    assert float(out.daily_pnl_total) == pytest.approx(
        _cash_flow_pnl(fills, mark), abs=1e-9 * scale
    )
    q = float(out.venues.position_tao[0])
    assert q == pytest.approx(sum(f[2] if f[1] == SIDE_BUY else -f[2] for f in fills), abs=1e-9)
    if q == 0.0:
        assert float(out.venues.avg_entry_price[0]) == 0.0


# ---------------------------------------------------------------------------------------------
# §19 invariant 5: two-venue mark to fair; §5.4 invalid S
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_two_venue_example(engine):
    st0 = _set(
        _fresh(),
        glob={
            "fair_value": 100.0,
            "has_fair_value": True,
            "fair_value_prev": 100.0,
            "daily_realised_pnl": 3.0,
        },
        position_tao=[5.0, -3.0, 0, 0, 0],
        avg_entry_price=[95.0, 110.0, 0, 0, 0],
        mid=[102.0, 98.0, 500.0, 0, 0],
        has_mid=[True, True, True, False, False],
    )
    out = _call(engine, "recompute_exposures", st0, CFG)
    assert float(out.q_global_tao) == 2.0
    assert float(out.dollar_delta_usd) == 200.0
    assert float(out.basis_usd) == 16.0
    assert float(out.basis_gross_usd) == 16.0
    assert float(out.daily_unrealised_pnl) == 55.0
    assert float(out.daily_pnl_total) == 58.0


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("s_prev", [0.0, -1.0, np.nan, np.inf])
def test_recompute_without_valid_fair_value(engine, s_prev):
    st0 = _set(
        _fresh(),
        glob={
            "fair_value_prev": s_prev,
            "fair_value": 100.0,
            "has_fair_value": False,
            "daily_realised_pnl": -4.0,
            "q_global_tao": 9.0,
            "daily_unrealised_pnl": 3.0,
        },
        position_tao=[5.0, -3.0, 0, 0, 0],
        avg_entry_price=[95.0, 110.0, 0, 0, 0],
    )
    out = _call(engine, "recompute_exposures", st0, CFG)
    for name in (
        "q_global_tao",
        "dollar_delta_usd",
        "basis_usd",
        "basis_gross_usd",
        "daily_unrealised_pnl",
    ):
        assert float(getattr(out, name)) == 0.0
    assert float(out.daily_pnl_total) == -4.0


@pytest.mark.parametrize("engine", ENGINES)
def test_recompute_uses_fair_value_prev(engine):
    st0 = _set(
        _fresh(),
        glob={"fair_value_prev": 100.0, "has_fair_value": False},
        position_tao=[5.0, -3.0, 0, 0, 0],
        avg_entry_price=[95.0, 110.0, 0, 0, 0],
    )
    out = _call(engine, "recompute_exposures", st0, CFG)
    assert float(out.daily_unrealised_pnl) == 55.0
    assert float(out.basis_usd) == 0.0  # no mids ⇒ b_v = 0


# ---------------------------------------------------------------------------------------------
# §5.1 book updates
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_book_update_basic_and_local_vol(engine):
    cfg = CFG
    st0 = _fresh()
    b1 = _book([True, True, False, True, True], [99.0] * 5, [2.0] * 5, [101.0] * 5, [3.0] * 5)
    out = _call(engine, "apply_book_update", st0, b1, 1000, cfg)
    v = out.venues
    np.testing.assert_array_equal(v.has_mid, [True, True, False, True, True])
    assert float(v.mid[0]) == 100.0 and float(v.spread[0]) == 2.0
    assert float(v.depth_near_mid[0]) == 99.0 * 2.0 + 101.0 * 3.0
    assert int(v.last_mid_update_ms[0]) == 1000 and int(v.last_book_update_ms[0]) == 1000
    assert float(v.local_vol_short[0]) == 0.0  # first mid: no previous ln mid
    assert float(v.prev_ln_mid[0]) == pytest.approx(np.log(100.0), rel=1e-15)
    assert not bool(v.has_book_update[2]) and float(v.depth_near_mid[2]) == 0.0
    b2 = _book([True] * 5, [109.0] * 5, [2.0] * 5, [111.0] * 5, [3.0] * 5)
    out2 = _call(engine, "apply_book_update", out, b2, 2000, cfg)
    r = np.log(110.0) - np.log(100.0)
    a_s, a_l = cfg.vol.fv_vol_alpha_short, cfg.vol.fv_vol_alpha_long
    assert float(out2.venues.local_vol_short[0]) == pytest.approx(np.sqrt(a_s * r * r), rel=1e-12)
    assert float(out2.venues.local_vol_long[0]) == pytest.approx(np.sqrt(a_l * r * r), rel=1e-12)
    assert float(out2.venues.local_vol_short[2]) == 0.0  # venue 2's first mid


@pytest.mark.parametrize("engine", ENGINES)
def test_book_update_empty_side_nonfinite_and_crossed(engine):
    st0 = _set(
        _fresh(),
        mid=[100.0] * 5,
        spread=[0.5] * 5,
        has_mid=[True] * 5,
        depth_near_mid=[1e4] * 5,
        last_mid_update_ms=[10] * 5,
        has_mid_update=[True] * 5,
        last_book_update_ms=[10] * 5,
        has_book_update=[True] * 5,
        local_vol_short=[0.01] * 5,
        local_vol_long=[0.02] * 5,
        prev_ln_mid=[np.log(100.0)] * 5,
        has_prev_ln_mid=[True] * 5,
    )
    book = _book(
        [True] * 5,
        [99.0, 99.0, np.nan, 99.0, 101.0],
        [0.0, 1.0, 1.0, 1.0, 1.0],
        [101.0, 101.0, 101.0, 101.0, 99.0],
        [1.0, -2.0, 1.0, np.inf, 2.0],
    )
    out = _call(engine, "apply_book_update", st0, book, 50, CFG)
    v0, v = st0.venues, out.venues
    for i in (0, 1):  # empty side: only last_book_update and depth change
        assert float(v.mid[i]) == 100.0 and float(v.spread[i]) == 0.5
        assert int(v.last_mid_update_ms[i]) == 10 and int(v.last_book_update_ms[i]) == 50
        assert float(v.depth_near_mid[i]) == 0.0
        assert float(v.local_vol_short[i]) == 0.01 and float(v.prev_ln_mid[i]) == float(
            v0.prev_ln_mid[i]
        )
    for i in (2, 3):  # non-finite: rejected whole
        for f in dataclasses.fields(v):
            np.testing.assert_array_equal(getattr(v, f.name)[i], getattr(v0, f.name)[i])
    # crossed book stored as is
    assert float(v.mid[4]) == 100.0 and float(v.spread[4]) == -2.0
    assert int(v.last_mid_update_ms[4]) == 50
    assert float(v.depth_near_mid[4]) == 101.0 + 99.0 * 2.0


# ---------------------------------------------------------------------------------------------
# §5.2 account snapshots
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_account_snapshot_modes_and_h1_quirk(engine):
    st0 = _set(
        _fresh(),
        glob={"fair_value": 200.0, "has_fair_value": True, "sigma_eff": 0.01},
        mid=[202.0, 190.0, 0, 0, 0],
        has_mid=[True, True, False, False, False],
        has_mid_update=[True, True, False, True, False],
        last_mid_update_ms=[5, 5, 0, 5, 0],
        position_tao=[0.0, 1.0, 0.0, 0.0, 0.0],
        avg_entry_price=[150.0, 180.0, 0.0, 33.0, 44.0],
        price_liq=[0, 0, 7.0, 0, 0],
        has_price_liq=[False, False, True, False, False],
    )
    acct = AccountInputs(
        updated=np.array([True, True, True, True, False]),
        margin_balance_usd=np.full(N, 1.0),
        margin_used_usd=np.full(N, 2.0),
        margin_available_usd=np.full(N, 3.0),
        price_liq=np.array([190.0, 0, 0, 0, 0]),
        has_price_liq=np.array([True, False, False, False, False]),
        dist_liq_sigma=np.full(N, 10.0),
    )
    out = _call(engine, "apply_account_snapshot", st0, acct, 77, CFG)
    v = out.venues
    assert float(v.dist_liq_sigma[0]) == pytest.approx(12.0 / (0.01 * 200.0), rel=1e-15)
    assert float(v.price_liq[0]) == 190.0 and bool(v.has_price_liq[0])
    assert float(v.dist_liq_sigma[1]) == 10.0
    assert float(v.price_liq[1]) == pytest.approx(190.0 - 10.0 * 0.01 * 200.0, rel=1e-15)
    assert float(v.price_liq[2]) == 7.0 and bool(v.has_price_liq[2])  # no mid ⇒ old price_liq
    np.testing.assert_array_equal(v.margin_available_usd, [3.0, 3.0, 3.0, 3.0, 10_000.0])
    np.testing.assert_array_equal(v.avg_entry_price, [0.0, 180.0, 0.0, 0.0, 44.0])
    np.testing.assert_array_equal(v.last_mid_update_ms, [5, 5, 0, 5, 0])
    q = _call(engine, "apply_account_snapshot", st0, acct, 77, CFG, h1_quirks=True).venues
    np.testing.assert_array_equal(q.last_mid_update_ms, [5, 5, 77, 5, 0])
    np.testing.assert_array_equal(q.has_mid_update, [True, True, True, True, False])
    # no fair value ⇒ dist kept (has_price_liq mode), price_liq kept (constant mode)
    st1 = _set(st0, glob={"has_fair_value": False}, dist_liq_sigma=[4.0] * 5)
    v1 = _call(engine, "apply_account_snapshot", st1, acct, 77, CFG).venues
    assert float(v1.dist_liq_sigma[0]) == 4.0 and float(v1.price_liq[0]) == 190.0
    assert float(v1.dist_liq_sigma[1]) == 10.0 and not bool(v1.has_price_liq[1])


# ---------------------------------------------------------------------------------------------
# §5.3 recording: MM slots, fill_seq, markout queue
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_record_clears_slot_and_pushes_markout(engine):
    st0 = _set(
        _fresh(),
        glob={"fair_value": 0.5, "has_fair_value": True},
        mm_has=np.ones((N, 2), bool),
        mm_id=np.arange(2 * N).reshape(N, 2),
        mid=[101.0, 0, 0, 0, 0],
        has_mid=[True, False, False, False, False],
        fill_seq=[4, 0, 0, 0, 0],
    )
    rows = [
        (0, SIDE_BUY, 1.0, 100.0, 2.0, 1),
        (1, SIDE_SELL, 2.0, 99.0, 2.0, 0),
        (0, SIDE_SELL, 0.5, 100.5, 2.0, -1),
    ]
    out = _run_fills(engine, st0, rows, now=1000)
    v = out.venues
    exp_has = np.ones((N, 2), bool)
    exp_has[0, 1] = False  # id 1 on venue 0 cleared; id 0 is on venue 0, not venue 1 ⇒ kept
    np.testing.assert_array_equal(v.mm_has, exp_has)
    np.testing.assert_array_equal(v.fill_seq, [6, 1, 0, 0, 0])
    np.testing.assert_array_equal(v.pm_count, [2, 1, 0, 0, 0])
    np.testing.assert_array_equal(v.pm_fill_seq[0, :2], [4, 5])
    np.testing.assert_array_equal(v.pm_t_eval_ms[0, :2], [1000 + HORIZON] * 2)
    np.testing.assert_array_equal(v.pm_side[0, :2], [SIDE_BUY, SIDE_SELL])
    np.testing.assert_array_equal(v.pm_price[0, :2], [100.0, 100.5])
    np.testing.assert_array_equal(v.pm_mid_at_fill[0, :2], [101.0, 101.0])
    np.testing.assert_array_equal(v.pm_fair_at_fill[0, :2], [1.0, 1.0])  # max(S, 1)
    assert float(v.pm_mid_at_fill[1, 0]) == 1.0  # no mid ⇒ max(S, 1)
    assert float(v.pm_size[1, 0]) == 2.0
    # record=False: accounting only
    acc = _run_fills(engine, st0, rows, now=1000, record=False)
    np.testing.assert_array_equal(acc.venues.pm_count, st0.venues.pm_count)
    np.testing.assert_array_equal(acc.venues.mm_has, st0.venues.mm_has)
    np.testing.assert_array_equal(acc.venues.fill_seq, st0.venues.fill_seq)
    np.testing.assert_array_equal(acc.venues.position_tao, v.position_tao)
    assert float(acc.daily_realised_pnl) == float(out.daily_realised_pnl)


@pytest.mark.parametrize("engine", ENGINES)
def test_markout_queue_fifo_and_overflow(engine):
    st0 = _set(_fresh(), glob={"fair_value": 250.0, "has_fair_value": True})
    rows = [
        (3, SIDE_BUY if k % 2 else SIDE_SELL, 0.01 * (k + 1), 100.0 + k, 0.0, -1)
        for k in range(M + 7)
    ]
    out = _run_fills(engine, st0, rows, now=123)
    v = out.venues
    assert int(v.pm_count[3]) == M and int(v.fill_seq[3]) == M + 7
    assert int(v.pm_head[3]) == 7  # the ring overwrote its oldest 7 slots
    seq, px = pending_entries(v, "pm_fill_seq")[3], pending_entries(v, "pm_price")[3]
    np.testing.assert_array_equal(seq, np.arange(7, M + 7))  # oldest 7 dropped
    np.testing.assert_allclose(px, 100.0 + np.arange(7, M + 7), rtol=0, atol=0)
    np.testing.assert_array_equal(v.pm_fair_at_fill[3], np.full(M, 250.0))
    np.testing.assert_array_equal(v.pm_count[[0, 1, 2, 4]], 0)


# ---------------------------------------------------------------------------------------------
# D5 funding, initial inventory, markout value
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_settle_funding_sign_and_flag(engine):
    st0 = _set(
        _fresh(),
        glob={"daily_realised_pnl": 1.0, "daily_unrealised_pnl": 2.0},
        funding_8h=[1e-4, 1e-4, -2e-4, 1e-4, 1e-4],
        position_tao=[10.0, -10.0, 5.0, 3.0, 1.0],
    )
    mask = np.array([True, True, True, False, True])
    mark = np.array([100.0, 100.0, 100.0, 100.0, np.nan])
    out = _call(engine, "settle_funding", st0, mask, mark, CFG)
    # long pays 0.1, short receives 0.1, long at negative rate receives 0.1; v3 not settling,
    # v4 has a non-finite mark (skipped).
    assert float(out.daily_realised_pnl) == pytest.approx(1.0 - 0.1 + 0.1 + 0.1, abs=1e-12)
    assert float(out.daily_pnl_total) == pytest.approx(3.1, abs=1e-12)
    off = make_config("balanced", parity=True)
    assert not off.flags.funding_accrual
    same = _call(engine, "settle_funding", st0, mask, mark, off)
    chex.assert_trees_all_equal(same, st0)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("q0", [2.5, -1.25, 5e-10, 0.0])
def test_inject_initial_position(engine, q0):
    out = _call(engine, "inject_initial_position", _fresh(), q0, 250.0, CFG)
    if abs(q0) < 1e-9:
        chex.assert_trees_all_equal(out, _fresh())
        return
    np.testing.assert_array_equal(out.venues.position_tao, [q0, 0, 0, 0, 0])
    assert float(out.venues.avg_entry_price[0]) == 250.0
    assert float(out.daily_realised_pnl) == 0.0  # fee-free
    assert int(out.venues.pm_count[0]) == 0 and int(out.venues.fill_seq[0]) == 0


def test_markout_value_both_engines():
    side = np.array([SIDE_BUY, SIDE_SELL, SIDE_BUY])
    price = np.array([100.0, 100.0, 50.0])
    mid = np.array([101.0, 101.0, 49.5])
    exp = np.array([1.0, -1.0, -0.5])
    np.testing.assert_array_equal(np.asarray(jacc.markout_value(side, price, mid)), exp)
    got = [racc.markout_value(s, p, m) for s, p, m in zip(side, price, mid)]
    np.testing.assert_array_equal(got, exp)
