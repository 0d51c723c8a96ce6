"""The core runner's stdout / stderr (SIMULATION.md §10, §13.6): start-up header with its config
hash, the `[config]` knob lines, verbose tick lines, the kill line and the Daily Summary block.

`cfg_hash` in the header is an FNV-1a-64 of this port's own deterministic config dump
(:func:`config_dump`). The original hashes the debug print of its Rust config struct, so the
value is opaque and **not comparable** with the original's (only the format is the same).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import numpy as np

from paraphina_jax.compat.mc_output import PROFILE_DISPLAY, daily_summary
from paraphina_jax.config.types import (
    CONFIG_GROUPS,
    CONFIG_VERSION_ID,
    KILL_REASON_NAMES,
    REGIME_NAMES,
    StrategyConfig,
)


def rust_display(x: Any) -> str:
    """A value as Rust's `{}` prints it: f64 in shortest round-trip digits without exponent and
    without a trailing `.0` (5.0 ⇒ "5", 1e-7 ⇒ "0.0000001"); ints as is; bools true/false."""
    if isinstance(x, bool | np.bool_):
        return "true" if x else "false"
    if isinstance(x, int | np.integer):
        return str(int(x))
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    s = format(Decimal(repr(x)), "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def knob_log_lines(cfg: StrategyConfig, env: Mapping[str, str]) -> list[str]:
    """`[config] PARAPHINA_<X> = <v> (overrode default)` for every knob applied from `env`, in
    the order of STRATEGY §3.11, with the effective (clamped) value. Run-time variables
    (trade mode, best-effort exit, telemetry) and the profile variable print no line."""
    from paraphina_jax.config import env as knobs

    def get(path: str) -> Any:
        obj: Any = cfg
        for part in path.split("."):
            obj = getattr(obj, part)
        return obj

    lines = []

    def emit(name: str, value: Any) -> None:
        lines.append(f"[config] {knobs.PREFIX}{name} = {rust_display(value)} (overrode default)")

    numeric = list(knobs._FLOAT_KNOBS.items()) + list(knobs._INT_KNOBS.items())
    order = [k for k, _ in numeric]
    late = ("FUNDING_STALE_MS", "FUNDING_AVOID_WINDOW_MS", "CATASTROPHIC_STALE_MS")
    for name in [k for k in order if k not in late]:
        raw = env.get(knobs.PREFIX + name)
        kind = knobs._FLOAT_KNOBS if name in knobs._FLOAT_KNOBS else knobs._INT_KNOBS
        parse = knobs._parse_float if kind is knobs._FLOAT_KNOBS else knobs._parse_int
        if raw is not None and parse(raw) is not None:
            emit(name, get(kind[name][0]))
    for name, venue in knobs._STALE_OVERRIDE_KNOBS.items():
        raw = env.get(knobs.PREFIX + name)
        if raw is not None and knobs._parse_int(raw) is not None and venue in cfg.venues.venue_ids:
            emit(name, int(cfg.venues.stale_override_ms[cfg.venues.venue_ids.index(venue)]))
    for name in late:
        raw = env.get(knobs.PREFIX + name)
        if raw is not None and knobs._parse_int(raw) is not None:
            emit(name, get(knobs._INT_KNOBS[name][0]))
    for name, field in knobs._FUNDING_SWITCHES.items():
        if env.get(knobs.PREFIX + name) is not None:
            emit(name, bool(getattr(cfg.funding, field)))
    return lines


def config_dump(cfg: StrategyConfig) -> str:
    """Deterministic text dump of the whole config (groups and fields in declaration order,
    floats in shortest round-trip form, flags and profile last)."""

    def fmt(x: Any) -> str:
        if isinstance(x, np.ndarray):
            return "[" + ", ".join(fmt(a.item()) for a in x.reshape(-1)) + "]"
        if isinstance(x, float | np.floating):
            return repr(float(x))
        return repr(x)

    parts = []
    for group in CONFIG_GROUPS:
        obj = getattr(cfg, group)
        fields = ", ".join(
            f"{f.name}: {fmt(getattr(obj, f.name))}" for f in dataclasses.fields(obj)
        )
        parts.append(f"{group} {{ {fields} }}")
    flags = ", ".join(
        f"{f.name}: {getattr(cfg.flags, f.name)!r}" for f in dataclasses.fields(cfg.flags)
    )
    parts.append(f"flags {{ {flags} }}")
    parts.append(f"profile: {cfg.profile!r}")
    return "StrategyConfig { " + ", ".join(parts) + " }"


def fnv1a64(data: bytes) -> int:
    """FNV-1a 64-bit hash."""
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def header_line(cfg: StrategyConfig, ticks: int, seed: int | None) -> str:
    """Start-up stdout line. `cfg_hash` hashes :func:`config_dump` (not the original's hash)."""
    h = fnv1a64(config_dump(cfg).encode())
    s = "none" if seed is None else str(seed)
    return (
        f"paraphina | cfg={CONFIG_VERSION_ID} | cfg_hash=0x{h:016x} | "
        f"profile={PROFILE_DISPLAY[cfg.profile]} | ticks={ticks} | seed={s}"
    )


def kill_line(tick: int, reason: int) -> str:
    return (
        f"Kill switch active at tick {tick} - stopping simulation early "
        f"(reason: {KILL_REASON_NAMES[reason]})."
    )


def verbose_line(res: dict[str, Any], t: int) -> str:
    """Per-tick verbose line (SIMULATION §10)."""
    return (
        f"tick {t}: q={res['q_global_tao'][t]:.4f} Δ={res['dollar_delta_usd'][t]:.2f} "
        f"basis={res['basis_usd'][t]:.2f} pnl={res['pnl_total'][t]:.2f} "
        f"regime={REGIME_NAMES[int(res['risk_regime'][t])]} "
        f"kill={'true' if bool(res['kill_switch'][t]) else 'false'}"
    )


def result_lines(res: dict[str, Any], verbose: bool = False) -> list[str]:
    """The original's stdout after the header: verbose tick lines, kill line, Daily Summary."""
    lines = [verbose_line(res, t) for t in range(res["ticks_executed"])] if verbose else []
    s = res["state"]
    if res["kill_tick"] >= 0:
        lines.append(kill_line(res["kill_tick"], int(s.kill_reason)))
    lines += daily_summary(
        float(s.daily_realised_pnl),
        float(s.daily_unrealised_pnl),
        float(s.daily_pnl_total),
        bool(s.kill_switch),
        int(s.kill_reason),
        int(s.risk_regime),
    ).split("\n")
    return lines
