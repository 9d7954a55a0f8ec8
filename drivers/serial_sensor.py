"""A sensor on a serial port whose protocol is declared in YAML (binary packets or ASCII lines).

The reader thread reads whatever has arrived, stamps it with the arrival time, and parses the
whole read at once (drivers/packet.py, drivers/lines.py). Device time and sequence fields are
kept; the device clock is mapped onto the host clock by the stream's clock fit.
"""

from __future__ import annotations

import contextlib

from drivers.base import CapturedSamples, FieldInfo, StreamInfo, ThreadedDevice
from drivers.lines import LineStream
from drivers.packet import PacketStream
from drivers.serial_port import ReadPacer, capture_packets, open_port
from schemas.devices import ChannelField, SerialSensorConfig


def channel_info(field: ChannelField, dtype: str) -> FieldInfo:
    """A declared field as the stream describes it: names and units per channel from YAML."""
    return FieldInfo((field.count,), dtype, field.unit, tuple(field.channel_names() or ()),
                     tuple(field.channel_units()))


class SerialSensor(ThreadedDevice):
    def __init__(self, config: SerialSensorConfig):
        if config.packet is not None:
            self.stream: PacketStream | LineStream = PacketStream(config.packet)
            fmt = self.stream.format
            fields = {f.name: channel_info(f, str(fmt.value_dtype(f.name))) for f in fmt.values}
        else:
            assert config.lines is not None  # the config's validator requires one of the two
            self.stream = LineStream(config.lines)
            fields = {f.name: channel_info(f, "float64")
                      for f in config.lines.fields if f.role is None}
        super().__init__(StreamInfo(config.name, "sensor", config.rate_hz, fields))
        self.config = config
        self.port = None
        # read on arrival without a device clock: there the read's time is the capture time
        clocked = self.stream.format.device_time is not None
        self.pacer = ReadPacer(config.read_interval_ms / 1000 if clocked else 0.0, self._stop)

    @property
    def skipped_bytes(self) -> int:
        return getattr(self.stream, "skipped_bytes", 0)

    def _connect(self) -> None:
        self.port = open_port(self.config.port, self.config.baudrate, self.config.name)
        self.stream.reset()

    def _capture(self) -> CapturedSamples | None:
        capture = capture_packets(self.port, self.config.name, self.stream, self.pacer)
        self._note_parser(self.stream.failures, self.stream.resets)
        return capture

    def _disconnect(self) -> None:
        if self.port is not None:
            with contextlib.suppress(Exception):  # the port may have vanished with the cable
                self.port.close()
            self.port = None
