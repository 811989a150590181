"""Serving the receiver: authentication is mandatory off loopback; alerts reach a run that is going on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from flows.cli import main
from flows.config import Settings
from flows.errors import ConfigError
from flows.triggers import live
from flows.triggers.config import SourceSettings, TriggersSettings
from flows.triggers.service import check_bind


def test_non_loopback_bind_needs_auth_on_every_enabled_source(capsys: pytest.CaptureFixture[str]) -> None:
    check_bind("127.0.0.1", Settings())
    check_bind("::1", Settings())
    with pytest.raises(ConfigError, match=r"triggers.sources.alertmanager.auth"):
        check_bind("0.0.0.0", Settings())  # the point of the test
    key = SecretStr("k")
    sources = {name: SourceSettings(auth="bearer", secret=key) for name in ("alertmanager", "grafana", "datadog")}
    sources |= {
        "pagerduty": SourceSettings(auth="hmac", secret=key),
        "generic": SourceSettings(auth="hmac", secret=key),
    }
    with pytest.raises(ConfigError, match="cloudwatch needs topics"):
        check_bind("10.0.0.5", Settings(triggers=TriggersSettings(sources=sources)))
    sources["cloudwatch"] = SourceSettings(topics=["arn:aws:sns:eu-west-1:1:t"])
    check_bind("10.0.0.5", Settings(triggers=TriggersSettings(sources=sources)))
    assert main(["serve", "--host", "0.0.0.0"]) == 1
    err = capsys.readouterr().err.strip()
    assert "needs authentication" in err
    assert "\n" not in err
    assert main(["serve", "--tls-cert", "c.pem"]) == 2


class _Record:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def emit(
        self, type_: str, *, step: str | None = None, item: Any = None, detail: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        self.events.append((type_, detail or {}))
        return {}


def test_an_attached_alert_reaches_a_run_that_is_going_on(tmp_path: Path, library: Path) -> None:
    from flows.triggers.dispatcher import Dispatcher
    from flows.triggers.spool import Spool

    spool = Spool(tmp_path / "spool.db")
    record, scope = _Record(), {"alerts": [{"labels": {"instance_id": "i-1"}}]}
    live.register("run-1", record, scope)
    try:
        spool.add_note("run-1", "alert.attached", {"alert": {"labels": {"instance_id": "i-2"}}}, uniq="u1")
        Dispatcher(spool, starter=None, playbooks_dir=library, runs_dir=tmp_path / "runs").sweep()  # type: ignore[arg-type]
        assert [t for t, _ in record.events] == ["alert.attached"]
        assert [a["labels"]["instance_id"] for a in scope["alerts"]] == ["i-1", "i-2"]  # templates see it
        assert spool.notes("run-1") == []
    finally:
        live.unregister("run-1")
        spool.close()
