"""`paraphina-jax decide SNAPSHOT.json [--engine jax|reference] [--parity-settings]`.

Reads a `snapshot_version: 1` state snapshot (docs/snapshot.md), runs the mark-to-fair and risk
steps and then the decision phases on it (:mod:`paraphina_jax.decide`), and prints the decision
as JSON on stdout: per-venue quotes (or the gate that suppressed each side), the order plan,
exit intents, the hedge plan, regime, kill switch, fair value and scalars. Exit 0 on success;
an unreadable or invalid snapshot prints one line on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from paraphina_jax.decide import ENGINES, decide, decision_to_json
from paraphina_jax.snapshot import SnapshotError, load_snapshot


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "decide",
        help="decide quotes, exits and hedge from a JSON state snapshot",
        description=(
            "Decide from a state snapshot: mark to fair, risk step, then quotes, order plan, "
            "exits and hedge (see docs/snapshot.md)."
        ),
    )
    p.add_argument("snapshot", metavar="SNAPSHOT.json", help="snapshot file (snapshot_version 1)")
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="jax",
        help="jax: jitted JAX engine in float64 (default); reference: the NumPy engine",
    )
    p.add_argument(
        "--parity-settings",
        action="store_true",
        help="start from the reference-parity flags ([IMPL] side of every D-item) "
        "before the snapshot's overrides",
    )
    p.add_argument("--compact", action="store_true", help="one-line JSON instead of indented")


def run(args: argparse.Namespace) -> int:
    try:
        cfg, state, now_ms = load_snapshot(args.snapshot, parity=args.parity_settings)
    except SnapshotError as e:
        print(f"paraphina-jax decide: {e}", file=sys.stderr)
        return 2
    if args.engine == "jax" and args.parity_settings:
        from paraphina_jax.utils.x64 import request_ieee_exact_xla

        request_ieee_exact_xla()
    decision = decide(state, now_ms, cfg, args.engine)
    out = decision_to_json(
        decision, cfg, now_ms, engine=args.engine, parity_settings=args.parity_settings
    )
    text = json.dumps(out, allow_nan=False, indent=None if args.compact else 2)
    print(text)
    return 0
