"""`collector recover [DIR]`: turn partial files left by a killed recorder into valid episodes."""

from __future__ import annotations

import argparse
from pathlib import Path

from collector.cli.progress import progress, say
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
    with progress(len(partials), f"recovering {Path(args.path).name or args.path}") as bar:
        for partial in partials:
            failed += _recover_one(partial, args.min_age)
            bar.update()
    print(f"{len(partials)} partial file(s), {failed} unreadable")
    return 1 if failed else 0


def _recover_one(partial: Path, min_age: float) -> bool:
    """Recover one partial and say what became of it; True when it was unreadable."""
    if in_use(partial):
        say(f"skipped {partial}: a running recorder is writing it")
        return False
    if recently_modified(partial, min_age):
        say(f"skipped {partial}: modified less than {min_age:g} s ago, a recorder may "
            f"still be writing it (use --min-age 0 if it crashed)")
        return False
    try:
        r = recover_partial(partial)
    except EpisodeFileError as exc:
        kept = set_aside(partial)
        say(f"nothing salvaged from {partial}: {str(exc).split(': ', 1)[-1]}; kept as {kept}")
        return not isinstance(exc, NothingFlushed)  # that one lost under a flush interval
    raw = ", ".join(f"{k} {v}" for k, v in r.raw_samples.items())
    frames = ", ".join(f"{k} {v}" for k, v in r.frames.items())
    say(f"recovered {r.path}: {r.ticks} ticks ({r.seconds:.2f} s), streams "
        f"{', '.join(r.streams)}" + (f"; raw samples: {raw}" if raw else "")
        + (f"; video frames: {frames}" if frames else "") + (f"; {r.note}" if r.note else ""))
    return False
