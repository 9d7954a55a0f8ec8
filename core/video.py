"""Video codecs for camera streams: a camera's frames in, one packet per frame out, and back.

Each camera is its own video: its frames are encoded once, at the camera's rate, in capture
order, by one `VideoEncoder` per camera and episode (start -> `add` -> `finish`). No B-frames
and no look-ahead, so each frame's packet comes out of the encoder as soon as the frame goes in
and can be written with the next flush: a crash loses what a flush interval loses, not a whole
group of pictures. A packet is an independent unit: with the stream's attributes
(`VideoEncoder.stream_attrs`) the packets decode with PyAV alone, from any keyframe.

PyAV (the `av` wheel) ships FFmpeg with libx264 and SVT-AV1 built in, so no system FFmpeg is
needed, and the same library decodes what other encoders wrote.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import cv2
import numpy as np

from core.errors import ConfigError, EpisodeFileError
from schemas.station import ImageEncoding

# SVT-AV1 prints a banner and its settings to stderr for every encoder it opens; errors only.
os.environ.setdefault("SVT_LOG", "1")

import av  # after SVT_LOG: the library reads it when it loads
from av.video.codeccontext import VideoCodecContext
from av.video.reformatter import ColorRange, Interpolation

ENCODER = {"h264": "libx264", "av1": "libsvtav1"}
DECODER = {"h264": "h264", "av1": "libdav1d"}
COLOR_RANGE = {"full": ColorRange.JPEG, "limited": ColorRange.MPEG}
# x264's tunes: zerolatency (no frame threads, look-ahead or B-frames: a packet per frame at
# once) and psnr (no psy-rd or psy AQ, which spend bits on how texture looks, not on fidelity)
H264_TUNE = "psnr,zerolatency"
# RGB <-> 4:2:0 through swscale: its defaults (bilinear, fast rounding, chroma taken from every
# other pixel) lose the frame down to 39.5 dB before any coding; exact rounding, chroma averaged
# from every pixel on the way in and bicubic chroma up-sampling on the way out give 42.6 dB
# (tests/scenes.py, clean frames), for about 2.5 ms more CPU per frame decoded. Full-range
# frames of even size go in through OpenCV instead (`yuv_picture`): the same sums, half the CPU.
TO_YUV = Interpolation.AREA | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INP
TO_RGB = Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT


@dataclass(frozen=True)
class VideoDefaults:
    """A codec's shipped settings, where the camera's YAML leaves them out."""

    crf: int
    preset: str
    gop: int


VIDEO_DEFAULTS = {
    "h264": VideoDefaults(crf=20, preset="veryfast", gop=15),
    "av1": VideoDefaults(crf=32, preset="10", gop=30),
}


@dataclass
class EncodedFrames:
    """A run of one camera's frames, encoded: one packet per frame, in capture order.

    `first` is the episode's frame index of the first packet (frames are numbered from 0 per
    camera and episode); the grid points into these indices."""

    first: int
    packets: np.ndarray  # (n,) object: one uint8 array per frame
    keyframe: np.ndarray  # (n,) bool: decoding may start here
    capture_ns: np.ndarray  # (n,) int64, host clock
    device_ns: np.ndarray  # (n,) int64, the device's own clock
    arrival_ns: np.ndarray  # (n,) int64, host clock

    def __len__(self) -> int:
        return len(self.packets)

    @classmethod
    def empty(cls, first: int) -> EncodedFrames:
        none = np.zeros(0, np.int64)
        return cls(first, np.empty(0, object), np.zeros(0, bool), none, none.copy(), none.copy())


def settings_of(spec: ImageEncoding) -> tuple[int, str, int]:
    """The camera's crf, preset and group of pictures, codec defaults filled in."""
    defaults = VIDEO_DEFAULTS[spec.encoding]
    return (defaults.crf if spec.crf is None else spec.crf,
            defaults.preset if spec.preset is None else spec.preset,
            defaults.gop if spec.gop is None else spec.gop)


