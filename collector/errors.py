"""The exceptions a user can meet, under the name users import them by.

They are defined in `core.errors` so that drivers can raise them without importing the pipeline;
these are the same classes, so `except collector.errors.DeviceError` catches a driver's error.
"""

from __future__ import annotations

from core.errors import (
    CollectorError,
    ConfigError,
    DeviceError,
    DiskFullError,
    EpisodeFileError,
    PipelineError,
    StartupInterrupted,
)

__all__ = [
    "CollectorError",
    "ConfigError",
    "DeviceError",
    "DiskFullError",
    "EpisodeFileError",
    "PipelineError",
    "StartupInterrupted",
]
