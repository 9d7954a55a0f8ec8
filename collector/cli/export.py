"""`collector export OUT.hdf5 FILE|DIR...`: many episodes into one robomimic-layout file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import h5py

from collector.cli.progress import progress
from collector.errors import EpisodeFileError
from collector.storage.disk import free_gb
from collector.storage.export import export_robomimic
from collector.storage.layout import ACTIONS, IMAGES, OBSERVATIONS, TIMESTAMPS
from collector.storage.validate import find_episodes
from schemas.episode import Outcome

GB = 1e9
FLOAT_BYTES = 4  # export writes every signal as float32
PER_TICK_BYTES = 4 + 8  # rewards (float32) and dones (int64) of every demo


def register(sub) -> None:
    parser = sub.add_parser("export", help="export episodes to the robomimic HDF5 layout")
    parser.add_argument("out", help="the robomimic .hdf5 file to write")
    parser.add_argument("paths", nargs="+", metavar="FILE|DIR",
                        help="episode files, or folders searched for *.h5 (rejected/ skipped)")
    parser.add_argument("--outcomes", default="success",
                        help="comma-separated outcomes to include (default: %(default)s; "
                             "episodes cut short are `truncated`: --outcomes success,truncated)")
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
    unknown = sorted(outcomes - set(get_args(Outcome)))
    if unknown or not outcomes:
        print(f"collector: error: --outcomes {args.outcomes!r}: {', '.join(unknown) or 'empty'} "
              f"is not an outcome; choose from {', '.join(get_args(Outcome))}", file=sys.stderr)
        return 2
    out = Path(args.out)
    plan = Plan.of(episodes, outcomes, images=not args.no_images)
    print(plan.announce(out, args.compression), flush=True)
    with progress(plan.total_bytes, f"exporting to {out.name}", in_bytes=True) as bar:
        done = export_robomimic(plan.advancing(bar), out, outcomes, images=not args.no_images,
                                compression=None if args.compression == "none"
                                else args.compression)
    for line in done.skipped:
        print(f"skipped {line}")
    print(f"wrote {args.out}: {done.demos} demo(s), {done.samples} samples, "
          f"{out.stat().st_size / GB:.2f} GB")
    return 0


@dataclass
class Plan:
    """What an export will write, estimated from the sources' shapes before anything is read."""

    paths: list[Path]
    sizes: list[int]  # bytes each episode adds, uncompressed; 0: its outcome is left out
    samples: int

    @classmethod
    def of(cls, paths: list[Path], outcomes: set[str], images: bool) -> Plan:
        sizes, samples = [], 0
        for path in paths:
            n, size = _estimate(path, outcomes, images)
            sizes.append(size)
            samples += n
        return cls(paths, sizes, samples)

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes)

    def announce(self, out: Path, compression: str) -> str:
        taken = sum(size > 0 for size in self.sizes)
        line = (f"exporting {taken} of {len(self.paths)} episode(s), {self.samples} samples: "
                f"about {self.total_bytes / GB:.2f} GB uncompressed")
        if compression != "none":
            line += f" (less with {compression}: how much depends on the scenes)"
        free = free_gb(out.resolve().parent)
        if self.total_bytes / GB > free:
            line += f"; only {free:.2f} GB free there"
        return line

    def advancing(self, bar) -> _Advancing:
        return _Advancing(self, bar)


class _Advancing:
    """The episode list, advancing the bar by each episode's size once the exporter is done
    with it (it asks for the next). Keeps progress in this CLI, out of the exporter."""

    def __init__(self, plan: Plan, bar):
        self.plan, self.bar = plan, bar

    def __len__(self) -> int:
        return len(self.plan.paths)

    def __iter__(self) -> Iterator[Path]:
        for path, size in zip(self.plan.paths, self.plan.sizes, strict=True):
            yield path
            self.bar.update(size)


def _estimate(path: Path, outcomes: set[str], images: bool) -> tuple[int, int]:
    """(samples, bytes) one episode adds to the export: frames decoded to uint8 RGB, signals as
    float32. (0, 0) when its outcome is not exported."""
    try:
        with h5py.File(path, "r") as f:
            outcome = f.attrs.get("outcome")
            outcome = outcome.decode() if isinstance(outcome, bytes) else outcome
            if outcome not in outcomes or TIMESTAMPS not in f:
                return 0, 0
            n = int(f[TIMESTAMPS].shape[0])
            size = n * PER_TICK_BYTES
            if images and IMAGES in f:
                for ds in f[IMAGES].values():
                    size += n * int(ds.attrs["height"]) * int(ds.attrs["width"]) * 3
            for root in (OBSERVATIONS, ACTIONS):
                for stream in f[root].values() if root in f else []:
                    if isinstance(stream, h5py.Group) and stream.name != f"/{IMAGES}":
                        size += sum(n * _width(ds) * FLOAT_BYTES for ds in stream.values()
                                    if isinstance(ds, h5py.Dataset))
            return n, size
    except OSError:
        return 0, 0  # the exporter names the unreadable file itself


def _width(ds: h5py.Dataset) -> int:
    width = 1
    for dim in ds.shape[1:]:
        width *= dim
    return width
