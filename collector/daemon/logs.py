"""Structured logs: one JSON object per line on stdout, for journald and log shippers."""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
from typing import TextIO


class JsonLog:
    """`log("episode_committed", episode_id=..., outcome=...)` writes one line and flushes."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self._lock = threading.RLock()  # a signal handler may log mid-write

    def __call__(self, event: str, level: str = "info", **fields: object) -> None:
        record = {"ts": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
                  "level": level, "event": event, **fields}
        line = json.dumps(record, default=str)
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def error(self, event: str, **fields: object) -> None:
        self(event, level="error", **fields)
