"""Host-side telemetry: per-tick JSONL (STRATEGY §18 schema v1) from the episode's stacked arrays.

One JSON object per executed tick (ticks after the kill are not written), in tick order:

* the §18 required fields exactly: `schema_version` (1), `t`, `pnl_realised`, `pnl_unrealised`,
  `pnl_total`, `risk_regime` ("Normal" | "Warning" | "HardLimit"), `kill_switch`, `kill_reason`
  ("None" if not killed), `q_global_tao`, `dollar_delta_usd`, `basis_usd`;
* §18 optional fields: `fv_available`, `fair_value` (null when absent), `sigma_eff`,
  `healthy_venues_used_count`, `healthy_venues_used` (venue indices), `basis_gross_usd`;
* `"state"`: what the safety rules read — global `risk_regime`, `kill_switch`, `kill_reason`,
  `q_global_tao`, `dollar_delta_usd`, `basis_usd`, `basis_gross_usd`, `delta_limit_usd`,
  `basis_limit_warn_usd`, `basis_limit_hard_usd`, `daily_loss_limit_usd`, `fair_value`,
  `has_fair_value`, `sigma_eff`, `now_ms`, and per venue lists (`venues` block, index order):
  `status` (names), `staleness_ms` (now − last mid update; null if never), `toxicity`,
  `position_tao`, `dist_liq_sigma`, `margin_available_usd`, `mid`, `best_bid`, `best_ask`
  (mid ∓ spread/2), `spread`, `has_mid`;
* `"actions"`: every field of the executed (post-shield) `TickOutput` — `quotes`, `orders`
  (`[N][2]` lists, side 0 = bid/buy), `order_ids`, `exits`, `hedge`, `kill_exit`,
  `kill_transition`, `risk_due`, `exit_due`, `hedge_due`;
* `"proposed"`: the same for the pre-shield actions, only when the shield hook changed the
  program (a non-identity shield); `"interventions"`: its per-rule counts of the tick;
* `"shield"`: the facts the shield decided on at the hook (before this tick's IOC fills), only
  for a shield that exposes them (`facts_fn`, e.g. `safety_shield.twin.shield_hook`) — what
  `paraphina-jax audit` checks the actions against exactly;
* `"market"`: the true latent price, venue mids, outages and the vol regime; `"fills"`: the
  tick's fills in application order (`venue, side, size, price, fee_bps, purpose`); `"cash_usd"`.

JSON booleans are booleans, integers have no decimal point, every number is finite: a value that
is not finite (e.g. the cost of a venue that is no hedge candidate) is written as null and read
back as NaN. Files are written to a temporary name and renamed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from paraphina_jax.config.types import (
    KILL_REASON_NAMES,
    PURPOSE_NAMES,
    REGIME_NAMES,
    STATUS_NAMES,
    StrategyConfig,
)
from paraphina_jax.sim.results import Telemetry

SCHEMA_VERSION = 1
REQUIRED_FIELDS = (
    "schema_version",
    "t",
    "pnl_realised",
    "pnl_unrealised",
    "pnl_total",
    "risk_regime",
    "kill_switch",
    "kill_reason",
    "q_global_tao",
    "dollar_delta_usd",
    "basis_usd",
)


class TelemetryError(ValueError):
    """A telemetry file that breaks the schema (message names the file, line and field)."""


def _num(x: Any) -> Any:
    """One JSON value: bool → bool, integer → int, float → float or None when not finite."""
    a = np.asarray(x)
    if a.dtype == bool:
        return bool(a)
    if np.issubdtype(a.dtype, np.integer):
        return int(a)
    f = float(a)
    return f if math.isfinite(f) else None


def _lst(x: Any) -> Any:
    a = np.asarray(x)
    if a.ndim == 0:
        return _num(a)
    return [_lst(e) for e in a]


def _tree_json(obj: Any) -> Any:
    """A struct dataclass of arrays → a dict of JSON lists / values (recursively)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: _tree_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    return _lst(obj)


def _facts_json(facts: Any) -> dict[str, Any]:
    """The shield's facts of one tick (a struct dataclass) as JSON: `risk_regime` and `status`
    by name, the rest as numbers / lists."""
    out = _tree_json(facts)
    if "risk_regime" in out:
        out["risk_regime"] = REGIME_NAMES[int(out["risk_regime"])]
    if "status" in out:
        out["status"] = [STATUS_NAMES[int(x)] for x in out["status"]]
    return out


def _at(tree: Any, idx: tuple[int, ...]) -> Any:
    import jax

    return jax.tree.map(lambda x: np.asarray(x)[idx], tree)


