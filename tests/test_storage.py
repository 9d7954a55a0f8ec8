"""The episode writer and the station around it: compression, flushing, signals, a full disk."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pytest

from collector.storage.validate import validate_file
from collector.storage.writer import EpisodeWriter
from schemas.episode import EfficiencyAccounts, EpisodeMetadata
from schemas.station import StorageConfig
from tests.conftest import (
    CLOCK,
    FT,
    ROOT,
    partials,
    recover_elsewhere,
    run_cli,
    sensor_batch,
    start_recorder,
    wait_for_partial,
    wait_until,
)


def metadata(**extra) -> EpisodeMetadata:
    return EpisodeMetadata(episode_id="ep-1", station_id="test", task="t",
                           started_at="2026-01-01T00:00:00+00:00",
                           ended_at="2026-01-01T00:00:03+00:00", outcome="success", control_hz=30,
                           rig_config="storage: {compression: none}\n", software_version="0.1.0",
                           **extra)


def accounts() -> EfficiencyAccounts:
    return EfficiencyAccounts(scheduled_s=3, recording_s=3, expected_samples=90,
                              delivered_samples=90, good_samples=90, availability=1,
                              performance=1, quality=1, efficiency=1)


@pytest.mark.parametrize("compression", ["none", "lzf", "gzip", "zstd"])
def test_every_compression_round_trips(tmp_path, compression):
    rng = np.random.default_rng(1)
    writer = EpisodeWriter(tmp_path / "ep-1.h5.partial", [FT], {}, {"encoding": "jpeg"},
                           StorageConfig(compression=compression))
    batches = [sensor_batch(i, i * 10, 10, rng) for i in range(9)]
    for batch in batches:
        writer.append(batch)
    path = writer.finish(tmp_path / "day" / "ep-1.h5", metadata(), accounts())
    assert not (tmp_path / "ep-1.h5.partial").exists()
    assert validate_file(path) == []
    with h5py.File(path, "r") as f:
        grid, raw = f["observations/ft/value"], f["raw/ft/value"]
        np.testing.assert_array_equal(grid[:], np.concatenate([b.streams["ft"].values["value"]
                                                               for b in batches]))
        np.testing.assert_array_equal(raw[:], np.concatenate([b.raw["ft"].fields["value"]
                                                              for b in batches]))
        np.testing.assert_array_equal(f["timestamps"][:], CLOCK.times(0, 90))
        filters = set(grid._filters)
        expected = {"none": set(), "lzf": {"lzf"}, "gzip": {"gzip"},
                    "zstd": {str(hdf5plugin.BLOSC_ID)}}[compression]
        assert expected <= filters and (expected or not filters - {"shuffle", "fletcher32"})
        assert "fletcher32" in filters  # after the compression: it checks the stored bytes


def test_flushes_on_time_when_batches_stop_coming(tmp_path):
    """A batch followed by silence is still on disk after one flush interval."""
    partial = tmp_path / "ep-1.h5.partial"
    writer = EpisodeWriter(partial, [FT], {}, {"encoding": "jpeg"},
                           StorageConfig(flush_interval_s=0.3),
                           {"episode_id": "ep-1", "station_id": "test"})
    try:
        writer.append(sensor_batch(0, 0, 12, np.random.default_rng(2)))
        assert writer.flushed_rows == 0  # the interval has not passed yet
        wait_until(lambda: writer.flushed_rows == 12, "the writer flushed without a new batch")
        seen = subprocess.run(
            [sys.executable, "-c", "import sys, h5py; f = h5py.File(sys.argv[1], 'r', swmr=True);"
             " print(f['timestamps'].shape[0], f.attrs['episode_id'])", str(partial)],
            capture_output=True, text=True, timeout=60)
        assert seen.stdout.split() == ["12", "ep-1"], seen.stderr
    finally:
        writer.close()
    assert partial.exists()  # closing without finishing keeps the partial for recover


@pytest.mark.slow
def test_sigterm_commits_the_episode_and_exits_0(tmp_path):
    proc = start_recorder(tmp_path, 3, 3.0)
    wait_for_partial(proc, tmp_path)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "stopped by SIGTERM: no further episode was started" in out
    assert not partials(tmp_path)
    [path] = sorted(tmp_path.rglob("*.h5"))
    assert "rejected" not in path.parts
    with h5py.File(path, "r") as f:
        assert f.attrs["outcome"] == "truncated" and "SIGTERM" in f.attrs["reason"]
        assert 0 < f["timestamps"].shape[0] < 90
    assert run_cli("validate", str(path)).returncode == 0


@pytest.mark.slow
def test_second_ctrl_c_aborts_the_episode_into_rejected(tmp_path):
    proc = start_recorder(tmp_path, 3, 3.0)
    wait_for_partial(proc, tmp_path)
    time.sleep(0.8)
    proc.send_signal(signal.SIGINT)
    # the second only once the first was handled: two pending SIGINTs would merge into one
    line = ""
    while not line.strip():
        line = proc.stderr.readline()
    assert "ending the episode in progress now" in line
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    [path] = sorted(tmp_path.rglob("*.h5"))
    assert path.parent.name == "rejected"
    with h5py.File(path, "r") as f:
        assert f.attrs["outcome"] == "aborted" and "twice" in f.attrs["reason"]


SMALL_FRAMES = [f"devices.{cam}.{k}={v}" for cam in ("cam_high", "cam_left_wrist",
                                                     "cam_right_wrist")
                for k, v in (("width", 384), ("height", 128))]  # sim cameras need >= 384 wide


def record_until_full(disk: Path, min_free_gb: float, duration_s: float = 1.0,
                      episodes: int = 200) -> subprocess.CompletedProcess:
    sets = []
    # JPEG per tick: a write rate that fills a small disk in seconds
    for item in [*SMALL_FRAMES, f"storage.min_free_gb={min_free_gb}",
                 "storage.flush_interval_s=0.3", "pipeline.images.encoding=jpeg"]:
        sets += ["--set", item]
    proc = start_recorder(disk, episodes, duration_s, *sets)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_low_disk_stops_the_station_cleanly(small_disk):
    disk = small_disk(24)
    result = record_until_full(disk, 0.012)  # stop with 12 MB of 24 left
    assert result.returncode == 4, result.stderr  # DiskFullError.exit_code
    assert "below storage.min_free_gb" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one clear line
    assert not partials(disk)
    files = sorted(disk.rglob("*.h5"))
    assert len(files) >= 2
    for path in files:
        assert validate_file(path) == [], path
        assert str(path) in result.stdout  # every committed episode is reported
        # the space the writer held past the end while recording is given back at commit
        # (it once kept as much again as each file's own size)
        assert path.stat().st_blocks * 512 < path.stat().st_size + 65536, path
    assert os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize > 0.010e9


@pytest.mark.slow
def test_disk_filling_mid_episode_keeps_a_recoverable_partial(small_disk, tmp_path):
    """No min_free_gb guard: the writer itself stops before HDF5 meets ENOSPC."""
    disk = small_disk(12)
    result = record_until_full(disk, 0.0, duration_s=30.0, episodes=1)  # ~2 MB/s: 60 MB
    assert result.returncode == 4, result.stderr
    assert "collector: error: disk full" in result.stderr and "Traceback" not in result.stderr
    assert "wrote 0 episode(s)" in result.stdout
    [partial] = partials(disk)
    flushed = int(re.search(r"\((\d+) ticks flushed", result.stderr).group(1))
    assert flushed > 0
    path = recover_elsewhere(partial, tmp_path / "roomy")
    with h5py.File(path, "r") as f:
        assert f.attrs["outcome"] == "recovered" and f["timestamps"].shape[0] >= flushed


FILL_UNTIL_ENOSPC = """
import sys
import time
import numpy as np
from collector.errors import DiskFullError
from collector.storage import writer as W
from schemas.station import StorageConfig
from tests.conftest import FT, sensor_batch

