"""Audit recorded actions against the shield's invariants (NumPy, float64).

:func:`check_invariants` is a pure invariant checker (the predicates of
:mod:`safety_shield.checks`), distinct from the shield's correcting logic: it reports every
`(tick, venue, rule)` the allowed actions break, it never changes an action.
:func:`audit_file` replays a telemetry JSONL file (sim/telemetry.py) through it.

Record layout read (docs/safety.md, "Audit"). The facts must be those the shield saw, i.e.
before this tick's IOC fills:

* preferred: a `"shield"` object holding every :class:`~safety_shield.types.ShieldFacts` field
  (scalars and per-venue lists; `mm_has` as `[N][2]`) — exact;
* otherwise the episode's `"state"` block (taken after execution), `"market"` and `"fills"`:
  positions, q_t, Δ$, B and total PnL are rolled back by this tick's EXIT/HEDGE fills
  (Δtotal = s·size·(S − price) − fee per fill), the true touches are `market.bid/ask` when
  recorded and the state's `best_bid/best_ask` otherwise, `dev_disabled` and the MM slots are
  not recorded (those two checks are skipped);
* `"actions"`: the post-shield `TickOutput` (quotes, orders, exits, hedge, kill_exit).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from paraphina_jax.config.types import REGIME_NAMES, STATUS_NAMES, StrategyConfig
from safety_shield.checks import violations_one
from safety_shield.reference import flatten_actions
from safety_shield.types import RULE_NAMES, OrderLayout, ShieldFacts, ShieldOrders, order_layout

IOC_PURPOSES = ("EXIT", "HEDGE")


class AuditError(ValueError):
    """An unreadable telemetry file or record (one-line message: file, line, field)."""


class Violation(NamedTuple):
    """One broken invariant: tick, venue (−1 = a global total) and rule index."""

    tick: int
    venue: int
    rule: int

    def __str__(self) -> str:
        where = "all venues" if self.venue < 0 else f"venue {self.venue}"
        return f"t={self.tick} {where} rule {self.rule} ({RULE_NAMES[self.rule]})"


class AuditActions(NamedTuple):
    """The allowed actions of one tick in checker form."""

    orders: ShieldOrders  # flat [K] list
    cancel: np.ndarray | None  # [N, 2] bool cancels (None = not recorded)


def check_invariants(
    state: ShieldFacts | list[ShieldFacts],
    actions: AuditActions | list[AuditActions],
    cfg: StrategyConfig,
    ticks: list[int] | None = None,
) -> list[Violation]:
    """Every `(tick, venue, rule)` broken by the allowed actions.

    Args:
      state: the facts the shield saw (one tick, or a list per tick).
      actions: the allowed actions (one tick, or a list per tick).
      cfg: strategy config (venue table, caps, limits, kill_best_effort flag).
      ticks: tick numbers to report (default 0, 1, …).
    """
    if isinstance(state, ShieldFacts):
        state, actions = [state], [actions]  # type: ignore[list-item]
    assert isinstance(actions, list)
    layout = order_layout(cfg.n_venues)
    ticks = list(range(len(state))) if ticks is None else ticks
    out: list[Violation] = []
    for t, f, a in zip(ticks, state, actions, strict=True):
        cancel = a.cancel if bool(np.any(f.mm_has)) else None
        for v, r in violations_one(f, a.orders, layout, cfg, cancel=cancel):
            out.append(Violation(int(t), int(v), int(r)))
    return out


# ---------------------------------------------------------------------------------------------
# Records -> facts and actions
# ---------------------------------------------------------------------------------------------


def _arr(x: Any, dtype: Any = np.float64) -> np.ndarray:
    """JSON list/value → array; null → NaN (floats) or 0/False."""
    a = np.asarray(x, dtype=object)
    if dtype is np.float64:
        return np.where(a == None, np.nan, a).astype(np.float64)  # noqa: E711
    return np.where(a == None, 0, a).astype(dtype)  # noqa: E711


def _get(d: dict[str, Any], key: str, where: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise AuditError(f"{where}: missing field {key!r}")
    return d[key]


def _code(name: Any, names: tuple[str, ...], where: str) -> int:
    if isinstance(name, int) and not isinstance(name, bool):
        return int(name)
    if name not in names:
        raise AuditError(f"{where}: {name!r} (allowed: {', '.join(names)})")
    return names.index(name)


def _facts_from_shield_block(b: dict[str, Any], where: str) -> ShieldFacts:
    f = {}
    ints = {"now_ms", "risk_regime", "status", "mid_age_ms"}
    bools = {"kill_switch", "dev_disabled", "has_mid", "mm_has", "outage"}
    for name in ShieldFacts.__dataclass_fields__:
        val = _get(b, name, f"{where}: shield")
        if name == "risk_regime":
            f[name] = np.int64(_code(val, REGIME_NAMES, f"{where}: shield.risk_regime"))
        elif name == "status":
            f[name] = np.asarray([_code(s, STATUS_NAMES, f"{where}: shield.status") for s in val])
        elif name in ints:
            f[name] = _arr(val, np.int64)
        elif name in bools:
            f[name] = _arr(val, bool)
        else:
            f[name] = _arr(val)
    return ShieldFacts(**f)


def _facts_from_state_block(rec: dict[str, Any], cfg: StrategyConfig, where: str) -> ShieldFacts:
    st = _get(rec, "state", where)
    ven = _get(st, "venues", f"{where}: state")
    w = f"{where}: state.venues"
    n = cfg.n_venues
    has_fv = bool(st.get("has_fair_value", st.get("fair_value") is not None))
    s = float(st["fair_value"]) if has_fv and st.get("fair_value") is not None else np.nan
    q_post = _arr(_get(ven, "position_tao", w))
    has_mid = _arr(_get(ven, "has_mid", w), bool)
    mid = np.where(has_mid, np.nan_to_num(_arr(_get(ven, "mid", w))), 0.0)
    # Roll back this tick's IOC fills (applied after the shield).
    dq = np.zeros(n)
    dpnl = 0.0
    for fl in rec.get("fills", []) or []:
        if fl.get("purpose") not in IOC_PURPOSES:
            continue
        v, sd = int(fl["venue"]), float(fl["side"])
        size, price = float(fl["size"]), float(fl["price"])
        dq[v] += sd * size
        dpnl += sd * size * (s - price) - float(fl.get("fee_bps", 0.0)) / 1e4 * price * size
    b = np.where(has_mid, mid, s) - s
    q_pre = q_post - dq
    qt_post = float(_get(st, "q_global_tao", f"{where}: state"))
    mkt = rec.get("market", {}) or {}
    if "bid" in mkt and "ask" in mkt:
        bid, ask = _arr(mkt["bid"]), _arr(mkt["ask"])
    else:
        bid, ask = _arr(_get(ven, "best_bid", w)), _arr(_get(ven, "best_ask", w))
    outage = _arr(mkt["outage"], bool) if "outage" in mkt else np.zeros(n, bool)
    age = np.asarray([-1 if a is None else int(a) for a in _get(ven, "staleness_ms", w)])
    total = st.get("pnl_total", rec.get("pnl_total"))
    return ShieldFacts(
        now_ms=np.int64(_get(st, "now_ms", f"{where}: state")),
        kill_switch=np.bool_(_get(st, "kill_switch", f"{where}: state")),
        risk_regime=np.int64(_code(st["risk_regime"], REGIME_NAMES, f"{where}: state.risk_regime")),
        q_global_tao=np.float64(qt_post - dq.sum()),
        dollar_delta_usd=np.float64(
            float(_get(st, "dollar_delta_usd", f"{where}: state")) - dq.sum() * s
        ),
        basis_usd=np.float64(float(_get(st, "basis_usd", f"{where}: state")) - np.sum(dq * b)),
        daily_pnl_total=np.float64(np.nan if total is None else float(total) - dpnl),
        delta_limit_usd=np.float64(_get(st, "delta_limit_usd", f"{where}: state")),
        basis_limit_hard_usd=np.float64(_get(st, "basis_limit_hard_usd", f"{where}: state")),
        fair_value=np.float64(s),
        status=np.asarray([_code(x, STATUS_NAMES, f"{w}.status") for x in ven["status"]]),
        dev_disabled=np.zeros(n, bool),
        toxicity=_arr(_get(ven, "toxicity", w)),
        mid_age_ms=age.astype(np.int64),
        position_tao=q_pre,
        dist_liq_sigma=_arr(_get(ven, "dist_liq_sigma", w)),
        mid=mid,
        has_mid=has_mid,
        mm_has=np.zeros((n, 2), bool),
        book_bid=bid,
        book_ask=ask,
        outage=outage,
    )


def facts_from_record(
    rec: dict[str, Any], cfg: StrategyConfig, where: str = "record"
) -> ShieldFacts:
    """The facts the shield saw at this record's tick (see the module docstring)."""
    if "shield" in rec:
        return _facts_from_shield_block(rec["shield"], where)
    return _facts_from_state_block(rec, cfg, where)


