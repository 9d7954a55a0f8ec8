"""What an episode file stores about itself: the root attributes and the efficiency accounts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.layout import FILL_RULE

FORMAT: Final = "collector.episode"
FORMAT_VERSION = 2  # 2: video-coded cameras (/videos); 1 is still read

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


def flatten_accounts(accounts: EfficiencyAccounts) -> dict[str, float | int]:
    """HDF5 attributes are flat: losses become `loss_seconds.<cause>` / `loss_samples.<cause>`."""
    data = accounts.model_dump()
    flat = {k: v for k, v in data.items() if not isinstance(v, dict)}
    for group in ("loss_seconds", "loss_samples"):
        for cause, value in data[group].items():
            flat[f"{group}.{cause}"] = value
    return flat


def unflatten_accounts(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of `flatten_accounts`, for reading `/efficiency` back into the model."""
    out: dict[str, Any] = {"loss_seconds": {}, "loss_samples": {}}
    for key, value in attrs.items():
        group, _, cause = key.partition(".")
        if cause and group in out:
            out[group][cause] = value
        else:
            out[key] = value
    return out
