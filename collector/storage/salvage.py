"""What of a partial file can be kept, stream by stream: the plan `recover` copies.

A damaged stream (a dataset missing, unreadable, of the wrong dtype or shape, an attribute a
reader needs gone, a video that stops decoding early) costs that stream, not the episode: the
plan keeps every stream that is readable and consistent over the ticks it keeps, and says what
it dropped and why. Derived data (an extra quality flag, a stream's raw samples) is dropped on
its own. A tick whose time is out of order is dropped, not the ticks after it. How many ticks to
keep trades against how many streams: the plan keeps the most samples (ticks x streams), except
that a video camera's cut (where its packets stop decoding) cuts the episode, as before.
Rows a dataset's shape claims but the file never got (a chunk HDF5 never allocated, the fill
values of a chunk's older version: `collector/storage/held.py`) are not the stream's.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field

import h5py
import numpy as np

from collector.errors import EpisodeFileError
from collector.storage.held import Beat, held_rows
from collector.storage.layout import IMAGES, QUALITY, RAW, TIMESTAMPS, VLEN_UINT8
from collector.storage.videos import check_video, video_length
from collector.storage.writer import hdf5_dtype
from schemas.layout import NO_FRAME, DatasetSpec, EpisodeLayout, StreamSpec, video_path

COPY_ROWS = 1024  # rows read at a time: memory stays bounded for any episode length
COPY_BYTES = 64 * 2**20  # ... and about this many bytes of fixed-size rows

# attributes a reader needs to read a stream (the writer always writes them)
IMAGE_ATTRS = ("encoding", "height", "width")
VIDEO_ATTRS = ("codec", "width", "height")
RAW_ATTRS = ("rate_hz",)


class NothingFlushed(EpisodeFileError):
    """The recorder died before its first flush: at most one flush interval was lost."""


@dataclass
class Plan:
    """What to copy: the kept streams' layout, which of the partial's grid rows, how many
    video frames and raw samples; and what was dropped, one line each."""

    layout: EpisodeLayout
    rows: np.ndarray  # indices of the partial's grid rows kept, increasing
    frames: dict[str, int] = field(default_factory=dict)  # video cameras: leading frames kept
    raw: dict[str, int] = field(default_factory=dict)  # raw samples kept per stream
    dropped: list[str] = field(default_factory=list)
    dropped_streams: list[str] = field(default_factory=list)


def plan_salvage(src: h5py.File, layout: EpisodeLayout, beat: Beat) -> Plan:
    dropped: list[str] = []
    if TIMESTAMPS not in src:  # created with the layout, before the first flush: damage
        raise EpisodeFileError("no /timestamps: the ticks have no times")
    ts_problem = dataset_problem(src, DatasetSpec(TIMESTAMPS, (), "int64", 64, grid=True))
    if ts_problem:
        raise EpisodeFileError(f"/{TIMESTAMPS} {ts_problem}: the ticks have no times")
    # a tick time is never 0 (HDF5's fill value): a trailing 0 is a row never written
    total = held_rows(src[TIMESTAMPS], beat, never_fill=True)
    times = src[TIMESTAMPS][:total]
    if total == 0:
        raise NothingFlushed("stopped before the first tick was flushed")
    rows = increasing_rows(times, beat)
    if len(rows) < total:
        dropped.append(f"{total - len(rows)} tick(s) whose time is out of order (first at row "
                       f"{first_missing(rows, total)})")
    usable: dict[str, int] = {}  # per stream: how many of `rows` it can give
    streams: list[StreamSpec] = []
    frames: dict[str, int] = {}
    for s in layout.streams:
        problem = _stream_problem(src, layout, s)
        if problem:
            dropped.append(f"stream {s.name}: {problem}")
            continue
        s, lost = _drop_bad_flags(src, s)
        dropped += lost
        length = min(held_rows(src[d.path], beat) for d in _grid_specs(layout, s))
        count = int(np.searchsorted(rows, length))  # kept rows below the stream's length
        if s.is_video:
            kept, why, count = _video_usable(src, layout, s, rows[:count], beat)
            if why:
                dropped.append(f"video camera {s.name} cut at frame {kept} ({why})")
            frames[s.name] = kept
        usable[s.name] = count
        streams.append(s)
    n, streams = _most_samples(streams, usable, dropped)
    if not streams:
        raise EpisodeFileError("no stream is readable: " + "; ".join(dropped))
    if n == 0:
        raise NothingFlushed("stopped before the first tick was flushed")
    kept_layout = layout.model_copy(update={"streams": streams})
    names = {s.name for s in streams}
    plan = Plan(layout=kept_layout, rows=rows[:n], frames={k: v for k, v in frames.items()
                                                          if k in names}, dropped=dropped)
    plan.dropped_streams = [s.name for s in layout.streams if s.name not in names]
    for s in streams:
        _plan_raw(src, kept_layout, s, plan, beat)
    return plan


def _grid_specs(layout: EpisodeLayout, s: StreamSpec, flags: bool = True) -> list[DatasetSpec]:
    """A stream's grid datasets (not /timestamps); without its extra quality flags if asked."""
    if not flags:
        s = s.model_copy(update={"quality": {}})
    return layout.model_copy(update={"streams": [s], "keep_raw": False}).grid_datasets()[1:]


