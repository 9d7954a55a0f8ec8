"""Execution: commits the episode stream to HDF5 in order, and keeps the efficiency accounts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from collector.batch import CameraPackets, EpisodeClock, GridBatch, StreamOnGrid
from collector.efficiency import EpisodeTally
from collector.quality import BlurJudge
from collector.recent import TickDigest, digest
from collector.stages.frame_rows import FrameRows
from collector.storage.checksums import packet_crcs
from collector.storage.commit_log import CommitLog
from collector.storage.layout import StreamLayout, partial_path
from collector.storage.writer import EpisodeWriter
from core.codec import IMAGE_FIELD, encode_frames
from schemas.episode import EfficiencyAccounts, EpisodeMetadata
from schemas.layout import NO_FRAME
from schemas.station import CameraChecks, ImageEncoding, StorageConfig

HOLD_S = 2.0  # at most this much of an episode's start waits for its cameras' blur judgement


@dataclass
class EpisodePlan:
    """Everything the writer must know before the first sample arrives."""

    episode_id: str
    final_dir: Path  # <output>/<station>/<yyyy-mm-dd>
    rejected_dir: Path
    streams: list[StreamLayout]
    image_shapes: dict[str, tuple[int, int, int]]  # per camera, as stored (after resize)
    image_encoding: dict[str, ImageEncoding]  # per camera (pipeline.images.for_camera)
    storage: StorageConfig
    # Root attributes known at the start (id, station, task, rig_config, ...): written into the
    # partial file before the first sample, so `collector recover` can rebuild the episode.
    start_metadata: dict = field(default_factory=dict)
    camera_checks: dict[str, CameraChecks] = field(default_factory=dict)  # none: not checked
    camera_jpeg: frozenset[str] = frozenset()  # cameras stored as their own JPEG bytes


@dataclass
class LostBatch:
    """A batch that will never come (a stage crashed with it): why, and the packets its video
    cameras' encoders made all the same (later packets build on them: they must be stored)."""

    cause: str
    videos: dict[str, CameraPackets] = field(default_factory=dict)


@dataclass
class EpisodeSummary:
    episode_id: str
    path: str
    ticks: int
    outcome: str
    accounts: EfficiencyAccounts
    dropped: int
    missing: int  # grid samples filled from the nearest sample: /quality/<stream>/missing, summed
    reason: str = ""  # why the episode ended as it did (its `reason` attribute)
    commits: CommitLog | None = None  # capture-to-disk timing of every row (`collector bench`)
    digests: list[dict[str, TickDigest]] = field(default_factory=list)  # see `Written`


@dataclass
class Written:
    """What one `append` or `lose` wrote: the episode's rows so far, and a digest of each
    batch it wrote (none while a camera's first frames wait for their blur verdict; several
    once they are judged), for the live figures (collector/recent.py)."""

    rows: int
    digests: list[dict[str, TickDigest]]


