"""What an episode file stores about itself: the root attributes and the efficiency accounts."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.layout import FILL_RULE

FORMAT: Final = "collector.episode"
FORMAT_VERSION = 1

# `truncated`: cut short (signal, operator stop, low disk) before the task finished; its
# `reason` says by what and when. Export leaves it out unless asked.
Outcome = Literal["success", "failure", "truncated", "rejected", "aborted", "recovered"]


class EpisodeMetadata(BaseModel):
    """Root attributes of `/` in an episode file."""

    model_config = ConfigDict(extra="allow")

    format: Literal["collector.episode"] = FORMAT
    format_version: int = FORMAT_VERSION
    episode_id: str
    station_id: str
    task: str
    operator: str = ""
    started_at: str = Field(description="UTC, ISO 8601")
    ended_at: str = Field(description="UTC, ISO 8601")
    outcome: Outcome
    reason: str = ""
    control_hz: float
    rig_config: str = Field(description="the full station YAML, after overrides")
    software_version: str
    missing_fill: str = Field(FILL_RULE, description="what a tick without a sample holds")


class EfficiencyAccounts(BaseModel):
    """Attributes of `/efficiency`: availability x performance x quality for one episode.

    Losses are keyed by cause; time losses in seconds, sample losses in grid samples.
    """

    model_config = ConfigDict(extra="forbid")

    scheduled_s: float
    recording_s: float
    expected_samples: int
    delivered_samples: int
    good_samples: int
    availability: float
    performance: float
    quality: float
    efficiency: float
    loss_seconds: dict[str, float] = Field(default_factory=dict)
    loss_samples: dict[str, int] = Field(default_factory=dict)
