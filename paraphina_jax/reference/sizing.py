"""Quote size model, float64 NumPy reference engine (STRATEGY.md §12).

One loop over venues per side (:func:`side_sizes`; :func:`quote_sizes` does both sides) that
follows the twelve numbered steps of §12 in order:

```text
1  Q = e/η if (edge passed and e > 0) else 0                       η floored at 1e-9
2  Q ← Q·size_mult                 ('rec' control surface: then Q ← Q·size_scale_v)
3  Q ← max(Q, lot_v)               (D24 'ref' only)
4  Q ← min(Q, (margin_available·(MM_MAX_LEVERAGE·MM_MARGIN_SAFETY))/price)   if price > 0
5  dist ≤ LIQ_CRIT ⇒ reduce-only (reachable with D15 only); CRIT < dist < WARN ⇒ linear shrink
6  venue status Warning ⇒ Q ← 0.5·Q                       (skipped under disable_toxicity_gate)
7  TOX_MED ≤ tox < TOX_HIGH ⇒ Q ← Q·clip(1 − (tox − MED)/0.3, 0.1, 1)   (same ablation)
8  delta throttle ρ = |Δ$|/max(L_delta, 1): ρ ≥ 2 ⇒ no quotes; 1 < ρ < 2 ⇒ risk-reducing side ·(2 − ρ)
9  Warning regime ⇒ Q ← min(Q, max(Q_WARN_CAP, 0))
10 Q ← min(Q, max_order_size_v)    (D24 'spec': applied right after step 2, no step 3)
11 Q ← floor(Q/lot)·lot            (lot floored at 1e-9, no epsilon)
12 emit iff Q ≥ max(lot_v, 0) and the edge filter passed
```

Options: D16 (`mm_enforce_min_notional`) also drops a side with `Q·price < min_notional_v`;
control surface 'ref_env' multiplies the final rounded size by `size_scale_v` (a side whose
scaled size is not > 0 is dropped, as the gateway refuses non-positive sizes).

The gate code of a dropped side is the first that fired: GATE_EDGE (step 1),
GATE_LIQ_REDUCE_ONLY (step 5), GATE_DELTA_THROTTLE (step 8), GATE_SIZE_BELOW_LOT (step 12 or a
zero 'ref_env' size), GATE_MIN_NOTIONAL (D16).
"""

from __future__ import annotations

import math

import numpy as np

from paraphina_jax.config.types import (
    REGIME_WARNING,
    STATUS_WARNING,
    StrategyConfig,
)
from paraphina_jax.strategy.types import (
    GATE_DELTA_THROTTLE,
    GATE_EDGE,
    GATE_LIQ_REDUCE_ONLY,
    GATE_MIN_NOTIONAL,
    GATE_NONE,
    GATE_SIZE_BELOW_LOT,
    Controls,
    StrategyState,
)

ETA_FLOOR = 1e-9  # step 1
LOT_FLOOR = 1e-9  # step 11
TOX_SHRINK_SPAN = 0.3  # step 7, hard-coded in the reference
LIQ_SHRINK_EPS = 1e-9  # step 5 denominator guard
WARN_VENUE_FACTOR = 0.5  # step 6


def _fmax(a: float, b: float) -> float:
    """max that ignores a NaN operand (IEEE maxNum, as the reference's f64::max)."""
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return a if a >= b else b


def _fmin(a: float, b: float) -> float:
    """min that ignores a NaN operand (f64::min)."""
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return a if a <= b else b


def _clip(x: float, lo: float, hi: float) -> float:
    return _fmin(_fmax(x, lo), hi)