class Execution:
    """Appends batches strictly in order (a reorder buffer absorbs out-of-order arrivals)."""

    def __init__(self) -> None:
        self._plan: EpisodePlan | None = None
        self._writer: EpisodeWriter | None = None
        self._tally = EpisodeTally()
        self._waiting: dict[int, GridBatch | LostBatch] = {}  # index -> batch, or its loss
        self._next_index = 0
        self._clock: EpisodeClock | None = None
        self._lost_cause: str | None = None
        self._last_frames: dict[str, np.ndarray] = {}  # camera -> last encoded frame written
        self._frame_rows: dict[str, FrameRows] = {}  # video camera -> its frames' rows
        self._blur = BlurJudge()  # kept across episodes: each camera's recent sharpness
        self._digests: list[dict[str, TickDigest]] = []  # batches written, not yet handed out

    def begin(self, plan: EpisodePlan) -> str:
        if self._writer is not None:
            self._writer.close()
        self._plan = plan
        self._tally = EpisodeTally(rates={s.name: s.rate_hz for s in plan.streams})
        self._waiting.clear()
        self._digests = []
        self._next_index = 0
        self._clock = None
        self._lost_cause = None
        self._last_frames = {}
        self._frame_rows = {name: FrameRows() for name, spec in plan.image_encoding.items()
                            if spec.is_video}
        partial = partial_path(plan.final_dir, plan.episode_id)
        self._writer = EpisodeWriter(partial, plan.streams, plan.image_shapes,
                                     plan.image_encoding, plan.storage, plan.start_metadata,
                                     plan.camera_jpeg)
        return str(partial)

    def _open(self) -> tuple[EpisodePlan, EpisodeWriter]:
        """The episode begun and not yet finished: every call but `begin` needs one."""
        assert self._plan is not None and self._writer is not None, "no episode begun"
        return self._plan, self._writer

    def append(self, batch: GridBatch) -> Written:
        self._waiting[batch.index] = batch
        self._drain()
        return self._written()

    def lose(self, index: int, cause: str, clock: EpisodeClock,
             videos: dict[str, CameraPackets] | None = None) -> Written:
        """Batch `index` will never come (a stage crashed with it): account for it, move on.

        Its ticks are filled as missing when the next batch shows where the grid resumes;
        `videos`: the packets its encoders made (stored all the same).
        """
        self._clock = self._clock or clock
        self._waiting[index] = LostBatch(cause, videos or {})
        self._drain()
        return self._written()

    def _written(self) -> Written:
        return Written(self._open()[1].rows, self._take_digests())

    def _drain(self, flush: bool = False) -> None:
        while self._next_index in self._waiting:
            plan, writer = self._open()
            ahead = self._blur_ahead()
            if not flush and ahead is not None and self._blur_waits(ahead):
                return  # a camera's first frames wait for frames to be judged against
            ready = self._waiting.pop(self._next_index)
            self._next_index += 1
            if isinstance(ready, LostBatch):
                self._lost_cause = ready.cause
                self._store_videos(ready.videos)
                continue
            self._clock = ready.clock
            self._store_videos(ready.videos)  # before the ticks that point into them
            self._fill_gap(ready.first_tick)
            if len(ready) and ready.first_tick < writer.rows:
                continue  # a restarted stage re-sent ticks already written
            lost = self._point_at_rows(ready)
            self._blur.apply(ready, plan.camera_checks, (ahead or [])[1:])
            writer.append(ready)
            self._tally.add(ready)
            self._digests.append(digest(ready))
            for name, ticks in lost.items():
                self._tally.blame(name, f"crash:encoder-{name}", ticks)
            self._remember_last_frames(ready)

    def _blur_ahead(self) -> list[GridBatch] | None:
        """While a camera's blur is still settling: the batches arrived in order from the
        next one to write (None once every camera has frames to judge against)."""
        if self._blur.settled(self._open()[0].camera_checks):
            return None
        run, index = [], self._next_index
        while index in self._waiting:
            ready = self._waiting[index]
            if isinstance(ready, GridBatch):
                run.append(ready)
            index += 1
        return run

    def _blur_waits(self, ahead: list[GridBatch]) -> bool:
        """Hold the batches while the cameras lack frames to judge them against, but never
        past the episode's last batch, nor more than `HOLD_S` of grid (a camera that shows
        no usable frame must not keep the episode out of the file)."""
        if not ahead or ahead[-1].final:
            return False
        held_s = (ahead[-1].first_tick + len(ahead[-1]) - ahead[0].first_tick) \
            * ahead[0].clock.period_ns / 1e9
        return held_s < HOLD_S and self._blur.waiting(ahead, self._open()[0].camera_checks)

    def _store_videos(self, videos: dict[str, CameraPackets]) -> None:
        for name, packets in videos.items():
            self._frame_rows[name].stored(packets)
        self._open()[1].append_videos(videos)

    def _point_at_rows(self, batch: GridBatch) -> dict[str, int]:
        """Video cameras: each tick's frame number becomes the row its packet is stored in; a
        tick whose frame was never stored (its encoder died with it) shows the last stored
        frame before it and is missing, like any tick without a sample. Returns per camera
        how many ticks that made missing."""
        made_missing = {}
        for name, rows in self._frame_rows.items():
            stream = batch.streams[name]
            stream.values[IMAGE_FIELD], lost = rows.rows_of(stream.values[IMAGE_FIELD])
            made_missing[name] = int((lost & ~stream.missing).sum())
            stream.missing = stream.missing | lost
        return made_missing

    def _remember_last_frames(self, batch: GridBatch) -> None:
        for s in self._open()[0].streams:
            if s.is_camera and len(batch):
                self._last_frames[s.name] = batch.streams[s.name].values[IMAGE_FIELD][-1:]

    def _fill_gap(self, first_tick: int) -> None:
        """Ticks lost with a crashed batch become missing rows, so the grid stays complete."""
        plan, writer = self._open()
        gap = first_tick - writer.rows
        if gap <= 0:
            return
        assert self._clock is not None  # set by the batch (or loss) that showed the gap
        cause = self._lost_cause or "lost_batch"
        filler = gap_batch(self._clock, writer.rows, first_tick, plan.streams,
                           plan.image_shapes, plan.image_encoding, self._last_frames)
        writer.append(filler)
        self._tally.add_lost(cause, gap, len(plan.streams))
        self._lost_cause = None

    def finish(self, metadata: EpisodeMetadata, recording_s: float,
               videos: dict[str, CameraPackets] | None = None) -> EpisodeSummary:
        """`videos`: the packets the encoders still held at the episode's end."""
        self._drain(flush=True)  # batches held for a camera's first blur judgement
        if self._waiting:
            raise RuntimeError(f"batches {sorted(self._waiting)} arrived after a gap in order")
        if self._clock is not None:
            self._fill_gap(self._clock.ticks)  # the last batches may have been lost
        self._store_videos(videos or {})
        plan, writer = self._open()
        accounts = self._tally.accounts(recording_s, metadata.outcome)
        keep = metadata.outcome not in ("rejected", "aborted")
        folder = plan.final_dir if keep else plan.rejected_dir
        path = writer.finish(folder / f"{plan.episode_id}.h5", metadata, accounts)
        self._writer = None
        counters = self._tally.counters.values()
        return EpisodeSummary(
            episode_id=plan.episode_id, path=str(path), ticks=writer.rows,
            outcome=metadata.outcome, accounts=accounts,
            dropped=sum(c.dropped for c in counters),
            missing=self._tally.held,
            reason=metadata.reason,
            commits=writer.commits.trimmed(),
            digests=self._take_digests(),
        )

    def _take_digests(self) -> list[dict[str, TickDigest]]:
        ticks, self._digests = self._digests, []
        return ticks

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def gap_batch(clock: EpisodeClock, first: int, stop: int, streams: list[StreamLayout],
              image_shapes: dict, image_encoding: dict[str, ImageEncoding],
              last_frames: dict[str, np.ndarray]) -> GridBatch:
    """Rows for ticks whose batch was lost: flagged missing, arrays kept rectangular.

    Cameras repeat the last frame written (or a black frame; a video camera: its last frame
    index, or NO_FRAME), as missing ticks do elsewhere.
    """
    m = stop - first
    aligned = {}
    for s in streams:
        if s.is_camera:
            frame = last_frames.get(s.name)
            if frame is None and image_encoding[s.name].is_video:
                frame = np.full(1, NO_FRAME, np.int64)
            elif frame is None:
                black = np.zeros((1, *image_shapes[s.name]), np.uint8)
                # already at the stored size: encoded as it is
                frame = encode_frames(black, image_encoding[s.name].model_copy(
                    update={"resize": None}))
            values = {IMAGE_FIELD: np.repeat(frame, m, axis=0)}
            encoded = image_encoding[s.name].encoding in ("jpeg", "png")
            crcs = np.repeat(packet_crcs(frame), m) if encoded else None
        else:
            values = {k: np.zeros((m, *shape), dtype) for k, (shape, dtype) in s.fields.items()}
            crcs = None
        aligned[s.name] = StreamOnGrid(
            values=values, capture_ns=np.full(m, -1, np.int64), dt_ns=np.zeros(m, np.int64),
            missing=np.ones(m, bool),
            flags={k: np.zeros(m, d) for k, d in s.quality.items() if np.dtype(d) == bool},
            scores={k: np.zeros(m, d) for k, d in s.quality.items() if np.dtype(d) != bool},
            frame_crc32=crcs,
        )
    return GridBatch(clock=clock, index=-1, final=False, first_tick=first,
                     timestamps=clock.times(first, stop), streams=aligned, raw={}, counters={})
