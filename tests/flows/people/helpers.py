"""Helpers for the people tests: a loopback webhook receiver, a shared file clock, a small library.

Pages go out for real over HTTP (the built-in webhook notifier) to :class:`Receiver`, and the tests
check what it received. :class:`FileClock` is virtual time kept in a file, so a run and its resume
in other processes read the same clock, which the test moves.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from flows.actions.registry import Registry
from flows.config import Settings
from flows.engine.waits import REAL_POLL

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z, a Friday morning
WAIT = 60.0  # seconds of real time a test waits for something that must happen before it fails


@dataclass
class Receiver:
    """A loopback HTTP server that records every POSTed JSON body (path, body)."""

    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 200
    _cond: threading.Condition = field(default_factory=threading.Condition)
    server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with owner._cond:
                    owner.received.append((self.path, json.loads(body)))
                    owner._cond.notify_all()
                self.send_response(owner.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/{path}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def paths(self) -> list[str]:
        with self._cond:
            return [p.strip("/") for p, _ in self.received]

    def wait_for(self, predicate: Callable[[list[str]], bool], what: str) -> None:
        """Block until ``predicate(paths)`` holds; fail (never hang) after :data:`WAIT` seconds."""
        with self._cond:
            ok = self._cond.wait_for(lambda: predicate([p.strip("/") for p, _ in self.received]), timeout=WAIT)
        assert ok, f"{what}: received only {self.paths()}"


def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    try:
        yield r
    finally:
        r.stop()


class FileClock:
    """Virtual epoch seconds stored in a file: every process that reads it sees the same time."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def set(self, moment: float) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(repr(moment))
        os.replace(tmp, self.path)

    def now(self) -> float:
        return float(self.path.read_text())

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(min(REAL_POLL, max(0.0, seconds)))


def wait_until(check: Callable[[], bool], what: str) -> None:
    """Poll ``check`` (a file written by another process) until true; fail after :data:`WAIT` seconds."""
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


PEOPLE: dict[str, Any] = {
    "apiVersion": "fireline/v1",
    "kind": "Directory",
    "metadata": {"name": "test-org", "version": 3},
    "people": [
        {"id": "alice", "name": "Alice A", "email": "alice@example.com", "slack_user_id": "U0ALICE1",
         "groups": ["ml-security"], "unix_logins": ["alice", "oncall-box"], "drill_ok": True},
        {"id": "bob", "name": "Bob B", "email": "bob@example.com", "groups": ["ml-security"], "unix_logins": ["bob"]},
        {"id": "carol", "name": "Carol C", "email": "carol@example.com", "groups": ["leads"],
         "unix_logins": ["carol", "oncall-box"]},
    ],
}  # fmt: skip


def tree(levels: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "fireline/v1", "kind": "ContactTree", "metadata": {"name": "t", "version": 2},
            "levels": levels, **extra}  # fmt: skip


def write_library(tmp: Path, tree_doc: dict[str, Any], steps: list[dict[str, Any]] | None = None,
                  people: Any = None, **playbook: Any) -> Path:  # fmt: skip
    """A library in ``<tmp>/playbooks``: people.yaml (none when ``people`` is False), contact-trees/t.yaml
    and book.yaml (returned)."""
    lib = tmp / "playbooks"
    (lib / "contact-trees").mkdir(parents=True, exist_ok=True)
    if people is not False:
        (lib / "people.yaml").write_text(yaml.safe_dump(people or PEOPLE, sort_keys=False))
    (lib / "contact-trees" / "t.yaml").write_text(yaml.safe_dump(tree_doc, sort_keys=False))
    doc = {
        "apiVersion": "fireline/v1", "kind": "Playbook",
        "metadata": {"name": "book", "version": 1, "title": "People test", "severity": "high"},
        "contacts": "t",
        "steps": steps or [{"id": "page", "action": "contacts.page", "with": {"message": "host on fire"}}],
        **playbook,
    }  # fmt: skip
    path = lib / "book.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def settings(tmp: Path) -> Settings:
    return Settings(home=tmp / "home", runs_dir=tmp / "runs", playbooks_dir=tmp / "playbooks")


def registry() -> Registry:
    from tests.flows.engine.engine_helpers import make_registry

    found = make_registry()
    found.register_module("flows.people.page")
    return found


def levels_of(rec: Receiver) -> list[str]:
    """The paths that received a page, in order (one per page sent)."""
    return rec.paths()
