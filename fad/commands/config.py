"""`fad config --config-file F [KEY VALUE ...]`: print the merged config (or the error)."""

from __future__ import annotations

import argparse

from fad.commands.common import add_config_args, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="print the merged, validated config")
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(config_from_args(args).dump(), end="")
    return 0
