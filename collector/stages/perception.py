"""Perception: raw chunks become observations on the episode grid, with sync and quality flags."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from collector.batch import (
    EncodeJob,
    GridBatch,
    HeldBlock,
    RawBatch,
    StreamCounters,
    StreamOnGrid,
)
from collector.derive import Deriver, derived_fields
from collector.errors import ConfigError
from collector.frames import (
    BLOCK_ROWS,
    FRAME_BEFORE,
    FRAME_FIELD,
    FRAME_INDEX,
    FrameBlocks,
    frame_handles,
)
from collector.quality import (
    PIXEL_CHECKS,
    SCORE,
    StreamChecker,
    checks_of,
    dropped_on_grid,
    split_checks,
)
from collector.sync import NO_SAMPLE, align_to_grid
from core.codec import FRAME_DATA_FIELDS
from drivers.base import StreamInfo
from drivers.chunk import Chunk
from schemas.devices import AlignSpec
from schemas.station import DerivedSignals, ImagesConfig, QualityConfig

LATE_NS = 150_000_000  # a tick is final once the devices were read this long after it


@dataclass(frozen=True)
class StreamPlan:
    """How one stream is aligned: method and tolerance, resolved from YAML and its rate."""

    name: str
    kind: str
    method: str
    tolerance_ns: int
    sample_ns: int = 0  # nominal sample spacing (1 / rate)
    checker: StreamChecker | None = None  # per-sample quality checks (None: sync only)
    deriver: Deriver | None = None  # derived fields (None: none)
    video: bool = False  # a video-coded camera: its frames are numbered and encoded once


def plan_streams(infos: list[StreamInfo], specs: dict[str, AlignSpec | None],
                 control_hz: float, quality: QualityConfig | None = None,
                 derived: DerivedSignals | None = None,
                 images: ImagesConfig | None = None) -> list[StreamPlan]:
    """Defaults: cameras and actions take the nearest sample, high-rate signals interpolate."""
    plans = []
    for info in infos:
        spec = specs.get(info.name) or AlignSpec(
            method="nearest" if info.kind in ("camera", "action") else "interpolate")
        if info.kind == "camera" and spec.method not in ("nearest", "last"):
            raise ConfigError(f"devices.{info.name}.align.method: {spec.method} cannot apply to "
                              "camera frames; use nearest or last")
        if spec.tolerance_ms is not None:
            tolerance_s = spec.tolerance_ms / 1000
        elif spec.method in ("nearest", "last"):  # cameras, actions: one sample per tick
            # half a sample, plus timing slack: a wider reach would only hold ticks back (a
            # tick is emitted once a sample past its reach has arrived)
            tolerance_s = 0.5 / info.rate_hz + 0.005
        else:
            tolerance_s = max(3.0 / info.rate_hz, 0.5 / control_hz)
        checker = deriver = None
        if quality is not None:
            checker = StreamChecker(
                info.kind, camera=quality.for_camera(info.name) if info.kind == "camera" else None,
                signal=quality.signals.get(info.name))
        if derived is not None:
            fields = derived_fields(info, derived)
            deriver = Deriver(fields, derived.lowpass_hz) if fields else None
        video = (info.kind == "camera" and images is not None
                 and images.for_camera(info.name).is_video)
        plans.append(StreamPlan(info.name, info.kind, spec.method, int(tolerance_s * 1e9),
                                int(1e9 / info.rate_hz), checker, deriver, video))
    return plans


class Perception:
    """Aligns every stream onto the grid as samples arrive, carrying the ones a later tick needs.

    A tick is emitted only when no later sample can change its choice: the stream has a sample
    past the tick's tolerance, or the devices were read `LATE_NS` after it. So a sample that
    arrives in the next chunk still lands on the right tick.
    """

    def __init__(self, plans: list[StreamPlan]):
        self.plans = plans
        self._pending: dict[str, Chunk] = {}
        self._drops: dict[str, np.ndarray] = {}  # expected times of dropped samples, per stream
        self._last_seq: dict[str, int] = {}
        self._next_tick = 0
        self._episode: str | None = None
        self._frames = FrameBlocks()
        self._last_frame: dict[str, int] = {}  # camera -> handle of its last frame this episode
        self._numbered: dict[str, int] = {}  # video camera -> frames numbered this episode

    def process(self, batch: RawBatch, held: HeldBlock | None = None) -> GridBatch:
        """`held`: where later stages find this batch's frames, when not in the batch itself
        (the Ray engine's handle on it in the object store)."""
        clock = batch.clock
        if clock.episode_id != self._episode:
            self._reset(clock.episode_id)
        counters = {p.name: self._count(batch.chunks[p.name]) for p in self.plans}
        raw = {}
        jobs = {}
        block = self._frames.add(batch if held is None else held)
        for plan in self.plans:
            chunk = batch.chunks[plan.name]
            keep = chunk.capture_ns >= clock.start_ns - plan.tolerance_ns
            inside = keep & (chunk.capture_ns < clock.end_ns + plan.tolerance_ns)
            if plan.kind == "camera":  # from here on a frame is its handle
                chunk = self._frames_by_handle(chunk, block)
            if plan.video:
                chunk, jobs[plan.name] = self._number_frames(chunk, inside)
            annotated = self._annotate(plan, chunk, clock)
            # raw: data only; a camera's full-rate frames are not kept (their timing is)
            raw[plan.name] = annotated.take(inside,
                                            without=(FRAME_FIELD, FRAME_BEFORE, FRAME_INDEX))
            raw[plan.name].fields = split_checks(raw[plan.name].fields)[0]
            # samples past the last tick's reach change nothing; one is kept to settle the
            # ticks, the rest not at all (a loop running late would pile them up otherwise)
            past = chunk.capture_ns >= clock.end_ns + max(plan.tolerance_ns, clock.period_ns)
            keep &= ~past | (np.cumsum(past) == 1)
            fresh = annotated if keep.all() else annotated.take(keep)
            pending = self._pending.get(plan.name)
            self._pending[plan.name] = Chunk.concat([pending, fresh]) if pending else fresh

        stop = clock.ticks if batch.final else min(
            self._final_ticks(plan, clock, batch.read_ns) for plan in self.plans)
        stop = max(stop, self._next_tick)
        grid = clock.times(self._next_tick, stop)
        streams = {plan.name: self._align(plan, grid, clock.period_ns) for plan in self.plans}
        handles = [s.values[k] for s in streams.values() for k in (FRAME_FIELD, FRAME_BEFORE)
                   if k in s.values]
        out = GridBatch(clock=clock, index=batch.index, final=batch.final,
                        first_tick=self._next_tick, timestamps=grid, streams=streams, raw=raw,
                        counters=counters, frames=self._frames.needed(handles),
                        jobs={k: j for k, j in jobs.items() if len(j.rows)})
        self._next_tick = stop
        self._forget_used(clock)
        return out

    def _frames_by_handle(self, chunk: Chunk, block: int) -> Chunk:
        """The camera chunk with each frame replaced by its handle, and the handle of the frame
        delivered before it (what the frozen check compares with; -1: none this episode)."""
        handles = frame_handles(block, len(chunk))
        # one per frame, an empty read included: a stray entry would pair every later frame
        # with one delivered further back, and the frozen check would miss its copies
        before = np.concatenate([[self._last_frame.get(chunk.stream, -1)], handles])[:-1]
        if len(chunk):
            self._last_frame[chunk.stream] = int(handles[-1])
        fields = {k: v for k, v in chunk.fields.items() if k not in FRAME_DATA_FIELDS}
        fields[FRAME_FIELD], fields[FRAME_BEFORE] = handles, before
        return replace(chunk, fields=fields)

    def _number_frames(self, chunk: Chunk, inside: np.ndarray) -> tuple[Chunk, EncodeJob]:
        """A video camera's frames inside the episode window get the next numbers of the
        episode (the frame index the grid will point at), in capture order, and go to its
        encoder: every frame the grid may show is stored once, and only those."""
        rows = np.flatnonzero(inside)
        first = self._numbered.get(chunk.stream, 0)
        numbers = np.full(len(chunk), -1, np.int64)
        numbers[rows] = first + np.arange(len(rows), dtype=np.int64)
        self._numbered[chunk.stream] = first + len(rows)
        return (replace(chunk, fields={**chunk.fields, FRAME_INDEX: numbers}),
                EncodeJob(chunk.stream, rows, first))

    def _annotate(self, plan: StreamPlan, chunk: Chunk, clock) -> Chunk:
        """The chunk with its per-sample quality checks and derived fields added as fields."""
        fields = dict(chunk.fields)
        if plan.deriver is not None:
            fields |= plan.deriver.derive(chunk.capture_ns, chunk.device_ns, chunk.fields)
        if plan.checker is not None:
            checks, gaps = plan.checker.scores(chunk.capture_ns, chunk.seq, chunk.fields,
                                               chunk.checksum_failures)
            fields |= checks
            first = gaps.times >= clock.start_ns - clock.period_ns  # before tick 0: not ours
            # samples our own buffer refused are overflow, not the device's drops
            by_device = ~np.isin(gaps.seq, chunk.overflow_seq)
            known = self._drops.get(plan.name, gaps.times[:0])
            self._drops[plan.name] = np.concatenate([known, gaps.times[first & by_device]])
        return Chunk(chunk.stream, chunk.kind, chunk.arrival_ns, chunk.capture_ns,
                     chunk.device_ns, chunk.seq, fields)

    def _align(self, plan: StreamPlan, grid: np.ndarray, period_ns: int):
        pending = self._pending[plan.name]
        data, _, _ = split_checks(pending.fields)
        aligned = align_to_grid(pending.capture_ns, data, grid, plan.method, plan.tolerance_ns,
                                period_ns)
        if plan.kind == "camera":
            _no_frame_without_sample(aligned)
        if plan.checker is None:
            return aligned
        # a tick's checks are those of the sample it shows, or the worst in its window
        how = "nearest" if plan.method == "nearest" else "max"
        checks = {k: v for k, v in pending.fields.items() if k not in data}
        on_grid = align_to_grid(pending.capture_ns, checks, grid, how, plan.tolerance_ns,
                                period_ns).values
        _, tick_flags, tick_scores = split_checks(on_grid)
        m = grid.shape[0]
        for check in PIXEL_CHECKS if plan.kind == "camera" else ():  # computation fills them
            tick_flags[check] = np.zeros(m, bool)
            tick_scores[check + SCORE] = np.full(m, np.nan, np.float32)
        drops = self._drops.get(plan.name, np.zeros(0, np.int64))
        dropped, count = dropped_on_grid(drops, grid, period_ns, aligned.dt_ns, plan.sample_ns)
        tick_flags["dropped"], tick_scores["dropped_score"] = dropped, count
        order = checks_of(plan.kind)
        aligned.flags = {c: tick_flags[c] for c in order}
        aligned.scores = {c + SCORE: tick_scores[c + SCORE] for c in order}
        return aligned

    def _reset(self, episode_id: str) -> None:
        self._episode = episode_id
        self._pending.clear()
        self._frames.clear()
        self._last_frame.clear()
        self._numbered.clear()
        self._drops.clear()
        for plan in self.plans:
            for state in (plan.checker, plan.deriver):
                if state is not None:
                    state.reset()
        self._last_seq.clear()  # samples discarded between episodes are not drops
        self._next_tick = 0

    def _final_ticks(self, plan: StreamPlan, clock, read_ns: int) -> int:
        """How many ticks of the episode no future sample of this stream can change.

        A stream's capture times never step back (drivers/base.py), so every later sample is
        at or after the newest one: a tick before the newest sample has its nearest sample,
        both samples it interpolates between, and its whole window already. Waiting for a
        sample a tolerance past the tick, as before, held the last ticks of most reads back to
        the next read (~55 ms of every camera tick's latency, at 30 fps)."""
        pending = self._pending[plan.name]
        newest = int(pending.capture_ns[-1]) if len(pending) else -(2**62)
        by_sample = -(-(newest - clock.start_ns) // clock.period_ns)  # ticks before `newest`
        by_time = (read_ns - plan.tolerance_ns - LATE_NS - clock.start_ns) // clock.period_ns
        return int(min(max(by_sample, by_time, 0), clock.ticks))

    def _forget_used(self, clock) -> None:
        """Drop samples no remaining tick can use, so memory stays bounded."""
        next_t = clock.start_ns + self._next_tick * clock.period_ns
        for plan in self.plans:
            pending = self._pending[plan.name]
            reach = max(plan.tolerance_ns, clock.period_ns)
            first = max(int(np.searchsorted(pending.capture_ns, next_t - reach)) - 1, 0)
            self._pending[plan.name] = pending.take(slice(first, None))
            if plan.name in self._drops:  # drops before the next tick's half-period are settled
                drops = self._drops[plan.name]
                self._drops[plan.name] = drops[drops >= next_t - clock.period_ns // 2]
        # a block no waiting frame (or the frame before it) points into is needed no more
        oldest = [int(p.fields[k][p.fields[k] >= 0].min()) // BLOCK_ROWS
                  for p in self._pending.values() for k in (FRAME_FIELD, FRAME_BEFORE)
                  if k in p.fields and (p.fields[k] >= 0).any()]
        self._frames.forget_before(min(oldest, default=self._frames.next_block))

    def _count(self, chunk: Chunk) -> StreamCounters:
        """Sequence gaps (the device's drops), including the one since the previous chunk."""
        dropped = 0
        if len(chunk):
            seq = chunk.seq
            previous = self._last_seq.get(chunk.stream)
            if previous is not None:
                seq = np.concatenate([[previous], seq])
            gaps = int(np.clip(np.diff(seq) - 1, 0, None).sum())
            dropped = max(gaps - chunk.overflow, 0)  # samples the ring refused are not drops
            self._last_seq[chunk.stream] = int(chunk.seq[-1])
        return StreamCounters(samples=len(chunk), dropped=dropped, overflow=chunk.overflow,
                              checksum_failures=chunk.checksum_failures, lost_s=chunk.lost_s)


def _no_frame_without_sample(aligned: StreamOnGrid) -> None:
    """A tick with no sample at all points at no frame. Alignment fills an empty stream's
    values with zeros, and a zero is a real handle (block 0, row 0) and a real frame number:
    a camera down since its episode began would show, or index past, another read's frame."""
    none = aligned.capture_ns == NO_SAMPLE
    if none.any():
        for key in (FRAME_FIELD, FRAME_BEFORE, FRAME_INDEX):
            if key in aligned.values:
                aligned.values[key] = np.where(none, np.int64(-1), aligned.values[key])
