"""Load an exported dataset with LeRobot's own `LeRobotDataset`; run by the LeRobot venv's Python.

    python tests/lerobot_load.py DATASET FRAMES.npz

Prints one JSON line (frame and episode counts, fps, features, per-episode lengths, the shape of
each key of a sample) and saves the middle frame of episode 0 of every camera, as LeRobot
decodes it (H, W, 3 uint8), into FRAMES.npz, for the test to hold against the episode's own.
Not a test module: the core suite never imports LeRobot or torch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset


def main(root: Path, frames_out: Path) -> None:
    dataset = LeRobotDataset("collector/export", root=root, video_backend="pyav")
    meta = dataset.meta
    lengths = [int(e["length"]) for e in meta.episodes]
    middle = lengths[0] // 2
    sample = dataset[middle]
    for i in range(len(dataset)):  # LeRobot iterates the whole dataset: every row decodes
        dataset[i]
    cameras = [k for k in meta.features if meta.features[k]["dtype"] == "video"]
    frames = {k.removeprefix("observation.images."):
              (sample[k].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
              for k in cameras}
    np.savez(frames_out, **frames)
    print(json.dumps({
        "num_frames": dataset.num_frames, "num_episodes": dataset.num_episodes,
        "fps": dataset.fps, "features": sorted(meta.features),
        "episode_lengths": lengths,
        "shapes": {k: list(getattr(v, "shape", ())) for k, v in sample.items()},
        "video_backend": dataset.video_backend,
    }))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
