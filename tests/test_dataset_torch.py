"""`collector.dataset` from `torch.utils.data.DataLoader` with two worker processes, in the
LeRobot venv (torch is no dependency of Collector's; .ci/run sets COLLECTOR_LEROBOT_PYTHON)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.conftest import ROOT
from tests.export_episodes import JPEG, SLOW, STEPPED, mixed_episode
from tests.video_episodes import record_format1

LEROBOT_PYTHON = os.environ.get("COLLECTOR_LEROBOT_PYTHON")


@pytest.mark.skipif(not LEROBOT_PYTHON, reason="COLLECTOR_LEROBOT_PYTHON not set: .ci/run "
                    "makes a LeRobot venv (torch) and sets it; this runs DataLoader workers")
def test_dataloader_workers_give_the_samples_read_in_process(tmp_path):
    source = record_format1(tmp_path / "rec", 1.0)
    for i in range(2):
        mixed_episode(tmp_path / "episodes", f"mixed{i}.h5", source=source)
    shutil.rmtree(tmp_path / "rec")
    result = subprocess.run([str(LEROBOT_PYTHON), str(ROOT / "tests/torch_loader.py"),
                             str(tmp_path / "episodes")], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["batches"] == 6 and out["mismatched"] == 0
    assert out["shapes"]["action"] == [4, 10, 7] and out["shapes"]["action_is_pad"] == [4, 10]
    assert out["dtypes"]["action_is_pad"] == "torch.bool"
    for cam in (SLOW, STEPPED, JPEG):
        assert out["shapes"][f"observation.images.{cam}"][:2] == [4, 2]
        assert out["dtypes"][f"observation.images.{cam}"] == "torch.uint8"
