"""Toxicity and venue health, float64 NumPy reference engine (STRATEGY.md §8, §5.5).

Written as per-venue loops that read next to the spec:

* §5.5 / §8.2 step 1 matured pending markouts, popped FIFO with sequential EWMA updates
  (:func:`process_markouts`);
* §8.2 the whole reference pass (markouts, shadow warm-up, catastrophic staleness, missing-data
  fallback with the depth grace, the vol floor f_vol, clip, status thresholds, ablation), the
  D23 five-feature option and the D10 time-decay option (:func:`update_toxicity`);
* SIMULATION §2.4 overlays: the cancel-storm toxicity floor (:func:`apply_toxicity_floor`) and the
  venue-outage forced status (:func:`force_disabled`).

Options beyond the reference (all off in parity mode):

* D10 recovery (`cfg.flags.toxicity_recovery` and `cfg.toxicity.recovery_halflife_ms > 0`): at the
  start of every pass the toxicity decays by `0.5 ** (MAIN_LOOP_INTERVAL_MS / halflife)` (one
  main tick of elapsed time per pass). The vol floor and the fail-safe rules re-assert
  themselves every pass, so only a venue whose data is clean again recovers.
* D23 `toxicity_model == "spec_v1"`: `tox = clip(Σ w_k f_k, 0, 1)` replaces the markout EWMA and
  the vol floor (§8.1). `f2` counts the negative per-TAO markouts among all queued fills
  (matured or not, the queue at the start of the pass) marked to the current venue mid — the
  state's stand-in for the spec's recent-fills window. `f3` (top-K imbalance) and `f4`/`f5`
  (aggressor flow) use the optional `depth_bid`, `depth_ask`, `buy_agg`, `sell_agg` inputs and
  are 0 without them. Matured markouts are still popped and still update `markout_ewma`. The
  shadow warm-up, catastrophic staleness and missing-data rules apply as in the reference.
* D22 (`cfg.flags.venue_dev_disable`): venues latched by the deviation check keep status
  Disabled whenever the status is recomputed here.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from paraphina_jax.config.types import (
    STATUS_DISABLED,
    STATUS_HEALTHY,
    STATUS_WARNING,
    StrategyConfig,
)
from paraphina_jax.reference.accounting import markout_value
from paraphina_jax.reference.common import sigma_floors
from paraphina_jax.strategy.types import StrategyState

MARKOUT_SCALE_FLOOR = 1e-9  # §8.2: markout_scale floored at 1e-9
SPEC_V1_EPS = 1e-12  # §8.1 ε of the five-feature model


def _copy_venues(state: StrategyState) -> dict[str, np.ndarray]:
    """Writable copies of every per-venue array."""
    return {
        f.name: np.array(getattr(state.venues, f.name), copy=True)
        for f in dataclasses.fields(state.venues)
    }


def _with_venues(state: StrategyState, v: dict[str, np.ndarray]) -> StrategyState:
    return state.replace(venues=state.venues.replace(**v))


def _fmax(a: float, b: float) -> float:
    """IEEE maxNum (Rust `f64::max`): a NaN operand yields the other one."""
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return a if a >= b else b


def _clip01(x: float) -> float:
    return min(max(x, 0.0), 1.0)


def _valid_mid(v: dict[str, np.ndarray], i: int) -> bool:
    """§5.5: a venue mid usable for markouts is present, finite and > 0."""
    mid = float(v["mid"][i])
    return bool(v["has_mid"][i]) and math.isfinite(mid) and mid > 0.0


def toxicity_status(tox: float, cfg: StrategyConfig) -> int:
    """§8.2 step 6 thresholds (inclusive): ≥ TOX_HIGH ⇒ Disabled, ≥ TOX_MED ⇒ Warning."""
    if tox >= float(cfg.toxicity.tox_high_threshold):
        return STATUS_DISABLED
    if tox >= float(cfg.toxicity.tox_med_threshold):
        return STATUS_WARNING
    return STATUS_HEALTHY


def _set_status(v: dict[str, np.ndarray], i: int, cfg: StrategyConfig) -> None:
    """Status from toxicity, the `disable_toxicity_gate` ablation and the D22 latch."""
    if cfg.flags.disable_toxicity_gate:
        status = STATUS_HEALTHY  # ablation: every venue stays Healthy
    else:
        status = toxicity_status(float(v["toxicity"][i]), cfg)
    if cfg.flags.venue_dev_disable and bool(v["dev_disabled"][i]):
        status = STATUS_DISABLED  # §16.6 latch survives the per-tick recomputation
    v["status"][i] = status


def _slot(v: dict[str, np.ndarray], i: int, j: int) -> int:
    """Ring slot of venue i's logical pending entry j: `(pm_head + j) mod M`."""
    return (int(v["pm_head"][i]) + j) % v["pm_t_eval_ms"].shape[1]


