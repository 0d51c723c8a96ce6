"""`paraphina-jax scenarios {list,verify,generate,show}`: the scenario library v1 (SIMULATION §7).

* `list [DIR]`: table of id, category, profile, horizon, shock (exit 0; 1 on a schema error).
* `verify [DIR]`: check the manifest; exit 0 when clean, 1 listing each bad file by name.
* `generate [DIR]`: (re)write the library deterministically and seal it (exit 0).
* `show NAME`: the resolved scenario with defaults filled, as JSON (exit 0; 1 when refused).
"""

from __future__ import annotations

import argparse
import json
import sys

from paraphina_jax.scenarios.library import (
    LIBRARY_DIR,
    list_scenarios,
    resolve_scenario,
    verify_manifest,
    write_library,
)
from paraphina_jax.scenarios.types import ScenarioError

COLUMNS = ("id", "category", "profile", "horizon", "shock")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scenarios", help="scenario library v1: list, verify, generate, show")
    s = p.add_subparsers(dest="scenarios_cmd", required=True)
    ls = s.add_parser("list", help="table of the library's scenarios")
    ls.add_argument("dir", nargs="?", default=None, help=f"library directory ({LIBRARY_DIR})")
    vf = s.add_parser("verify", help="check files against manifest_sha256.json (exit 1 if not)")
    vf.add_argument("dir", nargs="?", default=None, help=f"library directory ({LIBRARY_DIR})")
    gen = s.add_parser("generate", help="write the library deterministically and seal it")
    gen.add_argument("dir", nargs="?", default=None, help=f"output directory ({LIBRARY_DIR})")
    show = s.add_parser("show", help="print a resolved scenario (defaults filled) as JSON")
    show.add_argument("name", help="file path, scenario id or short name (basis_pos)")


def format_table(rows: list[tuple[str, ...]]) -> str:
    """Left-aligned text table with a header row and a dashed rule."""
    table = [COLUMNS, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    cmd = args.scenarios_cmd
    try:
        if cmd == "list":
            rows = [
                (r.scenario_id, r.category, r.profile, r.horizon, r.shock)
                for r in list_scenarios(args.dir)
            ]
            print(format_table(rows))
            return 0
        if cmd == "verify":
            target = args.dir if args.dir is not None else str(LIBRARY_DIR)
            problems = verify_manifest(target)
            if problems:
                print(f"scenarios verify: {target}: {len(problems)} problem(s)", file=sys.stderr)
                for line in problems:
                    print(f"  {line}", file=sys.stderr)
                return 1
            print(f"scenarios verify: {target}: ok")
            return 0
        if cmd == "generate":
            written = write_library(args.dir)
            print(f"scenarios generate: wrote {len(written)} files under {written[-1].parent}")
            return 0
        if cmd == "show":
            print(json.dumps(resolve_scenario(args.name).to_dict(), indent=2))
            return 0
    except ScenarioError as e:
        print(f"scenarios {cmd}: {e}", file=sys.stderr)
        return 1
    print(f"scenarios: unknown subcommand {cmd!r}", file=sys.stderr)
    return 2
