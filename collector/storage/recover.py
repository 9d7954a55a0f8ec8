"""Turn `<id>.h5.partial` files left by a killed recorder back into valid episodes.

A partial file is in SWMR state: any reader sees every sample up to the writer's last flush.
Recovery reads that, cuts every grid dataset to the length they all reach (and each stream's raw
datasets to theirs), writes a fresh episode with outcome `recovered` next to it, commits it
(fsync + atomic rename), and only then removes the partial.

A video camera (format 2) keeps every packet that decodes: its video is cut at the first packet
that does not (or cannot be read: a file cut short), and the grid at the last tick whose frame
is kept. A tick is final only once flushed, and its frame's packet is written with it, so a
SIGKILL loses at most the ticks of one flush interval; a damaged packet loses the ticks from its
frame on, which is at most one group of pictures more than a clean cut at the next keyframe.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml

from collector.errors import EpisodeFileError
from collector.storage.layout import (
    ALOHA_ACTION,
    ALOHA_QPOS,
    EFFICIENCY,
    LAYOUT_ATTR,
    PARTIAL_SUFFIX,
    QUALITY,
    RAW,
    REJECTED_DIR,
    TIMESTAMPS,
)
from collector.storage.reader import plain_attr
from collector.storage.videos import check_video, video_length
from collector.storage.writer import _append, commit, create_dataset
from schemas.episode import EfficiencyAccounts, EpisodeMetadata, flatten_accounts
from schemas.layout import IMAGES, DatasetSpec, EpisodeLayout, StreamSpec, video_path

COPY_ROWS = 1024  # rows copied at a time: memory stays bounded for any episode length
RECOVERING_SUFFIX = ".recovering"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
UNRECOVERABLE_SUFFIX = ".unrecoverable"  # kept in rejected/ under this name, never deleted
# A version 2/3 superblock is 48 bytes: a partial no longer than that holds the file's creation
# and nothing else (the writer was killed before its first flush put any object on disk).
SUPERBLOCK_BYTES = 48


class NothingFlushed(EpisodeFileError):
    """The recorder died before its first flush: at most one flush interval was lost."""


@dataclass
class Recovery:
    """What one partial file gave back."""

    partial: Path
    path: Path | None = None  # the committed episode; None when nothing could be salvaged
    ticks: int = 0
    seconds: float = 0.0
    streams: list[str] = field(default_factory=list)
    raw_samples: dict[str, int] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)  # video cameras: frames kept
    note: str = ""


def find_partials(root: Path) -> list[Path]:
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise EpisodeFileError(f"{root}: no such file or folder")
    return sorted(root.rglob(f"*.h5{PARTIAL_SUFFIX}"))


def in_use(path: Path) -> bool:
    """A live writer (or reader) holds a lock on the file; a killed one holds nothing."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's own lock
    return False


def recently_modified(path: Path, min_age_s: float) -> bool:
    """A partial touched within `min_age_s` may still be written by a live recorder."""
    return time.time() - path.stat().st_mtime < min_age_s


def recover_partial(partial: Path) -> Recovery:
    """Salvage one partial file. Raises `EpisodeFileError` when it holds nothing readable; the
    caller decides where such a file goes (it is never deleted)."""
    partial = Path(partial)
    name = partial.name
    if not name.endswith(".h5" + PARTIAL_SUFFIX):
        raise EpisodeFileError(f"{partial}: not a partial episode (*.h5{PARTIAL_SUFFIX})")
    final = partial.with_name(name[: -len(PARTIAL_SUFFIX)])
    if final.exists():
        final = final.with_name(final.stem + ".recovered.h5")
    staging = partial.with_name(name[: -len(PARTIAL_SUFFIX)] + RECOVERING_SUFFIX)
    unlocked = partial.with_name(name + ".unlocked")
    try:
        with open_partial(partial, unlocked) as src:
            result = _salvage(src, partial, staging)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    finally:
        unlocked.unlink(missing_ok=True)
    result.path = commit(staging, final)
    os.remove(partial)  # only now: the recovered episode is durable under its final name
    return result


