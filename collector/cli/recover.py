"""`collector recover [DIR]`: turn partial files left by a killed recorder into valid episodes."""

from __future__ import annotations

import argparse
from pathlib import Path

from collector.errors import EpisodeFileError
from collector.storage.recover import (
    NothingFlushed,
    find_partials,
    in_use,
    recently_modified,
    recover_partial,
    set_aside,
)


def register(sub) -> None:
    parser = sub.add_parser("recover", help="salvage *.h5.partial files into valid episodes")
    parser.add_argument("path", nargs="?", default="episodes",
                        help="a folder searched recursively, or one partial file "
                             "(default: %(default)s)")
    parser.add_argument("--min-age", type=float, default=0.0, metavar="SECONDS",
                        help="also skip partial files modified this recently (default "
                             "%(default)g; files a running recorder holds are always skipped)")
    parser.set_defaults(func=recover)


def recover(args: argparse.Namespace) -> int:
    partials = find_partials(Path(args.path))
    if not partials:
        print(f"no partial files under {args.path}")
        return 0
    failed = 0
    for partial in partials:
        if in_use(partial):
            print(f"skipped {partial}: a running recorder is writing it")
            continue
        if recently_modified(partial, args.min_age):
            print(f"skipped {partial}: modified less than {args.min_age:g} s ago, a recorder may "
                  f"still be writing it (use --min-age 0 if it crashed)")
            continue
        try:
            r = recover_partial(partial)
        except EpisodeFileError as exc:
            failed += not isinstance(exc, NothingFlushed)  # that one lost under a flush interval
            kept = set_aside(partial)
            print(f"nothing salvaged from {partial}: {str(exc).split(': ', 1)[-1]}; "
                  f"kept as {kept}")
            continue
        raw = ", ".join(f"{k} {v}" for k, v in r.raw_samples.items())
        print(f"recovered {r.path}: {r.ticks} ticks ({r.seconds:.2f} s), streams "
              f"{', '.join(r.streams)}" + (f"; raw samples: {raw}" if raw else ""))
    print(f"{len(partials)} partial file(s), {failed} unreadable")
    return 1 if failed else 0
