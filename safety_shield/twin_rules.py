"""The shield twin's rules on `[7, N]` blocks: the same rules, operations and order as
:mod:`safety_shield.rules` (same names), and the block layout they work on.

The flat `[K]` list (K = 7N, safety_shield/types.py) is held as a `[7, N]` block array
(`types.block_index`), one row per kind and MM side, so that per-venue facts broadcast as `[N]`
rows and per-kind constants as static columns: no gather and no concatenation per rule.

Every array here carries a trailing **lane** axis `L` (the environments of a batch, or 1 for
one environment): blocks are `[7, N, L]`, per-venue facts and parameters `[N, L]` (or
`[N, 1]`), per-environment scalars `[L]` (or `[1]`), static per-row columns `[7, 1, 1]`. With
the batch innermost, XLA on CPU vectorises the rules along the batch instead of along the
5-wide venue axis (:mod:`safety_shield.twin` moves the batch there). Indexing and stacking act
on the leading axes only, so the rules read as per-environment code.

Each rule is `(facts, valid, size, ctx, params) -> (valid, size)`; prices are never edited, and
sizes of dropped entries are left as they are (every later use is masked by `valid`). The limit
budgets' running totals are explicit sums in layout order on static slices (the reference's
cumulative sum, addition for addition). The pipeline that runs them is :mod:`safety_shield.twin`.
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
from safety_shield import reference
from safety_shield.types import (
    BLOCK_KIND,
    BLOCK_MM_SIDE,
    IOC_STEP_FLOOR,
    KIND_EXIT,
    KIND_HEDGE,
    KIND_KILL_EXIT,
    KIND_PLACE,
    KIND_QUOTE,
    MM_LOT_FLOOR,
    OrderLayout,
    ShieldFacts,
    block_index,
    order_layout,
    tolerances,
)

Array = Any

# ---------------------------------------------------------------------------------------------
# Block layout: the flat list as [7, N] (row r, venue v)
# ---------------------------------------------------------------------------------------------


def _col(mask: np.ndarray) -> np.ndarray:
    """A static per-row `[7]` array as a `[7, 1, 1]` column (broadcasts over venues and lanes)."""
    return np.asarray(mask)[:, None, None]


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


class ShieldParams(NamedTuple):
    """The config values the rules read, cast to the types the rules compare them in (per
    environment: `[N]` or `[]`; the leaves may be traced, e.g. a batch of configs)."""

    lot: Array  # [N] f  lot size
    size_step: Array  # [N] f
    max_order: Array  # [N] f  max order size (TAO)
    min_notional: Array  # [N] f  USD
    stale_ms: Array  # [N] i  book staleness threshold (override, else book_stale_ms)
    tox_high: Array  # [] f  TOX_HIGH
    ex_cap: Array  # [] f  exit per-venue cap per tick
    hd_cap: Array  # [] f  hedge per-venue cap per tick
    b_ex: Array  # [] f  exit total per tick (clean budget)
    b_hd: Array  # [] f  HEDGE_MAX_STEP (clean budget)
    liq_crit: Array  # [] f  LIQ_CRIT (σ)
    loss_floor: Array  # [] f  −|daily_loss_limit|


def shield_params(cfg: StrategyConfig, fdt: Any, idt: Any) -> ShieldParams:
    """:class:`ShieldParams` of `cfg` (`fdt`: the order float dtype, `idt`: the ms int dtype)."""
    ov = jnp.asarray(cfg.venues.stale_override_ms)
    stale = jnp.where(ov >= 0, ov, jnp.asarray(cfg.book.book_stale_ms, ov.dtype))

    def f(x: Any) -> Array:
        return jnp.asarray(x).astype(fdt)

    return ShieldParams(
        lot=f(cfg.venues.lot_size),
        size_step=f(cfg.venues.size_step),
        max_order=f(cfg.venues.max_order_size),
        min_notional=f(cfg.venues.min_notional_usd),
        stale_ms=stale.astype(idt),
        tox_high=f(cfg.toxicity.tox_high_threshold),
        ex_cap=f(cfg.exit.max_venue_tao_per_tick),
        hd_cap=f(cfg.hedge.max_venue_tao_per_tick),
        b_ex=clean_budget(cfg.exit.max_total_tao_per_tick, fdt),
        b_hd=clean_budget(cfg.hedge.max_step, fdt),
        liq_crit=f(cfg.risk.liq_crit_sigma),
        loss_floor=-jnp.abs(f(cfg.risk.daily_loss_limit)),
    )


def venue_blocked(facts: ShieldFacts, p: ShieldParams) -> Array:
    """[N] bool: disabled / deviation-disabled / toxic / stale / out venues."""
    status_ok = (facts.status == STATUS_HEALTHY) | (facts.status == STATUS_WARNING)
    toxic = ~(facts.toxicity < p.tox_high)
    age = facts.mid_age_ms
    stale = (age < 0) | (age > p.stale_ms)
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
    kill_best_effort: bool  # the §16.5 bounded reduce-only kill exit is allowed (static)


def make_ctx(side: Array, price: Array, p: ShieldParams, fdt: Any, kill_best_effort: bool) -> Ctx:
    """The rules' context from the `[7, N]` side codes and prices."""
    lot = p.lot
    stp = p.size_step
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
        kill_best_effort=bool(kill_best_effort),
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
# Rules (mirror safety_shield.rules, same names): (facts, valid, size, ctx, params) -> (valid, size)
# on [7, N] blocks; sizes of dropped entries are left as they are.
# ---------------------------------------------------------------------------------------------

