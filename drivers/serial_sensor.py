"""A sensor on a serial port whose protocol is declared in YAML (binary packets or ASCII lines).

The reader thread reads whatever has arrived, stamps it with the arrival time, and parses the
whole read at once (drivers/packet.py, drivers/lines.py). Device time and sequence fields are
kept; the device clock is mapped onto the host clock by the stream's clock fit.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np

from collector.errors import DeviceError
from drivers.base import Capture, FieldInfo, StreamInfo, ThreadedDevice
from drivers.lines import LineStream
from drivers.packet import PacketStream
from drivers.serial_port import open_port, read_available
from schemas.devices import SerialSensorConfig


class SerialSensor(ThreadedDevice):
    def __init__(self, config: SerialSensorConfig):
        if config.packet is not None:
            self.stream: PacketStream | LineStream = PacketStream(config.packet)
            fmt = self.stream.format
            fields = {f.name: FieldInfo((f.count,), str(fmt.value_dtype(f.name)), f.unit)
                      for f in fmt.values}
        else:
            self.stream = LineStream(config.lines)
            fields = {f.name: FieldInfo((f.count,), "float64", f.unit)
                      for f in config.lines.fields if f.role is None}
        super().__init__(StreamInfo(config.name, "sensor", config.rate_hz, fields))
        self.config = config
        self.port = None

    @property
    def skipped_bytes(self) -> int:
        return getattr(self.stream, "skipped_bytes", 0)

    def _connect(self) -> None:
        self.port = open_port(self.config.port, self.config.baudrate, self.config.name)
        self.stream.reset()

    def _capture(self) -> Capture | None:
        if self.port is None:
            raise DeviceError(f"{self.config.name}: not connected")
        data = read_available(self.port, self.config.name)
        arrival = time.monotonic_ns()
        if not data:
            return None
        decoded = self.stream.feed(data)
        self.checksum_failures = self.stream.failures
        n = len(decoded)
        if n == 0:
            return None
        return Capture(device_ns=decoded.device_ns, seq=decoded.seq, values=decoded.values,
                       arrival_ns=np.full(n, arrival, np.int64))

    def _disconnect(self) -> None:
        if self.port is not None:
            with contextlib.suppress(Exception):  # the port may have vanished with the cable
                self.port.close()
            self.port = None
