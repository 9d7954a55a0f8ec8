"""`collector config check/schema` and `--set` overrides, through the real CLI."""

from __future__ import annotations

import json

from tests.conftest import SIM_CONFIG, run_cli


def test_sim_station_config_is_valid():
    result = run_cli("config", "check", str(SIM_CONFIG))
    assert result.returncode == 0, result.stderr
    assert "station sim-01, 5 devices" in result.stdout


def _one_line_error(result) -> str:
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_bad_field_names_file_path_and_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SIM_CONFIG.read_text().replace("fps: 30}", "fps: -5}", 1))
    line = _one_line_error(run_cli("config", "check", str(bad)))
    assert line == f"collector: error: {bad}: devices[cam_high].fps: must be > 0 (got -5)"


def test_unknown_field_is_a_typo(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text(SIM_CONFIG.read_text().replace("reset_s:", "reset_secs:"))
    line = _one_line_error(run_cli("config", "check", str(bad)))
    assert "episode.reset_secs" in line and "unknown field" in line


def test_yaml_syntax_error_names_line(tmp_path):
    bad = tmp_path / "syntax.yaml"
    bad.write_text("station: {id: x\ndevices: [\n")
    line = _one_line_error(run_cli("config", "check", str(bad)))
    assert "YAML syntax error at line" in line


def test_unknown_device_type(tmp_path):
    bad = tmp_path / "type.yaml"
    bad.write_text(SIM_CONFIG.read_text().replace("type: sim_sensor", "type: lidar"))
    line = _one_line_error(run_cli("config", "check", str(bad)))
    assert line.endswith("devices[ft].type: unknown type 'lidar'; valid types: opencv_camera, "
                         "replay, serial_arm, serial_sensor, sim_arm, sim_camera, sim_sensor")


PYDANTIC_WORDING = ("Input should", "Value error", "discriminator", "Field required",
                    "Extra inputs", "String should", "more problem")


def test_every_problem_is_its_own_line_in_the_users_words(tmp_path):
    text = (SIM_CONFIG.read_text()
            .replace("fps: 30}", "fps: -5}", 1)
            .replace("kind: ray ", "kind: spark ")
            .replace("reset_s:", "reset_secs:")
            .replace("method: interpolate", "method: cubic")
            .replace("type: sim_arm", "type: lidar")
            .replace("  - {name: cam_right_wrist, type: sim_camera,", "  - {type: sim_camera,")
            .replace("min_free_gb: 2", "min_free_gb: lots"))
    text += "api: {host: 0.0.0.0}\n"
    bad = tmp_path / "many.yaml"
    bad.write_text(text)
    result = run_cli("config", "check", str(bad))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    prefix = f"collector: error: {bad}: "
    assert all(line.startswith(prefix) for line in lines), lines
    said = sorted(line.removeprefix(prefix) for line in lines)
    valid = "opencv_camera, replay, serial_arm, serial_sensor, sim_arm, sim_camera, sim_sensor"
    assert said == sorted([
        "engine.kind: must be 'ray' or 'inline' (got 'spark')",
        "episode.reset_secs: unknown field; check the spelling (collector config schema lists "
        "the fields)",
        "devices[cam_high].fps: must be > 0 (got -5)",
        "devices[2].name: required, but missing",  # no name to call it by: its place
        "devices[ft].align.method: must be 'nearest', 'interpolate', 'mean', 'last' or 'max' "
        "(got 'cubic')",
        f"devices[arm].type: unknown type 'lidar'; valid types: {valid}",
        "storage.min_free_gb: must be a number (got 'lots')",
        "api.host 0.0.0.0 is not a loopback address: set api.token (or api.token_env) so that "
        "every request must carry it",
    ])
    assert not [w for w in PYDANTIC_WORDING if w in result.stderr]


def test_a_device_without_type_lists_the_types(tmp_path):
    bad = tmp_path / "notype.yaml"
    bad.write_text(SIM_CONFIG.read_text().replace("type: sim_arm, ", ""))
    line = _one_line_error(run_cli("config", "check", str(bad)))
    assert "devices[arm].type: required, but missing: one of opencv_camera," in line
    assert "discriminator" not in line


def test_a_task_that_is_neither_text_nor_a_sequence_is_one_problem():
    line = _one_line_error(run_cli("config", "check", str(SIM_CONFIG), "--set",
                                   "episode.task=5"))
    assert line.endswith("episode.task: must be text or a mapping of fields (got 5)")
    line = _one_line_error(run_cli("config", "check", str(SIM_CONFIG), "--set",
                                   "episode.task={name: t, waypoints: [{joints: [0], "
                                   "duration_s: -1}]}"))
    assert line.endswith("episode.task.waypoints[0].duration_s: must be > 0 (got -1)")


def test_missing_file():
    line = _one_line_error(run_cli("config", "check", "no/such.yaml"))
    assert "no/such.yaml" in line


def test_set_override_is_validated_like_the_file():
    ok = run_cli("config", "check", str(SIM_CONFIG), "--set", "devices.cam_high.fps=15",
                 "--set", "episode.duration_s=2.5")
    assert ok.returncode == 0, ok.stderr
    line = _one_line_error(run_cli("config", "check", str(SIM_CONFIG), "--set",
                                   "episode.control_hz=fast"))
    assert "episode.control_hz" in line
    line = _one_line_error(run_cli("config", "check", str(SIM_CONFIG), "--set",
                                   "devices.nope.fps=1"))
    assert "nope" in line


def test_override_reaches_the_model():
    from collector.config import load_station

    config = load_station(SIM_CONFIG, ["devices.cam_high.fps=15", "devices.1.width=320",
                                       "engine.kind=inline"])
    assert config.devices[0].fps == 15 and config.devices[1].width == 320
    assert config.engine.kind == "inline"


def test_schema_is_json_schema_with_device_union():
    result = run_cli("config", "schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert {"station", "devices", "episode"} <= set(schema["properties"])
    mapping = schema["properties"]["devices"]["items"]["discriminator"]["mapping"]
    assert {"sim_camera", "opencv_camera", "sim_sensor", "sim_arm"} <= set(mapping)
