"""`EpisodeDataset`: every tick of a folder of episodes as one training sample.

Index i runs over the ticks of the episodes taken (by outcome and quality masks, as `collector
export` takes them), episode after episode. A sample is a dict of numpy arrays:

    observation.state             (len(observation_offsets), D) float32, the arms' positions
    observation.state_is_pad      (len(observation_offsets),) bool: past an episode edge
    observation.state_missing     (len(observation_offsets),) bool: a tick holding a repeat
    action, action_is_pad, action_missing          the same over action_offsets
    observation.images.<cam>      (len(image_offsets), H, W, 3) uint8 RGB, decoded when asked
    observation.images.<cam>_is_pad, ..._missing
    episode_index, frame_index    () int64; timestamp () float32, seconds into the episode

The signals are read once, at construction (they are small); frames are decoded on demand
from the stored packets (a video camera seeks to the keyframe before the frame, and a window's
next frame costs one packet). HDF5 files are opened lazily in the process that reads them and
reopened after a fork, so the dataset is safe in DataLoader worker processes: no open file
handle crosses a fork, and pickling (spawned workers) carries no handle either.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from collector.dataset.windows import Window
from collector.export.arrays import action_parts, state_parts, streams_of, vector
from collector.export.episodes import Selection, select, sources
from collector.export.staging import ExportError
from collector.storage.reader import Episode, Images, open_episode

MISSING = "missing"


@dataclass
class _Signals:
    """One episode's numeric columns, in memory."""

    path: Path
    length: int
    state: np.ndarray
    action: np.ndarray
    state_missing: np.ndarray
    action_missing: np.ndarray
    camera_missing: dict[str, np.ndarray]
    timestamp: np.ndarray

    def check_like(self, first: _Signals, cameras: list[str]) -> None:
        """A batch stacks samples of every episode: the same widths and cameras in each."""
        for what, mine, theirs in (("state", self.state, first.state),
                                   ("action", self.action, first.action)):
            if mine.shape[1] != theirs.shape[1]:
                raise ExportError(f"{self.path}: {what} has {mine.shape[1]} values, "
                                  f"{first.path.name} {theirs.shape[1]}; read episodes of one "
                                  f"rig together")
        lacking = sorted(set(cameras) - set(self.camera_missing))
        if lacking:
            raise ExportError(f"{self.path}: no camera {', '.join(lacking)}; name the cameras "
                              f"every episode has with cameras=[...]")


class EpisodeDataset:
    """Map-style dataset over the ticks of many episodes; see the module docstring."""

    def __init__(self, paths: str | Path | Sequence[str | Path], *,
                 observation_offsets: Sequence[int] | range = (0,),
                 action_offsets: Sequence[int] | range = (0,),
                 image_offsets: Sequence[int] | range | None = None,
                 cameras: Sequence[str] | None = None,
                 outcomes: Sequence[str] = ("success",),
                 max_missing: float | None = None,
                 require_clean: Sequence[str] = ()):
        roots = [paths] if isinstance(paths, str | Path) else list(paths)
        chosen = select(sources(map(Path, roots)),
                        Selection(frozenset(outcomes), max_missing, tuple(require_clean)))
        self.skipped = chosen.skipped
        self.observations = Window.of(observation_offsets)
        self.actions = Window.of(action_offsets)
        self.images = Window.of(observation_offsets if image_offsets is None else image_offsets)
        self._episodes = [_read_signals(p) for p in chosen.paths]
        with open_episode(chosen.paths[0]) as first:
            self.cameras = list(first.cameras if cameras is None else cameras)
            state, action = vector(first, state_parts(first)), vector(first, action_parts(first))
            self.state_names, self.action_names = state.names, action.names
        for e in self._episodes:
            e.check_like(self._episodes[0], self.cameras)
        lengths = np.array([e.length for e in self._episodes], np.int64)
        self._starts = np.concatenate([[0], np.cumsum(lengths)])
        self._pid = -1
        self._open: dict[int, Episode] = {}
        self._frames: dict[tuple[int, str], Images] = {}

    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def episodes(self) -> list[Path]:
        return [e.path for e in self._episodes]

    def __getitem__(self, index: int) -> dict[str, Any]:
        i = int(index) + (len(self) if index < 0 else 0)
        if not 0 <= i < len(self):
            raise IndexError(f"sample {index}: the dataset has {len(self)}")
        e = int(np.searchsorted(self._starts, i, side="right")) - 1
        ep, tick = self._episodes[e], i - int(self._starts[e])
        out: dict[str, Any] = {"episode_index": np.int64(e), "frame_index": np.int64(tick),
                               "timestamp": ep.timestamp[tick]}
        rows, pad = self.observations.rows(tick, ep.length)
        out["observation.state"] = ep.state[rows]
        out["observation.state_is_pad"] = pad
        out["observation.state_missing"] = ep.state_missing[rows]
        rows, pad = self.actions.rows(tick, ep.length)
        out["action"] = ep.action[rows]
        out["action_is_pad"] = pad
        out["action_missing"] = ep.action_missing[rows]
        rows, pad = self.images.rows(tick, ep.length)
        for camera in self.cameras:
            frames = self._camera(e, camera)
            key = f"observation.images.{camera}"
            out[key] = np.stack([frames[int(r)] for r in rows])
            out[f"{key}_is_pad"] = pad
            out[f"{key}_missing"] = ep.camera_missing[camera][rows]
        return out

    def _camera(self, e: int, camera: str) -> Images:
        """The camera's frames of episode e, from a file this process opened itself."""
        if self._pid != os.getpid():  # a forked worker: the parent's handles are not ours
            self._open, self._frames, self._pid = {}, {}, os.getpid()
        frames = self._frames.get((e, camera))
        if frames is None:
            if e not in self._open:
                self._open[e] = open_episode(self._episodes[e].path)
            frames = self._frames[(e, camera)] = self._open[e].images(camera)
        return frames

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_pid=-1, _open={}, _frames={})  # handles stay in the process that made them
        return state

    def close(self) -> None:
        if self._pid == os.getpid():
            for ep in self._open.values():
                ep.close()
        self._open, self._frames = {}, {}


def _read_signals(path: Path) -> _Signals:
    with open_episode(path) as ep:
        n = len(ep)
        flags = {s: ep.flags(s).get(MISSING, np.zeros(n, bool)) for s in ep.streams()}

        def missing(streams: list[str]) -> np.ndarray:
            out = np.zeros(n, bool)
            for s in streams:
                out |= flags[s]
            return out

        ts = ep.timestamps.astype(np.int64)
        return _Signals(path, n, vector(ep, state_parts(ep)).values,
                        vector(ep, action_parts(ep)).values,
                        missing(streams_of(ep, "arm")), missing(streams_of(ep, "action")),
                        {c: flags.get(c, np.zeros(n, bool)) for c in ep.cameras},
                        ((ts - ts[0]) / 1e9).astype(np.float32))
