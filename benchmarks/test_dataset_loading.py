"""Random-sample loading: `collector.dataset` against LeRobot's `LeRobotDataset`, one run, on
the same episodes (Collector's files, and their `collector export --format lerobot`), the same
windows and DataLoader workers (benchmarks/dataset_loading_run.py, run by the LeRobot venv).

Episodes: 3 of 4 s from the sim station at 320x240, re-stored as tests/export_episodes.py
makes them (two h264 cameras, one JPEG), so the LeRobot export has one remuxed and two encoded
videos per episode. Goal: collector.dataset at least 2x LeRobot's default backend.
Results: benchmarks/results/dataset_loading.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from benchmarks.test_sync import write_result
from tests.conftest import ROOT, run_cli
from tests.export_episodes import mixed_episode
from tests.video_episodes import record_format1

LEROBOT_PYTHON = os.environ.get("COLLECTOR_LEROBOT_PYTHON")
EPISODES, DURATION_S = 3, 4.0


@pytest.mark.skipif(not LEROBOT_PYTHON, reason="COLLECTOR_LEROBOT_PYTHON not set: "
                    "`COLLECTOR_LEROBOT_PYTHON=$(.ci/lerobot-venv)` makes and names it")
def test_random_sample_throughput_collector_vs_lerobot(benchmark, tmp_path):
    folder = tmp_path / "episodes"
    for i in range(EPISODES):
        source = record_format1(tmp_path / f"rec{i}", DURATION_S)
        mixed_episode(folder, f"episode{i}.h5", source=source)
        shutil.rmtree(tmp_path / f"rec{i}")
    exported = tmp_path / "lerobot"
    done = run_cli("export", "--format", "lerobot", "--out", str(exported), str(folder))
    assert done.returncode == 0, done.stderr
    if benchmark.disabled:  # smoke run: the export only, nothing timed
        return
    result = subprocess.run([str(LEROBOT_PYTHON), str(ROOT / "benchmarks/dataset_loading_run.py"),
                             str(folder), str(exported)], capture_output=True, text=True,
                            timeout=1800, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads(result.stdout.strip().splitlines()[-1])
    rates = {k: max(v) for k, v in run["samples_per_s"].items()}  # each reader's best round
    default = "lerobot_torchcodec" if "lerobot_torchcodec" in rates else "lerobot_pyav"
    run["best_samples_per_s"] = rates
    run["ratio_vs_lerobot_default"] = round(rates["collector"] / rates[default], 2)
    run["lerobot_default_backend"] = default.removeprefix("lerobot_")
    run["ratio_vs_each"] = {k: round(rates["collector"] / v, 2) for k, v in rates.items()
                            if k != "collector"}
    write_result("dataset_loading", run)
    benchmark.extra_info.update(run)
    benchmark.pedantic(lambda: None, rounds=1)  # the timing is the subprocess's, above
