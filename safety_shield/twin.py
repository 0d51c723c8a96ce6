"""The shield's JAX twin: the same rules, operations and order as :mod:`safety_shield.reference`.

Pure functions on ONE environment (callers `jax.vmap`); every branch on a traced value is a
`jnp.where`, so the program has fixed shapes and no host round trips. In float64 the twin takes
exactly the reference's decisions (masks and counts equal) and the same sizes bit for bit
(tests/test_shield_properties.py, tests/test_shield_rules.py, experiments/bench/shield_fuzz.py).

Speed (experiments/bench/shield_micro.py, shield_overhead.py): the rules work on `[7, N]` blocks
(:mod:`safety_shield.twin_rules`) with the batch as a trailing lane axis: the pipeline is a
`jax.custom_batching.custom_vmap` function (:func:`shield_core`, via
`paraphina_jax.utils.lanes.lanes_last`) whose batching rule moves the batch axis of its inputs
last and runs the rules once on `[7, N, B]` arrays (one environment runs as `B = 1`). Vmapped the
ordinary way, XLA on CPU would vectorise each rule along the innermost, 5-wide venue axis. The
state between rules is `(valid, size)`; bit e of an entry's `[7, N]` int32 change word says that
pipeline step e dropped or resized it; the words are written once and read by the per-rule
counts (explicit adds over the entries) and venue masks. XLA on CPU has no multi-output
fusion: a value read by several fused consumers, or at other entries (running totals), is
recomputed in each.
So after every rule with running totals (and at the end) the state is materialised as ONE
array, the size or −1 where dropped (:func:`_snapshot`): one kernel evaluates the rule, and the
change bits of those steps are read off consecutive snapshots instead of re-evaluating it.

* :func:`shield_hook` — the episode's `shield_fn(state, out, view, cfg) -> (out, counts [R])`;
* :func:`shield_actions` — the same with the full :class:`~safety_shield.types.ShieldRecord`;
* :func:`shield_orders` — the rule pipeline on a flat order list (what the fuzz bench drives);
The control-surface rule (`clip_controls`, `shielded_controls_fn`) is :mod:`safety_shield.controls`.
"""

from __future__ import annotations

import functools
from typing import Any

import jax.numpy as jnp
import numpy as np

from paraphina_jax.config.types import StrategyConfig
from paraphina_jax.strategy.types import StrategyState, TickOutput
from paraphina_jax.utils.fusion import materialize_tree
from paraphina_jax.utils.lanes import lanes_last
from safety_shield.twin_rules import (
    PIPELINE,
    Ctx,
    ShieldParams,
    make_ctx,
    shield_params,
    to_blocks,
    to_flat,
)
from safety_shield.types import (
    BLOCK_SIDE,
    N_RULES,
    RULE_KILL_SWITCH,
    OrderLayout,
    ShieldFacts,
    ShieldOrders,
    ShieldRecord,
)

Array = Any

__all__ = [
    "PIPELINE",
    "counts_of",
    "facts_from_state",
    "shield_actions",
    "shield_blocks",
    "shield_core",
    "shield_hook",
    "shield_orders",
    "to_blocks",
    "to_flat",
    "venue_mask_of",
]

# Bit e of the change word of an entry: pipeline step e changed it. RULE_BITS[r]: rule r's bits.
# (The kill switch's forced cancels of resting orders are counted apart: `_with_forced`.)
N_STEPS = len(PIPELINE)
ENTRY_RULE = np.array([r for r, _ in PIPELINE])
RULE_BITS = np.array([sum(1 << e for e in np.flatnonzero(ENTRY_RULE == r)) for r in range(N_RULES)])
# steps after which the pipeline state is materialised: the next step reads other entries
# (running totals), which would otherwise re-derive the whole state per read. The last step's
# state is materialised too (it is the output).
BARRIER_AFTER = frozenset({5, 6, 7, 8, 9, 10, N_STEPS - 1})
DROPPED = -1.0  # the encoded size of a dropped entry


def materialize(x: Array) -> Array:
    """`x` ([7, N, L]), computed once into memory. XLA on CPU has no multi-output fusion and
    re-derives a cheap value inside every fused consumer (and every element a consumer reads);
    a scatter is never fused into its consumers, and this one writes `x[0, 0]` onto itself.
    (`paraphina_jax.utils.fusion.materialize`, the engine's boundary, measured no faster here:
    this boundary also sits after every running-total stage, where a scatter is as cheap.)"""
    return x.at[0, 0].set(x[0, 0])


def _snapshot(valid: Array, size: Array) -> tuple[Array, Array]:
    """The state `(valid, size)` after a barrier step, computed once as ONE array: the size, or
    :data:`DROPPED` where the entry is dropped (from step 5 on a kept entry's size is ≥ 0, so
    nothing is lost). One kernel evaluates the step, where two outputs would evaluate it twice;
    the change bits are then read off consecutive snapshots."""
    enc = materialize(jnp.where(valid, size, jnp.asarray(DROPPED, size.dtype)))
    v = enc >= 0.0
    return v, jnp.where(v, enc, jnp.zeros((), size.dtype))


