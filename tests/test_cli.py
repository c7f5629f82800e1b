"""The command table: every listed subcommand has its module and registers its parser."""

from __future__ import annotations

import argparse

import pytest

from fad import cli
from fad.cli import COMMANDS, build_parser, main


def test_every_listed_command_is_registered() -> None:
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(COMMANDS)


def test_a_missing_command_module_is_an_error_not_a_silent_skip(monkeypatch) -> None:
    monkeypatch.setattr("fad.cli.COMMANDS", (*COMMANDS, "no_such_command"))
    with pytest.raises(ModuleNotFoundError, match="fad.commands.no_such_command"):
        build_parser()


@pytest.mark.parametrize(
    ("text", "bounds", "message"),
    [
        ("100", (), "--size '100': expected HxW"),
        ("96by128", (32, 4096), "expected HxW"),
        ("0x5", (), "--size '0x5': each side must be >= 1"),
        ("8x128", (32, 4096), "--size '8x128': each side must be in [32, 4096]"),
    ],
)
def test_parse_size_names_the_value(text, bounds, message) -> None:
    from fad.commands.common import parse_size
    from fad.errors import FadError

    with pytest.raises(FadError, match=message.replace("[", r"\[")):
        parse_size(text, *bounds)


def test_parse_size_reads_height_then_width() -> None:
    from fad.commands.common import parse_size

    assert parse_size("100X152") == (100, 152)
    assert parse_size("800x1333", 32, 4096) == (800, 1333)


@pytest.mark.parametrize(
    "argv", [["config", "--config-file", "missing.yaml"], ["genotype", "show", "paper"]]
)
def test_every_command_leaves_its_process_group_before_returning(argv, monkeypatch, capsys):
    """A gloo group left to the interpreter's teardown can abort a torchrun rank after its work."""
    import fad.runtime.distributed as distributed

    left = []
    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda: left.append(True))
    main(argv)  # an error or a success alike
    assert left == [True]


def test_flags_after_the_overrides_reach_their_subcommand_nested_or_not(capsys) -> None:
    parser = cli.build_parser()
    argv = ["study", "random", "--config-file", "c.yaml", "SEED", "3", "--num", "4", "--help"]
    hoisted = cli._hoist_flags(parser, argv)
    assert hoisted[:2] == ["study", "random"] and hoisted[-2:] == ["SEED", "3"]
    args = parser.parse_args(hoisted[:-3] + hoisted[-2:])  # without --help
    assert (args.num, args.opts) == (4, ["SEED", "3"])
    with pytest.raises(SystemExit):
        parser.parse_args(hoisted)
    assert capsys.readouterr().out.startswith("usage: fad study random")
    train = cli._hoist_flags(parser, ["train", "--config-file", "c", "K", "V", "--skip-test"])
    assert train == ["train", "--config-file", "c", "--skip-test", "K", "V"]
