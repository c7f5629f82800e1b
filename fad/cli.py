"""The `fad` command line: thin subcommands that parse, build and run.

Each subcommand lives in `fad/commands/<name>.py` and exposes `register(subparsers)`, which adds
its parser and sets `func` to a callable taking the parsed namespace and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from fad.errors import FadError

COMMANDS = ("train", "eval", "search", "predict", "demo", "config", "data", "genotype", "plot")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fad",
        description="FAD: fast search of one-stage detector heads (RepShare) and FCOS training.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"fad.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"fad.commands.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FadError as exc:
        print(f"fad {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fad {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
