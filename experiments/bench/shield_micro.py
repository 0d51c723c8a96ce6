"""Shield micro-benchmark: µs per env-step of the JAX twin alone, current vs a baseline copy.

    python experiments/bench/shield_micro.py [--batch 4096] [--iters 32] [--repeats 3]
        [--baseline FILE | --baseline-rev REV] [--rounds 3] [--cases 256]

Inputs: `--cases` distinct hostile environments (random strategy states from
`paraphina_jax.testing`, true books and adversarial / reckless `TickOutput`s from
`safety_shield.adversarial`, a third with every limit breached, random controls), tiled to
`--batch` and converted to float32 / int32 (the episode's dtypes). Each timed program is one
jitted `lax.scan` of `--iters` steps whose carry is the shielded `TickOutput` and the clipped
`Controls` (each step shields the previous step's output, and the state is threaded through
the loop, so nothing can be hoisted out of it), running
`jax.vmap(shield_hook)` and `jax.vmap(clip_controls)` per step and summing the counts. The
baseline is another copy of `safety_shield/twin.py` (a file, or `git show REV:...`), loaded as
its own module; both programs are timed in the same process, interleaved, for `--rounds` rounds
of `--repeats` calls each; reported: the median µs per env-step (wall / (batch · iters)) and
whether both programs returned the same outputs and counts.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from paraphina_jax.config import make_config  # noqa: E402
from paraphina_jax.testing import CASES, NOW_MS, random_controls, random_state, stack  # noqa: E402
from safety_shield import adversarial  # noqa: E402
from safety_shield import twin as current  # noqa: E402
from safety_shield.controls import clip_controls  # noqa: E402
from safety_shield.types import N_RULES  # noqa: E402

CFG = make_config()


def load_module(path: Path, name: str) -> ModuleType:
    """Import a twin copy from a file as module `name`."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def baseline_module(args: argparse.Namespace) -> ModuleType:
    if args.baseline:
        return load_module(Path(args.baseline), "twin_baseline")
    src = subprocess.run(
        ["git", "show", f"{args.baseline_rev}:safety_shield/twin.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "twin_baseline.py"
    path.write_text(src)
    return load_module(path, "twin_baseline")


def make_inputs(n_cases: int, batch: int, seed: int = 0) -> tuple[Any, Any, Any, Any]:
    """`(state, out, view, controls)` with a leading `[batch]` axis, float32 / int32 leaves."""
    rng = np.random.default_rng(seed)
    states, outs, views, ctrls = [], [], [], []
    for i in range(n_cases):
        state = random_state(rng, CFG, CASES[i % len(CASES)])
        if i % 3 == 2:  # every limit breached
            v = state.venues
            dist = np.where(rng.random(v.dist_liq_sigma.shape) < 0.5, 1.0, v.dist_liq_sigma)
            state = state.replace(
                venues=v.replace(dist_liq_sigma=np.asarray(dist)),
                delta_limit_usd=np.float64(abs(float(state.dollar_delta_usd)) * 0.5),
                basis_limit_hard_usd=np.float64(abs(float(state.basis_usd)) * 0.5),
                daily_pnl_total=np.float64(-abs(float(CFG.risk.daily_loss_limit)) - 1.0),
            )
        view = adversarial.random_view(rng, state, NOW_MS)
        out = adversarial.adversarial_output(rng, state, view, CFG, reckless=i % 5 == 4)
        states.append(state)
        views.append(view)
        outs.append(out)
        ctrls.append(random_controls(rng, CFG.n_venues))
    reps = -(-batch // n_cases)

    def tile(trees: list[Any]) -> Any:
        st = stack(trees)
        with warnings.catch_warnings():  # hostile 1e300 sizes overflow to inf in float32: fine
            warnings.simplefilter("ignore", RuntimeWarning)
            return jax.tree.map(lambda x: jnp.asarray(np.concatenate([x] * reps)[:batch]), st)

    return tile(states), tile(outs), tile(views), tile(ctrls)


def program(mod: ModuleType, iters: int) -> Any:
    """Jitted scan of `iters` shield steps (hook + controls clip) on the batch."""
    hook = jax.vmap(lambda s, o, v: mod.shield_hook(s, o, v, CFG))
    clip = jax.vmap(lambda c: getattr(mod, "clip_controls", clip_controls)(c, CFG.n_venues))

    def run(state: Any, out: Any, view: Any, ctrl: Any) -> Any:
        def body(carry: Any, _: Any) -> Any:
            o, c, tot, st = carry
            o, counts = hook(st, o, view)
            c, rec = clip(c)
            tot = tot + jnp.sum(counts, 0) + jnp.sum(rec.interventions, 0)
            # the state depends on the loop (by `+ 0·counts`, which XLA cannot fold for
            # floats), so the facts are derived every step as in an episode, not hoisted
            zero = (tot[0] * 0).astype(st.daily_pnl_total.dtype) * 0.0
            st = st.replace(daily_pnl_total=st.daily_pnl_total + zero)
            return (o, c, tot, st), None

        tot0 = jnp.zeros((N_RULES,), jnp.int32)
        (o, c, tot, _), _ = jax.lax.scan(body, (out, ctrl, tot0, state), None, length=iters)
        return o, c, tot

    return jax.jit(run)


def timed(fn: Any, args: tuple[Any, ...]) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0


def same(a: Any, b: Any) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(
        np.array_equal(np.asarray(x), np.asarray(y), equal_nan=np.asarray(x).dtype.kind == "f")
        for x, y in zip(la, lb)
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--iters", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cases", type=int, default=256)
    ap.add_argument("--baseline", default=None, help="a twin.py copy to compare against")
    ap.add_argument(
        "--baseline-rev", default="112e756", help="git rev of the baseline twin.py (pre-rewrite)"
    )
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args(argv)
    args_in = make_inputs(args.cases, args.batch)
    mods = {"current": current}
    if not args.no_baseline:
        mods = {"baseline": baseline_module(args), **mods}
    fns = {k: program(m, args.iters) for k, m in mods.items()}
    results, compile_s = {}, {}
    for k, fn in fns.items():
        t0 = time.perf_counter()
        results[k] = jax.block_until_ready(fn(*args_in))
        compile_s[k] = time.perf_counter() - t0
    walls: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(args.rounds):
        for k, fn in fns.items():
            walls[k].append(statistics.median(timed(fn, args_in) for _ in range(args.repeats)))
    steps = args.batch * args.iters
    us = {k: 1e6 * statistics.median(w) / steps for k, w in walls.items()}
    for k in fns:
        print(
            f"{k:9s}: {us[k]:.3f} µs/env-step (rounds {[f'{1e6 * w / steps:.3f}' for w in walls[k]]}"
            f", first call {compile_s[k]:.1f} s)"
        )
    if "baseline" in us:
        print(f"speed-up: {us['baseline'] / us['current']:.2f}x")
        eq = same(results["baseline"], results["current"])
        print(f"outputs and counts identical to the baseline: {eq}")
        tot = np.asarray(results["current"][2])
        print(f"interventions over the run: {tot.tolist()}")
        if not eq:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
