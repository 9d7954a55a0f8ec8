"""Loading a station YAML file, applying `--set` overrides, and turning errors into one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from collector.config_errors import problems
from collector.errors import ConfigError
from schemas.station import StationConfig


def load_station(path: str | Path, overrides: list[str] | None = None) -> StationConfig:
    """Read, override and validate a station file; raise `ConfigError` naming what is wrong."""
    path = Path(path)
    raw = _read_yaml(path)
    for item in overrides or []:
        _apply_override(raw, item, path)
    return validate_station(raw, source=str(path))


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
    try:
        raw = yaml.safe_load(path.read_text())
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
