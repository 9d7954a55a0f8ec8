"""The bench's resource monitor: it counts the CPU of every station process, and tells apart
what the simulated hardware's threads took (a real serial device's firmware runs on its own
chip, not on the station's host). Against the real serial driver reading a simulated sensor
over a pseudo-terminal, with psutil as the independent measure."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from collector.bench.monitor import DRIVER, RAY_DAEMONS, ResourceMonitor, process_role
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


def test_the_cpu_is_split_by_process_and_the_parts_sum_to_the_whole():
    """A spinning child process and a busy thread of this one: each lands under its own role,
    as much as psutil says it took, and the roles add up to the total."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    child = psutil.Process(spinner.pid)
    assert process_role(child, os.getpid()) == "other"
    monitor = ResourceMonitor(interval_s=0.1)
    stop = threading.Event()
    busy = threading.Thread(target=lambda: [0 for _ in iter(stop.is_set, True)], name="busy")
    try:
        wait_until(lambda: sum(child.cpu_times()[:2]) > 0.05, "the child to start spinning")
        child_before = sum(child.cpu_times()[:2])
        monitor.start()
        busy.start()
        wait_until(lambda: monitor.cpu_by_process.get("other", 0) >= 0.5
                   and monitor.cpu_by_process.get(DRIVER, 0) >= 0.3,
                   "the child and the busy thread to take some CPU", poll_s=0.05)
        monitor.stop()
        child_spent = sum(child.cpu_times()[:2]) - child_before
    finally:
        stop.set()
        spinner.kill()
        spinner.wait()
        if busy.is_alive():
            busy.join()
    parts = monitor.cpu_by_process
    assert sum(parts.values()) == pytest.approx(monitor.cpu_s, abs=1e-6)
    # (Ray, when an earlier test of the session started it, is this process's too: its parts
    # are Ray's, and the child's CPU is the only "other" that spins)
    assert parts["other"] >= child_spent / 2
    busy_share = parts[DRIVER] / (parts[DRIVER] + parts["other"])
    assert 0.2 < busy_share < 0.8, parts  # a spinning thread against a spinning process


def test_ray_processes_are_named_by_their_stage(ray_session):
    """The real Ray of the test session: an actor of the engine's naming (`_NameActor`) is
    its stage, Ray's raylet is a daemon, and this process is the driver."""

    @ray_session.remote(num_cpus=0)
    class _ProbeActor:
        def pid(self) -> int:
            return os.getpid()

    actor = _ProbeActor.remote()
    pid = ray_session.get(actor.pid.remote())
    try:
        assert process_role(psutil.Process(pid), os.getpid()) == "probe"
        assert process_role(psutil.Process(), os.getpid()) == DRIVER
        daemons = [p for p in psutil.Process().children(recursive=True)
                   if "raylet" in " ".join(p.cmdline())]
        assert daemons and all(process_role(p, os.getpid()) == RAY_DAEMONS for p in daemons)
    finally:
        ray_session.kill(actor)
