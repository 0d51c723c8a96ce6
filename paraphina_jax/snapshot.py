"""Versioned JSON snapshot of one strategy state (`snapshot_version: 1`), STRATEGY.md §4.

A snapshot is the strategy state "as of now" plus the config that produced it:

    {"snapshot_version": 1, "description": "...", "profile": "balanced",
     "overrides": {"HEDGE_BAND_BASE": 4.0, "flags.hedge_band_mode": "spec"},
     "now_ms": 1717000000000,
     "global": {<StrategyState global fields by their §4 names>},
     "venues": [{"venue_id": "extended", <VenueState fields by their §4 names>}, ...]}

Absent values are JSON `null` and map to the state's `has_*` masks (`mid: null` ⇒ has_mid false,
`fair_value: null` ⇒ has_fair_value false). Enums are strings ("Healthy", "Warning",
"HardLimit", kill reason names, "Buy"/"Sell"). MM slots are `mm_open_bid` / `mm_open_ask`:
null or `{price, size, timestamp_ms, order_id}`; pending markouts an optional FIFO list.
Optional fields left out take their `init_state(cfg, base_ms=now_ms)` value; a missing required
field, a mistyped value, a wrong venue count or a non-finite number raises :class:`SnapshotError`
with a one-line message naming the field (`venues[2].mid: expected a finite number, got "abc"`).
The field tables (`GLOBAL_FIELDS`, `VENUE_FIELDS`, ...) live in :mod:`paraphina_jax.snapshot_schema`;
`docs/snapshot.md` documents every field.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from paraphina_jax.config import (
    KILL_REASON_NAMES,
    ConfigError,
    Flags,
    StrategyConfig,
    apply_overrides,
    make_config,
    resolve_key,
)
from paraphina_jax.config.types import CONFIG_GROUPS, SIDE_BUY, SIDE_SELL
from paraphina_jax.snapshot_schema import (
    GLOBAL_FIELDS,
    MARKOUT_FIELDS,
    SIDE_NAMES,
    SLOT_FIELDS,
    SNAPSHOT_VERSION,
    TOP_KEYS,
    VENUE_FIELDS,
    Field,
    SnapshotError,
    check_keys,
    dump_value,
    field_error,
    parse_value,
    schema_markdown,
    show_value,
)
from paraphina_jax.strategy.types import StrategyState, init_state

__all__ = [
    "SNAPSHOT_VERSION",
    "SnapshotError",
    "config_overrides",
    "load_snapshot",
    "schema_markdown",
    "snapshot_from_dict",
    "state_to_snapshot",
]


def _store(arrs: dict[str, np.ndarray], f: Field, idx: Any, val: Any) -> None:
    """Write a parsed scalar (None = null) into the state arrays at `idx`."""
    if val is None:
        if f.mask is not None:
            arrs[f.mask][idx] = False
            arrs[f.field][idx] = 0
        else:
            arrs[f.field][idx] = f.null_value
        return
    if f.mask is not None:
        arrs[f.mask][idx] = True
    arrs[f.field][idx] = val


# ---------------------------------------------------------------------------------------------
# Snapshot → (cfg, state, now_ms)
# ---------------------------------------------------------------------------------------------


def _config_from(d: Mapping[str, Any], parity: bool) -> StrategyConfig:
    if "profile" not in d:
        raise field_error("profile", "required field is missing")
    profile = d["profile"]
    if not isinstance(profile, str):
        raise field_error("profile", f"expected a profile name string, got {show_value(profile)}")
    overrides = d.get("overrides", {})
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, Mapping):
        raise field_error("overrides", f"expected an object, got {show_value(overrides)}")
    try:
        cfg = make_config(profile, parity=parity)
    except ConfigError as e:
        raise SnapshotError(str(e).splitlines()[0]) from None
    default_flags = Flags()
    for key, value in overrides.items():
        try:
            path = resolve_key(str(key))
        except ConfigError as e:
            raise field_error(f"overrides.{key}", str(e).splitlines()[0]) from None
        group, _, name = path.partition(".")
        if group == "flags":  # a flag keeps the type of its default (true/false or a string)
            want = type(getattr(default_flags, name))
            if type(value) is not want:
                kind = "true or false" if want is bool else "a string"
                raise field_error(f"overrides.{key}", f"expected {kind}, got {show_value(value)}")
    try:
        return apply_overrides(cfg, overrides, source="overrides")
    except ConfigError as e:
        whole = str(e).splitlines()[0]
    for key, value in overrides.items():  # name the culprit key as written, when there is one
        try:
            apply_overrides(cfg, {key: value}, source=f"overrides.{key}")
        except ConfigError as e:
            raise SnapshotError(str(e).splitlines()[0]) from None
    raise SnapshotError(whole)


def _parse_global(g: Any, st: StrategyState, n: int) -> dict[str, np.ndarray]:
    check_keys(g, "global", GLOBAL_FIELDS)
    arrs = {
        k: np.array(getattr(st, k), copy=True) for k in st.__dataclass_fields__ if k != "venues"
    }
    for f in GLOBAL_FIELDS:
        if f.name not in g:
            continue
        path = f"global.{f.name}"
        x = g[f.name]
        if f.kind == "bools":
            if not isinstance(x, list) or len(x) != n or not all(isinstance(b, bool) for b in x):
                raise field_error(path, f"expected a list of {n} booleans, got {show_value(x)}")
            arrs[f.field] = np.asarray(x, dtype=bool)
            continue
        _store(arrs, f, (), parse_value(f, path, x))
    killed, reason = bool(arrs["kill_switch"]), int(arrs["kill_reason"])
    if killed and reason == 0:
        raise field_error("global.kill_reason", 'kill_switch is true but kill_reason is "None"')
    if not killed and reason != 0:
        raise field_error(
            "global.kill_reason",
            f'kill_switch is false but kill_reason is "{KILL_REASON_NAMES[reason]}"',
        )
    return arrs


def _parse_slot(x: Any, path: str, arrs: dict[str, np.ndarray], j: int, k: int) -> None:
    if x is None:
        arrs["mm_has"][j, k] = False
        for f in SLOT_FIELDS:
            arrs[f.field][j, k] = 0
        return
    check_keys(x, path, SLOT_FIELDS)
    arrs["mm_has"][j, k] = True
    for f in SLOT_FIELDS:
        arrs[f.field][j, k] = parse_value(f, f"{path}.{f.name}", x[f.name])


def _parse_markouts(x: Any, path: str, arrs: dict[str, np.ndarray], j: int, cap: int) -> None:
    if not isinstance(x, list):
        raise field_error(path, f"expected a list, got {show_value(x)}")
    if len(x) > cap:
        raise field_error(
            path, f"at most {cap} entries (toxicity.max_pending_per_venue), got {len(x)}"
        )
    for f in MARKOUT_FIELDS:
        arrs[f.field][j, :] = 0
    for i, e in enumerate(x):
        check_keys(e, f"{path}[{i}]", MARKOUT_FIELDS)
        for f in MARKOUT_FIELDS:
            val = parse_value(f, f"{path}[{i}].{f.name}", e[f.name])
            if f.name == "side":
                val = SIDE_BUY if val == 0 else SIDE_SELL
            arrs[f.field][j, i] = val
    arrs["pm_count"][j] = len(x)
    arrs["pm_head"][j] = 0


def _parse_venues(vs: Any, st: StrategyState, cfg: StrategyConfig) -> dict[str, np.ndarray]:
    ids = cfg.venues.venue_ids
    n = len(ids)
    if not isinstance(vs, list):
        raise field_error("venues", f"expected a list of {n} venue objects, got {show_value(vs)}")
    if len(vs) != n:
        raise field_error("venues", f"expected {n} venues ({', '.join(ids)}), got {len(vs)}")
    v = st.venues
    arrs = {k: np.array(getattr(v, k), copy=True) for k in v.__dataclass_fields__}
    cap = int(cfg.toxicity.max_pending_per_venue)
    for j, obj in enumerate(vs):
        p = f"venues[{j}]"
        check_keys(obj, p, VENUE_FIELDS)
        if obj["venue_id"] != ids[j]:
            raise field_error(
                f"{p}.venue_id",
                f'expected "{ids[j]}" (config order), got {show_value(obj["venue_id"])}',
            )
        for f in VENUE_FIELDS:
            if f.name not in obj or f.kind == "id":
                continue
            x = obj[f.name]
            path = f"{p}.{f.name}"
            if f.kind == "slot":
                _parse_slot(x, path, arrs, j, 0 if f.name == "mm_open_bid" else 1)
            elif f.kind == "markouts":
                _parse_markouts(x, path, arrs, j, cap)
            else:
                _store(arrs, f, j, parse_value(f, path, x))
        if (obj["spread"] is None) != (obj["mid"] is None):
            want = (
                "null when mid is null"
                if obj["mid"] is None
                else "a finite number when mid is given"
            )
            raise field_error(f"{p}.spread", f"expected {want}, got {show_value(obj['spread'])}")
        if arrs["position_tao"][j] != 0 and not arrs["avg_entry_price"][j] > 0:
            raise field_error(
                f"{p}.avg_entry_price", "expected a number > 0 when position_tao is non-zero, got 0"
            )
    return arrs


def snapshot_from_dict(
    d: Any, *, parity: bool = False
) -> tuple[StrategyConfig, StrategyState, int]:
    """Parse a snapshot mapping into `(cfg, state, now_ms)` (NumPy float64/int64 state).

    Args:
      d: the decoded JSON object.
      parity: start from the reference-parity flags (`make_config(profile, parity=True)`) before
        applying the snapshot's overrides.

    Raises:
      SnapshotError: one-line message naming the offending field.
    """
    if not isinstance(d, Mapping):
        raise field_error("snapshot", f"expected a JSON object, got {show_value(d)}")
    for k in d:
        if k not in TOP_KEYS:
            raise field_error(str(k), "unknown field")
    for k in ("snapshot_version", "profile", "now_ms", "global", "venues"):
        if k not in d:
            raise field_error(k, "required field is missing")
    if d["snapshot_version"] != SNAPSHOT_VERSION or isinstance(d["snapshot_version"], bool):
        raise field_error(
            "snapshot_version",
            f"expected {SNAPSHOT_VERSION}, got {show_value(d['snapshot_version'])}",
        )
    if "description" in d and not isinstance(d["description"], str):
        raise field_error("description", f"expected a string, got {show_value(d['description'])}")
    cfg = _config_from(d, parity)
    now_ms = parse_value(Field("now_ms", "int", True, "ms", ""), "now_ms", d["now_ms"])
    st = init_state(cfg, base_ms=now_ms)
    g = _parse_global(d["global"], st, cfg.n_venues)
    v = _parse_venues(d["venues"], st, cfg)
    venues = st.venues.replace(
        **{k: np.asarray(a, dtype=getattr(st.venues, k).dtype) for k, a in v.items()}
    )
    glob = {k: np.asarray(a, dtype=np.asarray(getattr(st, k)).dtype) for k, a in g.items()}
    return cfg, st.replace(venues=venues, **glob), now_ms


def load_snapshot(
    path: str | Path, *, parity: bool = False
) -> tuple[StrategyConfig, StrategyState, int]:
    """Read a snapshot file: `(cfg, state, now_ms)`; see :func:`snapshot_from_dict`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise SnapshotError(f"{p}: cannot read: {e.strerror or e}") from None
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise SnapshotError(
            f"{p}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}"
        ) from None
    return snapshot_from_dict(d, parity=parity)


