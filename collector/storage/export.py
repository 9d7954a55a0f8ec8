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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import h5py
import numpy as np

from collector.errors import EpisodeFileError
from collector.storage.reader import Episode, Images, open_episode
from schemas.layout import CHANNEL_NAMES, CHANNEL_UNITS, FILL_RULE, FILL_RULE_ATTR

ROWS = 256  # frames decoded and written at a time: memory stays bounded


@dataclass
class Exported:
    demos: int
    samples: int
    skipped: list[str]


class EpisodePaths(Protocol):
    """The episode files to export: a list, or the CLI's list that advances a progress bar as
    each is iterated past."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Path]: ...


def export_robomimic(episodes: EpisodePaths, out: Path, outcomes: set[str],
                     images: bool = True, compression: str | None = "lzf") -> Exported:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    total, demos, skipped, env = 0, 0, [], None
    with h5py.File(tmp, "w") as f:
        data = f.create_group("data")
        for path in episodes:
            with open_episode(path) as ep:
                meta = ep.metadata
                if meta.get("outcome") not in outcomes:
                    skipped.append(f"{path} (outcome {meta.get('outcome')})")
                    continue
                n = _write_demo(data.create_group(f"demo_{demos}"), ep, images, compression)
                env = env or {"env_name": f"{meta['station_id']}/{meta['task']}", "type": 2,
                              "env_kwargs": {"control_hz": meta["control_hz"],
                                             "source": "collector"}}
            demos += 1
            total += n
        if not demos:
            raise EpisodeFileError(f"no episode with outcome {' or '.join(sorted(outcomes))} "
                                   f"among {len(episodes)} file(s); nothing exported")
        data.attrs["total"] = total
        data.attrs["env_args"] = json.dumps(env)
        data.attrs[FILL_RULE_ATTR] = FILL_RULE
    tmp.replace(out)
    return Exported(demos, total, skipped)


def _write_demo(demo: h5py.Group, ep: Episode, images: bool, compression: str | None) -> int:
    n = len(ep)
    obs = demo.create_group("obs")
    actions, action_names, action_units = [], [], []
    for name, kind in ep.streams().items():
        # held samples must stay marked in training data: every flag travels with the demo
        for flag, on in ep.flags(name).items():
            obs.create_dataset(f"{name}_{flag}", data=on[:n], compression=compression)
        if kind == "camera":
            if images:
                _write_frames(obs, f"{name}_image", ep.images(name), compression)
            continue
        fields = ep.fields(name)
        order = _field_order(ep, name) or list(fields)
        for field in order:  # the writer's order, so action vectors keep their meaning
            values = fields[field]
            values = values.reshape(n, -1).astype(np.float32)
            channels = ep.channels(name, field)
            if kind == "action":
                actions.append(values)
                action_names += [c if c.startswith(field) else f"{field}.{c}"
                                 for c in channels.names]
                action_units += channels.units
            else:
                ds = obs.create_dataset(f"{name}_{field}", data=values, compression=compression)
                ds.attrs.update({CHANNEL_NAMES: channels.names, CHANNEL_UNITS: channels.units})
    ds = demo.create_dataset("actions", data=np.concatenate(actions, axis=1) if actions
                             else np.zeros((n, 0), np.float32))
    ds.attrs.update({CHANNEL_NAMES: action_names, CHANNEL_UNITS: action_units})
    done = np.zeros(n, np.float32)
    done[-1:] = 1.0
    success = ep.metadata.get("outcome") == "success"
    demo.create_dataset("rewards", data=done if success else np.zeros(n, np.float32))
    demo.create_dataset("dones", data=done.astype(np.int64))
    demo.attrs.update(num_samples=n, episode_id=ep.metadata.get("episode_id", ""),
                      source=str(ep.path), outcome=ep.metadata.get("outcome", ""))
    return n


def _field_order(ep: Episode, stream: str) -> list[str]:
    layout = ep.layout
    for s in layout.streams if layout else []:
        if s.name == stream:
            return list(s.fields)
    return []


def _write_frames(obs: h5py.Group, key: str, frames: Images, compression: str | None) -> None:
    n = len(frames)
    h, w, c = frames.shape
    ds = obs.create_dataset(key, (n, h, w, c), np.uint8, chunks=(1, h, w, c),
                            compression=compression)
    for start in range(0, n, ROWS):
        stop = min(start + ROWS, n)
        ds[start:stop] = np.stack([frames[i] for i in range(start, stop)])
