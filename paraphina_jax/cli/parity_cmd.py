"""`paraphina-jax parity`: whole episodes in the JAX engine against the float64 NumPy reference.

Runs K episodes of T ticks through `sim.episode.run_batch` (vmapped, chunked, on whatever
backend JAX has) and the same K episodes through `reference.sim_episode.run_episode`, both on
the same exogenous draws, then reports per field the largest divergence and the first tick where
a discrete event (a fill, the risk regime, a venue status, the kill) differs.

Tolerances (docs/simulator.md): `--x64` (default) — discrete events identical and every PnL /
position / cash field within 1e-6 relative (|jax − ref| / max(|ref|, 1)); `--float32` — the same
draws at float32 precision: discrete events are reported, not required, and the continuous
fields must stay within 1e-1 (same measure) while the event paths agree; episodes whose event
paths diverge are reported and counted, and fail the run only when more than half diverge.
(Measured: identical events in 32 × 240 varied episodes; PnL within 1e-2, positions and cash
within 8e-2 — lot flooring of float32 sizes moves positions by whole lots.)
Exit 0 within tolerance, 1 beyond it, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np

X64_RTOL = 1e-6
F32_RTOL = 1e-1
F32_MAX_DIVERGED_FRACTION = 0.5


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("parity", help="whole episodes: JAX engine vs the float64 NumPy reference")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--scenario", default=None, help="library scenario id or short name")
    g.add_argument("--scenario-file", default=None, help="scenario YAML file")
    p.add_argument(
        "--profile", default=None, help="risk profile (default: scenario's / env / balanced)"
    )
    p.add_argument("--episodes", type=int, default=4)
    p.add_argument("--ticks", type=int, default=120)
    p.add_argument("--seed", type=int, default=0, help="episode k uses seed + k")
    p.add_argument("--chunk-ticks", type=int, default=None, help="ticks per jitted chunk")
    p.add_argument(
        "--varied",
        action="store_true",
        help="without a scenario: draw different market settings per episode (wide ranges)",
    )
    prec = p.add_mutually_exclusive_group()
    prec.add_argument("--x64", dest="x64", action="store_true", default=True)
    prec.add_argument("--float32", dest="x64", action="store_false")
    p.add_argument("--json", default=None, help="also write the report as JSON to this file")


def _err(msg: str) -> int:
    print(f"paraphina-jax parity: {msg}", file=sys.stderr)
    return 2


def build_inputs(args: argparse.Namespace) -> tuple[Any, Any, np.ndarray]:
    """(cfg, EpisodeParams — batched `[K]` when varied —, seeds `[K]`) from the arguments."""
    from paraphina_jax.config.env import config_from_env
    from paraphina_jax.sim.episode import default_episode_params, episode_params_from_scenario

    seeds = args.seed + np.arange(args.episodes, dtype=np.int64)
    if args.scenario or args.scenario_file:
        from paraphina_jax.scenarios.compile import scenario_config
        from paraphina_jax.scenarios.library import resolve_scenario
        from paraphina_jax.scenarios.schema import load_scenario

        spec = (
            load_scenario(args.scenario_file)
            if args.scenario_file
            else resolve_scenario(args.scenario)
        )
        cfg, _, _ = config_from_env(args.profile, os.environ, scenario_profile=spec.profile)
        cfg = scenario_config(spec, cfg)
        return cfg, episode_params_from_scenario(spec, cfg, n_ticks=args.ticks), seeds
    cfg, _, _ = config_from_env(args.profile, os.environ)
    if not args.varied:
        return cfg, default_episode_params(cfg, args.ticks), seeds
    return cfg, varied_episode_params(cfg, int(args.seed), args.episodes, args.ticks), seeds


def varied_episode_params(cfg: Any, seed: int, n_episodes: int, n_ticks: int) -> Any:
    """`[K]`-batched episode params over wide market settings (host RNG `seed`).

    Every mechanism of the market model is switched on with some odds
    (`sim.testing.random_market_params`); every second episode starts with an inventory in
    [−10, 10] TAO, every third runs a random scenario schedule, and half of them get a high
    passive-fill intensity (A ∈ [5, 50] s⁻¹) so that maker fills are frequent.
    """
    from paraphina_jax.sim.episode import default_episode_params
    from paraphina_jax.sim.testing import random_market_params, random_schedule
    from paraphina_jax.testing import stack

    rng = np.random.default_rng(seed)
    n = cfg.n_venues
    eps = []
    for i in range(n_episodes):
        mp = random_market_params(rng, n)
        if i % 2 == 0:
            mp = mp.replace(fill_a=rng.uniform(5.0, 50.0, n))
        q0 = float(rng.uniform(-10.0, 10.0)) if i % 2 else 0.0
        p = default_episode_params(cfg, n_ticks, initial_q_tao=q0)
        sched = random_schedule(rng, n_ticks, n, float(mp.dt_ms))
        eps.append(p.replace(market=mp, schedule=sched if i % 3 == 2 else p.schedule))
    return stack(eps)


def run_parity(
    cfg: Any,
    params: Any,
    seeds: np.ndarray,
    n_ticks: int,
    *,
    x64: bool = True,
    chunk_ticks: int | None = None,
) -> tuple[list[Any], dict[str, float], Any]:
    """Run both engines.

    Returns:
      (per-episode `EpisodeDivergence`, timings in seconds, the JAX `EpisodeResults [K]`).
    """
    import jax

    from paraphina_jax.reference.sim_episode import (
        compare_episode,
        draw_episode_inputs,
        run_episode,
    )
    from paraphina_jax.sim.episode import episode_keys, run_batch
    from paraphina_jax.sim.results import episode_slice
    from paraphina_jax.sim.types import StaticSimParams
    from paraphina_jax.utils.x64 import enable_x64

    k = len(seeds)
    chunk = chunk_ticks or min(n_ticks, 64)
    static = StaticSimParams(n_venues=cfg.n_venues)
    batched = np.ndim(params.market.s0) >= 1
    out: list[Any] = []
    with enable_x64(x64):
        keys = episode_keys(seeds)
        t0 = time.perf_counter()
        res, tel = run_batch(
            keys, params, cfg, static, n_ticks=n_ticks, chunk_ticks=chunk, telemetry_episodes=k
        )
        t_jax = time.perf_counter() - t0
        dtype = np.float64 if x64 else np.float32
        t0 = time.perf_counter()
        for i in range(k):
            p = jax.tree.map(lambda x, i=i: np.asarray(x)[i], params) if batched else params
            noise, ep = draw_episode_inputs(keys[i], n_ticks, static, dtype=dtype)
            rres, rtel = run_episode(
                noise, ep, p.market, p.schedule, cfg, static, n_ticks=n_ticks,
                initial_q_tao=float(np.asarray(p.initial_q_tao)),
                start_ms=int(np.asarray(p.start_ms)),
            )  # fmt: skip
            out.append(compare_episode(episode_slice(res, i), episode_slice(tel, i), rres, rtel))
        t_ref = time.perf_counter() - t0
    return out, {"jax_s": t_jax, "reference_s": t_ref}, res


def verdict(divs: list[Any], x64: bool) -> tuple[bool, str]:
    """Whether the divergences are within the documented tolerance, and why not."""
    if x64:
        bad = [i for i, d in enumerate(divs) if not d.ok(X64_RTOL, discrete=True)]
        return not bad, f"episodes beyond tolerance: {bad}" if bad else "ok"
    diverged = [i for i, d in enumerate(divs) if d.first_discrete_tick >= 0 or d.summary]
    same = [d for i, d in enumerate(divs) if i not in diverged]
    bad = [i for i, d in enumerate(divs) if i not in diverged and not d.ok(F32_RTOL, False)]
    frac = len(diverged) / max(len(divs), 1)
    ok = not bad and frac <= F32_MAX_DIVERGED_FRACTION and bool(same or not divs)
    why = f"event paths diverged in {len(diverged)}/{len(divs)}; beyond {F32_RTOL:g}: {bad}"
    return ok, "ok" if ok else why


def report(divs: list[Any], x64: bool) -> dict[str, Any]:
    """Per field: the largest divergence and (discrete) the first differing tick and episode."""
    fields: dict[str, Any] = {}
    for f in divs[0].max_rel if divs else {}:
        vals = [d.max_rel[f] for d in divs]
        fields[f] = {"max_rel": max(vals), "episode": int(np.argmax(vals))}
    events: dict[str, Any] = {}
    for f in divs[0].first_tick if divs else {}:
        hits = [(d.first_tick[f], i) for i, d in enumerate(divs) if d.first_tick[f] >= 0]
        t, e = min(hits) if hits else (-1, -1)
        events[f] = {"first_tick": t, "episode": e, "episodes_differing": len(hits)}
    summaries = {
        i: {k: list(v) for k, v in d.summary.items()} for i, d in enumerate(divs) if d.summary
    }
    ok, why = verdict(divs, x64)
    return {
        "precision": "float64" if x64 else "float32",
        "tolerance": {"rtol": X64_RTOL if x64 else F32_RTOL, "discrete_exact": x64},
        "episodes": len(divs),
        "continuous": fields,
        "discrete": events,
        "result_mismatches": summaries,
        "ok": ok,
        "verdict": why,
    }


def run(args: argparse.Namespace) -> int:
    if args.episodes < 1:
        return _err(f"--episodes: {args.episodes} (allowed: integer >= 1)")
    if args.ticks < 1:
        return _err(f"--ticks: {args.ticks} (allowed: integer >= 1)")
    if args.chunk_ticks is not None and args.chunk_ticks < 1:
        return _err(f"--chunk-ticks: {args.chunk_ticks} (allowed: integer >= 1)")
    if args.x64:
        from paraphina_jax.utils.x64 import request_ieee_exact_xla

        request_ieee_exact_xla()
    from paraphina_jax.config import ConfigError

    try:
        cfg, params, seeds = build_inputs(args)
    except (ConfigError, OSError) as e:
        return _err(str(e))
    divs, times, _ = run_parity(
        cfg, params, seeds, args.ticks, x64=args.x64, chunk_ticks=args.chunk_ticks
    )
    rep = report(divs, args.x64)
    rep["timing_s"] = times
    print(
        f"parity: {rep['episodes']} episodes x {args.ticks} ticks, {rep['precision']}, "
        f"rtol {rep['tolerance']['rtol']:g}, discrete exact: {rep['tolerance']['discrete_exact']}"
    )
    print(f"  {'field':<24} {'max rel. divergence':>20}  episode")
    for f, v in rep["continuous"].items():
        print(f"  {f:<24} {v['max_rel']:>20.3e}  {v['episode']}")
    print(f"  {'event':<24} {'first differing tick':>20}  episode (differing)")
    for f, v in rep["discrete"].items():
        print(f"  {f:<24} {v['first_tick']:>20}  {v['episode']} ({v['episodes_differing']})")
    for i, s in rep["result_mismatches"].items():
        print(f"  episode {i}: result mismatches {s}")
    print(f"  jax {times['jax_s']:.1f} s (incl. compile), reference {times['reference_s']:.1f} s")
    print(f"parity: {'OK' if rep['ok'] else 'FAIL'} ({rep['verdict']})")
    if args.json:
        from pathlib import Path

        path = Path(args.json)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(rep, indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    return 0 if rep["ok"] else 1
