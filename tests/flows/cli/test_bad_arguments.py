"""Every command, given bad arguments, answers with one clear line and the right exit code.

The commands come from the typer app itself, so a new command is covered the day it is added:
an unknown option (exit 2), each required argument given a missing path, a directory and an empty
file, and each path option given a missing path, a directory, an empty file or an unwritable
location (exit 1 or 2). Commands that start servers (``serve``, ``sandbox up|demo``) only have their
option parsing exercised here; their own tests run them. AWS faults (no credentials, an endpoint
that does not answer) are exercised on ``attest``, which reaches S3 at once.

Never: exit 0, a traceback, "internal error", or more than one line on stderr; with ``--json`` the
error is also a JSON object on stdout.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.cli import _load_commands, app, main

REPO = Path(__file__).resolve().parents[3]

# Commands that start a server or a sandbox: only their argument parsing is exercised here.
LONG_RUNNING = {("serve",), ("sandbox", "demo"), ("sandbox", "up")}

# A good value for each required parameter (by name), so that one bad value is tested at a time.
GOOD: dict[str, str] = {
    "paths": str(REPO / "playbooks" / "compromised-inference-host.yaml"),
    "playbook": str(REPO / "playbooks" / "compromised-inference-host.yaml"),
    "alert_file": str(REPO / "playbooks" / "alerts" / "compromised-inference-host.json"),
    "run": "latest",
    "step": "approve-isolation",
    "name": "approval",
    "target": "s3://fireline-no-such-bucket/model.tar.gz",
    "as_user": "alice",
    "by": "ci",
    "reason": "testing",
    "registry": "s3",
}
# Options naming something the command creates: a missing path there is fine, an unwritable one is not.
CREATES = ("output", "runs_dir")


def _commands() -> list[tuple[tuple[str, ...], Any]]:
    import typer.main

    _load_commands()

    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            if path and getattr(command, "invoke_without_command", False):
                yield path, command
            for name, sub in sorted(subcommands.items()):
                yield from walk(sub, (*path, name))
        else:
            yield path, command

    return list(walk(typer.main.get_command(app), ()))


COMMANDS = _commands()


def _is_path(param: Any) -> bool:
    bare = param.bare_type() if callable(getattr(param, "bare_type", None)) else None
    # typer gives the annotation's class, or its text when annotations are postponed
    return str(getattr(bare, "__name__", bare)).removeprefix("pathlib.") == "Path"


def _bad_values(tmp: Path) -> dict[str, str]:
    (tmp / "a-directory").mkdir(exist_ok=True)
    (tmp / "empty.json").write_text("")
    return {
        "missing": str(tmp / "no-such-dir" / "no-such-file.yaml"),
        "directory": str(tmp / "a-directory"),
        "empty": str(tmp / "empty.json"),
        "unwritable": str(tmp / "empty.json" / "under-a-file.json"),  # a file's child cannot be created
    }


def _required_args(command: Any, override: dict[str, str]) -> list[str] | None:
    """The command line for the required parameters (``override`` by name), or None when one has no value."""
    args: list[str] = []
    for param in command.params:
        if not param.required and param.name not in override:
            continue
        value = override.get(param.name, GOOD.get(param.name))
        if value is None:
            return None
        args += [value] if param.param_type_name == "argument" else [param.opts[0], value]
    return args


def _check(code: int, out: str, err: str, as_json: bool) -> None:
    assert code in (1, 2), (code, out, err)
    assert "Traceback" not in err
    assert "internal error" not in err + out
    # Raw library text is not an answer: OSError's "[Errno 21] Is a directory", json's "Expecting value".
    assert "[Errno" not in err
    assert "Expecting value" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    if as_json:
        doc = json.loads(out)
        assert "error" in doc or doc.get("ok") is False, doc


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished dry-run, so that ``latest`` names a run."""
    runs = tmp_path_factory.mktemp("bad-args-runs")
    old = os.environ.get("FIRELINE_RUNS_DIR")
    os.environ["FIRELINE_RUNS_DIR"] = str(runs)
    try:
        alert = GOOD["alert_file"]
        assert main(["run", "compromised-inference-host", "--alert", alert, "--dry-run", "--json"]) == 0
    finally:
        if old is None:
            del os.environ["FIRELINE_RUNS_DIR"]
        else:
            os.environ["FIRELINE_RUNS_DIR"] = old
    return runs


