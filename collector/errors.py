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
    "raised_by_us",
]


def raised_by_us(exc: CollectorError) -> CollectorError:
    """The error as its stage raised it. An error raised in a Ray actor arrives wrapped in one
    that is both Ray's and ours, whose text is the remote traceback (with terminal colours);
    its `cause` is ours, with our one line. (No Ray import: only collector/engines has one.)"""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, CollectorError) else exc
