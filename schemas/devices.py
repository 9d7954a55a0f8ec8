"""Device entries of the station YAML. The `type` field picks the model (a discriminated union)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class StrictModel(BaseModel):
    """Base for every user-written model: unknown keys are typos, so they are errors."""

    # inf and nan are never a setting: they pass `gt=0` and overflow where they are used
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class AlignSpec(StrictModel):
    """How a stream is placed onto the episode grid (see collector/perception)."""

    method: Literal["nearest", "interpolate", "mean", "last", "max"] = "nearest"
    tolerance_ms: float | None = Field(
        None, gt=0, description="farthest sample accepted for a tick; null: from the stream rate"
    )


class Faults(StrictModel):
    """Faults a simulated device injects, as fractions of samples unless stated."""

    drop_rate: float = Field(0.0, ge=0, le=1)
    corrupt_byte_rate: float = Field(0.0, ge=0, le=1)
    frozen_rate: float = Field(0.0, ge=0, le=1)
    blur_rate: float = Field(0.0, ge=0, le=1)
    overexposed_rate: float = Field(0.0, ge=0, le=1)
    latency_ms: float = Field(0.0, ge=0, description="fixed delay from capture to arrival")
    jitter_ms: float = Field(0.0, ge=0, description="std-dev of arrival jitter")
    clock_drift_ppm: float = 0.0
    clock_offset_ms: float = 0.0
    disconnect_at_s: float | None = Field(None, ge=0, description="seconds after open")
    disconnect_for_s: float = Field(0.0, ge=0)
    seed: int = 0


class DeviceBase(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", description="stream name in episodes")
    align: AlignSpec | None = None


class CameraBase(DeviceBase):
    width: int = Field(640, gt=0, le=8192)
    height: int = Field(480, gt=0, le=8192)
    fps: float = Field(30.0, gt=0, le=1000)


class SimCameraConfig(CameraBase):
    """A camera that renders the simulated arm's scene, with a frame counter a test can read."""

    type: Literal["sim_camera"]
    faults: Faults = Faults()


class OpenCVCameraConfig(CameraBase):
    """A real camera through OpenCV: index, /dev/video path, video file or stream URL."""

    type: Literal["opencv_camera"]
    source: int | str = 0
    fourcc: str | None = Field(None, min_length=4, max_length=4)
    # What the capture hands out. OpenCV's backends deliver BGR; a GStreamer appsink asked for
    # RGB delivers RGB. Frames always enter the pipeline, and the file, as RGB.
    delivers: Literal["bgr", "rgb"] = "bgr"
    rotation: Literal[0, 90, 180, 270] = 0
    warmup_frames: int = Field(5, ge=0)
    buffer_size: int = Field(1, ge=1)
    passthrough: Literal["jpeg"] | None = Field(
        None, description="jpeg: a camera that delivers JPEG (fourcc MJPG, an MJPG file or "
        "stream) has its own bytes stored when its frames are stored as JPEG, not decoded and "
        "encoded again; the checks see a reduced decode. Decoded as usual when the camera is "
        "stored otherwise (h264, av1, png, raw), resized or rotated")

    @model_validator(mode="after")
    def _passthrough_needs_mjpg(self) -> OpenCVCameraConfig:
        if self.passthrough == "jpeg" and self.fourcc not in (None, "MJPG"):
            raise ValueError(f"passthrough: jpeg keeps the camera's JPEG bytes, but fourcc "
                             f"{self.fourcc} asks it for another format; set fourcc: MJPG or "
                             "remove passthrough")
        return self

    @model_validator(mode="before")
    @classmethod
    def _no_color_order(cls, data: Any) -> Any:
        # `color_order: bgr` once kept BGR frames in a pipeline that labels them RGB: every
        # stored frame then had red and blue swapped. The key now says what the capture gives.
        if isinstance(data, dict) and "color_order" in data:
            raise ValueError("color_order was removed: frames are always stored RGB; say what "
                             "the capture hands out with delivers: bgr (OpenCV's default) or rgb")
        return data


