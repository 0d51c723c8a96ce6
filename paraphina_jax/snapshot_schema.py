"""Schema of the `snapshot_version: 1` state snapshot: field tables and the value codec.

Each JSON field is a :class:`Field` (kind, unit, required/optional, bounds, nullability and the
`has_*` mask it maps to). :func:`parse_value` turns one JSON value into a state value or raises
:class:`SnapshotError` naming the field; :func:`dump_value` is its inverse; :func:`schema_markdown`
renders the tables for docs/snapshot.md. Whole-snapshot reading and writing live in
:mod:`paraphina_jax.snapshot`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from paraphina_jax.config import KILL_REASON_NAMES, REGIME_NAMES, STATUS_NAMES, make_config
from paraphina_jax.config.types import SIDE_BUY, SIDE_SELL
from paraphina_jax.strategy.types import StrategyState, init_state

SNAPSHOT_VERSION = 1
SIDE_NAMES = {SIDE_BUY: "Buy", SIDE_SELL: "Sell"}


class SnapshotError(ValueError):
    """Invalid snapshot; the one-line message names the offending field."""


@dataclasses.dataclass(frozen=True)
class Field:
    """One JSON field of the snapshot schema.

    kind: "num" (finite number), "int" (integer), "bool", "enum" (one of `names`), "id" (the
      venue id string), "bools" (list of N booleans), "slot" (MM slot object or null),
      "markouts" (list of pending-markout objects).
    target: the state field the value goes to (defaults to `name`).
    nullable: null allowed. With `mask` set, null ⇒ mask false and value 0; otherwise null stores
      `null_value` (null is written back for values ≤ null_value, or non-finite if it is inf).
    lo / lo_open / hi: closed lower bound, open lower bound, closed upper bound.
    """

    name: str
    kind: str
    required: bool
    unit: str
    doc: str
    target: str | None = None
    nullable: bool = False
    mask: str | None = None
    null_value: float | None = None
    lo: float | None = None
    lo_open: float | None = None
    hi: float | None = None
    names: tuple[str, ...] = ()
    default: str | None = None  # documented default when it derives from the config or now_ms

    @property
    def field(self) -> str:
        return self.target or self.name


_R = "recomputed by `decide` (mark to fair + risk step)"

# fmt: off
GLOBAL_FIELDS: tuple[Field, ...] = (
    Field("kf_x_hat", "num", False, "ln USD", "Kalman filter estimate of ln S (§6)"),
    Field("kf_p", "num", False, "(ln USD)²", "Kalman filter variance", lo=0.0, default="KF_P_INIT"),
    Field("kf_last_update_ms", "int", False, "ms", "time of the last KF update"),
    Field("kf_initialised", "bool", False, "", "KF initialised (D3)"),
    Field("fair_value", "num", True, "USD", "fair value S; null = absent (has_fair_value false)", nullable=True, mask="has_fair_value", lo_open=0.0),
    Field("fair_value_prev", "num", False, "USD", "previous fair value (S fallback, §5.4)", lo=0.0),
    Field("fv_short_vol", "num", False, "per tick", "short EWMA vol of ln S (§7.2)", lo=0.0),
    Field("fv_long_vol", "num", False, "per tick", "long EWMA vol of ln S (§7.2)", lo=0.0),
    Field("sigma_eff", "num", True, "per tick", "effective vol σ_eff (§7.2)", lo=0.0),
    Field("fv_available", "bool", True, "", "fair value usable for quoting (§11.1 gate 1)"),
    Field("healthy_venues_used", "bools", False, "", "KF observation mask of the last update, N booleans"),
    Field("healthy_venues_used_count", "int", False, "venues", "number of KF observations", lo=0),
    Field("vol_ratio_raw", "num", False, "", "σ_eff / vol_ref_tick before clipping", lo=0.0),
    Field("vol_ratio_clipped", "num", True, "", "clipped vol ratio vr (§7.2)", lo=0.0),
    Field("spread_mult", "num", True, "", "spread multiplier (§7.2)", lo=0.0),
    Field("size_mult", "num", True, "", "size multiplier (§7.2)", lo=0.0),
    Field("band_mult", "num", True, "", "hedge band multiplier (§7.2)", lo=0.0),
    Field("q_global_tao", "num", False, "TAO", f"q_t = Σ q_v; {_R}"),
    Field("dollar_delta_usd", "num", False, "USD", f"Δ$ = q_t·S; {_R}"),
    Field("basis_usd", "num", False, "USD", f"B (§5.4); {_R}"),
    Field("basis_gross_usd", "num", False, "USD", f"B_gross (§5.4); {_R}", lo=0.0),
    Field("daily_realised_pnl", "num", False, "USD", "realised PnL since episode start"),
    Field("daily_unrealised_pnl", "num", False, "USD", f"unrealised PnL; {_R}"),
    Field("daily_pnl_total", "num", False, "USD", f"realised + unrealised; {_R}"),
    Field("risk_regime", "enum", False, "", f"risk regime; {_R}", names=REGIME_NAMES),
    Field("kill_switch", "bool", False, "", "kill switch latched (§16.4)"),
    Field("kill_reason", "enum", False, "", "first kill reason (\"None\" iff not killed)", names=KILL_REASON_NAMES),
    Field("kill_handled", "bool", False, "", "kill transition already handled (§16.5)"),
    Field("kill_tick", "int", False, "ticks", "tick the kill latched; null = never", nullable=True, null_value=-1),
    Field("delta_limit_usd", "num", False, "USD", f"L_delta (§16.1); {_R}", lo=0.0, default="DELTA_HARD_LIMIT_USD_BASE"),
    Field("basis_limit_warn_usd", "num", False, "USD", f"B_warn (§16.1); {_R}", lo=0.0, default="BASIS_WARN_FRAC·BASIS_HARD_LIMIT_USD"),
    Field("basis_limit_hard_usd", "num", False, "USD", f"B_hard (§16.1); {_R}", lo=0.0, default="BASIS_HARD_LIMIT_USD"),
    Field("tick", "int", False, "ticks", "ticks processed so far", lo=0),
    Field("next_risk_ms", "int", False, "ms", "next risk-loop time (§17.3)", default="now_ms"),
    Field("next_hedge_ms", "int", False, "ms", "next hedge-loop time (§17.3)", default="now_ms"),
    Field("last_flush_ms", "int", False, "ms", "last fill-batch flush (§17.3)", default="now_ms − FILL_AGG_INTERVAL_MS"),
    Field("next_order_id", "int", False, "", "next MM order id", lo=0),
)

VENUE_FIELDS: tuple[Field, ...] = (
    Field("venue_id", "id", True, "", "venue name; venues are listed in config order"),
    Field("mid", "num", True, "USD", "venue mid; null = no mid (has_mid false)", nullable=True, mask="has_mid", lo_open=0.0),
    Field("spread", "num", True, "USD", "best ask − best bid; null exactly when mid is null", nullable=True, mask="has_mid"),
    Field("depth_near_mid", "num", True, "USD", "top-of-book notional (D4)", lo=0.0),
    Field("last_mid_update_ms", "int", True, "ms", "last mid update; null = never", nullable=True, mask="has_mid_update"),
    Field("last_book_update_ms", "int", False, "ms", "last book update; null = never", nullable=True, mask="has_book_update"),
    Field("local_vol_short", "num", False, "per update", "short EWMA vol of ln mid (§5.1)", lo=0.0),
    Field("local_vol_long", "num", False, "per update", "long EWMA vol of ln mid (§5.1)", lo=0.0),
    Field("prev_ln_mid", "num", False, "ln USD", "previous ln mid; null = none", nullable=True, mask="has_prev_ln_mid"),
    Field("status", "enum", False, "", "venue health (§8.2)", names=STATUS_NAMES),
    Field("toxicity", "num", False, "", "toxicity in [0, 1] (§8)", lo=0.0, hi=1.0),
    Field("markout_ewma_usd_per_tao", "num", False, "USD/TAO", "markout EWMA (§8.2)"),
    Field("pending_markouts", "markouts", False, "", "pending markouts, FIFO (see below)"),
    Field("fill_seq", "int", False, "", "next per-venue fill sequence number", lo=0),
    Field("position_tao", "num", True, "TAO", "position q_v (signed)"),
    Field("avg_entry_price", "num", True, "USD", "average entry; 0 when flat, > 0 otherwise", lo=0.0),
    Field("funding_8h", "num", False, "per 8 h", "latest observed 8 h funding rate"),
    Field("fund_rate_8h", "num", False, "per 8 h", "funding record rate; null = none", nullable=True, mask="fund_has_rate"),
    Field("fund_received_ms", "int", False, "ms", "funding record receive time; null = none", nullable=True, null_value=0),
    Field("fund_as_of_ms", "int", False, "ms", "funding record as-of time; null = none", nullable=True, null_value=0),
    Field("fund_next_ms", "int", False, "ms", "next funding settlement; null = unknown", nullable=True, mask="fund_has_next"),
    Field("margin_balance_usd", "num", False, "USD", "margin balance"),
    Field("margin_used_usd", "num", False, "USD", "margin used"),
    Field("margin_available_usd", "num", False, "USD", "margin available"),
    Field("price_liq", "num", False, "USD", "liquidation price; null = none", nullable=True, mask="has_price_liq"),
    Field("dist_liq_sigma", "num", False, "σ", "liquidation distance; null = unknown (+∞)", nullable=True, null_value=math.inf),
    Field("mm_open_bid", "slot", False, "", "resting MM bid: null or a slot object (see below)"),
    Field("mm_open_ask", "slot", False, "", "resting MM ask: null or a slot object (see below)"),
    Field("dev_breach_count", "int", False, "checks", "consecutive deviation breaches (§16.6)", lo=0),
    Field("dev_disabled", "bool", False, "", "latched deviation disable (§16.6)"),
)

SLOT_FIELDS: tuple[Field, ...] = (
    Field("price", "num", True, "USD", "limit price", target="mm_price", lo_open=0.0),
    Field("size", "num", True, "TAO", "resting size", target="mm_size", lo_open=0.0),
    Field("timestamp_ms", "int", True, "ms", "placement time", target="mm_ts_ms"),
    Field("order_id", "int", True, "", "order id", target="mm_id"),
)

MARKOUT_FIELDS: tuple[Field, ...] = (
    Field("t_eval_ms", "int", True, "ms", "evaluation time", target="pm_t_eval_ms"),
    Field("side", "enum", True, "", "fill side", target="pm_side", names=("Buy", "Sell")),
    Field("size", "num", True, "TAO", "fill size", target="pm_size", lo=0.0),
    Field("price", "num", True, "USD", "fill price", target="pm_price"),
    Field("fair_at_fill", "num", True, "USD", "fair value at fill", target="pm_fair_at_fill"),
    Field("mid_at_fill", "num", True, "USD", "venue mid at fill", target="pm_mid_at_fill"),
    Field("fill_seq", "int", True, "", "fill sequence number", target="pm_fill_seq"),
)

# fmt: on

INT_LIMIT = 2**62  # integers are stored as int64
TOP_KEYS = ("snapshot_version", "description", "profile", "overrides", "now_ms", "global", "venues")

# ---------------------------------------------------------------------------------------------
# Scalar parsing
# ---------------------------------------------------------------------------------------------


def show_value(x: Any) -> str:
    """The offending value as it appears in JSON (strings quoted), one line, ≤ 60 chars."""
    try:
        s = json.dumps(x, allow_nan=True, ensure_ascii=False)
    except (TypeError, ValueError):
        s = repr(x)
    s = " ".join(s.split())
    return s if len(s) <= 60 else s[:57] + "..."


def field_error(path: str, msg: str) -> SnapshotError:
    """`SnapshotError("<path>: <msg>")`."""
    return SnapshotError(f"{path}: {msg}")


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _bounds(f: Field, path: str, x: float) -> None:
    if f.lo is not None and x < f.lo:
        raise field_error(path, f"expected a number >= {f.lo:g}, got {show_value(x)}")
    if f.lo_open is not None and x <= f.lo_open:
        raise field_error(path, f"expected a number > {f.lo_open:g}, got {show_value(x)}")
    if f.hi is not None and x > f.hi:
        raise field_error(path, f"expected a number <= {f.hi:g}, got {show_value(x)}")


def parse_value(f: Field, path: str, x: Any) -> Any:
    """JSON value → Python value of the field's kind (None for an allowed null)."""
    if x is None:
        if f.nullable:
            return None
        if f.kind == "num":
            raise field_error(path, "expected a finite number, got null")
        if f.kind == "int":
            raise field_error(path, "expected an integer, got null")
    if f.kind == "num":
        if not _is_number(x) or not math.isfinite(float(x)):
            raise field_error(path, f"expected a finite number, got {show_value(x)}")
        _bounds(f, path, float(x))
        return float(x)
    if f.kind == "int":
        if isinstance(x, float):
            ok = math.isfinite(x) and x.is_integer()
        else:
            ok = _is_number(x)
        if not ok:
            raise field_error(path, f"expected an integer, got {show_value(x)}")
        if abs(int(x)) > INT_LIMIT:
            raise field_error(
                path, f"expected an integer of magnitude <= 2**62, got {show_value(x)}"
            )
        _bounds(f, path, int(x))
        return int(x)
    if f.kind == "bool":
        if not isinstance(x, bool):
            raise field_error(path, f"expected true or false, got {show_value(x)}")
        return x
    if f.kind == "enum":
        if x not in f.names:
            allowed = ", ".join(f'"{n}"' for n in f.names)
            raise field_error(path, f"expected one of {allowed}, got {show_value(x)}")
        return f.names.index(x)
    raise AssertionError(f.kind)