def _encoder_options(codec: str, crf: int, preset: str, gop: int,
                     tune: str = H264_TUNE) -> dict[str, str]:
    if codec == "h264":
        # a fixed keyframe interval (no scene-cut keyframes) so random access costs at most one
        # group of pictures
        return {"preset": preset, "tune": tune, "crf": str(crf),
                "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0"}
    # pred-struct=1: low delay (no reordered frames); lookahead=0: a packet per frame added
    return {"preset": preset, "crf": str(crf),
            "svtav1-params": f"pred-struct=1:lookahead=0:keyint={gop}:scd=0"}


def _check_size(spec: ImageEncoding, width: int, height: int) -> None:
    """x264 refuses 4:2:0 frames of odd size (a chroma sample covers 2x2 pixels) with a generic
    library error; say what to change instead. SVT-AV1 pads odd sizes itself."""
    if spec.encoding == "h264" and spec.pix_fmt == "yuv420p" and (width % 2 or height % 2):
        raise ConfigError(f"{width}x{height} frames: h264 with pix_fmt yuv420p needs an even "
                          "width and height; set pipeline.images.resize to an even size, or "
                          "pix_fmt yuv444p, or encoding av1")


class VideoEncoder:
    """One camera's frames of one episode -> one packet per frame.

    `add` takes RGB uint8 frames (m, H, W, 3) in capture order and returns the packets the
    encoder gave out for them; `finish` returns any it still held. Frame times travel with the
    frames, so each packet carries the times of its own frame."""

    def __init__(self, spec: ImageEncoding, width: int, height: int, fps: float, *,
                 tune: str = H264_TUNE):
        """`tune` (h264 only) is for the codec benchmark to compare x264's tunes; it must keep
        zerolatency."""
        self.spec = spec
        self.codec = spec.encoding
        self.crf, self.preset, self.gop = settings_of(spec)
        self.width, self.height = width, height
        self.fps = Fraction(fps).limit_denominator(1001)
        _check_size(spec, width, height)
        ctx = av.CodecContext.create(ENCODER[self.codec], "w")
        assert isinstance(ctx, VideoCodecContext)
        ctx.width, ctx.height, ctx.pix_fmt = width, height, spec.pix_fmt
        ctx.time_base = 1 / self.fps
        ctx.framerate = self.fps
        ctx.gop_size = self.gop
        ctx.max_b_frames = 0
        # the encoder signals the range in the stream (x264's VUI, SVT-AV1's sequence header)
        self._range = COLOR_RANGE[spec.color_range]
        ctx.color_range = self._range
        ctx.options = _encoder_options(self.codec, self.crf, self.preset, self.gop, tune)
        try:
            ctx.open()
        except av.error.FFmpegError as exc:
            raise ConfigError(f"the {self.codec} encoder refused its settings (crf {self.crf}, "
                              f"preset {self.preset!r}, gop {self.gop}, {spec.pix_fmt}, "
                              f"{width}x{height}): {exc.strerror}; fix pipeline.images") from None
        self._ctx = ctx
        self._next_pts = 0
        self._emitted = 0
        self._times: deque[tuple[int, int, int]] = deque()  # frames in, packets not yet out

    def add(self, frames: np.ndarray, capture_ns: np.ndarray, device_ns: np.ndarray,
            arrival_ns: np.ndarray) -> EncodedFrames:
        packets: list[av.Packet[Any]] = []
        for i, frame in enumerate(frames):  # one C call per frame: the codec is the work
            picture = yuv_picture(np.ascontiguousarray(frame), self.spec.pix_fmt, self._range)
            picture.pts = self._next_pts
            self._next_pts += 1
            self._times.append((int(capture_ns[i]), int(device_ns[i]), int(arrival_ns[i])))
            packets.extend(self._ctx.encode(picture))
        return self._collect(packets)

    def finish(self) -> EncodedFrames:
        """Drain the encoder: the packets of every frame added and not yet given out."""
        return self._collect(list(self._ctx.encode(None)))

    def close(self) -> None:
        """End an encoder whose last packets are not wanted (an episode thrown away): the
        encoder must still be drained (SVT-AV1 complains when it is not)."""
        if self._ctx.is_open:
            with contextlib.suppress(av.error.FFmpegError):  # drained by `finish` already
                self._ctx.encode(None)
        self._times.clear()

    def _collect(self, packets: list[av.Packet[Any]]) -> EncodedFrames:
        first = self._emitted
        if not packets:
            return EncodedFrames.empty(first)
        times = np.array([self._times.popleft() for _ in packets], np.int64)
        out = np.empty(len(packets), object)
        for i, packet in enumerate(packets):
            out[i] = np.frombuffer(bytes(packet), np.uint8)
        self._emitted += len(packets)
        return EncodedFrames(first, out, np.array([p.is_keyframe for p in packets], bool),
                             times[:, 0], times[:, 1], times[:, 2])

    def stream_attrs(self) -> dict[str, Any]:
        return video_attrs(self.spec, self.width, self.height, float(self.fps))


