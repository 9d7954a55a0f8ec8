"""Loading a station YAML file, applying `--set` overrides, and turning errors into one line."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import psutil
import yaml
from pydantic import ValidationError

from collector.config_errors import problems
from collector.errors import ConfigError
from schemas.station import StationConfig


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping (plain YAML keeps the last one,
    silently dropping the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int | float | bool) and key in seen:
                mark = key_node.start_mark
                raise ConfigError(f"duplicate key {key!r} at line {mark.line + 1}, column "
                                  f"{mark.column + 1}; keep one of them")
            if isinstance(key, str | int | float | bool):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_station(path: str | Path, overrides: list[str] | None = None) -> StationConfig:
    """Read, override and validate a station file; raise `ConfigError` naming what is wrong."""
    path = Path(path)
    raw = _read_yaml(path)
    for item in overrides or []:
        _apply_override(raw, item, path)
    config = validate_station(raw, source=str(path))
    check_station(config, source=str(path))
    return config


def check_station(config: StationConfig, source: str) -> None:
    """What the schema cannot see but would fail later, after devices or Ray were started:
    the output folder, the task class, the object store against this machine's memory."""
    out = Path(config.station.output_dir)
    existing = next((p for p in (out, *out.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ConfigError(f"{source}: station.output_dir {str(out)!r}: {str(existing)!r} is a "
                          "file, not a folder; point output_dir at a folder")
    task = config.episode.task
    if isinstance(task, str) and ":" in task:
        module, _, name = task.partition(":")
        try:
            found = hasattr(importlib.import_module(module), name)
        except Exception as exc:  # a user's module: whatever it raises, it does not load
            raise ConfigError(f"{source}: episode.task {task!r}: cannot import {module!r} "
                              f"({type(exc).__name__}: {exc}); check the module is on "
                              "PYTHONPATH") from None
        if not found:
            raise ConfigError(f"{source}: episode.task {task!r}: module {module!r} has no "
                              f"{name!r}; name the task class as package.module:Class")
    engine = config.engine
    memory_mb = psutil.virtual_memory().total // 2**20
    if engine.kind == "ray" and engine.address is None and engine.object_store_mb > memory_mb:
        raise ConfigError(f"{source}: engine.object_store_mb {engine.object_store_mb}: more "
                          f"than this machine's {memory_mb} MB of memory; use a smaller size")


def validate_station(raw: Any, source: str) -> StationConfig:
    try:
        return StationConfig.model_validate(raw)
    except ValidationError as exc:
        found = problems(exc, raw)
        raise ConfigError("\n".join(f"{source}: {line}" for line in found)) from None


def dump_station(config: StationConfig) -> str:
    """The YAML stored in every episode: the config exactly as the station ran it."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file; pass the path of a station YAML")
    data = path.read_bytes()
    if b"\0" in data:
        raise ConfigError(f"{path}: binary data, not YAML text; pass the path of a station YAML")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as "
                          "UTF-8") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply to be a station file") from None
    except (ValueError, OverflowError, TypeError) as exc:  # e.g. a date YAML cannot represent
        raise ConfigError(f"{path}: YAML value error: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level (station:, devices:, ...)")
    return raw


def _apply_override(raw: dict, item: str, path: Path) -> None:
    """Apply `a.b.c=value`; list items are addressed by index or by their `name`."""
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected path.to.field=value")
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        value = text
    parts = key.split(".")
    node: Any = raw
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            index = _list_index(node, part)
            if index is None:
                raise ConfigError(
                    f"--set {key}: no list item {part!r} in {'.'.join(parts[:depth]) or 'root'}"
                    f" of {path}; use an index or a device name"
                )
            if last:
                node[index] = value
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise ConfigError(f"--set {key}: {'.'.join(parts[:depth])} is not a section")


def _list_index(items: list, part: str) -> int | None:
    if part.lstrip("-").isdigit():
        index = int(part)
        return index if -len(items) <= index < len(items) else None
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == part:
            return i
    return None
