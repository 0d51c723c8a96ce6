"""Random valid strategy states for parity and property tests.

Every generated state is a NumPy float64/int64 `StrategyState` "as of" `NOW_MS`: book, markout,
funding and order timestamps are at or before `NOW_MS`. Edge cases (`CASES`) cover the situations
the parity discipline asks for: one fresh venue, all stale, one disabled venue, flat and flipped
positions, extreme volatility, kill/HardLimit/Warning states.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from paraphina_jax.config.types import (
    KILL_REASON_NAMES,
    REGIME_HARDLIMIT,
    STATUS_DISABLED,
    STATUS_HEALTHY,
    STATUS_WARNING,
    StrategyConfig,
)
from paraphina_jax.strategy.types import (
    AccountInputs,
    BookInputs,
    Controls,
    FundingInputs,
    MarketInputs,
    StrategyState,
    init_state,
)

NOW_MS = 1_000_000
CASES: tuple[str, ...] = (
    "random",
    "fresh_one",
    "all_stale",
    "one_disabled",
    "flat",
    "flipped",
    "extreme_vol",
    "killed",
    "warning",
    "uninitialised",
)


def random_state(
    rng: np.random.Generator, cfg: StrategyConfig, case: str = "random"
) -> StrategyState:
    """One random valid state for `case` (see CASES)."""
    n = cfg.n_venues
    m = cfg.toxicity.max_pending_per_venue
    st = init_state(cfg, base_ms=NOW_MS - 250 * int(rng.integers(1, 400)))
    v = {k: np.array(getattr(st.venues, k), copy=True) for k in st.venues.__dataclass_fields__}

    s = float(rng.uniform(50.0, 600.0))
    basis = rng.normal(0.0, 0.004, n) * s
    if rng.random() < 0.2:
        basis[rng.integers(n)] += rng.choice([-1, 1]) * rng.uniform(0.02, 0.06) * s  # outlier
    spread = rng.uniform(0.01, 1.5, n)
    mid = s + basis
    v["mid"] = mid
    v["spread"] = spread
    v["has_mid"] = rng.random(n) < 0.93
    v["depth_near_mid"] = np.where(rng.random(n) < 0.1, 0.0, rng.uniform(100.0, 40_000.0, n))
    age = rng.integers(0, 1500, n)
    if case == "all_stale":
        age = rng.integers(3_100, 200_000, n)
    if case == "fresh_one":
        age = rng.integers(3_100, 20_000, n)
        age[rng.integers(n)] = int(rng.integers(0, 500))
    v["last_mid_update_ms"] = NOW_MS - age
    v["has_mid_update"] = v["has_mid"] | (rng.random(n) < 0.05)
    v["last_book_update_ms"] = NOW_MS - np.minimum(age, rng.integers(0, 1500, n))
    v["has_book_update"] = v["has_mid_update"] | (rng.random(n) < 0.05)
    vol_scale = 0.05 if case == "extreme_vol" else 2e-4
    v["local_vol_short"] = np.abs(rng.normal(0.0, vol_scale, n))
    v["local_vol_long"] = np.abs(rng.normal(0.0, vol_scale, n))
    v["prev_ln_mid"] = np.log(np.maximum(mid * (1 + rng.normal(0, 1e-3, n)), 1e-6))
    v["has_prev_ln_mid"] = v["has_mid"] & (rng.random(n) < 0.95)
    tox = np.clip(
        rng.choice([0.0, 0.3, 0.6, 0.75, 0.9, 1.0], n)
        + rng.normal(0, 0.05, n) * (rng.random(n) < 0.5),
        0,
        1,
    )
    v["toxicity"] = tox
    v["status"] = np.where(
        tox >= 0.9, STATUS_DISABLED, np.where(tox >= 0.6, STATUS_WARNING, STATUS_HEALTHY)
    )
    if case == "one_disabled":
        d = rng.integers(n)
        v["status"][:] = STATUS_HEALTHY
        v["toxicity"][:] = rng.uniform(0, 0.5, n)
        v["status"][d] = STATUS_DISABLED
        v["toxicity"][d] = 1.0
    v["markout_ewma_usd_per_tao"] = rng.normal(0, 0.5, n)

    # Pending markouts: a FIFO ring (random head) with non-decreasing t_eval.
    for j in range(n):
        c = int(rng.integers(0, min(m, 12) + 1))
        if rng.random() < 0.03:
            c = m  # full queue
        t_fill = np.sort(NOW_MS - rng.integers(0, 12_000, c))
        head = int(t_fill.sum() % m) if c else 0  # the ring may wrap (no extra draw)
        sl = (head + np.arange(c)) % m
        v["pm_count"][j] = c
        v["pm_head"][j] = head
        v["pm_t_eval_ms"][j, sl] = t_fill + int(cfg.toxicity.markout_horizon_short_ms)
        v["pm_side"][j, sl] = rng.choice([-1, 1], c)
        v["pm_size"][j, sl] = np.round(rng.uniform(0.01, 8.0, c), 2)
        v["pm_price"][j, sl] = mid[j] + rng.normal(0, 1.0, c)
        v["pm_fair_at_fill"][j, sl] = s + rng.normal(0, 0.5, c)
        v["pm_mid_at_fill"][j, sl] = mid[j] + rng.normal(0, 0.5, c)
        v["pm_fill_seq"][j, sl] = np.arange(c) + int(rng.integers(0, 50))
        v["fill_seq"][j] = (v["pm_fill_seq"][j, sl[-1]] + 1) if c else int(rng.integers(0, 50))

    # Positions.
    q = np.round(rng.normal(0, 8.0, n), 2) * (rng.random(n) < 0.8)
    if case == "flat":
        q[:] = 0.0
    if case == "flipped":
        q = np.round(rng.uniform(1.0, 15.0, n), 2) * np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    v["position_tao"] = q
    v["avg_entry_price"] = np.where(q != 0, s * (1 + rng.normal(0, 0.01, n)), 0.0)
    f8 = rng.normal(0, 5e-4, n)
    v["funding_8h"] = f8
    v["fund_rate_8h"] = f8
    v["fund_has_rate"] = rng.random(n) < 0.8
    v["fund_received_ms"] = np.where(rng.random(n) < 0.7, NOW_MS - rng.integers(0, 900_000, n), 0)
    v["fund_as_of_ms"] = np.where(rng.random(n) < 0.7, NOW_MS - rng.integers(0, 900_000, n), 0)
    v["fund_next_ms"] = NOW_MS + rng.integers(-100_000, 28_800_000, n)
    v["fund_has_next"] = rng.random(n) < 0.7
    v["margin_balance_usd"] = rng.uniform(0, 50_000, n)
    v["margin_used_usd"] = rng.uniform(0, 20_000, n)
    v["margin_available_usd"] = np.where(rng.random(n) < 0.1, 0.0, rng.uniform(0.0, 20_000, n))
    v["dist_liq_sigma"] = np.where(
        rng.random(n) < 0.3, rng.choice([1.0, 2.0, 3.5, 5.0, 8.0], n), rng.uniform(0.5, 15.0, n)
    )
    v["price_liq"] = mid * (1 - np.sign(q + 1e-12) * 0.2)
    v["has_price_liq"] = rng.random(n) < 0.5

    # MM slots.
    has = rng.random((n, 2)) < 0.5
    v["mm_has"] = has
    off = rng.uniform(-0.5, 2.0, (n, 2)) * np.array([-1.0, 1.0])
    v["mm_price"] = np.where(has, np.round((mid[:, None] + off) / 0.01) * 0.01, 0.0)
    v["mm_size"] = np.where(has, np.round(rng.uniform(0.01, 20.0, (n, 2)), 2), 0.0)
    v["mm_ts_ms"] = np.where(has, NOW_MS - rng.integers(0, 2_000, (n, 2)), 0)
    v["mm_id"] = np.where(has, rng.integers(0, 1000, (n, 2)), 0)
    v["dev_breach_count"] = rng.integers(0, 4, n)
    v["dev_disabled"] = rng.random(n) < 0.03

    venues = st.venues.replace(
        **{k: np.asarray(a, dtype=getattr(st.venues, k).dtype) for k, a in v.items()}
    )

    sig = float(np.abs(rng.normal(0, 5e-5))) + 1e-7
    if case == "extreme_vol":
        sig = float(rng.uniform(1e-3, 0.05))
    has_fv = case != "uninitialised" and rng.random() < 0.95
    fv_avail = has_fv and rng.random() < 0.85
    realised = float(rng.normal(0, 800.0))
    mark = s
    unreal = float(np.sum(np.where(q != 0, q * (mark - v["avg_entry_price"]), 0.0)))
    delta_lim = float(cfg.risk.delta_hard_limit_usd_base) / max(float(rng.uniform(0.25, 4.0)), 1e-6)
    q_t = float(q.sum())
    b_v = np.where(v["has_mid"], mid, s) - s
    out = st.replace(
        venues=venues,
        kf_x_hat=np.float64(np.log(s) if has_fv else 0.0),
        kf_p=np.float64(rng.uniform(1e-5, 0.01) if has_fv else float(cfg.book.kf_p_init)),
        kf_last_update_ms=np.int64(NOW_MS - 250 if has_fv else 0),
        kf_initialised=np.bool_(has_fv),
        fair_value=np.float64(s if has_fv else 0.0),
        has_fair_value=np.bool_(has_fv),
        fair_value_prev=np.float64(
            s * (1 + rng.normal(0, 1e-3)) if has_fv or rng.random() < 0.5 else 0.0
        ),
        fv_short_vol=np.float64(sig),
        fv_long_vol=np.float64(sig * rng.uniform(0.5, 2.0)),
        sigma_eff=np.float64(sig),
        fv_available=np.bool_(fv_avail),
        healthy_venues_used=(rng.random(n) < 0.7) & fv_avail,
        vol_ratio_raw=np.float64(rng.uniform(0.05, 8.0)),
        vol_ratio_clipped=np.float64(rng.uniform(0.25, 4.0)),
        spread_mult=np.float64(rng.uniform(1.0, 4.0)),
        size_mult=np.float64(rng.uniform(0.14, 1.0)),
        band_mult=np.float64(rng.uniform(0.25, 1.0)),
        q_global_tao=np.float64(q_t),
        dollar_delta_usd=np.float64(q_t * s),
        basis_usd=np.float64(np.sum(q * b_v)),
        basis_gross_usd=np.float64(np.sum(np.abs(q) * np.abs(b_v))),
        daily_realised_pnl=np.float64(realised),
        daily_unrealised_pnl=np.float64(unreal),
        daily_pnl_total=np.float64(realised + unreal),
        delta_limit_usd=np.float64(delta_lim),
        tick=np.int64(rng.integers(0, 5000)),
        next_order_id=np.int64(rng.integers(1000, 2000)),
    )
    if case == "killed":
        out = out.replace(
            kill_switch=np.bool_(True),
            kill_reason=np.int64(rng.integers(1, len(KILL_REASON_NAMES))),
            risk_regime=np.int64(REGIME_HARDLIMIT),
            kill_handled=np.bool_(rng.random() < 0.5),
            kill_tick=np.int64(int(out.tick)),
        )
    elif case == "warning":
        out = out.replace(risk_regime=np.int64(1))
    else:
        out = out.replace(risk_regime=np.int64(rng.choice([0, 0, 0, 1, 2])))
    return out


def random_states(seed: int, cfg: StrategyConfig, n: int = 200) -> list[StrategyState]:
    """`n` states cycling through every case in CASES (at least one of each when n ≥ len(CASES))."""
    rng = np.random.default_rng(seed)
    return [random_state(rng, cfg, CASES[i % len(CASES)]) for i in range(n)]


def random_controls(rng: np.random.Generator, n: int) -> Controls:
    """Random control-surface values inside the encoded ranges (SIMULATION §6.6)."""
    w = rng.uniform(0, 1, n) * (rng.random(n) < 0.9)
    w = w / w.sum() if w.sum() > 0 else np.full(n, 1.0 / n)
    return Controls(
        spread_scale=rng.uniform(0.5, 3.0, n),
        size_scale=rng.uniform(0.0, 2.0, n),
        rprice_offset_usd=rng.uniform(-10.0, 10.0, n),
        hedge_scale=np.float64(rng.uniform(0.0, 2.0)),
        hedge_venue_weights=w,
    )


def random_inputs(
    rng: np.random.Generator, state: StrategyState, cfg: StrategyConfig, now_ms: int = NOW_MS
) -> MarketInputs:
    """Random valid market inputs for one tick at `now_ms`, centred on the state's books.

    Books move by up to ~0.5 % around the venue mid (fair value where absent), spreads 0.01–1.5
    USD; about 10 % of venues get no update, 5 % an empty side and 2 % a crossed book. Funding
    records arrive on about half of the venues; account snapshots on about 90 %, a third with a
    liquidation price, the rest in the constant-distance mode.
    """
    n = cfg.n_venues
    v = state.venues
    s = float(state.fair_value) if bool(state.has_fair_value) else float(rng.uniform(50, 600))
    centre = np.where(np.asarray(v.has_mid), np.asarray(v.mid, np.float64), s)
    mid = centre * (1.0 + rng.normal(0.0, 2e-3, n))
    if rng.random() < 0.1:
        mid = mid * (1.0 + rng.choice([-1.0, 1.0]) * rng.uniform(0.01, 0.05))  # jump
    spread = rng.uniform(0.01, 1.5, n)
    spread = np.where(rng.random(n) < 0.02, -rng.uniform(0.01, 0.2, n), spread)  # crossed
    bid_sz = np.round(rng.uniform(0.5, 60.0, n), 2)
    ask_sz = np.round(rng.uniform(0.5, 60.0, n), 2)
    bid_sz = np.where(rng.random(n) < 0.05, 0.0, bid_sz)
    book = BookInputs(
        updated=rng.random(n) < 0.9,
        bid_px=mid - spread / 2.0,
        bid_sz=bid_sz,
        ask_px=mid + spread / 2.0,
        ask_sz=ask_sz,
    )
    funding = FundingInputs(
        updated=rng.random(n) < 0.5,
        rate_8h=rng.normal(0.0, 5e-4, n),
        next_funding_ms=(now_ms + rng.integers(-100_000, 28_800_000, n)).astype(np.int64),
        has_next=rng.random(n) < 0.7,
    )
    has_liq = rng.random(n) < 0.33
    account = AccountInputs(
        updated=rng.random(n) < 0.9,
        margin_balance_usd=rng.uniform(0.0, 50_000.0, n),
        margin_used_usd=rng.uniform(0.0, 20_000.0, n),
        margin_available_usd=np.where(rng.random(n) < 0.1, 0.0, rng.uniform(0.0, 20_000.0, n)),
        price_liq=mid * (1.0 + rng.choice([-1.0, 1.0], n) * rng.uniform(1e-4, 0.05, n)),
        has_price_liq=has_liq,
        dist_liq_sigma=np.where(
            rng.random(n) < 0.3, rng.choice([1.0, 2.0, 3.5, 5.0, 8.0], n), rng.uniform(0.5, 15.0, n)
        ),
    )
    return MarketInputs(now_ms=np.int64(now_ms), book=book, funding=funding, account=account)


def stack(trees: Sequence[Any]) -> Any:
    """Stack a list of identical pytrees along a new leading `[B]` axis (NumPy leaves)."""
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


def unstack(tree: Any, i: int) -> Any:
    """Element `i` of a batched pytree, as NumPy leaves."""
    return jax.tree.map(lambda x: np.asarray(x)[i], tree)


def to_jax(tree: Any) -> Any:
    """Convert NumPy leaves to jax arrays (dtype canonicalised by the current x64 setting)."""
    return jax.tree.map(jnp.asarray, tree)


def to_numpy(tree: Any) -> Any:
    """Convert leaves to NumPy arrays."""
    return jax.tree.map(np.asarray, tree)
