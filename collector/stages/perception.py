"""Perception: raw chunks become observations on the episode grid, with sync and quality flags."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collector.batch import GridBatch, RawBatch, StreamCounters
from collector.sync import align_to_grid
from drivers.base import StreamInfo
from drivers.chunk import Chunk
from schemas.devices import AlignSpec

LATE_NS = 150_000_000  # a tick is final once the devices were read this long after it


@dataclass(frozen=True)
class StreamPlan:
    """How one stream is aligned: method and tolerance, resolved from YAML and its rate."""

    name: str
    kind: str
    method: str
    tolerance_ns: int


def plan_streams(infos: list[StreamInfo], specs: dict[str, AlignSpec | None],
                 control_hz: float) -> list[StreamPlan]:
    """Defaults: cameras and actions take the nearest sample, high-rate signals interpolate."""
    plans = []
    for info in infos:
        spec = specs.get(info.name) or AlignSpec(
            method="nearest" if info.kind in ("camera", "action") else "interpolate")
        if spec.tolerance_ms is not None:
            tolerance_s = spec.tolerance_ms / 1000
        elif info.kind == "camera":
            tolerance_s = 0.5 / info.rate_hz + 0.005  # half a frame, plus timing slack
        else:
            tolerance_s = max(3.0 / info.rate_hz, 0.5 / control_hz)
        plans.append(StreamPlan(info.name, info.kind, spec.method, int(tolerance_s * 1e9)))
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
        self._last_seq: dict[str, int] = {}
        self._next_tick = 0
        self._episode: str | None = None

    def process(self, batch: RawBatch) -> GridBatch:
        clock = batch.clock
        if clock.episode_id != self._episode:
            self._reset(clock.episode_id)
        counters = {p.name: self._count(batch.chunks[p.name]) for p in self.plans}
        raw = {}
        for plan in self.plans:
            chunk = batch.chunks[plan.name]
            keep = chunk.capture_ns >= clock.start_ns - plan.tolerance_ns
            inside = keep & (chunk.capture_ns < clock.end_ns + plan.tolerance_ns)
            raw[plan.name] = chunk.take(inside)
            pending = self._pending.get(plan.name)
            fresh = chunk.take(keep)
            self._pending[plan.name] = Chunk.concat([pending, fresh]) if pending else fresh

        stop = clock.ticks if batch.final else min(
            self._final_ticks(plan, clock, batch.read_ns) for plan in self.plans)
        stop = max(stop, self._next_tick)
        grid = clock.times(self._next_tick, stop)
        streams = {}
        for plan in self.plans:
            pending = self._pending[plan.name]
            streams[plan.name] = align_to_grid(pending.capture_ns, pending.fields, grid,
                                               plan.method, plan.tolerance_ns, clock.period_ns)
        out = GridBatch(clock=clock, index=batch.index, final=batch.final,
                        first_tick=self._next_tick, timestamps=grid, streams=streams, raw=raw,
                        counters=counters)
        self._next_tick = stop
        self._forget_used(clock)
        return out

    def _reset(self, episode_id: str) -> None:
        self._episode = episode_id
        self._pending.clear()
        self._last_seq.clear()  # samples discarded between episodes are not drops
        self._next_tick = 0

    def _final_ticks(self, plan: StreamPlan, clock, read_ns: int) -> int:
        """How many ticks of the episode no future sample of this stream can change."""
        pending = self._pending[plan.name]
        newest = int(pending.capture_ns[-1]) if len(pending) else -(2**62)
        settled = max(newest - plan.tolerance_ns, read_ns - plan.tolerance_ns - LATE_NS)
        ticks = (settled - clock.start_ns) // clock.period_ns  # ticks strictly before `settled`
        return int(min(max(ticks, 0), clock.ticks))

    def _forget_used(self, clock) -> None:
        """Drop samples no remaining tick can use, so memory stays bounded."""
        next_t = clock.start_ns + self._next_tick * clock.period_ns
        for plan in self.plans:
            pending = self._pending[plan.name]
            reach = max(plan.tolerance_ns, clock.period_ns)
            first = max(int(np.searchsorted(pending.capture_ns, next_t - reach)) - 1, 0)
            self._pending[plan.name] = pending.take(slice(first, None))

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