def actions_from_record(
    rec: dict[str, Any], layout: OrderLayout, where: str = "record", block: str = "actions"
) -> AuditActions:
    """A record's `"actions"` block (or `"proposed"`, the pre-shield actions) in checker form."""
    a = _get(rec, block, where)
    w = f"{where}: {block}"
    n = layout.n

    def plan(name: str) -> dict[str, Any]:
        p = _get(a, name, w)
        return {
            "valid": _arr(_get(p, "valid", f"{w}.{name}"), bool).reshape(n),
            "size": _arr(_get(p, "size", f"{w}.{name}")).reshape(n),
            "price": _arr(_get(p, "price", f"{w}.{name}")).reshape(n),
            "side": np.int64(_arr(_get(p, "side", f"{w}.{name}"), np.int64)),
        }

    q, o = _get(a, "quotes", w), _get(a, "orders", w)
    quotes = _Obj(
        bid_valid=_arr(_get(q, "bid_valid", f"{w}.quotes"), bool),
        ask_valid=_arr(_get(q, "ask_valid", f"{w}.quotes"), bool),
        bid_size=_arr(_get(q, "bid_size", f"{w}.quotes")),
        ask_size=_arr(_get(q, "ask_size", f"{w}.quotes")),
        bid_px=_arr(_get(q, "bid_px", f"{w}.quotes")),
        ask_px=_arr(_get(q, "ask_px", f"{w}.quotes")),
    )
    orders = _Obj(
        place=_arr(_get(o, "place", f"{w}.orders"), bool).reshape(n, 2),
        place_size=_arr(_get(o, "place_size", f"{w}.orders")).reshape(n, 2),
        place_px=_arr(_get(o, "place_px", f"{w}.orders")).reshape(n, 2),
    )
    out = _Obj(
        quotes=quotes,
        orders=orders,
        kill_exit=_Obj(**plan("kill_exit")),
        exits=_Obj(**plan("exits")),
        hedge=_Obj(**plan("hedge")),
    )
    cancel = _arr(_get(o, "cancel", f"{w}.orders"), bool).reshape(n, 2)
    return AuditActions(orders=flatten_actions(out, layout), cancel=cancel)  # type: ignore[arg-type]


