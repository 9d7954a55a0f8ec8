"""A `collector run` subprocess driven over its HTTP API (127.0.0.1 only), for daemon tests."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import ROOT, SIM_CONFIG

CAMERAS = ("cam_high", "cam_left_wrist", "cam_right_wrist")


def small_cameras() -> list[str]:
    """Overrides for small frames (the frame counter needs 384 px): light on a shared machine."""
    return [f"devices.{cam}.{key}={value}" for cam in CAMERAS
            for key, value in (("width", 384), ("height", 96))]


def small_station(tmp_path: Path, **extra: str) -> list[str]:
    """`--set` overrides: small frames, inline engine, any free port, output in tmp_path."""
    sets = {"station.output_dir": str(tmp_path), "engine.kind": "inline", "api.port": "0",
            "episode.reset_s": "0.3", "episode.duration_s": "30",
            # short, as the episodes are: the warm-up runs, without costing each test seconds
            "engine.warm_up_s": "0.5"}
    sets.update(item.split("=", 1) for item in small_cameras())
    sets.update(extra)
    out = []
    for key, value in sets.items():
        out += ["--set", f"{key}={value}"]
    return out


class Daemon:
    def __init__(self, sets: list[str], *args: str, token: str | None = None):
        self.token = token
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "collector", "run", str(SIM_CONFIG), *args, *sets],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        self._events: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        listening = self.event("api_listening", timeout=120)
        self.base = f"http://127.0.0.1:{listening['port']}"

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            self._events.put(line)
        self._events.put(None)

    def event(self, name: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if json.loads(line)["event"] == name:
                return json.loads(line)
        while time.monotonic() < deadline:
            try:
                line = self._events.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"daemon exited before {name}: {self.stderr_tail()}")
            record = json.loads(line)
            if record["event"] == name:
                return record
        raise AssertionError(f"no {name} event within {timeout} s")

    def request(self, method: str, path: str, body: bytes | dict | None = None,
                headers: dict | None = None, auth: bool = True) -> tuple[int, object]:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=dict(headers or {}))
        if auth and self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, _decode(resp.read(), resp.headers.get("Content-Type"))
        except urllib.error.HTTPError as exc:
            return exc.code, _decode(exc.read(), exc.headers.get("Content-Type"))

    def status(self) -> dict:
        code, body = self.request("GET", "/status")
        assert code == 200, body
        return body

    def post(self, path: str, body: dict | bytes | None = None) -> tuple[int, dict]:
        return self.request("POST", path, body)

    def wait_for(self, test, timeout: float = 60, what: str = "") -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if test(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {status['state']} "
                                     f"{status['episodes']}")
            time.sleep(0.1)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 90) -> int:
        code = self.proc.wait(timeout=timeout)
        deadline = time.monotonic() + 5
        while self._events.qsize() and time.monotonic() < deadline:
            time.sleep(0.05)
        return code

    def stderr_tail(self) -> str:
        if self.proc.poll() is None:
            return ""
        return self.proc.stderr.read()[-2000:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _decode(data: bytes, content_type: str | None):
    if content_type and content_type.startswith("application/json"):
        return json.loads(data)
    return data.decode()
