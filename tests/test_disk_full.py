"""`collector record` while another process fills the disk: one line, exit 4, the partial kept.

A 30 MB tmpfs of its own; the recorder writes JPEG frames into it, and once its partial has
grown a filler process takes every free byte. Whatever the writer meets next, the command
ends with the one disk-full line and `DiskFullError.exit_code`, and `collector recover`
(on a copy, off the full disk) gives back every tick it said was flushed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import pytest

from collector.errors import DiskFullError
from tests.conftest import ROOT, SIM_CONFIG, partials, recover_elsewhere, wait_until

FILL = """
import sys
with open(sys.argv[1], "wb") as f:
    try:
        while True:
            f.write(b"\\0" * 2**20)
            f.flush()
    except OSError:
        pass
"""
GROWN_BYTES = 2_000_000  # the partial holds flushed ticks by then


def record_into(disk: Path, engine: str, roomy: Path) -> subprocess.Popen:
    sets = [f"station.output_dir={disk}", f"engine.kind={engine}", "episode.duration_s=120",
            "storage.min_free_gb=0", "pipeline.images.encoding=jpeg",
            # Ray's own logs and spill files on a roomy disk: on the full one Ray itself
            # prints its failed log writes
            f"engine.temp_dir={roomy / 'ray'}",
            *(f"devices.{cam}.{k}={v}" for cam in ("cam_high", "cam_left_wrist",
                                                   "cam_right_wrist")
              for k, v in (("width", 384), ("height", 128)))]
    args = [sys.executable, "-m", "collector", "record", str(SIM_CONFIG), "--quiet"]
    for item in sets:
        args += ["--set", item]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def fill_while_recording(disk: Path, engine: str, roomy: Path) -> subprocess.CompletedProcess:
    proc = record_into(disk, engine, roomy)

    def grown() -> bool:
        assert proc.poll() is None, proc.communicate()
        return any(p.stat().st_size > GROWN_BYTES for p in partials(disk))

    wait_until(grown, "the partial grows", timeout_s=240)
    subprocess.run([sys.executable, "-c", FILL, str(disk / "filler")], check=True, timeout=60)
    out, err = proc.communicate(timeout=240)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def assert_one_line_and_the_partial_kept(result, disk: Path, roomy: Path) -> None:
    assert result.returncode == DiskFullError.exit_code == 4, result.stderr[-3000:]
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("collector: error: disk full"), line
    assert "\x1b[" not in line and "ray::" not in line
    assert "wrote 0 episode(s)" in result.stdout
    flushed = int(re.search(r"\((\d+) ticks flushed", line).group(1))
    [partial] = partials(disk)
    path = recover_elsewhere(partial, roomy / "recovered")
    with h5py.File(path, "r") as f:
        assert f.attrs["outcome"] == "recovered" and f["timestamps"].shape[0] >= flushed


@pytest.mark.slow
def test_disk_filled_by_another_process_inline(small_disk, tmp_path):
    disk = small_disk(30)
    result = fill_while_recording(disk, "inline", tmp_path)
    assert_one_line_and_the_partial_kept(result, disk, tmp_path)


@pytest.mark.slow  # Ray's start-up: a minute on a loaded host
def test_disk_filled_by_another_process_ray(small_disk, tmp_path):
    disk = small_disk(30)
    with tempfile.TemporaryDirectory(dir="/tmp") as short:  # Ray's socket paths stay short
        result = fill_while_recording(disk, "ray", Path(short))
    assert_one_line_and_the_partial_kept(result, disk, tmp_path)