def shield_blocks(
    facts: ShieldFacts, valid: Array, size: Array, c: Ctx, p: ShieldParams
) -> tuple[Array, Array, Array]:
    """Run :data:`PIPELINE` on `[7, N, L]` blocks (lanes last, module docstring of
    :mod:`safety_shield.twin_rules`; sizes of invalid entries must be 0).

    Returns `(valid, size (0 where dropped), word int32)`, each `[7, N, L]`: bit e of an
    entry's change word is set when pipeline step e dropped or resized it. A rule sees the sizes
    of entries dropped before it as 0 (every rule masks them out).
    """
    word = jnp.zeros(valid.shape, jnp.int32)
    for e, (_, fn) in enumerate(PIPELINE):
        v, s = fn(facts, valid, size, c, p)
        same_size = s is size
        if e in BARRIER_AFTER:
            v, s = _snapshot(v, s)
            same_size = False
        ch = valid & ~v if same_size else (valid & ~v) | (v & (s != size))
        word = word | (ch.astype(jnp.int32) << e)
        valid, size = v, s
    return valid, size, word


def counts_of(word: Array) -> Array:
    """`[R, *L]` int32 interventions per rule from the `[7, N, *L]` change words (one per bit
    set; `L`: optional lane axes).

    The bits are spread into fields wide enough to count 7N entries, as many per int32 as fit,
    summed over the entries, and the fields read back."""
    width = int(word.shape[0] * word.shape[1]).bit_length()
    per_int = 30 // width
    e_n = N_STEPS
    groups = [range(g, min(g + per_int, e_n)) for g in range(0, e_n, per_int)]
    packed = []
    for grp in groups:
        p = jnp.zeros_like(word)
        for i, e in enumerate(grp):
            p = p | (((word >> e) & 1) << (width * i))
        packed.append(p)
    # [G, *L]: explicit adds over the entries (integers: any order is exact). With the lanes
    # innermost this is elementwise along the batch; a reduction over the two leading axes
    # measured 4x slower on XLA:CPU.
    pk = jnp.stack(packed)  # [G, 7, N, *L]
    tot = pk[:, 0, 0]
    for r in range(word.shape[0]):
        for v in range(word.shape[1]):
            if r or v:
                tot = tot + pk[:, r, v]
    mask = (1 << width) - 1
    per = [(tot[g] >> (width * i)) & mask for g, grp in enumerate(groups) for i in range(len(grp))]
    by_rule = [
        sum((per[e] for e in np.flatnonzero(ENTRY_RULE == r)), jnp.zeros_like(per[0]))
        for r in range(N_RULES)
    ]
    return jnp.stack(by_rule).astype(jnp.int32)


def venue_mask_of(word: Array) -> Array:
    """`[R, N, *L]` bool venues where each rule changed something (`word`: `[7, N, *L]`)."""
    # OR distributes over AND: a rule touched venue v in some row iff its bits meet the OR of
    # that venue's words over the rows (explicit ORs: no reduction over a leading axis).
    orw = word[0]
    for r in range(1, word.shape[0]):
        orw = orw | word[r]
    bits = RULE_BITS.reshape((-1,) + (1,) * (word.ndim - 1))
    return (orw[None] & bits) != 0


def _lanes_core(
    facts: ShieldFacts, p: ShieldParams, blocks: tuple[Any, ...], kill_best_effort: bool
) -> tuple[Array, Array, Array, Array, Array]:
    """The pipeline on lane-last inputs; `blocks` = `(valid, side, size, price)`, each
    `[7, N, L]` or a tuple of 7 `[N, L]` rows (stacked here, so the stack writes the lanes
    layout). Returns `(valid, size, word)` `[7, N, L]`, counts `[R, L]` and the prices
    `[7, N, L]`. Entries that are not valid get size = price = 0 (as
    `safety_shield.reference.flatten_actions`)."""
    valid, side, size, price = (jnp.stack(x) for x in blocks)
    zero = jnp.zeros((), size.dtype)
    size, price = jnp.where(valid, size, zero), jnp.where(valid, price, zero)
    c = make_ctx(side, price, p, size.dtype, kill_best_effort)
    v, s, word = shield_blocks(facts, valid, size, c, p)
    # read by the counts and the venue masks: computed once (each would re-derive every
    # pipeline step's comparisons per element it reads)
    word = materialize(word)
    return v, s, word, counts_of(word), price


@functools.cache
def _core_fn(kill_best_effort: bool) -> Any:
    """:func:`shield_core` for one value of the static kill-exit flag."""
    return lanes_last(functools.partial(_lanes_core, kill_best_effort=kill_best_effort))


