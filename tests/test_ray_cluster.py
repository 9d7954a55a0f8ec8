"""Several stations on one Ray cluster, each station's capture pinned to its own node."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_two_stations_on_a_two_node_cluster(tmp_path):
    # A cluster of its own, in a fresh process: this test session already has a local Ray.
    result = subprocess.run([sys.executable, "-m", "tests.cluster_two_stations", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=400,
                            env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    assert result.returncode == 0, result.stderr[-3000:]
    stations = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(stations) == {"sim-a", "sim-b"}
    for info in stations.values():
        assert info["capture_node"] == info["expected_node"]
        assert info["ticks"] == [30]
        with h5py.File(info["episodes"][0], "r") as f:
            assert f["observations/images/cam_high"].shape == (30,)
    assert stations["sim-a"]["capture_node"] != stations["sim-b"]["capture_node"]
    # computation spreads over the cluster instead of piling onto the capture node
    assert len(set(stations["sim-a"]["pool_nodes"])) == 2
