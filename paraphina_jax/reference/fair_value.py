"""Robust multi-venue Kalman fair value, float64 NumPy reference engine (STRATEGY.md §6).

Written as per-venue loops that read next to the spec:

* §6.1 observation eligibility (:func:`kf_eligibility`);
* §6.2 observation noise, [IMPL] relative-spread form (D8) (:func:`observation_noise`);
* §6.3 the update sequence: initialisation (D3), median initialisation value, prediction,
  sequential scalar measurement updates in ascending venue order, fallbacks
  (:func:`update_fair_value`).

Every function returns new values and never mutates its inputs.
"""

from __future__ import annotations

import numpy as np

from paraphina_jax.config.types import STATUS_DISABLED, STATUS_HEALTHY, StrategyConfig
from paraphina_jax.reference.common import fair_value_or_prev, gate_stale_ms, is_valid_pos
from paraphina_jax.strategy.types import StrategyState

S_FALLBACK = 250.0  # §6.3 fallback fair value (USD/TAO)
DT_FIRST_MS = 1000  # §6.3 dt when no previous update time is recorded
_REL_SPREAD_FLOOR = 1e-9  # §6.2 [IMPL] max(spr/m, 1e-9)
_DEPTH_EPS = 1e-9  # §6.2 [IMPL] depth + 1e-9


def _log(x: float) -> float:
    """IEEE ln (−inf for 0, NaN for < 0) without Python's domain errors."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.log(np.float64(x)))


def _exp(x: float) -> float:
    """IEEE exp (inf on overflow) without Python's overflow error."""
    with np.errstate(over="ignore"):
        return float(np.exp(np.float64(x)))


_valid = is_valid_pos  # §6.3 "valid" = finite and > 0
_s_prev = fair_value_or_prev  # §6.3 S_prev = fair_value if present else fair_value_prev


def _uninitialised(state: StrategyState, cfg: StrategyConfig) -> bool:
    """§4.2 / D3: explicit flag, or the reference rule (last update 0 or x̂ == 0)."""
    if cfg.flags.kf_explicit_init:
        return not bool(state.kf_initialised)
    return int(state.kf_last_update_ms) == 0 or float(state.kf_x_hat) == 0.0


def _fresh(state: StrategyState, now_ms: int, cfg: StrategyConfig) -> np.ndarray:
    """§6.1.2 has a mid update no older than the stale threshold (D1). `[N]` bool."""
    vs = state.venues
    thr = np.asarray(gate_stale_ms(cfg), dtype=np.int64)
    n = cfg.n_venues
    out = np.zeros(n, dtype=bool)
    for v in range(n):
        if bool(vs.has_mid_update[v]):
            out[v] = int(now_ms) - int(vs.last_mid_update_ms[v]) <= int(thr[v])
    return out


def _book_valid(state: StrategyState, v: int) -> bool:
    """§6.1.3 mid, spread and depth present, finite and > 0."""
    vs = state.venues
    return (
        bool(vs.has_mid[v])
        and _valid(float(vs.mid[v]))
        and _valid(float(vs.spread[v]))
        and _valid(float(vs.depth_near_mid[v]))
    )


def _init_candidates(state: StrategyState, fresh: np.ndarray, cfg: StrategyConfig) -> np.ndarray:
    """Venues whose mids enter the initialisation median (§6.3, D7). `[N]` bool.

    [SPEC] (``kf_outlier_gate_after_init``): Healthy venues with a fresh mid and a valid book.
    [IMPL]: venues that are not Disabled with a fresh mid > 0.
    """
    vs = state.venues
    n = cfg.n_venues
    out = np.zeros(n, dtype=bool)
    for v in range(n):
        status = int(vs.status[v])
        if cfg.flags.kf_outlier_gate_after_init:
            out[v] = status == STATUS_HEALTHY and bool(fresh[v]) and _book_valid(state, v)
        else:
            out[v] = (
                status != STATUS_DISABLED
                and bool(fresh[v])
                and bool(vs.has_mid[v])
                and _valid(float(vs.mid[v]))
            )
    return out


