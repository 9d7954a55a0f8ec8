"""`collector recover [DIR]`: turn partial files left by a killed recorder into valid episodes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from collector.cli.progress import progress, say
from collector.errors import EpisodeFileError
from collector.storage.partial_lock import (
    ORPHAN_WAIT_S,
    Lock,
    holders_text,
    in_use,
    wait_for_orphans,
)
from collector.storage.recover import (
    NothingFlushed,
    Recovery,
    find_partials,
    recently_modified,
    set_aside,
)
from collector.storage.recover_worker import STALL_S, RecoverWorker, WorkerBug


def register(sub) -> None:
    parser = sub.add_parser("recover", help="salvage *.h5.partial files into valid episodes")
    parser.add_argument("path", nargs="?", default="episodes",
                        help="a folder searched recursively, or one partial file "
                             "(default: %(default)s)")
    parser.add_argument("--min-age", type=float, default=0.0, metavar="SECONDS",
                        help="also skip partial files modified this recently (default "
                             "%(default)g; files a running recorder holds are always skipped)")
    parser.add_argument("--timeout", type=_positive, default=STALL_S, metavar="SECONDS",
                        help="give up on a partial whose reading makes no progress for this "
                             "long and set it aside in rejected/ (default %(default)g)")
    parser.set_defaults(func=recover)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < 1e6:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds above 0")
    return value


def recover(args: argparse.Namespace) -> int:
    partials = find_partials(Path(args.path))
    if not partials:
        print(f"no partial files under {args.path}")
        return 0
    failed = 0
    with RecoverWorker(args.timeout) as worker, \
            progress(len(partials), f"recovering {Path(args.path).name or args.path}") as bar:
        for partial in partials:
            failed += _recover_one(worker, partial, args.min_age)
            bar.update()
    print(f"{len(partials)} partial file(s), {failed} unreadable")
    return 1 if failed else 0


def _recover_one(worker: RecoverWorker, partial: Path, min_age: float) -> bool:
    """Recover one partial and say what became of it; True when it was unreadable."""
    if not partial.exists():
        say(f"skipped {partial}: gone (its recorder committed it)")
        return False
    # a Ray worker left by a killed recorder holds the lock a few seconds more
    lock = wait_for_orphans(partial, ORPHAN_WAIT_S) if in_use(partial) else Lock.FREE
    if lock is Lock.ORPHANS:  # the recorder is gone; its Ray workers are not, yet
        say(f"skipped {partial}: the Ray workers of a recorder that is gone still hold it "
            f"after {ORPHAN_WAIT_S:g} s; run recover again once they have exited")
        return False
    if lock is Lock.LIVE:
        say(f"skipped {partial}: a running recorder is writing it ({holders_text(partial)})")
        return False
    if recently_modified(partial, min_age):
        say(f"skipped {partial}: modified less than {min_age:g} s ago, a recorder may "
            f"still be writing it (use --min-age 0 if it crashed)")
        return False
    try:
        r = worker.recover(partial)
    except WorkerBug as bug:
        print(f"collector: recovering {partial} failed on a bug (please report it); the "
              f"partial is untouched:\n{bug}", file=sys.stderr)
        return True
    except EpisodeFileError as exc:
        kept = set_aside(partial)
        say(f"nothing salvaged from {partial}: {str(exc).split(': ', 1)[-1]}; kept as {kept}")
        return not isinstance(exc, NothingFlushed)  # that one lost under a flush interval
    say(describe(r))
    return False


def describe(r: Recovery) -> str:
    raw = ", ".join(f"{k} {v}" for k, v in r.raw_samples.items())
    frames = ", ".join(f"{k} {v}" for k, v in r.frames.items())
    return (f"recovered {r.path}: {r.ticks} ticks ({r.seconds:.2f} s), streams "
            f"{', '.join(r.streams)}" + (f"; raw samples: {raw}" if raw else "")
            + (f"; video frames: {frames}" if frames else "")
            + "".join(f"\n  dropped: {d}" for d in r.dropped))
