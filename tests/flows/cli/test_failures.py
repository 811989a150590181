"""The one place errors are shown: a sentence per kind of fault, JSON on stdout with --json, exit codes."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
from botocore.exceptions import EndpointConnectionError, NoCredentialsError

from flows.cli import main
from flows.cli.failures import describe
from flows.errors import ConfigError, UsageError, one_line


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
    assert json.loads(out) == {
        "error": {"code": "E003", "message": f"{missing}: no such file or directory", "where": str(missing)}
    }
    assert err == f"fireline: error: {missing}: no such file or directory\n"


def test_usage_error_as_json_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--no-such-option", "--json"]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out)["error"]["code"] == "E001"
    assert err.startswith("fireline: usage: ")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("fireline ")
