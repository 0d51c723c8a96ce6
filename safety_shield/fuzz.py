"""Adversarial cases and a JAX invariant checker for fuzzing the shield at scale.

* :func:`random_case` — one random `(ShieldFacts, ShieldOrders)` from a key: random venue
  health, positions, limits (about half of them breached), books (some unknown or out), and an
  adversarial flat order list: NaN / ±inf / zero / negative / enormous sizes and prices, prices
  through the book, malformed side codes, orders on every venue, kill exits without a kill.
* :func:`count_violations` — the JAX port of :mod:`safety_shield.checks`: `[R]` int32 number of
  findings per rule for one case (per order, plus one per breached total), so every fuzzed case
  can be checked inside the same vmapped program.

Both are pure and vmappable; the bench is experiments/bench/shield_fuzz.py.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from paraphina_jax.config.types import StrategyConfig
from safety_shield.checks import GRID_TOL, SIZE_RTOL, SUM_ATOL, SUM_RTOL
from safety_shield.twin_rules import basis_per_venue, shield_params, venue_blocked
from safety_shield.types import (
    IOC_STEP_FLOOR,
    KIND_EXIT,
    KIND_HEDGE,
    KIND_KILL_EXIT,
    KIND_PLACE,
    KIND_QUOTE,
    MM_LOT_FLOOR,
    N_RULES,
    RULE_BASIS_LIMIT,
    RULE_DAILY_LOSS,
    RULE_DELTA_LIMIT,
    RULE_HARD_LIMIT_QUOTES,
    RULE_IOC_CAPS,
    RULE_KILL_SWITCH,
    RULE_LIQUIDATION,
    RULE_NON_FINITE,
    RULE_ORDER_SIZE,
    RULE_PASSIVITY,
    RULE_VENUE_HEALTH,
    OrderLayout,
    ShieldFacts,
    ShieldOrders,
)

Array = Any


def _choice(key: Array, values: list[float], shape: tuple[int, ...], dtype: Any) -> Array:
    return jax.random.choice(key, jnp.asarray(values, dtype), shape)


def random_case(
    key: Array, layout: OrderLayout, fdt: Any = jnp.float64
) -> tuple[ShieldFacts, ShieldOrders]:
    """One adversarial case (facts and proposed flat orders) for `layout.n` venues."""
    n = layout.n
    k_len = layout.venue.shape[0]
    ks = iter(jax.random.split(key, 64))

    def u(shape: tuple[int, ...] = (), lo: float = 0.0, hi: float = 1.0) -> Array:
        return jax.random.uniform(next(ks), shape, fdt, lo, hi)

    def bern(p: float, shape: tuple[int, ...] = ()) -> Array:
        return jax.random.uniform(next(ks), shape) < p

    s = u((), 50.0, 600.0)
    mid = s * (1.0 + 0.006 * jax.random.normal(next(ks), (n,), fdt))
    has_mid = ~bern(0.08, (n,))
    q = jnp.round(8.0 * jax.random.normal(next(ks), (n,), fdt), 2) * ~bern(0.25, (n,))
    qt = jnp.sum(q)
    qt = jnp.where(bern(0.05), u((), -20.0, 20.0), qt)  # inconsistent state now and then
    b = jnp.where(has_mid, mid, s) - s
    bb = jnp.sum(q * b)
    dd = qt * s
    delta_lim = jnp.where(bern(0.5), jnp.abs(dd) * u((), 0.3, 1.0), jnp.abs(dd) * u((), 1.01, 5.0))
    delta_lim = jnp.where(bern(0.05), jnp.nan, delta_lim)
    basis_lim = jnp.where(bern(0.5), jnp.abs(bb) * u((), 0.3, 1.0), jnp.abs(bb) * u((), 1.01, 5.0))
    pnl = 4000.0 * jax.random.normal(next(ks), (), fdt)
    pnl = jnp.where(bern(0.02), jnp.nan, pnl)
    tox = _choice(next(ks), [0.0, 0.3, 0.6, 0.89, 0.9, 1.0], (n,), fdt)
    tox = jnp.where(bern(0.02, (n,)), jnp.nan, tox)
    age = jax.random.randint(next(ks), (n,), -1, 5000)
    dist = jnp.where(
        bern(0.4, (n,)), _choice(next(ks), [1.0, 2.0, 2.5, 5.0, 8.0], (n,), fdt), u((n,), 0.5, 15.0)
    )
    dist = jnp.where(bern(0.02, (n,)), jnp.nan, jnp.where(bern(0.03, (n,)), jnp.inf, dist))
    spread = u((n,), 0.01, 1.5)
    true_mid = mid * (1.0 + 0.002 * jax.random.normal(next(ks), (n,), fdt))
    bid = jnp.where(bern(0.02, (n,)), jnp.nan, true_mid - spread / 2.0)
    ask = jnp.where(bern(0.02, (n,)), jnp.inf, true_mid + spread / 2.0)
    facts = ShieldFacts(
        now_ms=jnp.asarray(1_000_000, age.dtype),
        kill_switch=bern(0.2),
        risk_regime=_choice(next(ks), [0, 0, 1, 2, 7], (), jnp.int32),
        q_global_tao=qt,
        dollar_delta_usd=dd,
        basis_usd=bb,
        daily_pnl_total=pnl,
        delta_limit_usd=delta_lim,
        basis_limit_hard_usd=basis_lim,
        fair_value=s,
        status=_choice(next(ks), [0, 0, 0, 1, 2, 3], (n,), jnp.int32),
        dev_disabled=bern(0.05, (n,)),
        toxicity=tox,
        mid_age_ms=age,
        position_tao=q,
        dist_liq_sigma=dist,
        mid=mid,
        has_mid=has_mid,
        mm_has=bern(0.5, (n, 2)),
        book_bid=bid,
        book_ask=ask,
        outage=bern(0.05, (n,)),
    )

    # Proposed orders.
    ven = jnp.asarray(layout.venue)
    kind = jnp.asarray(layout.kind)
    is_mm = (kind == KIND_PLACE) | (kind == KIND_QUOTE)
    mm_sign = jnp.where(jnp.asarray(layout.mm_side) == 0, 1, -1).astype(jnp.int32)
    ioc_side = _choice(next(ks), [1, -1, 1, -1, 0, 2], (k_len,), jnp.int32)
    side = jnp.where(is_mm, mm_sign, ioc_side)
    size = jnp.select(
        [bern(0.35, (k_len,)), bern(0.3, (k_len,)), bern(0.3, (k_len,))],
        [
            u((k_len,), 0.0, 30.0),
            jnp.round(u((k_len,), 0.0, 12.0), 2),
            _choice(next(ks), [0.0, -1.0, 1e-4, 0.01, 19.999, 20.0, 25.0], (k_len,), fdt),
        ],
        _choice(next(ks), [jnp.nan, jnp.inf, -jnp.inf, 1e30, -1e30, 1e-300], (k_len,), fdt),
    )
    ref_px = jnp.where(side > 0, ask[ven], bid[ven])
    ref_px = jnp.where(jnp.isfinite(ref_px), ref_px, s)
    off = _choice(next(ks), [-2.0, -0.5, -0.01, 0.0, 0.01, 0.5, 2.0], (k_len,), fdt)
    price = jnp.where(is_mm, ref_px - side * off, ref_px + side * off)
    price = jnp.where(
        bern(0.08, (k_len,)),
        _choice(next(ks), [jnp.nan, jnp.inf, -jnp.inf, 0.0, -5.0, 1e12], (k_len,), fdt),
        price,
    )
    valid = bern(0.75, (k_len,))
    return facts, ShieldOrders(valid=valid, side=side, size=size, price=price)


def _over(total: Array, budget: Array) -> Array:
    b = jnp.where(jnp.isfinite(budget), jnp.fmax(budget, 0.0), 0.0)
    return ~(total <= b * (1.0 + SUM_RTOL) + SUM_ATOL)


def count_violations(
    f: ShieldFacts, o: ShieldOrders, layout: OrderLayout, cfg: StrategyConfig
) -> Array:
    """`[R]` int32: findings per rule for one case's ALLOWED orders (JAX port of checks.py)."""
    fdt = o.size.dtype
    ven = layout.venue
    kind = jnp.asarray(layout.kind)
    is_mm = (kind == KIND_PLACE) | (kind == KIND_QUOTE)
    budgeted = jnp.asarray(layout.budgeted)
    v = o.valid
    i32 = jnp.int32

    def cnt(mask: Array) -> Array:
        return jnp.sum(mask, dtype=i32)

    def tot(mask: Array, x: Array) -> Array:
        return jnp.sum(jnp.where(mask, x, 0.0))

    c = [jnp.zeros((), i32) for _ in range(N_RULES)]
    bad = ~jnp.isfinite(o.size) | ~jnp.isfinite(o.price) | ((o.side != 1) & (o.side != -1))
    c[RULE_NON_FINITE] = cnt(v & bad)

    ke = kind == KIND_KILL_EXIT
    q = f.position_tao[ven]
    bad_ke = (not cfg.flags.kill_best_effort) | ~(o.side * q < 0.0)
    bad_ke = bad_ke | (o.size > jnp.abs(q) * (1.0 + SIZE_RTOL))
    extra = ke & v & (jnp.cumsum((ke & v).astype(i32)) > 1)
    killed_bad = v & (~ke | bad_ke | extra)
    c[RULE_KILL_SWITCH] = jnp.where(f.kill_switch, cnt(killed_bad), cnt(v & ke))

    regime_ok = (f.risk_regime == 0) | (f.risk_regime == 1)
    c[RULE_HARD_LIMIT_QUOTES] = jnp.where(regime_ok, 0, cnt(v & is_mm))
    blocked = venue_blocked(f, shield_params(cfg, fdt, f.mid_age_ms.dtype))
    c[RULE_VENUE_HEALTH] = cnt(v & blocked[ven])
    ask, bid = f.book_ask[ven], f.book_bid[ven]
    passive = jnp.where(
        jnp.asarray(layout.mm_side == 0),
        jnp.isfinite(ask) & (o.price < ask),
        jnp.isfinite(bid) & (o.price > bid),
    )
    c[RULE_PASSIVITY] = cnt(v & is_mm & ~passive)

    mx = jnp.asarray(np.asarray(cfg.venues.max_order_size, np.float64)[ven], fdt)
    mn = jnp.asarray(np.asarray(cfg.venues.min_notional_usd, np.float64)[ven], fdt)
    lot = jnp.asarray(np.asarray(cfg.venues.lot_size, np.float64)[ven], fdt)
    stp = jnp.asarray(np.asarray(cfg.venues.size_step, np.float64)[ven], fdt)
    step = jnp.where(
        is_mm, jnp.fmax(lot, MM_LOT_FLOOR), jnp.fmax(jnp.fmax(stp, lot), IOC_STEP_FLOOR)
    )
    units = o.size / step
    size_bad = (
        (o.size > mx * (1.0 + SIZE_RTOL))
        | (jnp.abs(units - jnp.round(units)) > GRID_TOL)
        | (o.size < lot * (1.0 - SIZE_RTOL))
        | ~(o.size > 0.0)
        | ~(o.price > 0.0)
        | (o.size * o.price < mn * (1.0 - SIZE_RTOL))
    )
    c[RULE_ORDER_SIZE] = cnt(v & size_bad)

    ex = kind == KIND_EXIT
    hd = kind == KIND_HEDGE
    cap = jnp.where(ex, cfg.exit.max_venue_tao_per_tick, cfg.hedge.max_venue_tao_per_tick)
    per = v & (ex | hd) & (o.size > cap * (1.0 + SIZE_RTOL))
    c[RULE_IOC_CAPS] = (
        cnt(per)
        + _over(tot(v & ex, o.size), jnp.asarray(cfg.exit.max_total_tao_per_tick, fdt)).astype(i32)
        + _over(tot(v & hd, o.size), jnp.asarray(cfg.hedge.max_step, fdt)).astype(i32)
    )

    crit_v = ~(f.dist_liq_sigma > cfg.risk.liq_crit_sigma)
    liq_dir = v & crit_v[ven] & ~(o.side * q < 0.0)
    ok_liq = v & budgeted & ~liq_dir
    liq_over = [
        crit_v[j] & _over(tot(ok_liq & jnp.asarray(ven == j), o.size), jnp.abs(f.position_tao[j]))
        for j in range(layout.n)
    ]
    c[RULE_LIQUIDATION] = cnt(liq_dir) + cnt(jnp.stack(liq_over))

    def limit(breach: Array, bad_dir: Array, amount: Array, budget: Array) -> Array:
        over = _over(tot(v & budgeted & ~bad_dir, amount), budget)
        return jnp.where(breach, cnt(v & bad_dir) + over.astype(i32), 0)

    dd = f.dollar_delta_usd
    d = jnp.where(dd < 0, -1.0, 1.0).astype(fdt)
    c[RULE_DELTA_LIMIT] = limit(
        ~(jnp.abs(dd) < f.delta_limit_usd), ~(o.side * d < 0.0), o.size, d * f.q_global_tao
    )
    bb = f.basis_usd
    db = jnp.where(bb < 0, -1.0, 1.0).astype(fdt)
    b = basis_per_venue(f)[ven]
    c[RULE_BASIS_LIMIT] = limit(
        ~(jnp.abs(bb) < f.basis_limit_hard_usd),
        ~(db * o.side * b <= 0.0),
        jnp.abs(b) * o.size,
        jnp.abs(bb),
    )
    qt = f.q_global_tao
    c[RULE_DAILY_LOSS] = limit(
        ~(f.daily_pnl_total > -abs(cfg.risk.daily_loss_limit)),
        ~(o.side * qt < 0.0),
        o.size,
        jnp.abs(qt),
    )
    return jnp.stack(c)
