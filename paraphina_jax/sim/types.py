"""Canonical simulator types: params, state, per-tick views and exogenous noise (SIMULATION §2–§3).

`market_model_version = 2` (SIMULATION §2.3 [REC]). Shapes are for ONE environment: `[]` scalar,
`[N]` per venue, `[N, 2]` per venue × side (0 = bid/buy, 1 = ask/sell), `[2, N]` per IOC purpose
(0 = exit, 1 = hedge) × venue, `[T, ...]` per tick. A batch of environments adds a leading `[B]`.

* :class:`MarketParams` — every number a scenario or domain randomisation may change. All leaves
  are traced, so a batch of different params is vmapped through one compiled program.
* :class:`StaticSimParams` — hashable shape-fixing values (venue count, horizon, ladder depth,
  caps); part of the compiled program's identity.
* :class:`MarketState` — the latent market, the exchange-side accounts and the in-flight IOC
  orders (one pytree the episode scan carries).
* :class:`MarketView` — the true book of one tick (what the execution model trades against).
* :class:`ExecReport` — per-venue fill counts, volumes, fees and rejections of one call.
* :class:`MarketNoise` / :class:`EpisodeNoise` — every random number the simulator uses, drawn
  once from the JAX key by :func:`draw_market_noise` / :func:`draw_episode_noise` and fed to both
  engines (JAX and the float64 NumPy reference), so they consume EXACTLY the same draws.

Seeding (SIMULATION §6.9 [REC]): the episode key splits once into `(k_dr, k_market, k_fill,
k_events)`; tick `t` uses `fold_in(k_market, t)`, `fold_in(k_fill, t)` and
`fold_in(fold_in(k_events, 1), t)`; episode-level events use `fold_in(k_events, 0)`. The noise of
tick `t` therefore depends only on (key, t): not on batch size, chunking or other draws.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.extend.random import threefry_2x32

from paraphina_jax.config.types import StrategyConfig

Array = Any

MARKET_MODEL_VERSION = 2
MS_PER_DAY = 86_400_000.0
FUNDING_PERIOD_MS = 28_800_000  # 8 h
IOC_EXIT, IOC_HEDGE = 0, 1  # first axis of the in-flight IOC buffer


@dataclasses.dataclass(frozen=True)
class StaticSimParams:
    """Shape-fixing simulator settings (hashable; changing one recompiles).

    Attributes:
      n_venues: N.
      n_ticks: episode horizon T (start ticks of per-episode disable events are drawn in [0, T)).
      chunk_ticks: ticks of noise drawn per block by the episode driver (noise of a tick does not
        depend on it).
      ladder_levels: L, synthetic book levels per side walked by IOC orders (BOOK_DEPTH_LEVELS).
      max_jumps: cap on the Poisson jump count per tick (inverse-CDF truncation; P(N > cap) is
        λ^(cap+1)/(cap+1)! ≈ 8e-8 at λ = 0.1).
      max_latency_ticks: cap on ceil(latency/Δt) (longer latencies are clipped).
    """

    n_venues: int = 5
    n_ticks: int = 1500
    chunk_ticks: int = 64
    ladder_levels: int = 10
    max_jumps: int = 4
    max_latency_ticks: int = 8

    @property
    def n_market_uniforms(self) -> int:
        """Uniforms per tick from `k_market`: z, z_jump, eps_basis[N] (→ normals), u_jump, u_regime."""
        return 4 + self.n_venues

    @property
    def n_event_uniforms(self) -> int:
        """Uniforms per tick from `k_events`: u_stale[N], u_thin[N]."""
        return 2 * self.n_venues

    @property
    def n_fill_uniforms(self) -> int:
        """Uniforms per tick from `k_fill`: u_fill[N, 2]."""
        return 2 * self.n_venues


@struct.dataclass
class MarketParams:
    """Canonical market + execution model parameters (all traced). Units in the comments."""

    # Time base
    dt_ms: Array  # [] f  tick length, ms
    # Latent price (§2.3): ln S_{t+1} = ln S_t + (μ − σ²/2)h + σ√h Z + Σ J, h = Δt/1 day
    s0: Array  # [] f  initial fair value, USD
    vol: Array  # [] f  σ, log-return vol per day
    drift: Array  # [] f  μ, per day
    jump_intensity: Array  # [] f  λ, expected jumps per tick
    jump_sigma: Array  # [] f  σ_J, log jump size std
    # Vol regimes (two-state Markov chain on the market vol, §6.8 S11 [REC])
    vol_high_mult: Array  # [] f  σ × this in the high regime
    regime_p_up: Array  # [] f  per-tick P(normal → high)
    regime_p_down: Array  # [] f  per-tick P(high → normal)
    vol_regime0: Array  # [] i  initial regime (0 normal, 1 high)
    # Basis AR(1): b_{t+1} = ρ b_t + (1−ρ) b̄ + σ_b ε ; m_v = S (1 + b_v) mid_mult_v
    basis_mean: Array  # [N] f  b̄_v, relative
    basis_rho: Array  # [] f  ρ_b
    basis_sigma: Array  # [] f  σ_b, relative per tick
    # Spreads: spr_v = (spr̄_v·mult·(1 + κ_s|Z|) + off_v)·storm + add_bps·1e-4·S, floored
    spread_base: Array  # [N] f  spr̄_v, USD
    spread_mult: Array  # [] f  DR global spread multiplier
    spread_offset: Array  # [N] f  DR per-venue offset, USD
    spread_kappa: Array  # [] f  κ_s, widening per |Z|
    spread_min: Array  # [] f  floor, USD
    # Depth (D4 USD top-of-book notional, both sides) and thin-book events
    depth_usd: Array  # [N] f  USD
    thin_prob: Array  # [] f  per venue per tick
    thin_mult: Array  # [] f  depth × this on a thin tick
    # Stale events (no book update for U{lo..hi} ticks) and per-episode disable events
    stale_prob: Array  # [] f  per venue per tick (starts only when not already stale)
    stale_min_ticks: Array  # [] i
    stale_max_ticks: Array  # [] i
    disable_prob: Array  # [] f  per venue per episode
    disable_min_ticks: Array  # [] i
    disable_max_ticks: Array  # [] i
    # Funding: f8_v = sign·(base_v + add), settled every period from first_ms (absolute sim time)
    funding_8h: Array  # [N] f  base rate per 8 h (dimensionless)
    funding_period_ms: Array  # [] i  ms (8 h)
    funding_first_ms: Array  # [] i  first settlement time, ms
    # Passive fills (§3.5): p = 1 − exp(−A exp(−k δ) Δt), filled fraction U[min, max]
    fill_a: Array  # [N] f  A_v, s⁻¹
    fill_k: Array  # [N] f  k_v, per USD
    fill_frac_min: Array  # [] f
    fill_frac_max: Array  # [] f
    # Synthetic ladder walked by IOC orders: level ℓ at touch ± ℓ·step, size touch·(1 + g ℓ)
    ladder_step_usd: Array  # [N] f  USD
    ladder_growth: Array  # [] f  g
    # Fees charged by the venue (bp; negative = rebate)
    maker_fee_bps: Array  # [N] f
    maker_rebate_bps: Array  # [N] f
    taker_fee_bps: Array  # [N] f
    # Isolated margin per venue
    collateral_usd: Array  # [N] f  initial collateral, USD
    maint_margin_ratio: Array  # [N] f  maintenance margin / notional
    leverage: Array  # [N] f  initial margin = notional / leverage
    flat_dist_liq_sigma: Array  # [] f  dist_liq reported where no liquidation price exists


@struct.dataclass
class AccountState:
    """Exchange-side isolated-margin account per venue."""

    position_tao: Array  # [N] f
    entry_price: Array  # [N] f  average entry (0 when flat)
    collateral_usd: Array  # [N] f  initial collateral + realised − fees − funding paid


@struct.dataclass
class PendingIOC:
    """In-flight IOC orders (latency buffer), one slot per purpose × venue."""

    valid: Array  # [2, N] bool
    side: Array  # [2, N] i  +1 buy, −1 sell
    size: Array  # [2, N] f  TAO
    price: Array  # [2, N] f  limit price
    due_tick: Array  # [2, N] i  tick whose book it executes against
    rank: Array  # [2, N] i  emission rank (exit plan order; venue index for hedges)


@struct.dataclass
class MarketState:
    """Everything the canonical simulator carries from tick to tick."""

    log_s: (
        Array  # [] f  ln(S/s0) of the last emitted tick (0 initially; relative for f32 precision)
    )
    vol_regime: Array  # [] i  0 normal, 1 high
    basis: Array  # [N] f  relative basis of the last emitted tick (b̄ initially)
    funding_8h: Array  # [N] f  rate in force at the last tick
    next_settle_ms: Array  # [] i  next funding settlement time
    stale_left: Array  # [N] i  remaining ticks of the current stale window
    disable_start: Array  # [N] i  per-episode disable window [start, end) in ticks
    disable_end: Array  # [N] i
    tick: Array  # [] i  index of the next tick to emit
    account: AccountState
    pending: PendingIOC


@struct.dataclass
class MarketView:
    """The true book and market facts of one tick (execution trades against it)."""

    tick: Array  # [] i  index of this tick
    now_ms: Array  # [] i
    fair: Array  # [] f  latent S_t
    mid: Array  # [N] f  venue mid m_v
    bid: Array  # [N] f  best bid
    ask: Array  # [N] f  best ask
    spread: Array  # [N] f  ask − bid
    depth_usd: Array  # [N] f  top-of-book notional, both sides (D4)
    touch_size: Array  # [N] f  TAO at the touch, each side (bid·sz + ask·sz = depth)
    thin: Array  # [N] bool  thin-book event this tick
    stale: Array  # [N] bool  stale window (no book update published)
    outage: Array  # [N] bool  venue out (scenario or per-episode disable)
    book_updated: Array  # [N] bool  = ~stale & ~outage
    funding_8h: Array  # [N] f
    settle: Array  # [N] bool  funding settled at this tick
    funding_paid_usd: Array  # [N] f  funding paid by the account at this tick (+ = paid)
    latency_ticks: Array  # [] i  ceil(latency/Δt), clipped to [0, max_latency_ticks]
    n_jumps: Array  # [] i  Poisson jump count of this tick
    vol_regime: Array  # [] i


@struct.dataclass
class ExecReport:
    """Per-venue execution statistics of one call; `[N]` each."""

    maker_fills: Array  # [N] i  MM fills
    taker_fills: Array  # [N] i  IOC fills
    maker_tao: Array  # [N] f  MM volume
    taker_tao: Array  # [N] f  IOC volume
    fees_usd: Array  # [N] f  fees paid (negative = rebate received)
    slippage_usd: Array  # [N] f  IOC Σ |avg price − touch|·size
    rejected: Array  # [N] i  orders rejected (outage venue, or IOC slot busy in flight)


@struct.dataclass
class MarketNoise:
    """All per-tick random numbers (`[T, ...]`; one tick is the same tree without `[T]`)."""

    z: Array  # [T] f  N(0,1), diffusion (also drives spread widening |Z|)
    z_jump: Array  # [T] f  N(0,1), jump sum = sqrt(n)·σ_J·z_jump
    eps_basis: Array  # [T, N] f  N(0,1), basis AR(1)
    u_jump: Array  # [T] f  U[0,1), Poisson inverse CDF
    u_regime: Array  # [T] f  U[0,1), regime switch
    u_stale: Array  # [T, N] f  U[0,1), stale start (< p) and duration (u/p)
    u_thin: Array  # [T, N] f  U[0,1), thin book
    u_fill: Array  # [T, N, 2] f  U[0,1), passive fill (< p) and fraction (u/p)


@struct.dataclass
class EpisodeNoise:
    """Per-episode random numbers (disable events, SIMULATION §2.5)."""

    u_disable: Array  # [N] f  U[0,1): disabled iff < disable_prob
    u_start: Array  # [N] f  start tick = floor(u·T)
    u_len: Array  # [N] f  duration = lo + floor(u·(hi − lo + 1))


# ---------------------------------------------------------------------------------------------
# Defaults
# ---------------------------------------------------------------------------------------------


def default_market_params(
    cfg: StrategyConfig | None = None, n_venues: int = 5, **overrides: Any
) -> MarketParams:
    """Market-model-v2 defaults (NumPy float64 / int64 leaves), see docs/simulator.md.

    Fees and the fill-intensity decay k come from the venue table of `cfg` (STRATEGY §1) when
    given, else from the default table values. Defaults are the deterministic DR preset (no
    events, no regime switching, no funding) with GBM noise at σ = VOL_REF per day.

    Args:
      cfg: strategy config supplying per-venue fees and k (its N wins over `n_venues`).
      n_venues: N when no config is given.
      **overrides: field name -> value (scalars broadcast to `[N]` for per-venue fields).
    """
    if cfg is not None:
        n = cfg.n_venues
        vt = cfg.venues
        maker = np.asarray(vt.maker_fee_bps, np.float64)
        rebate = np.asarray(vt.maker_rebate_bps, np.float64)
        taker = np.asarray(vt.taker_fee_bps, np.float64)
        k = np.asarray(vt.k, np.float64)
        tick = np.asarray(vt.tick_size, np.float64)
    else:
        n = n_venues
        base_k = np.array([1.5, 1.6, 1.4, 1.5, 1.5])
        base_maker = np.array([2.0, 1.5, 2.0, 2.0, 2.0])
        k = np.resize(base_k, n)
        maker = np.resize(base_maker, n)
        rebate = np.zeros(n)
        taker = np.full(n, 5.0)
        tick = np.full(n, 0.01)
    v = np.arange(n, dtype=np.float64)

    def f(x: float) -> np.ndarray:
        return np.asarray(x, np.float64)

    def i(x: int) -> np.ndarray:
        return np.asarray(x, np.int64)

    fields: dict[str, Any] = dict(
        dt_ms=f(250.0),
        s0=f(300.0),
        vol=f(0.028125),
        drift=f(0.0),
        jump_intensity=f(0.0),
        jump_sigma=f(0.0),
        vol_high_mult=f(2.0),
        regime_p_up=f(0.0),
        regime_p_down=f(0.0),
        vol_regime0=i(0),
        basis_mean=0.4 * v / 300.0,
        basis_rho=f(0.99),
        basis_sigma=f(2e-5),
        spread_base=0.4 + 0.02 * v,
        spread_mult=f(1.0),
        spread_offset=np.zeros(n),
        spread_kappa=f(0.0),
        spread_min=f(0.01),
        depth_usd=np.full(n, 10_000.0),
        thin_prob=f(0.0),
        thin_mult=f(1.0),
        stale_prob=f(0.0),
        stale_min_ticks=i(0),
        stale_max_ticks=i(0),
        disable_prob=f(0.0),
        disable_min_ticks=i(0),
        disable_max_ticks=i(0),
        funding_8h=np.zeros(n),
        funding_period_ms=i(FUNDING_PERIOD_MS),
        funding_first_ms=i(FUNDING_PERIOD_MS),
        fill_a=np.ones(n),
        fill_k=k.copy(),
        fill_frac_min=f(1.0),
        fill_frac_max=f(1.0),
        ladder_step_usd=tick.copy(),
        ladder_growth=f(0.1),
        maker_fee_bps=maker.copy(),
        maker_rebate_bps=rebate.copy(),
        taker_fee_bps=taker.copy(),
        collateral_usd=np.full(n, 10_000.0),
        maint_margin_ratio=np.full(n, 0.05),
        leverage=np.full(n, 10.0),
        flat_dist_liq_sigma=f(10.0),
    )
    per_venue = {k_ for k_, x in fields.items() if np.ndim(x) == 1}
    for name, val in overrides.items():
        if name not in fields:
            raise KeyError(f"MarketParams has no field {name!r}")
        arr = np.asarray(val, dtype=fields[name].dtype)
        if name in per_venue:
            arr = np.broadcast_to(arr, (n,)).copy()
        fields[name] = arr
    return MarketParams(**fields)


# ---------------------------------------------------------------------------------------------
# Keys and noise
# ---------------------------------------------------------------------------------------------


def sim_keys(key: Array) -> tuple[Array, Array, Array, Array]:
    """SIMULATION §6.9: split the episode key once into `(k_dr, k_market, k_fill, k_events)`."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    k_dr, k_market, k_fill, k_events = jax.random.split(key, 4)
    return k_dr, k_market, k_fill, k_events


