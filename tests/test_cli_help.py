"""Every default a `--help` text states is the default the command really uses."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys

import pytest

from collector.cli import build_parser
from tests.conftest import ROOT, run_cli

FORMAT1 = ROOT / "tests" / "data" / "format1_episode.h5"

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


@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_a_reader_that_goes_away_ends_the_command_quietly(unbuffered):
    """`collector inspect ... | head -1`: no traceback, the exit status of a closed pipe."""
    env = {**os.environ, "PYTHONUNBUFFERED": unbuffered}
    proc = subprocess.Popen([sys.executable, "-m", "collector", "inspect", str(FORMAT1)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before the first line
    _, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err and b"Exception ignored" not in err, err.decode()
    assert proc.returncode == 128 + signal.SIGPIPE
