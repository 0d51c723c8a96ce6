"""`paraphina-jax audit PATH`: replay a telemetry JSONL file through the safety invariants.

Every record's allowed (post-shield) actions are checked against the shield's rules with the
NumPy reference checker (safety_shield/audit.py); each violation is printed as
`t=<tick> venue <v> rule <index> (<name>)`. Exit 1 if there is any, 0 if none, 2 when the file
is unreadable or a record lacks a field (one-line error naming the file, line and field).
"""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="check a telemetry file against the safety invariants")
    p.add_argument("path", help="telemetry JSONL file (sim/telemetry.py format)")
    p.add_argument("--profile", default="balanced", help="risk profile of the run (balanced)")
    p.add_argument(
        "--kill-best-effort",
        action="store_true",
        help="the run allowed the kill best-effort exit (flags.kill_best_effort)",
    )
    p.add_argument(
        "--proposed",
        action="store_true",
        help="audit the pre-shield actions (the records' 'proposed' block) instead",
    )
    p.add_argument(
        "--max-report", type=int, default=50, help="violations printed at most (default 50)"
    )


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from paraphina_jax.config import ConfigError, make_config
    from safety_shield.audit import AuditError, audit_file
    from safety_shield.types import RULE_NAMES

    try:
        cfg = make_config(args.profile)
    except ConfigError as e:
        print(f"audit: {e}", file=sys.stderr)
        return 2
    if args.kill_best_effort:
        cfg = cfg.replace(flags=dataclasses.replace(cfg.flags, kill_best_effort=True))
    if args.max_report < 0:
        print(f"audit: --max-report={args.max_report} (allowed: ≥ 0)", file=sys.stderr)
        return 2
    try:
        n, found = audit_file(args.path, cfg, "proposed" if args.proposed else "actions")
    except AuditError as e:
        print(f"audit: {e}", file=sys.stderr)
        return 2
    for v in found[: args.max_report]:
        print(str(v))
    if len(found) > args.max_report:
        print(f"... {len(found) - args.max_report} more")
    by_rule = {}
    for v in found:
        by_rule[RULE_NAMES[v.rule]] = by_rule.get(RULE_NAMES[v.rule], 0) + 1
    summary = ", ".join(f"{k}: {c}" for k, c in sorted(by_rule.items())) or "none"
    print(f"audit: {args.path}: {n} records, {len(found)} violations ({summary})")
    return 1 if found else 0
