"""The control API under attack, from outside: a real `collector run` subprocess, real HTTP
(raw sockets for the malformed requests), schemathesis against its own OpenAPI document."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from tests.conftest import SIM_CONFIG, run_cli
from tests.daemon_helpers import Daemon, small_station

TIMEOUT_S = 1.0  # api.timeout_s for these daemons: stalled clients are cut off quickly


def api_station(tmp_path: Path, **extra: str) -> list[str]:
    return small_station(tmp_path, **{"api.timeout_s": str(TIMEOUT_S), **extra})


def raw(daemon: Daemon, data: bytes, half_close: bool = False) -> tuple[int, dict]:
    """Send `data` as it is; the status and JSON body of the answer (0, {} when none)."""
    port = int(daemon.base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answer = read_all(sock)
    if not answer:
        return 0, {}
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"application/json" in head.lower(), answer  # never HTML, never plain text
    return int(head.split()[1]), json.loads(body)


def read_all(sock: socket.socket) -> bytes:
    parts = []
    while part := sock.recv(65536):
        parts.append(part)
    return b"".join(parts)


def post(path: str, body: bytes, length: int | str | None = None) -> bytes:
    length = len(body) if length is None else length
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode() + body


def assert_untouched(daemon: Daemon, tmp_path: Path) -> None:
    status = daemon.status()
    assert status["state"] == "idle" and not status["paused"], status
    assert status["episodes"] == {} and not status["shutdown_requested"]
    assert status["current_episode"] is None
    assert not list(tmp_path.rglob("*.h5*"))


@pytest.mark.slow
def test_commands_are_serialized_against_the_state_machine(tmp_path):
    daemon = Daemon(api_station(tmp_path), "--mode", "manual")
    try:
        daemon.wait_for(lambda s: s["state"] == "idle", what="idle")
        # start, start, stop, back to back: one episode, stopped, kept as truncated
        for n in range(1, 4):
            assert daemon.post("/episodes/start")[0] == 202
            code, body = daemon.post("/episodes/start")
            assert code == 409 and ("already starting" in body["error"]
                                    or "recording" in body["error"]), body
            code, body = daemon.post("/episodes/stop")
            assert code == 202, body
            status = daemon.wait_for(lambda s, n=n: sum(s["episodes"].values()) == n
                                     and s["state"] == "idle", what=f"{n} episodes")
            assert status["episodes"] == {"truncated": n}
            assert "/episodes/stop" in status["last_episode"]["reason"]

        # twenty clients start at once: exactly one is accepted
        codes: list[int] = []
        gate = threading.Barrier(20)

        def start() -> None:
            gate.wait()
            codes.append(daemon.post("/episodes/start")[0])

        threads = [threading.Thread(target=start) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(codes) == [202] + [409] * 19
        daemon.wait_for(lambda s: s["state"] == "recording", what="recording")
        assert daemon.post("/episodes/stop")[0] == 202
        daemon.wait_for(lambda s: sum(s["episodes"].values()) == 4, what="4 episodes")
        assert daemon.post("/shutdown")[0] == 202
        assert daemon.wait() == 0, daemon.stderr_tail()
    finally:
        daemon.kill()
    episodes = [p for p in tmp_path.rglob("*.h5")]
    assert len(episodes) == 4  # no duplicate episode from any race


def test_malformed_requests_get_json_errors_and_change_nothing(tmp_path):
    daemon = Daemon(api_station(tmp_path), "--mode", "manual")
    try:
        daemon.wait_for(lambda s: s["state"] == "idle", what="idle")
        cases = [
            # body shorter than its Content-Length: the client leaves, or stalls
            (post("/pause", b"{}", 100), True, (0, 400)),
            (post("/pause", b"{}", 100), False, (408,)),
            (post("/pause", b"{}", -5), False, (400,)),
            (post("/pause", b"{}", "ten"), False, (400,)),
            (post("/pause", b"{}", 10**9), False, (413,)),
            (post("/episodes/start", b"[" * 30_000 + b"]" * 30_000), False, (400,)),
            (post("/episodes/start", b'{"a":' * 12_000), False, (400,)),
            (post("/episodes/start", b"\xff\xfe not json"), False, (400,)),
            (post("/episodes/start", b'{"duration_s": Infinity}'), False, (400,)),
            (post("/episodes/start", b'{"duration_s": "5"}'), False, (422,)),
            (post("/episodes/start", b'{"duration_s": true}'), False, (422,)),
            (post("/episodes/reject", b'{"reason": 7}'), False, (422,)),
            (b"HELLO\r\n\r\n", False, (400,)),
            (b"PATCH /pause HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", False, (405,)),
            (b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", False, (404,)),
        ]
        for data, half_close, expected in cases:
            code, body = raw(daemon, data, half_close)
            assert code in expected, (data[:80], code, body)
            if code:
                assert isinstance(body["error"], str) and "\n" not in body["error"], body
        # the errors name the problem in one readable line
        assert "deeper than" in raw(daemon, cases[5][0])[1]["error"]
        assert raw(daemon, cases[9][0])[1]["error"].startswith(
            "duration_s: must be a number (got '5')")
        assert "within 1 s" in raw(daemon, cases[1][0])[1]["error"]
        assert_untouched(daemon, tmp_path)
        assert daemon.post("/shutdown")[0] == 202
        assert daemon.wait() == 0, daemon.stderr_tail()
    finally:
        daemon.kill()
    executed = [r["command"] for r in map(json.loads, daemon.lines) if r["event"] == "api_command"]
    assert executed == ["shutdown"]  # no malformed request ran its command


@pytest.mark.slow
def test_stalled_clients_do_not_stop_a_normal_request(tmp_path):
    daemon = Daemon(api_station(tmp_path), "--mode", "manual")
    port = int(daemon.base.rsplit(":", 1)[1])
    stalled: list[socket.socket] = []
    try:
        daemon.wait_for(lambda s: s["state"] == "idle", what="idle")
        for n in range(200):
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            if n % 2:  # half send part of their headers, half send nothing at all
                sock.sendall(b"POST /pause HTTP/1.1\r\nHost: x\r\n")
            stalled.append(sock)
        assert daemon.status()["state"] == "idle"  # served beside all 200
        assert daemon.post("/pause")[0] == 202
        daemon.wait_for(lambda s: s["state"] == "paused", what="paused")
        # each stalled client is cut off (408 to those that began a request), not served
        for n, sock in enumerate(stalled):
            answer = read_all(sock)
            assert (b" 408 " in answer.split(b"\r\n")[0]) if n % 2 else answer == b"", answer
        assert daemon.post("/resume")[0] == 202
        assert daemon.post("/shutdown")[0] == 202
        assert daemon.wait() == 0, daemon.stderr_tail()
    finally:
        for sock in stalled:
            sock.close()
        daemon.kill()


@pytest.mark.parametrize("session", ["../escaped", "/tmp/collector-abs-session", "a/b", "..",
                                     ".hidden", "", "x" * 200])
@pytest.mark.slow
def test_a_session_id_is_a_name_never_a_path(tmp_path, session):
    out = tmp_path / "out"
    result = run_cli("run", str(SIM_CONFIG), "--session", session, *api_station(out),
                     cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    assert "session id" in line and "name" in line and "Traceback" not in line
    assert not out.exists()  # nothing opened, nothing created
    assert not Path("/tmp/collector-abs-session.jsonl").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_openapi_document_matches_the_endpoints(tmp_path):
    daemon = Daemon(api_station(tmp_path, **{"api.token": "t0k"}), "--mode", "manual",
                    token="t0k")
    try:
        code, document = daemon.request("GET", "/openapi.json")
        assert code == 200
        served = {(method.upper(), path) for path, ops in document["paths"].items()
                  for method in ops}
        # the page's data routes too (answering as documented: test_console_feed.py)
        page_data = {("GET", p) for p in ("/events", "/previews/{camera}.jpg",
                                          "/downloads/{episode_id}.h5")}
        assert served == {("GET", "/status"), ("GET", "/metrics")} | page_data | {
            ("POST", p) for p in ("/episodes/start", "/episodes/stop", "/episodes/accept",
                                  "/episodes/reject",
                                  "/episodes/abort", "/pause", "/resume", "/shutdown")}
        for method, path in served - page_data:  # every endpoint answers, none is missing
            code, _ = daemon.request(method, path if path != "/shutdown" else "/status",
                                     b"{}" if method == "POST" else None)
            assert code != 404, path
        assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        assert daemon.post("/shutdown")[0] == 202
        assert daemon.wait() == 0
    finally:
        daemon.kill()


def fuzz(tmp_path: Path, examples: int) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode

    token = "fuzz-token"
    daemon = Daemon(api_station(tmp_path, **{"api.token": token}), "--mode", "manual",
                    token=token)
    try:
        daemon.wait_for(lambda s: s["state"] == "idle", what="idle")
        code, document = daemon.request("GET", "/openapi.json")
        assert code == 200
        schema = schemathesis.openapi.from_dict(document)
        headers = {"Authorization": f"Bearer {token}"}
        for result in schema.get_all_operations():
            operation = result.ok()
            if operation.path == "/shutdown":
                continue  # it would end the daemon under test
            if operation.path == "/events":
                continue  # an endless stream (its snapshots: test_console_feed.py)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(max_examples=examples, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))
                def check(case) -> None:
                    case.call_and_validate(base_url=daemon.base, headers=headers, timeout=30)

                check()
        status = daemon.status()  # still serving, still consistent
        assert status["state"] in ("idle", "recording", "resetting", "paused")
        daemon.signal()
        assert daemon.wait() == 0, daemon.stderr_tail()
    finally:
        daemon.kill()
    assert not any('"level": "error"' in line for line in daemon.lines)


def test_schemathesis_finds_no_fault_in_the_api(tmp_path):
    fuzz(tmp_path, examples=8)


@pytest.mark.slow
def test_schemathesis_finds_no_fault_in_the_api_long(tmp_path):
    fuzz(tmp_path, examples=150)
