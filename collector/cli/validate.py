"""`collector validate FILE|DIR`: check episode files against the layout schema."""

from __future__ import annotations

import argparse
from pathlib import Path

from collector.cli.progress import progress, say
from collector.errors import EpisodeFileError
from collector.storage.checksums import ChunkCheck
from collector.storage.recover import find_partials, in_use
from collector.storage.validate import SAMPLED_FRAMES, check_file, find_episodes
from collector.storage.videos import VideoCheck

EXIT_NEEDS_WORK = 1  # a file with problems, a partial to recover, or nothing to check


def register(sub) -> None:
    parser = sub.add_parser(
        "validate", help="check episode files against the layout schema",
        description="Reads every chunk of every file (HDF5 verifies each chunk's checksum) "
                    "and decodes every video packet; --quick samples instead. Exit 0: every "
                    "episode found is valid. Exit 1: a file has problems, a partial file awaits "
                    "`collector recover`, or there is nothing to check.")
    parser.add_argument("paths", nargs="+", metavar="FILE|DIR",
                        help="episode files, or folders searched for *.h5")
    parser.add_argument("--all-frames", action="store_true",
                        help=f"decode every JPEG/PNG frame (default: {SAMPLED_FRAMES} per camera; "
                             "every video packet is always decoded)")
    parser.add_argument("--quick", action="store_true",
                        help="check the structure and sampled frames only; by default every "
                             "chunk is read and its checksum verified")
    parser.set_defaults(func=validate)


def validate(args: argparse.Namespace) -> int:
    checked = failed = 0
    unfinished: list[Path] = []  # partials no recorder holds: a crash left them
    recording = 0  # partials a running recorder is writing: not finished yet, not a problem
    videos: list[VideoCheck] = []
    chunks: list[ChunkCheck] = []
    unprotected = 0  # files written before checksums
    no_frame_crcs = 0  # files with JPEG/PNG frames written before frame checksums
    for root in map(Path, args.paths):
        if not root.exists():
            raise EpisodeFileError(f"{root}: no such file or folder")
        episodes = find_episodes(root)
        bar = progress(len(episodes), f"validating {root.name or root}") if root.is_dir() else None
        for path in episodes:
            checked += 1
            check = check_file(path, args.all_frames, args.quick)
            videos += check.videos
            chunks += [check.chunks] if check.chunks is not None else []
            unprotected += not check.checksums
            no_frame_crcs += bool(check.checksums and check.unchecked_frames)
            failed += bool(check.problems)
            for problem in check.problems:
                say(f"{path}: {problem}")
            if bar is not None:
                bar.update()
        if bar is not None:
            bar.close()
        if root.is_dir():
            for partial in find_partials(root):  # not a warm-up's
                if in_use(partial):
                    recording += 1
                    print(f"{partial}: note: a running recorder is writing it, not checked")
                else:
                    unfinished.append(partial)
                    print(f"{partial}: unfinished partial file, not checked")
    if videos:
        print(_decoded(videos))
    if chunks:
        print(_read(chunks, unprotected, no_frame_crcs))
    print(_summary(checked, failed, unfinished, recording, args.paths))
    return EXIT_NEEDS_WORK if failed or unfinished or not (checked or recording) else 0


def _decoded(videos: list[VideoCheck]) -> str:
    """Every video packet is decoded, each keyframe run once: how many, and how fast."""
    frames = sum(v.frames for v in videos)
    good = sum(v.decodable for v in videos)
    seconds = sum(v.seconds for v in videos)
    speed = f", {good / seconds:.0f} frames/s" if seconds > 0 else ""
    verdict = "every one decodes" if good == frames else f"{frames - good} do not decode"
    return (f"video: {frames} packet(s) of {len(videos)} camera stream(s) decoded in "
            f"{seconds:.2f} s{speed}; {verdict}")


def _read(chunks: list[ChunkCheck], unprotected: int, no_frame_crcs: int) -> str:
    """Every chunk is read: how much, how fast, and how much of it a checksum covered."""
    mb = sum(c.bytes_read for c in chunks) / 1e6
    seconds = sum(c.seconds for c in chunks)
    speed = f" ({mb / seconds:.0f} MB/s)" if seconds > 0 else ""
    line = f"chunks: {mb:.1f} MB read in full in {seconds:.2f} s{speed}"
    if unprotected:
        line += (f"; {unprotected} file(s) have no checksums (written before them): damage "
                 "inside their chunks may go unseen")
    elif no_frame_crcs:
        line += (f"; {no_frame_crcs} file(s) have no frame checksums (written before them): a "
                 "damaged JPEG/PNG frame shows only if it fails to decode (--all-frames)")
    else:
        line += ("; every chunk's Fletcher-32 and every video packet's and JPEG/PNG frame's "
                 "CRC-32 verified")
    return line


def _summary(checked: int, failed: int, unfinished: list[Path], recording: int,
             roots: list[str]) -> str:
    parts = [f"{checked} file(s) checked, {failed} with problems" if checked
             else f"no finished episode (*.h5) to check under {', '.join(roots)}"]
    if unfinished:
        folders = sorted({str(r) for r in roots if Path(r).is_dir()})
        where = folders[0] if len(folders) == 1 else "DIR"
        s = "s" if len(unfinished) > 1 else ""
        parts.append(f"{len(unfinished)} unfinished partial{s}: run `collector recover {where}`")
    if recording:
        parts.append(f"{recording} being recorded")
    return "; ".join(parts)
