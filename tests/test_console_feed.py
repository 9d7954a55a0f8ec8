"""The operator page's data routes as a script reads them: documented in /openapi.json, and
every snapshot a real `collector run` sends, idle and recording, valid against the schema the
document gives for it (so the document cannot drift from the feed)."""

from __future__ import annotations

import json
import urllib.request

import jsonschema

from tests.daemon_helpers import Daemon, small_station

TOKEN = "feed-token"


def snapshots(daemon: Daemon):
    """The feed's snapshots, decoded, as they arrive (one `data:` line each)."""
    request = urllib.request.Request(daemon.base + "/events",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        event = None
        for raw in response:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: "):
                assert event == "snapshot"
                yield json.loads(line[len("data: "):])


def test_the_feed_is_documented_and_sends_what_it_documents(tmp_path):
    sets = small_station(tmp_path, **{"api.token": TOKEN, "episode.duration_s": "3"})
    daemon = Daemon(sets, "--mode", "manual", token=TOKEN)
    try:
        daemon.event("ready", timeout=120)
        code, document = daemon.request("GET", "/openapi.json")
        assert code == 200
        paths = document["paths"]
        media = paths["/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]
        ref = media["x-event-data"]["$ref"]
        schema = {"$ref": ref, "components": document["components"]}
        validator = jsonschema.Draft202012Validator(schema)
        # the page itself is HTML for a browser, not part of the API (README, Operator page)
        assert not {"/", "/static/console.js", "/static/console.css"} & set(paths)

        seen = {"idle": 0, "recording": 0}
        started = False
        for snapshot in snapshots(daemon):
            errors = sorted(validator.iter_errors(snapshot), key=str)
            assert not errors, f"{snapshot['state']}: {errors[0]}"
            if snapshot["state"] in seen:
                seen[snapshot["state"]] += 1
            if not started:
                assert daemon.post("/episodes/start")[0] == 202
                started = True
            recording = snapshot["state"] == "recording"
            windows = [s["window"] for s in snapshot["streams"]]
            if recording and all(w and w["ticks"] for w in windows) and snapshot["previews"]:
                break  # recording, with every figure of the feed filled in
        assert seen["idle"] and seen["recording"]

        # a preview the feed names is served as documented; an unknown camera is a 404 JSON
        camera = next(iter(snapshot["previews"]))
        request = urllib.request.Request(f"{daemon.base}/previews/{camera}.jpg",
                                         headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.headers["Content-Type"] == "image/jpeg"
            assert int(response.headers["X-Preview-Seq"]) >= 1
            assert response.read()[:2] == b"\xff\xd8"  # a JPEG
        assert "/previews/{camera}.jpg" in paths and "/downloads/{episode_id}.h5" in paths
        code, body = daemon.request("GET", "/previews/no_such_camera.jpg")
        assert code == 404 and "no_such_camera" in body["error"]
        code, body = daemon.request("GET", "/downloads/sim-01-nothing.h5")
        assert code == 404 and "sim-01-nothing" in body["error"]

        assert daemon.post("/shutdown")[0] == 202
        assert daemon.wait() == 0
    finally:
        daemon.kill()
