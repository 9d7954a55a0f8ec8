"""Station files under attack: binary, latin-1, deeply nested or duplicated YAML and settings
that used to pass `config check` and fail later. Each is one line naming the key and what to do,
exit 2, from `config check`, `record` and `run`, before anything is started or created."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.config import load_station
from collector.errors import ConfigError
from tests.conftest import SIM_CONFIG, run_cli

GOOD = SIM_CONFIG.read_text()


def _text(change: tuple[str, str]) -> str:
    old, new = change
    assert old in GOOD
    return GOOD.replace(old, new, 1)


# name -> (file content, made from the station file at its output folder; what the line names)
CASES = {
    "binary": (lambda out: b"\x89HDF\r\n\x1a\n\0\0\0" + bytes(range(256)), "binary data"),
    "latin-1": (lambda out: _text(("id: sim-01", "id: sim-01\n  operator: Jos\xe9"))
                .encode("latin-1"), "not UTF-8"),
    "deep": (lambda out: b"a: " + b"[" * 20_000 + b"]" * 20_000 + b"\n", "nested too deeply"),
    "duration inf": (lambda out: _text(("duration_s: 20", "duration_s: .inf")).encode(),
                     "episode.duration_s"),
    "duration huge": (lambda out: _text(("duration_s: 20", "duration_s: 1e300")).encode(),
                      "episode.duration_s"),
    "output_dir is a file": (lambda out: _text(("output_dir: episodes",
                                                f"output_dir: {out / 'file'}")).encode(),
                             "is a file, not a folder"),
    "object store": (lambda out: _text(("address: null", "address: null\n  object_store_mb: "
                                        "1000000000000")).encode(), "engine.object_store_mb"),
    "task module": (lambda out: _text(("task: pick_place",
                                       "task: no_such_module_x:Task")).encode(),
                    "episode.task"),
    "min_free_gb inf": (lambda out: _text(("min_free_gb: 2", "min_free_gb: .inf")).encode(),
                        "storage.min_free_gb"),
    "duplicate key": (lambda out: _text(("duration_s: 20", "duration_s: 20\n  duration_s: 5"))
                      .encode(), "duplicate key 'duration_s'"),
}


def bad_station(tmp_path: Path, case: str) -> tuple[Path, Path, str]:
    make, expected = CASES[case]
    out = tmp_path / "out"
    (tmp_path / "out_parent").mkdir(exist_ok=True)
    data = make(out)
    if case == "output_dir is a file":
        out.mkdir()
        (out / "file").write_text("not a folder")
    else:  # every other case points output_dir at a folder that must not appear
        data = data.replace(b"output_dir: episodes", f"output_dir: {out}".encode())
    path = tmp_path / "station.yaml"
    path.write_bytes(data)
    return path, out, expected


COMMANDS = {"config check": ["config", "check"], "record": ["record", "--episodes", "1"],
            "run": ["run"]}


@pytest.mark.parametrize("command", ["config check", "record"])
@pytest.mark.parametrize("case", list(CASES))
def test_bad_station_is_one_line_exit_2_and_nothing_created(tmp_path, case, command):
    path, out, expected = bad_station(tmp_path, case)
    before = set(out.iterdir()) if out.is_dir() else None
    result = run_cli(*COMMANDS[command], str(path), cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    line = result.stderr.strip()
    assert "Traceback" not in line and "\n" not in line, line
    assert expected in line and str(path) in line, line
    after = set(out.iterdir()) if out.is_dir() else None
    assert after == before  # no episode, no partial, no Ray folder


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_bad_station_stops_the_daemon_before_it_starts(tmp_path, case):
    path, _, expected = bad_station(tmp_path, case)
    result = run_cli("run", str(path), cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert expected in result.stderr.strip().splitlines()[-1]


MUTATIONS = st.one_of(
    st.tuples(st.just("replace"), st.integers(0, len(GOOD)), st.integers(0, 40),
              st.text(alphabet=st.sampled_from(list(":-[]{},'\"#&*!|>%@` \n\t.0123456789eE"
                                                     "abcinfINFnulltrue~")), max_size=20)),
    st.tuples(st.just("bytes"), st.integers(0, len(GOOD)), st.integers(0, 8),
              st.binary(max_size=8)),
    st.tuples(st.just("duplicate line"), st.integers(0, GOOD.count("\n")), st.just(0),
              st.just("")),
)


def _mutate(text: bytes, mutation: tuple) -> bytes:
    kind, at, length, new = mutation
    if kind == "duplicate line":
        lines = text.split(b"\n")
        at %= len(lines)
        return b"\n".join([*lines[: at + 1], lines[at], *lines[at + 1 :]])
    piece = new.encode() if isinstance(new, str) else new
    return text[:at] + piece + text[at + length :]


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(MUTATIONS, min_size=1, max_size=4))
def test_any_mutated_station_validates_or_is_a_config_error(tmp_path, mutations):
    data = GOOD.encode()
    for m in mutations:
        data = _mutate(data, m)
    data = data.replace(b"output_dir: episodes", f"output_dir: {tmp_path / 'out'}".encode())
    path = tmp_path / "mutated.yaml"
    path.write_bytes(data)
    try:
        load_station(path)
    except ConfigError as exc:
        assert str(exc).strip(), "an error names its problem"