_EPISODE_COUNTER = np.uint32(0xFFFFFFFF)  # tick counter reserved for per-episode draws


def _uniforms(keys: Array, ticks: Array, width: int, dtype: Any) -> Array:
    """U[0,1) for every (stream key, tick, j < width): `[T, S, width]`.

    Counter-based: the words of tick t are threefry2x32(key_s, (t, c)) for counters c, i.e. a
    fold-in of the tick into the stream key, hashed once. Each hash gives two 32-bit words:
    float32 uses one word per value (23 mantissa bits), float64 two (52 bits). All streams and
    ticks go through ONE batched threefry call (threefry dominates both the run time and the
    compile time of the draws).
    """
    n_t = ticks.shape[0]
    wide = np.dtype(dtype) == np.float64
    n_c = width if wide else (width + 1) // 2  # counters (= hashes) per tick and stream
    x0 = jnp.broadcast_to(ticks.astype(jnp.uint32)[:, None], (n_t, n_c)).reshape(-1)
    x1 = jnp.broadcast_to(jnp.arange(n_c, dtype=jnp.uint32)[None, :], (n_t, n_c)).reshape(-1)
    words = jax.vmap(lambda k: threefry_2x32((k[0], k[1]), jnp.concatenate([x0, x1])))(keys)
    first = words[:, : n_t * n_c].reshape(-1, n_t, n_c)  # [S, T, n_c]
    second = words[:, n_t * n_c :].reshape(-1, n_t, n_c)
    if wide:
        bits = (first.astype(jnp.uint64) << 32) | second.astype(jnp.uint64)
        mant = (bits >> 12) | np.uint64(0x3FF0000000000000)
        u = jax.lax.bitcast_convert_type(mant, jnp.float64) - 1.0
    else:
        w = jnp.concatenate([first, second], axis=-1)[..., :width]
        mant = (w >> 9) | np.uint32(0x3F800000)
        u = (jax.lax.bitcast_convert_type(mant, jnp.float32) - 1.0).astype(dtype)
    return jnp.transpose(u, (1, 0, 2))


