"""`collector.dataset` under torch's DataLoader with worker processes, run by the project's
Python with torch beside it (.ci/torch-path):

    PYTHONPATH=<checkout>:<torch folder> .venv/bin/python tests/torch_loader.py EPISODES_DIR

Reads 24 samples in a shuffled order through `DataLoader(num_workers=2, batch_size=4)` and
holds every array against the same sample read in this process; prints one JSON line.
Not a test module: the core suite never imports torch.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from collector.dataset import EpisodeDataset


def main(folder: str) -> None:
    data = EpisodeDataset(folder, observation_offsets=[-1, 0], action_offsets=range(10))
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:24].tolist()
    _ = data[order[0]]  # the parent opens a file before the workers fork
    loader = DataLoader(Subset(data, order), batch_size=4, num_workers=2, shuffle=False)
    mismatched, batches, shapes = 0, 0, {}
    for b, batch in enumerate(loader):
        batches += 1
        shapes = {k: list(v.shape) for k, v in batch.items()}
        for j in range(batch["frame_index"].shape[0]):
            own = data[order[b * 4 + j]]
            for key, value in own.items():
                if not np.array_equal(batch[key][j].numpy(), np.asarray(value)):
                    mismatched += 1
    print(json.dumps({"batches": batches, "mismatched": mismatched, "shapes": shapes,
                      "dtypes": {k: str(v.dtype) for k, v in batch.items()}}))


if __name__ == "__main__":
    main(sys.argv[1])
