"""Replay to the pipeline: the episode's streams become `replay` devices of a station again."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from pathlib import Path

import yaml

from collector import __version__
from collector.batch import EpisodeClock
from collector.config import _apply_override, dump_station, load_station, validate_station
from collector.replay.source import ReplayError, TickRange
from collector.stages.computation import encoding_params
from collector.stages.execution import EpisodePlan, EpisodeSummary
from collector.stages.perception import LATE_NS
from collector.station import Station, image_shapes
from collector.storage import layout as L
from collector.storage.reader import Episode
from schemas.devices import ReplayConfig
from schemas.episode import EpisodeMetadata
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
        original = next((d for d in raw.get("devices", []) if d.get("name") == name), {})
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
    station = Station(config, realtime=realtime)
    try:
        return station.record(1)[0] if realtime else _record_stepped(station)
    finally:
        station.close()


def _record_stepped(station: Station) -> EpisodeSummary:
    """`Station.record_episode` without the waiting: the grid is placed `FUTURE_NS` ahead of
    the host clock so no tick is closed for lateness before its samples were handed out."""
    config = station.config
    ep = config.episode
    started_at = dt.datetime.now(dt.timezone.utc)
    episode_id = f"{config.station.id}-{started_at:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    station.engine.begin_episode(EpisodePlan(
        episode_id=episode_id, final_dir=station.output / f"{started_at:%Y-%m-%d}",
        rejected_dir=station.output / L.REJECTED_DIR, streams=station.layouts,
        image_shapes=image_shapes(config, station.infos),
        image_encoding=encoding_params(config.pipeline.images), storage=config.storage,
    ))
    station.engine.discard()
    ticks = round(ep.duration_s * ep.control_hz)
    clock = EpisodeClock(episode_id, time.monotonic_ns() + FUTURE_NS,
                         round(1e9 / ep.control_hz), ticks)
    station.engine.begin_task(clock.start_ns, ep.duration_s)
    chunk_ns = int(ep.chunk_ms * 1e6)
    reads = -(-(clock.end_ns + LATE_NS - clock.start_ns) // chunk_ns)
    for index in range(reads):
        station.engine.submit(clock, index, index == reads - 1)
    succeeded = station.engine.end_task()
    metadata = EpisodeMetadata(
        episode_id=episode_id, station_id=config.station.id, task=ep.task,
        operator=config.station.operator, started_at=started_at.isoformat(),
        ended_at=dt.datetime.now(dt.timezone.utc).isoformat(),
        outcome="success" if succeeded else "failure", control_hz=ep.control_hz,
        rig_config=dump_station(config), software_version=__version__,
    )
    return station.engine.finish_episode(metadata, ticks / ep.control_hz,
                                         {"startup": station.engine.startup_s})


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
