"""Typed inputs and alert files, validated before a run exists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flows.engine.alerts import MAX_ALERT_BYTES, AlertFileError, from_alertmanager, load_alert_file, normalise
from flows.engine.inputs import InputError, parse_pairs, resolve_inputs
from flows.language.spec import Playbook

BOOK = Playbook.model_validate(
    {
        "apiVersion": "fireline/v1",
        "kind": "Playbook",
        "metadata": {"name": "b", "version": 1, "title": "B"},
        "inputs": {
            "ids": {"type": "list[string]", "required": True},
            "count": {"type": "int", "default": 2},
            "ratio": {"type": "float", "default": 0.5},
            "force": {"type": "bool", "default": False},
            "wait": {"type": "duration", "default": "5m"},
            "ports": {"type": "list[int]"},
            "extra": {"type": "dict"},
            "endpoint": {"type": "string", "default": "{{ alert.labels.endpoint }}"},
            "level": {"type": "string", "choices": ["low", "high"], "default": "low"},
        },
        "steps": [{"id": "a", "action": "log", "with": {"message": "x"}}],
    }
)
SCOPE = {"alert": {"labels": {"endpoint": "ep-1"}}, "incident": {"id": "i"}}


def test_coercion_and_defaults() -> None:
    given = parse_pairs(["ids=i-1, i-2", "count=3", "force=yes", "ports=[80, 443]", 'extra={"a": 1}', "ratio=1.5"])
    got = resolve_inputs(BOOK, given, SCOPE)
    assert got == {
        "ids": ["i-1", "i-2"],
        "count": 3,
        "ratio": 1.5,
        "force": True,
        "wait": "5m",
        "ports": [80, 443],
        "extra": {"a": 1},
        "endpoint": "ep-1",
        "level": "low",
    }
    assert resolve_inputs(BOOK, {"ids": '["a"]'}, SCOPE)["ids"] == ["a"]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "missing required input 'ids'"),
        ({"ids": "a", "count": "three"}, "input 'count': expected an integer"),
        ({"ids": "a", "force": "maybe"}, "input 'force': expected true or false"),
        ({"ids": "a", "wait": "soon"}, "input 'wait'"),
        ({"ids": "a", "nope": "1"}, "unknown input 'nope'"),
        ({"ids": "a", "level": "mid"}, "is not one of"),
        ({"ids": "a", "extra": "[1]"}, "expected an object"),
        ({"ids": 5}, "expected a list"),
        ({"ids": "a", "ports": "80,x"}, "expected an integer"),
    ],
)
def test_bad_inputs_are_one_line_errors(given: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        resolve_inputs(BOOK, given, SCOPE)
    assert "\n" not in str(caught.value)


def test_parse_pairs_errors() -> None:
    with pytest.raises(InputError, match="NAME=VALUE"):
        parse_pairs(["novalue"])
    with pytest.raises(InputError, match="twice"):
        parse_pairs(["a=1", "a=2"])
    assert parse_pairs(["url=http://x/?a=b"]) == {"url": "http://x/?a=b"}


ALERTMANAGER = {
    "version": "4",
    "groupKey": '{}:{alertname="X"}',
    "status": "firing",
    "receiver": "fireline",
    "groupLabels": {"alertname": "X"},
    "commonLabels": {"alertname": "X", "severity": "critical"},
    "commonAnnotations": {"summary": "egress"},
    "externalURL": "http://am",
    "truncatedAlerts": 0,
    "alerts": [
        {
            "status": "resolved",
            "labels": {"instance": "i-0"},
            "annotations": {},
            "startsAt": "2026-01-01T00:00:00Z",
            "endsAt": "2026-01-01T00:05:00Z",
            "generatorURL": "",
            "fingerprint": "aaa",
        },
        {
            "status": "firing",
            "labels": {"instance": "i-1"},
            "annotations": {"summary": "more"},
            "startsAt": "2026-01-01T00:01:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": "bbb",
        },
    ],
}


def test_alertmanager_v4_is_normalised() -> None:
    alert = normalise(ALERTMANAGER)
    assert alert.source == "alertmanager"
    assert alert.status == "firing"
    assert alert.fingerprint == "bbb"
    assert alert.labels == {"alertname": "X", "severity": "critical", "instance": "i-1"}
    assert alert.annotations == {"summary": "more"}
    assert alert.ends_at is None
    assert alert.raw == ALERTMANAGER
    assert [a.status for a in from_alertmanager(ALERTMANAGER)] == ["resolved", "firing"]


def test_normalised_form_takes_defaults() -> None:
    alert = normalise({"labels": {"a": "b"}})
    assert alert.status == "firing"
    assert alert.source == "generic"
    assert alert.fingerprint
    assert alert.annotations == {}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON"),
        ('["a"]', "must be a JSON object"),
        ('{"labels": {"a": 1}}', "labels.a"),
        ('{"labelz": {}}', "labelz"),
        ('{"version": "4", "alerts": []}', "non-empty list"),
        ('{"version": "4", "alerts": [{"labels": {"a": ["x"]}}]}', "map strings to strings"),
    ],
)
def test_malformed_alert_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "alert.json"
    path.write_text(content)
    with pytest.raises(AlertFileError, match=message):
        load_alert_file(path)


def test_oversized_and_missing_alert_files(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"labels": {"x": "a" * MAX_ALERT_BYTES}}))
    with pytest.raises(AlertFileError, match="over the 1048576 byte cap"):
        load_alert_file(path)
    with pytest.raises(AlertFileError, match="cannot read"):
        load_alert_file(tmp_path / "missing.json")