def tick_records(
    telemetry: Telemetry, cfg: StrategyConfig, episode: int = 0
) -> list[dict[str, Any]]:
    """The JSON objects of one episode's executed ticks (see the module docstring).

    Args:
      telemetry: stacked `[K, T, ...]` (or one episode `[T, ...]`) telemetry.
      episode: k < K (ignored for a single-episode telemetry).
    """
    rec = telemetry.record
    batched = np.ndim(rec.t) == 2
    pre = (episode,) if batched else ()
    r = _at(rec, pre)
    acts = _at(telemetry.actions, pre)
    props = None if telemetry.proposed is None else _at(telemetry.proposed, pre)
    fills = _at(telemetry.fills, pre)
    interv = np.asarray(telemetry.interventions)[pre]
    facts = None if telemetry.shield_facts is None else _at(telemetry.shield_facts, pre)
    loss_limit = -abs(float(np.asarray(cfg.risk.daily_loss_limit)))
    out = []
    for t in range(int(np.asarray(r.t).shape[0])):
        if not bool(r.active[t]):
            continue
        has_fv = bool(r.has_fair_value[t])
        fv = _num(r.fair_value[t]) if has_fv else None
        hv = [int(i) for i in np.flatnonzero(r.healthy_venues_used[t])]
        mid = np.asarray(r.mid[t], np.float64)
        spr = np.asarray(r.spread[t], np.float64)
        has_mid = np.asarray(r.has_mid[t])
        age = np.where(
            r.has_mid_update[t], int(r.now_ms[t]) - np.asarray(r.last_mid_update_ms[t]), -1
        )

        def masked(x: np.ndarray, ok: np.ndarray) -> list[Any]:
            return [_num(v) if bool(o) else None for v, o in zip(x, ok, strict=True)]

        state = {
            "now_ms": _num(r.now_ms[t]),
            "risk_regime": REGIME_NAMES[int(r.risk_regime[t])],
            "kill_switch": bool(r.kill_switch[t]),
            "kill_reason": KILL_REASON_NAMES[int(r.kill_reason[t])],
            "q_global_tao": _num(r.q_global_tao[t]),
            "dollar_delta_usd": _num(r.dollar_delta_usd[t]),
            "basis_usd": _num(r.basis_usd[t]),
            "basis_gross_usd": _num(r.basis_gross_usd[t]),
            "delta_limit_usd": _num(r.delta_limit_usd[t]),
            "basis_limit_warn_usd": _num(r.basis_limit_warn_usd[t]),
            "basis_limit_hard_usd": _num(r.basis_limit_hard_usd[t]),
            "daily_loss_limit_usd": loss_limit,
            "fair_value": fv,
            "has_fair_value": has_fv,
            "sigma_eff": _num(r.sigma_eff[t]),
            "venues": {
                "status": [STATUS_NAMES[int(s)] for s in r.status[t]],
                "staleness_ms": [int(a) if a >= 0 else None for a in age],
                "toxicity": _lst(r.toxicity[t]),
                "position_tao": _lst(r.position_tao[t]),
                "dist_liq_sigma": _lst(r.dist_liq_sigma[t]),
                "margin_available_usd": _lst(r.margin_available_usd[t]),
                "mid": masked(mid, has_mid),
                "best_bid": masked(mid - spr / 2.0, has_mid),
                "best_ask": masked(mid + spr / 2.0, has_mid),
                "spread": masked(spr, has_mid),
                "has_mid": _lst(has_mid),
            },
        }
        fv_ok = np.asarray(fills.valid[t])
        fill_list = [
            {
                "venue": int(fills.venue[t][k]),
                "side": int(fills.side[t][k]),
                "size": _num(fills.size[t][k]),
                "price": _num(fills.price[t][k]),
                "fee_bps": _num(fills.fee_bps[t][k]),
                "purpose": PURPOSE_NAMES[int(fills.purpose[t][k])],
            }
            for k in np.flatnonzero(fv_ok)
        ]
        obj: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "t": int(r.t[t]),
            "pnl_realised": _num(r.pnl_realised[t]),
            "pnl_unrealised": _num(r.pnl_unrealised[t]),
            "pnl_total": _num(r.pnl_total[t]),
            "risk_regime": REGIME_NAMES[int(r.risk_regime[t])],
            "kill_switch": bool(r.kill_switch[t]),
            "kill_reason": KILL_REASON_NAMES[int(r.kill_reason[t])],
            "q_global_tao": _num(r.q_global_tao[t]),
            "dollar_delta_usd": _num(r.dollar_delta_usd[t]),
            "basis_usd": _num(r.basis_usd[t]),
            "fv_available": bool(r.fv_available[t]),
            "fair_value": fv,
            "sigma_eff": _num(r.sigma_eff[t]),
            "healthy_venues_used_count": int(r.healthy_venues_used_count[t]),
            "healthy_venues_used": hv,
            "basis_gross_usd": _num(r.basis_gross_usd[t]),
            "cash_usd": _num(r.cash_usd[t]),
            "state": state,
            "actions": _tree_json(_at(acts, (t,))),
        }
        if props is not None:
            obj["proposed"] = _tree_json(_at(props, (t,)))
        obj["interventions"] = _lst(interv[t])
        if facts is not None:
            obj["shield"] = _facts_json(_at(facts, (t,)))
        obj["market"] = {
            "fair": _num(r.true_fair[t]),
            "mid": _lst(r.true_mid[t]),
            "outage": _lst(r.outage[t]),
            "vol_regime": int(r.vol_regime[t]),
        }
        obj["fills"] = fill_list
        out.append(obj)
    return out


