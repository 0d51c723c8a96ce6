"""The shield's JAX twin: the same rules, operations and order as :mod:`safety_shield.reference`.

Pure functions on ONE environment (callers `jax.vmap`); every branch on a traced value is a
`jnp.where`, so the program has fixed shapes and no host round trips. In float64 the twin takes
exactly the reference's decisions (masks and counts equal) and the same sizes bit for bit
(tests/test_shield_properties.py, tests/test_shield_rules.py, experiments/bench/shield_fuzz.py).

Speed (experiments/bench/shield_micro.py): the flat `[K]` list (K = 7N, safety_shield/types.py)
is held as a `[7, N]` block array (`types.block_index`), one row per kind and MM side, so that
per-venue facts broadcast as `[N]` rows and per-kind constants as static `[7, 1]` columns: no
gather and no concatenation per rule. The state between rules is `(valid, size)` and a `[7, N]`
int32 change word (bit e: pipeline step e dropped or resized the entry); prices are never edited
(read once, zeroed once at the end), sizes of dropped entries are zeroed once at the end (every
use before is masked by `valid`), and the per-rule counts are one reduction of the words. The
limit budgets' running totals are explicit sums in layout order on static slices (the
reference's cumulative sum, addition for addition). XLA on CPU has no multi-output fusion: a
value read by several fused consumers, or at other entries (running totals), is recomputed in
each, so the state is materialised (:func:`materialize`) before every rule with running totals
and at the end; between those points each stage is a few elementwise loops.

* :func:`shield_hook` — the episode's `shield_fn(state, out, view, cfg) -> (out, counts [R])`;
* :func:`shield_actions` — the same with the full :class:`~safety_shield.types.ShieldRecord`;
* :func:`shield_orders` — the rule pipeline on a flat order list (what the fuzz bench drives);
The control-surface rule (`clip_controls`, `shielded_controls_fn`) is :mod:`safety_shield.controls`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from paraphina_jax.config.types import (
    REGIME_NORMAL,
    REGIME_WARNING,
    STATUS_HEALTHY,
    STATUS_WARNING,
    StrategyConfig,
)
from paraphina_jax.strategy.types import StrategyState, TickOutput
from paraphina_jax.utils.fusion import materialize_tree
from safety_shield import reference
from safety_shield.types import (
    BLOCK_KIND,
    BLOCK_MM_SIDE,
    BLOCK_SIDE,
    IOC_STEP_FLOOR,
    KIND_EXIT,
    KIND_HEDGE,
    KIND_KILL_EXIT,
    KIND_PLACE,
    KIND_QUOTE,
    MM_LOT_FLOOR,
    N_RULES,
    RULE_KILL_SWITCH,
    OrderLayout,
    ShieldFacts,
    ShieldOrders,
    ShieldRecord,
    block_index,
    order_layout,
    tolerances,
)

Array = Any

# ---------------------------------------------------------------------------------------------
# Block layout: the flat list as [7, N] (row r, venue v)
# ---------------------------------------------------------------------------------------------


def _col(mask: np.ndarray) -> np.ndarray:
    """A static per-row `[7]` array as a `[7, 1]` column (broadcasts over venues)."""
    return np.asarray(mask)[:, None]


IS_MM = _col((BLOCK_KIND == KIND_PLACE) | (BLOCK_KIND == KIND_QUOTE))
IS_KE = _col(BLOCK_KIND == KIND_KILL_EXIT)
IS_EX = _col(BLOCK_KIND == KIND_EXIT)
IS_HD = _col(BLOCK_KIND == KIND_HEDGE)
IS_BUY = _col(BLOCK_MM_SIDE == 0)
BUDGETED = _col(BLOCK_KIND != KIND_QUOTE)


def to_blocks(x: Array, layout: OrderLayout) -> Array:
    """`[K]` flat → `[7, N]` blocks (standard layout only; not on the episode's path)."""
    std = order_layout(layout.n)
    if not all(np.array_equal(getattr(layout, a), getattr(std, a)) for a in ("venue", "kind")):
        raise ValueError("the twin supports the standard order_layout(n) only")
    return x[block_index(layout.n)]


def to_flat(b: Array) -> Array:
    """`[7, N]` blocks → `[K]` flat."""
    return b.reshape(-1)[np.argsort(block_index(b.shape[1]).reshape(-1))]


# ---------------------------------------------------------------------------------------------
# Helpers (mirror safety_shield.rules)
# ---------------------------------------------------------------------------------------------


def _venue_stale_ms(cfg: StrategyConfig) -> Array:
    ov = jnp.asarray(cfg.venues.stale_override_ms)
    return jnp.where(ov >= 0, ov, jnp.asarray(cfg.book.book_stale_ms, ov.dtype))


def venue_blocked(facts: ShieldFacts, cfg: StrategyConfig) -> Array:
    """[N] bool: disabled / deviation-disabled / toxic / stale / out venues."""
    status_ok = (facts.status == STATUS_HEALTHY) | (facts.status == STATUS_WARNING)
    toxic = ~(facts.toxicity < cfg.toxicity.tox_high_threshold)
    age = facts.mid_age_ms
    stale = (age < 0) | (age > _venue_stale_ms(cfg).astype(age.dtype))
    return ~status_ok | facts.dev_disabled | toxic | stale | facts.outage


def basis_per_venue(facts: ShieldFacts) -> Array:
    """[N] b_v = (m_v if present else S) − S."""
    s = facts.fair_value
    return jnp.where(facts.has_mid, facts.mid, s) - s


def clean_budget(budget: Array, fdt: Any) -> Array:
    """A budget as used by the budget passes: non-negative, NaN ⇒ 0."""
    return jnp.fmax(jnp.asarray(budget, fdt), 0.0)


def on_grid(s: Array, step: Array, eps: float) -> Array:
    """Floor to the lot/step grid, keeping sizes already within `eps·step` of a grid point."""
    g = jnp.floor(s / step + eps) * step
    return jnp.where(jnp.abs(s - g) <= eps * step, s, g)


def excl_by_venue(need: Array) -> Array:
    """[7, N] → [7, N]: per row, the running total of the earlier venues (exit / hedge caps)."""
    run = jnp.zeros_like(need[:, 0])
    cols = []
    for v in range(need.shape[1]):
        cols.append(run)
        run = run + need[:, v]
    return jnp.stack(cols, axis=1)


def excl_by_kind(need: Array) -> Array:
    """[7, N] → [7, N]: per venue, the running total of the earlier budgeted rows (liquidation
    budget of that venue: kill exit, exit, hedge, place buy, place sell); quote rows 0."""
    run = jnp.zeros_like(need[0])
    rows = []
    for r in range(5):
        rows.append(run)
        run = run + need[r]
    zero = jnp.zeros_like(run)
    return jnp.stack(rows + [zero, zero])


def excl_global(need: Array) -> Array:
    """[7, N] → [7, N]: running total of every earlier budgeted entry in layout order (kill
    exits, exits, hedges venue by venue, then places venue by venue, buy then sell)."""
    n = need.shape[1]
    order = [(r, v) for r in range(3) for v in range(n)] + [
        (r, v) for v in range(n) for r in (3, 4)
    ]
    run = jnp.zeros_like(need[0, 0])
    excl: dict[tuple[int, int], Array] = {}
    for rv in order:
        excl[rv] = run
        run = run + need[rv]
    zero = jnp.zeros_like(need[0])
    rows = [jnp.stack([excl[r, v] for v in range(n)]) for r in range(5)]
    return jnp.stack(rows + [zero, zero])


class Ctx(NamedTuple):
    """Per-environment inputs of the rules, as `[7, N]` blocks or broadcastable rows."""

    side: Array  # [7, N] f  ±1 on well-formed entries
    side_ok: Array  # [7, N] bool  side code is ±1
    price: Array  # [7, N] f  limit price (read only)
    lot: Array  # [N] f
    step: Array  # [7, N] f  MM rows: max(lot, 1e-9); IOC rows: max(size_step, lot, 1e-12)
    eps: float  # grid tolerance of the dtype
    rtol: float  # budget tolerance of the dtype


def make_ctx(side: Array, price: Array, cfg: StrategyConfig, fdt: Any) -> Ctx:
    """The rules' context from the `[7, N]` side codes and prices."""
    lot = jnp.asarray(cfg.venues.lot_size).astype(fdt)
    stp = jnp.asarray(cfg.venues.size_step).astype(fdt)
    mm_step = jnp.fmax(lot, MM_LOT_FLOOR)
    ioc_step = jnp.fmax(jnp.fmax(stp, lot), IOC_STEP_FLOOR)
    eps, rtol = tolerances(fdt)
    return Ctx(
        side=side.astype(fdt),
        side_ok=(side == 1) | (side == -1),
        price=price,
        lot=lot,
        step=jnp.where(IS_MM, mm_step, ioc_step),
        eps=eps,
        rtol=rtol,
    )


def budget_cut(
    valid: Array, size: Array, subject: Array, unit: Array | None, excl: Array, b: Array, c: Ctx
) -> tuple[Array, Array]:
    """Greedy budget in layout order (see `safety_shield.rules.budget_pass`).

    Args:
      valid, size: [7, N] current entries; subject: [7, N] bool entries charged to a budget.
      unit: budget use per TAO (broadcastable to [7, N]); None = 1.
      excl: [7, N] running total of the earlier subjects' needs of the same budget.
      b: each entry's budget (broadcastable to [7, N], :func:`clean_budget`).
    Returns `(valid, size)` with over-budget subjects cut to the remaining budget, floored to
    their grid, and dropped once nothing is left.
    """
    rem = jnp.fmax(b - excl, 0.0)
    need = size if unit is None else unit * size
    fits = need <= rem + c.rtol * jnp.fmax(b, 1.0)
    per = rem if unit is None else rem / jnp.where(unit > 0, unit, 1.0)
    cut = jnp.floor(per / c.step + c.eps) * c.step
    size = jnp.where(subject & ~fits, cut, size)
    return valid & (size > 0.0), size


def _need(subject: Array, size: Array, unit: Array | None) -> Array:
    return jnp.where(subject, size if unit is None else unit * size, 0.0)


# ---------------------------------------------------------------------------------------------
# Rules (mirror safety_shield.rules, same names): (facts, valid, size, ctx, cfg) -> (valid, size)
# on [7, N] blocks; sizes of dropped entries are left as they are.
# ---------------------------------------------------------------------------------------------

Blocks = tuple[Array, Array]  # (valid [7, N] bool, size [7, N] f)


def rule_non_finite(f: ShieldFacts, v: Array, s: Array, c: Ctx, cfg: Any) -> Blocks:
    """Non-finite price/size or a side code other than ±1 ⇒ dropped."""
    return v & jnp.isfinite(s) & jnp.isfinite(c.price) & c.side_ok, s


def rule_kill_switch(f: ShieldFacts, v: Array, s: Array, c: Ctx, cfg: Any) -> Blocks:
    """Kill ⇒ nothing new; one bounded reduce-only kill exit (the first allowed) if enabled."""
    killed = f.kill_switch
    v = v & jnp.where(killed, IS_KE, ~IS_KE)
    ke = v[0] & (c.side[0] * f.position_tao < 0.0) & bool(cfg.flags.kill_best_effort) & killed
    seen = jnp.zeros_like(ke[0])
    first = []
    for i in range(ke.shape[0]):
        first.append(ke[i] & ~seen)
        seen = seen | ke[i]
    first = jnp.stack(first)  # [N]
    s0 = jnp.where(first, jnp.fmin(s[0], jnp.abs(f.position_tao)), s[0])
    v0 = first & (s0 > 0.0)
    return jnp.where(IS_KE, v0, v), jnp.where(IS_KE, s0, s)


def rule_hard_limit_quotes(f: ShieldFacts, v: Array, s: Array, c: Ctx, cfg: Any) -> Blocks:
    """HardLimit (or an unknown regime) ⇒ no quotes, no places."""
    regime_ok = (f.risk_regime == REGIME_NORMAL) | (f.risk_regime == REGIME_WARNING)
    return v & (regime_ok | ~IS_MM), s


def rule_venue_health(f: ShieldFacts, v: Array, s: Array, c: Ctx, cfg: Any) -> Blocks:
    """Nothing new on a disabled / stale / toxic / out venue."""
    return v & ~venue_blocked(f, cfg), s


def rule_passivity(f: ShieldFacts, v: Array, s: Array, c: Ctx, cfg: Any) -> Blocks:
    """Maker orders never cross the true book (buy < ask, sell > bid)."""
    ask, bid = f.book_ask, f.book_bid
    passive = jnp.where(
        IS_BUY, jnp.isfinite(ask) & (c.price < ask), jnp.isfinite(bid) & (c.price > bid)
    )
    return v & (passive | ~IS_MM), s


def rule_order_size(f: ShieldFacts, v: Array, s: Array, c: Ctx, cfg: Any) -> Blocks:
    """≤ max order size, on the lot/step grid, ≥ lot, price > 0, ≥ min notional."""
    fdt = s.dtype
    mx = jnp.asarray(cfg.venues.max_order_size).astype(fdt)
    mn = jnp.asarray(cfg.venues.min_notional_usd).astype(fdt)
    s = on_grid(jnp.fmin(s, mx), c.step, c.eps)
    ok = (s >= c.lot) & (s > 0.0) & (c.price > 0.0) & (s * c.price >= mn)
    return v & ok, s


def rule_ioc_caps(f: ShieldFacts, v: Array, s: Array, c: Ctx, cfg: Any) -> Blocks:
    """Exit and hedge per-venue and per-tick caps."""
    fdt = s.dtype
    ex_cap = jnp.asarray(cfg.exit.max_venue_tao_per_tick, fdt)
    hd_cap = jnp.asarray(cfg.hedge.max_venue_tao_per_tick, fdt)
    s = jnp.fmin(s, jnp.where(IS_EX, ex_cap, jnp.where(IS_HD, hd_cap, jnp.inf)))
    v = v & (s > 0.0)
    b_ex = clean_budget(cfg.exit.max_total_tao_per_tick, fdt)
    b_hd = clean_budget(cfg.hedge.max_step, fdt)
    subject = v & (IS_EX | IS_HD)
    excl = excl_by_venue(_need(subject, s, None))
    return budget_cut(v, s, subject, None, excl, jnp.where(IS_HD, b_hd, b_ex), c)


def rule_liquidation(f: ShieldFacts, v: Array, s: Array, c: Ctx, cfg: Any) -> Blocks:
    """dist_liq ≤ LIQ_CRIT ⇒ only reductions of that venue's position, ≤ |q_v|."""
    crit = ~(f.dist_liq_sigma > cfg.risk.liq_crit_sigma)  # [N]
    v = v & ~(crit & ~(c.side * f.position_tao < 0.0))
    subject = v & crit & BUDGETED
    excl = excl_by_kind(_need(subject, s, None))
    b = clean_budget(jnp.abs(f.position_tao), s.dtype)
    return budget_cut(v, s, subject, None, excl, b, c)


def _global_limit(
    breach: Array, keep: Array, v: Array, s: Array, c: Ctx, unit: Array | None, budget: Array
) -> Blocks:
    """A global limit: if `breach`, drop what is not `keep` and share one budget over every
    budgeted entry (Σ unit·size ≤ budget, greedy in layout order)."""
    v1 = v & keep
    subject = v1 & BUDGETED
    excl = excl_global(_need(subject, s, unit))
    v1, s1 = budget_cut(v1, s, subject, unit, excl, budget, c)
    return jnp.where(breach, v1, v), jnp.where(breach, s1, s)


def rule_delta_limit(f: ShieldFacts, v: Array, s: Array, c: Ctx, cfg: Any) -> Blocks:
    """|Δ$| ≥ L_delta ⇒ nothing adding to the delta; reductions ≤ the position."""
    fdt = s.dtype
    dd = f.dollar_delta_usd
    breach = ~(jnp.abs(dd) < f.delta_limit_usd)
    d = jnp.where(dd < 0, -1.0, 1.0).astype(fdt)
    budget = clean_budget(d * f.q_global_tao, fdt)
    return _global_limit(breach, c.side * d < 0.0, v, s, c, None, budget)


def rule_basis_limit(f: ShieldFacts, v: Array, s: Array, c: Ctx, cfg: Any) -> Blocks:
    """|B| ≥ B_hard ⇒ nothing growing |B|; reductions move B by ≤ |B|."""
    fdt = s.dtype
    bb = f.basis_usd
    breach = ~(jnp.abs(bb) < f.basis_limit_hard_usd)
    d = jnp.where(bb < 0, -1.0, 1.0).astype(fdt)
    b = basis_per_venue(f)  # [N]
    budget = clean_budget(jnp.abs(bb), fdt)
    return _global_limit(breach, d * c.side * b <= 0.0, v, s, c, jnp.abs(b), budget)


def rule_daily_loss(f: ShieldFacts, v: Array, s: Array, c: Ctx, cfg: Any) -> Blocks:
    """Loss limit hit ⇒ only orders reducing |q_t|, together ≤ |q_t|."""
    fdt = s.dtype
    breach = ~(f.daily_pnl_total > -abs(cfg.risk.daily_loss_limit))
    qt = f.q_global_tao
    budget = clean_budget(jnp.abs(qt), fdt)
    return _global_limit(breach, c.side * qt < 0.0, v, s, c, None, budget)


# (rule index, rule function): the reference's pipeline, rule for rule (same names)
PIPELINE: tuple[tuple[int, Callable[..., Blocks]], ...] = tuple(
    (r, globals()[fn.__name__]) for r, fn in reference.PIPELINE
)


# Bit e of the change word of an entry: pipeline step e changed it. RULE_BITS[r]: rule r's bits.
# (The kill switch's forced cancels of resting orders are counted apart: `_with_forced`.)
N_STEPS = len(PIPELINE)
ENTRY_RULE = np.array([r for r, _ in PIPELINE])
RULE_BITS = np.array([sum(1 << e for e in np.flatnonzero(ENTRY_RULE == r)) for r in range(N_RULES)])
VALID_BIT = 30  # the entry's validity, carried in the word between stages
# steps after which the pipeline state is materialised: the next step reads other entries
# (running totals), which would otherwise re-derive the whole state per read
BARRIER_AFTER = frozenset({5, 6, 7, 8, 9})


def materialize(x: Array) -> Array:
    """`x` ([7, N]), computed once into memory. XLA on CPU has no multi-output fusion and
    re-derives a cheap value inside every fused consumer (and every element a consumer reads);
    a scatter is never fused into its consumers, and this one writes `x[0, 0]` onto itself.
    (`paraphina_jax.utils.fusion.materialize`, the engine's boundary, measured no faster here:
    this boundary also sits after every running-total stage, where a scatter is as cheap.)"""
    return x.at[0, 0].set(x[0, 0])


def _pack(valid: Array, size: Array, word: Array) -> tuple[Array, Array]:
    w = (word & ~(1 << VALID_BIT)) | (valid.astype(jnp.int32) << VALID_BIT)
    return materialize(size), materialize(w)


def _unpack(size: Array, w: Array) -> tuple[Array, Array, Array]:
    return ((w >> VALID_BIT) & 1) == 1, size, w & ~(1 << VALID_BIT)


def shield_blocks(
    facts: ShieldFacts, valid: Array, size: Array, c: Ctx, cfg: StrategyConfig
) -> tuple[Array, Array, Array]:
    """Run :data:`PIPELINE` on `[7, N]` blocks (sizes of invalid entries must be 0).

    Returns `(valid [7, N], size [7, N] (0 where dropped), word [7, N] int32)`: bit e of an
    entry's change word is set when pipeline step e dropped or resized it.
    """
    word = jnp.zeros(valid.shape, jnp.int32)
    for e, (_, fn) in enumerate(PIPELINE):
        v, s = fn(facts, valid, size, c, cfg)
        ch = valid & ~v if s is size else (valid & ~v) | (v & (s != size))
        word = word | (ch.astype(jnp.int32) << e)
        valid, size = v, s
        if e in BARRIER_AFTER:
            valid, size, word = _unpack(*_pack(valid, size, word))
    return _unpack(*_pack(valid, jnp.where(valid, size, 0.0), word))


def counts_of(word: Array) -> Array:
    """[R] int32 interventions per rule from the `[7, N]` change words (one per bit set).

    The bits are spread into fields wide enough to count 7N entries, as many per int32 as fit,
    summed over the entries in one reduction, and the fields read back."""
    width = int(word.size).bit_length()
    per_int = 30 // width
    e_n = N_STEPS
    groups = [range(g, min(g + per_int, e_n)) for g in range(0, e_n, per_int)]
    packed = []
    for grp in groups:
        p = jnp.zeros_like(word)
        for i, e in enumerate(grp):
            p = p | (((word >> e) & 1) << (width * i))
        packed.append(p)
    tot = jnp.sum(jnp.stack(packed), axis=(1, 2), dtype=jnp.int32)  # [G]
    mask = (1 << width) - 1
    per = [(tot[g] >> (width * i)) & mask for g, grp in enumerate(groups) for i in range(len(grp))]
    by_rule = [
        sum((per[e] for e in np.flatnonzero(ENTRY_RULE == r)), jnp.int32(0)) for r in range(N_RULES)
    ]
    return jnp.stack(by_rule).astype(jnp.int32)


def venue_mask_of(word: Array) -> Array:
    """[R, N] bool venues where each rule changed something."""
    return jnp.any((word[None] & RULE_BITS[:, None, None]) != 0, axis=1)


# ---------------------------------------------------------------------------------------------
# Flat orders and TickOutput <-> blocks, the hook
# ---------------------------------------------------------------------------------------------


def shield_orders(
    facts: ShieldFacts, orders: ShieldOrders, layout: OrderLayout, cfg: StrategyConfig
) -> tuple[ShieldOrders, ShieldRecord]:
    """Run :data:`PIPELINE` on one flat `[K]` order list (standard layout); count and locate
    every change per rule."""
    fdt = orders.size.dtype
    valid = to_blocks(orders.valid, layout)
    price = to_blocks(orders.price, layout)
    c = make_ctx(to_blocks(orders.side, layout), price, cfg, fdt)
    v, s, word = shield_blocks(facts, valid, to_blocks(orders.size, layout), c, cfg)
    out = ShieldOrders(
        valid=to_flat(v),
        side=orders.side,
        size=to_flat(s),
        price=to_flat(jnp.where(v, price, 0.0)),
    )
    return out, ShieldRecord(interventions=counts_of(word), venue_mask=venue_mask_of(word))


def blocks_from_actions(out: TickOutput, fdt: Any) -> tuple[Array, Array, Array, Array]:
    """`(valid, side, size, price)` `[7, N]` blocks of one environment's `TickOutput`; entries
    that are not valid get size = price = 0 (as `safety_shield.reference.flatten_actions`)."""
    q, o = out.quotes, out.orders
    plans = (out.kill_exit, out.exits, out.hedge)
    n = q.bid_px.shape[0]
    valid = jnp.stack(
        [p.valid for p in plans] + [o.place[:, 0], o.place[:, 1], q.bid_valid, q.ask_valid]
    )
    side = jnp.stack(
        [jnp.broadcast_to(jnp.asarray(p.side, jnp.int32), (n,)) for p in plans]
        + [jnp.full((n,), x, jnp.int32) for x in BLOCK_SIDE[3:]]
    )

    def f(x: Array) -> Array:
        return x.astype(fdt)

    size = jnp.stack(
        [f(p.size) for p in plans]
        + [f(o.place_size[:, 0]), f(o.place_size[:, 1]), f(q.bid_size), f(q.ask_size)]
    )
    price = jnp.stack(
        [f(p.price) for p in plans]
        + [f(o.place_px[:, 0]), f(o.place_px[:, 1]), f(q.bid_px), f(q.ask_px)]
    )
    zero = jnp.zeros((), fdt)
    return valid, side, jnp.where(valid, size, zero), jnp.where(valid, price, zero)


def actions_from_blocks(
    out: TickOutput, valid: Array, size: Array, price: Array, facts: ShieldFacts
) -> tuple[TickOutput, Array]:
    """Write the shielded `[7, N]` blocks back into `out` (mirror of the reference's
    `unflatten_actions`). Returns `(TickOutput, forced [N, 2] bool)` — cancels the kill rule
    added."""
    n = valid.shape[1]

    def cast(x: Array, like: Array) -> Array:
        return x.astype(like.dtype)

    def plan(p: Any, r: int, with_order: bool) -> Any:
        val = valid[r]
        new = p.replace(valid=val, size=cast(size[r], p.size), price=cast(price[r], p.price))
        if with_order:
            new = new.replace(order=jnp.where(val, p.order, n).astype(p.order.dtype))
        return new

    place = valid[3:5].T  # [N, 2]
    od = out.orders
    dropped_place = od.place & ~place
    kill_cancel = facts.kill_switch & facts.mm_has
    forced = kill_cancel & ~od.cancel & ~dropped_place
    orders_out = od.replace(
        cancel=od.cancel | dropped_place | kill_cancel,
        place=place,
        place_px=cast(price[3:5].T, od.place_px),
        place_size=cast(size[3:5].T, od.place_size),
    )
    qt = out.quotes
    quotes = qt.replace(
        bid_valid=valid[5],
        ask_valid=valid[6],
        bid_size=cast(size[5], qt.bid_size),
        ask_size=cast(size[6], qt.ask_size),
        bid_px=cast(price[5], qt.bid_px),
        ask_px=cast(price[6], qt.ask_px),
    )
    new = out.replace(
        quotes=quotes,
        orders=orders_out,
        order_ids=jnp.where(place, out.order_ids, -1).astype(out.order_ids.dtype),
        kill_exit=plan(out.kill_exit, 0, True),
        exits=plan(out.exits, 1, True),
        hedge=plan(out.hedge, 2, False),
    )
    return new, forced


def _shield(
    state: StrategyState, out: TickOutput, view: Any, cfg: StrategyConfig
) -> tuple[TickOutput, Array, Array]:
    """Shielded actions, the `[7, N]` change words and the kill switch's forced cancels
    `[N, 2]` (resting orders it cancelled; counted by :func:`_with_forced`)."""
    fdt = state.venues.mid.dtype
    # The facts are read by every rule's kernel: computed once (the exposures and the MM slots
    # would otherwise be re-derived inside each of them).
    facts = materialize_tree(facts_from_state(state, view, cfg))
    valid, side, size, price = blocks_from_actions(out, fdt)
    c = make_ctx(side, price, cfg, fdt)
    v, s, word = shield_blocks(facts, valid, size, c, cfg)
    new, forced = actions_from_blocks(out, v, s, jnp.where(v, price, 0.0), facts)
    return new, word, forced


def _with_forced(counts: Array, forced: Array) -> Array:
    """Per-rule counts plus the forced cancels, charged to the kill switch."""
    n_forced = jnp.sum(forced, dtype=jnp.int32)
    return counts + jnp.where(jnp.arange(N_RULES) == RULE_KILL_SWITCH, n_forced, 0)


def shield_actions(
    state: StrategyState, out: TickOutput, view: Any, cfg: StrategyConfig
) -> tuple[TickOutput, ShieldRecord]:
    """The whole shield on one environment: `(allowed TickOutput, ShieldRecord)`."""
    new, word, forced = _shield(state, out, view, cfg)
    mask = venue_mask_of(word)
    mask = mask.at[RULE_KILL_SWITCH].set(mask[RULE_KILL_SWITCH] | jnp.any(forced, axis=1))
    return new, ShieldRecord(interventions=_with_forced(counts_of(word), forced), venue_mask=mask)


def shield_hook(
    state: StrategyState, out: TickOutput, view: Any, cfg: StrategyConfig
) -> tuple[TickOutput, Array]:
    """Episode hook: `(allowed actions, interventions per rule [R] int32)`, one environment."""
    new, word, forced = _shield(state, out, view, cfg)
    return new, _with_forced(counts_of(word), forced)


def facts_from_state(state: StrategyState, view: Any, cfg: StrategyConfig) -> ShieldFacts:
    """Facts for one environment (mirror of the reference; `now` = `view.now_ms`)."""
    v = state.venues
    fdt = v.mid.dtype
    now = jnp.asarray(view.now_ms, v.last_mid_update_ms.dtype)
    age = jnp.where(v.has_mid_update, now - v.last_mid_update_ms, -1)
    fair = jnp.where(state.has_fair_value, state.fair_value, state.fair_value_prev)
    return ShieldFacts(
        now_ms=now,
        kill_switch=jnp.asarray(state.kill_switch, bool),
        risk_regime=state.risk_regime,
        q_global_tao=state.q_global_tao.astype(fdt),
        dollar_delta_usd=state.dollar_delta_usd.astype(fdt),
        basis_usd=state.basis_usd.astype(fdt),
        daily_pnl_total=state.daily_pnl_total.astype(fdt),
        delta_limit_usd=state.delta_limit_usd.astype(fdt),
        basis_limit_hard_usd=state.basis_limit_hard_usd.astype(fdt),
        fair_value=fair.astype(fdt),
        status=v.status,
        dev_disabled=v.dev_disabled,
        toxicity=v.toxicity.astype(fdt),
        mid_age_ms=age,
        position_tao=v.position_tao.astype(fdt),
        dist_liq_sigma=v.dist_liq_sigma.astype(fdt),
        mid=v.mid.astype(fdt),
        has_mid=v.has_mid,
        mm_has=v.mm_has,
        book_bid=jnp.asarray(view.bid).astype(fdt),
        book_ask=jnp.asarray(view.ask).astype(fdt),
        outage=jnp.asarray(view.outage, bool),
    )


# The episode telemetry records what the shield decided on (the audit's exact "shield" block).
shield_hook.facts_fn = facts_from_state  # type: ignore[attr-defined]
