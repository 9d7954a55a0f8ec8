"""Simulated serial devices that speak the real protocols, so the real drivers can talk to them.

A peer runs its own thread on the far end of a `PtyLink`/`TcpLink`: it produces samples at its
rate from the shared `SimWorld`, encodes them exactly as the hardware would (the YAML-declared
packet or lines; the serial_arm protocol), injects the configured faults (drops, flipped bytes,
clock offset and drift, arrival jitter, unplugging) and keeps the ground truth a test compares
against (`sent`: what it wrote, `corrupted_packets`).
"""

from __future__ import annotations

import threading
import time
from typing import Any, cast

import numpy as np

from drivers.lines import LineFormat
from drivers.packet import PacketFormat, PacketStream
from drivers.ring import SampleRing
from drivers.serial_arm import arm_command_packet, arm_state_packet
from drivers.sim.faults import FaultPlan
from drivers.sim.link import make_link
from drivers.sim.sensor import ft_signal
from drivers.sim.world import Pacer, SimWorld
from drivers.thread_names import SIMULATED_THREAD_PREFIX, show_thread_name
from schemas.devices import TIME_UNITS_NS, Faults, PacketSpec, SimArmConfig, SimSensorConfig


class SerialPeer:
    """The thread, link and fault plumbing every simulated serial device shares."""

    def __init__(self, name: str, link: str, faults: Faults, salt: int, tick_hz: float):
        self.name = name
        self.link = make_link(link, name)
        self.faults = FaultPlan(faults, salt=salt)
        self.pacer = Pacer(tick_hz)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.bytes_sent = 0
        self.bytes_lost = 0  # nobody was reading and the link's buffer was full
        self.unplugged_s = 0.0
        self.error: BaseException | None = None

    @property
    def url(self) -> str:
        """What the driver opens: a path (pty) or socket:// URL (tcp). Valid once started."""
        return self.link.url

    def start(self) -> None:
        if self._thread is not None:
            return
        self.link.plug()
        now = time.monotonic_ns()
        self.faults.opened_ns = now
        self.pacer.next_ns = now
        self.begin(now)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"{SIMULATED_THREAD_PREFIX}{self.name}")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.link.close()

    def _run(self) -> None:
        show_thread_name()
        try:
            while not self._stop.is_set():
                now = self.pacer.wait(self._stop)
                if self._stop.is_set():
                    break
                self._follow_plug(now)
                if not self.link.plugged:
                    self.skip(now)
                    continue
                incoming = self.link.read()
                if incoming:
                    self.receive(incoming)
                self._send(now)
        except Exception as exc:  # a bug in the simulator: keep it for the test to see
            self.error = exc

    def _follow_plug(self, now: int) -> None:
        unplugged = self.faults.disconnected(now)
        if unplugged and self.link.plugged:
            self.link.unplug()
        elif not unplugged and not self.link.plugged:
            self.link.plug()
        if unplugged:
            self.unplugged_s += self.pacer.period_ns / 1e9

    def _send(self, now: int) -> None:
        data, unit = self.produce(now)
        if not data:
            return
        delay = int(self.faults.arrival_delay_ns(1)[0])
        if delay:
            self._stop.wait(delay / 1e9)
        written = self.link.write(data)
        self.bytes_sent += written
        self.bytes_lost += len(data) - written
        self.delivered(written // unit if unit else (1 if written == len(data) else 0))

    def begin(self, now: int) -> None: ...

    def skip(self, now: int) -> None:
        """Time passes while unplugged: samples of that time never exist."""

    def receive(self, data: bytes) -> None: ...

    def produce(self, now: int) -> tuple[bytes, int]:
        """Bytes to write now and the size of one packet (0: not fixed-size)."""
        return b"", 0

    def delivered(self, packets: int) -> None:
        """How many of the packets just produced were fully written."""

    def flip_bytes(self, rows: np.ndarray) -> np.ndarray:
        """Flip random bytes of (n, size) packets in place; returns which packets were hit."""
        rate = self.faults.faults.corrupt_byte_rate
        hit = self.faults.draw(rows.size, rate).reshape(rows.shape)
        if hit.any():
            rows[hit] ^= self.faults.rng.integers(1, 256, int(hit.sum()), dtype=np.uint8)
        return cast(np.ndarray, hit.any(axis=1))  # numpy types any(axis) as bool | array


def _raw(values: np.ndarray, dtype: str, scale: float | None) -> np.ndarray:
    """What a device puts on the wire for physical values (quantized, wrapped like hardware)."""
    v = np.asarray(values, np.float64)
    if scale is not None:
        v = v / scale
    dt = np.dtype(dtype)
    if dt.kind in "ui":
        return np.round(v).astype(np.int64).astype(dt)
    return v.astype(dt)


# seq, device times, expected values per field, corrupted: the block last sent
SentBlock = tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]


