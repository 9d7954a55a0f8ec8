"""One timed round of benchmarks/test_dataset_loading.py, for one reader:

    PYTHONPATH=<checkout>:<torch folder> .venv/bin/python benchmarks/dataset_loading_run.py \
        collector EPISODES_DIR SEED
    <LeRobot venv>/bin/python benchmarks/dataset_loading_run.py lerobot LEROBOT_DIR SEED

Random-sample throughput through torch's DataLoader (WORKERS workers, BATCH samples a batch,
the samples of one seeded random order), with the same windows for both readers: the state and
every camera at ticks -1 and 0, the actions at 0..CHUNK-1. `collector.dataset.EpisodeDataset`
reads the episodes; LeRobot's `LeRobotDataset` (video backend pyav) their LeRobot export. Two
interpreters because LeRobot 0.4.4 pins av<16 and Collector's video code needs a newer PyAV.
Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset

WORKERS, BATCH, BATCHES, WARMUP, CHUNK, FPS = 2, 8, 24, 2, 50, 30


def throughput(dataset, seed: int) -> float:
    """Samples per second over BATCHES batches, after WARMUP batches that start the workers."""
    n = BATCH * (BATCHES + WARMUP)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n]
    loader = DataLoader(Subset(dataset, order.tolist()), batch_size=BATCH, num_workers=WORKERS,
                        shuffle=False)
    batches = iter(loader)
    for _ in range(WARMUP):
        next(batches)
    began = time.perf_counter()
    for _ in range(BATCHES):
        next(batches)
    return BATCHES * BATCH / (time.perf_counter() - began)


def collector_dataset(folder: Path):
    from collector.dataset import EpisodeDataset

    return EpisodeDataset(folder, observation_offsets=[-1, 0], action_offsets=range(CHUNK))


def lerobot_dataset(root: Path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    probe = LeRobotDataset("collector/export", root=root, video_backend="pyav")
    cameras = [k for k, f in probe.meta.features.items() if f["dtype"] == "video"]
    deltas = {"observation.state": [-1 / FPS, 0.0], "action": [k / FPS for k in range(CHUNK)],
              **{k: [-1 / FPS, 0.0] for k in cameras}}
    return LeRobotDataset("collector/export", root=root, delta_timestamps=deltas,
                          video_backend="pyav")


def main(which: str, path: Path, seed: int) -> None:
    dataset = collector_dataset(path) if which == "collector" else lerobot_dataset(path)
    sample = dataset[0]
    print(json.dumps({"reader": which, "samples": len(dataset),
                      "samples_per_s": throughput(dataset, seed),
                      "shapes": {k: list(getattr(v, "shape", ())) for k, v in sample.items()
                                 if k.startswith(("observation", "action"))
                                 and not k.endswith(("_is_pad", "_missing"))}}))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]))