# --- serial protocols -----------------------------------------------------------------------

TIME_UNITS_NS = {"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0}


def per_channel_units(channels: list[str], unit: str) -> list[str]:
    """The force/torque convention: channels named t* are torques (N*m) when `unit` is N."""
    return ["N*m" if unit == "N" and c.startswith("t") else unit for c in channels]


class ChannelField(StrictModel):
    """A field of `count` values, each with an optional name and unit of its own."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    count: int = Field(1, ge=1, le=4096)
    unit: str = Field("", description="the unit of every value, unless `units` names one each")
    channels: list[str] | None = Field(
        None, description="a name per value, e.g. [fx, fy, fz]; null: name[0], name[1], ...")
    units: list[str] | None = Field(None, description="a unit per value, e.g. [N, N, N*m]")

    @model_validator(mode="after")
    def _one_per_value(self) -> ChannelField:
        for key in ("channels", "units"):
            given = getattr(self, key)
            if given is not None and len(given) != self.count:
                raise ValueError(f"field {self.name}: {len(given)} {key} for count {self.count}"
                                 f"; give one per value")
        return self

    def channel_names(self) -> list[str] | None:
        return list(self.channels) if self.channels is not None else None

    def channel_units(self) -> list[str]:
        return list(self.units) if self.units is not None else [self.unit] * self.count


class PacketField(ChannelField):
    """One field of a binary packet, stored raw; `scale` and `unit` say how to read it."""

    dtype: str = Field(description="numpy scalar type without byte order: u1 i2 u4 f4 f8 ...")
    scale: float | None = Field(None, description="value = raw * scale; null: raw")
    role: Literal["sequence", "device_time"] | None = None

    @field_validator("dtype")
    @classmethod
    def _numeric_dtype(cls, value: str) -> str:
        try:
            dt = np.dtype(value)
        except TypeError:
            raise ValueError(f"{value!r} is not a numpy dtype; use e.g. u2, i4, f4") from None
        if dt.kind not in "uif" or value[:1] in "<>=|!":
            raise ValueError(f"{value!r}: use a plain numeric type (u1..u8, i1..i8, f4, f8); "
                             "byte order comes from the packet's byteorder")
        return value

    @model_validator(mode="after")
    def _role_fits(self) -> PacketField:
        if self.role is not None and self.count != 1:
            raise ValueError(f"field {self.name}: a {self.role} field holds one value (count 1)")
        if self.role == "sequence" and np.dtype(self.dtype).kind not in "ui":
            raise ValueError(f"field {self.name}: a sequence field must be an integer type")
        if self.role == "device_time" and self.unit not in TIME_UNITS_NS:
            raise ValueError(f"field {self.name}: a device_time field needs unit "
                             f"{', '.join(TIME_UNITS_NS)}")
        return self


class PacketSpec(StrictModel):
    """A fixed-size binary packet: header bytes, fields, then an optional checksum.

    The checksum covers the bytes after the header and before the checksum. `xor8`/`sum8` are
    one byte; `crc16-ccitt` is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) and `crc32` the zlib
    CRC-32, both stored in the packet's byte order.
    """

    header: str = Field(description="hex bytes that start every packet, e.g. AA55")
    byteorder: Literal["little", "big"] = "little"
    fields: list[PacketField] = Field(min_length=1)
    checksum: Literal["none", "xor8", "sum8", "crc16-ccitt", "crc32"] = "none"

    @field_validator("header")
    @classmethod
    def _hex(cls, value: str) -> str:
        text = value.replace(" ", "")
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise ValueError(f"header {value!r} is not hex bytes, e.g. AA55") from None
        if not raw:
            raise ValueError("header needs at least one byte (it is how packets are found)")
        return text.upper()

    @model_validator(mode="after")
    def _fields_unique(self) -> PacketSpec:
        names = [f.name for f in self.fields]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"packet field names must be unique; repeated: {', '.join(dupes)}")
        for role in ("sequence", "device_time"):
            if sum(f.role == role for f in self.fields) > 1:
                raise ValueError(f"at most one field may have role {role}")
        return self


class LineField(ChannelField):
    """One field of an ASCII line: `count` numbers, in column order (csv) or under keys (kv)."""

    count: int = Field(1, ge=1, le=256)
    keys: list[str] | None = Field(None, description="kv only; default: name, or name0..nameN-1")
    scale: float | None = None
    role: Literal["sequence", "device_time"] | None = None

    def key_names(self) -> list[str]:
        if self.keys is not None:
            return list(self.keys)
        return [self.name] if self.count == 1 else [f"{self.name}{i}" for i in range(self.count)]

    @model_validator(mode="after")
    def _consistent(self) -> LineField:
        if self.keys is not None and len(self.keys) != self.count:
            raise ValueError(f"field {self.name}: {len(self.keys)} keys for count {self.count}")
        if self.role is not None and self.count != 1:
            raise ValueError(f"field {self.name}: a {self.role} field holds one value (count 1)")
        if self.role == "device_time" and self.unit not in TIME_UNITS_NS:
            raise ValueError(f"field {self.name}: a device_time field needs unit "
                             f"{', '.join(TIME_UNITS_NS)}")
        return self


class LineSpec(StrictModel):
    """ASCII lines, one sample each: `1,200,0.1,...` (csv) or `seq=1 fx=0.1 ...` (kv)."""

    format: Literal["csv", "kv"] = "csv"
    separator: str = Field(",", min_length=1, max_length=1, description="between values/pairs")
    fields: list[LineField] = Field(min_length=1)


class SerialBase(DeviceBase):
    baudrate: int = Field(115200, gt=0)
    rate_hz: float = Field(1000.0, gt=0, le=100_000, description="nominal sample rate")
    read_interval_ms: float = Field(
        5.0, ge=0, le=100,
        description="a stream with a device clock is read at most about this often (a random "
                    "0.5-1.5x of it), whatever has arrived, not on every USB frame: 10 costs "
                    "half the CPU of 5 and ~0.2 ms of clock-fit accuracy; 0: on every arrival. "
                    "A stream without a device clock is always read on arrival")


class SerialSensorConfig(SerialBase):
    """A sensor on a serial port (path or pyserial URL: socket://host:port, loop://)."""

    type: Literal["serial_sensor"]
    port: str
    packet: PacketSpec | None = None
    lines: LineSpec | None = None

    @model_validator(mode="after")
    def _one_protocol(self) -> SerialSensorConfig:
        if (self.packet is None) == (self.lines is None):
            raise ValueError("give exactly one of packet (binary) or lines (ASCII)")
        return self


class SerialArmConfig(SerialBase):
    """A position-controlled arm on a serial port, speaking the protocol in drivers/serial_arm."""

    type: Literal["serial_arm"]
    port: str
    joints: int = Field(6, ge=1, le=32)
    rate_hz: float = Field(100.0, gt=0, le=10_000)


class SimSensorConfig(DeviceBase):
    """A force/torque sensor producing a smooth, contact-driven signal.

    `link: pty` (default) runs it as a peer on a pseudo-terminal speaking its serial protocol
    (`packet`, or `lines`; default: the packet of `default_sensor_packet`) and reads it with the
    real `serial_sensor` driver; `tcp` does the same over a loopback socket (socket:// URL);
    `inprocess` hands samples over directly (no bytes, no driver).
    """

    type: Literal["sim_sensor"]
    rate_hz: float = Field(1000.0, gt=0, le=100_000)
    channels: list[str] = Field(default_factory=lambda: ["fx", "fy", "fz", "tx", "ty", "tz"])
    unit: str = Field("N", description="every channel's unit; with N, t* channels are N*m")
    units: list[str] | None = Field(None, description="a unit per channel: [N, N, N, N*m, ...]")
    link: Literal["pty", "tcp", "inprocess"] = "pty"
    baudrate: int = Field(921600, gt=0)
    packet: PacketSpec | None = None
    lines: LineSpec | None = None
    burst_ms: float = Field(10.0, ge=0.5, le=100,
                            description="its bytes reach the host every burst_ms (a USB serial "
                                        "adapter's latency timer: FTDI's default 16, often set "
                                        "to 1 for low latency)")
    faults: Faults = Faults()

    @model_validator(mode="after")
    def _one_protocol(self) -> SimSensorConfig:
        if self.packet is not None and self.lines is not None:
            raise ValueError("give at most one of packet (binary) or lines (ASCII)")
        if self.units is not None and len(self.units) != len(self.channels):
            raise ValueError(f"{len(self.units)} units for {len(self.channels)} channels; give "
                             "one unit per channel")
        return self

    def channel_units(self) -> list[str]:
        return list(self.units) if self.units is not None else \
            per_channel_units(self.channels, self.unit)

    def protocol(self) -> PacketSpec | LineSpec:
        """What the simulated sensor speaks on its link."""
        return self.lines or self.packet or default_sensor_packet(
            len(self.channels), names=self.channels, units=self.channel_units())


class SimArmConfig(DeviceBase):
    """A position-controlled arm that follows the task's commands with first-order lag."""

    type: Literal["sim_arm"]
    joints: int = Field(6, ge=1, le=32)
    rate_hz: float = Field(100.0, gt=0, le=10_000)
    link: Literal["pty", "tcp", "inprocess"] = Field(
        "pty", description="pty/tcp: a peer speaking the serial_arm protocol, read by the real "
                           "driver; inprocess: direct calls")
    baudrate: int = Field(921600, gt=0)
    faults: Faults = Faults()


def default_sensor_packet(channels: int, unit: str = "N", names: list[str] | None = None,
                          units: list[str] | None = None) -> PacketSpec:
    """The F/T packet of DESIGN.md with one `value` field of `channels` floats."""
    units = units or [unit] * channels
    return PacketSpec(header="AA55", byteorder="little", checksum="crc16-ccitt", fields=[
        PacketField(name="seq", dtype="u2", role="sequence"),
        PacketField(name="t_us", dtype="u4", role="device_time", unit="us"),
        PacketField(name="value", dtype="f4", count=channels, channels=names,
                    unit=units[0] if len(set(units)) == 1 else "", units=units),
    ])


class ReplayConfig(DeviceBase):
    """One stream of a recorded episode played back live (collector/replay/device.py)."""

    type: Literal["replay"]
    episode: str | None = Field(None, description="episode .h5; null: the one on the command line")
    stream: str | None = Field(None, description="stream in the episode; null: this device's name")
    kind: Literal["camera", "sensor", "arm", "action"] | None = Field(
        None, description="null: from the episode (images: camera, actions: action, qpos: arm)")
    start_s: float = Field(0.0, ge=0, description="episode seconds to start from")
    end_s: float | None = Field(None, gt=0, description="episode seconds to stop at; null: end")
    realtime: bool = Field(True, description="false: stepped, each read is the next chunk")


# the one list of device models; spelled out as a Union (not built from a tuple) so that a type
# checker can read it
DeviceConfig = Annotated[Union[SimCameraConfig, OpenCVCameraConfig, SimSensorConfig,  # noqa: UP007
                               SimArmConfig, SerialSensorConfig, SerialArmConfig, ReplayConfig],
                         Field(discriminator="type")]
DEVICE_MODELS: tuple[type[DeviceBase], ...] = get_args(get_args(DeviceConfig)[0])
DEVICE_TYPES = frozenset(get_args(m.model_fields["type"].annotation)[0] for m in DEVICE_MODELS)

CAMERA_TYPES = (SimCameraConfig, OpenCVCameraConfig)
ARM_TYPES = (SimArmConfig, SerialArmConfig)
