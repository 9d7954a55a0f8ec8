"""Opening a serial port by path or pyserial URL, with errors a user can act on."""

from __future__ import annotations

import select
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


def write_all(port: serial.SerialBase, data: bytes, name: str) -> None:
    try:
        port.write(data)
    except (serial.SerialException, OSError) as exc:
        raise DeviceError(f"{name}: serial write failed: {exc}") from None


def capture_packets(port: serial.SerialBase | None, name: str,
                    parser: PacketStream | LineStream) -> CapturedSamples | None:
    """Read what has arrived, decode it whole with `parser` (a PacketStream or LineStream,
    which keeps torn bytes and counts failures), and stamp every sample with the read's time."""
    if port is None:
        raise DeviceError(f"{name}: not connected")
    data = read_available(port, name)
    arrival = time.monotonic_ns()
    if not data:
        return None
    decoded = parser.feed(data)
    n = len(decoded)
    if n == 0:
        return None
    return CapturedSamples(device_ns=decoded.device_ns, seq=decoded.seq, values=decoded.values,
                   arrival_ns=np.full(n, arrival, np.int64))
