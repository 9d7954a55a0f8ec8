"""FrameRows: which stored row each tick of a video camera shows.

Seen on a loaded host: the last ticks of an episode, missing and held from the sample past the
window's end that perception keeps to settle them (a frame never numbered, never stored),
pointed at NO_FRAME after frames had been shown; `validate` refuses such a file."""

from __future__ import annotations

import numpy as np

from collector.batch import CameraPackets
from collector.stages.frame_rows import FrameRows
from core.video import EncodedFrames
from schemas.layout import NO_FRAME


def packets(first: int, n: int) -> CameraPackets:
    stamps = np.arange(first, first + n, dtype=np.int64) * 33_000_000
    payload = np.empty(n, object)  # one packet per frame; their bytes play no part here
    payload[:] = [np.zeros(4, np.uint8) for _ in range(n)]
    frames = EncodedFrames(first, payload, np.arange(n) == 0, stamps, stamps.copy(),
                           stamps.copy())
    return CameraPackets(frames, np.arange(first, first + n, dtype=np.int64))


def test_an_unnumbered_frame_after_shown_ones_shows_the_last_stored_and_is_lost():
    rows = FrameRows()
    rows.stored(packets(0, 5))
    got, lost = rows.rows_of(np.array([0, 1, 2, 3, 4, NO_FRAME, NO_FRAME]))
    assert got.tolist() == [0, 1, 2, 3, 4, 4, 4]
    assert lost.tolist() == [False] * 5 + [True, True]
    # across batches too: the next batch's unnumbered tick still shows the last frame
    got, lost = rows.rows_of(np.array([NO_FRAME]))
    assert got.tolist() == [4] and lost.tolist() == [True]


def test_ticks_before_any_frame_show_none_and_a_lost_frame_shows_the_one_before():
    rows = FrameRows()
    got, lost = rows.rows_of(np.array([NO_FRAME, NO_FRAME]))
    assert got.tolist() == [NO_FRAME, NO_FRAME] and not lost.any()
    rows.stored(packets(0, 3))
    rows.stored(packets(5, 2))  # frames 3 and 4 died with their encoder
    got, lost = rows.rows_of(np.array([NO_FRAME, 0, 2, 3, 4, 5, 6]))
    assert got.tolist() == [NO_FRAME, 0, 2, 2, 2, 3, 4]
    assert lost.tolist() == [False, False, False, True, True, False, False]
