"""Sequence numbers for a camera's frames from the camera's own frame times, so that a frame the
camera skipped leaves a gap in the numbers, as a lost serial packet does.

OpenCV numbers no frames. What it has is each frame's time, read after the frame
(`CAP_PROP_POS_MSEC`): through FFmpeg the presentation time of a file's or stream's frame, through
V4L2 the kernel's buffer time. A frame is numbered by how many periods of the configured fps it
came after the frame the numbering counts from, so a frame two periods after the one before it
says one frame went missing in between.

Times that cannot be numbered by (none: NaN or negative; not after the previous frame's: a backend
that gives 0 for every frame, a looped file, a restarted stream; a step too long to be frames
missed) are counted instead, one number each, and the numbering counts from that frame on. A new
connection (`restart`) goes on from the last number: the time a camera was away is lost time,
which the reader thread accounts, not dropped frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# A step this long is a new timeline (a stream whose clock restarted forward), not frames the
# camera missed: a camera silent for 10 s is away (its read fails and it reconnects), not dropping.
LONGEST_STEP_NS = 10 * 10**9


@dataclass(frozen=True)
class Numbered:
    seq: int
    # the frame's time on the source's own timeline, since the connection began: when a file
    # plays it (frames after a gap play that much later, as a real camera's do)
    play_ns: int


@dataclass(frozen=True)
class _Origin:
    """The frame the numbering counts from."""

    stamp_ns: int
    seq: int
    play_ns: int


class FrameNumbers:
    """Numbers one camera's frames, connection after connection.

    `paced`: the driver plays the source at its frame times (a file), so a gap in them is a gap
    in arrival by construction. Otherwise (a live camera or stream) a gap is believed only if
    the host waited for it too: the frame after k missing ones came k + 1 periods after the one
    before, less half a period of slack. That keeps times that are not the camera's own clock
    from inventing drops: FFmpeg stamps an MJPEG-over-HTTP stream at a guessed 25 fps, whatever
    the camera sends (seen with OpenCV 5.0: a 50 fps stream read as 0, 40, 80 ms, ...).
    """

    def __init__(self, period_ns: int, paced: bool):
        self.period_ns = period_ns
        self.paced = paced
        self._seq = -1  # the last number given; the next connection goes on from it
        self.restart()

    def restart(self) -> None:
        """A new connection: its first frame is numbered next after the last one, and the
        numbering counts from it."""
        self._origin: _Origin | None = None
        self._stamp_ns = -1  # the previous frame's time (-1: none usable)
        self._play_ns = -self.period_ns  # so that a first frame without a time plays at 0
        self._arrival_ns: int | None = None

    def number(self, stamp_ms: float, arrival_ns: int | None = None) -> Numbered:
        """The next frame's number and play time, from its time as OpenCV gives it (ms) and,
        for a live source, when it arrived (host monotonic ns)."""
        stamp = round(stamp_ms * 1e6) if math.isfinite(stamp_ms) and stamp_ms >= 0 else None
        counted = self._seq + 1
        origin = self._origin
        if origin is None or stamp is None or not (
                self._stamp_ns < stamp <= self._stamp_ns + LONGEST_STEP_NS):
            seq, play = counted, self._play_ns + self.period_ns
            self._origin = None if stamp is None else _Origin(stamp, seq, play)
        else:
            since = stamp - origin.stamp_ns
            play = origin.play_ns + since
            # strictly increasing: a jittered time that rounds onto the previous number takes
            # the next one
            seq = max(origin.seq + (since + self.period_ns // 2) // self.period_ns, counted)
            if seq > counted and not self._host_waited(seq - self._seq, arrival_ns):
                seq = counted
                self._origin = _Origin(stamp, seq, play)
        self._seq, self._play_ns = seq, play
        self._stamp_ns = -1 if stamp is None else stamp
        self._arrival_ns = arrival_ns
        return Numbered(seq, play)

    def _host_waited(self, steps: int, arrival_ns: int | None) -> bool:
        """Did this frame arrive about `steps` periods after the previous one?"""
        if self.paced or arrival_ns is None or self._arrival_ns is None:
            return True
        return arrival_ns - self._arrival_ns >= (steps - 0.5) * self.period_ns
