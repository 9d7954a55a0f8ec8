"""Rows a partial's shapes claim but whose chunks never reached the file are not recovered.

A SWMR writer's new extent can reach the disk before the chunks it covers (ENOSPC or a crash in
between: tests/test_storage.py meets it for real); HDF5 then reads the missing chunks, and the
tail of an older version of the last chunk, as fill values without an error. These files are
made so with plain h5py: a real writer's partial, whose datasets are then extended past the
chunks it wrote, as a crash leaves them.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from collector.storage.held import held_rows
from collector.storage.validate import validate_file
from collector.storage.writer import EpisodeWriter
from schemas.station import StorageConfig
from tests.conftest import FT, run_cli, sensor_batch

TICKS, RAW_ROWS = 100, 3300  # 10 batches of 10 ticks, 33 raw samples a tick
START = {"episode_id": "ep-1", "station_id": "test", "task": "t",
         "started_at": "2026-01-01T00:00:00+00:00", "control_hz": 30.0,
         "rig_config": "episode: {duration_s: 10}", "software_version": "0"}
RAW = [f"raw/ft/{k}" for k in ("arrival_ns", "capture_ns", "device_ns", "seq", "value")]
GRID = ["timestamps", "observations/ft/value", "quality/ft/capture_ns", "quality/ft/dt_ns",
        "quality/ft/missing"]


def write_partial(partial: Path) -> dict[str, np.ndarray]:
    """A real writer's partial of TICKS ticks, closed without a commit; what it holds."""
    partial.parent.mkdir(parents=True)
    writer = EpisodeWriter(partial, [FT], {}, {"encoding": "jpeg"}, StorageConfig(), START)
    rng = np.random.default_rng(7)
    for i in range(TICKS // 10):
        writer.append(sensor_batch(i, i * 10, 10, rng))
    writer.close()
    with h5py.File(partial, "r") as f:
        held = {path: f[path][:] for path in GRID + RAW}
    assert len(held["timestamps"]) == TICKS and len(held["raw/ft/value"]) == RAW_ROWS
    return held


def grow(partial: Path, written: dict[str, int], claimed: dict[str, int]) -> None:
    """Grow datasets as a cut write leaves them: `written` ones get real rows (times running
    on), `claimed` ones only their new shape (their new chunks are never allocated, and the
    last one they had keeps its older version, fill values past its old rows)."""
    with h5py.File(partial, "r+") as f:
        for path, rows in written.items():
            ds = f[path]
            n = ds.shape[0]
            ds.resize(rows, axis=0)
            last = ds[n - 1]
            step = np.arange(1, rows - n + 1).reshape(-1, *(1,) * np.ndim(last))
            ds[n:] = np.zeros_like(step, bool) if ds.dtype == bool else last + step
        for path, rows in claimed.items():
            f[path].resize(rows, axis=0)


# grid chunks hold 64 ticks, raw chunks 1024 samples. Each case claims rows past the chunks a
# dataset has (its last chunk's tail, rows 100..127 and 3300..4095, was never written either),
# with or without the rest of its stream written on.
OTHERS = {"grid": [p for p in GRID if p != "observations/ft/value"],
          "raw": [p for p in RAW if p != "raw/ft/value"]}
CUTS = {
    "every dataset claimed": ({}, {**{p: 300 for p in GRID}, **{p: 6000 for p in RAW}}),
    # as tests/test_storage.py's real ENOSPC leaves them: one column's last write lost
    "a grid field lost, its stream written on": ({p: 120 for p in OTHERS["grid"]},
                                                 {"observations/ft/value": 140}),
    "raw values lost, raw times written on": ({p: 4500 for p in OTHERS["raw"]},
                                              {"raw/ft/value": 4500}),
    # within the last chunk: no chunk is missing, but a time of 0 was never written
    "times claimed in their last chunk": ({}, {"timestamps": 120, "raw/ft/arrival_ns": 4000}),
}


@pytest.mark.parametrize("case", sorted(CUTS))
@pytest.mark.slow
def test_recover_keeps_only_rows_that_were_written(tmp_path, case):
    partial = tmp_path / "sim-01" / "2026-01-01" / "ep-1.h5.partial"
    written = write_partial(partial)
    written_on, claimed = CUTS[case]
    grow(partial, written_on, claimed)
    with h5py.File(partial, "r") as f:  # what a reader is shown: more rows, zeros at the end
        for path, rows in claimed.items():
            assert f[path].shape[0] == rows
            assert not f[path][rows - 1:].any()
    done = run_cli("recover", str(tmp_path), "--min-age", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{TICKS} ticks" in done.stdout, done.stdout
    path = partial.with_name("ep-1.h5")
    assert validate_file(path) == []
    with h5py.File(path, "r") as f:
        assert f.attrs["outcome"] == "recovered"
        for name, values in written.items():  # sample for sample: nothing lost, nothing added
            np.testing.assert_array_equal(f[name][:], values, err_msg=name)


@pytest.mark.parametrize("dtype", ["float32", "int64", "vlen"])
def test_held_rows_stops_at_the_first_missing_chunk(tmp_path, dtype):
    """Fixed-size rows of several values and variable-length ones (encoded frames) alike."""
    vlen = dtype == "vlen"
    with h5py.File(tmp_path / "f.h5", "w") as f:
        kind = h5py.vlen_dtype(np.uint8) if vlen else np.dtype(dtype)
        shape = () if vlen else (3,)
        ds = f.create_dataset("d", (0, *shape), kind, maxshape=(None, *shape),
                              chunks=(8, *shape))
        rows = 21  # chunks 0..2 allocated; chunk 2 holds rows 16..20, its 21..23 never written
        ds.resize(rows, axis=0)
        if vlen:
            for i in range(rows):
                ds[i] = np.full(5 + i, i + 1, np.uint8)
        else:
            ds[:] = np.arange(1, rows * 3 + 1).reshape(rows, 3)
        assert held_rows(ds, lambda: None) == rows
        ds.resize(40, axis=0)  # chunks 3, 4 never allocated
        assert ds.id.get_num_chunks() == 3
        # an integer column (0 is a common real value) is held to its last chunk: its
        # stream's judged columns cut it; a witness column (never 0) is cut by its zeros
        assert held_rows(ds, lambda: None) == (24 if dtype == "int64" else rows)
        assert held_rows(ds, lambda: None, never_fill=True) == rows
        # a real row that is all fill values, at the end of a chunk before a missing one,
        # cannot be told from a row never written: it is not kept (the rule's stated cost)
        ds[rows - 1] = np.zeros(0, np.uint8) if vlen else 0
        assert held_rows(ds, lambda: None, never_fill=True) == rows - 1
        # ... but it is kept where nothing says the writer was cut short
        ds.resize(rows, axis=0)
        assert held_rows(ds, lambda: None) == rows
