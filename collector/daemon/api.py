"""The control and status API: a Starlette (ASGI) app, served by `collector/daemon/server.py`,
and the operator page (`collector/daemon/console.py`) beside it.

Every request carries `Authorization: Bearer <token>` when a token is configured (it must be
when the API listens beyond loopback), or the cookie the operator page gets: a browser cannot
set that header on a page load, so `/?token=<token>` once answers with an HttpOnly,
SameSite=Strict cookie and a redirect to `/` (the token leaves the address bar). Bad input
gets a 4xx with `{"error": "..."}`, always JSON, and changes nothing. The work of a request
(the controller's lock, status, metrics) runs in Starlette's thread pool, so a slow one never
holds the event loop that serves the rest.
"""

from __future__ import annotations

import hmac
import traceback
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request, cookie_parser
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from collector.daemon.bodies import ApiFault, parse_body, read_body
from collector.daemon.console import ConsoleSource, EventHub, console_routes
from collector.daemon.logs import JsonLog
from collector.daemon.machine import Conflict, Controller
from collector.daemon.metrics import StationMetrics
from collector.daemon.openapi import openapi_document
from schemas.api import ApiError, Empty, EndWithReason, StartEpisode, Status

# POST path -> (command, body model)
COMMANDS: dict[str, tuple[str, type[BaseModel]]] = {
    "/episodes/start": ("start", StartEpisode),
    "/episodes/stop": ("stop", Empty),
    "/episodes/accept": ("accept", Empty),
    "/episodes/reject": ("reject", EndWithReason),
    "/episodes/abort": ("abort", EndWithReason),
    "/pause": ("pause", Empty),
    "/resume": ("resume", Empty),
    "/shutdown": ("shutdown", Empty),
}
GETS = ("/status", "/metrics", "/openapi.json", "/", "/events")
TOKEN_COOKIE = "collector_token"
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class ApiContext:
    """What the endpoints act on."""

    token: str | None
    controller: Controller
    status: Callable[[], Status]
    log: JsonLog | None = None
    timeout_s: float = 10.0  # the whole body must arrive within this
    console: ConsoleSource | None = None  # the operator page; None: the API alone
    hub: EventHub | None = None  # set by `build_app` when there is a page


