"""`collector record CONFIG --episodes N`: record N episodes and summarize them."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import signal
import sys
import threading
import uuid

from collector.cli import add_config_args, early_signals
from collector.config import load_station
from collector.daemon.accounts import SessionBook
from collector.efficiency import describe_factors, describe_losses
from collector.errors import DiskFullError, StartupInterrupted
from collector.stages.execution import EpisodeSummary
from collector.station import Progress, Station


def register(sub) -> None:
    parser = sub.add_parser("record", help="record episodes from a station")
    add_config_args(parser)
    parser.add_argument("--episodes", type=int, default=1,
                        help="how many episodes (default %(default)s)")
    parser.add_argument("--engine", choices=["ray", "inline"],
                        help="override engine.kind (inline: one process, for debugging)")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    parser.set_defaults(func=record)


def record(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.engine:
        overrides.append(f"engine.kind={args.engine}")
    if args.episodes < 1:
        print("collector: error: --episodes must be at least 1", file=sys.stderr)
        return 2
    signals = _StopOnSignals()  # before the slow start-up: a signal then ends it, cleanly
    try:
        return _record(args, overrides, signals)
    finally:
        signals.restore()


def _record(args: argparse.Namespace, overrides: list[str], signals: _StopOnSignals) -> int:
    config = load_station(args.config, overrides)
    print(f"station {config.station.id}: starting (engine {config.engine.kind})", flush=True)
    try:
        station = Station(config, cancel=signals.cancel)
    except StartupInterrupted:
        print(f"collector: stopped by {signals.first} while starting; nothing was recorded",
              file=sys.stderr, flush=True)
        return 0
    signals.attach(station)
    print(f"station {config.station.id}: {len(station.infos)} streams, engine "
          f"{config.engine.kind}, started in {station.startup_s:.1f} s", flush=True)
    book = SessionBook(station.output, _session_id(), config.station.id)
    try:
        summaries = station.record(args.episodes, None if args.quiet else _show_progress, book)
    except DiskFullError as exc:
        _print_summaries(station, exc.summaries, args.quiet)
        raise
    finally:
        station.close()
        with contextlib.suppress(OSError):  # a full disk may refuse the last line
            book.shutdown()
    _print_summaries(station, summaries, args.quiet)
    print(f"session {book.session_id}: {describe_factors(book.total)}\n"
          f"  {describe_losses(book.total)}\n  accounts in {book.path}")
    stats = station.stats()
    if stats.backpressure_waits is not None:  # the Ray engine: how often a slow stage held it
        print(f"engine: {stats.computation_workers} computation workers, "
              f"{stats.backpressure_waits} backpressure waits")
    if station.stop.is_set():
        print(f"{station.stop_reason}: no further episode was started")
    return 0


def _print_summaries(station: Station, summaries: list[EpisodeSummary], quiet: bool) -> None:
    _clear_progress(quiet)
    print(f"wrote {len(summaries)} episode(s) under {station.output}/", flush=True)
    for s in summaries:
        print(format_summary(s), flush=True)


class _StopOnSignals:
    """SIGTERM or Ctrl-C: end the episode in progress now, commit it as `truncated` (nothing
    recorded is lost), start no new one, exit 0; while starting, stop the start-up, exit 0.
    A second Ctrl-C aborts that episode into rejected/; a third interrupts at once."""

    def __init__(self) -> None:
        self.cancel = threading.Event()  # the start-up's: set by a signal before `attach`
        self.first = ""  # the first signal's name
        self.station: Station | None = None
        # with any that came while the command started (collector/cli/early_signals.py)
        self._previous = early_signals.hand_over(self._handle)

    def attach(self, station: Station) -> None:
        self.station = station
        if self.cancel.is_set():  # arrived as the start-up finished
            station.request_stop(f"stopped by {self.first}")

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, _frame) -> None:
        name = signal.Signals(signum).name
        station = self.station
        if station is None:
            if not self.cancel.is_set():
                self.first = name
                self.cancel.set()
                _say(f"{name} while starting: stopping the start-up, then exit 0 "
                     f"(nothing recorded yet)")
            return
        if not station.stop.is_set():
            self.first = self.first or name
            station.request_stop(f"stopped by {name}")
            _say(f"{name}: ending the episode in progress now; it is kept with outcome "
                 f"truncated, no new one starts, then exit 0 (Ctrl-C again aborts it into "
                 f"rejected/)")
        elif signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            station.request_stop(f"{name} twice: episode aborted", abort=True)
            _say(f"{name} again: aborting the episode into rejected/ (Ctrl-C once more "
                 f"interrupts at once)")
        else:
            _say(f"{name}: already stopping")


def _say(message: str) -> None:
    print(f"\ncollector: {message}", file=sys.stderr, flush=True)


def format_summary(s: EpisodeSummary) -> str:
    """The episode's own figures, in the words and numbers `collector inspect` shows."""
    a = s.accounts
    return (f"  {s.path}  {s.ticks} ticks  {a.recording_s:.1f} s  {s.outcome}  held {s.missing}"
            f"\n    {describe_factors(a)}\n    {describe_losses(a)}")


def _session_id() -> str:
    """Each `record` run is a session of its own (the daemon's are per day, see `run`)."""
    now = dt.datetime.now(dt.timezone.utc)
    return f"record-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


_last_state: list = [None]


def _show_progress(p: Progress) -> None:
    if not sys.stderr.isatty():  # logs and pipes: one line per state change
        if _last_state[0] != (p.episode, p.state):
            _last_state[0] = (p.episode, p.state)
            print(f"episode {p.episode}/{p.episodes}: {p.state} ({p.duration_s:.1f} s)",
                  file=sys.stderr, flush=True)
        return
    width = 24
    done = int(width * min(p.elapsed_s / p.duration_s, 1.0)) if p.duration_s else width
    bar = "#" * done + "." * (width - done)
    sys.stderr.write(f"\repisode {p.episode}/{p.episodes} {p.state:<9} [{bar}] "
                     f"{p.elapsed_s:5.1f}/{p.duration_s:.1f} s")
    sys.stderr.flush()


def _clear_progress(quiet: bool) -> None:
    if not quiet and sys.stderr.isatty():
        sys.stderr.write("\r" + " " * 72 + "\r")