def init_fair_value(state: StrategyState, now_ms: int, cfg: StrategyConfig) -> float:
    """§6.3 initialisation value S_0 (x̂_0 = ln S_0).

    The median of the candidate mids (sorted; odd count ⇒ the middle one, even ⇒ the mean of the
    two middle ones), else S_prev if > 0, else 250.
    """
    cand = _init_candidates(state, _fresh(state, now_ms, cfg), cfg)
    mids = sorted(float(state.venues.mid[v]) for v in range(cfg.n_venues) if cand[v])
    k = len(mids)
    if k > 0:
        lo, hi = mids[(k - 1) // 2], mids[k // 2]
        return lo if k % 2 == 1 else 0.5 * (lo + hi)
    s_prev = _s_prev(state)
    return s_prev if s_prev > 0.0 else S_FALLBACK


def kf_eligibility(state: StrategyState, now_ms: int, cfg: StrategyConfig) -> np.ndarray:
    """§6.1 per-venue observation eligibility for this tick's KF update.

    1. status Healthy (lagged status of the carried state);
    2. mid update present and ``now − last_mid_update_ms ≤ stale_ms`` (D1 threshold);
    3. mid, spread, depth finite and > 0;
    4. outlier gate ``|m − S_prev|/S_prev ≤ MAX_MID_JUMP_PCT`` when the previous tick had
       ``fv_available`` and a valid S_prev; with D7 [SPEC] also against the initialisation
       value S_0 on an initialisation tick.

    The ablation ``disable_fair_value_gating`` acts on the quoting gate (§11.1), not here.

    Args:
      state: carried strategy state (before this tick's KF and toxicity passes).
      now_ms: current time, ms.
      cfg: strategy config.

    Returns:
      `[N]` bool mask of eligible venues.
    """
    vs = state.venues
    n = cfg.n_venues
    fresh = _fresh(state, now_ms, cfg)
    s_prev = _s_prev(state)
    gate_prev = bool(state.fv_available) and _valid(s_prev)
    gate_init = cfg.flags.kf_outlier_gate_after_init and _uninitialised(state, cfg)
    s0 = init_fair_value(state, now_ms, cfg) if gate_init else 0.0
    jump = float(cfg.book.max_mid_jump_pct)
    out = np.zeros(n, dtype=bool)
    for v in range(n):
        if int(vs.status[v]) != STATUS_HEALTHY:  # 1
            continue
        if not fresh[v]:  # 2
            continue
        if not _book_valid(state, v):  # 3
            continue
        m = float(vs.mid[v])
        if gate_prev and not abs(m - s_prev) / s_prev <= jump:  # 4
            continue
        if gate_init and not abs(m - s0) / s0 <= jump:  # 4, D7 [SPEC]
            continue
        out[v] = True
    return out


def observation_noise(state: StrategyState, cfg: StrategyConfig) -> np.ndarray:
    """§6.2 [IMPL] observation variance per venue (D8).

    ``r = R_MIN + R_A·max(spr/m, 1e-9)² + R_B/(depth + 1e-9)``, non-finite or ≤ 0 ⇒ R_MAX,
    then clipped to [R_MIN, R_MAX]. A NaN relative spread (invalid book) propagates to R_MAX.

    Returns:
      `[N]` float64 variances.
    """
    vs = state.venues
    b = cfg.book
    r_min, r_max = float(b.kf_r_min), float(b.kf_r_max)
    out = np.empty(cfg.n_venues, dtype=np.float64)
    for v in range(cfg.n_venues):
        spr, m = np.float64(vs.spread[v]), np.float64(vs.mid[v])
        depth = np.float64(vs.depth_near_mid[v])
        with np.errstate(all="ignore"):  # invalid books give inf/NaN, mapped to R_MAX below
            rel = np.maximum(spr / m, _REL_SPREAD_FLOOR)
            r = float(
                r_min + float(b.kf_r_a) * (rel * rel) + float(b.kf_r_b) / (depth + _DEPTH_EPS)
            )
        if not _valid(r):
            r = r_max
        out[v] = min(max(r, r_min), r_max)
    return out


def update_fair_value(
    state: StrategyState, now_ms: int, cfg: StrategyConfig
) -> tuple[StrategyState, float]:
    """§6.3 one main-tick Kalman update of x = ln S.

    Args:
      state: carried strategy state.
      now_ms: current time, ms.
      cfg: strategy config.

    Returns:
      (new state, ret) where ret = ln(S_new / S_ref_for_return) is the log return for §7.
    """
    b = cfg.book
    p_init = float(b.kf_p_init)
    s_prev = _s_prev(state)
    s_prev_valid = _valid(s_prev)
    obs = kf_eligibility(state, now_ms, cfg)
    r = observation_noise(state, cfg)

    last = int(state.kf_last_update_ms)
    dt_ms = max(int(now_ms) - last, 1) if last > 0 else DT_FIRST_MS
    if _uninitialised(state, cfg):
        x = _log(init_fair_value(state, now_ms, cfg))
        p = p_init
    else:
        x = float(state.kf_x_hat)
        p = float(state.kf_p) if _valid(float(state.kf_p)) else p_init
    p = p + float(b.kf_q_base) * float(dt_ms) / 1000.0  # prediction

    n_obs = int(np.sum(obs))
    fv_available = n_obs >= int(b.min_healthy_venues_for_kf)
    if fv_available:
        for v in range(cfg.n_venues):  # ascending venue index
            if not obs[v]:
                continue
            s = p + float(r[v])
            if _valid(s):
                y = _log(float(state.venues.mid[v]))
                k = p / s
                x = x + k * (y - x)
                p = (1.0 - k) * p
    if not _valid(p):
        p = p_init

    s_new = _exp(x)
    if not _valid(s_new):
        s_new = s_prev if s_prev_valid else S_FALLBACK
        x = _log(s_new)
    s_ref = s_prev if s_prev_valid else s_new
    ret = _log(float(np.float64(s_new) / np.float64(s_ref)))

    new = state.replace(
        kf_x_hat=np.float64(x),
        kf_p=np.float64(p),
        kf_last_update_ms=np.asarray(now_ms, dtype=np.asarray(state.kf_last_update_ms).dtype),
        kf_initialised=np.bool_(True),
        fair_value=np.float64(s_new),
        has_fair_value=np.bool_(True),
        fair_value_prev=np.float64(s_ref),
        fv_available=np.bool_(fv_available),
        healthy_venues_used=obs.copy(),
        healthy_venues_used_count=np.asarray(
            n_obs, dtype=np.asarray(state.healthy_venues_used_count).dtype
        ),
    )
    return new, ret
