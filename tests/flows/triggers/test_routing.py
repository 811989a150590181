"""Routing: matchers with Alertmanager's semantics, severity, incident keys, and the library overlap warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.cli import main
from flows.language.spec import Trigger
from flows.triggers.matchers import parse_matcher
from flows.triggers.model import Alert
from flows.triggers.overlap import triggers_overlap
from flows.triggers.routing import explain, load_library, route


@pytest.mark.parametrize(
    ("matcher", "labels", "expected"),
    [
        ("env=prod", {"env": "prod"}, True),
        ("env!=prod", {"env": "dev"}, True),
        ('severity=~"critical|high"', {"severity": "high"}, True),
        ("severity=~crit", {"severity": "critical"}, False),  # anchored
        ("team!~ml-.*", {"team": "ml-infra"}, False),
        ('team=""', {}, True),  # a missing label is the empty string
        ('team!=""', {}, False),
    ],
)
def test_matchers(matcher: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(matcher).matches(labels) is expected


def test_bad_matchers_are_validation_errors() -> None:
    with pytest.raises(ValueError, match="bad regex"):
        Trigger(source="generic", matchers=["a=~("])
    with pytest.raises(ValueError, match="is not name=value"):
        Trigger(source="generic", matchers=["just text"])


def test_route_and_why_not(library: Path) -> None:
    books = load_library(library)
    alert = Alert(source="alertmanager", labels={"alertname": "InferenceHostSuspiciousEgress", "severity": "warning"})
    assert route(alert, books) == []
    reasons = {v.playbook: " ".join(v.reasons) for v in explain(alert, books)}
    assert "severity=~'critical|high' does not hold" in reasons["egress-host"]
    critical = alert.model_copy(update={"labels": {**alert.labels, "severity": "critical"}})
    (found,) = route(critical, books)
    assert found.key == f"egress-host:{critical.fingerprint}"
    dev = critical.model_copy(update={"labels": {**critical.labels, "env": "dev"}})
    assert route(dev, books) == []


def test_group_by_key() -> None:
    from flows.language.spec import Playbook
    from flows.triggers.routing import incident_key

    book = Playbook.model_validate({
        "apiVersion": "fireline/v1", "kind": "Playbook", "metadata": {"name": "b", "version": 1, "title": "B"},
        "triggers": [{"source": "generic", "group_by": ["alertname"]}],
        "steps": [{"id": "a", "action": "log", "with": {"message": "x"}}],
    })  # fmt: skip
    a = Alert(labels={"alertname": "X", "host": "1"})
    b = Alert(labels={"alertname": "X", "host": "2"})
    assert a.fingerprint != b.fingerprint
    assert incident_key(book, book.triggers[0], a) == incident_key(book, book.triggers[0], b)


def test_overlap() -> None:
    a = Trigger(source="alertmanager", match={"alertname": "X"})
    assert triggers_overlap(a, Trigger(source="alertmanager", matchers=["alertname=~X|Y"]))
    assert not triggers_overlap(a, Trigger(source="alertmanager", match={"alertname": "Y"}))
    assert not triggers_overlap(a, Trigger(source="grafana", match={"alertname": "X"}))
    assert not triggers_overlap(a, Trigger(source="alertmanager", matchers=["alertname!=X"]))
    assert not triggers_overlap(
        Trigger(source="generic", severity=["critical"]), Trigger(source="generic", severity=["low"])
    )


def test_lint_warns_when_one_alert_matches_two_playbooks(library: Path, capsys: pytest.CaptureFixture[str]) -> None:
    twin = (library / "egress-host.yaml").read_text().replace("name: egress-host", "name: egress-host-twin")
    (library / "egress-twin.yaml").write_text(twin)
    main(["lint", str(library)])
    out = capsys.readouterr().out
    assert "W520" in out
    assert "egress-host-twin" in out
    assert "egress-twin.yaml:" in out


def test_triggers_test_command(library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import json

    monkeypatch.setenv("FIRELINE_PLAYBOOKS_DIR", str(library))
    alert = tmp_path / "a.json"
    alert.write_text(json.dumps({"source": "alertmanager", "labels": {"alertname": "GroupEgress"}}))
    assert main(["triggers", "test", str(alert)]) == 0
    out = capsys.readouterr().out
    assert "starts egress-group" in out
    assert "not egress-host" in out
    alert.write_text(json.dumps({"labels": {"alertname": "Nothing"}}))
    assert main(["triggers", "test", str(alert), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["alerts"][0]["matches"] == []
