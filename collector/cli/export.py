"""`collector export [--format F] --out OUT FILE|DIR...`: episodes into a training layout.

robomimic: one .hdf5 file; lerobot: a LeRobotDataset v3.0 folder; aloha: a folder of ACT's
`episode_<i>.hdf5`. The old form `collector export OUT.hdf5 FILE|DIR...` still writes robomimic.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from collector.cli.progress import progress
from collector.export.episodes import Selection, select, sources
from collector.export.plan import FORMATS, estimate
from collector.export.robomimic import Exported, export_robomimic
from collector.storage.disk import free_gb
from schemas.episode import Outcome

GB = 1e9


def register(sub) -> None:
    parser = sub.add_parser(
        "export", help="export episodes for training: robomimic, LeRobot v3.0 or ALOHA/ACT",
        description="Export episodes for training code: --format robomimic (one .hdf5), "
                    "lerobot (a LeRobotDataset v3.0 folder) or aloha (ACT's episode_<i>.hdf5 "
                    "files). Every per-tick quality mark goes along.")
    parser.add_argument("paths", nargs="+", metavar="FILE|DIR",
                        help="episode files, or folders searched for *.h5 (rejected/ skipped); "
                             "without --out the first is the robomimic file to write")
    parser.add_argument("--out", help="what to write: a .hdf5 file (robomimic) or a new "
                                      "folder (lerobot, aloha)")
    parser.add_argument("--format", choices=FORMATS, default="robomimic",
                        help="the layout to write (default %(default)s)")
    parser.add_argument("--outcomes", default="success",
                        help="comma-separated outcomes to include (default: %(default)s; "
                             "episodes cut short are `truncated`: --outcomes success,truncated)")
    parser.add_argument("--max-missing", type=_fraction, metavar="FRACTION",
                        help="leave out episodes where any stream misses more than this share "
                             "of ticks (0..1, e.g. 0.05)")
    parser.add_argument("--require-clean", default="", metavar="FLAG[,FLAG]",
                        help="leave out episodes with any tick marked so, e.g. blurred,frozen")
    parser.add_argument("--no-images", action="store_true",
                        help="leave camera frames out (robomimic, aloha)")
    parser.add_argument("--compression", choices=["none", "lzf", "gzip"], default="lzf",
                        help="compression of the exported HDF5 datasets (robomimic, aloha; "
                             "default %(default)s)")
    parser.set_defaults(func=export)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share of ticks between 0 and 1")
    return value


def export(args: argparse.Namespace) -> int:
    paths = list(args.paths)
    if args.out is None:
        if args.format != "robomimic" or len(paths) < 2:
            print("collector: error: name what to write with --out", file=sys.stderr)
            return 2
        args.out = paths.pop(0)
    outcomes = {o.strip() for o in args.outcomes.split(",") if o.strip()}
    unknown = sorted(outcomes - set(get_args(Outcome)))
    if unknown or not outcomes:
        print(f"collector: error: --outcomes {args.outcomes!r}: {', '.join(unknown) or 'empty'} "
              f"is not an outcome; choose from {', '.join(get_args(Outcome))}", file=sys.stderr)
        return 2
    selection = Selection(frozenset(outcomes), args.max_missing,
                          tuple(f.strip() for f in args.require_clean.split(",") if f.strip()))
    found = sources(paths)
    chosen = select(found, selection)
    out = Path(args.out)
    images = not args.no_images
    plan = Plan.of(chosen.paths, args.format, images)
    compression = args.compression if args.format != "lerobot" else "none"
    print(plan.announce(len(found), out, compression), flush=True)
    with progress(plan.total_bytes, f"exporting to {out.name}", in_bytes=True) as bar:
        done = _run(args.format, plan.advancing(bar), out, outcomes, images,
                    None if args.compression == "none" else args.compression)
    for line in chosen.skipped + done.skipped:
        print(f"skipped {line}")
    print(f"wrote {out}: {done.episodes} {'demo' if args.format == 'robomimic' else 'episode'}"
          f"(s), {done.samples} samples, {size_text(_size(out))}")
    return 0


def _run(fmt: str, episodes: _Advancing, out: Path, outcomes: set[str], images: bool,
         compression: str | None) -> Exported:
    # imported when used: every `collector` command builds this parser, and pyarrow is slow
    if fmt == "lerobot":
        from collector.export.lerobot import export_lerobot

        return export_lerobot(episodes, out)
    if fmt == "aloha":
        from collector.export.aloha import export_aloha

        return export_aloha(episodes, out, images, compression)
    return export_robomimic(episodes, out, outcomes, images, compression)


def size_text(size: float) -> str:
    """GB from a tenth of one up (what a disk's free space is said in), MB below."""
    return f"{size / GB:.2f} GB" if size >= GB / 10 else f"{size / 1e6:.1f} MB"


def _size(out: Path) -> int:
    if out.is_dir():
        return sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return out.stat().st_size


@dataclass
class Plan:
    """The selected episodes and what each adds to the export."""

    paths: list[Path]
    sizes: list[int]  # bytes each episode adds, uncompressed
    samples: int
    fmt: str

    @classmethod
    def of(cls, paths: list[Path], fmt: str, images: bool) -> Plan:
        estimates = [estimate(p, fmt, images) for p in paths]
        return cls(paths, [e.size for e in estimates], sum(e.samples for e in estimates), fmt)

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes)

    def announce(self, found: int, out: Path, compression: str) -> str:
        line = (f"exporting {len(self.paths)} of {found} episode(s), {self.samples} samples: "
                f"about {size_text(self.total_bytes)} uncompressed")
        if self.fmt == "lerobot":
            line = line.replace(" uncompressed", " (videos as stored; an encode from JPEG "
                                                 "counted at the JPEG's size)")
        elif compression != "none":
            line += f" (less with {compression}: how much depends on the scenes)"
        free = free_gb(out.resolve().parent)
        if self.total_bytes / GB > free:
            line += f"; only {free:.2f} GB free there"
        return line

    def advancing(self, bar) -> _Advancing:
        return _Advancing(self, bar)


class _Advancing:
    """The episode list, advancing the bar by each episode's size once the exporter is done
    with it (it asks for the next). Keeps progress in this CLI, out of the exporters."""

    def __init__(self, plan: Plan, bar):
        self.plan, self.bar = plan, bar

    def __len__(self) -> int:
        return len(self.plan.paths)

    def __iter__(self) -> Iterator[Path]:
        for path, size in zip(self.plan.paths, self.plan.sizes, strict=True):
            yield path
            self.bar.update(size)


