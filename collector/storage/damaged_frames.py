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

from collector.storage.checksums import damaged_frame_rows, named_rows, packet_crcs
from collector.storage.held import Beat
from collector.storage.layout import IMAGES, QUALITY
from core.codec import encode_frames
from schemas.layout import EpisodeLayout, StreamSpec, frame_crc_path, has_frame_crcs
from schemas.station import ImageEncoding


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
                lines.append(f"camera {s.name}: {rows.size} frame(s) damaged after they were "
                             f"written (CRC-32 mismatch, rows {named_rows(rows)}), kept as "
                             "missing ticks showing the frame before")
    return lines


def _mend_camera(f: h5py.File, s: StreamSpec, beat: Beat) -> np.ndarray:
    """The damaged rows of one camera, each mended in place."""
    frames, crcs = f[f"{IMAGES}/{s.name}"], f[frame_crc_path(s.name)]
    missing = f[f"{QUALITY}/{s.name}/missing"]
    damaged = damaged_frame_rows(frames, crcs, beat)
    damaged = damaged[damaged < missing.shape[0]]
    bad = set(damaged.tolist())
    # damage is rare and few rows at a time: only those rows are visited one by one
    for row in damaged.tolist():
        before = row - 1
        while before in bad:
            before -= 1
        shown = np.asarray(frames[before], np.uint8) if before >= 0 else _black_frame(s)
        frames[row] = shown
        crcs[row] = packet_crcs([shown])[0]
        missing[row] = True
    return np.asarray(damaged, np.int64)


def _black_frame(s: StreamSpec) -> np.ndarray:
    """What the recorder stores for a camera's tick before its first frame."""
    assert s.image is not None  # has_frame_crcs: a JPEG/PNG camera
    black = np.zeros((1, s.image.height, s.image.width, s.image.channels), np.uint8)
    [frame] = encode_frames(black, ImageEncoding(encoding=s.image.encoding))
    return np.asarray(frame, np.uint8)
