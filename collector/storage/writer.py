"""`EpisodeWriter`: appends grid batches to `<id>.h5.partial` in SWMR mode, then commits it.

A crash loses at most one flush interval: readers (and `collector recover`) can open the
partial file at any time and see every sample up to the last flush.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import h5py
import numpy as np

from collector.batch import GridBatch
from collector.storage import layout as L
from collector.storage.layout import StreamLayout
from schemas.episode import EfficiencyAccounts, EpisodeMetadata
from schemas.station import StorageConfig

TIME_CHUNK = 256  # grid rows per HDF5 chunk: ~8 s at 30 Hz, cheap appends and reads
RAW_CHUNK = 4096
IMAGE_CHUNK = 16  # encoded frames per chunk: a per-frame read touches one small chunk
COMMIT_LOG_ROWS = 1 << 17  # capture-to-disk latencies kept per episode (for `collector bench`)


class CommitLog:
    """When each grid row with a sample reached disk: capture time vs flush time, bounded.

    Rows wait in `_pending` only until the next flush (one flush interval); past the capacity
    further rows are counted in `lost` but not kept.
    """

    def __init__(self, capacity: int = COMMIT_LOG_ROWS):
        self.capture_ns = np.zeros(capacity, np.int64)
        self.flushed_ns = np.zeros(capacity, np.int64)
        self.camera = np.zeros(capacity, bool)
        self.size = 0
        self.lost = 0
        self._pending: list[tuple[np.ndarray, bool]] = []

    def appended(self, capture_ns: np.ndarray, camera: bool) -> None:
        self._pending.append((capture_ns, camera))

    def flushed(self, now_ns: int) -> None:
        for capture, camera in self._pending:
            take = min(len(capture), len(self.capture_ns) - self.size)
            end = self.size + take
            self.capture_ns[self.size:end] = capture[:take]
            self.flushed_ns[self.size:end] = now_ns
            self.camera[self.size:end] = camera
            self.size = end
            self.lost += len(capture) - take
        self._pending.clear()

    def trimmed(self) -> CommitLog:
        """A copy holding only the used rows (what crosses process boundaries)."""
        out = CommitLog(0)
        out.capture_ns, out.flushed_ns = self.capture_ns[:self.size], self.flushed_ns[:self.size]
        out.camera, out.size, out.lost = self.camera[:self.size], self.size, self.lost
        return out


def compression_options(name: str) -> dict:
    if name == "none":
        return {}
    if name == "zstd":
        import hdf5plugin  # registers the Blosc filter with HDF5

        return dict(hdf5plugin.Blosc(cname="zstd", clevel=3, shuffle=hdf5plugin.Blosc.SHUFFLE))
    return {"compression": name}


class EpisodeWriter:
    def __init__(self, partial_path: Path, streams: list[StreamLayout], image_shapes: dict,
                 image_encoding: dict, storage: StorageConfig):
        self.partial_path = Path(partial_path)
        self.partial_path.parent.mkdir(parents=True, exist_ok=True)
        self.streams = {s.name: s for s in streams}
        self.storage = storage
        self.rows = 0
        self._raw_rows = {s.name: 0 for s in streams}
        self._last_flush = time.monotonic()
        self.commits = CommitLog()
        self._file = h5py.File(self.partial_path, "w", libver="latest")
        self._create(image_shapes, image_encoding)
        self._file.swmr_mode = True  # from here on, readers may open the file at any time

    # -- layout ---------------------------------------------------------------------------

    def _create(self, image_shapes: dict, image_encoding: dict) -> None:
        f = self._file
        pack = compression_options(self.storage.compression)
        f.create_dataset(L.TIMESTAMPS, (0,), np.int64, maxshape=(None,), chunks=(TIME_CHUNK,))
        for s in self.streams.values():
            if s.is_camera:
                self._create_images(s, image_shapes[s.name], image_encoding)
            else:
                for field, (shape, dtype) in s.fields.items():
                    ds = f.create_dataset(s.grid_path(field), (0, *shape), dtype,
                                          maxshape=(None, *shape), chunks=(TIME_CHUNK, *shape),
                                          **pack)
                    ds.attrs["unit"] = s.units.get(field, "")
            q = f.create_group(f"{L.QUALITY}/{s.name}")
            for name, dtype in zip(L.SYNC_FIELDS, (np.int64, np.int64, bool), strict=True):
                q.create_dataset(name, (0,), dtype, maxshape=(None,), chunks=(TIME_CHUNK,))
            for name, dtype in s.quality.items():
                q.create_dataset(name, (0,), dtype, maxshape=(None,), chunks=(TIME_CHUNK,))
            if self.storage.keep_raw:
                raw = f.create_group(f"{L.RAW}/{s.name}")
                raw.attrs["rate_hz"] = s.rate_hz
                for name in L.RAW_TIMES:
                    raw.create_dataset(name, (0,), np.int64, maxshape=(None,),
                                       chunks=(RAW_CHUNK,), **pack)
                if not s.is_camera:
                    for field, (shape, dtype) in s.fields.items():
                        raw.create_dataset(field, (0, *shape), dtype, maxshape=(None, *shape),
                                           chunks=(RAW_CHUNK, *shape), **pack)
        self._link_aloha_names()
        f.create_group(L.EFFICIENCY)

    def _create_images(self, s: StreamLayout, shape: tuple, encoding: dict) -> None:
        if encoding["encoding"] == "raw":
            ds = self._file.create_dataset(s.grid_path("image"), (0, *shape), np.uint8,
                                           maxshape=(None, *shape), chunks=(1, *shape))
        else:
            ds = self._file.create_dataset(s.grid_path("image"), (0,),
                                           h5py.vlen_dtype(np.uint8), maxshape=(None,),
                                           chunks=(IMAGE_CHUNK,))
        ds.attrs.update(encoding)
        ds.attrs["height"], ds.attrs["width"] = shape[0], shape[1]
        ds.attrs["fps"] = s.rate_hz

    def _link_aloha_names(self) -> None:
        arms = [s for s in self.streams.values() if s.kind == "arm"]
        actions = [s for s in self.streams.values() if s.kind == "action"]
        if arms and "qpos" in arms[0].fields:
            self._file[L.ALOHA_QPOS] = h5py.SoftLink("/" + arms[0].grid_path("qpos"))
        if actions and "qpos" in actions[0].fields:
            self._file[L.ALOHA_ACTION] = h5py.SoftLink("/" + actions[0].grid_path("qpos"))

    # -- appending ------------------------------------------------------------------------

    def append(self, batch: GridBatch) -> None:
        m = len(batch)
        f = self._file
        if m:
            start, stop = self.rows, self.rows + m
            _append(f[L.TIMESTAMPS], batch.timestamps, start)
            for name, s in self.streams.items():
                aligned = batch.streams[name]
                for field in s.fields:
                    _append(f[s.grid_path(field)], aligned.values[field], start)
                q = f[f"{L.QUALITY}/{name}"]
                for key, values in (("capture_ns", aligned.capture_ns),
                                    ("dt_ns", aligned.dt_ns), ("missing", aligned.missing)):
                    _append(q[key], values, start)
                for key, values in {**aligned.flags, **aligned.scores}.items():
                    _append(q[key], values, start)
                self.commits.appended(aligned.capture_ns[~aligned.missing], s.is_camera)
            self.rows = stop
        if self.storage.keep_raw:
            self._append_raw(batch)
        if time.monotonic() - self._last_flush >= self.storage.flush_interval_s:
            self.flush()

    def _append_raw(self, batch: GridBatch) -> None:
        for name, chunk in batch.raw.items():
            n = len(chunk)
            if not n:
                continue
            g = self._file[f"{L.RAW}/{name}"]
            start = self._raw_rows[name]
            for key, values in (("arrival_ns", chunk.arrival_ns), ("capture_ns", chunk.capture_ns),
                                ("device_ns", chunk.device_ns), ("seq", chunk.seq)):
                _append(g[key], values, start)
            for field, values in chunk.fields.items():
                if field in g:
                    _append(g[field], values, start)
            self._raw_rows[name] = start + n

    def flush(self) -> None:
        self._file.flush()
        self._last_flush = time.monotonic()
        self.commits.flushed(time.monotonic_ns())

    # -- committing -----------------------------------------------------------------------

    def finish(self, final_path: Path, metadata: EpisodeMetadata,
               accounts: EfficiencyAccounts) -> Path:
        """Close, write metadata, fsync, then atomically move the file into place."""
        self._file.close()
        self.commits.flushed(time.monotonic_ns())
        with h5py.File(self.partial_path, "r+") as f:
            f.attrs.update(metadata.model_dump(mode="json"))
            f[L.EFFICIENCY].attrs.update(_flatten_accounts(accounts))
        return commit(self.partial_path, final_path)

    def close(self) -> None:
        """Stop writing without committing: the partial file stays for `collector recover`."""
        if self._file.id.valid:
            self._file.close()


def commit(partial: Path, final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(partial, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(partial, final)
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return final


def _append(ds: h5py.Dataset, values: np.ndarray, start: int) -> None:
    stop = start + len(values)
    if ds.shape[0] < stop:
        ds.resize(stop, axis=0)
    if values.dtype == object:
        # h5py's slice assignment turns equal-length byte arrays into a 2-D array and refuses
        # it; the low-level write takes the object array of variable-length rows as it is.
        target = ds.id.get_space()
        target.select_hyperslab((start,), (len(values),))
        ds.id.write(h5py.h5s.create_simple((len(values),)), target, values)
    else:
        ds[start:stop] = values


def _flatten_accounts(accounts: EfficiencyAccounts) -> dict:
    """HDF5 attributes are flat: losses become `loss_seconds.<cause>` / `loss_samples.<cause>`."""
    data = accounts.model_dump()
    flat = {k: v for k, v in data.items() if not isinstance(v, dict)}
    for group in ("loss_seconds", "loss_samples"):
        for cause, value in data[group].items():
            flat[f"{group}.{cause}"] = value
    return flat