class SimSensorPeer(SerialPeer):
    """The simulated force/torque sensor, speaking its declared packet (or lines) protocol."""

    def __init__(self, config: SimSensorConfig, world: SimWorld, log_samples: int = 0):
        super().__init__(config.name, config.link, config.faults, salt=101,
                         tick_hz=1000.0 / config.burst_ms)
        self.config = config
        self.world = world
        self.protocol = config.protocol()
        self.format: PacketFormat | LineFormat = (
            PacketFormat(self.protocol) if isinstance(self.protocol, PacketSpec)
            else LineFormat(self.protocol))
        self.binary = isinstance(self.format, PacketFormat)
        self.period_ns = int(1e9 / config.rate_hz)
        self.next_seq = 0
        self.t0_ns = 0
        self.corrupted_packets = 0  # ground truth: packets with at least one flipped byte
        self.fields = [f for f in self.protocol.fields if f.role is None]
        logged: dict[str, tuple[tuple[int, ...], np.dtype[Any]]] = {
            f.name: ((f.count,), np.dtype(np.float64)) for f in self.fields}
        logged["corrupted"] = ((1,), np.dtype(bool))
        self.sent = SampleRing(log_samples, logged) if log_samples else None
        self._pending: SentBlock | None = None

    def begin(self, now: int) -> None:
        self.t0_ns = now

    def skip(self, now: int) -> None:
        self.next_seq = max(self.next_seq, (now - self.t0_ns) // self.period_ns)

    def produce(self, now: int) -> tuple[bytes, int]:
        last = (now - self.t0_ns) // self.period_ns
        seq = np.arange(self.next_seq, max(self.next_seq, last), dtype=np.int64)
        self._pending = None
        if seq.size == 0:
            return b"", 0
        self.next_seq = int(seq[-1]) + 1
        t = self.t0_ns + seq * self.period_ns
        signal = ft_signal(self.world, self.faults.rng, t, len(self.config.channels))
        keep = ~self.faults.draw(seq.size, self.faults.faults.drop_rate)
        seq, t, signal = seq[keep], t[keep], signal[keep]
        n = seq.size
        device_ns = self.faults.device_clock(t)
        values, expected, column = {}, {}, 0
        for f in self.protocol.fields:
            if f.role == "sequence":
                values[f.name] = _raw(seq, getattr(f, "dtype", "i8"), None)
            elif f.role == "device_time":
                unit = TIME_UNITS_NS[f.unit]
                values[f.name] = _raw(device_ns / unit, getattr(f, "dtype", "i8"), None)
            else:
                cols = np.arange(column, column + f.count) % signal.shape[1]
                column += f.count
                raw = _raw(signal[:, cols], getattr(f, "dtype", "f8"), f.scale)
                values[f.name] = raw
                expected[f.name] = raw.astype(np.float64) * (f.scale or 1.0)
        if isinstance(self.format, PacketFormat):  # self.binary, narrowed for the type checker
            rows = self.format.encode(values, n).copy()
            corrupted = self.flip_bytes(rows)
            self.corrupted_packets += int(corrupted.sum())
            data, unit = rows.tobytes(), self.format.size
        else:
            data, unit = self.format.encode(values, n), 0
            corrupted = np.zeros(n, bool)
        self._pending = (seq, device_ns, expected, corrupted)
        return data, unit

    def delivered(self, packets: int) -> None:
        if self.sent is None or self._pending is None:
            return
        seq, device_ns, expected, corrupted = self._pending
        k = seq.size if not self.binary and packets else packets
        fields = {name: v[:k] for name, v in expected.items()}
        fields["corrupted"] = corrupted[:k, None]
        self.sent.push(np.full(k, time.monotonic_ns(), np.int64), device_ns[:k], seq[:k], fields)


class SimArmPeer(SerialPeer):
    """The simulated arm speaking the serial_arm protocol: moves the shared world on command."""

    def __init__(self, config: SimArmConfig, world: SimWorld):
        super().__init__(config.name, config.link, config.faults, salt=201,
                         tick_hz=config.rate_hz)
        self.config = config
        self.world = world
        self.state = PacketFormat(arm_state_packet(config.joints))
        self.commands = PacketStream(arm_command_packet(config.joints))
        self.seq = 0
        self.commands_received = 0

    def receive(self, data: bytes) -> None:
        decoded = self.commands.feed(data)
        if len(decoded):
            self.commands_received += len(decoded)
            self.world.command(decoded.values["qpos"][-1], float(decoded.values["gripper"][-1, 0]))

    def skip(self, now: int) -> None:
        self.commands.reset()

    def produce(self, now: int) -> tuple[bytes, int]:
        qpos = self.world.step_to(np.array([now], np.int64))
        seq = self.seq
        self.seq += 1
        if self.faults.draw(1, self.faults.faults.drop_rate)[0]:
            return b"", 0
        device_us = int(self.faults.device_clock(np.array([now]))[0]) // 1000
        rows = self.state.encode({
            "seq": np.array([seq], np.uint32),
            "t_us": np.array([device_us], np.int64).astype(np.uint32),
            "qpos": qpos.astype(np.float32),
            "gripper": np.array([[self.world.gripper]], np.float32),
        }, 1).copy()
        self.flip_bytes(rows)
        return rows.tobytes(), self.state.size
