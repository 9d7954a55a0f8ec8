"""JPEG/PNG frames of a recovered file whose bytes no longer match their CRC-32: missing ticks.

A frame's bytes can change after they were written (a zeroed disk block) and still sit in a
file HDF5 reads without complaint: no chunk checksum covers variable-length rows, only the
frame's own CRC-32 (/checksums/images/<camera>). `collector recover` copies the rows as they
are, so without this step it handed over a file that `collector validate` then failed. Each
damaged tick becomes what the recorder makes of a tick without a frame: missing, showing the
last intact frame before it (a black frame when there is none), with its CRC-32 rewritten.
"""

from __future__ import annotations

import h5py
import numpy as np

from collector.storage.checksums import FRAME_ROWS, packet_crcs
from collector.storage.held import Beat
from collector.storage.layout import IMAGES, QUALITY
from core.codec import encode_frames
from schemas.layout import EpisodeLayout, StreamSpec, frame_crc_path, has_frame_crcs
from schemas.station import ImageEncoding

SHOWN_ROWS = 5  # damaged rows named in the line that reports them


def mend_damaged_frames(f: h5py.File, layout: EpisodeLayout, beat: Beat) -> list[str]:
    """Every JPEG/PNG camera of `f` (open for writing) checked frame by frame against its
    CRC-32; damaged ticks made missing. One line per camera that had any, for the file's
    dropped list."""
    if not layout.frame_checksums:
        return []  # written before frame checksums: nothing to check against
    lines = []
    for s in layout.streams:
        if has_frame_crcs(s) and frame_crc_path(s.name) in f:
            rows = _mend_camera(f, s, beat)
            if rows.size:
                shown = ", ".join(map(str, rows[:SHOWN_ROWS].tolist()))
                more = ", ..." if rows.size > SHOWN_ROWS else ""
                lines.append(f"camera {s.name}: {rows.size} frame(s) damaged after they were "
                             f"written (CRC-32 mismatch, rows {shown}{more}), kept as missing "
                             "ticks showing the frame before")
    return lines


def _mend_camera(f: h5py.File, s: StreamSpec, beat: Beat) -> np.ndarray:
    """The damaged rows of one camera, each mended in place."""
    frames, crcs = f[f"{IMAGES}/{s.name}"], f[frame_crc_path(s.name)]
    missing = f[f"{QUALITY}/{s.name}/missing"]
    n = min(frames.shape[0], crcs.shape[0], missing.shape[0])
    last_intact: np.ndarray | None = None  # bytes of the last intact frame before the block
    damaged = []
    for start in range(0, n, FRAME_ROWS):
        beat()
        stop = min(start + FRAME_ROWS, n)
        block = frames[start:stop]
        bad = packet_crcs(block) != crcs[start:stop]
        # damage is rare and few rows at a time: only those rows are visited one by one
        for i in np.flatnonzero(bad):
            intact = np.flatnonzero(~bad[:i])
            shown = block[intact[-1]] if intact.size else last_intact
            if shown is None:
                shown = _black_frame(s)
            frames[start + i] = shown
            crcs[start + i] = packet_crcs([shown])[0]
            missing[start + i] = True
            damaged.append(start + i)
        good = np.flatnonzero(~bad)
        if good.size:
            last_intact = block[good[-1]]
    return np.asarray(damaged, np.int64)


def _black_frame(s: StreamSpec) -> np.ndarray:
    """What the recorder stores for a camera's tick before its first frame."""
    assert s.image is not None  # has_frame_crcs: a JPEG/PNG camera
    black = np.zeros((1, s.image.height, s.image.width, s.image.channels), np.uint8)
    [frame] = encode_frames(black, ImageEncoding(encoding=s.image.encoding))
    return np.asarray(frame, np.uint8)
