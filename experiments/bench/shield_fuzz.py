"""Shield fuzz: ≥ 1,000,000 vmapped adversarial cases through the JAX twin (float64), every one
checked by the JAX port of the invariant checker; a sample also through the NumPy reference
shield and checker, compared with the twin exactly (masks, counts, sizes bit for bit).

    python experiments/bench/shield_fuzz.py [--cases 1048576] [--batch 65536]
        [--ref-cases 20000] [--seed 0] [--no-write]

Cases come from `safety_shield.fuzz.random_case` (hostile facts and proposed flat order
lists, see its docstring). Exit 1 if any violation or mismatch is found. Writes the figures
to docs/BENCHMARKS.md, section "Shield fuzz".
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench_docs import machine, write_section  # noqa: E402

from paraphina_jax.config import make_config  # noqa: E402
from paraphina_jax.config.types import Flags  # noqa: E402
from paraphina_jax.utils.x64 import enable_x64  # noqa: E402
from safety_shield import checks, fuzz, reference, twin  # noqa: E402
from safety_shield.types import N_RULES, RULE_NAMES, order_layout  # noqa: E402


def make_fns(cfg, layout):
    def one(key):
        f, o = fuzz.random_case(key, layout)
        allowed, rec = twin.shield_orders(f, o, layout, cfg)
        return (
            fuzz.count_violations(f, allowed, layout, cfg),
            fuzz.count_violations(f, o, layout, cfg),
            rec.interventions,
        )

    def summary(keys):
        viol, viol_in, interv = jax.vmap(one)(keys)
        return viol.sum(0), (viol_in.sum(1) > 0).sum(), interv.sum(0)

    def full(keys):
        def g(key):
            f, o = fuzz.random_case(key, layout)
            allowed, rec = twin.shield_orders(f, o, layout, cfg)
            return f, o, allowed, rec

        return jax.vmap(g)(keys)

    return jax.jit(summary), jax.jit(full)


def reference_sample(full, keys, cfg, layout) -> tuple[int, int, int]:
    """(cases, twin/reference mismatches, reference-checker violations) on `keys`."""
    f, o, allowed, rec = jax.tree.map(np.asarray, full(keys))
    mism = viol = 0
    for i in range(keys.shape[0]):
        at = lambda t, i=i: jax.tree.map(lambda x: x[i], t)  # noqa: E731
        fi, oi, ai, ri = at(f), at(o), at(allowed), at(rec)
        r_o, r_rec = reference.shield_orders(fi, oi, layout, cfg)
        same = (
            np.array_equal(r_o.valid, ai.valid)
            and np.array_equal(r_o.size.view(np.int64), ai.size.view(np.int64))
            and np.array_equal(r_o.price.view(np.int64), ai.price.view(np.int64))
            and np.array_equal(r_rec.interventions, ri.interventions)
            and np.array_equal(r_rec.venue_mask, ri.venue_mask)
        )
        mism += int(not same)
        viol += len(checks.violations_one(fi, r_o, layout, cfg))
    return keys.shape[0], mism, viol


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1 << 20)
    ap.add_argument("--batch", type=int, default=1 << 16)
    ap.add_argument("--ref-cases", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    n_batches = -(-args.cases // args.batch)
    ref_per_batch = -(-args.ref_cases // n_batches)
    rows = []
    for label, flags in (("default", Flags()), ("kill_best_effort", Flags(kill_best_effort=True))):
        cfg = make_config(flags=flags)
        layout = order_layout(cfg.n_venues)
        with enable_x64():
            summary, full = make_fns(cfg, layout)
            root = jax.random.key(args.seed)
            viol = np.zeros(N_RULES, np.int64)
            interv = np.zeros(N_RULES, np.int64)
            hostile = 0
            t0 = time.perf_counter()
            jax.block_until_ready(summary(jax.random.split(root, args.batch)))
            compile_s = time.perf_counter() - t0
            ref_n = ref_mism = ref_viol = 0
            wall = 0.0
            for b in range(n_batches):
                keys = jax.random.split(jax.random.fold_in(root, b), args.batch)
                t0 = time.perf_counter()
                v, h, it = jax.tree.map(np.asarray, summary(keys))
                wall += time.perf_counter() - t0
                viol += v
                interv += it
                hostile += int(h)
                n, m, rv = reference_sample(full, keys[:ref_per_batch], cfg, layout)
                ref_n, ref_mism, ref_viol = ref_n + n, ref_mism + m, ref_viol + rv
            cases = n_batches * args.batch
        rows.append(
            dict(
                label=label,
                cases=cases,
                hostile=hostile,
                viol=viol,
                interv=interv,
                rate=cases / wall,
                compile_s=compile_s,
                ref_n=ref_n,
                ref_mism=ref_mism,
                ref_viol=ref_viol,
            )
        )
        r = rows[-1]
        print(
            f"{label}: {cases:,} cases ({hostile:,} hostile before the shield), "
            f"{int(viol.sum())} violations after, {r['rate']:,.0f} cases/s "
            f"(compile {compile_s:.1f} s); reference on {ref_n:,}: {ref_mism} mismatches, "
            f"{ref_viol} violations",
            flush=True,
        )
    text = render(args, rows)
    print(text)
    if not args.no_write:
        write_section("shield-fuzz", text)
    bad = sum(int(r["viol"].sum()) + r["ref_mism"] + r["ref_viol"] for r in rows)
    return 1 if bad else 0


def render(args: argparse.Namespace, rows: list[dict]) -> str:
    lines = [
        "## Shield fuzz",
        "",
        f"Command: `python experiments/bench/shield_fuzz.py --cases {args.cases} "
        f"--batch {args.batch} --ref-cases {args.ref_cases} --seed {args.seed}`  ",
        f"Machine: {machine()} (CPU shared with other jobs while measured).",
        "",
        "Adversarial cases (`safety_shield.fuzz.random_case`: NaN/±inf/negative/enormous sizes "
        "and prices, prices through the book, malformed sides, orders on disabled/stale/toxic/out "
        "venues, after the kill, against breached delta/basis/loss/liquidation limits) through the "
        "JAX twin in float64; every case checked by the JAX invariant checker; a sample also "
        "through the NumPy reference shield and checker, compared bit for bit.",
        "",
        "| config | cases | hostile before | violations after | rate (cases/s, twin + checker) "
        "| compile s | reference sample | twin ≠ reference | reference-checker violations |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['cases']:,} | {r['hostile']:,} | {int(r['viol'].sum())} | "
            f"{r['rate']:,.0f} | {r['compile_s']:.1f} | {r['ref_n']:,} | {r['ref_mism']} | "
            f"{r['ref_viol']} |"
        )
    lines += ["", "Interventions per rule (default config, all cases):", ""]
    lines.append("| " + " | ".join(RULE_NAMES[:-1]) + " |")
    lines.append("|" + "---|" * (N_RULES - 1))
    lines.append("| " + " | ".join(f"{int(x):,}" for x in rows[0]["interv"][:-1]) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
