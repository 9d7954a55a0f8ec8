"""The timed part of benchmarks/test_dataset_loading.py, run by the LeRobot venv's Python:

    PYTHONPATH=<checkout> python benchmarks/dataset_loading_run.py EPISODES_DIR LEROBOT_DIR

Random-sample throughput of `collector.dataset.EpisodeDataset` (over the episodes) and of
LeRobot's `LeRobotDataset` (over their LeRobot export), the same windows (state and every
camera at ticks -1 and 0, actions at 0..CHUNK-1), the same DataLoader (WORKERS workers,
BATCH samples a batch, one seeded random order of samples). LeRobot with each video backend
it has. Rounds alternate between the readers, so a load on the machine hits both alike.
Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from torch.utils.data import DataLoader, Subset

from collector.dataset import EpisodeDataset

WORKERS, BATCH, BATCHES, WARMUP, ROUNDS, CHUNK = 2, 8, 24, 2, 3, 50


def throughput(dataset, order: list[int]) -> float:
    """Samples per second over BATCHES batches, after WARMUP batches that start the workers."""
    loader = DataLoader(Subset(dataset, order), batch_size=BATCH, num_workers=WORKERS,
                        shuffle=False, persistent_workers=False)
    batches = iter(loader)
    for _ in range(WARMUP):
        next(batches)
    began = time.perf_counter()
    for _ in range(BATCHES):
        next(batches)
    return BATCHES * BATCH / (time.perf_counter() - began)


def main(episodes: Path, exported: Path) -> None:
    ours = EpisodeDataset(episodes, observation_offsets=[-1, 0], action_offsets=range(CHUNK))
    fps = 30
    meta_probe = LeRobotDataset("collector/export", root=exported, video_backend="pyav")
    cameras = [k for k, f in meta_probe.meta.features.items() if f["dtype"] == "video"]
    deltas = {"observation.state": [-1 / fps, 0.0], "action": [k / fps for k in range(CHUNK)],
              **{k: [-1 / fps, 0.0] for k in cameras}}
    backends = ["pyav"]
    try:
        import torchcodec.decoders  # noqa: F401  (LeRobot's default where it imports)

        backends.insert(0, "torchcodec")
    except Exception:  # torchcodec needs FFmpeg's shared libraries: absent, pyav only
        pass
    theirs = {b: LeRobotDataset("collector/export", root=exported, delta_timestamps=deltas,
                                video_backend=b) for b in backends}
    assert len(ours) == len(next(iter(theirs.values()))), "the two hold different samples"
    n = BATCH * (BATCHES + WARMUP)
    results: dict[str, list[float]] = {"collector": [], **{f"lerobot_{b}": [] for b in backends}}
    for r in range(ROUNDS):
        order = torch.randperm(len(ours), generator=torch.Generator().manual_seed(r))[:n].tolist()
        results["collector"].append(throughput(ours, order))
        for b, dataset in theirs.items():
            results[f"lerobot_{b}"].append(throughput(dataset, order))
    sample = ours[0]
    print(json.dumps({
        "samples": len(ours), "episodes": len(ours.episodes), "cameras": len(cameras),
        "frame_shape": list(sample[cameras[0]].shape[1:]), "workers": WORKERS,
        "batch": BATCH, "batches_timed": BATCHES, "rounds": ROUNDS,
        "windows": {"observation": [-1, 0], "images": [-1, 0], "action": f"0..{CHUNK - 1}"},
        "samples_per_s": results, "torch_threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
