"""The one place errors are shown: a sentence per kind of fault, JSON on stdout with --json, exit codes."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError, NoCredentialsError

from flows.cli import main
from flows.cli.failures import describe
from flows.errors import ConfigError, UsageError, one_line
from tests.fixtures.moto import aws, moto  # noqa: F401 - fixtures


@pytest.mark.parametrize(
    ("error", "code", "text", "exit_code"),
    [
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "/x/y"), "E003", "/x/y: no such file", 1),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "/tmp"), "E003", "/tmp: is a directory", 1),
        (PermissionError(errno.EACCES, "Permission denied", "/root/x"), "E003", "/root/x: permission denied", 1),
        (json.JSONDecodeError("Expecting value", "", 0), "E004", "not valid JSON: Expecting value at line 1", 1),
        (NoCredentialsError(), "E502", "no usable AWS credentials", 1),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), "E503", "cannot reach http://127.0.0.1:9", 1),
        (UsageError("--a and --b are exclusive"), "E001", "--a and --b are exclusive", 2),
        (ConfigError("FIRELINE_X: bad", where="FIRELINE_X"), "E002", "FIRELINE_X: bad", 1),
        (RuntimeError("a bug"), "E999", "internal error: RuntimeError: a bug", 1),
    ],
)
def test_each_kind_of_fault_is_one_sentence(error: BaseException, code: str, text: str, exit_code: int) -> None:
    failure = describe(error)
    assert (failure.code, failure.exit_code) == (code, exit_code)
    assert text in failure.message
    assert "\n" not in failure.message


def test_html_pages_become_words() -> None:
    page = (
        "<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title></head>\n"
        "<body><h1>Oops</h1></body></html>"
    )
    assert one_line(page) == "500 Internal Server Error: Oops"
    assert one_line("x" * 1000, limit=10) == "x" * 9 + "…"


def test_json_error_object_on_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing-dir" / "x.json"
    assert main(["schema", "--output", str(missing), "--json"]) == 1
    out, err = capsys.readouterr()
    message = f"--output {missing}: cannot write: the folder {missing.parent} does not exist"
    assert json.loads(out) == {"error": {"code": "E003", "message": message, "where": str(missing)}}
    assert err == f"fireline: error: {message}\n"


def test_usage_error_as_json_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--no-such-option", "--json"]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out)["error"]["code"] == "E001"
    assert err.startswith("fireline: usage: ")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("fireline ")


def test_an_input_whose_default_reads_a_missing_alert_label_says_how_to_give_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    alert = tmp_path / "alert.json"
    alert.write_text('{"labels": {"alertname": "Other"}}')
    for extra, why in (([], "no alert was given"), (["--alert", str(alert)], "the alert lacks it")):
        assert main(["run", "compromised-inference-host", "--dry-run", *extra]) == 1
        err = capsys.readouterr().err
        assert err == (
            "fireline: error: input 'instance_ids' has no value: its default reads alert.labels.instance_ids, "
            f"and {why}; pass --alert FILE or --input instance_ids=...\n"
        )
    runs = Path(os.environ["FIRELINE_RUNS_DIR"])
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.moto_server
def test_a_server_error_page_reaches_the_user_as_one_line(aws: Any) -> None:  # noqa: F811
    """moto answers CloudTrail LookupEvents, which it lacks, with an HTML error page."""
    from flows.errors import ActionError
    from integrations.aws.cloudtrail import CollectEvents, CollectEventsParams

    with pytest.raises(ActionError) as caught:
        CollectEvents().apply(CollectEventsParams(lookup={"ResourceName": "b"}), aws.context())
    message = str(caught.value)
    assert "\n" not in message
    assert "<" not in message
    assert describe(caught.value).message == message
