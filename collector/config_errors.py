"""Pydantic's validation errors of a station file, as one line per problem in the user's words.

`devices[cam_high].fps: must be > 0` rather than `devices.0.sim_camera.fps: Input should be
greater than 0`: devices are named by their `name`, union tags are left out of the location, and
every message says what the value must be.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

import schemas.station  # noqa: F401  (its models join the union labels below)
from schemas.devices import DEVICE_TYPES, StrictModel

SCALAR_BRANCHES = frozenset({"str", "int", "float", "bool"})  # labels of `str | Model` unions
PATTERN_WORDS = {
    r"^[A-Za-z][A-Za-z0-9_]*$": "must start with a letter and hold only letters, digits and _",
    r"^[A-Za-z0-9][A-Za-z0-9_.-]*$": "must start with a letter or digit and hold only letters, "
                                     "digits and _ . -",
}
KIND_WORDS = {
    "int_parsing": "must be a whole number", "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number", "float_type": "must be a number",
    "bool_parsing": "must be true or false", "bool_type": "must be true or false",
    "string_type": "must be text", "list_type": "must be a list",
    "dict_type": "must be a mapping of fields", "model_type": "must be a mapping of fields",
    "model_attributes_type": "must be a mapping of fields",
    "tuple_type": "must be a list",
}


def _model_names(model: type[BaseModel]) -> set[str]:
    names = {model.__name__}
    for sub in model.__subclasses__():
        names |= _model_names(sub)
    return names


# what pydantic puts in an error's location for a union member: a tag or a type's name
UNION_LABELS = frozenset(DEVICE_TYPES | SCALAR_BRANCHES | _model_names(StrictModel))
BOUNDS = {"greater_than": ("gt", ">"), "greater_than_equal": ("ge", ">="),
          "less_than": ("lt", "<"), "less_than_equal": ("le", "<=")}


def problems(exc: ValidationError, raw: Any) -> list[str]:
    """Every problem of `exc`, each `where: what it must be`, in the order of the file."""
    errors = exc.errors()
    found: dict[str, list[str]] = {}  # location -> its messages, in the order met
    for error in errors:
        if _other_branch_went_deeper(error, errors):
            continue  # `task: {waypoints: ...}` failed as a mapping; its failing as text is noise
        where = _location(error.get("loc", ()), raw, error.get("type", ""))
        messages = found.setdefault(where, [])
        if (message := _message(error)) not in messages:
            messages.append(message)
    out = []
    for where, messages in found.items():
        message = _either(messages)
        # a check that names its own fields (`api.host ... is not a loopback address`)
        named = not where or message.startswith((f"{where}.", f"{where} "))
        out.append(message if named else f"{where}: {message}")
    return out


def _either(messages: list[str]) -> str:
    """One field that failed every branch of a union: `must be text or a mapping (got 5)`."""
    if len(messages) == 1:
        return messages[0]
    tails = {m[m.rfind(" (got "):] if " (got " in m else "" for m in messages}
    if len(tails) == 1 and all(m.startswith("must be ") for m in messages):
        tail = tails.pop()
        kinds = [m.removeprefix("must be ").removesuffix(tail) if tail else
                 m.removeprefix("must be ") for m in messages]
        return f"must be {' or '.join(kinds)}{tail}"
    return "; ".join(messages)


def _message(error: ErrorDetails) -> str:
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    got = error.get("input")
    if kind == "extra_forbidden":
        return "unknown field; check the spelling (collector config schema lists the fields)"
    if kind in BOUNDS:
        key, sign = BOUNDS[kind]
        return f"must be {sign} {_number(ctx.get(key))}{_got(got)}"
    if kind == "missing":
        return "required, but missing"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}{_got(got)}"
    if kind == "union_tag_invalid":
        return f"unknown type {ctx.get('tag')!r}; valid types: {', '.join(sorted(DEVICE_TYPES))}"
    if kind == "union_tag_not_found":
        return f"required, but missing: one of {', '.join(sorted(DEVICE_TYPES))}"
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern", "")
        return f"{PATTERN_WORDS.get(pattern, f'must match {pattern}')}{_got(got)}"
    if kind in ("too_short", "too_long"):
        least = kind == "too_short"
        count = ctx.get("min_length" if least else "max_length")
        return f"needs at {'least' if least else 'most'} {count} item{'s' * (count != 1)}"
    if kind in ("string_too_short", "string_too_long"):
        least = kind == "string_too_short"
        count = ctx.get("min_length" if least else "max_length")
        return f"must be at {'least' if least else 'most'} {count} characters{_got(got)}"
    if kind in KIND_WORDS:
        return f"{KIND_WORDS[kind]}{_got(got)}"
    message = str(error.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message.replace("Input should be", "must be").replace("Input should", "must")


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _got(value: Any) -> str:
    if isinstance(value, dict | list) or value is None:
        return ""
    return f" (got {value!r})"


def _location(loc: tuple, raw: Any, kind: str) -> str:
    """`('devices', 0, 'sim_camera', 'fps')` -> `devices[cam_high].fps`."""
    out, node = "", raw
    for part in loc:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and -len(node) <= part < len(node) else None
            name = node.get("name") if isinstance(node, dict) else None
            out += f"[{name}]" if isinstance(name, str) and name else f"[{part}]"
            continue
        if part in UNION_LABELS and not (isinstance(node, dict) and part in node):
            continue  # a union branch (a device type, str, TaskSequence): not in the file
        node = node.get(part) if isinstance(node, dict) else None
        out += f".{part}" if out else str(part)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        out += ".type"
    return out


def _other_branch_went_deeper(error: ErrorDetails, errors: list[ErrorDetails]) -> bool:
    """An error of a scalar branch of a union, where another branch of the same field failed
    on something inside the value: the user wrote the structure, not the scalar."""
    loc = tuple(error.get("loc", ()))
    label = next((i for i, p in enumerate(loc) if p in SCALAR_BRANCHES), None)
    if label is None:
        return False
    prefix = loc[:label]
    return any(tuple(e.get("loc", ()))[:label] == prefix and len(e.get("loc", ())) > label + 1
               and e is not error for e in errors)
