"""Bodies of the station daemon's HTTP API (`collector run`): requests in, responses out."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.episode import EfficiencyAccounts

State = Literal["starting", "idle", "recording", "resetting", "paused", "stopping"]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Empty(Request):
    """Endpoints that take no parameters accept no body, `{}` or nothing."""


class StartEpisode(Request):
    duration_s: float | None = Field(None, gt=0, allow_inf_nan=False,
                                     description="at most this long (s); the station's "
                                     "episode.duration_s still caps it")


class EndWithReason(Request):
    reason: str = Field(min_length=1, max_length=500, description="why, kept in the metadata")


class Accepted(BaseModel):
    """A command was accepted; the state machine acts on it at its next step."""

    accepted: str
    state: State


class ApiError(BaseModel):
    error: str


class EpisodeStatus(BaseModel):
    episode_id: str
    number: int
    elapsed_s: float
    duration_s: float
    ending: str | None = Field(None, description="stop | accept | reject | abort, once requested "
                                                 "(a signal: stop)")


class LastEpisode(BaseModel):
    episode_id: str
    outcome: str
    reason: str = ""
    path: str
    accounts: EfficiencyAccounts


class StreamRecent(BaseModel):
    """One stream's grid ticks written in the last `window_s` seconds (between episodes, once
    the window has passed: no ticks, no p99)."""

    window_s: float = Field(description="the window, in seconds, up to now")
    ticks: int = Field(description="delivered (not missing) ticks in the window")
    dt_p99_ms: float | None = Field(description="99th percentile of |tick time - capture time| "
                                    "of those ticks, in ms; null: no tick in the window")
    flagged: dict[str, int] = Field(description="per quality check, the delivered ticks of "
                                    "the window it flagged")


class LossTotalsShown(BaseModel):
    """The loss totals of `collector/efficiency.py` `loss_totals`: counts stay counts."""

    missing: int = Field(0, description="expected grid samples never delivered (performance)")
    flagged: int = Field(0, description="delivered samples a quality check failed (quality)")
    discarded: int = Field(0, description="good samples of a failed, truncated, rejected or "
                           "aborted episode (quality)")
    lost_s: float = Field(0.0, description="scheduled seconds not recording (availability)")


class Status(BaseModel):
    station_id: str
    session_id: str
    state: State
    mode: Literal["auto", "manual"]
    paused: bool
    shutdown_requested: bool
    episodes: dict[str, int] = Field(description="episodes this session, by outcome")
    current_episode: EpisodeStatus | None
    last_episode: LastEpisode | None
    devices: dict[str, dict[str, Any]]
    recent: dict[str, StreamRecent] = Field(default_factory=dict, description="per stream, "
                                            "its ticks written in the last seconds")
    pipeline_lag_s: float = Field(0.0, description="how far the episode's reads run behind "
                                  "their schedule (a slow pipeline holds the loop); 0 between "
                                  "episodes")
    session: EfficiencyAccounts
    losses: LossTotalsShown = Field(default_factory=LossTotalsShown,
                                    description="the session's loss totals, in the words "
                                    "record, inspect, report and /metrics use")
