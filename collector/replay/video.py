"""Replay to video: a mosaic of every camera at the episode's timing, with a timeline overlay
(time, outcome, the tick's quality flags, a small plot of chosen fields); or a contact sheet."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from collector.replay.source import (
    FieldRef,
    ReplayError,
    TickRange,
    control_hz,
    field_values,
    tick_flags,
)
from collector.storage.reader import Episode

STRIP_TEXT = 40  # px: two lines of text
STRIP_PLOT = 80  # px: the field plot, its legend (name, range, unit of each field) on top
LEGEND_ROW = 14  # px per legend line
FONT = cv2.FONT_HERSHEY_SIMPLEX
STRIP_FLAGS = 8  # px: red where any quality flag is set
COLORS = [(255, 190, 60), (90, 200, 255), (120, 255, 120), (255, 120, 200), (200, 200, 80)]


@dataclass(frozen=True)
class MosaicLayout:
    """Where each camera's tile lies in a frame (RGB, tiles row-major), and the strip below."""

    cameras: tuple[str, ...]
    tile_w: int
    tile_h: int
    cols: int
    rows: int

    @property
    def width(self) -> int:
        return self.cols * self.tile_w

    @property
    def strip_top(self) -> int:
        return self.rows * self.tile_h

    @property
    def height(self) -> int:
        return self.strip_top + STRIP_TEXT + STRIP_PLOT + STRIP_FLAGS

    def tile(self, index: int) -> tuple[slice, slice]:
        r, c = divmod(index, self.cols)
        return (slice(r * self.tile_h, (r + 1) * self.tile_h),
                slice(c * self.tile_w, (c + 1) * self.tile_w))


