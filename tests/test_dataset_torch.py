"""`collector.dataset` from `torch.utils.data.DataLoader` with two worker processes. torch is no
dependency of Collector's: .ci/run installs it into a folder of its own (.ci/torch-path) and
names it in COLLECTOR_TORCH_PATH, which this test puts on the PYTHONPATH of a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.export_episodes import JPEG, SLOW, STEPPED, mixed_episode
from tests.video_episodes import record_format1

TORCH_PATH = os.environ.get("COLLECTOR_TORCH_PATH")


@pytest.mark.skipif(not TORCH_PATH, reason="COLLECTOR_TORCH_PATH not set: .ci/run installs "
                    "torch with .ci/torch-path and sets it; this runs DataLoader workers")
def test_dataloader_workers_give_the_samples_read_in_process(tmp_path):
    source = record_format1(tmp_path / "rec", 1.0)
    for i in range(2):
        mixed_episode(tmp_path / "episodes", f"mixed{i}.h5", source=source)
    shutil.rmtree(tmp_path / "rec")
    result = subprocess.run([sys.executable, str(ROOT / "tests/torch_loader.py"),
                             str(tmp_path / "episodes")], capture_output=True, text=True,
                            timeout=600,
                            env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{TORCH_PATH}"})
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["batches"] == 6 and out["mismatched"] == 0
    assert out["shapes"]["action"] == [4, 10, 7] and out["shapes"]["action_is_pad"] == [4, 10]
    assert out["dtypes"]["action_is_pad"] == "torch.bool"
    for cam in (SLOW, STEPPED, JPEG):
        assert out["shapes"][f"observation.images.{cam}"][:2] == [4, 2]
        assert out["dtypes"][f"observation.images.{cam}"] == "torch.uint8"