def check_keys(obj: Any, path: str, fields: tuple[Field, ...]) -> None:
    """`obj` is an object holding every required field of `fields` and no unknown key."""
    if not isinstance(obj, Mapping):
        raise field_error(path, f"expected an object, got {show_value(obj)}")
    known = {f.name for f in fields}
    for k in obj:
        if k not in known:
            raise field_error(f"{path}.{k}" if path else str(k), "unknown field")
    for f in fields:
        if f.required and f.name not in obj:
            raise field_error(f"{path}.{f.name}" if path else f.name, "required field is missing")


def dump_value(f: Field, path: str, val: Any, has: Any = True) -> Any:
    """State value (with its mask `has`) → JSON value; inverse of :func:`parse_value`."""
    if f.nullable and f.mask is not None and not bool(has):
        return None
    if f.kind == "bool":
        return bool(val)
    if f.kind == "enum":
        return f.names[int(val)]
    if f.kind == "int":
        i = int(val)
        if f.nullable and f.null_value is not None and i <= f.null_value:
            return None
        return i
    x = float(val)
    if (
        f.nullable
        and f.null_value is not None
        and math.isinf(f.null_value)
        and not math.isfinite(x)
    ):
        return None
    if not math.isfinite(x):
        raise field_error(path, f"cannot write a non-finite value ({x!r}) to a snapshot")
    return x


