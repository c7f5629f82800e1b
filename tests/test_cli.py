"""The command table: every listed subcommand has its module and registers its parser."""

from __future__ import annotations

import argparse

import pytest

from fad.cli import COMMANDS, build_parser


def test_every_listed_command_is_registered() -> None:
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(COMMANDS)


def test_a_missing_command_module_is_an_error_not_a_silent_skip(monkeypatch) -> None:
    monkeypatch.setattr("fad.cli.COMMANDS", (*COMMANDS, "no_such_command"))
    with pytest.raises(ModuleNotFoundError, match="fad.commands.no_such_command"):
        build_parser()
