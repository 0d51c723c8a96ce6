"""`paraphina-jax` command dispatcher."""

from __future__ import annotations

import argparse
import importlib
import sys

# command name -> module under paraphina_jax.cli providing add_parser(subparsers) and run(args)
COMMANDS = {
    "decide": "decide_cmd",
    "compat": "compat_cmd",
    "scenarios": "scenarios_cmd",
    "parity": "parity_cmd",
    "audit": "audit_cmd",
}


class UsageError(SystemExit):
    pass


def _available() -> dict[str, object]:
    mods = {}
    for name, mod in COMMANDS.items():
        try:
            mods[name] = importlib.import_module(f"paraphina_jax.cli.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"paraphina_jax.cli.{mod}":
                raise
    return mods


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "run":
        try:
            from paraphina_jax.cli import run_cmd
        except ModuleNotFoundError:
            print(
                "paraphina-jax: the 'run' command is not available in this build", file=sys.stderr
            )
            return 2
        return run_cmd.main(argv[1:])
    mods = _available()
    parser = argparse.ArgumentParser(
        prog="paraphina-jax",
        description="Multi-venue perp market making in pure JAX (run `paraphina-jax run` for the main job).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in mods.values():
        mod.add_parser(sub)  # type: ignore[attr-defined]
    if not argv:
        parser.print_help()
        return 2
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(mods[args.command].run(args))  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
