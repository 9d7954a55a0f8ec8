"""The control and status API: stdlib `ThreadingHTTPServer`, pydantic bodies, JSON errors.

Every request carries `Authorization: Bearer <token>` when a token is configured (it must be
when the API listens beyond loopback). Bad input gets a 4xx and changes nothing.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pydantic import BaseModel, ValidationError

from collector.daemon.machine import Conflict, Controller
from collector.daemon.metrics import StationMetrics
from schemas.api import ApiError, Empty, EndWithReason, StartEpisode, Status

MAX_BODY = 64 * 1024

# POST path -> (command, body model)
COMMANDS: dict[str, tuple[str, type[BaseModel]]] = {
    "/episodes/start": ("start", StartEpisode),
    "/episodes/stop": ("stop", Empty),
    "/episodes/reject": ("reject", EndWithReason),
    "/episodes/abort": ("abort", EndWithReason),
    "/pause": ("pause", Empty),
    "/resume": ("resume", Empty),
    "/shutdown": ("shutdown", Empty),
}
GETS = ("/status", "/metrics")


class BadRequest(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, token: str | None, controller: Controller,
                 status: Callable[[], Status], log=None):
        self.token = token
        self.controller = controller
        self.status = status
        self.metrics = StationMetrics()
        self.log = log
        super().__init__((host, port), Handler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="api", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        try:
            self._authorize()
            if path in GETS:
                if method != "GET":
                    raise BadRequest(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes GET")
                self._drain_body()
                if path == "/status":
                    self._json(HTTPStatus.OK, self.server.status())
                else:
                    text = self.server.metrics.render(self.server.status())
                    self._send(HTTPStatus.OK, text, "text/plain; version=0.0.4; charset=utf-8")
                return
            if path not in COMMANDS:
                raise BadRequest(HTTPStatus.NOT_FOUND, f"no endpoint {path}; see GET /status, "
                                 f"GET /metrics, POST {', '.join(COMMANDS)}")
            if method != "POST":
                raise BadRequest(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes POST")
            name, model = COMMANDS[path]
            body = self._body(model)
            try:
                accepted = self.server.controller.command(name, body)
            except Conflict as exc:
                raise BadRequest(HTTPStatus.CONFLICT, str(exc)) from None
            if self.server.log:
                self.server.log("api_command", command=name, **body.model_dump(exclude_none=True))
            self._json(HTTPStatus.ACCEPTED, accepted)
        except BadRequest as exc:
            self._json(exc.status, ApiError(error=str(exc)))

    def _authorize(self) -> None:
        token = self.server.token
        if token is None:
            return
        given = self.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            self._drain_body()
            raise BadRequest(HTTPStatus.UNAUTHORIZED,
                             "missing or wrong token: send 'Authorization: Bearer <api token>'")

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise BadRequest(HTTPStatus.BAD_REQUEST, "Content-Length is not a number") from None
        if length > MAX_BODY:
            self.close_connection = True
            raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                             f"body of {length} bytes; at most {MAX_BODY}")
        return self.rfile.read(length) if length > 0 else b""

    def _drain_body(self) -> None:
        try:
            self._read_body()
        except BadRequest:
            self.close_connection = True

    def _body(self, model: type[BaseModel]) -> BaseModel:
        raw = self._read_body().strip()
        if not raw:
            raw = b"{}"
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error.get("loc", ())) or "body"
            message = "unknown field" if error.get("type") == "extra_forbidden" else error["msg"]
            raise BadRequest(HTTPStatus.UNPROCESSABLE_ENTITY, f"{where}: {message}") from None

    def _json(self, status: HTTPStatus, model: BaseModel) -> None:
        self._send(status, model.model_dump_json(), "application/json")

    def _send(self, status: HTTPStatus, text: str, content_type: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if status == HTTPStatus.UNAUTHORIZED:
            self.send_header("WWW-Authenticate", 'Bearer realm="collector"')
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:
        pass  # requests are logged as structured `api_command` events instead