def _matured_count(v: dict[str, np.ndarray], i: int, now_ms: int) -> int:
    """Length of the matured FIFO prefix (t_eval ≤ now) of venue i's queue (pm_count entries)."""
    cnt = int(v["pm_count"][i])
    k = 0
    while k < cnt and int(v["pm_t_eval_ms"][i, _slot(v, i, k)]) <= now_ms:
        k += 1
    return k


def _pop_front(v: dict[str, np.ndarray], i: int, k: int) -> None:
    """Drop the first k entries of venue i's ring: the head advances (slots keep stale values)."""
    v["pm_head"][i] = _slot(v, i, k)
    v["pm_count"][i] = int(v["pm_count"][i]) - k


def _process_markouts(v: dict[str, np.ndarray], now_ms: int, cfg: StrategyConfig) -> None:
    """§8.2 step 1 in place on copied venue arrays."""
    a = min(max(float(cfg.toxicity.markout_alpha), 0.0), 1.0)
    om = 1.0 - a
    scale = max(float(cfg.toxicity.markout_scale_usd_per_tao), MARKOUT_SCALE_FLOOR)
    for i in range(len(v["mid"])):
        k = _matured_count(v, i, now_ms)
        if k == 0:
            continue
        if _valid_mid(v, i):  # without a valid mid the matured entries are discarded
            mid = float(v["mid"][i])
            tox = float(v["toxicity"][i])
            ewma = float(v["markout_ewma_usd_per_tao"][i])
            for j in range(k):
                p = _slot(v, i, j)
                m = markout_value(int(v["pm_side"][i, p]), float(v["pm_price"][i, p]), mid)
                tox_inst = 0.0 if m >= 0.0 else min(1.0, -m / scale)
                tox = om * tox + a * tox_inst
                ewma = om * ewma + a * m
            v["toxicity"][i] = tox
            v["markout_ewma_usd_per_tao"][i] = ewma
        _pop_front(v, i, k)


def process_markouts(state: StrategyState, now_ms: int, cfg: StrategyConfig) -> StrategyState:
    """§5.5 / §8.2 step 1: pop every matured pending markout (t_eval ≤ now), FIFO per venue.

    With a valid venue mid (present, finite, > 0) each entry gives the per-TAO markout
    `m` (buy: mid − price, sell: price − mid), `tox_inst = 0 if m ≥ 0 else min(1, −m/scale)`
    and the updates `tox ← (1−a)·tox + a·tox_inst`, `markout_ewma ← (1−a)·markout_ewma + a·m`,
    `a = clip(markout_alpha, 0, 1)`, `scale = max(markout_scale, 1e-9)`. Without a valid mid they
    are popped with no effect. Popping advances the ring head (`pm_head`, `pm_count`).
    """
    v = _copy_venues(state)
    _process_markouts(v, int(now_ms), cfg)
    return _with_venues(state, v)


def _optional(x: Any, i: int) -> float:
    return 0.0 if x is None else float(np.asarray(x, dtype=np.float64)[i])


def _spec_v1_features(
    v: dict[str, np.ndarray],
    i: int,
    sigma_eff: float,
    cfg: StrategyConfig,
    depth_bid: Any,
    depth_ask: Any,
    buy_agg: Any,
    sell_agg: Any,
) -> list[float]:
    """§8.1 features f1..f5 of venue i (queue read before popping)."""
    tc = cfg.toxicity
    eps = SPEC_V1_EPS
    vts = float(tc.vol_tox_scale)
    lvs = float(v["local_vol_short"][i])
    f1 = _clip01((lvs / (sigma_eff + eps) - 1.0) / vts) if vts > 0.0 else 0.0
    n_neg = 0.0
    n_all = 0.0
    if _valid_mid(v, i):
        mid = float(v["mid"][i])
        for j in range(int(v["pm_count"][i])):
            p = _slot(v, i, j)
            m = markout_value(int(v["pm_side"][i, p]), float(v["pm_price"][i, p]), mid)
            n_all += 1.0
            if m < 0.0:
                n_neg += 1.0
    f2 = _clip01(n_neg / (n_all + eps))
    db, da = _optional(depth_bid, i), _optional(depth_ask, i)
    f3 = min(1.0, abs(db - da) / (db + da + eps))
    b, s = _optional(buy_agg, i), _optional(sell_agg, i)
    f4 = _clip01(abs(b - s) / (b + s + eps))
    fts = float(tc.flow_tox_scale)
    f5 = _clip01((b + s) / fts) if fts > 0.0 else 0.0
    return [f1, f2, f3, f4, f5]


