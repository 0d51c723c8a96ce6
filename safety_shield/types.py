"""Safety shield types: rule table, flat order list, facts and records (STRATEGY.md §11–§16).

The shield works on a fixed-shape *flat order list* of `K = 7N` entries built from a
`TickOutput` (N = venues). The layout is static and doubles as the budget priority order of the
limit rules (earlier entries consume a shared budget first):

=========  =========================  ============================================
slots       kind                       source
=========  =========================  ============================================
[0, N)      KIND_KILL_EXIT             `kill_exit` (§16.5), venue ascending
[N, 2N)     KIND_EXIT                  `exits` (§14), venue ascending
[2N, 3N)    KIND_HEDGE                 `hedge` (§15), venue ascending
[3N, 5N)    KIND_PLACE                 `orders.place` (§13), venue asc, buy then sell
[5N, 7N)    KIND_QUOTE                 `quotes` (§11–§12), venue asc, bid then ask
=========  =========================  ============================================

Quotes are the desired MM quotes (not executed themselves); they obey every per-order rule and
the direction part of the limit rules but consume no budget, so that a quote and the place it
produces are not counted twice. Shapes are for one environment; a batch adds a leading `[B]`.
The same classes hold NumPy leaves (reference) and `jax.Array` leaves (twin).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flax import struct

Array = Any  # jax.Array | np.ndarray

# ---------------------------------------------------------------------------------------------
# Rules: stable index -> name. Appending is allowed; renumbering is not.
# ---------------------------------------------------------------------------------------------
RULE_NON_FINITE = 0  # any non-finite price or size (or a side code not ±1) ⇒ dropped
RULE_KILL_SWITCH = 1  # kill latched ⇒ cancels only (+ optional bounded reduce-only exit)
RULE_HARD_LIMIT_QUOTES = 2  # HardLimit regime ⇒ no quotes
RULE_VENUE_HEALTH = 3  # disabled / stale / toxic / out venue ⇒ nothing new there
RULE_PASSIVITY = 4  # maker quotes and places never cross the true book
RULE_ORDER_SIZE = 5  # ≤ max order size, on the lot/step grid, ≥ lot, ≥ min notional
RULE_IOC_CAPS = 6  # exit and hedge totals within their per-tick caps
RULE_LIQUIDATION = 7  # dist_liq ≤ LIQ_CRIT ⇒ only orders reducing that venue's position
RULE_DELTA_LIMIT = 8  # |Δ$| ≥ L_delta ⇒ no order increasing the delta
RULE_BASIS_LIMIT = 9  # |B| ≥ B_hard ⇒ no order increasing |B|
RULE_DAILY_LOSS = 10  # total PnL ≤ −|loss limit| ⇒ only orders reducing |q_t|
RULE_CONTROLS_RANGE = 11  # control-surface values inside the encoded ranges (SIMULATION §6.6)

RULE_NAMES: tuple[str, ...] = (
    "non_finite",
    "kill_switch",
    "hard_limit_quotes",
    "venue_health",
    "passivity",
    "order_size",
    "ioc_caps",
    "liquidation",
    "delta_limit",
    "basis_limit",
    "daily_loss",
    "controls_range",
)
N_RULES = len(RULE_NAMES)

# Order kinds of the flat list.
KIND_KILL_EXIT, KIND_EXIT, KIND_HEDGE, KIND_PLACE, KIND_QUOTE = 0, 1, 2, 3, 4
KIND_NAMES = ("kill_exit", "exit", "hedge", "place", "quote")

# Numerical tolerances (shared by the shield, the twin and the checker).
GRID_EPS = 1e-9  # sizes within GRID_EPS·step of a grid point count as on the grid
BUDGET_RTOL = 1e-9  # a need within BUDGET_RTOL·max(B, 1) of the remaining budget fits
GRID_EPS_F32 = 1e-3  # the same two tolerances for float32 engines (ulp of 2000 ≈ 1.2e-4)
BUDGET_RTOL_F32 = 1e-5
MM_LOT_FLOOR = 1e-9  # §12 step 11: lot floored at 1e-9
IOC_STEP_FLOOR = 1e-12  # §14.2 / §15.3: step_eff = max(size_step, lot, 1e-12)
CONTROL_TOL = 1e-12  # SIMULATION §6.6 clamp tolerance
SUBNORMAL_FLOOR = 1e-300  # control values smaller in magnitude read as 0 (XLA flushes subnormals)
WEIGHT_SUM_TOL = 1e-6  # SIMULATION §6.6 hedge-weight normalisation tolerance

# Encoded control-surface ranges (SIMULATION §6.6).
SPREAD_SCALE_RANGE = (0.5, 3.0)
SIZE_SCALE_RANGE = (0.0, 2.0)
RPRICE_OFFSET_RANGE = (-10.0, 10.0)
HEDGE_SCALE_RANGE = (0.0, 2.0)
HEDGE_WEIGHT_RANGE = (0.0, 1.0)


def tolerances(dtype: Any) -> tuple[float, float]:
    """`(grid_eps, budget_rtol)` for an engine computing in `dtype` (float64 or float32)."""
    if np.dtype(dtype) == np.float64:
        return GRID_EPS, BUDGET_RTOL
    return GRID_EPS_F32, BUDGET_RTOL_F32


@struct.dataclass
class OrderLayout:
    """Static description of the flat order list (NumPy int arrays, `[K]`, K = 7N)."""

    venue: np.ndarray  # [K] i  venue index of each slot
    kind: np.ndarray  # [K] i  KIND_* code
    mm_side: np.ndarray  # [K] i  0 bid/buy, 1 ask/sell for places and quotes; −1 otherwise
    budgeted: np.ndarray  # [K] bool  consumes the limit rules' budgets (all but quotes)
    n: int = struct.field(pytree_node=False, default=5)


def order_layout(n: int) -> OrderLayout:
    """The static flat layout for `n` venues (see the module docstring)."""
    v = np.arange(n, dtype=np.int64)
    mm_v = np.repeat(v, 2)
    mm_s = np.tile(np.array([0, 1], dtype=np.int64), n)
    venue = np.concatenate([v, v, v, mm_v, mm_v])
    kind = np.concatenate(
        [
            np.full(n, KIND_KILL_EXIT),
            np.full(n, KIND_EXIT),
            np.full(n, KIND_HEDGE),
            np.full(2 * n, KIND_PLACE),
            np.full(2 * n, KIND_QUOTE),
        ]
    ).astype(np.int64)
    mm_side = np.concatenate([np.full(3 * n, -1), mm_s, mm_s]).astype(np.int64)
    return OrderLayout(venue=venue, kind=kind, mm_side=mm_side, budgeted=kind != KIND_QUOTE, n=n)


# The same list as a `[7, N]` block array (the JAX twin's working form): row r holds one kind
# (and MM side) for every venue — kill exit, exit, hedge, place buy, place sell, quote bid,
# quote ask — so per-venue values broadcast as rows and per-kind constants as columns.
BLOCK_KIND = np.array(
    [KIND_KILL_EXIT, KIND_EXIT, KIND_HEDGE, KIND_PLACE, KIND_PLACE, KIND_QUOTE, KIND_QUOTE]
)
BLOCK_MM_SIDE = np.array([-1, -1, -1, 0, 1, 0, 1])  # as OrderLayout.mm_side
BLOCK_SIDE = np.array([0, 0, 0, 1, -1, 1, -1])  # side code of the MM rows (IOC rows: the plan's)


def block_index(n: int) -> np.ndarray:
    """[7, N] int: the flat slot (module docstring layout) of each block entry."""
    v = np.arange(n)
    return np.stack(
        [v, n + v, 2 * n + v, 3 * n + 2 * v, 3 * n + 2 * v + 1, 5 * n + 2 * v, 5 * n + 2 * v + 1]
    )


@struct.dataclass
class ShieldOrders:
    """The flat order list; `[K]` each. Dropped entries have `valid = False`, size = price = 0."""

    valid: Array  # [K] bool
    side: Array  # [K] i  +1 buy, −1 sell (anything else is malformed)
    size: Array  # [K] f  TAO
    price: Array  # [K] f  USD/TAO (limit price)


@struct.dataclass
class ShieldFacts:
    """Everything the rules read about one tick (strategy state + the true book)."""

    now_ms: Array  # [] i
    kill_switch: Array  # [] bool
    risk_regime: Array  # [] i  0 Normal, 1 Warning, 2 HardLimit
    q_global_tao: Array  # [] f  q_t
    dollar_delta_usd: Array  # [] f  Δ$
    basis_usd: Array  # [] f  B
    daily_pnl_total: Array  # [] f
    delta_limit_usd: Array  # [] f  stored L_delta (§16.1)
    basis_limit_hard_usd: Array  # [] f  stored B_hard
    fair_value: Array  # [] f  S = fair value, else the previous one (§5.4)
    status: Array  # [N] i  0 Healthy, 1 Warning, 2 Disabled
    dev_disabled: Array  # [N] bool  §16.6 latch
    toxicity: Array  # [N] f
    mid_age_ms: Array  # [N] i  now − last mid update (−1 = never)
    position_tao: Array  # [N] f  q_v
    dist_liq_sigma: Array  # [N] f
    mid: Array  # [N] f  strategy's venue mid (valid where has_mid)
    has_mid: Array  # [N] bool
    mm_has: Array  # [N, 2] bool  MM slots holding an order
    book_bid: Array  # [N] f  true best bid this tick (MarketView)
    book_ask: Array  # [N] f  true best ask this tick
    outage: Array  # [N] bool  venue out this tick (MarketView)


@struct.dataclass
class ShieldRecord:
    """What the shield changed: per rule counts and per rule × venue masks."""

    interventions: Array  # [R] int32  orders (or control values) changed by each rule
    venue_mask: Array  # [R, N] bool  venues where each rule changed something


def empty_record(n: int, xp: Any = np) -> ShieldRecord:
    """A record with no intervention (`xp` = numpy or jax.numpy)."""
    return ShieldRecord(
        interventions=xp.zeros((N_RULES,), dtype=xp.int32),
        venue_mask=xp.zeros((N_RULES, n), dtype=bool),
    )
