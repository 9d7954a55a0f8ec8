"""The wire between a simulated device and the real driver: a pseudo-terminal or loopback TCP.

`PtyLink` publishes the slave side under a stable path (a symlink, as udev's
/dev/serial/by-id/... does), so unplugging (closing the pty) and replugging (a new pty behind the
same path) look to the driver exactly like a USB serial adapter coming and going.
`TcpLink` serves one client on 127.0.0.1 and is reached as `socket://127.0.0.1:PORT`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import tty
from pathlib import Path


class PtyLink:
    def __init__(self, name: str):
        self._dir = Path(tempfile.mkdtemp(prefix="collector-pty-"))
        self.path = str(self._dir / name)
        self._master: int | None = None
        self._slave: int | None = None

    @property
    def url(self) -> str:
        return self.path

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing: bytes pass untouched from the first one
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        tmp = self.path + ".new"
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.path)

    def unplug(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None

    def write(self, data: bytes) -> int:
        """Bytes accepted; the rest are lost, as a UART overruns when nobody reads."""
        if self._master is None:
            return 0
        try:
            return os.write(self._master, data)
        except (BlockingIOError, OSError):
            return 0

    def read(self) -> bytes:
        if self._master is None:
            return b""
        try:
            return os.read(self._master, 65536)
        except (BlockingIOError, OSError):
            return b""

    def close(self) -> None:
        self.unplug()
        shutil.rmtree(self._dir, ignore_errors=True)


class TcpLink:
    def __init__(self, name: str):
        self.name = name
        self._server: socket.socket | None = None
        self._client: socket.socket | None = None
        self.port = 0
        self.plug()  # bind now: the driver's socket:// URL must be known before it opens

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    @property
    def plugged(self) -> bool:
        return self._server is not None

    def plug(self) -> None:
        if self._server is not None:
            return
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(1)
        server.setblocking(False)
        self.port = server.getsockname()[1]
        self._server = server

    def _accept(self) -> socket.socket | None:
        if self._client is None and self._server is not None:
            try:
                client, _ = self._server.accept()
            except BlockingIOError:
                return None
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._client = client
        return self._client

    def unplug(self) -> None:
        for s in (self._client, self._server):
            if s is not None:
                s.close()
        self._client = self._server = None

    def write(self, data: bytes) -> int:
        client = self._accept()
        if client is None:
            return 0
        try:
            return client.send(data)
        except BlockingIOError:
            return 0
        except OSError:  # the driver went away; wait for it to connect again
            client.close()
            self._client = None
            return 0

    def read(self) -> bytes:
        client = self._accept()
        if client is None:
            return b""
        try:
            return client.recv(65536)
        except (BlockingIOError, OSError):
            return b""

    def close(self) -> None:
        self.unplug()


def make_link(kind: str, name: str) -> PtyLink | TcpLink:
    return PtyLink(name) if kind == "pty" else TcpLink(name)