def build_app(ctx: ApiContext) -> ASGIApp:
    metrics = StationMetrics()
    document = openapi_document(COMMANDS, secured=ctx.token is not None,
                                page=ctx.console is not None)

    async def status(request: Request) -> Response:
        return _json(HTTPStatus.OK, await run_in_threadpool(ctx.status))

    async def metrics_text(request: Request) -> Response:
        console = ctx.console
        text = await run_in_threadpool(lambda: metrics.render(
            ctx.status(), console.free_gb() if console else None,
            console.guard_gb if console else None))
        return Response(text, media_type=METRICS_TYPE)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    def command(name: str, model: type[BaseModel]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            body = parse_body(await read_body(request, ctx.timeout_s), model)
            try:
                accepted = await run_in_threadpool(ctx.controller.command, name, body)
            except Conflict as exc:
                raise ApiFault(HTTPStatus.CONFLICT, str(exc)) from None
            if ctx.log:
                ctx.log("api_command", command=name, **body.model_dump(exclude_none=True))
            return _json(HTTPStatus.ACCEPTED, accepted)
        return endpoint

    routes = [Route("/status", status, methods=["GET"]),
              Route("/metrics", metrics_text, methods=["GET"]),
              Route("/openapi.json", openapi, methods=["GET"])]
    routes += [Route(path, command(name, model), methods=["POST"])
               for path, (name, model) in COMMANDS.items()]
    if ctx.console is not None:
        page_routes, ctx.hub = console_routes(ctx.console)
        routes += page_routes

    def server_error(request: Request, exc: Exception) -> Response:
        if ctx.log:  # a bug: its traceback goes to the log, the client gets one line
            ctx.log.error("api_error", path=request.url.path, message=repr(exc),
                          traceback=traceback.format_exc())
        return _error(HTTPStatus.INTERNAL_SERVER_ERROR,
                      f"internal error ({type(exc).__name__}); see the daemon's log")

    app = Starlette(routes=routes, exception_handlers={
        ApiFault: _fault, HTTPException: _http_error, Exception: server_error})
    app.router.redirect_slashes = False  # `/status/` is `/status`, see `_Normalize`
    return _Normalize(_RequireToken(app, ctx.token))


class _RequireToken:
    """Refuses, before routing, any request without the configured token: in the
    `Authorization: Bearer` header or the page's cookie. `/?token=` sets the cookie."""

    def __init__(self, app: ASGIApp, token: str | None):
        self.app = app
        self.token = token.encode() if token is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        page = scope["path"].rstrip("/") in ("", "/static/console.css", "/static/console.js")
        if not (page and "token" in query) and self._carried(scope):
            await self.app(scope, receive, send)
            return
        if page and "token" in query:  # even with the cookie: the token leaves the address
            if hmac.compare_digest(query["token"][-1].encode(), self.token):
                response: Response = RedirectResponse("/", status_code=HTTPStatus.SEE_OTHER)
                response.set_cookie(TOKEN_COOKIE, self.token.decode(), httponly=True,
                                    samesite="strict", path="/")
            else:
                response = _refused_page("wrong token")
        elif page:
            response = _refused_page("this station needs its API token")
        else:
            response = _error(HTTPStatus.UNAUTHORIZED, "missing or wrong token: send "
                              "'Authorization: Bearer <api token>'")
            response.headers["WWW-Authenticate"] = 'Bearer realm="collector"'
        await response(scope, receive, send)

    def _carried(self, scope: Scope) -> bool:
        assert self.token is not None
        headers = dict(scope["headers"])
        bearer = hmac.compare_digest(headers.get(b"authorization", b""), b"Bearer " + self.token)
        cookie = cookie_parser(headers.get(b"cookie", b"").decode("latin-1")).get(TOKEN_COOKIE)
        return bearer | hmac.compare_digest((cookie or "").encode(), self.token)


def _refused_page(why: str) -> Response:
    """The page's 401, in words a browser shows: how to get in."""
    return HTMLResponse(
        "<!doctype html><title>collector: token needed</title><body style='font:16px "
        f"sans-serif;margin:2em'><h1>401: {why}</h1><p id='refused'>Open "
        "<code>http://&lt;station&gt;:&lt;port&gt;/?token=&lt;api token&gt;</code> once "
        "(the token is in the station's api.token or the variable named by api.token_env); "
        "the page then keeps it in a cookie.</p></body>",
        status_code=HTTPStatus.UNAUTHORIZED, headers={"Cache-Control": "no-store"})


class _Normalize:
    """`/status/` and `/status` are one endpoint, served without a redirect."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "path": scope["path"].rstrip("/") or "/"}
        await self.app(scope, receive, send)


def _fault(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiFault)
    return _error(exc.status, str(exc))


def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such path, wrong method), in the API's words."""
    assert isinstance(exc, HTTPException)
    path = request.url.path.rstrip("/") or "/"
    if exc.status_code == HTTPStatus.NOT_FOUND:
        message = (f"no endpoint {path}; see GET {', GET '.join(GETS)}, "
                   f"POST {', '.join(COMMANDS)}")
    elif exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        message = f"{path} takes {'GET' if path in GETS else 'POST'}"
    else:
        message = exc.detail
    response = _error(HTTPStatus(exc.status_code), message)
    response.headers.update(exc.headers or {})
    return response


def _json(status: HTTPStatus, model: BaseModel) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


def _error(status: HTTPStatus, message: str) -> Response:
    # An error may leave the body unread: the connection is not reused after it.
    response = _json(status, ApiError(error=message))
    response.headers["Connection"] = "close"
    return response
