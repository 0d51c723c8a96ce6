"""Toxicity and venue health, JAX engine (STRATEGY.md §8, §5.5).

Pure functions on one environment (per-venue arrays `[N]`, pending markouts `[N, M]`); callers
vmap them.

* §5.5 / §8.2 step 1 matured pending markouts (:func:`process_markouts`). Each venue's queue
  is a ring (logical entry j at slot `(pm_head + j) mod M`); the matured entries are its FIFO
  prefix of length `k`. The pops and sequential EWMA updates are a masked `lax.while_loop` over
  logical positions while some venue is still in its matured prefix (a handful of `[N]` steps per
  tick) — the spec's genuinely sequential piece, in the reference's operation order. Popping
  only advances `pm_head` by `k`: the `[N, M]` arrays are read slot by slot, never rewritten.
* §8.2 the whole reference pass, the D23 five-feature option and the D10 time-decay option
  (:func:`update_toxicity`); SIMULATION §2.4 overlays (:func:`apply_toxicity_floor`,
  :func:`force_disabled`).

The options are described in :mod:`paraphina_jax.reference.toxicity` (same semantics).
"""

from __future__ import annotations

from typing import Any

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


def _logical_index(v: Any) -> Array:
    """`[N, M]` int: logical position of each ring slot, `(slot − pm_head) mod M`."""
    m = v.pm_t_eval_ms.shape[-1]
    slot = jnp.arange(m, dtype=v.pm_head.dtype)
    return (slot[None, :] - v.pm_head[:, None]) % m


def process_markouts(state: StrategyState, now_ms: Array, cfg: StrategyConfig) -> StrategyState:
    """§5.5 / §8.2 step 1: pop every matured pending markout (t_eval ≤ now), FIFO per venue.

    With a valid venue mid each entry gives `m` (buy: mid − price, sell: price − mid),
    `tox_inst = 0 if m ≥ 0 else min(1, −m/scale)`, and the EWMA updates
    `tox ← (1−a)·tox + a·tox_inst`, `markout_ewma ← (1−a)·markout_ewma + a·m` with
    `a = clip(markout_alpha, 0, 1)`, `scale = max(markout_scale, 1e-9)`, in FIFO order. Without a
    valid mid the entries are popped with no effect.

    The pops run as a masked `lax.while_loop` over logical positions j while some venue is still
    in its matured prefix (usually 1–3 steps), each step a `[N]` read of ring slot
    `(pm_head + j) mod M` and update in the reference's operation
    order, so the result equals the sequential NumPy loop bit for bit. Popping advances the ring
    head: `pm_head ← (pm_head + k) mod M`, `pm_count ← pm_count − k`.

    Args:
      state: state with the `[N, M]` pending-markout rings.
      now_ms: `[]` int tick time.
      cfg: config.
    """
    v = state.venues
    fdt = v.toxicity.dtype
    tc = cfg.toxicity
    m = v.pm_t_eval_ms.shape[-1]
    a = jnp.clip(jnp.asarray(tc.markout_alpha, fdt), 0.0, 1.0)
    om = 1.0 - a
    scale = jnp.maximum(jnp.asarray(tc.markout_scale_usd_per_tao, fdt), MARKOUT_SCALE_FLOOR)
    zero = jnp.zeros((), fdt)

    valid = _valid_mid(v.mid, v.has_mid)  # no valid mid: popped, no effect

    def cond(carry: tuple[Array, ...]) -> Array:
        j, popping = carry[0], carry[1]
        return jnp.any(popping) & (j < m)

    def body(carry: tuple[Array, ...]) -> tuple[Array, ...]:
        j, popping, k, tox, ewma = carry
        slot = ((v.pm_head + j) % m)[:, None]  # [N, 1]
        t_eval = jnp.take_along_axis(v.pm_t_eval_ms, slot, axis=1)[:, 0]
        side = jnp.take_along_axis(v.pm_side, slot, axis=1)[:, 0]
        price = jnp.take_along_axis(v.pm_price, slot, axis=1)[:, 0]
        mat = popping & (j < v.pm_count) & (t_eval <= now_ms)  # still in the matured prefix
        mk = markout_value(side, price, v.mid)  # [N]
        tox_inst = jnp.where(mk >= 0, zero, jnp.minimum(1.0, -mk / scale))
        use = mat & valid
        tox = jnp.where(use, om * tox + a * tox_inst, tox)
        ewma = jnp.where(use, om * ewma + a * mk, ewma)
        return j + 1, mat, k + mat.astype(k.dtype), tox, ewma

    k0 = jnp.zeros_like(v.pm_count)
    init = (jnp.zeros((), k0.dtype), v.pm_count > 0, k0, v.toxicity, v.markout_ewma_usd_per_tao)
    _, _, k, tox, ewma = lax.while_loop(cond, body, init)

    return state.replace(
        venues=v.replace(
            toxicity=tox,
            markout_ewma_usd_per_tao=ewma,
            pm_count=(v.pm_count - k).astype(v.pm_count.dtype),
            pm_head=((v.pm_head + k) % m).astype(v.pm_head.dtype),
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

    in_q = (_logical_index(v) < v.pm_count[:, None]) & _valid_mid(v.mid, v.has_mid)[:, None]
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
