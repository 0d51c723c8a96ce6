"""Adversarial actions on top of random strategy states (NumPy), for the shield's tests.

:func:`random_view` gives a `MarketView` around a state's books (some venues out, some touches
unknown); :func:`adversarial_output` gives a `TickOutput` whose every order field is drawn
from a hostile mixture — NaN, ±inf, zero, negative and enormous sizes; prices through the
book, at zero or negative; malformed side codes; orders on disabled and stale venues; kill
exits without a kill; exits and hedges far above their caps — or, with `reckless=True`, the
"maximum size, zero spread, every venue, every tick" decision-maker of the whole-episode test.
"""

from __future__ import annotations

import numpy as np

from paraphina_jax.config.types import StrategyConfig
from paraphina_jax.sim.types import MarketView
from paraphina_jax.strategy.types import (
    ExitPlan,
    HedgePlan,
    OrderPlan,
    QuoteSet,
    StrategyState,
    TickOutput,
)

HOSTILE_SIZES = (np.nan, np.inf, -np.inf, 0.0, -1.0, -20.0, 1e-4, 1e30, 1e300, 25.0, 1e6)
HOSTILE_PRICES = (np.nan, np.inf, -np.inf, 0.0, -5.0, 1e12)


def random_view(rng: np.random.Generator, state: StrategyState, now_ms: int) -> MarketView:
    """A true book near the state's mids (fair value where absent); ~5 % of venues out, ~2 %
    of touches non-finite."""
    v = state.venues
    n = np.asarray(v.mid).shape[0]
    s = float(state.fair_value) if bool(state.has_fair_value) else float(rng.uniform(50, 600))
    centre = np.where(np.asarray(v.has_mid), np.asarray(v.mid, np.float64), s)
    mid = centre * (1.0 + rng.normal(0.0, 2e-3, n))
    spread = rng.uniform(0.01, 1.5, n)
    bid = mid - spread / 2.0
    ask = mid + spread / 2.0
    bid = np.where(rng.random(n) < 0.02, np.nan, bid)
    ask = np.where(rng.random(n) < 0.02, np.inf, ask)
    outage = rng.random(n) < 0.05
    zf = np.zeros(n)
    return MarketView(
        tick=np.int64(0),
        now_ms=np.int64(now_ms),
        fair=np.float64(s),
        mid=mid,
        bid=bid,
        ask=ask,
        spread=spread,
        depth_usd=rng.uniform(100.0, 40_000.0, n),
        touch_size=rng.uniform(1.0, 50.0, n),
        thin=np.zeros(n, bool),
        stale=np.zeros(n, bool),
        outage=outage,
        book_updated=~outage,
        funding_8h=zf,
        settle=np.zeros(n, bool),
        funding_paid_usd=zf,
        latency_ticks=np.int64(0),
        n_jumps=np.int64(0),
        vol_regime=np.int64(0),
    )


def _hostile(rng: np.random.Generator, base: np.ndarray, pool: tuple, p: float) -> np.ndarray:
    pick = rng.choice(np.asarray(pool, np.float64), base.shape)
    return np.where(rng.random(base.shape) < p, pick, base)


def _plan(
    rng: np.random.Generator, n: int, ref_px: np.ndarray, reckless: bool, cap: float
) -> tuple[np.ndarray, ...]:
    valid = np.ones(n, bool) if reckless else rng.random(n) < 0.7
    size = np.full(n, cap * 10.0) if reckless else rng.uniform(0.0, 3.0 * cap, n)
    price = ref_px * (1.0 + rng.normal(0.0, 0.01, n))
    if not reckless:
        size = _hostile(rng, size, HOSTILE_SIZES, 0.2)
        price = _hostile(rng, price, HOSTILE_PRICES, 0.1)
    side = np.int64(rng.choice([1, -1])) if reckless else np.int64(rng.choice([1, -1, 1, -1, 0, 3]))
    return valid, size, price, side