def _normal_from_uniform(u: Array) -> Array:
    """N(0,1) from U[0,1) as `jax.random.normal` does it: sqrt(2)·erfinv(max(2u − 1, −1⁺))."""
    lo = np.nextafter(np.array(-1.0, u.dtype), np.array(0.0, u.dtype))
    return np.sqrt(2.0).astype(u.dtype) * jax.scipy.special.erfinv(jnp.maximum(2.0 * u - 1.0, lo))


def draw_market_noise(
    key: Array, n_ticks: int, static: StaticSimParams, t0: Array = 0, dtype: Any = None
) -> MarketNoise:
    """Draw the noise of ticks `t0 … t0 + n_ticks − 1` for one episode.

    Streams (SIMULATION §6.9): market (z, z_jump, ε_basis, u_jump, u_regime) from `k_market`,
    events (u_stale, u_thin) from `k_events`, fills (u_fill) from `k_fill`; tick t of a stream
    hashes the counter (t, j) with the stream key. One threefry call for the whole block. The
    values of tick t depend only on (key, t), not on chunking, batch size or other draws.

    Args:
      key: the episode key (`PRNGKey(seed)`), split per :func:`sim_keys`.
      n_ticks: static number of ticks in the block.
      static: fixes N.
      t0: first tick index (may be traced, e.g. a chunk offset inside a scan).
      dtype: float dtype (default: JAX's default float, float64 under x64).
    Returns:
      :class:`MarketNoise` with leading axis `[n_ticks]`.
    """
    dtype = dtype or jnp.zeros(()).dtype
    n = static.n_venues
    _, k_market, k_fill, k_events = sim_keys(key)
    width = max(static.n_market_uniforms, static.n_event_uniforms, static.n_fill_uniforms)
    ticks = jnp.asarray(t0) + jnp.arange(n_ticks)
    u = _uniforms(jnp.stack([k_market, k_events, k_fill]), ticks, width, dtype)
    um = u[:, 0, : static.n_market_uniforms]
    ue = u[:, 1, : static.n_event_uniforms]
    uf = u[:, 2, : static.n_fill_uniforms]
    zs = _normal_from_uniform(um[:, : 2 + n])
    return MarketNoise(
        z=zs[:, 0],
        z_jump=zs[:, 1],
        eps_basis=zs[:, 2 : 2 + n],
        u_jump=um[:, 2 + n],
        u_regime=um[:, 3 + n],
        u_stale=ue[:, :n],
        u_thin=ue[:, n:],
        u_fill=uf.reshape(n_ticks, n, 2),
    )


def draw_episode_noise(key: Array, static: StaticSimParams, dtype: Any = None) -> EpisodeNoise:
    """Per-episode uniforms (disable events) from `k_events` at the reserved counter 2³²−1."""
    dtype = dtype or jnp.zeros(()).dtype
    n = static.n_venues
    _, _, _, k_events = sim_keys(key)
    u = _uniforms(k_events[None], jnp.asarray([_EPISODE_COUNTER]), 3 * n, dtype)[0, 0]
    return EpisodeNoise(u_disable=u[:n], u_start=u[n : 2 * n], u_len=u[2 * n :])


def noise_at(noise: Any, t: int) -> Any:
    """Row `t` of a flat `[T, ...]` struct (`MarketNoise`, `ScenarioSchedule`; host-side loops)."""
    return noise.replace(**{f.name: getattr(noise, f.name)[t] for f in dataclasses.fields(noise)})
