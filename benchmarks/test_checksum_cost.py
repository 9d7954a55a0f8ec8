"""What Fletcher-32 costs the writer, and how fast validate reads every chunk back.

The writer's appends (SWMR, resizable, one resize + write per dataset per flush, a flush
each time) of 10 s of a 1 kHz 6-channel sensor, its grid rows and a raw 128x384 camera, with
and without Fletcher-32, for each `storage.compression`: the "speedup" in results.json is
without / with, so 0.95 means checksums cost 5% of the write time. `check_chunks` then reads
the file back whole (every checksum verified); its MB/s is in extra_info.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from benchmarks.conftest import role
from collector.storage.checksums import check_chunks
from collector.storage.writer import _append, compression_options
from schemas.layout import GRID_CHUNK, RAW_CHUNK

FLUSHES = 100  # 10 s at flush_interval_s 0.1
RAW_ROWS, GRID_ROWS, FRAMES = 100, 3, 3  # per flush: 1 kHz sensor, 30 Hz grid, 30 fps camera


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"raw": rng.normal(size=(RAW_ROWS, 6)).astype(np.float32),
            "grid": rng.normal(size=(GRID_ROWS, 6)).astype(np.float32),
            "frames": rng.integers(0, 256, (FRAMES, 128, 384, 3), dtype=np.uint8)}


def write(path, data, compression: str, fletcher32: bool) -> int:
    pack = compression_options(compression)
    with h5py.File(path, "w", libver="latest") as f:
        sets = {
            "raw": f.create_dataset("raw", (0, 6), np.float32, maxshape=(None, 6),
                                    chunks=(RAW_CHUNK, 6), fletcher32=fletcher32, **pack),
            "grid": f.create_dataset("grid", (0, 6), np.float32, maxshape=(None, 6),
                                     chunks=(GRID_CHUNK, 6), fletcher32=fletcher32, **pack),
            "frames": f.create_dataset("frames", (0, 128, 384, 3), np.uint8,
                                       maxshape=(None, 128, 384, 3), chunks=(1, 128, 384, 3),
                                       fletcher32=fletcher32)}  # raw frames: never compressed
        f.swmr_mode = True
        for _ in range(FLUSHES):
            for name, ds in sets.items():
                _append(ds, data[name], ds.shape[0])
            f.flush()
        return sets["raw"].shape[0]


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_write_without_checksums(benchmark, tmp_path, data, compression):
    role(benchmark, f"fletcher32_write_{compression}", "baseline")
    assert benchmark(write, tmp_path / "a.h5", data, compression, False) == FLUSHES * RAW_ROWS


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_write_with_checksums(benchmark, tmp_path, data, compression):
    role(benchmark, f"fletcher32_write_{compression}", "fast")
    assert benchmark(write, tmp_path / "b.h5", data, compression, True) == FLUSHES * RAW_ROWS


def test_validate_reads_every_chunk(benchmark, tmp_path, data):
    path = tmp_path / "c.h5"
    write(path, data, "none", True)

    def check():
        with h5py.File(path, "r") as f:
            return check_chunks(f)

    result = benchmark(check)
    assert result.problems == [] and result.checked == 3
    benchmark.extra_info["MB"] = result.bytes_read / 1e6
    if benchmark.stats:  # None with --benchmark-disable (the smoke run): nothing was timed
        benchmark.extra_info["MB_per_s"] = result.bytes_read / 1e6 / benchmark.stats.stats.median
