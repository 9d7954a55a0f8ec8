"""The exceptions a user can meet. The CLI turns every `CollectorError` into one clear line."""

from __future__ import annotations

from typing import Any


class CollectorError(Exception):
    """An expected failure: bad input, a missing device, a full disk. Never a bug.

    `exit_code`: what every command (and `collector run`) exits with on it; the README's one
    exit-code table lists them."""

    exit_code = 1


class ConfigError(CollectorError):
    """A station YAML file or a `--set` override that does not validate."""

    exit_code = 2


class DeviceError(CollectorError):
    """A device could not be opened, or stopped answering."""

    exit_code = 3


class EpisodeFileError(CollectorError):
    """An episode file that is missing, unreadable or not in Collector's layout."""


class DiskFullError(CollectorError):
    """Free space fell below `storage.min_free_gb`.

    `summaries`: the episodes a run of episodes committed before it stopped on this (the
    station's EpisodeSummary; set by `Station.record`)."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        # list[EpisodeSummary]; core sits below collector, so it cannot name the type
        self.summaries: list[Any] = []

    exit_code = 4


class PipelineError(CollectorError):
    """A stage of the pipeline failed in a way the engine could not recover from."""


class StartupInterrupted(CollectorError):
    """A signal arrived while the station was starting: it stopped there, nothing recorded.
    Not a failure: the commands exit 0, as for a signal at any other time."""

    exit_code = 0
