"""`EpisodeWriter`: appends grid batches to `<id>.h5.partial` in SWMR mode, then commits it.

What is flushed survives a crash: readers (and `collector recover`) can open the partial file at
any time and see every sample up to the last flush. A crash loses the rows written since (at most
one flush interval's), on top of the ticks the pipeline had not yet handed over (the sync horizon
and one chunk: the README's "What a SIGKILL loses"). The partial file carries
the episode's start metadata and its layout from the first moment, so it can be rebuilt alone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from collector.batch import CameraPackets, GridBatch, StreamOnGrid
from collector.errors import DiskFullError
from collector.storage.checksums import packet_crcs
from collector.storage.commit_log import CommitLog
from collector.storage.disk import free_gb, release_past_end, reserve_past_end
from collector.storage.layout import (
    ALOHA_ACTION,
    ALOHA_QPOS,
    CHANNEL_NAMES,
    CHANNEL_UNITS,
    EFFICIENCY,
    IMAGES,
    LAYOUT_ATTR,
    QUALITY,
    RAW,
    TIMESTAMPS,
    VLEN_UINT8,
    StreamLayout,
    episode_layout,
)
from core.codec import IMAGE_FIELD, encoding_params
from core.video import video_attrs
from schemas.episode import (
    FORMAT,
    FORMAT_VERSION,
    EfficiencyAccounts,
    EpisodeMetadata,
    flatten_accounts,
)
from schemas.layout import (
    FILL_RULE,
    FILL_RULE_ATTR,
    NO_FRAME,
    VIDEO_CRC,
    DatasetSpec,
    EpisodeLayout,
    FieldSpec,
    frame_crc_path,
    video_path,
)
from schemas.station import ImageEncoding, StorageConfig


def compression_options(name: str) -> dict[str, Any]:
    """h5py dataset keywords for a `storage.compression` choice (numeric datasets only)."""
    if name == "none":
        return {}
    if name == "zstd":
        import hdf5plugin  # registers the Blosc filter with HDF5

        return dict(hdf5plugin.Blosc(cname="zstd", clevel=3, shuffle=hdf5plugin.Blosc.SHUFFLE))
    return {"compression": name}


def hdf5_dtype(name: str) -> np.dtype[Any]:
    return h5py.vlen_dtype(np.uint8) if name == VLEN_UINT8 else np.dtype(name)


def create_dataset(f: h5py.File, spec: DatasetSpec, compression: str) -> h5py.Dataset:
    """An empty, appendable dataset as the layout describes it. Every fixed-size one carries
    HDF5's Fletcher-32 per chunk (after compression: it checks the stored bytes), so a read of
    a damaged chunk fails instead of returning wrong values; variable-length rows lie outside
    the chunks (video packets and JPEG/PNG frames carry a CRC-32 of their own,
    /videos/<camera>/crc32 and /checksums/images/<camera>)."""
    pack = compression_options(compression) if spec.numeric else {}
    return f.create_dataset(spec.path, (0, *spec.shape), hdf5_dtype(spec.dtype),
                            maxshape=(None, *spec.shape), chunks=(spec.chunk_rows, *spec.shape),
                            fletcher32=spec.dtype != VLEN_UINT8, **pack)


def describe_field(ds: h5py.Dataset, field: FieldSpec) -> None:
    """What a plain h5py reader needs to read a field: its unit, and each channel's name and
    unit (a force/torque field holds N and N*m side by side)."""
    ds.attrs["unit"] = field.unit
    if field.channel_names:
        ds.attrs[CHANNEL_NAMES] = field.channel_names
        ds.attrs[CHANNEL_UNITS] = field.channel_units


# Space that must be free before a batch is written: HEADROOM times what the next flush will write
# (this batch and every one since the last flush), plus RESERVE_MB for HDF5's metadata and the
# final close. Below that the writer stops before HDF5 meets ENOSPC: after a failed write the
# library cannot close the file, and in SWMR mode a later flush can even crash the process (which
# then leaves the partial file as a SIGKILL would: recoverable up to the last flush).
HEADROOM = 3
RESERVE_MB = 1.0
# Batches wait in memory until the next flush and are then written with one append per dataset:
# an HDF5 append costs ~0.3 ms whatever its size, and a station writes ~100 datasets per batch.
# Past this many bytes they are written early (still flushed on time).
BUFFER_BYTES = 64 * 2**20
# A batch flushes at once when the last flush is this share of the interval old: batches come
# about once an interval (episode.chunk_ms), and one that came just before the interval was up
# would otherwise wait in memory for the timer's next look (which then becomes the rhythm, and
# adds to every row's capture-to-disk time). A crash still loses at most one interval; flushes
# stay at most two per interval.
FLUSH_EARLY = 0.5


def batch_bytes(batch: GridBatch) -> int:
    grid = sum(v.nbytes if v.dtype != object else sum(len(x) for x in v)
               for s in batch.streams.values() for v in s.values.values())
    return grid + sum(c.nbytes + 32 * len(c) for c in batch.raw.values())


def videos_bytes(videos: dict[str, CameraPackets]) -> int:
    """Packets and their times (one row of /videos/<camera>/* is 33 bytes besides the packet)."""
    return sum(sum(len(x) for x in p.frames.packets) + 33 * len(p) for p in videos.values())


def is_disk_full(exc: BaseException) -> bool:
    """HDF5 reports a failed write as OSError or RuntimeError, with errno 28 in its message."""
    text = str(exc)
    return (getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in text
            or "errno = 28" in text)


class EpisodeWriter:
    def __init__(self, partial_path: Path, streams: list[StreamLayout],
                 image_shapes: dict[str, tuple[int, int, int]],
                 image_encoding: dict[str, ImageEncoding], storage: StorageConfig,
                 start_metadata: dict[str, Any] | None = None,
                 camera_jpeg: frozenset[str] = frozenset()):
        """`image_shapes`, `image_encoding`: per camera, as stored (after resize);
        `camera_jpeg`: the cameras whose frames are their own JPEG bytes."""
        self.partial_path = Path(partial_path)
        self.partial_path.parent.mkdir(parents=True, exist_ok=True)
        self.streams = {s.name: s for s in streams}
        self.storage = storage
        encodings = {s.name: image_encoding[s.name].encoding for s in streams if s.is_camera}
        self.layout: EpisodeLayout = episode_layout(streams, image_shapes, encodings,
                                                    storage.keep_raw)
        self.rows = 0  # grid rows accepted (written, or waiting for the next flush)
        self._written_rows = 0
        self.flushed_rows = 0  # grid rows a reader (or `recover`) is guaranteed to see
        self._raw_rows = {s.name: 0 for s in self.layout.streams if self.layout.raw_datasets(s)}
        self._video_rows = {s.name: 0 for s in self.layout.streams if s.is_video}
        self._videos: list[dict[str, CameraPackets]] = []  # accepted packets, not yet written
        self._lock = threading.Lock()  # appends and timer flushes never interleave
        self._dirty = False
        self._unflushed_bytes = 0
        self._buffer: list[GridBatch] = []  # accepted, not yet written (see BUFFER_BYTES)
        self._buffered_bytes = 0
        self._error: BaseException | None = None
        self._last_flush = time.monotonic()
        self.commits = CommitLog()
        self._columns: dict[str, Column | None] = {}  # by path, looked up once (see `Column`)
        self._owner: int | None = None
        self._can_reserve = True  # until the file system says it cannot hold space
        try:
            self._file = h5py.File(self.partial_path, "w", libver="latest")
            self._create(image_encoding, camera_jpeg)
            # Attributes cannot be added in SWMR mode: everything known now is written first.
            self._file.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION,
                                     **(start_metadata or {})})
            self._file.attrs[LAYOUT_ATTR] = self.layout.model_dump_json()
            self._file.attrs[FILL_RULE_ATTR] = FILL_RULE
            self._file.swmr_mode = True  # from here on, readers may open the file at any time
        except (OSError, RuntimeError) as exc:
            self._raise_if_disk_full(exc)
            raise
        # HDF5 drops its own file lock in SWMR mode; this one tells `collector recover` that a
        # live writer owns the file. The kernel releases it when the process dies, however.
        self._owner = os.open(self.partial_path, os.O_RDONLY)
        fcntl.flock(self._owner, fcntl.LOCK_SH)
        self._stop = threading.Event()
        self._timer = threading.Thread(target=self._flush_on_timer, daemon=True,
                                       name=f"flush-{self.partial_path.name}")
        self._timer.start()

    # -- layout ---------------------------------------------------------------------------

    def _create(self, image_encoding: dict[str, ImageEncoding],
                camera_jpeg: frozenset[str]) -> None:
        f = self._file
        for spec in self.layout.datasets():
            create_dataset(f, spec, self.storage.compression)
        for s in self.layout.streams:
            if s.image is not None:
                ds = f[IMAGES + "/" + s.name]
                camera = image_encoding[s.name]
                if s.is_video:
                    # the video's own attributes say how to decode its packets; the grid
                    # dataset says where they are and what a tick without a frame holds
                    f[video_path(s.name)].attrs.update(
                        video_attrs(camera, s.image.width, s.image.height, s.rate_hz))
                    ds.attrs.update({"encoding": camera.encoding, "frames": video_path(s.name),
                                     "no_frame": NO_FRAME})
                else:
                    ds.attrs.update(encoding_params(camera, s.name in camera_jpeg))
                ds.attrs["height"], ds.attrs["width"] = s.image.height, s.image.width
                ds.attrs["fps"] = s.rate_hz
            else:
                for name, field in s.fields.items():
                    describe_field(f[self.streams[s.name].grid_path(name)], field)
                    if self.layout.keep_raw:
                        describe_field(f[f"{RAW}/{s.name}/{name}"], field)
            if s.name in self._raw_rows:
                f[f"{RAW}/{s.name}"].attrs["rate_hz"] = s.rate_hz
        self._link_aloha_names()
        f.create_group(EFFICIENCY)

    def _link_aloha_names(self) -> None:
        arms = [s for s in self.streams.values() if s.kind == "arm"]
        actions = [s for s in self.streams.values() if s.kind == "action"]
        if arms and "qpos" in arms[0].fields:
            self._file[ALOHA_QPOS] = h5py.SoftLink("/" + arms[0].grid_path("qpos"))
        if actions and "qpos" in actions[0].fields:
            self._file[ALOHA_ACTION] = h5py.SoftLink("/" + actions[0].grid_path("qpos"))

    # -- appending ------------------------------------------------------------------------

    def append(self, batch: GridBatch) -> None:
        with self._lock:
            if self._error is not None:
                raise self._error
            size = batch_bytes(batch)
            # a flush writes everything since the last one: that must fit, not just this batch
            if not self._room_for(HEADROOM * (self._unflushed_bytes + size) + RESERVE_MB * 1e6):
                free = free_gb(self.partial_path.parent)
                self._error = DiskFullError(
                    f"disk full: {free * 1e3:.1f} MB left for {self.partial_path}; stopped "
                    f"before writing more ({self.flushed_rows} ticks flushed, kept): free some "
                    f"space, then run `collector recover {self.partial_path.parent}`")
                raise self._error
            try:
                self._buffer.append(batch)
                self._buffered_bytes += size
                for name, s in self.streams.items():
                    aligned = batch.streams[name]
                    self.commits.appended(aligned.capture_ns[~aligned.missing], s.is_camera)
                self.rows += len(batch)
                self._dirty = True
                self._unflushed_bytes += size
                since = time.monotonic() - self._last_flush
                if since >= FLUSH_EARLY * self.storage.flush_interval_s:
                    self._flush_locked()
                elif self._buffered_bytes >= BUFFER_BYTES:
                    self._write_buffered()
            except (OSError, RuntimeError) as exc:
                self._raise_if_disk_full(exc)
                raise

    def _room_for(self, nbytes: float) -> bool:
        """Whether the next writes fit. The space is held past the file's end where the file
        system can (then another process filling the disk cannot take it between this check
        and HDF5's write: after a failed write HDF5 can neither write nor close the file, and
        its clean-up crashed the process); elsewhere, free space is compared."""
        if self._can_reserve:
            try:
                self._can_reserve = reserve_past_end(self._file.id.get_vfd_handle(),
                                                     int(nbytes))
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    return False
                raise
            if self._can_reserve:
                return True
        return free_gb(self.partial_path.parent) * 1e9 >= nbytes

    def append_videos(self, videos: dict[str, CameraPackets]) -> None:
        """Packets of video cameras (a batch's `videos`, or those of a batch whose ticks were
        lost), written with the next rows and before them: a flushed tick never points past
        the flushed packets."""
        if not any(len(p) for p in videos.values()):
            return
        with self._lock:
            if self._error is not None:
                raise self._error
            self._videos.append(videos)
            size = videos_bytes(videos)
            self._buffered_bytes += size
            self._unflushed_bytes += size
            self._dirty = True

    def _write_buffered(self) -> None:
        """Write the batches accepted since the last write: one append per dataset."""
        batches, self._buffer, self._buffered_bytes = self._buffer, [], 0
        videos, self._videos = self._videos, []
        if videos:
            self._append_videos(videos)
        grid = [b for b in batches if len(b)]
        if grid:
            self._append_grid(grid)
        if self.storage.keep_raw and batches:
            self._append_raw(batches)

    def _column(self, path: str) -> Column | None:
        """The dataset at `path`, looked up once per episode (None: the layout has none)."""
        column = self._columns.get(path)
        if column is None and path not in self._columns:
            ds = self._file.get(path)
            column = Column(ds) if isinstance(ds, h5py.Dataset) else None
            self._columns[path] = column
        return column

    def _put(self, path: str, values: np.ndarray, start: int) -> None:
        column = self._column(path)
        assert column is not None, f"{path}: not in the episode's layout"
        column.append(values, start)

    def _append_grid(self, batches: list[GridBatch]) -> None:
        start = self._written_rows
        timestamps = np.concatenate([b.timestamps for b in batches])
        for name, s in self.streams.items():
            aligned = [b.streams[name] for b in batches]
            for field in s.fields:
                self._put(s.grid_path(field), _joined([a.values[field] for a in aligned]),
                          start)
            crcs = self._column(frame_crc_path(name)) if s.is_camera else None
            if crcs is not None:  # a JPEG/PNG camera: each frame's CRC-32 beside it
                crcs.append(_joined([_frame_crcs(a) for a in aligned]), start)
            q = f"{QUALITY}/{name}/"
            for key in ("capture_ns", "dt_ns", "missing"):
                self._put(q + key, _joined([getattr(a, key) for a in aligned]), start)
            for key in (*aligned[0].flags, *aligned[0].scores):
                self._put(q + key, _joined([a.flags[key] if key in a.flags else a.scores[key]
                                            for a in aligned]), start)
        # /timestamps last: a SWMR reader may see rows before the next flush (HDF5 evicts
        # metadata when it likes), and most readers count rows by /timestamps
        self._put(TIMESTAMPS, timestamps, start)
        self._written_rows = start + len(timestamps)

    def _append_videos(self, runs: list[dict[str, CameraPackets]]) -> None:
        for name in self._video_rows:
            parts = [r[name] for r in runs if len(r.get(name, ()))]
            if not parts:
                continue
            g = video_path(name) + "/"
            start = self._video_rows[name]
            frames = [p.frames for p in parts]
            for key in ("packets", "keyframe", "capture_ns", "device_ns", "arrival_ns"):
                self._put(g + key, _joined([getattr(x, key) for x in frames]), start)
            self._put(g + "seq", _joined([p.seq for p in parts]), start)
            if self._column(g + VIDEO_CRC) is not None:  # files with checksums
                self._put(g + VIDEO_CRC, packet_crcs(_joined([x.packets for x in frames])), start)
            self._video_rows[name] = start + sum(len(p) for p in parts)

    def _append_raw(self, batches: list[GridBatch]) -> None:
        for name in self._raw_rows:
            chunks = [b.raw[name] for b in batches if len(b.raw.get(name, ()))]
            if not chunks:
                continue
            g = f"{RAW}/{name}/"
            start = self._raw_rows[name]
            for key in ("arrival_ns", "capture_ns", "device_ns", "seq"):
                self._put(g + key, _joined([getattr(c, key) for c in chunks]), start)
            for field in chunks[0].fields:
                column = self._column(g + field)
                if column is not None:
                    column.append(_joined([c.fields[field] for c in chunks]), start)
            self._raw_rows[name] = start + sum(len(c) for c in chunks)

    def flush(self) -> None:
        with self._lock:
            try:
                self._flush_locked()
            except (OSError, RuntimeError) as exc:
                self._raise_if_disk_full(exc)
                raise

    def _flush_locked(self) -> None:
        self._write_buffered()
        self._file.flush()
        self._dirty = False
        self._unflushed_bytes = 0
        self._last_flush = time.monotonic()
        self.flushed_rows = self.rows
        self.commits.flushed(time.monotonic_ns())

    def _flush_on_timer(self) -> None:
        """Flush on time even when batches come rarely (a slow stage, a stalled device)."""
        interval = self.storage.flush_interval_s
        while not self._stop.wait(min(interval / 4, 0.25)):
            with self._lock:
                if self._error is not None or not self._file.id.valid:
                    return
                if self._dirty and time.monotonic() - self._last_flush >= interval:
                    try:
                        self._flush_locked()
                    except (OSError, RuntimeError) as exc:  # surfaces on the next append
                        if is_disk_full(exc):
                            self._abandon()
                            self._error = self._disk_full_error(exc)
                        else:
                            self._error = exc
                        return

    def _disk_full_error(self, exc: BaseException) -> DiskFullError:
        return DiskFullError(
            f"disk full while writing {self.partial_path} ({exc.__class__.__name__}: no space "
            f"left on device); everything up to the last flush ({self.flushed_rows} ticks) is "
            f"kept: free some space, then run `collector recover {self.partial_path.parent}`")

    def _abandon(self) -> None:
        """After ENOSPC, HDF5 can neither write nor close the file: point its descriptor at
        /dev/null, so closing completes harmlessly and the file keeps its last flushed state."""
        with contextlib.suppress(Exception):
            fd = self._file.id.get_vfd_handle()
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, fd)
            os.close(null)

    def _raise_if_disk_full(self, exc: BaseException) -> None:
        if is_disk_full(exc):
            self._abandon()
            error = self._disk_full_error(exc)
            self._error = error
            raise error from None

    # -- committing -----------------------------------------------------------------------

    def finish(self, final_path: Path, metadata: EpisodeMetadata,
               accounts: EfficiencyAccounts) -> Path:
        """Close, write metadata, fsync, then atomically move the file into place."""
        self._stop_timer()
        with self._lock:
            if self._error is not None:
                raise self._error
            try:
                self._write_buffered()
                self._file.close()
                self.commits.flushed(time.monotonic_ns())
                self._release()  # HDF5 takes its own exclusive lock to reopen the file
                with h5py.File(self.partial_path, "r+") as f:
                    f.attrs.update(metadata.model_dump(mode="json"))
                    f[EFFICIENCY].attrs.update(flatten_accounts(accounts))
                return commit(self.partial_path, final_path)
            except (OSError, RuntimeError) as exc:
                self._raise_if_disk_full(exc)
                raise

    def close(self) -> None:
        """Stop writing without committing: the partial file stays for `collector recover`."""
        self._stop_timer()
        with self._lock:
            if self._file.id.valid:
                # On a full disk the close fails; what was flushed is already on disk.
                with contextlib.suppress(OSError, RuntimeError):
                    if self._error is None:
                        self._write_buffered()
                    self._file.close()
                    with open(self.partial_path, "rb+") as fh:  # for recover: only its bytes
                        release_past_end(fh.fileno())
            self._release()

    def _release(self) -> None:
        if self._owner is not None:
            os.close(self._owner)
            self._owner = None

    def _stop_timer(self) -> None:
        self._stop.set()
        if self._timer.is_alive() and self._timer is not threading.current_thread():
            self._timer.join()


def commit(partial: Path, final: Path) -> Path:
    """fsync the file, rename it into place atomically, fsync the folder that now holds it."""
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(partial, "rb+") as fh:
        release_past_end(fh.fileno())
        os.fsync(fh.fileno())
    os.replace(partial, final)
    for folder in {final.parent, partial.parent}:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return final


class Column:
    """One appendable dataset, written through h5py's low-level calls.

    h5py's `ds[a:b] = v` builds a selection, and reads the dataset's shape and type back from
    HDF5, on every call; with ~100 datasets a flush, those lookups were most of the writer's
    time. A column learns them once: its rows so far, its row shape and its dtype."""

    def __init__(self, ds: h5py.Dataset):
        self.id = ds.id
        self.rows = int(ds.shape[0])
        self.row_shape = tuple(int(n) for n in ds.shape[1:])
        self.dtype = ds.dtype
        self.vlen = self.dtype == object

    def append(self, values: np.ndarray, start: int) -> None:
        """Write `values` as rows `start`..., growing the dataset to fit."""
        n = len(values)
        if n == 0:
            return
        stop = start + n
        if self.rows < stop:
            self.id.set_extent((stop, *self.row_shape))
            self.rows = stop
        target = self.id.get_space()
        target.select_hyperslab((start, *(0,) * len(self.row_shape)), (n, *self.row_shape))
        if self.vlen:
            # the object array of variable-length rows as it is (h5py's slice assignment
            # turns equal-length byte arrays into a 2-D array and refuses it)
            data = values
        else:
            data = np.ascontiguousarray(values, self.dtype).reshape(n, *self.row_shape)
        self.id.write(h5py.h5s.create_simple(data.shape), target, data)


def _append(ds: h5py.Dataset, values: np.ndarray, start: int) -> None:
    Column(ds).append(values, start)


def _frame_crcs(aligned: StreamOnGrid) -> np.ndarray:
    """The CRC-32 of each tick's encoded frame: as computed where it was encoded, or here for
    a batch that came without (one zlib call a frame, in C)."""
    if aligned.frame_crc32 is not None:
        return aligned.frame_crc32
    return packet_crcs(aligned.values[IMAGE_FIELD])


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