class _Obj:
    """Attribute bag standing in for the TickOutput pieces `flatten_actions` reads."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


def read_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The JSON objects of a telemetry file (one per line). Raises AuditError."""
    p = Path(path)
    try:
        fh = open(p, encoding="utf-8")
    except OSError as e:
        raise AuditError(f"{p}: cannot read ({e.strerror})") from None
    recs = []
    with fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise AuditError(f"{p}:{i}: not JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise AuditError(f"{p}:{i}: not a JSON object")
            recs.append(obj)
    if not recs:
        raise AuditError(f"{p}: no records")
    return recs


def audit_records(
    recs: list[dict[str, Any]],
    cfg: StrategyConfig,
    source: str = "telemetry",
    block: str = "actions",
) -> list[Violation]:
    """Check every record's allowed actions; the tick is the record's `t`. A loss limit
    recorded in the state (`daily_loss_limit_usd`) takes precedence over the config's."""
    layout = order_layout(cfg.n_venues)
    lim = (recs[0].get("state") or {}).get("daily_loss_limit_usd")
    if isinstance(lim, int | float) and not isinstance(lim, bool):
        cfg = cfg.replace(risk=cfg.risk.replace(daily_loss_limit=abs(float(lim))))
    state, actions, ticks = [], [], []
    for i, rec in enumerate(recs, 1):
        where = f"{source}:{i}"
        try:
            ticks.append(int(_get(rec, "t", where)))
            state.append(facts_from_record(rec, cfg, where))
            actions.append(actions_from_record(rec, layout, where, block))
        except (TypeError, ValueError, KeyError, IndexError) as e:
            if isinstance(e, AuditError):
                raise
            raise AuditError(f"{where}: malformed record ({e})") from None
    return check_invariants(state, actions, cfg, ticks)


def audit_file(
    path: str | os.PathLike[str], cfg: StrategyConfig, block: str = "actions"
) -> tuple[int, list[Violation]]:
    """`(number of records, violations)` of a telemetry JSONL file; `block="proposed"` audits
    the pre-shield actions instead (what the decision-maker asked for). Raises AuditError."""
    recs = read_records(path)
    return len(recs), audit_records(recs, cfg, str(path), block)
