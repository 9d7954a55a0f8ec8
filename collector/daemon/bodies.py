"""Request bodies of the control API: read within limits, parse as JSON, validate against the
endpoint's model, and say in one readable line what is wrong. Nothing here executes a command:
a body that fails any step is answered with its `ApiFault` and the command never runs."""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

from collector.config_errors import problems

MAX_BODY = 64 * 1024
MAX_DEPTH = 32  # the bodies are flat objects; deeper nesting is an attack, not a request


class ApiFault(Exception):
    """A request that is answered with an error and changes nothing."""

    def __init__(self, status: HTTPStatus, message: str, close: bool = False):
        super().__init__(message)
        self.status = status
        self.close = close  # the connection cannot carry another request (body left unread)


async def read_body(request: Request, timeout_s: float) -> bytes:
    """The whole body, at most `MAX_BODY` bytes, arriving within `timeout_s`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise ApiFault(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                       f"body of {declared} bytes; at most {MAX_BODY}", close=True)
    try:
        return await asyncio.wait_for(_collect(request), timeout_s)
    except asyncio.TimeoutError:
        raise ApiFault(HTTPStatus.REQUEST_TIMEOUT,
                       f"the body did not arrive within {timeout_s:g} s (shorter than its "
                       f"Content-Length?); nothing was done", close=True) from None
    except ClientDisconnect:
        # nobody is left to answer; the command is not run
        raise ApiFault(HTTPStatus.BAD_REQUEST, "the client closed the connection before "
                       "the whole body arrived; nothing was done", close=True) from None


async def _collect(request: Request) -> bytes:
    parts, size = [], 0
    async for part in request.stream():  # chunked bodies declare no length: count them too
        size += len(part)
        if size > MAX_BODY:
            raise ApiFault(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"body longer than {MAX_BODY} bytes", close=True)
        parts.append(part)
    return b"".join(parts)


def parse_body(raw: bytes, model: type[BaseModel]) -> BaseModel:
    """`raw` as an instance of `model`: 400 when it is not a JSON object, 422 when a field
    is wrong. No body, or only whitespace, is `{}`."""
    raw = raw.strip() or b"{}"
    if _depth(raw) > MAX_DEPTH:
        raise ApiFault(HTTPStatus.BAD_REQUEST,
                       f"body is not JSON this API takes: nested deeper than {MAX_DEPTH} levels")
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise ApiFault(HTTPStatus.BAD_REQUEST, f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiFault(HTTPStatus.BAD_REQUEST,
                       f"body must be a JSON object, not {type(data).__name__}")
    try:
        return model.model_validate(data, strict=True)  # no "5" for 5, no true for 1.0
    except ValidationError as exc:
        raise ApiFault(HTTPStatus.UNPROCESSABLE_ENTITY, describe(exc, data, model)) from None


def _depth(raw: bytes) -> int:
    """How deep `raw` nests, counting brackets outside strings, in one pass: the JSON parser
    recurses, so depth is checked before it runs."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    break
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def describe(exc: ValidationError, data: dict[str, Any], model: type[BaseModel]) -> str:
    """Every problem in one line, `field: what it must be (got ...)`, in the words the station
    file's errors use (`collector/config_errors.py`)."""
    if any(e["type"] == "extra_forbidden" for e in exc.errors()):
        unknown = ", ".join(str(e["loc"][0]) for e in exc.errors()
                            if e["type"] == "extra_forbidden")
        return (f"{unknown}: unknown field; this endpoint takes "
                f"{', '.join(model.model_fields) or 'no fields'}")
    return "; ".join(problems(exc, data))
