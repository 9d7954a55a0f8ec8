"""Export episodes to the robomimic HDF5 layout, so existing training code reads them as-is.

```
/data                    attrs: total (samples over all demos), env_args (JSON), missing_fill
/data/demo_<i>/obs/<cam>_image        (N, H, W, 3) uint8 RGB, decoded
/data/demo_<i>/obs/<stream>_<field>   (N, D) float32; attrs channel_names, channel_units
/data/demo_<i>/obs/<stream>_<flag>    (N,) bool, every stream's per-tick marks: `missing` (the
                         tick holds a repeated sample, see /data attrs missing_fill), `dropped`,
                         and each camera's `blurred`, `frozen`, `overexposed`, ...
/data/demo_<i>/actions                (N, A) float32: the action stream's fields, concatenated;
                         attrs channel_names (field.channel), channel_units
/data/demo_<i>/rewards, dones         (N,): 1 at the last step of a successful demo / every demo
                         attrs: num_samples, episode_id, source, outcome
```
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from collector.export.arrays import (
    action_parts,
    field_order,
    grid_field,
    grid_quality,
    vector,
)
from collector.export.episodes import check_valid
from collector.export.staging import ExportError, staged
from collector.storage.reader import Episode, Images, open_episode
from schemas.layout import CHANNEL_NAMES, CHANNEL_UNITS, FILL_RULE, FILL_RULE_ATTR

ROWS = 256  # frames decoded and written at a time: memory stays bounded


@dataclass
class Exported:
    episodes: int
    samples: int
    skipped: list[str] = field(default_factory=list)

    @property
    def demos(self) -> int:  # robomimic's word for an episode
        return self.episodes


def export_robomimic(episodes: Iterable[Path], out: Path, outcomes: set[str],
                     images: bool = True, compression: str | None = "lzf") -> Exported:
    """Episodes (already selected, or filtered here by `outcomes`) into one robomimic file."""
    out = Path(out)
    total, demos, skipped, env = 0, 0, [], None
    with staged(out, folder=False) as tmp, h5py.File(tmp, "w") as f:
        data = f.create_group("data")
        for path in episodes:
            with open_episode(path) as ep:
                meta = ep.metadata
                if meta.get("outcome") not in outcomes:
                    skipped.append(f"{path} (outcome {meta.get('outcome')})")
                    continue
                check_valid(path)
                n = _write_demo(data.create_group(f"demo_{demos}"), ep, images, compression)
                env = env or {"env_name": f"{meta['station_id']}/{meta['task']}", "type": 2,
                              "env_kwargs": {"control_hz": meta["control_hz"],
                                             "source": "collector"}}
            demos += 1
            total += n
        if not demos:
            raise ExportError(f"no episode with outcome {' or '.join(sorted(outcomes))} "
                              f"among {len(skipped)} file(s); nothing exported")
        data.attrs["total"] = total
        data.attrs["env_args"] = json.dumps(env)
        data.attrs[FILL_RULE_ATTR] = FILL_RULE
    return Exported(demos, total, skipped)


def _write_demo(demo: h5py.Group, ep: Episode, images: bool, compression: str | None) -> int:
    n = len(ep)
    obs = demo.create_group("obs")
    for name, kind in ep.streams().items():
        # held samples must stay marked in training data: every flag travels with the demo
        for flag, on in grid_quality(ep, name).items():
            if on.dtype == np.bool_:
                obs.create_dataset(f"{name}_{flag}", data=on, compression=compression)
        if kind == "camera":
            if images:
                write_frames(obs, f"{name}_image", ep.images(name), compression)
            continue
        if kind == "action":
            continue
        for f in field_order(ep, name):
            values = grid_field(ep, name, f).astype(np.float32)
            channels = ep.channels(name, f)
            ds = obs.create_dataset(f"{name}_{f}", data=values, compression=compression)
            ds.attrs.update({CHANNEL_NAMES: channels.names, CHANNEL_UNITS: channels.units})
    actions = vector(ep, action_parts(ep))
    ds = demo.create_dataset("actions", data=actions.values)
    ds.attrs.update({CHANNEL_NAMES: actions.names, CHANNEL_UNITS: actions.units})
    done = np.zeros(n, np.float32)
    done[-1:] = 1.0
    success = ep.metadata.get("outcome") == "success"
    demo.create_dataset("rewards", data=done if success else np.zeros(n, np.float32))
    demo.create_dataset("dones", data=done.astype(np.int64))
    demo.attrs.update(num_samples=n, episode_id=ep.metadata.get("episode_id", ""),
                      source=str(ep.path), outcome=ep.metadata.get("outcome", ""))
    return n


def write_frames(obs: h5py.Group, key: str, frames: Images, compression: str | None) -> None:
    """An episode's frames of one camera as (n, h, w, 3) uint8, a chunk per frame, decoded and
    written ROWS at a time."""
    n = len(frames)
    h, w, c = frames.shape
    ds = obs.create_dataset(key, (n, h, w, c), np.uint8, chunks=(1, h, w, c),
                            compression=compression)
    for start in range(0, n, ROWS):
        stop = min(start + ROWS, n)
        ds[start:stop] = np.stack([frames[i] for i in range(start, stop)])