def open_partial(partial: Path, unlocked: Path) -> h5py.File:
    """Open a partial file however its writer left it.

    Killed while appending: it is in SWMR state, which a SWMR reader opens. Killed between the
    writer's close and its commit: it is a closed file. Killed while the final metadata was being
    written: HDF5 marked it open for writing and refuses it; then a copy with that mark cleared
    (what `h5clear -s` does) is opened instead, and the partial itself stays untouched.
    """
    if partial.stat().st_size <= SUPERBLOCK_BYTES:
        raise NothingFlushed(f"{partial}: stopped while the file was being created, "
                             f"before anything was written to it")
    try:
        return h5py.File(partial, "r", swmr=True, libver="latest")
    except OSError:
        pass
    try:
        return h5py.File(partial, "r")
    except OSError as exc:
        if "already open for write" not in str(exc):
            raise EpisodeFileError(f"{partial}: cannot open ({_first_line(exc)})") from None
    shutil.copyfile(partial, unlocked)
    if not clear_open_flags(unlocked):
        raise EpisodeFileError(f"{partial}: marked open for writing, superblock not clearable")
    try:
        return h5py.File(unlocked, "r")
    except OSError as exc:
        raise EpisodeFileError(f"{partial}: cannot open ({_first_line(exc)})") from None


