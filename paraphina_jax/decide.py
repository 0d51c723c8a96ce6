"""One decision from a state snapshot, in either engine (STRATEGY.md §11–§16).

`decide` answers "what would the strategy do now, given this state?". The snapshot is the state
as of `now_ms` *after* this tick's ingest, fair value, volatility and toxicity steps, so those
are not run again (re-running the Kalman filter on the same mids would count them twice, and
re-running toxicity would apply markouts and staleness rules a second time). What runs:

1. §5.4 mark to fair (`recompute_exposures`): q_t, Δ$, B, B_gross and unrealised/total PnL from
   the snapshot's positions, entries, mids and fair value;
2. §16.1–16.4 risk step (`update_risk`, always due): limits from vol_ratio_clipped, regime, and
   the latching kill switch, so regime and kill reflect the snapshot's exposures;
3. the decision phases on that state, every one treated as due (no cadence): MM quotes and the
   order-management plan against the resting slots (§11–§13, the clock is `now_ms`), exits (§14),
   hedge (§15), and on a kill transition the optional best-effort exit (§16.5). Exits and hedge
   are suppressed while killed; all phases decide from the same state (as `strategy_tick` does).

The JAX engine runs the same composition jitted under float64 (x64); the reference engine runs
the NumPy mirror. :func:`decision_to_json` renders a `Decision` as the `decide` command's output.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from paraphina_jax.config.types import (
    KILL_REASON_NAMES,
    REGIME_NAMES,
    SIDE_BUY,
    StrategyConfig,
)
from paraphina_jax.reference import accounting as ref_accounting
from paraphina_jax.reference import risk as ref_risk
from paraphina_jax.reference import tick as ref_tick
from paraphina_jax.strategy import accounting as jax_accounting
from paraphina_jax.strategy import risk as jax_risk
from paraphina_jax.strategy import tick as jax_tick
from paraphina_jax.strategy.types import (
    GATE_NAMES,
    ExitPlan,
    HedgePlan,
    OrderPlan,
    QuoteSet,
    StrategyState,
    identity_controls,
)
from paraphina_jax.utils.x64 import enable_x64

ENGINES = ("jax", "reference")


@dataclasses.dataclass(frozen=True)
class Decision:
    """Everything one `decide` call produces (NumPy leaves; `[N]` per venue, `[N, 2]` per side).

    Attributes:
      state: the snapshot state after the mark-to-fair and risk steps.
      quotes: desired MM quotes (§11–§12).
      orders: order-management plan against the resting MM slots (§13).
      exits: exit IOC intents (§14); none while killed.
      hedge: hedge plan (§15); no orders while killed.
      kill_exit: best-effort reduce-only exit on the kill transition (§16.5), usually empty.
      kill_transition: `[]` the kill switch latched in this decision (not yet handled).
    """

    state: StrategyState
    quotes: QuoteSet
    orders: OrderPlan
    exits: ExitPlan
    hedge: HedgePlan
    kill_exit: ExitPlan
    kill_transition: np.ndarray


def _decide_jax_core(
    state: StrategyState, now_ms: Any, controls: Any, cfg: StrategyConfig
) -> tuple[Any, ...]:
    """JAX composition (unbatched): mark, risk, then MM / exits / hedge / kill exit."""
    now = jnp.asarray(now_ms, dtype=state.next_risk_ms.dtype)
    state = jax_accounting.recompute_exposures(state, cfg)
    state = jax_risk.update_risk(state, state.tick, cfg)
    killed = state.kill_switch
    transition = killed & ~state.kill_handled
    quotes, orders = jax_tick.decide_mm(state, now, controls, cfg, True)

    def mask(plan: ExitPlan, on: Any) -> ExitPlan:
        n = plan.valid.shape[0]
        valid = plan.valid & on
        return plan.replace(valid=valid, order=jnp.where(valid, plan.order, n))

    exits = mask(jax_tick.decide_exits(state, now, cfg), ~killed)
    hedge = jax_tick.decide_hedge(state, now, controls, cfg)
    hedge = hedge.replace(valid=hedge.valid & ~killed)
    kill_exit = mask(jax_tick.kill_best_effort_exit(state, cfg), transition)
    return state, quotes, orders, exits, hedge, kill_exit, transition


# One compiled program per static config part (flags, shapes); config leaves are traced.
_DECIDE_JIT = jax.jit(_decide_jax_core)


def _decide_jax(state: StrategyState, now_ms: int, cfg: StrategyConfig) -> Decision:
    with enable_x64():
        controls = identity_controls(cfg.n_venues)
        args = jax.tree.map(jnp.asarray, (state, controls))
        out = _DECIDE_JIT(args[0], np.int64(now_ms), args[1], cfg)
        out = jax.tree.map(np.asarray, out)
    return Decision(*out)


def _decide_reference(state: StrategyState, now_ms: int, cfg: StrategyConfig) -> Decision:
    """NumPy composition, mirroring `_decide_jax_core` step for step."""
    now = int(now_ms)
    controls = identity_controls(cfg.n_venues)
    state = ref_accounting.recompute_exposures(state, cfg)
    state = ref_risk.update_risk(state, int(state.tick), cfg)
    killed = bool(state.kill_switch)
    transition = killed and not bool(state.kill_handled)
    quotes, orders = ref_tick.decide_mm(state, now, controls, cfg, True)

    def mask(plan: ExitPlan, on: bool) -> ExitPlan:
        n = plan.valid.shape[0]
        valid = np.asarray(plan.valid) & on
        return plan.replace(valid=valid, order=np.where(valid, plan.order, n))

    exits = mask(ref_tick.decide_exits(state, now, cfg), not killed)
    hedge = ref_tick.decide_hedge(state, now, controls, cfg)
    hedge = hedge.replace(valid=np.asarray(hedge.valid) & (not killed))
    kill_exit = mask(ref_tick.kill_best_effort_exit(state, cfg), transition)
    return Decision(state, quotes, orders, exits, hedge, kill_exit, np.bool_(transition))


def decide(state: StrategyState, now_ms: int, cfg: StrategyConfig, engine: str = "jax") -> Decision:
    """Decide from a snapshot state (see the module docstring for the phases run).

    Args:
      state: one unbatched NumPy float64/int64 state (e.g. from `load_snapshot`).
      now_ms: the decision time.
      cfg: strategy config.
      engine: "jax" (jitted, float64 under x64) or "reference" (NumPy).

    Returns:
      Decision with NumPy leaves.
    """
    if engine == "jax":
        return _decide_jax(state, now_ms, cfg)
    if engine == "reference":
        return _decide_reference(state, now_ms, cfg)
    raise ValueError(f"engine: expected one of {', '.join(ENGINES)}, got {engine!r}")


# ---------------------------------------------------------------------------------------------
# JSON rendering
# ---------------------------------------------------------------------------------------------


def _num(x: Any) -> float | None:
    f = float(x)
    return f if math.isfinite(f) else None


def _side_name(s: Any) -> str:
    return "Buy" if int(s) == SIDE_BUY else "Sell"


def _quote_side(valid: Any, px: Any, size: Any, gate: Any) -> dict[str, Any]:
    if bool(valid):
        return {"gate": GATE_NAMES[0], "price": _num(px), "size": _num(size)}
    return {"gate": GATE_NAMES[int(gate)], "price": None, "size": None}


def _exit_rows(plan: ExitPlan, ids: tuple[str, ...]) -> list[dict[str, Any]]:
    valid = np.asarray(plan.valid)
    order = np.asarray(plan.order)
    rows = []
    for j in sorted(np.flatnonzero(valid).tolist(), key=lambda j: (int(order[j]), j)):
        rows.append(
            {
                "order": int(order[j]),
                "venue": j,
                "venue_id": ids[j],
                "side": _side_name(plan.side),
                "size": _num(plan.size[j]),
                "price": _num(plan.price[j]),
                "score": _num(plan.score[j]),
                "base_edge": _num(plan.base_edge[j]),
            }
        )
    return rows


def _order_rows(d: Decision, ids: tuple[str, ...]) -> list[dict[str, Any]]:
    o, v = d.orders, d.state.venues
    rows = []
    for j, vid in enumerate(ids):
        for k, side in ((0, "Buy"), (1, "Sell")):
            if bool(o.cancel[j, k]):
                rows.append(
                    {
                        "action": "cancel",
                        "venue": j,
                        "venue_id": vid,
                        "side": side,
                        "order_id": int(v.mm_id[j, k]),
                        "price": _num(v.mm_price[j, k]),
                        "size": _num(v.mm_size[j, k]),
                    }
                )
            if bool(o.place[j, k]):
                rows.append(
                    {
                        "action": "place",
                        "venue": j,
                        "venue_id": vid,
                        "side": side,
                        "order_id": None,
                        "price": _num(o.place_px[j, k]),
                        "size": _num(o.place_size[j, k]),
                    }
                )
    return rows


def _hedge_json(h: HedgePlan, ids: tuple[str, ...]) -> dict[str, Any]:
    def costs(j: int) -> dict[str, Any]:
        return {
            "exec_cost": _num(h.exec_cost[j]),
            "funding_benefit": _num(h.funding_benefit[j]),
            "basis_edge": _num(h.basis_edge[j]),
            "liq_penalty": _num(h.liq_penalty[j]),
            "frag_penalty": _num(h.frag_penalty[j]),
            "total_cost": _num(h.cost[j]),
        }

    active = bool(h.active)
    side = _side_name(h.side) if active else None
    orders = [
        {
            "venue": j,
            "venue_id": ids[j],
            "side": side,
            "size": _num(h.size[j]),
            "guard_price": _num(h.price[j]),
            "alloc": _num(h.alloc[j]),
            "cost_components": costs(j),
        }
        for j in np.flatnonzero(np.asarray(h.valid)).tolist()
    ]
    cands = [
        {
            "venue": j,
            "venue_id": ids[j],
            "guard_price": _num(h.price[j]),
            "alloc": _num(h.alloc[j]),
            "cost_components": costs(j),
        }
        for j in np.flatnonzero(np.asarray(h.candidate)).tolist()
    ]
    return {
        "active": active,
        "band": _num(h.band),
        "x": _num(h.x),
        "delta_h": _num(h.delta_h),
        "side": side,
        "orders": orders,
        "candidates": cands,
    }


def decision_to_json(
    d: Decision, cfg: StrategyConfig, now_ms: int, *, engine: str, parity_settings: bool
) -> dict[str, Any]:
    """The `decide` command's JSON document (see docs/snapshot.md, "decide output")."""
    st = d.state
    ids = cfg.venues.venue_ids
    q = d.quotes
    quotes = [
        {
            "venue": j,
            "venue_id": vid,
            "bid": _quote_side(q.bid_valid[j], q.bid_px[j], q.bid_size[j], q.bid_gate[j]),
            "ask": _quote_side(q.ask_valid[j], q.ask_px[j], q.ask_size[j], q.ask_gate[j]),
            "reservation": _num(q.reservation[j]),
            "half_spread": _num(q.half_spread[j]),
            "edge_bid": _num(q.edge_bid[j]),
            "edge_ask": _num(q.edge_ask[j]),
        }
        for j, vid in enumerate(ids)
    ]
    exit_rows = _exit_rows(d.exits, ids)
    killed = bool(st.kill_switch)
    return {
        "snapshot_version": 1,
        "engine": engine,
        "parity_settings": parity_settings,
        "profile": cfg.profile,
        "now_ms": int(now_ms),
        "fair_value": _num(st.fair_value) if bool(st.has_fair_value) else None,
        "fv_available": bool(st.fv_available),
        "scalars": {
            "sigma_eff": _num(st.sigma_eff),
            "vol_ratio_clipped": _num(st.vol_ratio_clipped),
            "spread_mult": _num(st.spread_mult),
            "size_mult": _num(st.size_mult),
            "band_mult": _num(st.band_mult),
        },
        "risk": {
            "regime": REGIME_NAMES[int(st.risk_regime)],
            "kill_switch": killed,
            "kill_reason": KILL_REASON_NAMES[int(st.kill_reason)],
            "kill_transition": bool(d.kill_transition),
            "q_global_tao": _num(st.q_global_tao),
            "dollar_delta_usd": _num(st.dollar_delta_usd),
            "basis_usd": _num(st.basis_usd),
            "basis_gross_usd": _num(st.basis_gross_usd),
            "daily_pnl_total": _num(st.daily_pnl_total),
            "delta_limit_usd": _num(st.delta_limit_usd),
            "basis_limit_warn_usd": _num(st.basis_limit_warn_usd),
            "basis_limit_hard_usd": _num(st.basis_limit_hard_usd),
        },
        "quotes": quotes,
        "orders": _order_rows(d, ids),
        "exits": {
            "side": exit_rows[0]["side"] if exit_rows else None,
            "intents": exit_rows,
        },
        "hedge": _hedge_json(d.hedge, ids),
        "kill_exit": _exit_rows(d.kill_exit, ids),
    }
