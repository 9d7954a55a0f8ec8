"""A camera's frames numbered by its own frame times (drivers/frame_numbers.py): a frame the
camera skipped leaves a gap; times that are no clock to number by are counted instead."""

from __future__ import annotations

import math

from drivers.frame_numbers import FrameNumbers

PERIOD_NS = 33_333_333  # 30 fps
MS = PERIOD_NS / 1e6  # a period in ms, as OpenCV gives times


def numbers(stamps_ms: list[float], arrivals_ns: list[int] | None = None,
            paced: bool = True, into: FrameNumbers | None = None) -> list[int]:
    frames = into or FrameNumbers(PERIOD_NS, paced)
    arrivals = arrivals_ns or [None] * len(stamps_ms)
    return [frames.number(s, a).seq for s, a in zip(stamps_ms, arrivals, strict=True)]


def test_a_gap_in_the_frame_times_is_a_gap_in_the_numbers():
    # frames 3, 7 and 8 never came; the times are a .mkv's, rounded to the ms
    stamps = [0, 33, 67, 133, 167, 200, 300, 333]
    assert numbers(stamps) == [0, 1, 2, 4, 5, 6, 9, 10]


def test_a_file_plays_each_frame_at_its_own_time():
    frames = FrameNumbers(PERIOD_NS, paced=True)
    plays = [frames.number(k * MS).play_ns for k in (0, 1, 2, 4)]
    assert plays == [0, round(MS * 1e6), round(2 * MS * 1e6), round(4 * MS * 1e6)]


def test_numbers_only_increase_whatever_the_jitter():
    # the third frame's time jittered early, onto the second's number: it takes the next one
    assert numbers([0, 1.0 * MS, 1.4 * MS, 3.0 * MS, 4.1 * MS]) == [0, 1, 2, 3, 4]


def test_times_that_are_no_clock_are_counted():
    # a backend that gives 0 (or NaN) for every frame: counted, and a file plays one per period
    frames = FrameNumbers(PERIOD_NS, paced=True)
    got = [frames.number(s) for s in (0.0, 0.0, math.nan, 0.0, -1.0)]
    assert [n.seq for n in got] == [0, 1, 2, 3, 4]
    assert [n.play_ns for n in got] == [k * PERIOD_NS for k in range(5)]


def test_a_time_that_jumps_back_starts_the_numbering_over_from_that_frame():
    # a looped file or restarted stream: frame times start again at 0; no gap, none invented
    assert numbers([0, MS, 2 * MS, 0, MS, 3 * MS]) == [0, 1, 2, 3, 4, 6]


def test_a_time_far_ahead_is_a_new_timeline_not_missed_frames():
    assert numbers([0, MS, 3_600_000, 3_600_000 + MS]) == [0, 1, 2, 3]


def test_a_new_connection_goes_on_from_the_last_number():
    frames = FrameNumbers(PERIOD_NS, paced=True)
    assert numbers([0, MS, 3 * MS], into=frames) == [0, 1, 3]
    frames.restart()  # the file opened again: its times start at 0 again
    assert numbers([0, MS, 3 * MS], into=frames) == [4, 5, 7]


def test_a_live_camera_gap_counts_only_if_the_host_waited_for_it():
    # a real drop: frame 2 never came, frame 3 arrived 2 periods after frame 1
    stamps = [0, MS, 3 * MS, 4 * MS]
    arrivals = [10**9 + k * PERIOD_NS + 2_000_000 for k in (0, 1, 3, 4)]
    assert numbers(stamps, arrivals, paced=False) == [0, 1, 3, 4]
    # FFmpeg's guessed 25 fps on a 50 fps MJPEG-over-HTTP stream: every step looks like
    # missed frames at the configured rate, but the frames came one period apart
    stamps = [k * 40.0 for k in range(6)]
    frames = FrameNumbers(int(1e9 / 50), paced=False)  # configured 50 fps: 20 ms periods
    arrivals = [10**9 + k * 20_000_000 for k in range(6)]
    assert numbers(stamps, arrivals, into=frames) == [0, 1, 2, 3, 4, 5]
