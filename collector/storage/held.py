"""Which leading rows of a dataset a file really holds, as opposed to rows its shape claims.

HDF5 writes a dataset's new extent (metadata) and its chunks (raw data) separately, and a SWMR
writer's extent can reach the disk before the chunks it covers: a crash or ENOSPC in between
leaves rows past the last chunk on disk, and HDF5 reads a chunk it never allocated as the
dataset's fill value, with no error (Fletcher-32 covers only chunks that exist). So does the tail
of the last chunk that does exist, when it is an older version than the extent: the failed write
was its rewrite. Those rows were never written; recovery must not keep them.

The chunk index says which chunks exist. A dataset is held up to its first missing chunk; when
one is missing, the chunk before it may be that older version, and its trailing fill-valued
rows are taken as never written. Columns whose real rows are never the fill value (tick times,
arrival times: nanoseconds of a running clock, never 0) lose their trailing fill rows always:
they witness a stale last chunk even when no chunk is missing. Other columns are judged by
their fill value only where a real row rarely equals it (floating-point measurements, encoded
frames), never flags or integer offsets, which are 0 or false on most real rows; a stream is
cut where the first of its columns is, so one judged column covers the rest.

What the rule costs: a float column cut by a failed write whose real last rows are exactly 0.0
in every channel loses them (at most one chunk's). What it cannot see: a stale last chunk of a
column that is neither a witness nor judged, or has no missing chunk, while its stream's judged
columns are intact (not seen in tests/test_storage.py's real ENOSPC, where a failed flush stops
at the first new chunk it needs and every column of a stream shares its chunk boundaries).
"""

from __future__ import annotations

from collections.abc import Callable

import h5py
import numpy as np

Beat = Callable[[], None]
READ_ROWS = 1024  # rows read at a time to find unreadable chunks (bounded memory)


def held_rows(ds: h5py.Dataset, beat: Beat, never_fill: bool = False) -> int:
    """The leading rows of `ds` that were written and can be read. `never_fill`: a real row of
    this column never equals its fill value (see the module's docstring)."""
    n = int(ds.shape[0]) if ds.shape else 0
    if n == 0:
        return 0
    beat()
    if ds.chunks is None:  # contiguous: allocated whole, or not at all
        return readable_rows(ds, n, beat)
    held = allocated_rows(ds)
    if held is None:  # the chunk index cannot be listed: the reads say what can be had
        return readable_rows(ds, n, beat)
    gap = held < n
    held = readable_rows(ds, held, beat)
    if held and (never_fill or (gap and _fill_is_telling(ds))):
        held = _without_fill_tail(ds, held)
    return held


def allocated_rows(ds: h5py.Dataset) -> int | None:
    """Rows of `ds` before its first chunk that was never allocated (None: the chunk index
    could not be read). Row chunks split across a row's other dimensions count only when
    every part of them exists."""
    rows_per_chunk = int(ds.chunks[0])
    n = int(ds.shape[0])
    try:
        starts = _chunk_row_offsets(ds)
    except (OSError, RuntimeError, ValueError):
        return None
    parts = int(np.prod([-(-int(s) // int(c)) for s, c in zip(ds.shape[1:], ds.chunks[1:],
                                                                strict=True)], dtype=np.int64))
    slots = -(-n // rows_per_chunk)
    index = starts // rows_per_chunk
    count = np.bincount(index[index < slots], minlength=slots)
    missing = np.flatnonzero(count < parts)
    return n if not missing.size else min(int(missing[0]) * rows_per_chunk, n)


def _chunk_row_offsets(ds: h5py.Dataset) -> np.ndarray:
    """The first row of every allocated chunk: one pass over the chunk index (HDF5's
    `H5Dchunk_iter`), or chunk by chunk where the library lacks it."""
    dsid = ds.id
    if hasattr(dsid, "chunk_iter"):
        offsets: list[int] = []
        dsid.chunk_iter(lambda info: offsets.append(info.chunk_offset[0]))
        return np.asarray(offsets, np.int64)
    count = dsid.get_num_chunks()
    return np.fromiter((dsid.get_chunk_info(i).chunk_offset[0] for i in range(count)),
                       np.int64, count)


def readable_rows(ds: h5py.Dataset, rows: int, beat: Beat) -> int:
    """Leading rows that can be read: a partial cut short (a full disk, a copy stopped) has
    chunks whose bytes never reached it. Read a chunk at a time, so memory stays bounded."""
    step = max(ds.chunks[0] if ds.chunks else READ_ROWS, READ_ROWS // 8)
    for start in range(0, rows, step):
        beat()
        try:
            ds[start:min(start + step, rows)]
        except (OSError, RuntimeError, ValueError):
            return start
    return rows


def _fill_is_telling(ds: h5py.Dataset) -> bool:
    """Whether a row equal to the fill value is unlikely to be real: a measurement of exactly
    0.0 in every channel, an empty frame. Flags (false) and counts or offsets (0) often are: they
    are judged by their stream's other columns instead, which are cut with them."""
    return ds.dtype.kind == "f" or h5py.check_vlen_dtype(ds.dtype) is not None


def _without_fill_tail(ds: h5py.Dataset, rows: int) -> int:
    """`rows`, less the trailing rows of the last chunk below it that hold the fill value."""
    rows_per_chunk = int(ds.chunks[0])
    start = (rows - 1) // rows_per_chunk * rows_per_chunk
    block = ds[start:rows]
    if h5py.check_vlen_dtype(ds.dtype) is not None:  # unwritten: a null pointer, read as empty
        fill = np.fromiter((len(x) == 0 for x in block), bool, len(block))  # <= 64 rows
    else:
        fill = (block.reshape(len(block), -1) == ds.fillvalue).all(axis=1)
    written = np.flatnonzero(~fill)
    return start + (int(written[-1]) + 1 if written.size else 0)