# ---------------------------------------------------------------------------------------------
# (state, cfg, now_ms) → snapshot
# ---------------------------------------------------------------------------------------------


def config_overrides(cfg: StrategyConfig) -> dict[str, Any]:
    """Dotted-path overrides turning `make_config(cfg.profile)` (default flags) into `cfg`."""
    base = make_config(cfg.profile)
    out: dict[str, Any] = {}
    for g in CONFIG_GROUPS:
        a, b = getattr(cfg, g), getattr(base, g)
        for name in a.__dataclass_fields__:
            if name == "venue_ids":
                continue
            x, y = getattr(a, name), getattr(b, name)
            if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
                if not np.array_equal(np.asarray(x), np.asarray(y)):
                    out[f"{g}.{name}"] = np.asarray(x).tolist()
            elif x != y or type(x) is not type(y):
                out[f"{g}.{name}"] = x.item() if isinstance(x, np.generic) else x
    default = Flags()
    for f in dataclasses.fields(Flags):
        if getattr(cfg.flags, f.name) != getattr(default, f.name):
            out[f"flags.{f.name}"] = getattr(cfg.flags, f.name)
    return out


def state_to_snapshot(
    state: StrategyState, cfg: StrategyConfig, now_ms: int, description: str | None = None
) -> dict[str, Any]:
    """Full snapshot (every field written) of one unbatched state; inverse of `snapshot_from_dict`.

    Values hidden by a false `has_*` mask are written as null (so they read back as 0); the config
    is written as the profile plus :func:`config_overrides`.
    """
    glob: dict[str, Any] = {}
    for f in GLOBAL_FIELDS:
        val = np.asarray(getattr(state, f.field))
        if f.kind == "bools":
            glob[f.name] = [bool(b) for b in val]
            continue
        has = np.asarray(getattr(state, f.mask)) if f.mask else True
        glob[f.name] = dump_value(f, f"global.{f.name}", val, has)
    v = state.venues
    arr = {k: np.asarray(getattr(v, k)) for k in v.__dataclass_fields__}
    venues = []
    for j, vid in enumerate(cfg.venues.venue_ids):
        p = f"venues[{j}]"
        row: dict[str, Any] = {}
        for f in VENUE_FIELDS:
            if f.kind == "id":
                row[f.name] = vid
            elif f.kind == "slot":
                k = 0 if f.name == "mm_open_bid" else 1
                row[f.name] = (
                    {
                        s.name: dump_value(s, f"{p}.{f.name}.{s.name}", arr[s.field][j, k])
                        for s in SLOT_FIELDS
                    }
                    if bool(arr["mm_has"][j, k])
                    else None
                )
            elif f.kind == "markouts":
                ents = []
                m = arr["pm_t_eval_ms"].shape[1]
                for i in range(int(arr["pm_count"][j])):
                    e = {}
                    slot = (int(arr["pm_head"][j]) + i) % m
                    for s in MARKOUT_FIELDS:
                        x = arr[s.field][j, slot]
                        if s.name == "side":
                            e[s.name] = SIDE_NAMES[SIDE_BUY if int(x) == SIDE_BUY else SIDE_SELL]
                        else:
                            e[s.name] = dump_value(s, f"{p}.{f.name}[{i}].{s.name}", x)
                    ents.append(e)
                row[f.name] = ents
            else:
                has = arr[f.mask][j] if f.mask else True
                row[f.name] = dump_value(f, f"{p}.{f.name}", arr[f.field][j], has)
        venues.append(row)
    out: dict[str, Any] = {"snapshot_version": SNAPSHOT_VERSION}
    if description is not None:
        out["description"] = description
    out.update(
        profile=cfg.profile,
        overrides=config_overrides(cfg),
        now_ms=int(now_ms),
        **{"global": glob},
        venues=venues,
    )
    return out
