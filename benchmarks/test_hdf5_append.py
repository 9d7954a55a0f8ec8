"""Appending encoded frames and sensor rows to HDF5: per batch (the writer) vs per sample.

- baseline: one resize + write per sample, the way a naive recorder appends as samples come;
- fast: the writer's `_append`, one resize + one write per batch;
- bare: the same bytes written to a plain file, what the disk alone costs.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from benchmarks.conftest import role
from collector.storage.writer import _append
from schemas.layout import IMAGE_CHUNK, RAW_CHUNK

BATCHES = 10


@pytest.fixture(scope="module")
def jpeg_batch() -> np.ndarray:
    """30 encoded frames of ~40 kB, as the computation stage hands them to the writer."""
    rng = np.random.default_rng(0)
    out = np.empty(30, dtype=object)
    for i in range(30):
        out[i] = rng.integers(0, 256, 40_000 + 100 * i, dtype=np.uint8)
    return out


@pytest.fixture(scope="module")
def sensor_batch() -> np.ndarray:
    """100 ms of a 1 kHz, 6-channel force/torque sensor."""
    return np.random.default_rng(1).normal(size=(100, 6)).astype(np.float32)


def _frames_file(path):
    f = h5py.File(path, "w", libver="latest")
    ds = f.create_dataset("frames", (0,), h5py.vlen_dtype(np.uint8), maxshape=(None,),
                          chunks=(IMAGE_CHUNK,))
    return f, ds


def append_frames_per_sample(path, batch):
    f, ds = _frames_file(path)
    with f:
        n = 0
        for _ in range(BATCHES):
            for frame in batch:
                ds.resize(n + 1, axis=0)
                ds[n] = frame
                n += 1
        return ds.shape[0]


def append_frames_per_batch(path, batch):
    f, ds = _frames_file(path)
    with f:
        for _ in range(BATCHES):
            _append(ds, batch, ds.shape[0])
        return ds.shape[0]


def write_frames_bare(path, batch):
    with open(path, "wb") as fh:
        for _ in range(BATCHES):
            for frame in batch:
                fh.write(frame.tobytes())
    return BATCHES * len(batch)


def append_rows_per_sample(path, batch):
    with h5py.File(path, "w", libver="latest") as f:
        ds = f.create_dataset("value", (0, 6), np.float32, maxshape=(None, 6),
                              chunks=(RAW_CHUNK, 6))
        n = 0
        for _ in range(BATCHES):
            for row in batch:
                ds.resize(n + 1, axis=0)
                ds[n] = row
                n += 1
        return ds.shape[0]


def append_rows_per_batch(path, batch):
    with h5py.File(path, "w", libver="latest") as f:
        ds = f.create_dataset("value", (0, 6), np.float32, maxshape=(None, 6),
                              chunks=(RAW_CHUNK, 6))
        for _ in range(BATCHES):
            _append(ds, batch, ds.shape[0])
        return ds.shape[0]


def test_frames_per_sample_naive(benchmark, tmp_path, jpeg_batch):
    role(benchmark, "hdf5_append_frames", "baseline")
    assert benchmark(append_frames_per_sample, tmp_path / "a.h5", jpeg_batch) == 300


def test_frames_per_batch(benchmark, tmp_path, jpeg_batch):
    role(benchmark, "hdf5_append_frames", "fast")
    assert benchmark(append_frames_per_batch, tmp_path / "b.h5", jpeg_batch) == 300
    with h5py.File(tmp_path / "b.h5") as f:
        np.testing.assert_array_equal(f["frames"][31], jpeg_batch[1])


def test_frames_bare_file(benchmark, tmp_path, jpeg_batch):
    # the floor: not a baseline to beat but what HDF5 costs on top of the bytes themselves
    role(benchmark, "hdf5_append_frames_vs_bare_write", "fast")
    assert benchmark(write_frames_bare, tmp_path / "c.bin", jpeg_batch) == 300


def test_frames_per_batch_vs_bare(benchmark, tmp_path, jpeg_batch):
    role(benchmark, "hdf5_append_frames_vs_bare_write", "baseline")
    assert benchmark(append_frames_per_batch, tmp_path / "d.h5", jpeg_batch) == 300


def test_rows_per_sample_naive(benchmark, tmp_path, sensor_batch):
    role(benchmark, "hdf5_append_rows", "baseline")
    assert benchmark(append_rows_per_sample, tmp_path / "e.h5", sensor_batch) == 1000


def test_rows_per_batch(benchmark, tmp_path, sensor_batch):
    role(benchmark, "hdf5_append_rows", "fast")
    assert benchmark(append_rows_per_batch, tmp_path / "f.h5", sensor_batch) == 1000
    with h5py.File(tmp_path / "f.h5") as f:
        np.testing.assert_array_equal(f["value"][100:200], sensor_batch)
