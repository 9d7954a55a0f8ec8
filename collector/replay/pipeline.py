"""Replay to the pipeline: the episode's streams become `replay` devices of a station again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from collector.config import _apply_override, load_station, validate_station
from collector.replay.source import ReplayError, TickRange
from collector.stages.execution import EpisodeSummary
from collector.station import Station
from collector.storage.reader import Episode
from schemas.devices import ReplayConfig
from schemas.station import StationConfig

FUTURE_NS = 3600 * 1_000_000_000  # stepped replays run on a grid an hour ahead of the host clock


def derived_config(episode: Episode, ticks: TickRange, start_s: float, end_s: float | None,
                   overrides: list[str] | None = None) -> StationConfig:
    """The stored rig config with every device, and the action stream, replaced by a replay
    device of the same name; the episode lasts exactly the replayed ticks."""
    text = episode.metadata.get("rig_config")
    if not text:
        raise ReplayError(f"{episode.path}: no rig_config stored; pass a station CONFIG to "
                          "replay through")
    raw = yaml.safe_load(text)
    kinds = episode.streams()
    devices = []
    for name, kind in kinds.items():
        original: dict[str, Any] = next(
            (d for d in raw.get("devices", []) if d.get("name") == name), {})
        devices.append({
            "name": name, "type": "replay", "episode": str(episode.path),
            "start_s": start_s, "end_s": end_s, "align": original.get("align"),
            "kind": _kind(kind, original),
        })
    raw["devices"] = devices
    hz = float(raw.get("episode", {}).get("control_hz") or episode.metadata["control_hz"])
    raw.setdefault("episode", {})["duration_s"] = len(ticks) / hz
    for item in overrides or []:  # new settings for the re-processing, as `record --set`
        _apply_override(raw, item, episode.path)
    return validate_station(raw, source=f"{episode.path} rig_config")


def user_config(path: str, overrides: list[str], episode: Episode, start_s: float,
                end_s: float | None) -> StationConfig:
    """A station file naming replay devices; those without `episode:` play this episode."""
    config = load_station(path, overrides)
    replays = [d for d in config.devices if isinstance(d, ReplayConfig)]
    if not replays:
        raise ReplayError(f"{path}: no device of type replay; name the streams to replay "
                          "(type: replay), or leave CONFIG out to derive it from the episode")
    for device in replays:
        if device.episode is None:
            device.episode = str(episode.path)
        if start_s or end_s is not None:
            device.start_s, device.end_s = start_s, end_s
    return config


def replay_to_pipeline(config: StationConfig, realtime: bool = False) -> EpisodeSummary:
    """Record one episode from the replay devices, through the whole pipeline.

    realtime: the station's own paced loop, samples emitted at their shifted capture times.
    Otherwise stepped: no sleeping, each device read is the next chunk of episode time, so the
    result does not depend on how loaded the machine is (the mode for regression tests).
    """
    station = Station(config, realtime=realtime, warm_up=False)  # it would eat the replay
    try:
        return station.record(1)[0] if realtime else _record_stepped(station)
    finally:
        station.close()


def _record_stepped(station: Station) -> EpisodeSummary:
    """The station's episode without the waiting: the grid is placed `FUTURE_NS` ahead of the
    host clock so no tick is closed for lateness before its samples were handed out."""
    run = station.begin_episode(lead_ns=FUTURE_NS)
    return station.run_episode(run, lambda: None, wait=False)


def with_overrides(config: StationConfig, output_dir: str | Path | None,
                   engine: str | None) -> StationConfig:
    data = config.model_dump(mode="json")
    if output_dir is not None:
        data["station"]["output_dir"] = str(output_dir)
    if engine:
        data["engine"]["kind"] = engine
    return validate_station(data, source="replay config")


def _kind(kind: str, original: dict) -> str:
    if kind in ("camera", "action"):
        return kind
    if original.get("type") == "replay" and original.get("kind"):
        return original["kind"]
    return "arm" if "arm" in str(original.get("type", "")) else "sensor"
