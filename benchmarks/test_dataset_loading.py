"""Random-sample loading: `collector.dataset` against LeRobot's `LeRobotDataset`, one run, on
the same episodes (Collector's files, and their `collector export --format lerobot`), the same
windows and DataLoader workers (benchmarks/dataset_loading_run.py, one round per reader and
seed, the readers alternating so that a load on the machine hits both alike).

Episodes: 3 of 4 s from the sim station at 320x240, re-stored as tests/export_episodes.py
makes them (two h264 cameras, one JPEG), so the LeRobot export has one remuxed and two encoded
videos per episode. Goal: collector.dataset at least 2x LeRobot (video backend pyav: its
default, torchcodec, needs FFmpeg's shared libraries, absent here).
Needs COLLECTOR_LEROBOT_PYTHON and COLLECTOR_TORCH_PATH (.ci/lerobot-venv, .ci/torch-path).
Results: benchmarks/results/dataset_loading.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.test_sync import write_result
from tests.conftest import ROOT, run_cli
from tests.export_episodes import mixed_episode
from tests.video_episodes import record_format1

LEROBOT_PYTHON = os.environ.get("COLLECTOR_LEROBOT_PYTHON")
TORCH_PATH = os.environ.get("COLLECTOR_TORCH_PATH")
EPISODES, DURATION_S, ROUNDS = 3, 4.0, 3
RUN = ROOT / "benchmarks/dataset_loading_run.py"


def _round(python: str, which: str, path: Path, seed: int, env: dict[str, str]) -> dict:
    result = subprocess.run([python, str(RUN), which, str(path), str(seed)],
                            capture_output=True, text=True, timeout=1200, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(3600)  # six rounds of two interpreters starting workers: past the default
@pytest.mark.skipif(not (LEROBOT_PYTHON and TORCH_PATH), reason="COLLECTOR_LEROBOT_PYTHON or "
                    "COLLECTOR_TORCH_PATH not set: .ci/lerobot-venv and .ci/torch-path make them")
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
    ours = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{TORCH_PATH}"}
    theirs = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    rounds: dict[str, list[dict]] = {"collector": [], "lerobot": []}
    for seed in range(ROUNDS):
        rounds["collector"].append(_round(sys.executable, "collector", folder, seed, ours))
        rounds["lerobot"].append(_round(str(LEROBOT_PYTHON), "lerobot", exported, seed, theirs))
    assert rounds["collector"][0]["samples"] == rounds["lerobot"][0]["samples"]
    rates = {k: [r["samples_per_s"] for r in v] for k, v in rounds.items()}
    best = {k: max(v) for k, v in rates.items()}
    run = {"episodes": EPISODES, "episode_s": DURATION_S,
           "samples": rounds["lerobot"][0]["samples"],
           "shapes": rounds["collector"][0]["shapes"], "workers": 2, "batch": 8,
           "windows": {"observation.state": [-1, 0], "images": [-1, 0], "action": "0..49"},
           "lerobot": "0.4.4, video_backend pyav", "samples_per_s": rates,
           "best_samples_per_s": best,
           "ratio_best": round(best["collector"] / best["lerobot"], 2),
           "ratio_per_round": [round(a / b, 2) for a, b in
                               zip(rates["collector"], rates["lerobot"], strict=True)]}
    write_result("dataset_loading", run)
    benchmark.extra_info.update(run)
    benchmark.pedantic(lambda: None, rounds=1)  # the timing is the subprocesses', above