def telemetry_to_jsonl(
    telemetry: Telemetry, cfg: StrategyConfig, path: str | os.PathLike[str], episode: int = 0
) -> int:
    """Write one episode's telemetry as JSONL (temporary name, then rename).

    Args:
      telemetry: `[K, T]` (or `[T]`) telemetry from `run_batch` / the reference episode.
      cfg: the strategy config of the run (loss limit).
      path: output file.
      episode: which of the K episodes.
    Returns:
      The number of records written.
    """
    path = Path(path)
    recs = tick_records(telemetry, cfg, episode)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for obj in recs:
            fh.write(json.dumps(obj, allow_nan=False, separators=(",", ":")))
            fh.write("\n")
    os.replace(tmp, path)
    return len(recs)


def _check(obj: Any, where: str) -> None:
    if not isinstance(obj, dict):
        raise TelemetryError(f"{where}: not a JSON object")
    for k in REQUIRED_FIELDS:
        if k not in obj:
            raise TelemetryError(f"{where}: missing required field {k!r}")
    if obj["schema_version"] != SCHEMA_VERSION:
        raise TelemetryError(
            f"{where}: schema_version {obj['schema_version']!r} (allowed: {SCHEMA_VERSION})"
        )
    if not isinstance(obj["kill_switch"], bool):
        raise TelemetryError(f"{where}: kill_switch must be a JSON boolean")
    if obj["risk_regime"] not in REGIME_NAMES:
        raise TelemetryError(
            f"{where}: risk_regime {obj['risk_regime']!r} (allowed: {REGIME_NAMES})"
        )


def _to_array(values: list[Any]) -> np.ndarray:
    """Stack per-tick JSON values; null → NaN (floats) ; bool and int lists keep their dtype."""
    flat = np.asarray(values, dtype=object)
    leaves = [v for v in flat.reshape(-1) if v is not None]
    if leaves and all(isinstance(v, bool) for v in leaves) and len(leaves) == flat.size:
        return flat.astype(bool)
    if leaves and all(isinstance(v, int) and not isinstance(v, bool) for v in leaves):
        if len(leaves) == flat.size:
            return flat.astype(np.int64)
    if leaves and all(isinstance(v, str) for v in leaves):
        return flat.astype(str)
    return np.where(flat == None, np.nan, flat).astype(np.float64)  # noqa: E711


def _collect(objs: list[Any]) -> Any:
    first = objs[0]
    if isinstance(first, dict):
        return {k: _collect([o[k] for o in objs]) for k in first}
    if isinstance(first, list) and first and isinstance(first[0], dict):
        return objs  # ragged lists of objects (fills) stay per tick
    if isinstance(first, list) and len({len(o) for o in objs}) > 1:
        return [np.asarray(o) for o in objs]  # ragged (e.g. healthy_venues_used indices)
    if isinstance(first, list) and not first:
        return np.zeros((len(objs), 0))
    return _to_array(objs)


def read_telemetry_jsonl(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a telemetry file back into NumPy arrays.

    Returns:
      A nested dict mirroring the records: scalars become `[T]` arrays, per-venue lists `[T, N]`,
      order-plan lists `[T, N, 2]`; strings stay strings; null → NaN; ragged lists
      (`healthy_venues_used`) become a per-tick list of arrays; `"fills"` stays a per-tick list
      of fill objects.
    Raises:
      TelemetryError: a record breaks the schema (missing required field, wrong version,
        non-boolean kill_switch, unknown regime, ticks not increasing).
    """
    path = Path(path)
    objs = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            obj = json.loads(line)
            _check(obj, f"{path}:{i}")
            if objs and obj["t"] <= objs[-1]["t"]:
                raise TelemetryError(f"{path}:{i}: t={obj['t']} not increasing")
            objs.append(obj)
    if not objs:
        raise TelemetryError(f"{path}: no records")
    return _collect(objs)
