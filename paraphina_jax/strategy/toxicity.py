"""Toxicity and venue health, JAX engine (STRATEGY.md §8, §5.5).

Pure functions on one environment (per-venue arrays `[N]`, pending markouts `[N, M]`); callers
vmap them.

* §5.5 / §8.2 step 1 matured pending markouts (:func:`process_markouts`). The matured entries
  of a venue are the FIFO prefix of length `k` of its queue `[0, pm_count)`. The sequential EWMA
  updates are a masked `lax.while_loop` over queue positions `j < max_v k_v` (a handful of `[N]`
  steps per tick, none when nothing matured) — the spec's genuinely sequential piece, in the
  reference's operation order. The queue is then shifted left by `k` with one contiguous window
  per row; vacated slots are zeroed.
* §8.2 the whole reference pass, the D23 five-feature option and the D10 time-decay option
  (:func:`update_toxicity`); SIMULATION §2.4 overlays (:func:`apply_toxicity_floor`,
  :func:`force_disabled`).

The options are described in :mod:`paraphina_jax.reference.toxicity` (same semantics).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from paraphina_jax.config.types import (
    STATUS_DISABLED,
    STATUS_HEALTHY,
    STATUS_WARNING,
    StrategyConfig,
)
from paraphina_jax.strategy.accounting import markout_value
from paraphina_jax.strategy.common import sigma_floors
from paraphina_jax.strategy.types import StrategyState

Array = Any

MARKOUT_SCALE_FLOOR = 1e-9  # §8.2: markout_scale floored at 1e-9
SPEC_V1_EPS = 1e-12  # §8.1 ε of the five-feature model

_PM_FIELDS = (
    "pm_t_eval_ms",
    "pm_side",
    "pm_size",
    "pm_price",
    "pm_fair_at_fill",
    "pm_mid_at_fill",
    "pm_fill_seq",
)


def _valid_mid(mid: Array, has_mid: Array) -> Array:
    """§5.5: a venue mid usable for markouts is present, finite and > 0. `[N]` bool."""
    return has_mid & jnp.isfinite(mid) & (mid > 0)


def toxicity_status(tox: Array, cfg: StrategyConfig, dtype: Any = jnp.int32) -> Array:
    """§8.2 step 6 thresholds (inclusive): ≥ TOX_HIGH ⇒ Disabled, ≥ TOX_MED ⇒ Warning.

    Args:
      tox: `[N]` toxicity.

    Returns:
      `[N]` STATUS_* codes of `dtype`.
    """
    tc = cfg.toxicity
    return jnp.where(
        tox >= tc.tox_high_threshold,
        STATUS_DISABLED,
        jnp.where(tox >= tc.tox_med_threshold, STATUS_WARNING, STATUS_HEALTHY),
    ).astype(dtype)


def _status(tox: Array, dev_disabled: Array, status_dtype: Any, cfg: StrategyConfig) -> Array:
    """Status from toxicity, the `disable_toxicity_gate` ablation and the D22 latch. `[N]`."""
    if cfg.flags.disable_toxicity_gate:
        status = jnp.full(tox.shape, STATUS_HEALTHY, dtype=status_dtype)
    else:
        status = toxicity_status(tox, cfg, status_dtype)
    if cfg.flags.venue_dev_disable:
        status = jnp.where(dev_disabled, jnp.asarray(STATUS_DISABLED, status_dtype), status)
    return status


def _matured_count(state: StrategyState, now_ms: Array) -> Array:
    """`[N]` int: length of each venue's matured FIFO prefix (t_eval ≤ now) within pm_count."""
    v = state.venues
    m = v.pm_t_eval_ms.shape[-1]
    j = jnp.arange(m)
    not_mat = ~((j[None, :] < v.pm_count[:, None]) & (v.pm_t_eval_ms <= now_ms))
    first = jnp.argmax(not_mat, axis=1)  # first entry that stops the pop
    return jnp.where(jnp.any(not_mat, axis=1), first, m).astype(v.pm_count.dtype)


def _shift_left(arr: Array, k: Array, keep: Array) -> Array:
    """`[N, M]` row i shifted left by `k[i]` (one contiguous window per row, no element gather);
    entries at or beyond `keep[i]` zeroed."""
    m = arr.shape[-1]
    padded = jnp.concatenate([arr, jnp.zeros_like(arr)], axis=1)  # [N, 2M]
    moved = jax.vmap(lambda row, kk: lax.dynamic_slice(row, (kk,), (m,)))(padded, k)
    j = jnp.arange(m)
    return jnp.where(j[None, :] < keep[:, None], moved, jnp.zeros((), arr.dtype))


