"""What the operator page's feed sends (`GET /events`, one `snapshot` event a few times a
second): the data of `collector/daemon/console.py`'s snapshot, described for the OpenAPI
document, so that a script can read the feed as the page does.

The feed is built as plain dicts on its hot path; tests validate the snapshots a real daemon
sends, idle and recording, against the schema these models give (tests/test_console_feed.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.api import EpisodeStatus, State, StreamRecent


class _Shown(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LastShown(_Shown):
    episode_id: str
    outcome: str
    reason: str
    efficiency: float


class StreamRow(_Shown):
    name: str
    kind: str | None
    rate_hz: float = Field(description="measured over the last reads, Hz")
    nominal_hz: float | None
    samples: int = Field(description="read this session")
    dropped: int = Field(description="grid samples lost this session (dropped or overflowed)")
    last_sample_age_s: float | None
    connected: bool
    disconnected_s: float = Field(description="seconds disconnected this session")
    flags: dict[str, int] = Field(description="grid samples each quality check flagged this "
                                  "session")
    window: StreamRecent | None = Field(description="its ticks written in the last seconds; "
                                        "null before the first episode")


class PreviewShown(_Shown):
    seq: int = Field(description="a new number is a new picture: GET /previews/<camera>.jpg")
    age_s: float
    width: int
    height: int


class LossShown(_Shown):
    factor: Literal["availability", "performance", "quality"]
    cause: str
    amount: float
    unit: Literal["s", "samples"]
    share: float = Field(description="share of its factor it cost, 0 to 1")


class EfficiencyShown(_Shown):
    availability: float
    performance: float
    quality: float
    efficiency: float
    scheduled_s: float
    recording_s: float
    top_losses: list[LossShown]


class EpisodeRow(_Shown):
    episode_id: str | None
    outcome: str | None
    reason: str
    ended_at: str
    recording_s: float | None
    efficiency: float | None
    download: str = Field(description="path of GET /downloads/<episode id>.h5")


class AlarmShown(_Shown):
    key: str
    kind: Literal["device_down", "disk_low", "quality", "pipeline_behind"]
    message: str
    raised_at: float = Field(description="unix seconds")
    cleared_at: float | None


class AlarmsShown(_Shown):
    active: list[AlarmShown]
    cleared: list[AlarmShown] = Field(description="the last ones cleared, newest first")


class DiskShown(_Shown):
    free_gb: float | None
    guard_gb: float


class ConsoleSnapshot(_Shown):
    """One `snapshot` event of the operator page's feed."""

    station_id: str
    session_id: str
    state: State
    mode: Literal["auto", "manual"]
    paused: bool
    task: str
    episodes: dict[str, int] = Field(description="episodes this session, by outcome")
    episode: EpisodeStatus | None = Field(description="the one recording")
    last_episode: LastShown | None
    streams: list[StreamRow]
    window_s: float = Field(description="the window of the streams' `window` figures, s")
    previews: dict[str, PreviewShown]
    efficiency: EfficiencyShown
    recent: list[EpisodeRow] = Field(description="this session's last episodes, newest first")
    alarms: AlarmsShown
    disk: DiskShown
    pipeline_lag_s: float
    sent_at: float = Field(description="unix seconds")
