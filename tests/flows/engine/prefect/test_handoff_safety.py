"""Hand-off safety: a run goes to ``fireline serve`` only with the caller's own settings; a dead server is said."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from flows.cli import main
from flows.config import load_settings
from flows.engine.handoff import effective_settings, follow_run, state_path, try_handoff, write_state
from flows.engine.prefect_server import process_start_time
from flows.errors import RunError

BOOK = """\
apiVersion: fireline/v1
kind: Playbook
metadata: {name: handoff-check, version: 1, title: Hand-off check}
steps:
  - id: note
    action: log
    with: {message: hi}
"""


@pytest.fixture
def fake_serve() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """A loopback stand-in for serve that records each POST and answers 409 (settings differ)."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            body = json.dumps({"error": "aws.region differs (server check)", "mismatch": True}).encode()
            self.send_response(409)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], received
    server.shutdown()


def _write_serve_state(port: int, settings_doc: dict[str, Any]) -> None:
    settings = load_settings()
    doc = {"pid": os.getpid(), "start": process_start_time(os.getpid()), "port": port, "token": "t",
           "prefect_api_url": "http://127.0.0.1:1/api", "settings": settings_doc}  # fmt: skip
    write_state(state_path(settings), doc)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"aws.endpoint_url": "http://127.0.0.1:5000"}, "aws.endpoint_url differs"),
        ({"aws.region": "eu-west-1"}, "aws.region differs"),
        ({"aws.profile": "prod"}, "aws.profile differs"),
        ({"aws.credentials": "0" * 16}, "AWS credentials differ"),
        ({"runs_dir": "/elsewhere/runs"}, "runs_dir differs"),
        ({"dispatch": "deployment"}, "Prefect workers"),
    ],
)
def test_a_server_with_other_settings_is_not_used(
    fake_serve: tuple[int, list[dict[str, Any]]], change: dict[str, Any], reason: str
) -> None:
    port, received = fake_serve
    mine = effective_settings(load_settings())
    _write_serve_state(port, {**mine, **change})
    why: list[str] = []
    assert try_handoff({"playbook": "x"}, load_settings(), why) is None
    assert reason in why[0]
    assert received == []  # decided before any request


def test_run_says_why_it_runs_here_and_local_never_asks(
    fake_serve: tuple[int, list[dict[str, Any]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port, received = fake_serve
    _write_serve_state(port, effective_settings(load_settings()))
    book = tmp_path / "b.yaml"
    book.write_text(BOOK)
    assert main(["run", str(book), "--dry-run"]) == 0
    assert len(received) == 1
    assert received[0]["settings"] == effective_settings(load_settings())
    assert "aws.region differs (server check); running in this process" in capsys.readouterr().err
    assert main(["run", str(book), "--dry-run", "--local"]) == 0
    assert len(received) == 1


def test_a_follower_whose_server_died_says_so(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"status": "running"}))
    with pytest.raises(RunError, match=r"died while run r1 was going on; continue it with: fireline resume r1"):
        for _ in follow_run(run_dir, timeout=3600, server={"pid": gone.pid, "start": "1"}):
            pass


def test_hand_off_over_tls_trusts_the_servers_certificate(tmp_path: Path) -> None:
    import datetime
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fireline-serve")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps({"run_id": "r", "run_dir": "/tmp/r", "mode": "live", "status": "accepted"}).encode()
            self.send_response(202)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        settings = load_settings()
        doc = {
            "pid": os.getpid(),
            "start": process_start_time(os.getpid()),
            "port": server.server_address[1],
            "token": "t",
            "tls": True,
            "tls_cert": str(cert_file),
            "settings": effective_settings(settings),
        }
        write_state(state_path(settings), doc)
        answer = try_handoff({"playbook": "x"}, settings)
        assert answer is not None
        assert answer["run_id"] == "r"
    finally:
        server.shutdown()