def clear_open_flags(path: Path) -> bool:
    """Clear the 'open for writing' flags of an HDF5 superblock (version 2 or 3, at offset 0)
    and rewrite its checksum. False when the file has another kind of superblock."""
    with open(path, "r+b") as fh:
        head = fh.read(12)
        if head[:8] != HDF5_SIGNATURE or head[8] not in (2, 3):
            return False
        size = 12 + 4 * head[9]  # four addresses of `size of offsets` bytes each
        fh.seek(0)
        block = bytearray(fh.read(size))
        block[11] = 0
        fh.seek(0)
        fh.write(bytes(block) + lookup3(bytes(block)).to_bytes(4, "little"))
    return True


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 `hashlittle`, the checksum HDF5 puts on its metadata."""
    m = 0xFFFFFFFF

    def rot(x: int, k: int) -> int:
        return ((x << k) | (x >> (32 - k))) & m

    n = len(data)
    a = b = c = (0xDEADBEEF + n + initval) & m
    i = 0
    while n > 12:
        a = (a + int.from_bytes(data[i:i + 4], "little")) & m
        b = (b + int.from_bytes(data[i + 4:i + 8], "little")) & m
        c = (c + int.from_bytes(data[i + 8:i + 12], "little")) & m
        a = ((a - c) & m) ^ rot(c, 4)
        c = (c + b) & m
        b = ((b - a) & m) ^ rot(a, 6)
        a = (a + c) & m
        c = ((c - b) & m) ^ rot(b, 8)
        b = (b + a) & m
        a = ((a - c) & m) ^ rot(c, 16)
        c = (c + b) & m
        b = ((b - a) & m) ^ rot(a, 19)
        a = (a + c) & m
        c = ((c - b) & m) ^ rot(b, 4)
        b = (b + a) & m
        n -= 12
        i += 12
    if n == 0:
        return c
    tail = data[i:] + bytes(12 - n)
    a = (a + int.from_bytes(tail[0:4], "little")) & m
    b = (b + int.from_bytes(tail[4:8], "little")) & m
    c = (c + int.from_bytes(tail[8:12], "little")) & m
    c = ((c ^ b) - rot(b, 14)) & m
    a = ((a ^ c) - rot(c, 11)) & m
    b = ((b ^ a) - rot(a, 25)) & m
    c = ((c ^ b) - rot(b, 16)) & m
    a = ((a ^ c) - rot(c, 4)) & m
    b = ((b ^ a) - rot(a, 14)) & m
    c = ((c ^ b) - rot(b, 24)) & m
    return c


def _salvage(src: h5py.File, partial: Path, staging: Path) -> Recovery:
    attrs = {k: plain_attr(v) for k, v in src.attrs.items()}
    if LAYOUT_ATTR not in attrs:
        raise NothingFlushed(f"{partial}: no layout attribute (stopped while the file was "
                             "being created)")
    layout = EpisodeLayout.model_validate_json(attrs[LAYOUT_ATTR])
    grid = layout.grid_datasets()
    missing = [d.path for d in grid if d.path not in src]
    if missing:
        raise EpisodeFileError(f"{partial}: datasets missing: {', '.join(missing)}")
    n = min(readable_rows(src[d.path], src[d.path].shape[0]) for d in grid)
    n = _increasing_prefix(src[TIMESTAMPS][:n])
    videos = {s.name: _decodable_frames(src, s) for s in layout.streams if s.is_video}
    cuts = []
    for cam, (kept, why) in videos.items():
        shown = src[f"{IMAGES}/{cam}"][:n]
        past = np.flatnonzero(shown >= kept)  # frame indices never go back: a prefix stays
        if past.size:
            n = int(past[0])
        if why:
            cuts.append(f"{cam} cut at frame {kept} ({why})")
    if n == 0:
        raise NothingFlushed(f"{partial}: stopped before the first tick was flushed")
    rig = yaml.safe_load(attrs.get("rig_config") or "{}") or {}
    compression = rig.get("storage", {}).get("compression", "none")

    result = Recovery(partial=partial, ticks=n, streams=[s.name for s in layout.streams],
                      note="; ".join(cuts))
    with h5py.File(staging, "w", libver="latest") as dst:
        for spec in grid:
            _copy(src, dst, spec, n, compression)
        for s in layout.streams:
            if s.is_video:
                kept = videos[s.name][0]
                result.frames[s.name] = kept
                for spec in layout.video_datasets(s):
                    _copy(src, dst, spec, kept, compression)
                dst[video_path(s.name)].attrs.update(src[video_path(s.name)].attrs)
            raw = layout.raw_datasets(s)
            if not raw:
                continue
            m = min(src[d.path].shape[0] if d.path in src else 0 for d in raw)
            result.raw_samples[s.name] = m
            for spec in raw:
                _copy(src, dst, spec, m, compression)
            dst[f"{RAW}/{s.name}"].attrs.update(src[f"{RAW}/{s.name}"].attrs)
        for link in (ALOHA_QPOS, ALOHA_ACTION):
            target = src.get(link, getlink=True)
            if isinstance(target, h5py.SoftLink):
                dst[link] = h5py.SoftLink(target.path)
        control_hz = float(attrs.get("control_hz", 0) or 0)
        result.seconds = n / control_hz if control_hz else 0.0
        metadata = _metadata(attrs, partial, result)
        dst.attrs.update({**metadata.model_dump(mode="json"), LAYOUT_ATTR: attrs[LAYOUT_ATTR]})
        planned_s = float(rig.get("episode", {}).get("duration_s", result.seconds))
        dst.create_group(EFFICIENCY).attrs.update(
            flatten_accounts(_accounts(dst, layout, result.seconds, planned_s)))
    return result


def _copy(src: h5py.File, dst: h5py.File, spec: DatasetSpec, rows: int, compression: str) -> None:
    source = src[spec.path]
    target = create_dataset(dst, spec, compression)
    target.attrs.update(source.attrs)
    for start in range(0, rows, COPY_ROWS):
        stop = min(start + COPY_ROWS, rows)
        _append(target, source[start:stop], start)


def readable_rows(ds: h5py.Dataset, rows: int) -> int:
    """Leading rows that can be read: a partial cut short (a full disk, a copy stopped) has
    chunks whose bytes never reached it. Read a chunk at a time, so memory stays bounded."""
    step = ds.chunks[0] if ds.chunks else COPY_ROWS
    for start in range(0, rows, step):
        try:
            ds[start:min(start + step, rows)]
        except (OSError, RuntimeError):
            return start
    return rows


def _decodable_frames(src: h5py.File, s: StreamSpec) -> tuple[int, str]:
    """How many leading frames of a video camera can be kept, and why not more ("": all)."""
    path = video_path(s.name)
    if path not in src:
        return 0, "no video group"
    group = src[path]
    stored = video_length(group)
    readable = min(readable_rows(group[d.path.rsplit("/", 1)[1]], stored)
                   for d in EpisodeLayout(streams=[s]).video_datasets(s))
    check = check_video(group, s.name, readable)
    if check.decodable == stored:
        return stored, ""
    return check.decodable, check.problem or "the rest cannot be read"


def _increasing_prefix(ts: np.ndarray) -> int:
    """Rows up to the first tick that is not after the one before (never expected; a guard)."""
    bad = np.flatnonzero(np.diff(ts) <= 0)
    return int(bad[0] + 1) if bad.size else int(ts.shape[0])


def _metadata(attrs: dict[str, Any], partial: Path, result: Recovery) -> EpisodeMetadata:
    started = attrs.get("started_at", "")
    try:
        ended = (dt.datetime.fromisoformat(started)
                 + dt.timedelta(seconds=result.seconds)).isoformat()
    except ValueError:
        ended = started
    known = {k: v for k, v in attrs.items() if k != LAYOUT_ATTR}
    known.update(outcome="recovered", ended_at=ended,
                 reason=f"recovered from {partial.name} after the recorder stopped unexpectedly: "
                        f"{result.ticks} ticks ({result.seconds:.2f} s) up to the last flush")
    try:
        return EpisodeMetadata.model_validate(known)
    except ValueError as exc:
        raise EpisodeFileError(f"{partial}: start metadata incomplete ({_first_line(exc)})") \
            from None


def _accounts(f: h5py.File, layout: EpisodeLayout, recording_s: float,
              planned_s: float) -> EfficiencyAccounts:
    """The accounts the partial's samples support; the unrecorded rest is an `interrupted` loss."""
    n = f[TIMESTAMPS].shape[0]
    expected = n * len(layout.streams)
    missing = {s.name: int(f[f"{QUALITY}/{s.name}/missing"][:].sum()) for s in layout.streams}
    delivered = expected - sum(missing.values())
    bad = 0
    for s in layout.streams:
        flags = [f[f"{QUALITY}/{s.name}/{k}"][:] for k, dtype in s.quality.items()
                 if dtype == "bool"]
        if flags:
            hit = np.logical_or.reduce(flags) & ~f[f"{QUALITY}/{s.name}/missing"][:]
            bad += int(hit.sum())
    good = delivered - bad
    interrupted = max(planned_s - recording_s, 0.0)
    scheduled = recording_s + interrupted
    availability = recording_s / scheduled if scheduled else 0.0
    performance = delivered / expected if expected else 0.0
    quality = good / delivered if delivered else 0.0
    return EfficiencyAccounts(
        scheduled_s=scheduled, recording_s=recording_s, expected_samples=expected,
        delivered_samples=delivered, good_samples=good, availability=availability,
        performance=performance, quality=quality, efficiency=availability * performance * quality,
        loss_seconds={"interrupted": round(interrupted, 6)} if interrupted else {},
        loss_samples={f"missing:{k}": v for k, v in missing.items() if v},
    )


def set_aside(partial: Path) -> Path:
    """A partial with nothing to salvage moves to the station's rejected/ folder, untouched."""
    folder = partial.parent.parent / REJECTED_DIR
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (partial.name[: -len(PARTIAL_SUFFIX)] + UNRECOVERABLE_SUFFIX)
    os.replace(partial, target)
    return target



def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
