"""Export episodes as ALOHA/ACT episode files: `episode_<i>.hdf5`, one per episode, in the
layout ACT's `utils.py` (`EpisodicDataset`, `get_norm_stats`) reads unchanged.

```
/                         attrs: sim (every device of the rig simulated), episode_id, source,
                          outcome, qpos_names, qvel_source, missing_fill
/observations/qpos        (T, n) float64: the arms' positions and grippers, as observation.state
/observations/qvel        (T, n) float64: their velocities (see qvel_source)
/observations/images/<cam>  (T, H, W, 3) uint8 RGB, the frame each tick shows, decoded
/action                   (T, a) float64: the commanded vector (attr names)
/quality/<stream>/<name>  (T,) every per-tick mark and time of /quality, as in the episode
```

Velocities: an arm's `qvel` is the rig's own (derived from its positions at the full raw rate,
before alignment: `collector/derive.py`); a value the rig has no velocity for (a gripper, or an
arm recorded without `derived.velocities`) is the backward difference of its grid positions
over the grid's tick times (0 at the first tick). `qvel_source` names which column is which.

ACT's `get_norm_stats` stacks every episode's qpos and action, so the original ACT code wants
episodes of one length: record them with one `episode.duration_s`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np
import yaml

from collector.derive import VELOCITY_OF
from collector.export.arrays import action_parts, grid_field, grid_quality, state_parts, vector
from collector.export.episodes import check_valid
from collector.export.robomimic import Exported, write_frames
from collector.export.staging import staged
from collector.storage.layout import QUALITY
from collector.storage.reader import Episode, open_episode
from schemas.layout import FILL_RULE, FILL_RULE_ATTR


def export_aloha(episodes: Iterable[Path], out: Path, images: bool = True,
                 compression: str | None = None) -> Exported:
    """Selected episodes into a new folder `out` of `episode_<i>.hdf5` files, i from 0."""
    out = Path(out)
    count = samples = 0
    with staged(out, folder=True) as root:
        root.mkdir()
        for path in episodes:
            check_valid(path)
            with open_episode(path) as ep, \
                    h5py.File(root / f"episode_{count}.hdf5", "w") as f:
                samples += _write_episode(f, ep, images, compression)
            count += 1
    return Exported(count, samples)


def _write_episode(f: h5py.File, ep: Episode, images: bool, compression: str | None) -> int:
    n = len(ep)
    state = vector(ep, state_parts(ep), np.float64)
    qvel, sources = _velocities(ep)
    action = vector(ep, action_parts(ep), np.float64)
    f.attrs.update(sim=_simulated(ep), episode_id=ep.metadata.get("episode_id", ""),
                   source=str(ep.path), outcome=ep.metadata.get("outcome", ""),
                   qpos_names=state.names, qvel_source=sources)
    f.attrs[FILL_RULE_ATTR] = FILL_RULE
    obs = f.create_group("observations")
    obs.create_dataset("qpos", data=state.values)
    obs.create_dataset("qvel", data=qvel)
    f.create_dataset("action", data=action.values).attrs["names"] = action.names
    group = obs.create_group("images")
    for camera in ep.cameras if images else []:
        write_frames(group, camera, ep.images(camera), compression)
    for stream in ep.streams():
        for name, values in grid_quality(ep, stream).items():
            f.create_dataset(f"{QUALITY}/{stream}/{name}", data=values)
    return n


def _velocities(ep: Episode) -> tuple[np.ndarray, list[str]]:
    """(T, n) velocities beside qpos, and per column where it came from."""
    columns, sources = [], []
    streams = ep.streams()
    for stream, name in state_parts(ep):
        width = grid_field(ep, stream, name).shape[1]
        velocity = VELOCITY_OF.get(name)
        if velocity is not None and velocity in ep.fields(stream) \
                and streams.get(stream) == "arm":
            columns.append(grid_field(ep, stream, velocity).astype(np.float64))
            sources += [f"{stream}.{velocity} (rig, full rate)"] * width
        else:
            columns.append(_grid_difference(ep, grid_field(ep, stream, name)))
            sources += [f"difference of {stream}.{name} over grid ticks"] * width
    n = len(ep)
    return (np.concatenate(columns, axis=1) if columns else np.zeros((n, 0))), sources


def _grid_difference(ep: Episode, values: np.ndarray) -> np.ndarray:
    out = np.zeros(values.shape, np.float64)
    dt = np.diff(ep.timestamps).astype(np.float64) / 1e9
    if dt.size:
        out[1:] = np.diff(values.astype(np.float64), axis=0) / dt[:, None]
    return out


def _simulated(ep: Episode) -> bool:
    """ACT's `sim`: True when every device of the rig that recorded it is simulated."""
    rig = yaml.safe_load(str(ep.metadata.get("rig_config", ""))) or {}
    devices = rig.get("devices", []) if isinstance(rig, dict) else []
    kinds = [str(d.get("type", "")) for d in devices if isinstance(d, dict)]
    return bool(kinds) and all(k.startswith("sim_") for k in kinds)
