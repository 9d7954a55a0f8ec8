"""Opening a serial port by path or pyserial URL, with errors a user can act on."""

from __future__ import annotations

import random
import select
import threading
import time
from typing import cast

import numpy as np
import serial

from core.errors import DeviceError
from drivers.base import CapturedSamples
from drivers.lines import LineStream
from drivers.packet import PacketStream

READ_TIMEOUT_S = 0.05  # a read returns at least this often, so the reader thread can stop


def open_port(port: str, baudrate: int, name: str) -> serial.SerialBase:
    """`/dev/ttyUSB0`, `COM3`, `socket://127.0.0.1:7000`, `loop://`, `rfc2217://...`."""
    try:
        opened = serial.serial_for_url(port, baudrate=baudrate, timeout=READ_TIMEOUT_S,
                                       write_timeout=0.5)
        if _fileno(opened) is not None:
            opened.timeout = 0  # reads return what has arrived; read_available waits in select
        return opened
    except (serial.SerialException, OSError, ValueError) as exc:
        raise DeviceError(f"{name}: cannot open serial port {port!r}: {exc}; check the cable and "
                          "the port (collector devices lists them)") from None


def _fileno(port: serial.SerialBase) -> int | None:
    try:
        return cast(int, port.fileno())  # pyserial is untyped
    except (AttributeError, OSError, serial.SerialException, NotImplementedError):
        return None


def read_available(port: serial.SerialBase, name: str) -> bytes:
    """Whatever has arrived, in one read (waiting up to READ_TIMEOUT_S for the first byte).

    Not `read(in_waiting)`: pyserial's socket:// backend reports in_waiting as 0 or 1, which
    would parse a TCP stream one byte per call.
    """
    try:
        fd = _fileno(port)
        if fd is None:  # loop:// and friends: no descriptor to wait on
            return cast(bytes, port.read(max(1, port.in_waiting)))  # pyserial is untyped
        ready, _, _ = select.select([fd], [], [], READ_TIMEOUT_S)
        return port.read(1 << 16) if ready else b""
    except (serial.SerialException, OSError, TypeError) as exc:
        # TypeError: pyserial's socket:// backend after the peer closed the connection
        raise DeviceError(f"{name}: serial port stopped answering: {exc}") from None


class ReadPacer:
    """Spaces a serial reader's reads: each at least a random 0.5-1.5x `interval_s` after the
    one before, taking whatever arrived meanwhile.

    A USB serial adapter hands bytes over every latency-timer period (1 ms when set for low
    latency), and each read costs ~0.3-0.6 ms of CPU whatever it holds (parse, counters, ring),
    so a 1 kHz sensor read on every arrival took 30% of a core. Only for streams with a device
    clock: their capture times come from the clock fit, which needs the smallest delay per
    half second of device time, and reads at random moments still catch samples just after
    they arrive (a fixed interval could lock to the device's period and bias every time).
    """

    def __init__(self, interval_s: float, stop: threading.Event, seed: int = 0):
        self.interval_s = interval_s
        self._stop = stop
        self._rng = random.Random(seed)
        self._next = 0.0
        self.reads = 0  # reads that returned bytes

    def wait(self) -> None:
        """Until the next read is due (or the reader is asked to stop)."""
        if self.interval_s > 0:
            delay = self._next - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)

    def done(self, got_bytes: bool) -> None:
        if got_bytes:
            self.reads += 1
            self._next = time.monotonic() + self.next_interval_s()

    def next_interval_s(self) -> float:
        """How long after a read the next one is due: never the same twice."""
        return self.interval_s * self._rng.uniform(0.5, 1.5)


def write_all(port: serial.SerialBase, data: bytes, name: str) -> None:
    try:
        port.write(data)
    except (serial.SerialException, OSError) as exc:
        raise DeviceError(f"{name}: serial write failed: {exc}") from None


def capture_packets(port: serial.SerialBase | None, name: str,
                    parser: PacketStream | LineStream,
                    pacer: ReadPacer) -> CapturedSamples | None:
    """Read what has arrived once `pacer` says a read is due (at once for an interval of 0),
    decode it whole with `parser` (a PacketStream or LineStream, which keeps torn bytes and
    counts failures), and stamp every sample with the read's time."""
    if port is None:
        raise DeviceError(f"{name}: not connected")
    pacer.wait()
    data = read_available(port, name)
    arrival = time.monotonic_ns()
    pacer.done(bool(data))
    if not data:
        return None
    decoded = parser.feed(data)
    n = len(decoded)
    if n == 0:
        return None
    return CapturedSamples(device_ns=decoded.device_ns, seq=decoded.seq, values=decoded.values,
                   arrival_ns=np.full(n, arrival, np.int64))
