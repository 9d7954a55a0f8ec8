"""The operator page: `/` and its files, one server-sent event stream (`/events`), camera
previews (`/previews/<camera>.jpg`) and episode downloads (`/downloads/<episode>.h5`).

One producer task serves every open page: a few times a second it builds one snapshot (status,
streams, efficiency, recent episodes, alarms, preview numbers) in the thread pool and offers the
same text to each page's queue. The queues are short; a page that does not keep up is dropped
(its browser reconnects), so no page can hold the station or the other pages. Nothing is built
while no page is open, and previews are taken only then (collector/previews.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from importlib import resources
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route

from collector.daemon.alarms import AlarmBook
from collector.daemon.bodies import ApiFault
from collector.daemon.previews import PreviewStore
from collector.efficiency import PERFORMANCE_CAUSES
from collector.recent import RECENT_S
from schemas.api import Status
from schemas.names import name_problem
from schemas.session import SessionRecord

EVENTS_HZ = 4.0  # snapshots per second to each open page
QUEUE_SNAPSHOTS = 8  # a page this many snapshots behind (2 s) is dropped
MAX_PAGES = 16  # open event streams; beyond, 503
KEEPALIVE_S = 10.0  # a comment line when nothing else was sent, so proxies keep the stream
TOP_LOSSES = 5
STATIC = ("index.html", "console.css", "console.js")
TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".js": "text/javascript; charset=utf-8"}


@dataclass
class ConsoleSource:
    """What the page shows, from the daemon."""

    status: Callable[[], Status]
    previews: PreviewStore
    recent: Callable[[], list[SessionRecord]]  # this session's last episodes, newest first
    free_gb: Callable[[], float | None]  # on the episodes' disk; None before the station opens
    guard_gb: float  # storage.min_free_gb
    task: str


class _Page:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(QUEUE_SNAPSHOTS)


class EventHub:
    def __init__(self, source: ConsoleSource):
        self.source = source
        self.alarms = AlarmBook()
        self.pages: set[_Page] = set()
        self.dropped = 0  # pages cut off for falling behind, for the log and tests
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def join(self) -> _Page:
        if len(self.pages) >= MAX_PAGES:
            raise ApiFault(HTTPStatus.SERVICE_UNAVAILABLE, f"{MAX_PAGES} operator pages are "
                           f"open already; close one and reload")
        page = _Page()
        self._loop = asyncio.get_running_loop()
        self.pages.add(page)
        self.source.previews.watch(+1)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._produce())
        return page

    def leave(self, page: _Page) -> None:
        if page in self.pages:
            self.pages.discard(page)
            self.source.previews.watch(-1)

    async def _produce(self) -> None:
        while self.pages:
            text = await run_in_threadpool(self.snapshot_text)
            for page in list(self.pages):
                try:
                    page.queue.put_nowait(text)
                except asyncio.QueueFull:
                    self._drop(page)
            await asyncio.sleep(1 / EVENTS_HZ)

    def close(self) -> None:
        """From any thread (the daemon stopping): every page's stream ends now, so the server
        stops without cutting responses off."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._end_all)

    def _end_all(self) -> None:
        for page in list(self.pages):
            self._end(page)

    def _drop(self, page: _Page) -> None:
        self._end(page)
        self.dropped += 1

    def _end(self, page: _Page) -> None:
        self.leave(page)
        while not page.queue.empty():
            page.queue.get_nowait()
        page.queue.put_nowait(None)  # its stream ends; the browser's EventSource reconnects

    def snapshot_text(self) -> str:
        return json.dumps(self.snapshot(), separators=(",", ":"))

    def judge_alarms(self) -> tuple[Status, float | None]:
        """Raise and clear alarms from the station's state now. The daemon calls it at every
        health refresh, so an outage while no page is open is still listed as cleared when
        one opens; each snapshot calls it too."""
        s = self.source
        status, free = s.status(), s.free_gb()
        self.alarms.update(status, free, s.guard_gb)
        return status, free

    def snapshot(self) -> dict:
        s = self.source
        status, free = self.judge_alarms()
        return {
            "station_id": status.station_id, "session_id": status.session_id,
            "state": status.state, "mode": status.mode, "paused": status.paused,
            "task": s.task, "episodes": status.episodes,
            "episode": status.current_episode.model_dump() if status.current_episode else None,
            "last_episode": _last(status),
            "streams": _streams(status),
            "window_s": RECENT_S,
            "previews": s.previews.seqs(),
            "efficiency": _efficiency(status),
            "recent": [_episode_row(r) for r in s.recent()],
            "alarms": self.alarms.view(),
            "disk": {"free_gb": None if free is None else round(free, 2),
                     "guard_gb": s.guard_gb},
            "pipeline_lag_s": round(status.pipeline_lag_s, 3),
            "sent_at": time.time(),
        }


def _last(status: Status) -> dict | None:
    last = status.last_episode
    if last is None:
        return None
    return {"episode_id": last.episode_id, "outcome": last.outcome, "reason": last.reason,
            "efficiency": last.accounts.efficiency}