def process_markouts(state: StrategyState, now_ms: Array, cfg: StrategyConfig) -> StrategyState:
    """§5.5 / §8.2 step 1: pop every matured pending markout (t_eval ≤ now), FIFO per venue.

    With a valid venue mid each entry gives `m` (buy: mid − price, sell: price − mid),
    `tox_inst = 0 if m ≥ 0 else min(1, −m/scale)`, and the EWMA updates
    `tox ← (1−a)·tox + a·tox_inst`, `markout_ewma ← (1−a)·markout_ewma + a·m` with
    `a = clip(markout_alpha, 0, 1)`, `scale = max(markout_scale, 1e-9)`, in FIFO order. Without a
    valid mid the entries are popped with no effect. The queue is shifted left; vacated slots are
    zeroed.

    The updates run as a masked `lax.while_loop` over queue positions `j < max_v k_v` (the
    longest matured prefix; usually 0–2), each step a `[N]` update in the reference's operation
    order, so the result equals the sequential NumPy loop bit for bit.

    Args:
      state: state with the `[N, M]` pending-markout queues.
      now_ms: `[]` int tick time.
      cfg: config.
    """
    v = state.venues
    fdt = v.toxicity.dtype
    tc = cfg.toxicity
    a = jnp.clip(jnp.asarray(tc.markout_alpha, fdt), 0.0, 1.0)
    om = 1.0 - a
    scale = jnp.maximum(jnp.asarray(tc.markout_scale_usd_per_tao, fdt), MARKOUT_SCALE_FLOOR)
    zero = jnp.zeros((), fdt)

    k = _matured_count(state, now_ms)  # [N]
    k_eff = jnp.where(_valid_mid(v.mid, v.has_mid), k, 0)  # no valid mid: popped, no effect
    k_max = jnp.max(k_eff)

    def cond(carry: tuple[Array, Array, Array]) -> Array:
        return carry[0] < k_max

    def body(carry: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
        j, tox, ewma = carry
        side = lax.dynamic_index_in_dim(v.pm_side, j, axis=1, keepdims=False)
        price = lax.dynamic_index_in_dim(v.pm_price, j, axis=1, keepdims=False)
        mk = markout_value(side, price, v.mid)  # [N]
        tox_inst = jnp.where(mk >= 0, zero, jnp.minimum(1.0, -mk / scale))
        use = j < k_eff
        tox = jnp.where(use, om * tox + a * tox_inst, tox)
        ewma = jnp.where(use, om * ewma + a * mk, ewma)
        return j + 1, tox, ewma

    init = (jnp.zeros((), k.dtype), v.toxicity, v.markout_ewma_usd_per_tao)
    _, tox, ewma = lax.while_loop(cond, body, init)

    keep = v.pm_count - k
    shifted = {name: _shift_left(getattr(v, name), k, keep) for name in _PM_FIELDS}
    return state.replace(
        venues=v.replace(
            toxicity=tox,
            markout_ewma_usd_per_tao=ewma,
            pm_count=keep.astype(v.pm_count.dtype),
            **shifted,
        )
    )


def _opt(x: Array | None, like: Array) -> Array:
    return jnp.zeros_like(like) if x is None else jnp.asarray(x, like.dtype)


def _spec_v1_tox(
    state: StrategyState,
    cfg: StrategyConfig,
    depth_bid: Array | None,
    depth_ask: Array | None,
    buy_agg: Array | None,
    sell_agg: Array | None,
) -> Array:
    """§8.1 five-feature toxicity `[N]` (queue read before popping)."""
    v = state.venues
    tc = cfg.toxicity
    fdt = v.toxicity.dtype
    eps = SPEC_V1_EPS
    zero = jnp.zeros((), fdt)

    def clip01(x: Array) -> Array:
        return jnp.clip(x, 0.0, 1.0)

    vts = jnp.asarray(tc.vol_tox_scale, fdt)
    ratio = v.local_vol_short / (state.sigma_eff + eps) - 1.0
    f1 = jnp.where(vts > 0, clip01(ratio / jnp.where(vts > 0, vts, 1.0)), zero)

    m = v.pm_t_eval_ms.shape[-1]
    j = jnp.arange(m)
    in_q = (j[None, :] < v.pm_count[:, None]) & _valid_mid(v.mid, v.has_mid)[:, None]
    mk = markout_value(v.pm_side, v.pm_price, v.mid[:, None])
    n_all = jnp.sum(in_q, axis=1).astype(fdt)
    n_neg = jnp.sum(in_q & (mk < 0), axis=1).astype(fdt)
    f2 = clip01(n_neg / (n_all + eps))

    db, da = _opt(depth_bid, v.toxicity), _opt(depth_ask, v.toxicity)
    f3 = jnp.minimum(1.0, jnp.abs(db - da) / (db + da + eps))
    b, s = _opt(buy_agg, v.toxicity), _opt(sell_agg, v.toxicity)
    f4 = clip01(jnp.abs(b - s) / (b + s + eps))
    fts = jnp.asarray(tc.flow_tox_scale, fdt)
    f5 = jnp.where(fts > 0, clip01((b + s) / jnp.where(fts > 0, fts, 1.0)), zero)

    w = jnp.asarray(tc.spec_weights, fdt)
    acc = jnp.zeros_like(v.toxicity)
    for wk, fk in zip((w[0], w[1], w[2], w[3], w[4]), (f1, f2, f3, f4, f5)):
        acc = acc + wk * fk
    return clip01(acc)


def update_toxicity(
    state: StrategyState,
    now_ms: Array,
    cfg: StrategyConfig,
    *,
    depth_bid: Array | None = None,
    depth_ask: Array | None = None,
    buy_agg: Array | None = None,
    sell_agg: Array | None = None,
) -> StrategyState:
    """§8.2 toxicity and venue health, once per main tick, every venue, in the spec's order.

    (D10 option) decay → markouts → shadow warm-up → catastrophic staleness (strict >) →
    missing-data fallback with the depth grace, else the vol floor (σ_min raw in parity mode, the
    tick-scaled floor otherwise, D9) → clip → status (ablation `disable_toxicity_gate` ⇒ Healthy).
    `cfg.flags.toxicity_model == "spec_v1"` replaces the markout EWMA and vol floor by the §8.1
    model (D23).

    Args:
      state: state after the fair-value / vol update of this tick.
      now_ms: `[]` int tick time.
      cfg: config.
      depth_bid, depth_ask: optional `[N]` top-K depths (spec_v1 imbalance feature; else 0).
      buy_agg, sell_agg: optional `[N]` aggressor volumes (spec_v1 flow features; else 0).
    """
    tc = cfg.toxicity
    fl = cfg.flags
    fdt = state.venues.toxicity.dtype
    spec_v1 = fl.toxicity_model == "spec_v1"
    shadow = fl.shadow_warmup

    # 0) D10 option: time decay by one main tick.
    if fl.toxicity_recovery:
        hl = jnp.asarray(tc.recovery_halflife_ms, fdt)
        dt = jnp.asarray(cfg.loop.main_loop_interval_ms, fdt)
        factor = jnp.where(hl > 0, jnp.power(0.5, dt / jnp.where(hl > 0, hl, 1.0)), 1.0)
        v0 = state.venues
        state = state.replace(venues=v0.replace(toxicity=v0.toxicity * factor.astype(fdt)))

    model_tox = (
        _spec_v1_tox(state, cfg, depth_bid, depth_ask, buy_agg, sell_agg) if spec_v1 else None
    )

    # 1) Markouts.
    state = process_markouts(state, now_ms, cfg)
    v = state.venues
    tox = model_tox if spec_v1 else v.toxicity

    if fl.sigma_floor_mode == "parity":
        sigma_min = jnp.asarray(cfg.vol.sigma_min, fdt)
    else:
        sigma_min = jnp.asarray(sigma_floors(cfg)[0], fdt)
    sigma = jnp.fmax(state.sigma_eff.astype(fdt), sigma_min)
    vts = jnp.asarray(tc.vol_tox_scale, fdt)
    one = jnp.ones((), fdt)

    age = now_ms - v.last_mid_update_ms
    has_upd = v.has_mid_update
    # 2) Shadow warm-up.
    if shadow:
        warm = has_upd & v.has_mid & (v.mid > 0) & (v.depth_near_mid > 0)
        tox = jnp.where(warm, jnp.zeros((), fdt), tox)
    # 3) Catastrophic staleness (strict >).
    cat = jnp.asarray(tc.catastrophic_stale_ms)
    tox = jnp.where((cat > 0) & has_upd & (age > cat), one, tox)
    # 4) Missing-data fallback, else the vol floor.
    prolonged = (v.depth_near_mid <= 0) & (~has_upd | (age > tc.depth_fallback_grace_ms))
    missing = ~v.has_mid | prolonged
    if not spec_v1 and not shadow:
        local = jnp.fmax(v.local_vol_short, sigma_min)
        safe_sigma = jnp.where(sigma > 0, sigma, one)
        safe_vts = jnp.where(vts > 0, vts, one)
        f_vol = jnp.where(
            local <= sigma,
            jnp.zeros((), fdt),
            jnp.minimum(1.0, (local / safe_sigma - 1.0) / safe_vts),
        )
        floor_on = (vts > 0) & (sigma > 0)
        tox = jnp.where(floor_on, jnp.fmax(tox, f_vol), tox)
    tox = jnp.where(missing, one, tox)
    # 5) Clip; 6) status.
    tox = jnp.clip(tox, 0.0, 1.0)
    status = _status(tox, v.dev_disabled, v.status.dtype, cfg)
    return state.replace(venues=v.replace(toxicity=tox, status=status))


def apply_toxicity_floor(state: StrategyState, floor: Array, cfg: StrategyConfig) -> StrategyState:
    """SIMULATION §2.4 cancel storm: `tox ← max(tox, floor)` and the status recomputed.

    Args:
      floor: `[]` or `[N]` toxicity floor.
    """
    v = state.venues
    tox = jnp.fmax(v.toxicity, jnp.asarray(floor, v.toxicity.dtype))
    status = _status(tox, v.dev_disabled, v.status.dtype, cfg)
    return state.replace(venues=v.replace(toxicity=tox, status=status))


def force_disabled(state: StrategyState, mask: Array) -> StrategyState:
    """SIMULATION §2.4 venue outage: status Disabled where `mask [N]` (toxicity untouched)."""
    v = state.venues
    status = jnp.where(mask, jnp.asarray(STATUS_DISABLED, v.status.dtype), v.status)
    return state.replace(venues=v.replace(status=status))