# ---------------------------------------------------------------------------------------------
# Documentation
# ---------------------------------------------------------------------------------------------

_KIND_DOC = {
    "num": "number",
    "int": "integer",
    "bool": "boolean",
    "id": "string",
    "bools": "list of N booleans",
    "slot": "object or null",
    "markouts": "list of objects",
}


def _type_doc(f: Field) -> str:
    t = _KIND_DOC.get(f.kind, "string: " + " \\| ".join(f'"{n}"' for n in f.names))
    rng = []
    if f.lo is not None:
        rng.append(f"≥ {f.lo:g}")
    if f.lo_open is not None:
        rng.append(f"> {f.lo_open:g}")
    if f.hi is not None:
        rng.append(f"≤ {f.hi:g}")
    if rng:
        t += " " + ", ".join(rng)
    if f.nullable and f.kind != "slot":
        t += " or null"
    return t


def _default_doc(f: Field, st: StrategyState, where: str) -> str:
    if f.required:
        return "**required**"
    if f.default is not None:
        return f"optional ({f.default})"
    if f.kind in ("slot",):
        return "optional (null)"
    if f.kind == "markouts":
        return "optional ([])"
    src = st if where == "global" else st.venues
    val = np.asarray(getattr(src, f.field))
    if f.kind == "bools":
        return "optional (all false)"
    val = val if val.ndim == 0 else val[0]
    has = np.asarray(getattr(src, f.mask)) if f.mask else True
    has = has if np.ndim(has) == 0 else has[0]
    shown = dump_value(f, f.name, val, has)
    return f"optional ({json.dumps(shown)})"


