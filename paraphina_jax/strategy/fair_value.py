"""Robust multi-venue Kalman fair value, JAX engine (STRATEGY.md §6).

Pure functions on one environment (per-venue arrays `[N]`); callers vmap.

* §6.1 observation eligibility (:func:`kf_eligibility`);
* §6.2 observation noise, [IMPL] relative-spread form (D8) (:func:`observation_noise`);
* §6.3 the update sequence (:func:`update_fair_value`): initialisation (D3), median
  initialisation value, prediction, sequential scalar measurement updates in ascending venue
  order as a masked `lax.scan` over the venue axis, fallbacks.

Outputs keep the dtypes of the carried state (float32 normally, float64 under x64).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from paraphina_jax.config.types import STATUS_DISABLED, STATUS_HEALTHY, StrategyConfig
from paraphina_jax.strategy.common import fair_value_or_prev, gate_stale_ms, is_valid_pos
from paraphina_jax.strategy.types import StrategyState

S_FALLBACK = 250.0  # §6.3 fallback fair value (USD/TAO)
DT_FIRST_MS = 1000  # §6.3 dt when no previous update time is recorded
_REL_SPREAD_FLOOR = 1e-9  # §6.2 [IMPL] max(spr/m, 1e-9)
_DEPTH_EPS = 1e-9  # §6.2 [IMPL] depth + 1e-9


_valid = is_valid_pos  # §6.3 "valid" = finite and > 0
_s_prev = fair_value_or_prev  # §6.3 S_prev = fair_value if present else fair_value_prev


def _uninitialised(state: StrategyState, cfg: StrategyConfig) -> jax.Array:
    """§4.2 / D3: explicit flag, or the reference rule (last update 0 or x̂ == 0). `[]` bool."""
    if cfg.flags.kf_explicit_init:
        return jnp.logical_not(state.kf_initialised)
    return (state.kf_last_update_ms == 0) | (state.kf_x_hat == 0)


class _Gates(NamedTuple):
    """Intermediate values shared by eligibility and the update."""

    obs: jax.Array  # [N] bool  eligible observations (§6.1)
    uninit: jax.Array  # [] bool  initialisation tick
    s0: jax.Array  # [] f  initialisation value S_0 (x̂_0 = ln S_0)
    s_prev: jax.Array  # [] f


def _median_masked(x: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Median of `x[mask]` without a sort op (ranks by pairwise comparison).

    Odd count ⇒ the middle value; even ⇒ 0.5·(lo + hi) of the two middle values.

    Args:
      x: `[N]` values.
      mask: `[N]` bool.

    Returns:
      (median `[]`, count `[]` int); the median is 0 when the count is 0.
    """
    n = x.shape[0]
    key = jnp.where(mask, x, jnp.inf)
    idx = jnp.arange(n)
    before = (key[None, :] < key[:, None]) | (
        (key[None, :] == key[:, None]) & (idx[None, :] < idx[:, None])
    )  # [i, j]: j sorts before i
    rank = jnp.sum(before, axis=1)
    k = jnp.sum(mask)
    zero = jnp.zeros_like(x)
    lo = jnp.sum(jnp.where(mask & (rank == (k - 1) // 2), x, zero))
    hi = jnp.sum(jnp.where(mask & (rank == k // 2), x, zero))
    med = jnp.where(k % 2 == 1, lo, 0.5 * (lo + hi))
    return med, k


def _gates(state: StrategyState, now_ms: jax.Array, cfg: StrategyConfig) -> _Gates:
    vs = state.venues
    now = jnp.asarray(now_ms, dtype=vs.last_mid_update_ms.dtype)
    thr = jnp.asarray(gate_stale_ms(cfg)).astype(now.dtype)
    fresh = vs.has_mid_update & (now - vs.last_mid_update_ms <= thr)  # §6.1.2
    mid_ok = vs.has_mid & _valid(vs.mid)
    book_ok = mid_ok & _valid(vs.spread) & _valid(vs.depth_near_mid)  # §6.1.3
    healthy = vs.status == STATUS_HEALTHY  # §6.1.1 (lagged status)
    s_prev = _s_prev(state)
    uninit = _uninitialised(state, cfg)

    # §6.3 initialisation value; D7 selects the median's venue set.
    if cfg.flags.kf_outlier_gate_after_init:
        cand = healthy & fresh & book_ok
    else:
        cand = (vs.status != STATUS_DISABLED) & fresh & mid_ok
    med, k = _median_masked(vs.mid, cand)
    fallback = jnp.where(s_prev > 0, s_prev, jnp.asarray(S_FALLBACK, s_prev.dtype))
    s0 = jnp.where(k > 0, med, fallback)

    obs = healthy & fresh & book_ok
    # §6.1.4 outlier gate against S_prev when the previous tick had a fair value.
    gate_prev = state.fv_available & _valid(s_prev)
    s_den = jnp.where(gate_prev, s_prev, jnp.ones_like(s_prev))
    obs = obs & (~gate_prev | (jnp.abs(vs.mid - s_den) / s_den <= cfg.book.max_mid_jump_pct))
    if cfg.flags.kf_outlier_gate_after_init:  # D7 [SPEC]: also against S_0 on an init tick
        obs = obs & (~uninit | (jnp.abs(vs.mid - s0) / s0 <= cfg.book.max_mid_jump_pct))
    return _Gates(obs=obs, uninit=uninit, s0=s0, s_prev=s_prev)


def init_fair_value(state: StrategyState, now_ms: jax.Array, cfg: StrategyConfig) -> jax.Array:
    """§6.3 initialisation value S_0 (x̂_0 = ln S_0), used on an initialisation tick.

    The median of the candidate mids (odd count ⇒ the middle one, even ⇒ the mean of the two
    middle ones; D7 selects the candidates), else S_prev if > 0, else 250.

    Returns:
      `[]` S_0 (state float dtype).
    """
    return _gates(state, now_ms, cfg).s0


def kf_eligibility(state: StrategyState, now_ms: jax.Array, cfg: StrategyConfig) -> jax.Array:
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
      now_ms: `[]` int current time, ms.
      cfg: strategy config.

    Returns:
      `[N]` bool mask of eligible venues.
    """
    return _gates(state, now_ms, cfg).obs


def observation_noise(state: StrategyState, cfg: StrategyConfig) -> jax.Array:
    """§6.2 [IMPL] observation variance per venue (D8).

    ``r = R_MIN + R_A·max(spr/m, 1e-9)² + R_B/(depth + 1e-9)``, non-finite or ≤ 0 ⇒ R_MAX,
    then clipped to [R_MIN, R_MAX]. A NaN relative spread (invalid book) propagates to R_MAX.

    Returns:
      `[N]` variances (state float dtype).
    """
    vs = state.venues
    b = cfg.book
    rel = jnp.maximum(vs.spread / vs.mid, _REL_SPREAD_FLOOR)
    r = b.kf_r_min + b.kf_r_a * (rel * rel) + b.kf_r_b / (vs.depth_near_mid + _DEPTH_EPS)
    r = jnp.where(_valid(r), r, b.kf_r_max)
    r = jnp.minimum(jnp.maximum(r, b.kf_r_min), b.kf_r_max)
    return r.astype(vs.mid.dtype)


def _kf_step(
    carry: tuple[jax.Array, jax.Array], obs: tuple[jax.Array, jax.Array, jax.Array]
) -> tuple[tuple[jax.Array, jax.Array], None]:
    """One scalar measurement update (§6.3); a masked-out venue is a no-op."""
    x, p = carry
    use, y, r = obs
    s = p + r
    ok = use & _valid(s)
    k = p / jnp.where(ok, s, jnp.ones_like(s))
    x_new = x + k * (y - x)
    p_new = (1.0 - k) * p
    return (jnp.where(ok, x_new, x), jnp.where(ok, p_new, p)), None


def update_fair_value(
    state: StrategyState, now_ms: jax.Array, cfg: StrategyConfig
) -> tuple[StrategyState, jax.Array]:
    """§6.3 one main-tick Kalman update of x = ln S.

    Args:
      state: carried strategy state.
      now_ms: `[]` int current time, ms.
      cfg: strategy config.

    Returns:
      (new state, ret `[]`) where ret = ln(S_new / S_ref_for_return) is the log return for §7.
    """
    b = cfg.book
    vs = state.venues
    fd = state.kf_x_hat.dtype
    idt = state.kf_last_update_ms.dtype
    g = _gates(state, now_ms, cfg)
    r = observation_noise(state, cfg)
    p_init = jnp.asarray(b.kf_p_init, fd)

    now = jnp.asarray(now_ms, dtype=idt)
    last = state.kf_last_update_ms
    dt_ms = jnp.where(last > 0, jnp.maximum(now - last, 1), DT_FIRST_MS)
    x = jnp.where(g.uninit, jnp.log(g.s0), state.kf_x_hat).astype(fd)
    p = jnp.where(g.uninit | ~_valid(state.kf_p), p_init, state.kf_p)
    p = (p + b.kf_q_base * dt_ms.astype(fd) / 1000.0).astype(fd)  # prediction

    n_obs = jnp.sum(g.obs.astype(idt))
    fv_available = n_obs >= b.min_healthy_venues_for_kf
    use = g.obs & fv_available
    y = jnp.log(jnp.where(use, vs.mid, jnp.ones_like(vs.mid))).astype(fd)
    (x, p), _ = jax.lax.scan(_kf_step, (x, p), (use, y, r.astype(fd)))
    p = jnp.where(_valid(p), p, p_init)

    s_prev = g.s_prev
    s_prev_valid = _valid(s_prev)
    s_new = jnp.exp(x)
    bad = ~_valid(s_new)
    s_fb = jnp.where(s_prev_valid, s_prev, jnp.asarray(S_FALLBACK, fd))
    s_new = jnp.where(bad, s_fb, s_new)
    x = jnp.where(bad, jnp.log(s_fb), x)
    s_ref = jnp.where(s_prev_valid, s_prev, s_new)
    ret = jnp.log(s_new / s_ref)

    new = state.replace(
        kf_x_hat=x.astype(fd),
        kf_p=p.astype(fd),
        kf_last_update_ms=now,
        kf_initialised=jnp.ones_like(state.kf_initialised),
        fair_value=s_new.astype(fd),
        has_fair_value=jnp.ones_like(state.has_fair_value),
        fair_value_prev=s_ref.astype(fd),
        fv_available=fv_available,
        healthy_venues_used=g.obs,
        healthy_venues_used_count=n_obs.astype(state.healthy_venues_used_count.dtype),
    )
    return new, ret.astype(fd)
