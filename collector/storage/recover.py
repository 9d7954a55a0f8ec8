"""Turn `<id>.h5.partial` files left by a killed recorder back into valid episodes.

A partial file is in SWMR state: any reader sees every sample up to the writer's last flush.
Recovery reads that, keeps what is readable and consistent stream by stream
(`collector/storage/salvage.py` plans it: a damaged stream is dropped, not the episode), writes
a fresh episode with outcome `recovered` next to it, commits it (fsync + atomic rename), and only
then removes the partial. What it left out, and why, is in the episode's `recovery_dropped`
attribute. `collector recover` runs this in a worker process (`recover_worker.py`), so a file
HDF5 cannot get through ends in a time limit, never in a hang.

A video camera (format 2) keeps every packet that decodes: its video is cut at the first packet
that does not (or cannot be read: a file cut short), and the grid at the last tick whose frame
is kept. A tick is final only once flushed, and its frame's packet is written with it; a damaged
packet loses the ticks from its frame on, which is at most one group of pictures more than a
clean cut at the next keyframe.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml

from collector.errors import DiskFullError, EpisodeFileError
from collector.storage.damaged_frames import mend_damaged_frames
from collector.storage.disk import free_gb
from collector.storage.held import Beat
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
    WARM_UP_DIR,
)
from collector.storage.partial_lock import in_use
from collector.storage.reader import plain_attr
from collector.storage.salvage import NothingFlushed, Plan, plan_salvage, take_blocks
from collector.storage.writer import _append, commit, create_dataset, is_disk_full
from schemas.episode import EfficiencyAccounts, EpisodeMetadata, flatten_accounts
from schemas.layout import DatasetSpec, EpisodeLayout, video_path

__all__ = [
    "NothingFlushed",
    "Recovery",
    "find_partials",
    "in_use",
    "recently_modified",
    "recover_partial",
    "set_aside",
]

RECOVERING_SUFFIX = ".recovering"
UNLOCKED_SUFFIX = ".unlocked"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
UNRECOVERABLE_SUFFIX = ".unrecoverable"  # kept in rejected/ under this name, never deleted
DROPPED_ATTR = "recovery_dropped"  # root attribute of a recovered episode: what was left out
UNPARSED_RIG_ATTR = "rig_config_unparsed"  # ... and its rig_config, when that did not parse
# A version 2/3 superblock is 48 bytes: a partial no longer than that holds the file's creation
# and nothing else (the writer was killed before its first flush put any object on disk).
SUPERBLOCK_BYTES = 48
# Recovering writes a copy of what the partial holds (never more than the partial's size), and
# HDF5 cannot close a file it could not write: this much must be free beyond the partial's size.
RESERVE_MB = 4.0


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
    dropped: list[str] = field(default_factory=list)  # what was left out and why, one each

    @property
    def note(self) -> str:
        return "; ".join(self.dropped)


def find_partials(root: Path) -> list[Path]:
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise EpisodeFileError(f"{root}: no such file or folder")
    # a warm-up that a crash left behind is no episode: the next start-up clears it
    return sorted(p for p in root.rglob(f"*.h5{PARTIAL_SUFFIX}") if WARM_UP_DIR not in p.parts)


def recently_modified(path: Path, min_age_s: float) -> bool:
    """A partial touched within `min_age_s` may still be written by a live recorder."""
    return time.time() - path.stat().st_mtime < min_age_s


def staging_path(partial: Path) -> Path:
    """Where the recovered episode is written before its commit (removed on every failure)."""
    return partial.with_name(partial.name[: -len(PARTIAL_SUFFIX)] + RECOVERING_SUFFIX)


def unlocked_path(partial: Path) -> Path:
    """A copy of a partial with HDF5's open-for-writing mark cleared (removed after use)."""
    return partial.with_name(partial.name + UNLOCKED_SUFFIX)


def check_space(partial: Path) -> None:
    """Refuse to start a copy that cannot fit: it needs up to the partial's size."""
    need_mb = partial.stat().st_size / 1e6 + RESERVE_MB
    free_mb = free_gb(partial.parent) * 1e3
    if free_mb < need_mb:
        raise DiskFullError(
            f"disk full: {free_mb:.1f} MB free under {partial.parent}, recovering "
            f"{partial.name} needs about {need_mb:.1f} MB; nothing was changed: free some "
            f"space and run `collector recover` again")


def recover_partial(partial: Path, beat: Beat = lambda: None) -> Recovery:
    """Salvage one partial file. Raises `EpisodeFileError` when it holds nothing readable; the
    caller decides where such a file goes (it is never deleted). `DiskFullError` when the copy
    does not fit; then nothing is left behind and the partial is untouched. `beat` is called
    between bounded steps (the caller's sign of progress)."""
    partial = Path(partial)
    name = partial.name
    if not name.endswith(".h5" + PARTIAL_SUFFIX):
        raise EpisodeFileError(f"{partial}: not a partial episode (*.h5{PARTIAL_SUFFIX})")
    final = partial.with_name(name[: -len(PARTIAL_SUFFIX)])
    if final.exists():
        final = final.with_name(final.stem + ".recovered.h5")
    staging, unlocked = staging_path(partial), unlocked_path(partial)
    check_space(partial)
    try:
        with open_partial(partial, unlocked) as src:
            result = _salvage(src, partial, staging, beat)
        result.path = commit(staging, final)
    except (OSError, RuntimeError) as exc:
        staging.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise DiskFullError(
                f"disk full while recovering {partial} ({_first_line(exc)}); the partial is "
                f"untouched and nothing was left behind: free some space and run `collector "
                f"recover` again") from None
        raise
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    finally:
        unlocked.unlink(missing_ok=True)
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


