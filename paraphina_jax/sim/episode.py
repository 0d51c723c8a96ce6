"""The vectorised episode driver: `vmap` over episodes, `lax.scan` over ticks, chunked horizon.

One tick is `paraphina_jax.sim.episode_step.episode_tick` (market → funding → passive fills →
controls → strategy tick → shield → venue acknowledgement → IOC exits/hedges → accounting).
After the kill switch latches the episode is frozen by a mask (the kill tick itself runs, so its
cancel-all and best-effort exit execute). Ticks past the horizon are frozen too, so the last
chunk may be partial. Per-episode results are reduced inside the scan
(:class:`~paraphina_jax.sim.results.EpisodeResults`); per-tick telemetry is stacked only for the
first K episodes (static K), which run as a separate vmapped group.

The horizon runs as an outer Python loop over ONE jitted chunk program (`chunk_ticks` ticks, the
noise of the chunk drawn inside it from the episode keys), so memory does not grow with the
horizon and a host callback can report progress between chunks. Everything a scenario, a sweep or
domain randomisation changes is traced: changing market params, schedules or config values of the
same shapes never recompiles (see :func:`trace_count`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from paraphina_jax.config.types import StrategyConfig
from paraphina_jax.sim import devices as devices_
from paraphina_jax.sim.episode_step import (
    ControlsFn,
    EpisodeCarry,
    EpisodeParams,
    ShieldFn,
    accrue_funding,
    carry_results,
    freeze,
    identity_controls_fn,
    identity_shield,
    init_carry,
    ioc_exit_plan,
    settle_slots,
    tick_record,
    tick_step,
)
from paraphina_jax.sim.episode_step import (
    n_rules as n_rules_of,
)
from paraphina_jax.sim.results import EpisodeResults, Telemetry, TickRecord, episode_slice
from paraphina_jax.sim.schedule import ScenarioSchedule, identity_schedule
from paraphina_jax.sim.types import StaticSimParams, default_market_params, draw_market_noise
from paraphina_jax.strategy.types import TickOptions
from paraphina_jax.utils.lane_vmap import LAST, lane_vmap, loop_carry_axes, move_axes

Array = Any

__all__ = [
    "ControlsFn",
    "EpisodeParams",
    "EpisodeResults",
    "ShieldFn",
    "Telemetry",
    "TickRecord",
    "accrue_funding",
    "default_episode_params",
    "episode_keys",
    "episode_params_from_scenario",
    "episode_slice",
    "identity_controls_fn",
    "identity_shield",
    "ioc_exit_plan",
    "run_batch",
    "settle_slots",
    "trace_count",
]


# ---------------------------------------------------------------------------------------------
# Params
# ---------------------------------------------------------------------------------------------


def default_episode_params(
    cfg: StrategyConfig,
    n_ticks: int,
    *,
    initial_q_tao: float | None = None,
    start_ms: int = 0,
    latency_ms: float = 0.0,
    **market_overrides: Any,
) -> EpisodeParams:
    """Episode params without a scenario: market-model defaults, identity schedule.

    Args:
      cfg: strategy config (venue fees, k, N; its `loop.initial_q_tao` unless given).
      n_ticks: schedule rows T.
      initial_q_tao: q0 (default: the config's).
      start_ms: time of tick 0.
      latency_ms: constant order latency.
      **market_overrides: `MarketParams` fields (see `default_market_params`).
    """
    market = default_market_params(cfg, **market_overrides)
    q0 = float(cfg.loop.initial_q_tao) if initial_q_tao is None else float(initial_q_tao)
    return EpisodeParams(
        market=market,
        schedule=identity_schedule(n_ticks, cfg.n_venues, latency_ms=latency_ms),
        initial_q_tao=np.asarray(q0, np.float64),
        start_ms=np.asarray(start_ms, np.int64),
    )


def episode_params_from_scenario(
    spec: Any,
    cfg: StrategyConfig,
    *,
    n_ticks: int | None = None,
    **market_overrides: Any,
) -> EpisodeParams:
    """Compile a parsed scenario (`paraphina_jax.scenarios.ScenarioSpec`) into episode params.

    Realises the declared market (SIMULATION §2.3 [REC]): vol, drift, jumps per step, tick length
    `dt_ms`, maker/taker fees on every venue, baseline funding, q0, and the §2.4 overlays as the
    per-tick schedule (`scenarios.compile.compile_scenario`). The strategy config should already
    carry the scenario's overrides (`scenarios.compile.scenario_config`).

    Args:
      spec: the scenario.
      cfg: strategy config (N, venue table for k and tick sizes).
      n_ticks: schedule rows (default: the scenario's horizon); longer horizons repeat the last
        row, shorter ones truncate.
      **market_overrides: further `MarketParams` fields (e.g. fill intensity A).
    """
    from paraphina_jax.scenarios.compile import compile_scenario

    n = cfg.n_venues
    sp, sched = compile_scenario(spec, n)
    fields: dict[str, Any] = dict(
        dt_ms=float(sp.dt_ms),
        vol=float(sp.vol),
        drift=float(sp.drift),
        jump_intensity=float(sp.jump_intensity),
        jump_sigma=float(sp.jump_sigma),
        maker_fee_bps=np.asarray(sp.maker_fee_bps),
        taker_fee_bps=np.asarray(sp.taker_fee_bps),
        funding_8h=np.asarray(sp.funding_8h),
    )
    fields.update(market_overrides)
    market = default_market_params(cfg, **fields)
    t_want = spec.horizon.steps if n_ticks is None else int(n_ticks)
    sched = fit_schedule(sched, t_want)
    return EpisodeParams(
        market=market,
        schedule=sched,
        initial_q_tao=np.asarray(float(sp.init_q_tao), np.float64),
        start_ms=np.asarray(0, np.int64),
    )


def fit_schedule(sched: ScenarioSchedule, n_rows: int) -> ScenarioSchedule:
    """`sched` with exactly `n_rows` rows: truncated, or padded by repeating its last row."""

    def fit(x: Array) -> np.ndarray:
        x = np.asarray(x)
        if x.shape[0] >= n_rows:
            return x[:n_rows]
        pad = np.repeat(x[-1:], n_rows - x.shape[0], axis=0)
        return np.concatenate([x, pad], axis=0)

    return jax.tree.map(fit, sched)


# ---------------------------------------------------------------------------------------------
# Chunks and batches
# ---------------------------------------------------------------------------------------------

_TRACES = {"chunk": 0, "init": 0}


def trace_count() -> dict[str, int]:
    """How many times the chunk and init programs were traced in this process (a recompile
    counter: a call that hits the jit cache does not trace)."""
    return dict(_TRACES)


def _batched_axis(tree: Any, scalar: Any) -> int | None:
    """0 if `scalar` (a leaf that is `[]` per episode) carries a batch axis, else None."""
    return 0 if np.ndim(scalar) >= 1 else None


@partial(jax.jit, static_argnames=("cfg_axis", "p_axis", "static", "n_rules"))
def _init_batch(
    keys: Array,
    params: EpisodeParams,
    cfg: StrategyConfig,
    *,
    cfg_axis: int | None,
    p_axis: int | None,
    static: StaticSimParams,
    n_rules: int,
) -> EpisodeCarry:
    _TRACES["init"] += 1
    f = partial(init_carry, static=static, n_rules=n_rules)
    return jax.vmap(f, in_axes=(0, p_axis, cfg_axis))(keys, params, cfg)


def _chunk_body(
    carry: EpisodeCarry,
    keys: Array,
    params: EpisodeParams,
    cfg: StrategyConfig,
    t0: Array,
    *,
    cfg_axis: int | None,
    p_axis: int | None,
    static: StaticSimParams,
    opts: TickOptions,
    shield_fn: ShieldFn,
    controls_fn: ControlsFn,
    n_ticks: int,
    record: bool,
    record_proposed: bool,
    unroll: int,
    lanes: bool,
) -> tuple[EpisodeCarry, Any]:
    """`chunk_ticks` ticks of a batch (or of one device's shard of it).

    With `lanes` the tick is batched by :func:`paraphina_jax.utils.lane_vmap.lane_vmap` (batch
    axis innermost, the layout XLA:CPU vectorises); the carry is held in the layout the tick
    leaves it in (`loop_carry_axes`: batch-last except the scatter-updated markout rings) for
    the whole chunk and is batch-first again between chunks. Otherwise `jax.vmap`."""
    ct = static.chunk_ticks
    fd = carry.strategy.fair_value.dtype
    s_axis = (
        None if p_axis is None else 1
    )  # schedule rows after the slice: [ct, ...] / [B, ct, ...]

    def time_major(x: Array) -> Array:
        return jnp.swapaxes(x, 0, 1)

    noise = jax.vmap(lambda k: draw_market_noise(k, ct, static, t0, dtype=fd), out_axes=1)(keys)
    sched = jax.tree.map(
        lambda x: lax.dynamic_slice_in_dim(jnp.asarray(x), t0, ct, 0 if s_axis is None else 1),
        params.schedule,
    )
    if s_axis is not None:
        sched = jax.tree.map(time_major, sched)
    ts = t0 + jnp.arange(ct)
    step = partial(
        tick_step,
        static=static,
        opts=opts,
        shield_fn=shield_fn,
        controls_fn=controls_fn,
        n_ticks=n_ticks,
    )
    v_record = jax.vmap(tick_record)
    rest_axes = (p_axis, None, p_axis, cfg_axis)
    if lanes:
        noise = jax.tree.map(lambda x: jnp.moveaxis(x, 1, -1), noise)  # [ct, ..., B]
        first = (jax.tree.map(lambda x: x[0], noise), jax.tree.map(lambda x: x[0], sched))
        # one abstract trace of the tick (once per compiled chunk program)
        cax = loop_carry_axes(step, carry, (LAST, *rest_axes), *first, t0, params, cfg)
        v_step = lane_vmap(step, in_axes=(cax, LAST, *rest_axes), out_axes=(cax, 0, 0))
        v_freeze = lane_vmap(freeze, in_axes=(0, cax, cax), out_axes=cax)
        carry = move_axes(carry, 0, cax)
    else:
        cax = 0
        v_step = jax.vmap(step, in_axes=(0, 0, *rest_axes))
        v_freeze = jax.vmap(freeze)

    def body(cc: EpisodeCarry, xs: Any) -> Any:
        nz, sc, t = xs
        nc, active, aux = v_step(cc, nz, sc, t, params, cfg)
        # The freeze mask only where some episode of the batch is frozen (a batch-level cond).
        nc = lax.cond(jnp.all(active), lambda: nc, lambda: v_freeze(active, nc, cc))
        if not record:
            return nc, None
        rec, allowed, proposed, fills, interv, facts = v_record(move_axes(nc, cax, 0), active, aux)
        return nc, (rec, allowed, proposed if record_proposed else None, fills, interv, facts)

    carry, ys = lax.scan(body, carry, (noise, sched, ts), unroll=unroll)
    # carry batch-first between chunks; per-tick outputs [B, ct, ...]
    return move_axes(carry, cax, 0), jax.tree.map(time_major, ys)


@partial(
    jax.jit,
    static_argnames=(
        "cfg_axis",
        "p_axis",
        "static",
        "opts",
        "shield_fn",
        "controls_fn",
        "n_ticks",
        "record",
        "record_proposed",
        "unroll",
        "lanes",
        "mesh",
    ),
)
def _run_chunk(
    carry: EpisodeCarry,
    keys: Array,
    params: EpisodeParams,
    cfg: StrategyConfig,
    t0: Array,
    *,
    mesh: Mesh | None,
    **statics: Any,
) -> tuple[EpisodeCarry, Any]:
    """One jitted chunk program; with a mesh, each device runs :func:`_chunk_body` on its shard
    of the batch (`paraphina_jax.sim.devices`)."""
    _TRACES["chunk"] += 1
    body = partial(_chunk_body, **statics)
    batched = (True, True, statics["p_axis"] == 0, statics["cfg_axis"] == 0, False)
    return devices_.over_mesh(body, mesh, batched)(carry, keys, params, cfg, t0)


def _lay_out(carry: EpisodeCarry, mesh: Mesh | None) -> EpisodeCarry:
    """The carry split over the mesh by episode, the same layout for every chunk call (the jit
    cache keys on the inputs' shardings: a carry laid out differently would compile the chunk
    program again)."""
    if mesh is None:
        return carry
    return jax.device_put(carry, NamedSharding(mesh, P(devices_.AXIS)))


def _as_keys(keys_or_seeds: Any) -> Array:
    k = np.asarray(keys_or_seeds)
    if k.ndim == 2 and k.shape[1] == 2:
        return jnp.asarray(k, jnp.uint32)
    if k.ndim == 1:
        return jax.vmap(lambda s: jax.random.key_data(jax.random.key(s)))(
            jnp.asarray(k.astype(np.int64) & 0xFFFFFFFF, jnp.uint32)
        )
    raise ValueError(f"keys: shape {k.shape} (allowed: seeds [B] or keys [B, 2])")


def episode_keys(seeds: Any) -> Array:
    """`[B, 2]` uint32 episode keys `PRNGKey(seed)` for integer seeds `[B]` (low 32 bits)."""
    return _as_keys(np.atleast_1d(np.asarray(seeds)))


def _take(tree: Any, axis: int | None, sl: slice) -> Any:
    return tree if axis is None else jax.tree.map(lambda x: x[sl], tree)


def _prepare_params(params: EpisodeParams, n_rows: int) -> tuple[EpisodeParams, int | None]:
    """Schedule padded to `n_rows` rows; the batch axis (0 or None) of the params."""
    p_axis = _batched_axis(params, params.market.s0)
    lead = 1 if p_axis == 0 else 0

    def fit(x: Any) -> Any:
        x = np.asarray(x)
        t = x.shape[lead]
        if t >= n_rows:
            return x[(slice(None),) * lead + (slice(0, n_rows),)]
        last = x[(slice(None),) * lead + (slice(t - 1, t),)]
        pad = np.repeat(last, n_rows - t, axis=lead)
        return np.concatenate([x, pad], axis=lead)

    return params.replace(schedule=jax.tree.map(fit, params.schedule)), p_axis


def run_batch(
    keys: Any,
    params: EpisodeParams,
    cfg: StrategyConfig,
    static: StaticSimParams,
    *,
    n_ticks: int,
    chunk_ticks: int,
    telemetry_episodes: int = 0,
    shield_fn: ShieldFn = identity_shield,
    controls_fn: ControlsFn | None = None,
    on_chunk: Callable[[int], None] | None = None,
    opts: TickOptions = TickOptions(),
    unroll: int = 1,
    devices: int | None = None,
    lanes: bool = True,
) -> tuple[EpisodeResults, Telemetry | None]:
    """Run B episodes of `n_ticks` ticks.

    Args:
      keys: episode keys `[B, 2]` uint32, or integer seeds `[B]` (key = `PRNGKey(seed)`).
      params: :class:`EpisodeParams`, one for all episodes (leaves `[]`, `[N]`, `[T, ...]`) or
        batched (leading `[B]` on every leaf). The schedule needs ≥ 1 row; it is padded (last
        row repeated) or truncated to the chunk grid.
      cfg: strategy config, unbatched or batched (leading `[B]` on every leaf; detected from
        `cfg.risk.daily_loss_limit`). Its static fields (flags, N) fix the program.
      static: shape-fixing sim settings; its `n_ticks` / `chunk_ticks` are replaced by the
        arguments.
      n_ticks: horizon T (static; ticks ≥ T are frozen).
      chunk_ticks: ticks per jitted chunk (static); memory is O(B·chunk_ticks) with telemetry.
      telemetry_episodes: K, per-tick telemetry of episodes 0…K−1 (static; 0 = none).
      shield_fn: `(state, out, view, cfg) -> (allowed out, interventions [R] int32)` (static).
      controls_fn: `(state, view, t) -> Controls` (static; None = identity).
      on_chunk: host callback `on_chunk(ticks_done)` after each chunk.
      opts: strategy tick scheduling options (static).
      unroll: `lax.scan` unroll factor (static).
      devices: local devices of the default backend to shard the batch over (None = all; 1 = no
        sharding). A group of episodes is padded to a multiple of the device count with copies
        of its last episode, which are run and dropped; results do not depend on the sharding.
      lanes: batch the tick with the batch axis innermost (`utils.lane_vmap`, the fast layout
        on the CPU); False batches it with `jax.vmap`. The same results per episode, up to the
        last bits of float arithmetic that XLA:CPU associates differently in the two layouts
        (fused multiply-adds); float32 trajectories can then diverge, as across batch sizes.

    Returns:
      `(results [B], telemetry [K, T] or None)` with NumPy leaves.
    """
    if n_ticks < 1 or chunk_ticks < 1:
        raise ValueError(f"n_ticks={n_ticks}, chunk_ticks={chunk_ticks} (allowed: integers ≥ 1)")
    keys = _as_keys(keys)
    b = int(keys.shape[0])
    k_tel = int(telemetry_episodes)
    if not 0 <= k_tel <= b:
        raise ValueError(f"telemetry_episodes={k_tel} (allowed: 0 … {b})")
    controls_fn = controls_fn or identity_controls_fn
    static = dataclasses.replace(static, n_ticks=n_ticks, chunk_ticks=chunk_ticks)
    n_chunks = -(-n_ticks // chunk_ticks)
    params, p_axis = _prepare_params(params, n_chunks * chunk_ticks)
    cfg_axis = _batched_axis(cfg, cfg.risk.daily_loss_limit)
    n_rules = n_rules_of(
        shield_fn, cfg if cfg_axis is None else jax.tree.map(lambda x: x[0], cfg), static
    )
    record_proposed = shield_fn is not identity_shield
    groups = [(slice(0, k_tel), True), (slice(k_tel, b), False)]
    groups = [(sl, rec) for sl, rec in groups if sl.stop > sl.start]

    state = []
    for sl, rec in groups:
        size = sl.stop - sl.start
        mesh = devices_.episode_mesh(devices, size)
        padded = devices_.padded_size(size, mesh)
        gk = devices_.pad_rows(keys[sl], 0, padded)
        gp = devices_.pad_rows(_take(params, p_axis, sl), p_axis, padded)
        gc = devices_.pad_rows(_take(cfg, cfg_axis, sl), cfg_axis, padded)
        carry = _init_batch(
            gk, gp, gc, cfg_axis=cfg_axis, p_axis=p_axis, static=static, n_rules=n_rules
        )
        carry = _lay_out(carry, mesh)
        state.append([carry, gk, gp, gc, rec, [], mesh, size])
    for ci in range(n_chunks):
        t0 = jnp.asarray(ci * chunk_ticks, jnp.int32)
        for g in state:
            carry, gk, gp, gc, rec, ys, mesh, size = g
            carry, y = _run_chunk(
                carry, gk, gp, gc, t0, mesh=mesh,
                cfg_axis=cfg_axis, p_axis=p_axis, static=static, opts=opts,
                shield_fn=shield_fn, controls_fn=controls_fn, n_ticks=n_ticks,
                record=rec, record_proposed=record_proposed, unroll=unroll, lanes=lanes,
            )  # fmt: skip
            g[0] = _lay_out(carry, mesh)
            if rec:
                ys.append(jax.tree.map(lambda x, size=size: x[:size], jax.device_get(y)))
        if on_chunk is not None:
            jax.block_until_ready([g[0] for g in state])
            on_chunk(min((ci + 1) * chunk_ticks, n_ticks))

    results = [
        jax.tree.map(lambda x, g=g: x[: g[7]], jax.device_get(carry_results(g[0]))) for g in state
    ]
    res = (
        results[0] if len(results) == 1 else jax.tree.map(lambda *xs: np.concatenate(xs), *results)
    )
    tel = None
    if k_tel > 0:
        ys = state[0][5]
        cat = jax.tree.map(lambda *xs: np.concatenate(xs, axis=1)[:, :n_ticks], *ys)
        rec, allowed, proposed, fills, interv, facts = cat
        tel = Telemetry(
            record=rec,
            actions=allowed,
            proposed=proposed,
            fills=fills,
            interventions=interv,
            shield_facts=facts,
        )
    return jax.tree.map(np.asarray, res), tel
