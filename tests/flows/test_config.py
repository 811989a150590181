"""Settings on pydantic-settings: the documented FIRELINE_* names, the TOML file, secret: references."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.cli import main
from flows.config import Settings, load_settings
from flows.errors import ConfigError


def test_documented_variable_names_still_work() -> None:
    env = {
        "FIRELINE_RUNS_DIR": "/r",
        "FIRELINE_HOME": "/h",
        "FIRELINE_AWS_REGION": "eu-west-1",
        "FIRELINE_AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
        "FIRELINE_AWS_EVIDENCE_BUCKET": "evidence",
        "FIRELINE_AWS_MAX_ATTEMPTS": "2",
        "FIRELINE_PREFECT_API_URL": "http://127.0.0.1:4200/api",
        "FIRELINE_MODELS_MLFLOW_TRACKING_URI": "http://127.0.0.1:5001",
    }
    s = load_settings(environ=env)
    assert s.runs_dir == Path("/r")
    assert s.home == Path("/h")
    assert (s.aws.region, s.aws.endpoint_url, s.aws.evidence_bucket, s.aws.max_attempts) == (
        "eu-west-1",
        "http://127.0.0.1:5000",
        "evidence",
        2,
    )
    assert s.prefect.api_url == "http://127.0.0.1:4200/api"
    assert s.models.mlflow_tracking_uri == "http://127.0.0.1:5001"


def test_double_underscore_delimiter_is_accepted() -> None:
    assert load_settings(environ={"FIRELINE_AWS__REGION": "ap-south-1"}).aws.region == "ap-south-1"


def test_toml_file_then_environment_over_it(tmp_path: Path) -> None:
    file = tmp_path / "f.toml"
    file.write_text('runs_dir = "/from-file"\n[aws]\nregion = "eu-north-1"\nmax_attempts = 3\n')
    s = load_settings(environ={"FIRELINE_CONFIG": str(file), "FIRELINE_AWS_MAX_ATTEMPTS": "9"})
    assert s.runs_dir == Path("/from-file")
    assert s.aws.region == "eu-north-1"  # the file's value survives a variable for a sibling field
    assert s.aws.max_attempts == 9


def test_secret_reference_reads_the_named_variable(tmp_path: Path) -> None:
    file = tmp_path / "f.toml"
    file.write_text('[aws]\nrole_arn = "secret:ROLE_FOR_FIRELINE"\n')
    env = {"FIRELINE_CONFIG": str(file), "ROLE_FOR_FIRELINE": "arn:aws:iam::123456789012:role/x"}
    assert load_settings(environ=env).aws.role_arn == "arn:aws:iam::123456789012:role/x"
    with pytest.raises(ConfigError, match=r"aws\.role_arn: secret:ROLE_FOR_FIRELINE names the environment variable"):
        load_settings(environ={"FIRELINE_CONFIG": str(file)})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FIRELINE_AWS_MAX_ATTEMPTS": "many"}, "FIRELINE_AWS_MAX_ATTEMPTS: Input should be a valid integer"),
        ({"FIRELINE_AWS_ENDPONT_URL": "x"}, "FIRELINE_AWS_ENDPONT_URL: Extra inputs are not permitted"),
        ({"FIRELINE_CONFIG": "/no/such/fireline.toml"}, "no such settings file"),
    ],
)
def test_bad_settings_name_their_source(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=env)


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    file = tmp_path / "f.toml"
    file.write_text("[aws\n")
    with pytest.raises(ConfigError, match=r"f\.toml: cannot read settings"):
        load_settings(environ={"FIRELINE_CONFIG": str(file)})
    file.write_text("[aws]\nregoin = 'x'\n")
    with pytest.raises(ConfigError, match=r"f.toml: aws.regoin: Extra inputs"):
        load_settings(environ={"FIRELINE_CONFIG": str(file)})


def test_settings_built_by_code_ignore_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIRELINE_RUNS_DIR", "/from-env")
    assert Settings().runs_dir == Path("runs")
    assert load_settings().runs_dir == Path("/from-env")


def test_config_show_sources_and_masked_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    file = tmp_path / "f.toml"
    file.write_text('runs_dir = "/from-file"\n[aws]\nrole_arn = "secret:ROLE_FOR_FIRELINE"\n')
    monkeypatch.delenv("FIRELINE_RUNS_DIR")
    monkeypatch.setenv("FIRELINE_CONFIG", str(file))
    monkeypatch.setenv("ROLE_FOR_FIRELINE", "arn:aws:iam::123456789012:role/hidden")
    monkeypatch.setenv("FIRELINE_AWS_REGION", "eu-west-3")
    monkeypatch.setenv("FIRELINE_RUNSDIR", "typo")
    assert main(["config", "show", "--json"]) == 0
    out = capsys.readouterr().out
    doc = json.loads(out)
    rows = {r["key"]: r for r in doc["settings"]}
    assert rows["runs_dir"] == {"key": "runs_dir", "value": "/from-file", "source": str(file)}
    assert rows["aws.region"]["source"] == "env FIRELINE_AWS_REGION"
    assert rows["aws.max_attempts"]["source"] == "default"
    assert rows["aws.role_arn"]["value"] == "********"
    assert rows["aws.role_arn"]["source"] == f"secret:ROLE_FOR_FIRELINE via {file}"
    assert "hidden" not in out
    assert doc["ignored_variables"] == ["FIRELINE_RUNSDIR"]
    assert main(["config", "show"]) == 0
    text = capsys.readouterr().out
    assert "env FIRELINE_AWS_REGION" in text
    assert "hidden" not in text
