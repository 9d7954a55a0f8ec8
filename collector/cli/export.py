"""`collector export OUT.hdf5 FILE|DIR...`: many episodes into one robomimic-layout file."""

from __future__ import annotations

import argparse
from pathlib import Path

from collector.errors import EpisodeFileError
from collector.storage.export import export_robomimic
from collector.storage.validate import find_episodes


def register(sub) -> None:
    parser = sub.add_parser("export", help="export episodes to the robomimic HDF5 layout")
    parser.add_argument("out", help="the robomimic .hdf5 file to write")
    parser.add_argument("paths", nargs="+", metavar="FILE|DIR",
                        help="episode files, or folders searched for *.h5 (rejected/ skipped)")
    parser.add_argument("--outcomes", default="success",
                        help="comma-separated outcomes to include (default: %(default)s)")
    parser.add_argument("--no-images", action="store_true", help="leave camera frames out")
    parser.add_argument("--compression", choices=["none", "lzf", "gzip"], default="lzf",
                        help="compression of the exported datasets (default %(default)s)")
    parser.set_defaults(func=export)


def export(args: argparse.Namespace) -> int:
    episodes = []
    for root in map(Path, args.paths):
        if not root.exists():
            raise EpisodeFileError(f"{root}: no such file or folder")
        episodes += [p for p in find_episodes(root) if "rejected" not in p.parts or root == p]
    outcomes = {o.strip() for o in args.outcomes.split(",") if o.strip()}
    done = export_robomimic(episodes, Path(args.out), outcomes, images=not args.no_images,
                            compression=None if args.compression == "none" else args.compression)
    for line in done.skipped:
        print(f"skipped {line}")
    print(f"wrote {args.out}: {done.demos} demo(s), {done.samples} samples")
    return 0
