"""``fireline run --alert FILE``: bounded reading, clean errors, and every incident of a grouped payload."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from flows.cli import main
from flows.engine.alerts import MAX_ALERT_BYTES, load_alert_batch
from flows.triggers.model import AlertError

CASE = Path("/work/shared/cases/01-alertmanager-grouped-alerts")
CASE_ALERT = Path(__file__).parent / "data" / "grouped-alerts.json"
LOG_BOOK = """\
apiVersion: fireline/v1
kind: Playbook
metadata: {name: isolate-alerting-host, version: 1, title: Isolate the host named by the alert, severity: critical}
triggers:
  - source: alertmanager
    match: {alertname: InferenceHostSuspiciousEgress}
inputs:
  instance_id: {type: string, default: "{{ alert.labels.instance_id }}"}
steps:
  - id: isolate
    action: log
    with: {message: "isolate {{ inputs.instance_id }}"}
"""


def test_dev_zero_is_refused_by_reading_not_by_size() -> None:
    with pytest.raises(AlertError, match=f"over the {MAX_ALERT_BYTES} byte cap"):
        load_alert_batch(Path("/dev/zero"))


def test_fifo_is_read_with_the_cap(tmp_path: Path) -> None:
    fifo = tmp_path / "alert.fifo"
    os.mkfifo(fifo)

    def write(data: bytes) -> None:
        try:
            with fifo.open("wb") as fh:
                fh.write(data)
        except BrokenPipeError:
            pass  # the reader stopped at the cap

    writer = threading.Thread(target=write, args=(b" " * (MAX_ALERT_BYTES + 10),))
    writer.start()
    with pytest.raises(AlertError, match="byte cap"):
        load_alert_batch(fifo)
    writer.join(10)
    writer = threading.Thread(target=write, args=(b'{"labels": {"a": "b"}}',))
    writer.start()
    assert load_alert_batch(fifo).alerts[0].labels == {"a": "b"}
    writer.join(10)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[" * 200_000 + b"]" * 200_000, "nested deeper"),
        (b'{"labels": {"a": "x"}, "raw": NaN}', "NaN is not valid JSON"),
        (b'{"labels": {"a": "x"}, "raw": -Infinity}', "Infinity is not valid JSON"),
        (b'{"labels": {"a": "x"}, "raw": 1e400}', "out of range"),
        (b'{"labels": {"a": "\\udc00"}}', "lone surrogate"),
        (b'{"labels": {"a": "x"}, "raw": ' + b"9" * 5000 + b"}", "alert.json"),
    ],
    ids=["deep", "nan", "inf", "overflow", "surrogate", "huge-int"],
)
def test_hostile_json_is_one_clean_line(
    tmp_path: Path, content: bytes, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "alert.json"
    path.write_bytes(content)
    with pytest.raises(AlertError, match=message):
        load_alert_batch(path)
    book = tmp_path / "b.yaml"
    book.write_text(LOG_BOOK)
    assert main(["run", str(book), "--alert", str(path), "--dry-run", "--local"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "Traceback" not in err
    assert "RecursionError" not in err
    assert not (Path(os.environ["FIRELINE_RUNS_DIR"])).exists() or not any(
        Path(os.environ["FIRELINE_RUNS_DIR"]).iterdir()
    )


def json_docs(text: str) -> list[dict[str, object]]:
    decoder, docs, at = json.JSONDecoder(), [], 0
    while (at := text.find("{", at)) >= 0:
        doc, end = decoder.raw_decode(text, at)
        docs.append(doc)
        at = end
    return docs


def _case_alert(tmp_path: Path) -> Path:
    text = (CASE / "alert.template.json").read_text() if CASE.is_dir() else CASE_ALERT.read_text()
    path = tmp_path / "alert.json"
    path.write_text(text.replace("@HOST1@", "i-0aaa").replace("@HOST2@", "i-0bbb"))
    return path


def test_grouped_alertmanager_case_reaches_both_hosts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    book = tmp_path / "isolate-alerting-host.yaml"
    book.write_text(LOG_BOOK)
    assert main(["run", str(book), "--alert", str(_case_alert(tmp_path)), "--dry-run", "--local", "--json"]) == 0
    docs = json_docs(capsys.readouterr().out)
    assert len(docs) == 2
    hosts = []
    for doc in docs:
        run = json.loads((Path(str(doc["run_dir"])) / "run.json").read_text())
        hosts.append(run["inputs"]["instance_id"])
        assert run["alert"]["raw"]["alerts"][0]["fingerprint"] == "1111111111111111"  # the whole payload is kept
    assert sorted(hosts) == ["i-0aaa", "i-0bbb"]


def test_grouped_grafana_sibling_and_resolved_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    payload = json.loads(_case_alert(tmp_path).read_text())
    grafana = {**payload, "version": "1", "orgId": 1}
    path = tmp_path / "grafana.json"
    path.write_text(json.dumps(grafana))
    book = tmp_path / "isolate-alerting-host.yaml"
    book.write_text(LOG_BOOK.replace("source: alertmanager", "source: grafana"))
    assert main(["run", str(book), "--alert", str(path), "--dry-run", "--local", "--json"]) == 0
    assert len(json_docs(capsys.readouterr().out)) == 2
    resolved = {**payload, "status": "resolved", "alerts": [{**a, "status": "resolved"} for a in payload["alerts"]]}
    path.write_text(json.dumps(resolved))
    runs = Path(os.environ["FIRELINE_RUNS_DIR"])
    before = len(list(runs.iterdir()))
    assert main(["run", str(book), "--alert", str(path), "--dry-run", "--local"]) == 1
    err = capsys.readouterr().err
    assert "never starts a run" in err
    assert "\n" not in err.strip()
    assert len(list(runs.iterdir())) == before


@pytest.mark.parametrize(
    "alert",
    ['{"labels": {"a": "b"}, "raw": NaN}', '{"labels": {"a": "b"}, "raw": [1e400]}', '{"labels": {"a": "\\ud800"}}'],
    ids=["nan", "inf", "surrogate"],
)
def test_run_requests_never_carry_nan_or_surrogates_into_the_record(tmp_path: Path, alert: str) -> None:
    import asyncio

    import httpx

    from flows.config import Settings
    from flows.engine.serve import RunManager, build_app

    book = tmp_path / "isolate-alerting-host.yaml"
    book.write_text(LOG_BOOK)
    manager = RunManager(Settings(runs_dir=tmp_path / "runs", playbooks_dir=tmp_path, home=tmp_path / "home"))
    app = build_app(manager, "tok")
    body = '{"playbook": "%s", "mode": "dry-run", "alert": %s}' % (book, alert)  # noqa: UP031  # raw JSON on purpose

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.post("/runs", content=body, headers={"Authorization": "Bearer tok"})

    answer = asyncio.run(go())
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert "alert: not valid JSON data" in error or "Invalid JSON" in error  # pydantic refuses a lone surrogate
    assert not (tmp_path / "runs").exists()
