"""Reference episode, float64 NumPy: the mirror of `paraphina_jax.sim.episode` for ONE episode.

Same tick, in the same order (see the JAX module): market step → funding accrual → passive fills
of the resting quotes → controls → strategy tick → shield → venue acknowledgement of the allowed
order plan → IOC exits / kill exit / hedges → fills → mark to fair. The episode stops after the
kill tick; the remaining rows of the trace repeat the last state with `active = False`.

It consumes exactly the exogenous draws of the JAX engine: :func:`draw_episode_inputs` draws the
per-tick `MarketNoise [T]` and the per-episode `EpisodeNoise` from the JAX key with the JAX
engine's own functions (in the JAX run's float dtype) and hands them over as float64 NumPy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from paraphina_jax.config.types import StrategyConfig
from paraphina_jax.reference import accounting as racc
from paraphina_jax.reference import sim_execution as rexe
from paraphina_jax.reference import sim_market as rmkt
from paraphina_jax.reference.tick import strategy_tick
from paraphina_jax.sim.results import EpisodeResults, Telemetry, TickRecord
from paraphina_jax.sim.schedule import ScenarioSchedule
from paraphina_jax.sim.types import (
    EpisodeNoise,
    MarketNoise,
    MarketView,
    StaticSimParams,
    draw_episode_noise,
    draw_market_noise,
    noise_at,
)
from paraphina_jax.strategy.types import (
    Controls,
    ExitPlan,
    FillBatch,
    StrategyState,
    TickOptions,
    TickOutput,
    VenueOverlay,
    identity_controls,
    init_state,
)

RefShieldFn = Callable[
    [StrategyState, TickOutput, MarketView, StrategyConfig], tuple[TickOutput, np.ndarray]
]
RefControlsFn = Callable[[StrategyState, MarketView, int], Controls]


def identity_shield(
    state: StrategyState, out: TickOutput, view: MarketView, cfg: StrategyConfig
) -> tuple[TickOutput, np.ndarray]:
    """Allows every action; no rules (`[0]` interventions)."""
    del state, view, cfg
    return out, np.zeros((0,), np.int64)


def identity_controls_fn(state: StrategyState, view: MarketView, t: int) -> Controls:
    """The identity control surface."""
    del view, t
    return identity_controls(len(state.venues.mid))


def draw_episode_inputs(
    key: Any, n_ticks: int, static: StaticSimParams, dtype: Any = None
) -> tuple[MarketNoise, EpisodeNoise]:
    """The draws of one episode (`[T]` per-tick noise, per-episode noise) as float64 NumPy.

    Args:
      key: the episode key `[2]` uint32 (as the JAX episode uses it).
      dtype: the float dtype of the JAX run the draws must match (JAX's default when None):
        float32 runs draw 23-bit uniforms, float64 runs 52-bit ones.
    """
    static = dataclasses.replace(static, n_ticks=n_ticks)
    noise = draw_market_noise(key, n_ticks, static, 0, dtype=dtype)
    ep = draw_episode_noise(key, static, dtype=dtype)
    to64 = lambda x: np.asarray(x).astype(np.float64)  # noqa: E731
    return jax.tree.map(to64, noise), jax.tree.map(to64, ep)


def settle_slots(
    state: StrategyState,
    pre: StrategyState,
    allowed: TickOutput,
    rejected: np.ndarray,
    now_ms: int,
) -> StrategyState:
    """MM slots after the venue acknowledged the allowed plan (see the JAX twin)."""
    v, p = state.venues, pre.venues
    o = allowed.orders
    ok = np.asarray(o.place) & ~np.asarray(rejected)
    cancel = np.asarray(o.cancel)
    return state.replace(
        venues=v.replace(
            mm_has=np.where(ok, True, np.where(cancel, False, p.mm_has)),
            mm_price=np.where(ok, o.place_px, p.mm_price),
            mm_size=np.where(ok, o.place_size, p.mm_size),
            mm_ts_ms=np.where(ok, int(now_ms), p.mm_ts_ms).astype(np.int64),
            mm_id=np.where(ok, allowed.order_ids, p.mm_id).astype(np.int64),
        )
    )


def ioc_exit_plan(out: TickOutput) -> ExitPlan:
    """The kill best-effort exit on the kill transition, else the regular exits."""
    return out.kill_exit if bool(out.kill_transition) else out.exits


def accrue_funding(
    state: StrategyState, paid_usd: np.ndarray, cfg: StrategyConfig
) -> StrategyState:
    """D5: `realised −= paid_v` in venue order (when `cfg.flags.funding_accrual`)."""
    if not cfg.flags.funding_accrual:
        return state
    realised = float(state.daily_realised_pnl)
    for x in paid_usd:
        realised = realised - float(x)
    return state.replace(
        daily_realised_pnl=np.asarray(realised),
        daily_pnl_total=np.asarray(realised + float(state.daily_unrealised_pnl)),
    )


def _fill_cash(fills: FillBatch) -> float:
    acc = 0.0
    for k in range(len(fills.valid)):
        if bool(fills.valid[k]):
            sz, px = float(fills.size[k]), float(fills.price[k])
            acc = acc + (-float(fills.side[k]) * sz * px - float(fills.fee_bps[k]) / 1e4 * px * sz)
    return acc


def _record(
    t: int,
    now: int,
    active: bool,
    s: StrategyState,
    view: MarketView,
    cash: float,
    fees: float,
    funding: float,
    maker: np.ndarray,
    taker: np.ndarray,
    rej: np.ndarray,
) -> TickRecord:
    v = s.venues
    return TickRecord(
        t=np.int64(t), now_ms=np.int64(now), active=np.bool_(active),
        pnl_realised=s.daily_realised_pnl, pnl_unrealised=s.daily_unrealised_pnl,
        pnl_total=s.daily_pnl_total, risk_regime=s.risk_regime, kill_switch=s.kill_switch,
        kill_reason=s.kill_reason, q_global_tao=s.q_global_tao,
        dollar_delta_usd=s.dollar_delta_usd, basis_usd=s.basis_usd,
        basis_gross_usd=s.basis_gross_usd, fv_available=s.fv_available,
        has_fair_value=s.has_fair_value, fair_value=s.fair_value, sigma_eff=s.sigma_eff,
        healthy_venues_used_count=s.healthy_venues_used_count,
        healthy_venues_used=s.healthy_venues_used, delta_limit_usd=s.delta_limit_usd,
        basis_limit_warn_usd=s.basis_limit_warn_usd, basis_limit_hard_usd=s.basis_limit_hard_usd,
        cash_usd=np.float64(cash), fees_usd=np.float64(fees), funding_usd=np.float64(funding),
        status=v.status, toxicity=v.toxicity, position_tao=v.position_tao,
        dist_liq_sigma=v.dist_liq_sigma, margin_available_usd=v.margin_available_usd,
        mid=v.mid, spread=v.spread, has_mid=v.has_mid, last_mid_update_ms=v.last_mid_update_ms,
        has_mid_update=v.has_mid_update, true_fair=view.fair, true_mid=view.mid,
        outage=view.outage, vol_regime=view.vol_regime, maker_fills=maker, taker_fills=taker,
        rejected=rej,
    )  # fmt: skip


def _stack(rows: list[Any]) -> Any:
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *rows)


def run_episode(
    noise: MarketNoise,
    episode_noise: EpisodeNoise,
    market: Any,
    schedule: ScenarioSchedule,
    cfg: StrategyConfig,
    static: StaticSimParams,
    *,
    n_ticks: int,
    initial_q_tao: float = 0.0,
    start_ms: int = 0,
    shield_fn: RefShieldFn = identity_shield,
    controls_fn: RefControlsFn | None = None,
    opts: TickOptions = TickOptions(),
) -> tuple[EpisodeResults, Telemetry]:
    """One episode of `n_ticks` ticks on the given draws (float64 NumPy).

    Args:
      noise: `[≥T]` per-tick noise; episode_noise: per-episode noise.
      market: `MarketParams` (one episode); schedule: `[≥T]` rows.
    Returns:
      `(results, telemetry [T])` (the telemetry of this one episode, no `[K]` axis).
    """
    controls_fn = controls_fn or identity_controls_fn
    static = dataclasses.replace(static, n_ticks=n_ticks)
    n = cfg.n_venues
    ms = rmkt.initial_market_state(market, static, episode_noise, initial_q_tao)
    st = init_state(cfg, base_ms=int(start_ms))
    s0 = float(np.asarray(market.s0))
    st = racc.inject_initial_position(st, float(initial_q_tao), s0, cfg)
    cash = -float(initial_q_tao) * s0 if abs(float(initial_q_tao)) >= 1e-9 else 0.0
    fees_tot = funding_tot = 0.0
    dd_init, dd_peak, dd_max = False, 0.0, 0.0
    peaks = np.zeros(4)

    def upd_peaks(s: StrategyState) -> None:
        peaks[:] = np.maximum(
            peaks,
            [abs(float(s.dollar_delta_usd)), abs(float(s.basis_gross_usd)),
             abs(float(s.q_global_tao)), float(np.max(s.venues.toxicity))],
        )  # fmt: skip

    upd_peaks(st)
    maker_tot = np.zeros(n, np.int64)
    taker_tot = np.zeros(n, np.int64)
    vol_tot = np.zeros(n)
    fees_v_tot = np.zeros(n)
    rej_tot = np.zeros(n, np.int64)
    interv_tot: np.ndarray | None = None
    kill_tick, executed = -1, 0
    dt = int(round(float(np.asarray(market.dt_ms))))
    recs, acts, props, fill_rows, intervs = [], [], [], [], []
    record_proposed = shield_fn is not identity_shield

    for t in range(n_ticks):
        now = int(start_ms) + t * dt
        ms, inputs, view = rmkt.market_step(
            market, ms, noise_at(noise, t), noise_at(schedule, t), now, static
        )
        paid = np.asarray(view.funding_paid_usd, np.float64)
        st = accrue_funding(st, paid, cfg)
        ms, mm_fills, r1 = rexe.fill_quotes(market, ms, view, st.venues, noise_at(noise, t))
        st = racc.apply_fills(st, mm_fills, now, cfg)
        pre = st
        controls = controls_fn(st, view, t)
        was_killed = bool(st.kill_switch)
        overlay = VenueOverlay(
            toxicity_floor=noise_at(schedule, t).toxicity_floor, force_disabled=view.outage
        )
        st, proposed = strategy_tick(st, inputs, controls, cfg, opts, overlay)
        allowed, interv = shield_fn(st, proposed, view, cfg)
        interv = np.asarray(interv, np.int64)
        rej = rexe.post_only_rejects(view, allowed.orders)
        st = settle_slots(st, pre, allowed, rej, now)
        ms, ioc_fills, r2 = rexe.execute_ioc(
            market, ms, view, ioc_exit_plan(allowed), allowed.hedge, static
        )
        st = racc.apply_fills(st, ioc_fills, now, cfg)
        st = racc.recompute_exposures(st, cfg)
        fills = rexe.concat_fills(mm_fills, ioc_fills)

        paid_sum = 0.0
        for x in paid:
            paid_sum = paid_sum + float(x)
        fees_v = np.asarray(r1.fees_usd) + np.asarray(r2.fees_usd)
        fees_sum = 0.0
        for x in fees_v:
            fees_sum = fees_sum + float(x)
        rej_v = np.asarray(r1.rejected) + np.asarray(r2.rejected) + rej.sum(axis=-1)
        maker = np.asarray(r1.maker_fills) + np.asarray(r2.maker_fills)
        taker = np.asarray(r1.taker_fills) + np.asarray(r2.taker_fills)
        cash = cash + _fill_cash(fills) - paid_sum
        fees_tot += fees_sum
        funding_tot += paid_sum
        e = float(st.daily_pnl_total)
        if np.isfinite(e):
            dd_peak = max(dd_peak, e) if dd_init else e
            if dd_init:
                dd_max = max(dd_max, dd_peak - e)
            dd_init = True
        if bool(st.kill_switch) and not was_killed:
            kill_tick = t
        executed += 1
        maker_tot += maker
        taker_tot += taker
        for k in range(len(fills.valid)):
            if bool(fills.valid[k]):
                vol_tot[int(fills.venue[k])] += float(fills.size[k])
        fees_v_tot += fees_v
        rej_tot += rej_v
        interv_tot = interv if interv_tot is None else interv_tot + interv
        upd_peaks(st)
        recs.append(_record(t, now, True, st, view, cash, fees_sum, paid_sum, maker, taker, rej_v))
        acts.append(allowed)
        props.append(proposed)
        fill_rows.append(fills)
        intervs.append(interv)
        if bool(st.kill_switch):
            break

    last = len(recs)
    for t in range(last, n_ticks):
        z = np.zeros(n, np.int64)
        r = recs[-1]
        recs.append(r.replace(t=np.int64(t), now_ms=np.int64(int(start_ms) + t * dt),
                              active=np.bool_(False), fees_usd=np.float64(0.0),
                              funding_usd=np.float64(0.0), maker_fills=z, taker_fills=z,
                              rejected=z))  # fmt: skip
        acts.append(acts[-1])
        props.append(props[-1])
        fill_rows.append(fill_rows[-1].replace(valid=np.zeros_like(fill_rows[-1].valid)))
        intervs.append(np.zeros_like(intervs[-1]))
    if interv_tot is None:
        interv_tot = np.zeros((0,), np.int64)

    res = EpisodeResults(
        pnl_total=np.float64(st.daily_pnl_total),
        pnl_realised=np.float64(st.daily_realised_pnl),
        pnl_unrealised=np.float64(st.daily_unrealised_pnl),
        fees_usd=np.float64(fees_tot),
        funding_usd=np.float64(funding_tot),
        cash_usd=np.float64(cash),
        max_drawdown=np.float64(dd_max),
        kill_switch=np.bool_(st.kill_switch),
        kill_tick=np.int64(kill_tick),
        kill_reason=np.int64(st.kill_reason),
        ticks_executed=np.int64(executed),
        final_regime=np.int64(st.risk_regime),
        max_abs_delta_usd=np.float64(peaks[0]),
        max_abs_basis_usd=np.float64(peaks[1]),
        max_abs_q_tao=np.float64(peaks[2]),
        max_venue_toxicity=np.float64(peaks[3]),
        fills=maker_tot + taker_tot,
        maker_fills=maker_tot,
        taker_fills=taker_tot,
        volume_tao=vol_tot,
        fees_by_venue=fees_v_tot,
        rejected=rej_tot,
        final_position_tao=np.asarray(st.venues.position_tao, np.float64),
        shield_interventions=interv_tot,
    )
    tel = Telemetry(
        record=_stack(recs),
        actions=_stack(acts),
        proposed=_stack(props) if record_proposed else None,
        fills=_stack(fill_rows),
        interventions=np.stack(intervs),
    )
    return res, tel


# ---------------------------------------------------------------------------------------------
# Whole-episode comparison (parity)
# ---------------------------------------------------------------------------------------------

DISCRETE_FIELDS = ("fills", "maker_fills", "taker_fills", "risk_regime", "kill_switch", "status")
CONTINUOUS_FIELDS = (
    "pnl_total",
    "pnl_realised",
    "pnl_unrealised",
    "position_tao",
    "cash_usd",
    "q_global_tao",
)


@dataclasses.dataclass
class EpisodeDivergence:
    """How one JAX episode differs from its reference twin.

    `max_rel[f]`: max over executed ticks of |jax − ref| / max(|ref|, 1) (USD or TAO fields);
    `first_tick[f]`: first executed tick where the discrete field differs (−1 = never);
    `summary`: differences of the per-episode discrete results (kill tick, reason, fills).
    """

    max_rel: dict[str, float]
    first_tick: dict[str, int]
    summary: dict[str, tuple[Any, Any]]

    @property
    def first_discrete_tick(self) -> int:
        ticks = [t for t in self.first_tick.values() if t >= 0]
        return min(ticks) if ticks else -1

    def ok(self, rtol: float, discrete: bool = True) -> bool:
        """Within `rtol` on every continuous field and (if `discrete`) identical events."""
        cont = all(v <= rtol for v in self.max_rel.values())
        if not discrete:
            return cont
        return cont and self.first_discrete_tick < 0 and not self.summary


def compare_episode(
    jax_res: EpisodeResults, jax_tel: Telemetry, ref_res: EpisodeResults, ref_tel: Telemetry
) -> EpisodeDivergence:
    """Compare one episode (`[T]` telemetry, unbatched results) of the two engines."""
    jr, rr = jax_tel.record, ref_tel.record
    act = np.asarray(rr.active) | np.asarray(jr.active)
    both = np.asarray(rr.active) & np.asarray(jr.active)
    first: dict[str, int] = {}
    for f in DISCRETE_FIELDS:
        if f == "fills":
            a = np.asarray(jax_tel.fills.valid)
            b = np.asarray(ref_tel.fills.valid)
        else:
            a, b = np.asarray(getattr(jr, f)), np.asarray(getattr(rr, f))
        diff = (a != b).reshape(a.shape[0], -1).any(axis=1) & act
        diff |= np.asarray(rr.active) != np.asarray(jr.active)
        first[f] = int(np.flatnonzero(diff)[0]) if diff.any() else -1
    rel: dict[str, float] = {}
    for f in CONTINUOUS_FIELDS:
        a = np.asarray(getattr(jr, f), np.float64)[both]
        b = np.asarray(getattr(rr, f), np.float64)[both]
        rel[f] = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1.0), initial=0.0))
    for f in ("pnl_total", "fees_usd", "funding_usd", "max_drawdown"):
        a = float(np.asarray(getattr(jax_res, f)))
        b = float(np.asarray(getattr(ref_res, f)))
        rel[f"result.{f}"] = abs(a - b) / max(abs(b), 1.0)
    summary: dict[str, tuple[Any, Any]] = {}
    for f in ("kill_tick", "kill_reason", "ticks_executed", "fills", "rejected"):
        a, b = np.asarray(getattr(jax_res, f)), np.asarray(getattr(ref_res, f))
        if not np.array_equal(a, b):
            summary[f] = (a.tolist(), b.tolist())
    return EpisodeDivergence(max_rel=rel, first_tick=first, summary=summary)
