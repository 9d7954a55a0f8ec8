"""The session accounts file: `<output>/<station>/sessions/<session>.jsonl`, one record a line.

A session is the station's scheduled collection time. Every second of it is one record: an
episode (with its accounts) or an interval the station did not record, with its cause. A
restarted daemon appends to the same file, so the session's accounts continue.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.episode import EfficiencyAccounts

SESSION_FORMAT: Final = "collector.session"
SESSION_VERSION = 1

# Why the station was scheduled but not recording.
IntervalCause = Literal["startup", "idle", "paused", "reset", "episode_overhead", "restart"]


class SessionRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["collector.session"] = SESSION_FORMAT
    format_version: int = SESSION_VERSION
    kind: Literal["episode", "interval", "shutdown"]
    session_id: str
    station_id: str
    started_at: str = Field(description="UTC, ISO 8601")
    ended_at: str = Field(description="UTC, ISO 8601")
    seconds: float = Field(ge=0, description="scheduled seconds this record covers")
    cause: IntervalCause | None = Field(None, description="intervals: why not recording")
    episode_id: str | None = None
    outcome: str | None = None
    reason: str = ""
    path: str | None = None
    accounts: EfficiencyAccounts | None = Field(None, description="episodes: their accounts")