def _drop_bad_flags(src: h5py.File, s: StreamSpec) -> tuple[StreamSpec, list[str]]:
    """An extra quality flag or score (derived from the samples) that is missing or unreadable
    is dropped alone; the stream stays."""
    bad = {}
    for name, dtype in s.quality.items():
        problem = dataset_problem(src, DatasetSpec(f"{QUALITY}/{s.name}/{name}", (), dtype, 64,
                                                   grid=True))
        if problem:
            bad[name] = problem
    if not bad:
        return s, []
    kept = {k: v for k, v in s.quality.items() if k not in bad}
    return (s.model_copy(update={"quality": kept}),
            [f"stream {s.name}: quality {k} dropped (/quality/{s.name}/{k} {why})"
             for k, why in bad.items()])


def _stream_problem(src: h5py.File, layout: EpisodeLayout, s: StreamSpec) -> str:
    """Why a stream cannot be kept at all ("": it can). Its extra quality flags are not asked:
    they are dropped alone."""
    for spec in _grid_specs(layout, s, flags=False):
        problem = dataset_problem(src, spec)
        if problem:
            return f"/{spec.path} {problem}"
    if s.image is not None:
        image = src[f"{IMAGES}/{s.name}"]
        missing = [k for k in IMAGE_ATTRS if k not in image.attrs]
        if missing:
            return f"/{IMAGES}/{s.name} lacks attribute(s) {', '.join(missing)}"
        if str(_attr(image, "encoding")) != s.image.encoding:
            return (f"/{IMAGES}/{s.name} says encoding {_attr(image, 'encoding')!r}, the layout "
                    f"{s.image.encoding!r}")
    if s.is_video:
        group = video_path(s.name)
        if group not in src or not isinstance(src[group], h5py.Group):
            return f"/{group} missing"
        for spec in layout.video_datasets(s):
            problem = dataset_problem(src, spec)
            if problem:
                return f"/{spec.path} {problem}"
        missing = [k for k in VIDEO_ATTRS if k not in src[group].attrs]
        if missing:
            return f"/{group} lacks attribute(s) {', '.join(missing)}"
    return ""


def _attr(obj: h5py.HLObject, name: str) -> object:
    value = obj.attrs[name]
    return value.decode() if isinstance(value, bytes) else value


def dataset_problem(src: h5py.File, spec: DatasetSpec) -> str:
    """Why a dataset does not match its layout ("": it does)."""
    try:
        if spec.path not in src:
            return "missing"
        ds = src[spec.path]
        if not isinstance(ds, h5py.Dataset):
            return "is not a dataset"
        if spec.dtype == VLEN_UINT8:
            base = h5py.check_vlen_dtype(ds.dtype)
            if base is None or base != np.uint8:
                return f"has dtype {ds.dtype}, not variable-length uint8"
        elif ds.dtype != hdf5_dtype(spec.dtype):
            return f"has dtype {ds.dtype}, not {spec.dtype}"
        if tuple(ds.shape[1:]) != tuple(spec.shape) or not ds.shape:
            return f"has rows of shape {tuple(ds.shape[1:])}, not {tuple(spec.shape)}"
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        return f"unreadable ({first_line(exc)})"
    return ""


def increasing_rows(times: np.ndarray, beat: Beat) -> np.ndarray:
    """The rows of the longest run of strictly increasing tick times (in row order): one tick
    out of order costs that tick, not every tick after it."""
    if not (np.diff(times) <= 0).any():
        return np.arange(len(times))
    # longest strictly increasing subsequence, O(n log n): tails[k] is the smallest time that
    # ends an increasing run of k + 1 rows, at row tail_rows[k]
    tails: list[int] = []
    tail_rows: list[int] = []
    before = np.full(len(times), -1, np.int64)
    for i, t in enumerate(times.tolist()):
        if i % 65536 == 0:
            beat()
        k = bisect.bisect_left(tails, t)
        if k == len(tails):
            tails.append(t)
            tail_rows.append(i)
        else:
            tails[k], tail_rows[k] = t, i
        before[i] = tail_rows[k - 1] if k else -1
    out = []
    i = tail_rows[-1]
    while i >= 0:
        out.append(i)
        i = int(before[i])
    return np.array(out[::-1], np.int64)


