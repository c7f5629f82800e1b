"""The `fad` command line: thin subcommands that parse, build and run.

Each subcommand lives in `fad/commands/<name>.py` and exposes `register(subparsers)`, which adds
its parser and sets `func` to a callable taking the parsed namespace and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from fad.errors import FadError
from fad.runtime.distributed import leave_process_group

COMMANDS = (
    "train",
    "eval",
    "search",
    "predict",
    "export",
    "demo",
    "study",
    "config",
    "data",
    "genotype",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fad",
        description="FAD: fast search of one-stage detector heads (RepShare) and FCOS training.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"fad.commands.{name}").register(sub)
    return parser


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def _hoist_flags(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Move `--flags` that follow the `KEY VALUE` overrides in front of them.

    The original tools took `--skip-test` or `--use-tensorboard` anywhere; argparse's REMAINDER
    would swallow them as overrides. Config keys never start with `--`, so this is unambiguous.
    """
    depth, command = 0, parser
    while depth < len(argv):  # descend to the innermost subcommand named (`fad study random`)
        sub = _subcommands(command)
        if sub is None or argv[depth] not in sub.choices:
            break
        command, depth = sub.choices[argv[depth]], depth + 1
    if depth == 0:
        return argv
    known = command._option_string_actions
    head, tail, rest = argv[:depth], [], argv[depth:]
    i, in_opts = 0, False
    while i < len(rest):
        token = rest[i]
        flag = token.split("=", 1)[0]
        if flag in known and (in_opts or token.startswith("--")):
            takes_value = known[flag].nargs != 0 and "=" not in token
            head += rest[i : i + 1 + int(takes_value)]
            i += 1 + int(takes_value)
            continue
        if not token.startswith("-"):
            in_opts = True
        tail.append(token)
        i += 1
    return head + tail


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(_hoist_flags(parser, argv))
    try:
        return int(args.func(args) or 0)
    except FadError as exc:
        print(f"fad {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fad {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        leave_process_group()


if __name__ == "__main__":
    raise SystemExit(main())
