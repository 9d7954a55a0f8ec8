"""Engines run the same stage objects: `inline` in one process, `ray` as actors."""

from __future__ import annotations

from collector.engines.base import Engine
from schemas.station import StationConfig


def start_engine(config: StationConfig, realtime: bool = True) -> Engine:
    if config.engine.kind == "inline":
        from collector.engines.inline import InlineEngine

        return InlineEngine(config, realtime)
    from collector.engines.ray_engine import RayEngine

    return RayEngine(config, realtime)