def adversarial_output(
    rng: np.random.Generator,
    state: StrategyState,
    view: MarketView,
    cfg: StrategyConfig,
    reckless: bool = False,
) -> TickOutput:
    """A hostile `TickOutput` for one environment (NumPy leaves; see module docstring).

    With `reckless`: every venue quotes both sides at the true touch-crossing price (zero
    spread: bid = ask = mid) with size 100× the venue max, places the same, and sends exits,
    hedges and a kill exit on every venue at 10× their caps.
    """
    n = cfg.n_venues
    fv = float(state.fair_value) if bool(state.has_fair_value) else 100.0
    mid = np.where(np.isfinite(view.mid), view.mid, fv)
    max_sz = np.asarray(cfg.venues.max_order_size, np.float64)
    if reckless:
        bid_px = mid.copy()
        ask_px = mid.copy()
        bid_sz = 100.0 * max_sz
        ask_sz = 100.0 * max_sz
        q_valid = np.ones((n, 2), bool)
    else:
        off = rng.choice([-1.0, -0.2, -0.01, 0.0, 0.01, 0.2, 1.0], (n, 2))
        bid_px = _hostile(rng, mid - off[:, 0], HOSTILE_PRICES, 0.1)
        ask_px = _hostile(rng, mid + off[:, 1], HOSTILE_PRICES, 0.1)
        bid_sz = _hostile(rng, np.round(rng.uniform(0.0, 25.0, n), 2), HOSTILE_SIZES, 0.2)
        ask_sz = _hostile(rng, np.round(rng.uniform(0.0, 25.0, n), 2), HOSTILE_SIZES, 0.2)
        q_valid = rng.random((n, 2)) < 0.8
    gate = np.zeros(n, np.int64)
    zf = np.zeros(n)
    quotes = QuoteSet(
        bid_px=bid_px,
        ask_px=ask_px,
        bid_size=bid_sz,
        ask_size=ask_sz,
        bid_valid=q_valid[:, 0],
        ask_valid=q_valid[:, 1],
        bid_gate=gate,
        ask_gate=gate.copy(),
        reservation=mid.copy(),
        half_spread=zf,
        edge_bid=zf,
        edge_ask=zf,
    )
    place = np.ones((n, 2), bool) if reckless else rng.random((n, 2)) < 0.7
    place_px = np.stack([bid_px, ask_px], 1)
    place_sz = np.stack([bid_sz, ask_sz], 1)
    if not reckless:
        place_px = _hostile(rng, place_px, HOSTILE_PRICES, 0.05)
        place_sz = _hostile(rng, place_sz, HOSTILE_SIZES, 0.05)
    cancel = np.zeros((n, 2), bool) if reckless else rng.random((n, 2)) < 0.3
    orders = OrderPlan(cancel=cancel, place=place, place_px=place_px, place_size=place_sz)
    ids = np.where(place, np.arange(2 * n).reshape(n, 2) + 1000, -1).astype(np.int64)

    def exit_plan(cap: float) -> ExitPlan:
        valid, size, price, side = _plan(rng, n, mid, reckless, cap)
        return ExitPlan(
            valid=valid,
            size=size,
            price=price,
            side=side,
            order=np.where(valid, np.arange(n), n).astype(np.int64),
            score=zf,
            base_edge=zf,
            candidate=valid.copy(),
        )

    valid, size, price, side = _plan(rng, n, mid, reckless, float(cfg.hedge.max_venue_tao_per_tick))
    hedge = HedgePlan(
        valid=valid,
        size=size,
        price=price,
        side=side,
        band=np.float64(0.0),
        x=np.float64(0.0),
        delta_h=np.float64(0.0),
        active=np.bool_(True),
        alloc=size.copy(),
        cost=zf,
        exec_cost=zf,
        funding_benefit=zf,
        basis_edge=zf,
        liq_penalty=zf,
        frag_penalty=zf,
        candidate=valid.copy(),
    )
    return TickOutput(
        quotes=quotes,
        orders=orders,
        order_ids=ids,
        exits=exit_plan(float(cfg.exit.max_venue_tao_per_tick)),
        hedge=hedge,
        kill_exit=exit_plan(float(np.max(max_sz))),
        kill_transition=np.bool_(bool(state.kill_switch)),
        risk_due=np.bool_(True),
        exit_due=np.bool_(True),
        hedge_due=np.bool_(True),
    )
