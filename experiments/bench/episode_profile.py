"""Where an episode tick spends its time: an XLA:CPU trace of one chunk program, every executed
kernel (thunk) attributed to the episode component it belongs to.

    python experiments/bench/episode_profile.py [--batch 1024] [--ticks 16] [--top 15] [--shield]

The components (`market_step`, `fill_quotes`, `apply_fills`, `strategy_tick` and its phases,
`execute_ioc`, …) are wrapped in `jax.named_scope`s for this process only (by re-binding the
names the episode modules call), the chunk program is traced with `jax.profiler`, and each
kernel's duration is charged to the scopes in its HLO `op_name`. The figures are µs per
env-step of kernel time (the profiler adds overhead, so use them as shares, not as throughput;
`episode_throughput.py` measures throughput). Nothing is written to docs/.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import glob
import gzip
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from paraphina_jax.sim import episode as E
from paraphina_jax.sim import episode_step as ES
from paraphina_jax.sim.types import StaticSimParams
from paraphina_jax.strategy import tick as TK

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_docs import run_config  # noqa: E402

EPISODE_PARTS = (
    "market_step",
    "accrue_funding",
    "fill_quotes",
    "apply_fills",
    "strategy_tick",
    "post_only_rejects",
    "settle_slots",
    "execute_ioc",
    "recompute_exposures",
    "freeze",
    "tick_record",
)
TICK_PARTS = (
    "apply_book_update",
    "apply_funding_update",
    "apply_account_snapshot",
    "update_fair_value_and_vol",
    "recompute_exposures",
    "update_toxicity",
    "apply_toxicity_floor",
    "force_disabled",
    "update_risk",
    "compute_quotes",
    "plan_orders",
    "apply_order_plan",
    "plan_exits",
    "plan_hedge",
    "kill_best_effort_exit",
)
_CONTROL = ("while", "conditional", "call", "cond")


def _scope(module: Any, name: str) -> None:
    f = getattr(module, name)

    @functools.wraps(f)
    def wrapped(*a: Any, **k: Any) -> Any:
        with jax.named_scope("S_" + name):
            return f(*a, **k)

    setattr(module, name, wrapped)


def instrument() -> None:
    """Wrap the episode's and the tick's components in named scopes (this process only)."""
    for n in EPISODE_PARTS:
        _scope(ES, n)
    for n in ("freeze", "tick_record", "tick_step"):
        setattr(E, n, getattr(ES, n))
    for n in TICK_PARTS:
        if hasattr(TK, n):
            _scope(TK, n)


def profile(
    b: int, n_ticks: int, shield: bool = False, lanes: bool = True
) -> tuple[dict[str, float], list[tuple[str, float, str]]]:
    """`({component path: µs per env-step}, [(kernel, µs per env-step, op_name)])`; `shield`
    plugs in the safety shield (orders and controls) as `shield_overhead.py` does; `lanes`
    batches the tick lane-last (`run_batch(lanes=...)`)."""
    instrument()
    cfg = run_config()
    hooks: dict[str, Any] = dict(shield_fn=E.identity_shield, controls_fn=E.identity_controls_fn)
    if shield:
        from safety_shield.controls import shielded_controls_fn
        from safety_shield.twin import shield_hook

        scoped_shield = jax.named_scope("S_shield")(shield_hook)
        hooks = dict(
            shield_fn=scoped_shield,
            controls_fn=shielded_controls_fn(E.identity_controls_fn, cfg.n_venues),
        )
    params = E.default_episode_params(cfg, n_ticks, vol=0.5, fill_a=np.full(cfg.n_venues, 20.0))
    static = StaticSimParams(n_venues=cfg.n_venues)
    keys = E.episode_keys(np.arange(b))
    run = functools.partial(
        E.run_batch, keys, params, cfg, static, n_ticks=n_ticks, chunk_ticks=n_ticks,
        lanes=lanes, **hooks,
    )  # fmt: skip
    run()  # compile
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp, create_perfetto_trace=True):
            run()
        path = glob.glob(f"{tmp}/plugins/profile/*/perfetto_trace.json.gz")[0]
        trace = json.load(gzip.open(path))
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    st = dataclasses.replace(static, n_ticks=n_ticks, chunk_ticks=n_ticks)
    pp, p_axis = E._prepare_params(params, n_ticks)
    n_rules = E.n_rules_of(hooks["shield_fn"], cfg, st)
    carry = E._init_batch(keys, pp, cfg, cfg_axis=None, p_axis=p_axis, static=st, n_rules=n_rules)
    hlo = (
        E._run_chunk.lower(
            carry,
            keys,
            pp,
            cfg,
            jnp.asarray(0, jnp.int32),
            cfg_axis=None,
            p_axis=p_axis,
            static=st,
            opts=E.TickOptions(),
            n_ticks=n_ticks,
            **hooks,
            record=False,
            record_proposed=False,
            unroll=1,
            lanes=lanes,
            mesh=None,
        )  # fmt: skip
        .compile()
        .as_text()
    )
    op_name = {
        m.group(1): m.group(2)
        for m in re.finditer(r'^\s*(?:ROOT )?%([\w.\-]+) = .*?op_name="([^"]*)"', hlo, re.M)
    }
    steps = b * n_ticks
    by_part: collections.Counter[str] = collections.Counter()
    by_kernel: collections.Counter[str] = collections.Counter()
    for e in events:
        name = e.get("name", "")
        if e.get("ph") != "X" or name not in op_name or name.startswith(_CONTROL):
            continue
        scopes = re.findall(r"S_(\w+)", op_name[name])
        by_part["/".join(dict.fromkeys(scopes)) or "(driver)"] += e.get("dur", 0)
        by_kernel[name] += e.get("dur", 0)
    parts = {k: v / steps for k, v in by_part.most_common()}
    kernels = [(k, v / steps, op_name[k]) for k, v in by_kernel.most_common()]
    return parts, kernels


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--ticks", type=int, default=16)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--shield", action="store_true", help="with the safety shield plugged in")
    ap.add_argument("--vmap", action="store_true", help="batch the tick with jax.vmap, not lanes")
    ap.add_argument(
        "--only",
        default="",
        help="list only kernels whose op_name has this text ('(driver)': those of no component)",
    )
    args = ap.parse_args(argv)
    parts, kernels = profile(args.batch, args.ticks, args.shield, lanes=not args.vmap)
    total = sum(parts.values())
    print(f"kernel time {total:.2f} µs per env-step (B = {args.batch}, T = {args.ticks})")
    for k, v in parts.items():
        print(f"  {v:6.2f} µs  {100 * v / total:5.1f} %  {k}")
    print(f"top {args.top} kernels:")
    kernels = [
        kv
        for kv in kernels
        if args.only in kv[2] or (args.only == "(driver)" and "S_" not in kv[2])
    ]
    for k, v, op in kernels[: args.top]:
        print(f"  {v:6.2f} µs  {k:36s} {op[-90:]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
