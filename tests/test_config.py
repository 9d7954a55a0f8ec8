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
    assert str(bad) in line and "devices[0].fps" in line and "greater than 0" in line


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
    assert "devices[3]" in line and "sim_sensor" in line  # lists the types it accepts


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