Blocks = tuple[Array, Array]  # (valid [7, N] bool, size [7, N] f)


def rule_non_finite(f: ShieldFacts, v: Array, s: Array, c: Ctx, p: ShieldParams) -> Blocks:
    """Non-finite price/size or a side code other than ±1 ⇒ dropped."""
    return v & jnp.isfinite(s) & jnp.isfinite(c.price) & c.side_ok, s


def rule_kill_switch(f: ShieldFacts, v: Array, s: Array, c: Ctx, p: ShieldParams) -> Blocks:
    """Kill ⇒ nothing new; one bounded reduce-only kill exit (the first allowed) if enabled."""
    killed = f.kill_switch
    v = v & jnp.where(killed, IS_KE, ~IS_KE)
    ke = v[0] & (c.side[0] * f.position_tao < 0.0) & c.kill_best_effort & killed
    seen = jnp.zeros_like(ke[0])
    first = []
    for i in range(ke.shape[0]):
        first.append(ke[i] & ~seen)
        seen = seen | ke[i]
    first = jnp.stack(first)  # [N]
    s0 = jnp.where(first, jnp.fmin(s[0], jnp.abs(f.position_tao)), s[0])
    v0 = first & (s0 > 0.0)
    return jnp.where(IS_KE, v0, v), jnp.where(IS_KE, s0, s)


def rule_hard_limit_quotes(f: ShieldFacts, v: Array, s: Array, c: Ctx, p: ShieldParams) -> Blocks:
    """HardLimit (or an unknown regime) ⇒ no quotes, no places."""
    regime_ok = (f.risk_regime == REGIME_NORMAL) | (f.risk_regime == REGIME_WARNING)
    return v & (regime_ok | ~IS_MM), s


def rule_venue_health(f: ShieldFacts, v: Array, s: Array, c: Ctx, p: ShieldParams) -> Blocks:
    """Nothing new on a disabled / stale / toxic / out venue."""
    return v & ~venue_blocked(f, p), s


def rule_passivity(f: ShieldFacts, v: Array, s: Array, c: Ctx, p: ShieldParams) -> Blocks:
    """Maker orders never cross the true book (buy < ask, sell > bid)."""
    ask, bid = f.book_ask, f.book_bid
    passive = jnp.where(
        IS_BUY, jnp.isfinite(ask) & (c.price < ask), jnp.isfinite(bid) & (c.price > bid)
    )
    return v & (passive | ~IS_MM), s


def rule_order_size(f: ShieldFacts, v: Array, s: Array, c: Ctx, p: ShieldParams) -> Blocks:
    """≤ max order size, on the lot/step grid, ≥ lot, price > 0, ≥ min notional."""
    mx, mn = p.max_order, p.min_notional
    s = on_grid(jnp.fmin(s, mx), c.step, c.eps)
    ok = (s >= c.lot) & (s > 0.0) & (c.price > 0.0) & (s * c.price >= mn)
    return v & ok, s


def rule_ioc_caps(f: ShieldFacts, v: Array, s: Array, c: Ctx, p: ShieldParams) -> Blocks:
    """Exit and hedge per-venue and per-tick caps."""
    ex_cap, hd_cap = p.ex_cap, p.hd_cap
    s = jnp.fmin(s, jnp.where(IS_EX, ex_cap, jnp.where(IS_HD, hd_cap, jnp.inf)))
    v = v & (s > 0.0)
    b_ex, b_hd = p.b_ex, p.b_hd
    subject = v & (IS_EX | IS_HD)
    excl = excl_by_venue(_need(subject, s, None))
    return budget_cut(v, s, subject, None, excl, jnp.where(IS_HD, b_hd, b_ex), c)


def liq_critical(f: ShieldFacts, p: ShieldParams) -> Array:
    """[N] bool: dist_liq ≤ LIQ_CRIT (NaN counts as critical)."""
    return ~(f.dist_liq_sigma > p.liq_crit)


def delta_breach(f: ShieldFacts, p: ShieldParams) -> Array:
    """[] bool: |Δ$| ≥ L_delta (NaN counts as a breach)."""
    return ~(jnp.abs(f.dollar_delta_usd) < f.delta_limit_usd)


