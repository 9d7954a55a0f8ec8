"""The bench's resource monitor: it counts the CPU of every station process, and tells apart
what the simulated hardware's threads took (a real serial device's firmware runs on its own
chip, not on the station's host). Against the real serial driver reading a simulated sensor
over a pseudo-terminal, with psutil as the independent measure."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import psutil

from collector.bench.monitor import ResourceMonitor
from drivers.registry import sim_serial_sensor
from drivers.sim.world import SimWorld
from schemas.devices import SimSensorConfig
from tests.conftest import wait_until


def _os_name(tid: int) -> str:
    return Path(f"/proc/{os.getpid()}/task/{tid}/comm").read_text().strip()


def _thread_cpu_s(tid: int) -> float:
    """psutil's reading of one thread's CPU-seconds (not the monitor's own /proc parsing)."""
    [t] = [t for t in psutil.Process().threads() if t.id == tid]
    return t.user_time + t.system_time


def test_the_simulated_devices_cpu_is_counted_apart_from_the_drivers_and_the_rest():
    spec = SimSensorConfig(name="ft", type="sim_sensor", rate_hz=1000, link="pty")
    device = sim_serial_sensor(spec, SimWorld())
    monitor = ResourceMonitor(interval_s=0.1)
    stop = threading.Event()
    busy = threading.Thread(target=lambda: [0 for _ in iter(stop.is_set, True)], name="busy")
    with device:
        peer, reader = device.peer._thread, device._thread
        assert peer is not None and reader is not None
        # the OS knows each thread by its Python name, as top -H and py-spy show it (each thread
        # names itself first thing it runs, which on a busy host may be after start() returns)
        wait_until(lambda: (_os_name(peer.native_id), _os_name(reader.native_id))
                   == ("sim-ft", "reader-ft"), "both threads to show their names to the OS")
        peer_before = _thread_cpu_s(peer.native_id)
        monitor.start()
        busy.start()  # a thread of the station that is not simulated hardware
        try:
            wait_until(lambda: device.read() is not None and monitor.simulated_s >= 0.2
                       and monitor.cpu_s - monitor.simulated_s >= 0.5,
                       "the simulated sensor and the busy thread to take some CPU", poll_s=0.05)
        finally:
            stop.set()
            busy.join()
        monitor.stop()
        peer_spent = _thread_cpu_s(peer.native_id) - peer_before
    assert device.peer.error is None
    # only the peer's thread counts as simulated: not the driver reading it, not the busy one
    # (one clock tick of slack: /proc counts in ticks); what the peer took after the monitor's
    # last sample is not counted
    tick = 1 / os.sysconf("SC_CLK_TCK")
    assert peer_spent / 2 <= monitor.simulated_s <= peer_spent + 2 * tick
    assert monitor.simulated_s < monitor.cpu_s