W.HEADROOM, W.RESERVE_MB = 0, -1e6  # no guard: let HDF5 itself meet ENOSPC
w = W.EpisodeWriter(W.Path(sys.argv[1]), [FT], {}, {"encoding": "jpeg"},
                    StorageConfig(flush_interval_s=0.05),
                    {"episode_id": "ep-1", "station_id": "test", "task": "t",
                     "started_at": "2026-01-01T00:00:00+00:00", "control_hz": 30.0,
                     "rig_config": "episode: {duration_s: 100}", "software_version": "0"})
rng = np.random.default_rng(0)
try:
    for i in range(100000):
        w.append(sensor_batch(i, i * 3, 3, rng))
        time.sleep(0.001)  # batches come in over time: the disk fills across many flushes
        if w.flushed_rows and i % 10 == 0:
            print("flushed", w.flushed_rows, flush=True)
except DiskFullError as exc:
    w.close()
    print("flushed", w.flushed_rows, flush=True)
    sys.exit(3)
"""


@pytest.mark.slow
def test_real_enospc_keeps_the_partial_recoverable(small_disk, tmp_path):
    """With the writer's guard off, HDF5 meets ENOSPC itself. h5py then either raises (the writer
    turns that into DiskFullError) or, inside a SWMR flush, crashes the process; either way the
    partial file must give back everything flushed before, and nothing that was not written.

    How far the writer got depends on the machine's load: the test asserts on what the file
    holds, sample for sample against the batches the writer was given (a seeded generator), not
    on where it stopped. HDF5 shows rows past the chunks that reached the disk as zeros (see
    collector/storage/held.py); those must not come back."""
    disk = small_disk(2)
    partial = disk / "day" / "ep-1.h5.partial"
    run = subprocess.run([sys.executable, "-c", FILL_UNTIL_ENOSPC, str(partial)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode in (3, -signal.SIGSEGV, -signal.SIGABRT), run.stderr[-2000:]
    flushed = max(int(n) for n in re.findall(r"flushed (\d+)", run.stdout))
    assert flushed > 0
    path = recover_elsewhere(partial, tmp_path / "roomy")
    with h5py.File(path, "r") as f:
        n, m = f["timestamps"].shape[0], f["raw/ft/value"].shape[0]
        assert n >= flushed and m >= flushed * 33  # 33 raw samples a tick
        rng = np.random.default_rng(0)
        given = [sensor_batch(i, i * 3, 3, rng) for i in range(max(-(-n // 3), -(-m // 99)))]
        np.testing.assert_array_equal(f["timestamps"][:], CLOCK.times(0, n))
        np.testing.assert_array_equal(
            f["observations/ft/value"][:],
            np.concatenate([b.streams["ft"].values["value"] for b in given])[:n])
        raw = [b.raw["ft"] for b in given]
        np.testing.assert_array_equal(f["raw/ft/value"][:],
                                      np.concatenate([c.fields["value"] for c in raw])[:m])
        for key in ("arrival_ns", "capture_ns", "device_ns", "seq"):
            np.testing.assert_array_equal(f[f"raw/ft/{key}"][:],
                                          np.concatenate([getattr(c, key) for c in raw])[:m])
