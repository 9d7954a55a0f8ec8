"""Engines run the same stage objects: `inline` in one process, `ray` as actors."""

from __future__ import annotations

import threading

from collector.engines.base import Engine
from schemas.station import StationConfig


def start_engine(config: StationConfig, realtime: bool = True,
                 cancel: threading.Event | None = None) -> Engine:
    """`cancel` set meanwhile: the start-up stops at its next step with `StartupInterrupted`,
    leaving nothing running."""
    if config.engine.kind == "inline":
        from collector.engines.inline import InlineEngine

        return InlineEngine(config, realtime, cancel)
    from collector.engines.ray_engine import RayEngine

    return RayEngine(config, realtime, cancel)
