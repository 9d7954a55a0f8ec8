"""`collector record CONFIG --episodes N`: record N episodes and summarize them."""

from __future__ import annotations

import argparse
import signal
import sys

from collector.cli import add_config_args
from collector.config import load_station
from collector.errors import DiskFullError
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
    config = load_station(args.config, overrides)
    station = Station(config)
    print(f"station {config.station.id}: {len(station.infos)} streams, engine "
          f"{config.engine.kind}, started in {station.engine.startup_s:.1f} s", flush=True)
    previous = _stop_on_signals(station)
    try:
        summaries = station.record(args.episodes, None if args.quiet else _show_progress)
    except DiskFullError as exc:
        _print_summaries(station, getattr(exc, "summaries", []), args.quiet)
        raise
    finally:
        station.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    _print_summaries(station, summaries, args.quiet)
    stats = station.engine.stats()
    if "backpressure_waits" in stats:  # the Ray engine: how often a slow stage held the loop
        print(f"engine: {int(stats['computation_workers'])} computation workers, "
              f"{int(stats['backpressure_waits'])} backpressure waits")
    if station.stop.is_set():
        print(f"stopped early ({station.stop_reason})")
    return 0


def _print_summaries(station: Station, summaries: list[EpisodeSummary], quiet: bool) -> None:
    _clear_progress(quiet)
    print(f"wrote {len(summaries)} episode(s) under {station.output}/", flush=True)
    for s in summaries:
        print(format_summary(s), flush=True)


def _stop_on_signals(station: Station) -> dict:
    """SIGTERM or Ctrl-C: finish and commit the episode in progress, then exit 0.
    A second Ctrl-C aborts that episode into rejected/; a third interrupts at once."""

    def handle(signum: int, _frame) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGINT and station.stop.is_set():
            signal.signal(signal.SIGINT, signal.default_int_handler)
            station.request_stop(f"{name} twice: episode aborted", abort=True)
            print(f"\ncollector: {name} again: aborting the episode into rejected/",
                  file=sys.stderr, flush=True)
            return
        station.request_stop(f"{name} received")
        print(f"\ncollector: {name}: finishing the current episode, then stopping "
              f"(Ctrl-C again aborts it)", file=sys.stderr, flush=True)

    return {signum: signal.signal(signum, handle) for signum in (signal.SIGTERM, signal.SIGINT)}


def format_summary(s: EpisodeSummary) -> str:
    a = s.accounts
    return (f"  {s.path}  {s.ticks} frames  {a.recording_s:.1f} s  {s.outcome}  "
            f"dropped {s.dropped}  missing {s.missing}  efficiency {a.efficiency:.1%} "
            f"(A {a.availability:.1%} x P {a.performance:.1%} x Q {a.quality:.1%})")


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
