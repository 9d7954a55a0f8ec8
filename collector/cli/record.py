"""`collector record CONFIG --episodes N`: record N episodes and summarize them."""

from __future__ import annotations

import argparse
import sys

from collector.cli import add_config_args
from collector.config import load_station
from collector.stages.execution import EpisodeSummary
from collector.station import Progress, Station


def register(sub) -> None:
    parser = sub.add_parser("record", help="record episodes from a station")
    add_config_args(parser)
    parser.add_argument("--episodes", type=int, default=1, help="how many episodes (default 1)")
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
    try:
        summaries = station.record(args.episodes, None if args.quiet else _show_progress)
    finally:
        station.close()
    _clear_progress(args.quiet)
    print(f"wrote {len(summaries)} episode(s) under {station.output}/")
    for s in summaries:
        print(format_summary(s))
    return 0


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
