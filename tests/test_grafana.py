"""The fleet dashboard (configs/grafana/station_fleet.json): every metric its panels query is
one a running `collector run` serves on /metrics, and the JSON has the structure its own
schemaVersion (39, Grafana 10.x/11.x) expects of a dashboard and its panels."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import ROOT
from tests.daemon_helpers import Daemon, small_station

DASHBOARD = ROOT / "configs" / "grafana" / "station_fleet.json"
GRID_COLUMNS = 24
PANEL_TYPES = {"timeseries", "stat", "bargauge", "gauge", "table", "text", "state-timeline"}
# PromQL words that are not metric names: functions, aggregations and their modifiers
PROMQL = {"sum", "count", "by", "without", "avg", "max", "min", "rate", "increase",
          "label_values", "on", "ignoring", "group_left", "group_right", "bool"}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def expressions(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression: identifiers outside {...} label matchers,
    quotes and legend templates, that are not PromQL's own words."""
    bare = re.sub(r'"[^"]*"', "", expr)
    bare = re.sub(r"\{[^}]*\}", "", bare)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare))
    labels = set(re.findall(r"(?:by|without) \(([^)]*)\)", bare))
    label_words = {w.strip() for group in labels for w in group.split(",")}
    return words - PROMQL - label_words - {"instance"}


@pytest.mark.slow
def test_every_queried_metric_is_served(dashboard, tmp_path):
    daemon = Daemon(small_station(tmp_path), "--mode", "manual")
    try:
        daemon.event("ready", timeout=120)
        code, text = daemon.request("GET", "/metrics")
    finally:
        daemon.signal()
        daemon.wait()
        daemon.kill()
    assert code == 200
    served = set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))
    assert {"collector_efficiency_ratio", "collector_disk_free_bytes"} <= served
    for expr in expressions(dashboard):
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= served, f"{expr!r} queries {sorted(names - served)}, not on /metrics"
    # and the values the disk panel draws are real: the guard is storage.min_free_gb
    guard = re.search(r"^collector_disk_guard_bytes (\S+)$", text, re.MULTILINE)
    assert guard and float(guard.group(1)) == 2e9


def test_metric_names_are_read_from_expressions():
    expr = 'count by (instance) (collector_device_up{instance=~"$instance", x="a b"} == 0)'
    assert metric_names(expr) == {"collector_device_up"}


def test_structure_of_schema_version_39(dashboard):
    assert dashboard["schemaVersion"] == 39
    for key, kind in (("title", str), ("uid", str), ("panels", list), ("time", dict),
                      ("templating", dict), ("annotations", dict), ("version", int)):
        assert isinstance(dashboard.get(key), kind), key
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["instance"]["multi"] and variables["instance"]["includeAll"]

    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    cells: set[tuple[int, int]] = set()
    for p in dashboard["panels"]:
        assert p["type"] in PANEL_TYPES and p["title"]
        g = p["gridPos"]
        assert set(g) == {"h", "w", "x", "y"} and all(isinstance(v, int) for v in g.values())
        assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["x"] + g["w"] <= GRID_COLUMNS
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"panel {p['id']} overlaps another"
        cells |= mine
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs))
        for t in p["targets"]:
            assert 'instance=~"$instance"' in t["expr"], t["expr"]  # per station
        assert set(p["fieldConfig"]) == {"defaults", "overrides"}