def _salvage(src: h5py.File, partial: Path, staging: Path, beat: Beat) -> Recovery:
    attrs = _readable_attrs(src)
    if LAYOUT_ATTR not in attrs:
        if TIMESTAMPS in src and src[TIMESTAMPS].shape and src[TIMESTAMPS].shape[0]:
            raise EpisodeFileError(f"{partial}: no layout attribute: its streams cannot be "
                                   "told apart")
        raise NothingFlushed(f"{partial}: no layout attribute (stopped while the file was "
                             "being created)")
    try:
        layout = EpisodeLayout.model_validate_json(attrs[LAYOUT_ATTR])
    except ValueError:
        raise EpisodeFileError(f"{partial}: its layout attribute does not describe a layout") \
            from None
    try:
        plan = plan_salvage(src, layout, beat)
    except EpisodeFileError as exc:
        raise exc.__class__(f"{partial}: {exc}") from None
    rig, rig_problem = _rig_config(attrs)
    if rig_problem:
        plan.dropped.append(rig_problem)
    compression = str(rig.get("storage", {}).get("compression", "none"))
    n = len(plan.rows)
    result = Recovery(partial=partial, ticks=n, streams=[s.name for s in plan.layout.streams],
                      dropped=plan.dropped, frames=dict(plan.frames),
                      raw_samples=dict(plan.raw))
    with h5py.File(staging, "w", libver="latest") as dst:
        for spec in plan.layout.grid_datasets():
            _copy(src, dst, spec, plan.rows, compression, beat)
        for s in plan.layout.streams:
            if s.is_video:
                rows = np.arange(plan.frames[s.name])
                for spec in plan.layout.video_datasets(s):
                    _copy(src, dst, spec, rows, compression, beat)
                dst[video_path(s.name)].attrs.update(src[video_path(s.name)].attrs)
            raw = plan.layout.raw_datasets(s)
            if not raw:
                continue
            rows = np.arange(plan.raw[s.name])
            for spec in raw:
                _copy(src, dst, spec, rows, compression, beat)
            if len(rows):
                dst[f"{RAW}/{s.name}"].attrs.update(src[f"{RAW}/{s.name}"].attrs)
            else:
                dst[f"{RAW}/{s.name}"].attrs["rate_hz"] = s.rate_hz
        # after the copy, before the accounts: they count the ticks this makes missing
        plan.dropped.extend(mend_damaged_frames(dst, plan.layout, beat))
        for link in (ALOHA_QPOS, ALOHA_ACTION):
            target = src.get(link, getlink=True)
            if isinstance(target, h5py.SoftLink) and target.path.lstrip("/") in dst:
                dst[link] = h5py.SoftLink(target.path)
        control_hz = _number(attrs.get("control_hz"))
        result.seconds = n / control_hz if control_hz > 0 else 0.0
        metadata = _metadata(attrs, partial, result)
        dst.attrs.update({**metadata.model_dump(mode="json"),
                          LAYOUT_ATTR: plan.layout.model_dump_json()})
        if rig_problem:
            # the text is kept as it was, out of the way: readers take `rig_config` as the
            # station's mapping, and an empty one says honestly that it is not known
            dst.attrs[UNPARSED_RIG_ATTR] = str(attrs.get("rig_config", ""))
            dst.attrs["rig_config"] = "{}\n"
        if plan.dropped:
            dst.attrs[DROPPED_ATTR] = plan.dropped
        planned_s = _number(rig.get("episode", {}).get("duration_s"), result.seconds)
        dst.create_group(EFFICIENCY).attrs.update(
            flatten_accounts(_accounts(dst, plan, result.seconds, planned_s)))
    return result


def _readable_attrs(src: h5py.File) -> dict[str, Any]:
    """The root attributes that can be read; one that cannot is left out (and the metadata
    check then names it, if it is needed)."""
    out = {}
    for key in list(src.attrs):
        with contextlib.suppress(OSError, RuntimeError, KeyError, ValueError, TypeError):
            out[key] = plain_attr(src.attrs[key])
    return out


def _rig_config(attrs: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The station YAML the partial was recorded with ({} and why, when it does not parse)."""
    try:
        rig = yaml.safe_load(str(attrs.get("rig_config") or "{}")) or {}
    except yaml.YAMLError:
        return {}, "rig_config does not parse: compression and planned duration unknown"
    if not isinstance(rig, dict):
        return {}, "rig_config is not a mapping: compression and planned duration unknown"
    return {k: v if isinstance(v, dict) else {} for k, v in rig.items()}, ""


def _number(value: Any, default: float = 0.0) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return default
    return x if np.isfinite(x) else default


def _copy(src: h5py.File, dst: h5py.File, spec: DatasetSpec, rows: np.ndarray,
          compression: str, beat: Beat) -> None:
    target = create_dataset(dst, spec, compression)
    if not len(rows):
        return  # dropped data is kept empty: the source may not even exist
    source = src[spec.path]
    target.attrs.update(source.attrs)
    start = 0
    for block in take_blocks(source, rows, beat):
        _append(target, block, start)
        start += len(block)


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


def _accounts(f: h5py.File, plan: Plan, recording_s: float,
              planned_s: float) -> EfficiencyAccounts:
    """The accounts the kept samples support; the unrecorded rest is an `interrupted` loss, and
    a dropped stream's ticks are missing samples (recorded, but not kept)."""
    layout = plan.layout
    n = f[TIMESTAMPS].shape[0]
    expected = n * (len(layout.streams) + len(plan.dropped_streams))
    missing = {s.name: int(f[f"{QUALITY}/{s.name}/missing"][:].sum()) for s in layout.streams}
    missing.update({name: n for name in plan.dropped_streams})
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