def basis_breach(f: ShieldFacts, p: ShieldParams) -> Array:
    """[] bool: |B| ≥ B_hard (NaN counts as a breach)."""
    return ~(jnp.abs(f.basis_usd) < f.basis_limit_hard_usd)


def loss_breach(f: ShieldFacts, p: ShieldParams) -> Array:
    """[] bool: daily PnL at or below −daily_loss_limit (NaN counts as a breach)."""
    return ~(f.daily_pnl_total > p.loss_floor)


def rule_liquidation(f: ShieldFacts, v: Array, s: Array, c: Ctx, p: ShieldParams) -> Blocks:
    """dist_liq ≤ LIQ_CRIT ⇒ only reductions of that venue's position, ≤ |q_v|."""
    crit = liq_critical(f, p)  # [N]
    v = v & ~(crit & ~(c.side * f.position_tao < 0.0))
    subject = v & crit & BUDGETED
    excl = excl_by_kind(_need(subject, s, None))
    b = clean_budget(jnp.abs(f.position_tao), s.dtype)
    return budget_cut(v, s, subject, None, excl, b, c)


class GlobalLimit(NamedTuple):
    """One global limit's terms for an environment (delta, basis or daily loss)."""

    breach: Array  # [] bool
    keep: Array  # [7, N] bool  entries allowed under the breach (reductions)
    unit: Array | None  # budget use per TAO (broadcastable to [7, N]); None = 1
    budget: Array  # [] f  (clean_budget)


def delta_terms(f: ShieldFacts, c: Ctx, p: ShieldParams) -> GlobalLimit:
    """|Δ$| ≥ L_delta ⇒ nothing adding to the delta; reductions ≤ the position."""
    fdt = c.price.dtype
    d = jnp.where(f.dollar_delta_usd < 0, -1.0, 1.0).astype(fdt)
    budget = clean_budget(d * f.q_global_tao, fdt)
    return GlobalLimit(delta_breach(f, p), c.side * d < 0.0, None, budget)


def basis_terms(f: ShieldFacts, c: Ctx, p: ShieldParams) -> GlobalLimit:
    """|B| ≥ B_hard ⇒ nothing growing |B|; reductions move B by ≤ |B|."""
    fdt = c.price.dtype
    bb = f.basis_usd
    d = jnp.where(bb < 0, -1.0, 1.0).astype(fdt)
    b = basis_per_venue(f)  # [N]
    budget = clean_budget(jnp.abs(bb), fdt)
    return GlobalLimit(basis_breach(f, p), d * c.side * b <= 0.0, jnp.abs(b), budget)


def loss_terms(f: ShieldFacts, c: Ctx, p: ShieldParams) -> GlobalLimit:
    """Loss limit hit ⇒ only orders reducing |q_t|, together ≤ |q_t|."""
    fdt = c.price.dtype
    qt = f.q_global_tao
    budget = clean_budget(jnp.abs(qt), fdt)
    return GlobalLimit(loss_breach(f, p), c.side * qt < 0.0, None, budget)


def _global_limit(g: GlobalLimit, v: Array, s: Array, c: Ctx) -> Blocks:
    """A global limit: if breached, drop what is not `keep` and share one budget over every
    budgeted entry (Σ unit·size ≤ budget, greedy in layout order)."""
    v1 = v & g.keep
    subject = v1 & BUDGETED
    excl = excl_global(_need(subject, s, g.unit))
    v1, s1 = budget_cut(v1, s, subject, g.unit, excl, g.budget, c)
    return jnp.where(g.breach, v1, v), jnp.where(g.breach, s1, s)


def rule_delta_limit(f: ShieldFacts, v: Array, s: Array, c: Ctx, p: ShieldParams) -> Blocks:
    """|Δ$| ≥ L_delta ⇒ nothing adding to the delta; reductions ≤ the position."""
    return _global_limit(delta_terms(f, c, p), v, s, c)


def rule_basis_limit(f: ShieldFacts, v: Array, s: Array, c: Ctx, p: ShieldParams) -> Blocks:
    """|B| ≥ B_hard ⇒ nothing growing |B|; reductions move B by ≤ |B|."""
    return _global_limit(basis_terms(f, c, p), v, s, c)


def rule_daily_loss(f: ShieldFacts, v: Array, s: Array, c: Ctx, p: ShieldParams) -> Blocks:
    """Loss limit hit ⇒ only orders reducing |q_t|, together ≤ |q_t|."""
    return _global_limit(loss_terms(f, c, p), v, s, c)


# (rule index, rule function): the reference's pipeline, rule for rule (same names)
PIPELINE: tuple[tuple[int, Callable[..., Blocks]], ...] = tuple(
    (r, globals()[fn.__name__]) for r, fn in reference.PIPELINE
)
