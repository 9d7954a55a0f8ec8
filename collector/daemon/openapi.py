"""`GET /openapi.json`: the API's OpenAPI 3.1 document, built from the same route table and
pydantic models the endpoints use, so it cannot drift from what they accept and answer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from collector import __version__
from schemas.api import Accepted, ApiError, Status
from schemas.console import ConsoleSnapshot

REF = "#/components/schemas/{model}"
# what any command may answer besides 202, and why
COMMAND_ERRORS = {
    "400": "the body is not a JSON object (or the client left before sending it all)",
    "408": "the body did not arrive within api.timeout_s",
    "413": "the body is longer than 64 KiB",
    "422": "a field is missing, unknown or out of range",
}
CONFLICT = {"409": "the command does not apply in the station's state"}
UNAUTHORIZED = {"401": "missing or wrong bearer token"}


def openapi_document(commands: dict[str, tuple[str, type[BaseModel]]],
                     secured: bool, page: bool = False) -> dict[str, Any]:
    """`page`: the operator page is served, and with it its data routes (the feed, previews,
    downloads); the page itself (`/`, `/static/*`) is HTML for a browser, not an API."""
    bodies = {model for _, model in commands.values()}
    answers = (Accepted, ApiError, Status, *((ConsoleSnapshot,) if page else ()))
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        *((m, "validation") for m in sorted(bodies, key=lambda m: m.__name__)),
        *((m, "serialization") for m in answers)]
    _, schemas = models_json_schema(models, ref_template=REF)
    paths: dict[str, Any] = {
        "/status": {"get": _operation("status", "the station's state, devices and accounts",
                                      {"200": _answer("the status", "Status")}, secured)},
        "/metrics": {"get": _operation("metrics", "Prometheus text exposition", {"200": {
            "description": "the metrics",
            "content": {"text/plain": {"schema": {"type": "string"}}}}}, secured)},
    }
    if page:
        paths |= _page_data(secured)
    for path, (name, model) in commands.items():
        errors = {**COMMAND_ERRORS, **({} if name == "shutdown" else CONFLICT)}
        op = _operation(name, (model.__doc__ or name).strip().splitlines()[0],
                        {"202": _answer("accepted; the state machine acts on it at its next "
                                        "step", "Accepted"),
                         **{code: _answer(why, "ApiError") for code, why in errors.items()}},
                        secured)
        required = any(f.is_required() for f in model.model_fields.values())
        op["requestBody"] = {"required": required, "content": {"application/json": {
            "schema": {"$ref": REF.format(model=model.__name__)}}}}
        paths[path] = {"post": op}
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Collector station daemon", "version": __version__},
        "paths": paths,
        "components": {"schemas": schemas.get("$defs", {})},
    }
    if secured:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http",
                                                                "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
    return document


def _operation(name: str, summary: str, responses: dict[str, Any],
               secured: bool) -> dict[str, Any]:
    if secured:
        responses = {**responses, **{c: _answer(w, "ApiError") for c, w in UNAUTHORIZED.items()}}
    return {"operationId": name, "summary": summary, "responses": responses}


def _answer(description: str, model: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {
        "schema": {"$ref": REF.format(model=model)}}}}


def _page_data(secured: bool) -> dict[str, Any]:
    """The routes the operator page reads, which a script may read as well."""
    missing = {"404": _answer("no such preview or episode (the message says why)", "ApiError")}
    return {
        "/events": {"get": _operation(
            "events", "the operator page's live feed: server-sent events", {
                "200": {"description": (
                    "an endless text/event-stream: a few times a second an `event: snapshot` "
                    "whose `data:` line is one ConsoleSnapshot as JSON (x-event-data), and a "
                    "`: keep-alive` comment when nothing else was sent for 10 s. A client "
                    "that falls 2 s behind is cut off: reconnect (the stream's `retry:` says "
                    "after how long)"),
                    "content": {"text/event-stream": {
                        "schema": {"type": "string"},
                        "x-event-data": {"$ref": REF.format(model="ConsoleSnapshot")}}}},
                "503": _answer("too many pages are open", "ApiError")}, secured)},
        "/previews/{camera}.jpg": {"get": {
            **_operation("preview", "a camera's latest preview: its newest frame, downscaled, "
                         "taken while a feed is open", {
                             "200": {"description": "the JPEG; X-Preview-Seq: its number",
                                     "content": {"image/jpeg": {"schema": {
                                         "type": "string", "format": "binary"}}}},
                             **missing}, secured),
            "parameters": [_path_parameter("camera", "the camera's stream name")]}},
        "/downloads/{episode_id}.h5": {"get": {
            **_operation("download", "one of this session's recent episodes, as committed", {
                "200": {"description": "the episode file",
                        "content": {"application/x-hdf5": {"schema": {
                            "type": "string", "format": "binary"}}}},
                **missing}, secured),
            "parameters": [_path_parameter("episode_id", "as in the feed's `recent`")]}},
    }


def _path_parameter(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string"}}