def side_sizes(
    state: StrategyState,
    px: np.ndarray,
    edge: np.ndarray,
    edge_ok: np.ndarray,
    side: int,
    controls: Controls | None,
    cfg: StrategyConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """§12 sizes of one side (`side` 0 = bid/buy, 1 = ask/sell) of every venue.

    Args:
      state: strategy state (size_mult, regime, Δ$, L_delta, per-venue margin, liquidation
        distance, status, toxicity, position).
      px: `[N]` snapped quote prices of this side, before any 'ref_env' stretch.
      edge: `[N]` per-unit edges of this side (§11.6).
      edge_ok: `[N]` bool, the §11.6 edge filter.
      side: 0 or 1.
      controls: control surface, or None for none.
      cfg: config.

    Returns:
      `(size [N], gate [N])`: the size to emit (0 where dropped) and the GATE_* code of the step
      that dropped the side (GATE_NONE where emitted).
    """
    ven = state.venues
    vt = cfg.venues
    rc = cfg.risk
    tc = cfg.toxicity
    fl = cfg.flags
    n = len(ven.mid)
    mode = fl.control_surface_mode
    spec_order = fl.size_cap_order == "spec"

    eta = _fmax(float(cfg.mm.size_eta), ETA_FLOOR)
    size_mult = _fmax(float(state.size_mult), 0.0)
    margin_factor = float(rc.mm_max_leverage) * float(rc.mm_margin_safety)
    crit = float(rc.liq_crit_sigma)
    warn = float(rc.liq_warn_sigma)
    tox_med = float(tc.tox_med_threshold)
    tox_high = float(tc.tox_high_threshold)
    warning_regime = int(state.risk_regime) == REGIME_WARNING
    q_warn_cap = _fmax(float(rc.q_warn_cap), 0.0)
    q_t = float(state.q_global_tao)
    rho = _fmax(abs(float(state.dollar_delta_usd)) / _fmax(float(state.delta_limit_usd), 1.0), 0.0)

    size = np.zeros(n, dtype=np.float64)
    gate = np.zeros(n, dtype=np.int64)
    for v in range(n):
        lot_raw = float(vt.lot_size[v])
        max_order = float(vt.max_order_size[v])
        dist = float(ven.dist_liq_sigma[v])
        q_v = float(ven.position_tao[v])
        tox = float(ven.toxicity[v])
        scale = float(controls.size_scale[v]) if controls is not None else 1.0
        price = float(px[v])
        e = float(edge[v])
        ok = bool(edge_ok[v])
        g = GATE_NONE if ok else GATE_EDGE
        # 1 optimum of J(Q) = e·Q − ½ηQ²
        q = e / eta if (ok and e > 0.0) else 0.0
        # 2 vol multiplier, then the [REC] policy hook
        q = q * size_mult
        if controls is not None and mode == "rec":
            q = q * scale
        if spec_order:
            q = _fmin(q, max_order)  # [SPEC] venue max before the shrinks (D24)
        else:
            q = _fmax(q, lot_raw)  # 3 [IMPL] lot bump
        # 4 margin cap (parity operation order)
        if price > 0.0:
            q = _fmin(q, (float(ven.margin_available_usd[v]) * margin_factor) / price)
        # 5 liquidation distance
        if dist <= crit:
            if fl.mm_reduce_only_at_crit:  # D15 option; else §11.2 gate 3 removed the venue
                if q_v > 0.0:
                    zero = side == 0  # long venue: bid 0
                elif q_v < 0.0:
                    zero = side == 1  # short venue: ask 0
                else:
                    zero = True  # flat: both 0
                if zero:
                    q = 0.0
                    if g == GATE_NONE:
                        g = GATE_LIQ_REDUCE_ONLY
        elif dist < warn:
            k_liq = _clip((dist - crit) / (warn - crit + LIQ_SHRINK_EPS), 0.0, 1.0)
            q = q * k_liq
        if not fl.disable_toxicity_gate:
            # 6 Warning venue
            if int(ven.status[v]) == STATUS_WARNING:
                q = q * WARN_VENUE_FACTOR
            # 7 medium toxicity
            if tox_med <= tox < tox_high:
                tox_factor = 1.0 - (tox - tox_med) / TOX_SHRINK_SPAN
                q = q * _clip(tox_factor, 0.1, 1.0)
        # 8 delta throttle
        if rho >= 2.0:
            q = 0.0
            if g == GATE_NONE:
                g = GATE_DELTA_THROTTLE
        elif rho > 1.0:
            factor = _clip(2.0 - rho, 0.0, 1.0)
            if q_t > 0.0:
                zero = side == 0  # long: only sells
            elif q_t < 0.0:
                zero = side == 1  # short: only buys
            else:
                zero = False
            if zero:
                q = 0.0
                if g == GATE_NONE:
                    g = GATE_DELTA_THROTTLE
            else:
                q = q * factor
        # 9 Warning regime cap
        if warning_regime:
            q = _fmin(q, q_warn_cap)
        # 10 venue max order size
        if not spec_order:
            q = _fmin(q, max_order)
        # 11 floor to lot (no epsilon)
        lot = _fmax(lot_raw, LOT_FLOOR)
        q = float(np.floor(q / lot)) * lot
        # 12 emit iff at least one lot and the edge filter passed
        if g == GATE_NONE and not (q >= _fmax(lot_raw, 0.0)):
            g = GATE_SIZE_BELOW_LOT
        if g == GATE_NONE and fl.mm_enforce_min_notional:
            if not (q * price >= float(vt.min_notional_usd[v])):
                g = GATE_MIN_NOTIONAL  # D16
        if controls is not None and mode == "ref_env":
            q = q * scale  # [IMPL] reference env: scales the rounded intent size
            if g == GATE_NONE and not (q > 0.0):
                g = GATE_SIZE_BELOW_LOT
        if g == GATE_NONE:
            size[v] = q
        gate[v] = g
    return size, gate


def quote_sizes(
    state: StrategyState,
    px: np.ndarray,
    edge: np.ndarray,
    edge_ok: np.ndarray,
    controls: Controls | None,
    cfg: StrategyConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """§12 sizes of both sides of every venue (:func:`side_sizes` per side).

    Args:
      px: `[N, 2]` snapped quote prices (bid, ask) before any 'ref_env' stretch.
      edge: `[N, 2]` per-unit edges (§11.6).
      edge_ok: `[N, 2]` bool, the §11.6 edge filter.
      controls: control surface, or None for none.

    Returns:
      `(size [N, 2], gate [N, 2])`.
    """
    bid = side_sizes(state, px[:, 0], edge[:, 0], edge_ok[:, 0], 0, controls, cfg)
    ask = side_sizes(state, px[:, 1], edge[:, 1], edge_ok[:, 1], 1, controls, cfg)
    return np.stack([bid[0], ask[0]], axis=1), np.stack([bid[1], ask[1]], axis=1)
