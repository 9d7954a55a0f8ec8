"""`collector validate FILE|DIR`: check episode files against the layout schema."""

from __future__ import annotations

import argparse
from pathlib import Path

from collector.errors import EpisodeFileError
from collector.storage import layout as L
from collector.storage.validate import find_episodes, validate_file


def register(sub) -> None:
    parser = sub.add_parser("validate", help="check episode files against the layout schema")
    parser.add_argument("paths", nargs="+", metavar="FILE|DIR",
                        help="episode files, or folders searched for *.h5")
    parser.add_argument("--all-frames", action="store_true",
                        help="decode every frame (default: 8 per camera)")
    parser.set_defaults(func=validate)


def validate(args: argparse.Namespace) -> int:
    checked = failed = 0
    for root in map(Path, args.paths):
        if not root.exists():
            raise EpisodeFileError(f"{root}: no such file or folder")
        for path in find_episodes(root):
            checked += 1
            problems = validate_file(path, args.all_frames)
            failed += bool(problems)
            for problem in problems:
                print(f"{path}: {problem}")
        if root.is_dir():
            for partial in sorted(root.rglob(f"*.h5{L.PARTIAL_SUFFIX}")):
                print(f"{partial}: note: partial file, not checked (`collector recover` makes it "
                      "an episode)")
    print(f"{checked} file(s) checked, {failed} with problems")
    return 1 if failed or not checked else 0
