"""The directory and contact trees as documents: canonical people, located errors, lint of contacts:."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.cli import main
from flows.engine import run_playbook
from flows.errors import FirelineError
from flows.people.directory import Directory
from tests.flows.people.helpers import PEOPLE, registry, settings, tree, write_library


def _validate(capsys: pytest.CaptureFixture[str], *paths: Path) -> tuple[int, list[str]]:
    code = main(["validate", *map(str, paths)])
    return code, capsys.readouterr().out.splitlines()


def test_one_person_whatever_name_is_used(tmp_path: Path) -> None:
    write_library(tmp_path, tree([{"targets": ["person:alice"], "ack_timeout": "5m"}]))
    directory = Directory.load(tmp_path / "playbooks" / "people.yaml", tmp_path / "cache.json")
    for name in ("alice", "Alice", " user:ALICE ", "alice@EXAMPLE.com", "U0ALICE1"):
        found = directory.resolve(name)
        assert found is not None, name
        assert found.id == "alice"
    assert directory.resolve("user:user:alice") is None
    assert directory.resolve("u0alice1") is None  # Slack ids are exact
    assert directory.members("ml-security") == {"alice", "bob"}


def test_a_slack_id_found_by_email_is_cached_for_the_next_load(tmp_path: Path) -> None:
    write_library(tmp_path, tree([{"targets": ["person:bob"], "ack_timeout": "5m"}]))
    path, cache = tmp_path / "playbooks" / "people.yaml", tmp_path / "home" / "people" / "slack-ids.json"
    Directory.load(path, cache).remember_slack_id("bob", "U0BOB0001")
    again = Directory.load(path, cache)
    assert again.people["bob"].slack_user_id == "U0BOB0001"
    assert again.resolve("U0BOB0001") == again.people["bob"]
    assert json.loads(cache.read_text()) == {"bob@example.com": "U0BOB0001"}


def _located(lines: list[str], path: Path) -> list[tuple[str, str]]:
    """Each line as (the source text it points at, the message); fails unless it is path:line:col: ..."""
    source = path.read_text().splitlines()
    out = []
    for line in lines:
        where, message = line[len(str(path)) + 1 :].split(": ", 1)
        assert line.startswith(f"{path}:"), line
        row, col = (int(n) for n in where.split(":"))
        out.append((source[row - 1][col - 1 :].strip(), message))
    return out


def test_bad_trees_get_one_located_line_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    levels = [
        {"targets": ["person:alcie", "group:ml-secruity"], "ack_timeout": "30s"},
        {"targets": ["pager:bob"], "ack_timeout": "5m"},
    ]
    write_library(tmp_path, tree(levels))
    code, lines = _validate(capsys, tmp_path / "playbooks")
    trees = tmp_path / "playbooks" / "contact-trees" / "t.yaml"
    assert code == 1
    assert _located(lines, trees) == [
        ("- pager:bob", "error[E206] levels[1].targets: target 'pager:bob': unknown kind 'pager' "
         "(one of person, group, slack_channel, slack_usergroup, email, webhook)"),
    ]  # fmt: skip
    levels[1]["targets"] = ["person:bob"]
    write_library(tmp_path, tree(levels))
    code, lines = _validate(capsys, tmp_path / "playbooks")
    assert code == 1
    assert _located(lines, trees) == [
        ("person:alcie", "error[E811] levels[0].targets[0]: unknown person 'alcie' (not in the directory) "
         "(did you mean 'alice'?)"),
        ("group:ml-secruity", "error[E812] levels[0].targets[1]: unknown group 'ml-secruity' (not in the directory) "
         "(did you mean 'ml-security'?)"),
        ("30s", "error[E813] levels[0].ack_timeout: ack_timeout 30s is under 1 minute in a live tree "
         "(set drill: true for a drill tree)"),
    ]  # fmt: skip


def test_a_drill_tree_may_use_short_timeouts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_library(tmp_path, tree([{"targets": ["person:alice"], "ack_timeout": "10s"}], drill=True))
    assert _validate(capsys, tmp_path / "playbooks")[0] == 0


def test_a_cycle_of_groups_and_an_unknown_member(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    people = {**PEOPLE, "groups": {"a": ["group:b"], "b": ["group:a", "alcie"]}}
    write_library(tmp_path, tree([{"targets": ["person:alice"], "ack_timeout": "5m"}]), people=people)
    code, lines = _validate(capsys, tmp_path / "playbooks")
    directory = tmp_path / "playbooks" / "people.yaml"
    assert code == 1
    assert _located(lines, directory) == [
        ("- group:b", "error[E805] groups.a: groups form a cycle: a -> b -> a"),
        ("alcie", "error[E803] groups.b[1]: unknown person 'alcie' in group 'b' (did you mean 'alice'?)"),
    ]


def test_contacts_must_name_a_tree_of_the_library(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    book = write_library(tmp_path, tree([{"targets": ["person:alice"], "ack_timeout": "5m"}]), contacts="tt")
    code, lines = _validate(capsys, book)
    assert code == 1
    folder = tmp_path / "playbooks" / "contact-trees"
    assert _located(lines, book) == [
        ("tt", f"error[E820] contacts: contact tree 'tt' does not exist in {folder}/ (did you mean 't'?)")
    ]


def test_a_run_with_a_broken_tree_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    book = write_library(tmp_path, tree([{"targets": ["person:zed"], "ack_timeout": "5m"}]))
    with pytest.raises(FirelineError, match=r"t\.yaml:\d+:\d+: error\[E811\] .*unknown person 'zed'"):
        run_playbook(book, settings=settings(tmp_path), registry=registry())
    assert not settings(tmp_path).runs_dir.exists() or not any(settings(tmp_path).runs_dir.iterdir())


def test_contacts_show_lists_who_is_paged_and_when(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("FIRELINE_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    levels: list[dict[str, Any]] = [
        {"targets": ["group:ml-security"], "ack_timeout": "5m", "strategy": "round_robin"},
        {"targets": ["person:carol"], "ack_timeout": "10m",
         "active_hours": {"timezone": "Europe/Berlin", "days": ["mon", "tue", "wed", "thu", "fri"],
                          "start": "09:00", "end": "17:00"}},
    ]  # fmt: skip
    write_library(tmp_path, tree(levels, fallback=["person:carol"], reminders=1))
    assert main(["contacts", "show", "t", "--at", "2027-01-16T10:00:00Z", "--json"]) == 0  # a Saturday
    rows = json.loads(capsys.readouterr().out)["entries"]
    assert [(r["offset"], r["what"], r["note"]) for r in rows] == [
        ("0s", "level 0 (level 0)", "ack within 5m"),
        ("5m", "level 1 (level 1)", "skipped: outside its active hours"),
        ("5m", "exhausted: fallback", "ack-SLO breach recorded"),
        ("15m", "reminder 1", ""),
    ]
    assert len(rows[0]["who"]) == 1  # round robin: one of alice and bob
    assert rows[0]["who"][0] in ("person:alice", "person:bob")


def test_the_shipped_library_validates(capsys: pytest.CaptureFixture[str]) -> None:
    repo = Path(__file__).resolve().parents[3]
    code, lines = _validate(capsys, repo / "playbooks")
    assert code == 0, lines
    assert yaml.safe_load((repo / "playbooks" / "people.yaml").read_text())["kind"] == "Directory"


def test_the_schema_includes_trees_and_the_directory(capsys: pytest.CaptureFixture[str]) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (a Prefect dependency) checks the schema")

    assert main(["schema"]) == 0
    defs = json.loads(capsys.readouterr().out)["$defs"]
    repo = Path(__file__).resolve().parents[3]
    for name, path in (("contact_tree", "playbooks/contact-trees/ml-platform-primary.yaml"),
                       ("directory", "playbooks/people.yaml")):  # fmt: skip
        validator = jsonschema.Draft202012Validator({"$defs": defs, "$ref": f"#/$defs/{name}"})
        document = yaml.safe_load((repo / path).read_text())
        assert list(validator.iter_errors(document)) == []
        document["levels" if name == "contact_tree" else "people"][0]["pager"] = "x"
        assert list(validator.iter_errors(document))  # an unknown key is refused


def test_people_settings_load_from_the_environment(tmp_path: Path) -> None:
    from flows.config import load_settings
    from flows.people.settings import directory_path, trees_dir

    env = {"FIRELINE_PEOPLE_SMTP_HOST": "127.0.0.1", "FIRELINE_PEOPLE_DIRECTORY": str(tmp_path / "org.yaml"),
           "FIRELINE_PLAYBOOKS_DIR": str(tmp_path)}  # fmt: skip
    loaded = load_settings(environ=env)
    assert loaded.people.smtp_host == "127.0.0.1"
    assert directory_path(loaded, tmp_path / "elsewhere") == tmp_path / "org.yaml"  # the setting wins
    assert trees_dir(loaded) == tmp_path / "contact-trees"