def first_missing(rows: np.ndarray, total: int) -> int:
    gaps = np.flatnonzero(rows != np.arange(len(rows)))
    return int(gaps[0]) if gaps.size else len(rows) if len(rows) < total else total


def _video_usable(src: h5py.File, layout: EpisodeLayout, s: StreamSpec, rows: np.ndarray,
                  beat: Beat) -> tuple[int, str, int]:
    """A video camera: the leading frames that decode, why not more (""), and how many of the
    kept ticks it can give (those showing a kept frame; frame numbers never go back)."""
    group = src[video_path(s.name)]
    stored = video_length(group)
    readable = min(stored, *(held_rows(group[d.path.rsplit("/", 1)[1]], beat,
                                       never_fill=d.path.endswith("/arrival_ns"))
                             for d in layout.video_datasets(s)))
    check = check_video(group, s.name, readable, beat)
    kept, why = check.decodable, ("" if check.decodable == stored
                                  else check.problem or "the rest cannot be read")
    shown = _take(src[f"{IMAGES}/{s.name}"], rows, beat)
    bad = np.flatnonzero((shown >= kept) | (shown < NO_FRAME)
                         | (np.diff(shown, prepend=NO_FRAME) < 0))
    return kept, why, int(bad[0]) if bad.size else len(rows)


def _most_samples(streams: list[StreamSpec], usable: dict[str, int],
                  dropped: list[str]) -> tuple[int, list[StreamSpec]]:
    """How many ticks to keep, and which streams give them all: the most samples (ticks x
    streams); on a tie, more streams. A stream shorter than that is dropped. A video camera is
    never traded so: its cut is where its video stops decoding, and the episode is cut there
    (unless no frame of it decodes), as a file cut short at that packet would be."""
    videos = [usable[s.name] for s in streams if s.is_video and usable[s.name]]
    cap = min(videos, default=None)
    best, best_n = (-1, -1), 0
    for n in sorted(set(usable.values())):
        if cap is not None and n > cap:
            break
        count = sum(1 for s in streams if usable[s.name] >= n and (usable[s.name] or n == 0))
        if (n * count, count) > best:
            best, best_n = (n * count, count), n
    kept = [s for s in streams if usable[s.name] >= best_n and usable[s.name]]
    for s in streams:
        if s not in kept:
            dropped.append(f"stream {s.name}: only {usable[s.name]} of {best_n} ticks "
                           "readable")
    return best_n, kept


def _plan_raw(src: h5py.File, layout: EpisodeLayout, s: StreamSpec, plan: Plan,
              beat: Beat) -> None:
    """A stream's raw samples: the leading ones every raw dataset holds and can read, up to the
    first arrival that goes back in time. Unreadable raw data drops alone (kept empty)."""
    specs = layout.raw_datasets(s)
    if not specs:
        return
    problem = next((f"/{d.path} {p}" for d in specs if (p := dataset_problem(src, d))), "")
    group = f"{RAW}/{s.name}"
    if not problem and any(k not in src[group].attrs for k in RAW_ATTRS):
        problem = f"/{group} lacks attribute(s) {', '.join(RAW_ATTRS)}"
    if problem:
        plan.raw[s.name] = 0
        plan.dropped.append(f"stream {s.name}: raw samples dropped ({problem})")
        return
    m = min(held_rows(src[d.path], beat, never_fill=d.path.endswith("/arrival_ns"))
            for d in specs)
    arrival = src[f"{group}/arrival_ns"][:m]
    back = np.flatnonzero(np.diff(arrival) < 0)
    if back.size:
        plan.dropped.append(f"stream {s.name}: raw samples cut at {int(back[0]) + 1} of {m} "
                            "(arrival time goes back)")
        m = int(back[0]) + 1
    plan.raw[s.name] = m


def _take(ds: h5py.Dataset, rows: np.ndarray, beat: Beat) -> np.ndarray:
    blocks = list(take_blocks(ds, rows, beat))
    return np.concatenate(blocks) if blocks else np.zeros((0, *ds.shape[1:]), ds.dtype)


def take_blocks(ds: h5py.Dataset, rows: np.ndarray, beat: Beat) -> Iterator[np.ndarray]:
    """The given rows of a dataset, in blocks of at most COPY_ROWS rows and about COPY_BYTES
    (raw frames are ~1 MB a row), each block one contiguous read."""
    row_bytes = ds.dtype.itemsize * int(np.prod(ds.shape[1:], dtype=np.int64))
    step = int(max(1, min(COPY_ROWS, COPY_BYTES // max(row_bytes, 1))))
    for start in range(0, len(rows), step):
        beat()
        part = rows[start:start + step]
        lo, hi = int(part[0]), int(part[-1]) + 1
        block = ds[lo:hi]
        yield block if hi - lo == len(part) else block[part - lo]


def first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