@pytest.fixture
def cli(run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    monkeypatch.setenv("FIRELINE_RUNS_DIR", str(run_dir))
    capsys.readouterr()

    def call(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


def test_the_walk_finds_the_commands() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"validate", "run", "runs show", "actions", "actions show", "sandbox up", "config show"} <= names


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_an_unknown_option_is_a_usage_error(path: tuple[str, ...], command: Any, cli: Any) -> None:
    code, out, err = cli(*path, "--no-such-option", "--json")
    _check(code, out, err, as_json=True)
    assert code == 2
    assert err.startswith("fireline: usage: ")
    assert json.loads(out)["error"]["code"] == "E001"


ARGUMENT_CASES = [
    (path, param.name, kind)
    for path, command in COMMANDS
    for param in command.params
    if param.param_type_name == "argument" and param.required
    for kind in ("missing", "directory", "empty")
]


@pytest.mark.parametrize(
    ("path", "name", "kind"), ARGUMENT_CASES, ids=[f"{' '.join(p)}-{n}-{k}" for p, n, k in ARGUMENT_CASES]
)
def test_a_bad_argument_is_one_line(path: tuple[str, ...], name: str, kind: str, cli: Any, tmp_path: Path) -> None:
    command = dict(COMMANDS)[path]
    args = _required_args(command, {name: _bad_values(tmp_path)[kind]})
    assert args is not None, f"no good value for a required parameter of {' '.join(path)}: add it to GOOD"
    for as_json in (False, True):
        code, out, err = cli(*path, *args, *(["--json"] if as_json else []))
        _check(code, out, err, as_json)


OPTION_CASES = [
    (path, param.name, kind)
    for path, command in COMMANDS
    if path not in LONG_RUNNING
    for param in command.params
    if param.param_type_name == "option" and _is_path(param)
    for kind in (("directory", "unwritable") if param.name in CREATES else ("missing", "directory", "empty"))
]


@pytest.mark.parametrize(
    ("path", "name", "kind"), OPTION_CASES, ids=[f"{' '.join(p)}-{n}-{k}" for p, n, k in OPTION_CASES]
)
def test_a_bad_path_option_is_one_line(path: tuple[str, ...], name: str, kind: str, cli: Any, tmp_path: Path) -> None:
    command = dict(COMMANDS)[path]
    args = _required_args(command, {name: _bad_values(tmp_path)[kind]})
    assert args is not None, f"no good value for a required parameter of {' '.join(path)}: add it to GOOD"
    for as_json in (False, True):
        code, out, err = cli(*path, *args, *(["--json"] if as_json else []))
        _check(code, out, err, as_json)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends: nothing listens there


@pytest.mark.parametrize("fault", ["no credentials", "unreachable endpoint"])
def test_aws_faults_are_one_line_and_leave_no_record(
    fault: str, cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if fault == "no credentials":
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            monkeypatch.delenv(name, raising=False)
    else:
        monkeypatch.setenv("FIRELINE_AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
        monkeypatch.setenv("FIRELINE_AWS_MAX_ATTEMPTS", "1")
    home = Path(os.environ["FIRELINE_HOME"])
    for as_json in (False, True):
        code, out, err = cli(
            "attest", "--registry", "s3", GOOD["target"], "--by", "ci", *(["--json"] if as_json else [])
        )
        _check(code, out, err, as_json)
        assert code == 1
        expected = "no usable AWS credentials" if fault == "no credentials" else "127.0.0.1"
        assert expected in err
    attestations = home / "attestations"
    assert not attestations.exists() or list(attestations.iterdir()) == []
