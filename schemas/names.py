"""Ids that become file and folder names (station, session): names, never paths."""

from __future__ import annotations

import re

# one path component: no separator, no `.` or `..`, nothing hidden, no option-like `-x`
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
MAX_NAME = 100  # well inside a file name's 255 bytes, with room for suffixes
NAME_RULE = (f"letters, digits, '_', '.' and '-', starting with a letter or digit, at most "
             f"{MAX_NAME} characters")


def name_problem(value: str) -> str | None:
    """Why `value` cannot be used as a name, or None when it can."""
    if not value:
        return "it is empty"
    if len(value) > MAX_NAME:
        return f"it is {len(value)} characters long"
    if "/" in value or "\\" in value or value.startswith("."):
        return "it is a path, not a name"
    if not re.fullmatch(NAME_PATTERN, value):
        return "it holds characters a name cannot"
    return None
