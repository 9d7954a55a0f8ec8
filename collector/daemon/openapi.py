"""`GET /openapi.json`: the API's OpenAPI 3.1 document, built from the same route table and
pydantic models the endpoints use, so it cannot drift from what they accept and answer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from collector import __version__
from schemas.api import Accepted, ApiError, Status

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
                     secured: bool) -> dict[str, Any]:
    bodies = {model for _, model in commands.values()}
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        *((m, "validation") for m in sorted(bodies, key=lambda m: m.__name__)),
        *((m, "serialization") for m in (Accepted, ApiError, Status))]
    _, schemas = models_json_schema(models, ref_template=REF)
    paths: dict[str, Any] = {
        "/status": {"get": _operation("status", "the station's state, devices and accounts",
                                      {"200": _answer("the status", "Status")}, secured)},
        "/metrics": {"get": _operation("metrics", "Prometheus text exposition", {"200": {
            "description": "the metrics",
            "content": {"text/plain": {"schema": {"type": "string"}}}}}, secured)},
    }
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
