"""Long commands say what they will write and show progress: export, recover."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import record_one, run_cli


@pytest.fixture(scope="module")
def episodes(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("episodes")
    return [Path(record_one(out, 1.0).path) for _ in range(2)]


def _announced_gb(stdout: str) -> float:
    match = re.search(r"^exporting 2 of 2 episode\(s\), \d+ samples: about ([\d.]+) GB "
                      r"uncompressed", stdout, re.M)
    assert match, stdout
    return float(match.group(1))


def test_export_announces_its_size_and_shows_progress(episodes, tmp_path):
    out = tmp_path / "train.hdf5"
    result = run_cli("export", str(out), *map(str, episodes), "--compression", "none")
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("exporting 2 of 2 episode(s)")  # said before anything is written
    written = out.stat().st_size / 1e9
    announced = _announced_gb(result.stdout)
    # uncompressed, the estimate is the file less HDF5's own bookkeeping
    assert announced == pytest.approx(written, rel=0.03, abs=0.01)
    assert f"{written:.2f} GB" in result.stdout.splitlines()[-1]
    bars = [line for line in result.stderr.splitlines() if line.startswith("exporting to")]
    assert bars and "100%" in bars[-1], result.stderr


@pytest.mark.slow
def test_export_states_compression_shrinks_what_it_announces(episodes, tmp_path):
    out = tmp_path / "train.hdf5"
    result = run_cli("export", str(out), *map(str, episodes))
    assert result.returncode == 0, result.stderr
    assert "less with lzf" in result.stdout.splitlines()[0]
    assert out.stat().st_size / 1e9 <= _announced_gb(result.stdout) + 0.005


@pytest.mark.slow
def test_recover_shows_progress_over_the_partials(episodes, tmp_path):
    station = tmp_path / "sim-01"
    station.mkdir()
    for i, episode in enumerate(episodes):  # what a recorder killed mid-episode leaves
        shutil.copy(episode, station / f"ep{i}.h5.partial")
    result = run_cli("recover", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("recovered ") == 2
    bars = [line for line in result.stderr.splitlines() if line.startswith("recovering")]
    assert bars and "2/2" in bars[-1], result.stderr