def _table(fields: tuple[Field, ...], st: StrategyState | None, where: str) -> str:
    rows = ["| field | type | unit | required / default | meaning |", "|---|---|---|---|---|"]
    for f in fields:
        req = _default_doc(f, st, where) if st is not None else "**required**"
        unit = f.unit or "–"
        rows.append(f"| `{f.name}` | {_type_doc(f)} | {unit} | {req} | {f.doc} |")
    return "\n".join(rows)


def schema_markdown() -> str:
    """Markdown tables of the schema (global, venue, slot and markout fields) with defaults.

    Defaults are those of `init_state(cfg, base_ms=now_ms)`; the ones that derive from the
    config or from `now_ms` are named by their source.
    """
    st = init_state(make_config("balanced"), base_ms=0)
    return "\n\n".join(
        [
            "#### `global` fields\n\n" + _table(GLOBAL_FIELDS, st, "global"),
            "#### `venues[i]` fields\n\n" + _table(VENUE_FIELDS, st, "venue"),
            "#### MM slot object (`mm_open_bid`, `mm_open_ask`)\n\n"
            + _table(SLOT_FIELDS, None, ""),
            "#### Pending markout object (`pending_markouts[k]`)\n\n"
            + _table(MARKOUT_FIELDS, None, ""),
        ]
    )
