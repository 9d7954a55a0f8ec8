"""`ApiServer`: the API app on uvicorn, in a thread of the daemon with its own event loop.

The socket is bound here, in the caller's thread, so that a port in use is an `OSError` the
daemon turns into its one-line error and exit code 5 (uvicorn itself would `sys.exit`). One
event loop serves every connection: a stalled client costs a socket, not a thread, and is cut
off after `timeout_s` (`_GuardedProtocol`); every error it answers is JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from collector.errors import CollectorError

BACKLOG = 1024  # connects queue here while the loop accepts (the stdlib server had 5)
MAX_CONNECTIONS = 512  # beyond this, 503 and closed: well inside a 1024 open-file limit
STARTED_WITHIN_S = 30.0


class ApiServer:
    def __init__(self, app: ASGIApp, host: str, port: int, timeout_s: float):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family, backlog=BACKLOG)
        self.port: int = self.socket.getsockname()[1]
        self._started = threading.Event()
        config = uvicorn.Config(_Lifespan(app, self._started), http=_protocol(timeout_s),
                                lifespan="on", log_config=None, access_log=False,
                                backlog=BACKLOG, timeout_keep_alive=max(int(timeout_s), 1),
                                timeout_graceful_shutdown=2, ws="none")
        # uvicorn's own warnings (a malformed request) are answered to the client; its
        # errors still reach stderr
        logging.getLogger("uvicorn.error").setLevel(logging.ERROR)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Serve in a thread; returns once the loop accepts connections."""
        self._thread = threading.Thread(target=self._serve, name="api", daemon=True)
        self._thread.start()
        while not self._started.wait(0.1):
            if not self._thread.is_alive():
                raise ApiServerError("api: the server thread ended while starting "
                                     "(see stderr)")

    def _serve(self) -> None:
        asyncio.run(self._server.serve(sockets=[self.socket]))

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.socket.close()


class ApiServerError(CollectorError):
    """The API server could not start."""


class _Lifespan:
    """Sets `started` when uvicorn's lifespan starts up: its loop is then running."""

    def __init__(self, app: ASGIApp, started: threading.Event):
        self.app = app
        self.started = started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
                self.started.set()
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def _raw_error(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode() + body


def _protocol(timeout_s: float) -> type[H11Protocol]:
    class _GuardedProtocol(H11Protocol):
        """uvicorn's HTTP/1.1 protocol with a deadline for the request's headers, a cap on
        open connections, and JSON for the errors it answers itself."""

        _deadline: asyncio.TimerHandle | None = None
        _heard = False  # bytes of a request arrived since the last response

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if len(self.connections) > MAX_CONNECTIONS:
                transport.write(_raw_error(503, "Service Unavailable",
                                           f"more than {MAX_CONNECTIONS} connections open; "
                                           f"retry shortly"))
                transport.close()
                return
            self._arm()

        def on_response_complete(self) -> None:
            self._heard = False
            super().on_response_complete()
            self._arm()  # the next request on this connection has the same deadline

        def data_received(self, data: bytes) -> None:
            self._heard = True
            super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(timeout_s, self._expired)

        def _expired(self) -> None:
            if self.cycle is not None and not self.cycle.response_complete:
                return  # a request is being served; its body has its own deadline
            if self.transport.is_closing():
                return
            if self._heard:  # an idle keep-alive connection is closed without an answer
                self.transport.write(_raw_error(408, "Request Timeout",
                                                f"no complete request within {timeout_s:g} s"))
            self.transport.close()

        def send_400_response(self, msg: str) -> None:
            self.transport.write(_raw_error(400, "Bad Request",
                                            "malformed HTTP request (request line, headers "
                                            "or Content-Length); nothing was done"))
            self.transport.close()

    return _GuardedProtocol
