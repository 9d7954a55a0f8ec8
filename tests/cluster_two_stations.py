"""Two stations on a simulated two-node Ray cluster (run by tests/test_ray_cluster.py).

Each node offers one station's resource, as `ray start --resources` would on the machine its
hardware is plugged into. Prints one JSON line: where each station's capture ran, and its episodes.
"""

from __future__ import annotations

import json
import os
import sys
import threading

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray
from ray.cluster_utils import Cluster

from collector.config import load_station
from collector.station import Station


def main(output: str) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "resources": {"station:sim-a": 1}, "object_store_memory": 150 * 2**20})
    worker = cluster.add_node(num_cpus=2, resources={"station:sim-b": 1},
                              object_store_memory=150 * 2**20)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False, logging_level="ERROR")
    nodes = {"sim-a": cluster.head_node.node_id, "sim-b": worker.node_id}
    result = {}

    def run(station_id: str) -> None:
        config = load_station("configs/sim_station.yaml", [
            f"station.id={station_id}", f"station.output_dir={output}",
            f"engine.address={cluster.address}", "episode.duration_s=1.0",
            "pipeline.computation_workers=2"])
        station = Station(config)
        try:
            capture_node = ray.get(station.engine.capture.node_id.remote())
            pool_nodes = ray.get([w.node_id.remote() for w in station.engine.pool])
            summaries = station.record(1)
        finally:
            station.close()
        result[station_id] = {
            "capture_node": capture_node, "expected_node": nodes[station_id],
            "pool_nodes": pool_nodes, "episodes": [s.path for s in summaries],
            "ticks": [s.ticks for s in summaries]}

    threads = [threading.Thread(target=run, args=(sid,)) for sid in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(result))
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