def mosaic_layout(episode: Episode, tile_width: int) -> MosaicLayout:
    cameras = tuple(episode.cameras)
    if not cameras:
        raise ReplayError(f"{episode.path}: no camera streams to make a video of")
    h, w, _ = episode.images(cameras[0]).shape
    tile_w = max(2, int(tile_width) // 2 * 2)  # codecs want even sizes
    tile_h = max(2, round(tile_w * h / w) // 2 * 2)
    cols = math.ceil(math.sqrt(len(cameras)))
    return MosaicLayout(cameras, tile_w, tile_h, cols, math.ceil(len(cameras) / cols))


class Timeline:
    """The overlay strip: drawn once for the whole range; each frame only adds a cursor/text."""

    def __init__(self, episode: Episode, ticks: TickRange, fields: list[FieldRef], width: int):
        self.ticks = ticks
        self.width = width
        self.hz = control_hz(episode)
        self.outcome = str(episode.metadata.get("outcome", "?"))
        self.flags = tick_flags(episode, ticks)
        self.x = self._x(len(ticks))
        self.strip = self._draw_static(episode, fields)

    def _x(self, n: int) -> np.ndarray:
        return np.round(np.arange(n) * (self.width - 1) / max(n - 1, 1)).astype(np.int32)

    def _draw_static(self, episode: Episode, fields: list[FieldRef]) -> np.ndarray:
        strip = np.full((STRIP_TEXT + STRIP_PLOT + STRIP_FLAGS, self.width, 3), 24, np.uint8)
        values = [field_values(episode, ref, self.ticks) for ref in fields]
        # each field is scaled to its own range, so each legend entry states that range
        legend = [legend_label(episode, ref, v) for ref, v in zip(fields, values, strict=True)]
        spots, rows = legend_spots(legend, self.width)
        for (x, row), text, i in zip(spots, legend, range(len(fields)), strict=True):
            cv2.putText(strip, text, (x, STRIP_TEXT + 11 + LEGEND_ROW * row), FONT, 0.4,
                        COLORS[i % len(COLORS)], 1, cv2.LINE_AA)
        top, bottom = STRIP_TEXT + 4 + LEGEND_ROW * rows, STRIP_TEXT + STRIP_PLOT - 4
        for edge in (top, bottom):  # where each field's min and max lie
            strip[edge, :] = (70, 70, 70)
        for i, v in enumerate(values):
            lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
            scaled = (v - lo) / (hi - lo) if hi > lo else np.full_like(v, 0.5)
            y = np.round(bottom - scaled * (bottom - top)).astype(np.int32)
            cv2.polylines(strip, [np.stack([self.x, y], axis=1)], False,
                          COLORS[i % len(COLORS)], 1, cv2.LINE_AA)
        if self.flags:
            any_flag = np.any(np.stack(list(self.flags.values())), axis=0)
            columns = np.zeros(self.width, bool)
            np.logical_or.at(columns, self.x, any_flag)
            strip[-STRIP_FLAGS:, columns] = (220, 40, 40)
            strip[-STRIP_FLAGS:, ~columns] = (40, 120, 40)
        return strip

    def render(self, i: int) -> np.ndarray:
        """The strip for the i-th tick of the range."""
        strip = self.strip.copy()
        strip[STRIP_TEXT:, self.x[i]] = (255, 255, 255)
        tick = self.ticks.first + i
        raised = [name for name, f in self.flags.items() if f[i]]
        span = f"{self.ticks.first / self.hz:.2f}..{(self.ticks.stop - 1) / self.hz:.2f} s"
        lines = (f"t {tick / self.hz:7.2f} s (strip: {span})   tick {tick}   "
                 f"outcome {self.outcome}",
                 "flags: " + (", ".join(raised)[:120] if raised else "none"))
        for row, text in enumerate(lines):
            cv2.putText(strip, text, (6, 15 + 18 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        (230, 80, 80) if row and raised else (230, 230, 230), 1, cv2.LINE_AA)
        return strip


def legend_label(episode: Episode, ref: FieldRef, values: np.ndarray) -> str:
    """`ft.fz -0.12 to 2.05 N`: the channel's name, the range the strip spans, its unit."""
    channels = episode.channels(ref.stream, ref.field)
    name, unit = channels.names[ref.index], channels.units[ref.index]
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    span = f"{lo:.3g} to {hi:.3g}" if hi > lo else f"= {lo:.3g}"
    return f"{ref.stream}.{name} {span}" + (f" {unit}" if unit else "")


def legend_spots(labels: list[str], width: int) -> tuple[list[tuple[int, int]], int]:
    """Left to right, wrapping: the (x, row) of each label, and the rows used."""
    spots, x, row = [], 4, 0
    for text in labels:
        w = cv2.getTextSize(text, FONT, 0.4, 1)[0][0]
        if x > 4 and x + w > width - 4:
            x, row = 4, row + 1
        spots.append((x, row))
        x += w + 16
    return spots, (row + 1) if labels else 0


def name_tile(tile: np.ndarray, name: str) -> None:
    """The camera's name in the tile's bottom-left corner (the top edge is where cameras stamp
    counters and clocks), white on a dark box so any scene leaves it readable."""
    scale = max(0.4, min(0.7, tile.shape[1] / 640))
    (w, h), base = cv2.getTextSize(name, FONT, scale, 1)
    rows = tile.shape[0]
    tile[rows - h - base - 8:, :w + 10] //= 3
    cv2.putText(tile, name, (5, rows - base - 4), FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)


class Mosaic:
    """Composes one RGB frame per tick: camera tiles above, the timeline strip below."""

    def __init__(self, episode: Episode, ticks: TickRange, fields: list[FieldRef],
                 tile_width: int):
        self.episode = episode
        self.layout = mosaic_layout(episode, tile_width)
        self.timeline = Timeline(episode, ticks, fields, self.layout.width)
        self.frames = [episode.images(cam) for cam in self.layout.cameras]
        self._canvas = np.zeros((self.layout.height, self.layout.width, 3), np.uint8)

    def frame(self, i: int) -> np.ndarray:
        lay, tick = self.layout, self.timeline.ticks.first + i
        for c, frames in enumerate(self.frames):
            rows, cols = lay.tile(c)
            self._canvas[rows, cols] = cv2.resize(frames[tick], (lay.tile_w, lay.tile_h),
                                                  interpolation=cv2.INTER_AREA)
            name_tile(self._canvas[rows, cols], lay.cameras[c])
        self._canvas[lay.strip_top:] = self.timeline.render(i)
        return self._canvas


def write_video(episode: Episode, ticks: TickRange, fields: list[FieldRef], out: str | Path,
                tile_width: int = 320) -> tuple[int, float]:
    """Write the mosaic as mp4 (mp4v) at control_hz; returns (frames, fps)."""
    out = Path(out)
    if not out.parent.is_dir():
        raise ReplayError(f"{out}: folder {out.parent} does not exist")
    mosaic = Mosaic(episode, ticks, fields, tile_width)
    fps = control_hz(episode)
    lay = mosaic.layout
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps,  # type: ignore[attr-defined]  # cv2 stubs lack it
                             (lay.width, lay.height))
    if not writer.isOpened():
        raise ReplayError(f"{out}: OpenCV cannot write an mp4v video there")
    try:
        for i in range(len(ticks)):
            writer.write(cv2.cvtColor(mosaic.frame(i), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return len(ticks), fps


def write_contact_sheet(episode: Episode, ticks: TickRange, fields: list[FieldRef],
                        out: str | Path, frames: int, tile_width: int = 320) -> list[int]:
    """`frames` evenly spaced mosaic frames in a grid, as one PNG; returns their ticks."""
    out = Path(out)
    if frames < 1:
        raise ReplayError(f"--frames {frames}: must be at least 1")
    if not out.parent.is_dir():
        raise ReplayError(f"{out}: folder {out.parent} does not exist")
    mosaic = Mosaic(episode, ticks, fields, tile_width)
    picks = np.unique(np.linspace(0, len(ticks) - 1, min(frames, len(ticks))).round().astype(int))
    lay = mosaic.layout
    cols = math.ceil(math.sqrt(picks.size))
    rows = math.ceil(picks.size / cols)
    sheet = np.zeros((rows * lay.height, cols * lay.width, 3), np.uint8)
    for n, i in enumerate(picks):
        r, c = divmod(n, cols)
        sheet[r * lay.height:(r + 1) * lay.height, c * lay.width:(c + 1) * lay.width] = \
            mosaic.frame(int(i))
    if not cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise ReplayError(f"{out}: could not write the contact sheet (use a .png name)")
    return [ticks.first + int(i) for i in picks]