def _streams(status: Status) -> list[dict]:
    """Per stream: rate against nominal, samples lost on the grid this session (dropped or
    overflowed), last-sample age, connected; and over its ticks written in the last seconds
    (`window`: none before the first episode): |dt| p99 and the flags raised."""
    losses = status.session.loss_samples
    rows = []
    for name, h in status.devices.items():
        lost = sum(n for cause, n in losses.items()
                   if cause.split(":", 1)[-1] == name
                   and cause.split(":", 1)[0] in ("dropped", "overflow"))
        recent = status.recent.get(name)
        rows.append({"name": name, "kind": h.get("kind"), "rate_hz": h.get("rate_hz", 0.0),
                     "nominal_hz": h.get("nominal_hz"), "samples": h.get("samples", 0),
                     "dropped": lost, "last_sample_age_s": h.get("last_sample_age_s"),
                     "connected": bool(h.get("connected", True)),
                     "disconnected_s": h.get("disconnected_s", 0.0),
                     "flags": _flags(losses, name),
                     "window": recent.model_dump() if recent else None})
    return rows


def _flags(losses: dict[str, int], stream: str) -> dict[str, int]:
    """Samples of this stream flagged by a quality check this session, by check."""
    flags = {}
    for cause, n in losses.items():
        check, _, where = cause.partition(":")
        if where == stream and check not in PERFORMANCE_CAUSES and n:
            flags[check] = n
    return flags


def _efficiency(status: Status) -> dict:
    """The session's factors and its biggest losses, each as the share of its factor it cost:
    time (availability) over scheduled seconds, missing samples (performance) over expected,
    flagged or discarded samples (quality) over delivered."""
    a = status.session
    losses = [("availability", cause, s, "s", s / a.scheduled_s if a.scheduled_s else 0.0)
              for cause, s in a.loss_seconds.items()]
    for cause, n in a.loss_samples.items():
        performance = cause.split(":", 1)[0] in PERFORMANCE_CAUSES
        base = a.expected_samples if performance else a.delivered_samples
        losses.append(("performance" if performance else "quality", cause, n, "samples",
                       n / base if base else 0.0))
    losses.sort(key=lambda loss: -loss[4])
    return {"availability": a.availability, "performance": a.performance,
            "quality": a.quality, "efficiency": a.efficiency, "scheduled_s": a.scheduled_s,
            "recording_s": a.recording_s,
            "top_losses": [{"factor": f, "cause": c, "amount": v, "unit": u, "share": share}
                           for f, c, v, u, share in losses[:TOP_LOSSES] if share > 0]}


def _episode_row(record: SessionRecord) -> dict:
    a = record.accounts
    return {"episode_id": record.episode_id, "outcome": record.outcome,
            "reason": record.reason, "ended_at": record.ended_at,
            "recording_s": a.recording_s if a else None,
            "efficiency": a.efficiency if a else None,
            "download": f"/downloads/{record.episode_id}.h5"}


def _static_files() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("collector.daemon") / "static"
    return {name: ((folder / name).read_bytes(), TYPES[Path(name).suffix]) for name in STATIC}


def console_routes(source: ConsoleSource) -> tuple[list[Route], EventHub]:
    files = _static_files()
    hub = EventHub(source)

    def served(name: str) -> Callable[[Request], object]:
        body, media_type = files[name]

        async def endpoint(request: Request) -> Response:
            return Response(body, media_type=media_type, headers={"Cache-Control": "no-cache"})
        return endpoint

    async def events(request: Request) -> Response:
        page = hub.join()

        async def stream():
            try:
                yield "retry: 2000\n\n"
                while True:
                    try:
                        text = await asyncio.wait_for(page.queue.get(), KEEPALIVE_S)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if text is None:
                        return
                    yield f"event: snapshot\ndata: {text}\n\n"
            finally:
                hub.leave(page)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    async def preview(request: Request) -> Response:
        camera = request.path_params["camera"]
        shot = source.previews.get(camera)
        if shot is None:
            raise ApiFault(HTTPStatus.NOT_FOUND, f"no preview of {camera!r} yet: previews are "
                           f"taken while a page is open (GET /events)")
        return Response(shot.jpeg, media_type="image/jpeg",
                        headers={"Cache-Control": "no-store", "X-Preview-Seq": str(shot.seq)})

    async def download(request: Request) -> Response:
        episode_id = request.path_params["episode_id"]
        if name_problem(episode_id):
            raise ApiFault(HTTPStatus.NOT_FOUND, f"{episode_id!r} is not an episode id")
        record = next((r for r in await run_in_threadpool(source.recent)
                       if r.episode_id == episode_id), None)
        if record is None or record.path is None:
            raise ApiFault(HTTPStatus.NOT_FOUND, f"episode {episode_id} is not among this "
                           f"session's recent episodes; find it with `collector inspect`")
        path = Path(record.path)
        if not path.is_file():
            raise ApiFault(HTTPStatus.NOT_FOUND, f"episode {episode_id}: its file is no longer "
                           f"where it was committed (moved or deleted)")
        return FileResponse(path, filename=f"{episode_id}.h5",
                            media_type="application/x-hdf5")

    routes = [Route("/", served("index.html"), methods=["GET"])]
    routes += [Route(f"/static/{name}", served(name), methods=["GET"]) for name in STATIC[1:]]
    routes += [Route("/events", events, methods=["GET"]),
               Route("/previews/{camera}.jpg", preview, methods=["GET"]),
               Route("/downloads/{episode_id}.h5", download, methods=["GET"])]
    return routes, hub
