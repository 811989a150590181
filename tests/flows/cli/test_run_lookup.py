"""Finding and following runs: whole ids, ``latest``, crashed runs, did-you-mean for step names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.flows.cli.test_run_cmds import cli  # noqa: F401 - the fixture


def _run(cli: Any, *args: str) -> str:  # noqa: F811
    code, out, err = cli("run", "hello", "-i", "ids=a", "--json", *args)
    assert code == 0, err
    return str(json.loads(out)["run_id"])


def test_runs_list_prints_whole_ids_with_a_header(cli: Any, monkeypatch: Any) -> None:  # noqa: F811
    monkeypatch.setenv("COLUMNS", "40")  # a narrow terminal must not cut the ids
    ids = {_run(cli), _run(cli)}
    code, out, _ = cli("runs", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["run", "playbook", "mode", "status", "outcome", "started"]
    assert {line.split()[0] for line in lines[1:]} == ids


def test_latest_names_the_newest_run_wherever_a_run_is_taken(cli: Any) -> None:  # noqa: F811
    _run(cli)
    newest = _run(cli)
    code, out, _ = cli("runs", "show", "latest", "--json")
    assert code == 0
    assert json.loads(out)["run_id"] == newest
    code, out, _ = cli("audit", "verify", "latest", "--json")
    assert (code, json.loads(out)["run_id"]) == (0, newest)
    code, out, _ = cli("undo", "latest", "--json", "--yes")
    assert code == 0


def test_latest_without_runs_is_one_clear_line(cli: Any) -> None:  # noqa: F811
    code, _, err = cli("runs", "show", "latest")
    assert code == 1
    assert err.strip().startswith("fireline: error: no runs in ")
    assert len(err.strip().splitlines()) == 1


def test_a_misspelt_run_id_gets_a_did_you_mean(cli: Any) -> None:  # noqa: F811
    run_id = _run(cli)
    code, _, err = cli("runs", "show", run_id[:-1] + "x")
    assert code == 1
    assert f"did you mean {run_id!r}?" in err


def test_runs_show_of_a_crashed_run_says_so_once_and_how_to_resume(cli: Any, tmp_path: Path) -> None:  # noqa: F811
    run_id = _run(cli)
    path = tmp_path / "runs" / run_id / "run.json"
    data = json.loads(path.read_text())
    data.update(status="crashed", outcome="crashed")
    path.write_text(json.dumps(data))
    code, out, _ = cli("runs", "show", run_id)
    assert code == 0
    first = out.splitlines()[0]
    assert first.count("crashed") == 1
    assert f"fireline resume {run_id}" in out


def test_misspelt_step_names_get_a_did_you_mean(cli: Any) -> None:  # noqa: F811
    run_id = _run(cli)
    for args in (
        ["approve", run_id, "helo", "--as", "bob"],
        ["reject", run_id, "helo", "--as", "bob", "--reason", "no"],
        ["undo", run_id, "helo", "--yes"],
    ):
        code, _, err = cli(*args)
        assert code == 1, args
        assert "has no step 'helo' (did you mean 'hello'?)" in err, args
    code, _, err = cli("approve", run_id, "zzzzzz", "--as", "bob")
    assert "its steps: hello, fan" in err
    code, _, err = cli("approve", run_id, "hello", "--as", "bob")
    assert "is not waiting for approval; no step of it is waiting for approval" in err
