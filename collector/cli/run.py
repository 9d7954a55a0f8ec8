"""`collector run CONFIG`: the station daemon. Runs in the foreground (systemd-friendly), logs
one JSON object per line on stdout, and is driven through its HTTP API.

SIGTERM / SIGINT, in any state: end the episode in progress now and commit it as `truncated`
(while starting: stop the start-up), book the session, exit 0.
A second SIGINT: abort the episode in progress (kept in rejected/) and exit 130.
"""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import time

import psutil

from collector.cli import add_config_args, early_signals
from collector.config import load_station
from collector.daemon.accounts import check_session_id
from collector.daemon.daemon import Daemon
from collector.daemon.logs import JsonLog


def register(sub) -> None:
    parser = sub.add_parser("run", help="run the station daemon (API, episodes, accounts)")
    add_config_args(parser)
    parser.add_argument("--mode", choices=["auto", "manual"], default="auto",
                        help="auto: episodes follow one another (default); manual: each "
                             "starts on POST /episodes/start")
    parser.add_argument("--session", metavar="ID",
                        help="session whose accounts to continue (default: today's, UTC)")
    parser.add_argument("--engine", choices=["ray", "inline"], help="override engine.kind")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Start-up is booked from the moment the process began (interpreter, imports, devices).
    started = time.monotonic() - max(time.time() - psutil.Process().create_time(), 0.0)
    overrides = list(args.overrides)
    if args.engine:
        overrides.append(f"engine.kind={args.engine}")
    # before anything opens: the id becomes a file name under the output folder
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    session = check_session_id(today if args.session is None else args.session)
    config = load_station(args.config, overrides)
    log = JsonLog()
    received: list[int] = []

    def on_signal(signum: int, frame) -> None:
        received.append(signum)
        abort = signum == signal.SIGINT and received.count(signal.SIGINT) >= 2
        log("signal", signal=signal.Signals(signum).name,
            action="abort the episode into rejected/ and exit" if abort else
            "end the episode now, keep it as truncated, and exit")
        daemon.interrupt(signal.Signals(signum).name, abort=abort)

    def install() -> None:
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    daemon = Daemon(config, session, args.mode, log, started, install)
    # before the slow start-up (Ray, devices): a signal there ends it cleanly, as does one
    # that came while the command started (collector/cli/early_signals.py)
    early_signals.hand_over(on_signal)
    return daemon.run()