def shield_core(
    facts: ShieldFacts,
    p: ShieldParams,
    valid: Array,
    side: Array,
    size: Array,
    price: Array,
    kill_best_effort: bool,
) -> tuple[Array, Array, Array, Array, Array]:
    """:data:`PIPELINE` on one environment's `[7, N]` blocks (invalid entries are zeroed).

    Returns `(valid, size, word)` `[7, N]` (:func:`shield_blocks`), the counts per rule `[R]`
    int32 and the prices `[7, N]` (0 where not valid on input). Under `jax.vmap` the whole
    batch runs lane-last (module docstring). The blocks may be given as tuples of 7 `[N]` rows."""
    return _core_fn(bool(kill_best_effort))(facts, p, (valid, side, size, price))


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
    p = shield_params(cfg, fdt, facts.mid_age_ms.dtype)
    v, s, word, _, _ = shield_core(
        facts, p, valid, to_blocks(orders.side, layout), to_blocks(orders.size, layout), price,
        cfg.flags.kill_best_effort,
    )  # fmt: skip
    out = ShieldOrders(
        valid=to_flat(v),
        side=orders.side,
        size=to_flat(s),
        price=to_flat(jnp.where(v, price, 0.0)),
    )
    return out, ShieldRecord(interventions=counts_of(word), venue_mask=venue_mask_of(word))


def blocks_from_actions(out: TickOutput, fdt: Any) -> tuple[Any, Any, Any, Any]:
    """`(valid, side, size, price)` of one environment's `TickOutput` as 7 `[N]` rows each
    (the `[7, N]` block rows; :func:`shield_core` stacks them)."""
    q, o = out.quotes, out.orders
    plans = (out.kill_exit, out.exits, out.hedge)
    n = q.bid_px.shape[0]
    valid = tuple(p.valid for p in plans) + (o.place[:, 0], o.place[:, 1], q.bid_valid, q.ask_valid)
    side = tuple(jnp.broadcast_to(jnp.asarray(p.side, jnp.int32), (n,)) for p in plans) + tuple(
        jnp.full((n,), x, jnp.int32) for x in BLOCK_SIDE[3:]
    )

    def f(x: Array) -> Array:
        return x.astype(fdt)

    size = tuple(f(p.size) for p in plans) + (
        f(o.place_size[:, 0]), f(o.place_size[:, 1]), f(q.bid_size), f(q.ask_size)
    )  # fmt: skip
    price = tuple(f(p.price) for p in plans) + (
        f(o.place_px[:, 0]), f(o.place_px[:, 1]), f(q.bid_px), f(q.ask_px)
    )  # fmt: skip
    return valid, side, size, price


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
) -> tuple[TickOutput, Array, Array, Array]:
    """Shielded actions, the `[7, N]` change words, the counts per rule `[R]` (without the
    forced cancels) and the kill switch's forced cancels `[N, 2]` (resting orders it
    cancelled; counted by :func:`_with_forced`)."""
    fdt = state.venues.mid.dtype
    # The facts are read by every rule's kernel: computed once (the exposures and the MM slots
    # would otherwise be re-derived inside each of them).
    facts = materialize_tree(facts_from_state(state, view, cfg))
    valid, side, size, price = blocks_from_actions(out, fdt)
    p = shield_params(cfg, fdt, facts.mid_age_ms.dtype)
    v, s, word, counts, price = shield_core(
        facts, p, valid, side, size, price, cfg.flags.kill_best_effort
    )
    new, forced = actions_from_blocks(out, v, s, jnp.where(v, price, 0.0), facts)
    return new, word, counts, forced


def _with_forced(counts: Array, forced: Array) -> Array:
    """Per-rule counts plus the forced cancels, charged to the kill switch."""
    n_forced = jnp.sum(forced, dtype=jnp.int32)
    return counts + jnp.where(jnp.arange(N_RULES) == RULE_KILL_SWITCH, n_forced, 0)


def shield_actions(
    state: StrategyState, out: TickOutput, view: Any, cfg: StrategyConfig
) -> tuple[TickOutput, ShieldRecord]:
    """The whole shield on one environment: `(allowed TickOutput, ShieldRecord)`."""
    new, word, counts, forced = _shield(state, out, view, cfg)
    mask = venue_mask_of(word)
    mask = mask.at[RULE_KILL_SWITCH].set(mask[RULE_KILL_SWITCH] | jnp.any(forced, axis=1))
    return new, ShieldRecord(interventions=_with_forced(counts, forced), venue_mask=mask)


def shield_hook(
    state: StrategyState, out: TickOutput, view: Any, cfg: StrategyConfig
) -> tuple[TickOutput, Array]:
    """Episode hook: `(allowed actions, interventions per rule [R] int32)`, one environment."""
    new, _, counts, forced = _shield(state, out, view, cfg)
    return new, _with_forced(counts, forced)


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