def yuv_picture(frame: np.ndarray, pix_fmt: str, color_range: ColorRange) -> av.VideoFrame:
    """One RGB uint8 frame (H, W, 3) as the encoder's YUV picture.

    Full range is JPEG's YCbCr (BT.601, 0..255), the sums swscale makes of it; at even sizes
    OpenCV makes them at half swscale's CPU (0.73 against 1.39-2.2 ms a 640x480 frame): one
    conversion with exact rounding, then each 4:2:0 chroma sample the mean of its 2x2 pixels
    (INTER_AREA at half size), as swscale's FULL_CHR_H_INP and AREA do. Round trip 41.7 dB
    against swscale's 41.3 on a photograph (the planes differ by at most 2 levels). Limited range
    and odd sizes (a chroma sample past the edge) go through swscale."""
    height, width = frame.shape[:2]
    subsampled = pix_fmt == "yuv420p"
    if color_range != ColorRange.JPEG or (subsampled and (width % 2 or height % 2)):
        picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
        return picture.reformat(format=pix_fmt, src_color_range=ColorRange.JPEG,
                                dst_color_range=color_range, interpolation=TO_YUV, threads=1)
    ycrcb = cv2.cvtColor(frame, cv2.COLOR_RGB2YCrCb)
    chroma = (cv2.resize(ycrcb, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
              if subsampled else ycrcb)
    picture = av.VideoFrame(width, height, pix_fmt)
    for plane, source in zip(picture.planes, (ycrcb[..., 0], chroma[..., 2], chroma[..., 1]),
                             strict=True):  # Y, Cb (U), Cr (V): OpenCV orders them Y, Cr, Cb
        rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
        np.copyto(rows[:, :plane.width], source)
    return picture


def video_attrs(spec: ImageEncoding, width: int, height: int, fps: float) -> dict[str, Any]:
    """What a reader needs to decode a camera's packets: the attributes of its video group.

    Known before the first frame (the writer stores them before SWMR forbids new attributes):
    the packets carry their own decoder set-up in-band (x264's SPS/PPS and AV1's sequence
    header come with every keyframe), so no extradata is needed to start at any keyframe."""
    crf, preset, gop = settings_of(spec)
    rate = Fraction(fps).limit_denominator(1001)
    return {
        "encoding": spec.encoding,
        "codec": spec.encoding,
        "decoder": DECODER[spec.encoding],
        "encoder": ENCODER[spec.encoding],
        "width": width,
        "height": height,
        "pix_fmt": spec.pix_fmt,
        "fps": float(rate),
        "time_base": f"{rate.denominator}/{rate.numerator}",  # pts: the frame's index
        "crf": crf,
        "preset": preset,
        "gop": gop,
        "b_frames": 0,
        "bitstream": "annexb" if spec.encoding == "h264" else "obu",
        "color_range": spec.color_range,  # YUV levels: decode back to RGB from these
        "color_order": "rgb (decoded with to_ndarray(format='rgb24'); the packets hold YUV)",
    }


class VideoDecoder:
    """Packets of one camera -> RGB uint8 frames (H, W, 3), one per packet.

    A decoder must start at a keyframe and see every packet after it in order; `decode` is one
    such run. A new run (after a seek) needs a new decoder.

    `strict`: a damaged packet raises instead of being concealed. FFmpeg's h264 decoder by
    default hides a zeroed or truncated slice and still gives a frame; `collector validate` and
    `recover` must see it, so they ask FFmpeg to report every bitstream error it detects."""

    def __init__(self, attrs: Mapping[str, Any], strict: bool = False):
        codec = str(attrs["codec"])
        if codec not in DECODER:
            raise EpisodeFileError(f"video codec {codec!r} is not one Collector decodes "
                                   f"({', '.join(DECODER)})")
        ctx = av.CodecContext.create(DECODER[codec], "r")
        assert isinstance(ctx, VideoCodecContext)
        ctx.thread_count = 1  # frame threads delay every frame: one packet in, one frame out
        # h264 conceals a damaged packet and decodes garbage without a word; explode makes it
        # an error, so a corrupted packet is reported instead of shown; strict (validate,
        # recover) also checks what the bitstream can: a zeroed or cut-short packet
        ctx.options = {"err_detect": "crccheck+bitstream+buffer+explode" if strict
                       else "explode"}
        extradata = attrs.get("extradata")
        if extradata is not None and len(extradata):
            # Collector's own streams carry their headers in-band; an imported stream (an mp4's
            # avcC, length-prefixed packets) needs its container's extradata to decode
            ctx.extradata = (bytes(extradata) if isinstance(extradata, bytes | bytearray)
                             else np.asarray(extradata, np.uint8).tobytes())
        self._ctx = ctx
        # Collector's streams name their range; another encoder's stream says it in its own
        # headers, which the decoder puts on each frame (unspecified: limited, as swscale reads it)
        named = attrs.get("color_range")
        self._range = None if named is None else COLOR_RANGE[str(named)]

    def pictures(self, packets: Iterable[np.ndarray]) -> Iterator[av.VideoFrame]:
        """The run's decoded pictures (YUV), in presentation order, not yet converted: a seek
        decodes every picture from its keyframe but converts only the one it wants
        (`to_rgb`). Frames a decoder holds back (another encoder's B-frames) come out at the
        end of the run."""
        at = -1
        try:
            for at, data in enumerate(packets):
                if not len(data):  # PyAV reads an empty packet as end of stream
                    raise EpisodeFileError(f"video packet {at} of this run is empty")
                yield from self._ctx.decode(av.Packet(np.asarray(data, np.uint8).tobytes()))
            yield from self._ctx.decode(None)
        except av.error.FFmpegError as exc:
            # a decoder may report a bad packet when it is given the next one: "at or before"
            raise EpisodeFileError(f"a video packet at or before packet {at} of this run does "
                                   f"not decode ({exc.strerror}): the file is damaged there"
                                   ) from exc

    def decode(self, packets: Iterable[np.ndarray],
               wanted: Container[int] | None = None) -> Iterator[np.ndarray]:
        """The run's frames as RGB, in presentation order; with `wanted` (positions in the
        run), only those frames are converted and given out."""
        for shown, picture in enumerate(self.pictures(packets)):
            if wanted is None or shown in wanted:
                yield self.to_rgb(picture)

    def to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """One decoded picture as RGB uint8 (H, W, 3), in the stream's colour range."""
        source = frame.color_range if self._range is None else self._range
        return frame.to_ndarray(format="rgb24", src_color_range=source,
                                dst_color_range=ColorRange.JPEG, interpolation=TO_RGB,
                                threads=1)


def decode_run(attrs: Mapping[str, Any], packets: Iterable[np.ndarray]) -> list[np.ndarray]:
    """Decode packets that start at a keyframe: every frame, in order."""
    return list(VideoDecoder(attrs).decode(packets))


def decode_last(attrs: Mapping[str, Any], packets: Sequence[np.ndarray]) -> np.ndarray:
    """The last frame of a run that starts at a keyframe (a seek: packets from
    `keyframe_before(keyframe, i)` to i), converted to RGB alone."""
    frames = list(VideoDecoder(attrs).decode(packets, wanted=(len(packets) - 1,)))
    if not frames:
        raise EpisodeFileError(f"a run of {len(packets)} video packets gave fewer frames: the "
                               "file is damaged there")
    return frames[0]


def keyframe_before(keyframe: np.ndarray, index: int) -> int:
    """The last keyframe at or before frame `index`: where decoding frame `index` starts."""
    keys = np.flatnonzero(np.asarray(keyframe[: index + 1], bool))
    if not len(keys):
        raise EpisodeFileError(f"no keyframe at or before frame {index}: it cannot be decoded")
    return int(keys[-1])
