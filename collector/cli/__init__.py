"""The `collector` command. Each subcommand lives in its own module and registers itself here.

Every expected failure is a `CollectorError`: printed as one line, with its exit code.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from collector.cli import early_signals
from collector.errors import CollectorError, raised_by_us
from collector.tuning import tune_process

# the commands that handle SIGTERM and SIGINT themselves (a clean stop, exit 0, in any state)
HANDLE_SIGNALS = ("record", "run")
COMMANDS = ["record", "inspect", "config_cmd", "devices", "recover", "validate", "export", "run",
            "report", "replay", "plot", "bench"]


def build_parser() -> argparse.ArgumentParser:
    from importlib import import_module

    from collector import __version__

    parser = argparse.ArgumentParser(
        prog="collector",
        description="Record robot stations into time-synchronized HDF5 episodes.",
    )
    parser.add_argument("--version", action="version", version=f"collector {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        import_module(f"collector.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    early_signals.hold()  # first: a signal during the imports below must not kill `run`
    tune_process()  # before any frame buffer: every command may move frames
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:  # --help, --version, a usage error: argparse has said what
            early_signals.release()
            raise
        if args.command not in HANDLE_SIGNALS:  # `run` and `record` take them over themselves
            early_signals.release()
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at interpreter exit
        return code
    except CollectorError as error:
        exc = raised_by_us(error)
        for line in str(exc).splitlines() or [""]:  # several problems: one line each
            print(f"collector: error: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("collector: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`collector validate ... | head`): as any Unix filter, stop
        # quietly; stdout goes to /dev/null so the interpreter's final flush cannot fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """The config file argument and `--set` overrides, the same for every command."""
    parser.add_argument("config", help="station YAML file, e.g. configs/sim_station.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="PATH=VALUE",
                        help="override one field, e.g. --set episode.duration_s=5 "
                             "(devices by name: --set devices.cam_high.fps=15)")
