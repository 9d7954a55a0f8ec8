"""Checksums of stored data: HDF5's Fletcher-32 per chunk, a CRC-32 per video packet and per
JPEG/PNG frame.

Fletcher-32 is an HDF5 filter: the library checks it on every read of a chunk and raises
`OSError` on a mismatch, so checking a dataset means reading all of it, and locating a bad
chunk means reading chunk by chunk. Variable-length rows (encoded frames, video packets) live
outside the chunks, which hold only pointers to them: each carries its own CRC-32, stored in a
fixed-size dataset beside them (itself under Fletcher-32).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import h5py
import numpy as np

READ_BYTES = 32 * 2**20  # read a dataset this many stored bytes at a time (bounded memory)
FRAME_ROWS = 64  # encoded frames read at a time: ~6 MB of JPEG, bounded for PNG too


def packet_crcs(packets: Iterable[np.ndarray | bytes]) -> np.ndarray:
    """zlib's CRC-32 of each packet (a loop: zlib has no batched form, and each call runs over
    a whole packet in C)."""
    return np.fromiter((zlib.crc32(p.tobytes() if isinstance(p, np.ndarray) else p)
                        for p in packets), np.uint32)


@dataclass
class ChunkCheck:
    """Reading every dataset of a file: the bad chunks found, and how much was read how fast."""

    problems: list[str] = field(default_factory=list)
    checked: int = 0  # datasets with a Fletcher-32 checksum
    unchecked: int = 0  # fixed-size chunked datasets without one (files before checksums)
    bytes_read: int = 0
    seconds: float = 0.0


def check_chunks(f: h5py.File) -> ChunkCheck:
    """Read every fixed-size dataset of the file fully: HDF5 verifies each chunk's Fletcher-32
    as it reads. A failed read is narrowed to its chunks, each named with its rows."""
    out = ChunkCheck()
    began = time.perf_counter()
    for ds in _datasets(f):
        if h5py.check_vlen_dtype(ds.dtype) is not None:
            continue  # pointers only: the packets' CRC-32 covers what matters
        if ds.fletcher32:
            out.checked += 1
        elif ds.chunks is not None:
            out.unchecked += 1
        out.problems += _read_all(ds)
        out.bytes_read += int(ds.id.get_storage_size())
    out.seconds = time.perf_counter() - began
    return out


def _datasets(f: h5py.File) -> list[h5py.Dataset]:
    found: list[h5py.Dataset] = []

    def visit(_name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            found.append(obj)

    f.visititems(visit)  # soft links (the ALOHA names) are not followed: each dataset once
    return found


def _read_all(ds: h5py.Dataset) -> list[str]:
    if not ds.shape or not ds.shape[0]:
        return _read_scalar(ds)
    n = ds.shape[0]
    rows_per_chunk = ds.chunks[0] if ds.chunks else n
    row_bytes = max(ds.dtype.itemsize * int(np.prod(ds.shape[1:], dtype=np.int64)), 1)
    step = max(rows_per_chunk, READ_BYTES // row_bytes // rows_per_chunk * rows_per_chunk)
    bad: list[tuple[int, int]] = []
    for start in range(0, n, step):
        stop = min(start + step, n)
        try:
            ds[start:stop]
        except OSError:
            bad += _bad_chunks(ds, start, stop, rows_per_chunk)
    if not bad:
        return []
    ranges = ", ".join(f"{a}..{b - 1}" for a, b in bad[:5]) + (", ..." if len(bad) > 5 else "")
    what = "Fletcher-32 checksum mismatch" if ds.fletcher32 else "unreadable"
    return [f"{ds.name}: rows {ranges} corrupt ({what} in {len(bad)} of "
            f"{ds.id.get_num_chunks()} chunks): the file was damaged after it was written"]


def _bad_chunks(ds: h5py.Dataset, start: int, stop: int, rows: int) -> list[tuple[int, int]]:
    """Which chunks of rows [start, stop) fail to read, as row ranges."""
    out = []
    for a in range(start, stop, rows):
        b = min(a + rows, stop)
        try:
            ds[a:b]
        except OSError:
            out.append((a, b))
    return out


def _read_scalar(ds: h5py.Dataset) -> list[str]:
    try:
        ds[()]
    except OSError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "OSError"
        return [f"{ds.name}: unreadable ({first})"]
    return []


def frame_crc_problems(frames: h5py.Dataset, crcs: h5py.Dataset) -> list[str]:
    """Each tick's encoded frame against the CRC-32 the writer stored for it; the corrupt rows
    named. Datasets of unequal length are reported by the layout check, and only their common
    rows compared here."""
    try:
        rows = damaged_frame_rows(frames, crcs)
    except OSError:
        return []  # a damaged chunk: named by the chunk check
    if not rows.size:
        return []
    n = min(frames.shape[0], crcs.shape[0])
    return [f"{frames.name}: rows {named_rows(rows)} corrupt (CRC-32 mismatch in {rows.size} of "
            f"{n} frames): the file was damaged after it was written"]


def damaged_frame_rows(frames: h5py.Dataset, crcs: h5py.Dataset,
                       beat: Callable[[], None] = lambda: None) -> np.ndarray:
    """The rows (of those both datasets have) whose encoded frame does not match its stored
    CRC-32, read a block of frames at a time; `beat` is called once per block."""
    n = min(frames.shape[0], crcs.shape[0])
    bad: list[np.ndarray] = []
    for start in range(0, n, FRAME_ROWS):
        beat()
        stop = min(start + FRAME_ROWS, n)
        bad.append(np.flatnonzero(packet_crcs(frames[start:stop]) != crcs[start:stop]) + start)
    return np.concatenate(bad) if bad else np.zeros(0, np.int64)


def named_rows(rows: np.ndarray, shown: int = 5) -> str:
    """The first few rows of a list, for a one-line report."""
    return ", ".join(map(str, rows[:shown].tolist())) + (", ..." if rows.size > shown else "")
