"""Execution: commits the episode stream to HDF5 in order, and keeps the efficiency accounts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from collector.batch import GridBatch
from collector.efficiency import EpisodeTally
from collector.storage import layout as L
from collector.storage.layout import StreamLayout
from collector.storage.writer import CommitLog, EpisodeWriter
from schemas.episode import EfficiencyAccounts, EpisodeMetadata
from schemas.station import StorageConfig


@dataclass
class EpisodePlan:
    """Everything the writer must know before the first sample arrives."""

    episode_id: str
    final_dir: Path  # <output>/<station>/<yyyy-mm-dd>
    rejected_dir: Path
    streams: list[StreamLayout]
    image_shapes: dict[str, tuple[int, int, int]]
    image_encoding: dict
    storage: StorageConfig


@dataclass
class EpisodeSummary:
    episode_id: str
    path: str
    ticks: int
    outcome: str
    accounts: EfficiencyAccounts
    dropped: int
    missing: int
    commits: CommitLog | None = None  # capture-to-disk timing of every row (`collector bench`)


class Execution:
    """Appends batches strictly in order (a reorder buffer absorbs out-of-order arrivals)."""

    def __init__(self) -> None:
        self._plan: EpisodePlan | None = None
        self._writer: EpisodeWriter | None = None
        self._tally = EpisodeTally()
        self._waiting: dict[int, GridBatch] = {}
        self._next_index = 0

    def begin(self, plan: EpisodePlan) -> str:
        if self._writer is not None:
            self._writer.close()
        self._plan = plan
        self._tally = EpisodeTally()
        self._waiting.clear()
        self._next_index = 0
        partial = plan.final_dir / f"{plan.episode_id}.h5{L.PARTIAL_SUFFIX}"
        self._writer = EpisodeWriter(partial, plan.streams, plan.image_shapes,
                                     plan.image_encoding, plan.storage)
        return str(partial)

    def append(self, batch: GridBatch) -> int:
        """Returns how many grid rows the episode holds so far."""
        self._waiting[batch.index] = batch
        while self._next_index in self._waiting:
            ready = self._waiting.pop(self._next_index)
            self._writer.append(ready)
            self._tally.add(ready)
            self._next_index += 1
        return self._writer.rows

    def finish(self, metadata: EpisodeMetadata, recording_s: float,
               overhead_s: dict[str, float]) -> EpisodeSummary:
        if self._waiting:
            raise RuntimeError(f"batches {sorted(self._waiting)} arrived after a gap in order")
        plan, writer = self._plan, self._writer
        accounts = self._tally.accounts(recording_s, overhead_s, metadata.outcome)
        keep = metadata.outcome not in ("rejected", "aborted")
        folder = plan.final_dir if keep else plan.rejected_dir
        path = writer.finish(folder / f"{plan.episode_id}.h5", metadata, accounts)
        self._writer = None
        counters = self._tally.counters.values()
        return EpisodeSummary(
            episode_id=plan.episode_id, path=str(path), ticks=writer.rows,
            outcome=metadata.outcome, accounts=accounts,
            dropped=sum(c.dropped for c in counters),
            missing=sum(self._tally.missing.values()),
            commits=writer.commits.trimmed(),
        )

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
