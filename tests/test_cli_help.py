"""Every default a `--help` text states is the default the command really uses."""

from __future__ import annotations

import argparse
import re

from collector.cli import build_parser
from tests.conftest import run_cli

STATED = re.compile(r"default:? ([^;,)\s]+)")


def _subcommands(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                for inner, deeper in _subcommands(sub):
                    yield f"{name} {inner}", deeper


def _same(stated: str, real) -> bool:
    if isinstance(real, bool) or real is None:
        return False
    if isinstance(real, int | float):
        try:
            return float(stated) == float(real)
        except ValueError:
            return False
    return stated == str(real)


def test_every_stated_default_is_the_real_one():
    wrong = []
    for name, sub in _subcommands(build_parser()):
        formatter = sub._get_formatter()
        for action in sub._actions:
            if not action.help or action.default in (None, False, [], argparse.SUPPRESS):
                continue
            text = formatter._expand_help(action)
            for stated in STATED.findall(text):
                if stated[0].isdigit() and not _same(stated, action.default):
                    wrong.append(f"{name} {action.option_strings}: says {stated}, "
                                 f"is {action.default}")
    assert not wrong, "\n".join(wrong)


def test_replay_help_states_the_bound_it_applies():
    from collector.replay.robot import DEFAULT_BOUND_RAD

    result = run_cli("replay", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert f"RMS tracking error bound in rad (default {DEFAULT_BOUND_RAD:g})" in text
    assert "0.02" not in text