def update_toxicity(
    state: StrategyState,
    now_ms: int,
    cfg: StrategyConfig,
    *,
    depth_bid: Any = None,
    depth_ask: Any = None,
    buy_agg: Any = None,
    sell_agg: Any = None,
) -> StrategyState:
    """§8.2 toxicity and venue health, once per main tick, every venue, in the spec's order.

    0. (D10 option) time decay of the toxicity by one main tick of half-life.
    1. Matured markouts (:func:`process_markouts`).
    2. Shadow warm-up (trade mode shadow/paper/testnet): mid > 0, a mid update and depth > 0 ⇒
       tox = 0.
    3. Catastrophic staleness: `catastrophic_stale_ms > 0` and `now − last_mid_update >
       catastrophic_stale_ms` (strict; venues without any mid update are left to step 4) ⇒ 1.
    4. No mid, or depth ≤ 0 and (no mid update or `now − last_mid_update >
       depth_fallback_grace_ms`) ⇒ tox = 1; else (not shadow, VOL_TOX_SCALE > 0) the vol floor
       `tox ← max(tox, f_vol)` with σ_min raw SIGMA_MIN in parity mode (D9) and the tick-scaled
       floor otherwise.
    5. clip to [0, 1]; 6. status thresholds (ablation `disable_toxicity_gate` ⇒ Healthy).

    Args:
      state: state after the fair-value / vol update of this tick.
      now_ms: tick time.
      cfg: config (`flags.toxicity_model`, `flags.toxicity_recovery`, trade mode, ablation).
      depth_bid, depth_ask: optional `[N]` top-K depths for the spec_v1 imbalance feature.
      buy_agg, sell_agg: optional `[N]` aggressor volumes (TAO, last window) for spec_v1.
    """
    tc = cfg.toxicity
    fl = cfg.flags
    now = int(now_ms)
    v = _copy_venues(state)
    n = len(v["mid"])
    spec_v1 = fl.toxicity_model == "spec_v1"
    shadow = fl.shadow_warmup

    # 0) D10 option: time decay (non-parity).
    hl = float(tc.recovery_halflife_ms)
    if fl.toxicity_recovery and hl > 0.0:
        decay = 0.5 ** (float(cfg.loop.main_loop_interval_ms) / hl)
        for i in range(n):
            v["toxicity"][i] = float(v["toxicity"][i]) * decay

    model_tox = [0.0] * n
    if spec_v1:
        sig = float(state.sigma_eff)
        w = [float(x) for x in np.asarray(tc.spec_weights, dtype=np.float64)]
        for i in range(n):
            f = _spec_v1_features(v, i, sig, cfg, depth_bid, depth_ask, buy_agg, sell_agg)
            acc = 0.0
            for wk, fk in zip(w, f):
                acc += wk * fk
            model_tox[i] = _clip01(acc)

    # 1) Markouts.
    _process_markouts(v, now, cfg)

    sigma_min = (
        float(cfg.vol.sigma_min) if fl.sigma_floor_mode == "parity" else float(sigma_floors(cfg)[0])
    )
    sigma = _fmax(float(state.sigma_eff), sigma_min)
    vts = float(tc.vol_tox_scale)
    cat = int(tc.catastrophic_stale_ms)
    grace = int(tc.depth_fallback_grace_ms)
    for i in range(n):
        tox = model_tox[i] if spec_v1 else float(v["toxicity"][i])
        has_mid = bool(v["has_mid"][i])
        mid = float(v["mid"][i])
        depth = float(v["depth_near_mid"][i])
        has_upd = bool(v["has_mid_update"][i])
        age = now - int(v["last_mid_update_ms"][i])
        # 2) Shadow warm-up.
        if shadow and has_upd and has_mid and mid > 0.0 and depth > 0.0:
            tox = 0.0
        # 3) Catastrophic staleness (strict >).
        if cat > 0 and has_upd and age > cat:
            tox = 1.0
        # 4) Missing-data fallback, else the vol floor.
        depth_zero_prolonged = depth <= 0.0 and (not has_upd or age > grace)
        if not has_mid or depth_zero_prolonged:
            tox = 1.0
        elif not spec_v1 and not shadow and vts > 0.0 and sigma > 0.0:
            local = _fmax(float(v["local_vol_short"][i]), sigma_min)
            f_vol = 0.0 if local <= sigma else min(1.0, (local / sigma - 1.0) / vts)
            tox = _fmax(tox, f_vol)
        # 5) Clip.
        v["toxicity"][i] = _clip01(tox)
        # 6) Status.
        _set_status(v, i, cfg)
    return _with_venues(state, v)


def apply_toxicity_floor(state: StrategyState, floor: Any, cfg: StrategyConfig) -> StrategyState:
    """SIMULATION §2.4 cancel storm: `tox ← max(tox, floor)` and the status recomputed.

    Args:
      floor: `[]` or `[N]` toxicity floor.
    """
    v = _copy_venues(state)
    n = len(v["mid"])
    fl = np.broadcast_to(np.asarray(floor, dtype=np.float64), (n,))
    for i in range(n):
        v["toxicity"][i] = _fmax(float(v["toxicity"][i]), float(fl[i]))
        _set_status(v, i, cfg)
    return _with_venues(state, v)


def force_disabled(state: StrategyState, mask: Any) -> StrategyState:
    """SIMULATION §2.4 venue outage: status Disabled where `mask [N]` (toxicity untouched)."""
    v = _copy_venues(state)
    m = np.asarray(mask, dtype=bool)
    for i in range(len(v["status"])):
        if bool(m[i]):
            v["status"][i] = STATUS_DISABLED
    return _with_venues(state, v)
