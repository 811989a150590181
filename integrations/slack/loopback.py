"""A loopback stand-in for the Slack Web API, for the sandbox, the tests and the benchmark.

The real ``slack_sdk.WebClient`` talks to it with ``base_url=server.base_url`` (ends in ``/``). It
implements the methods fireline calls, with Slack's documented response shapes and error codes
(Slack API reference, one page per method): ``conversations.create`` (``name_taken``,
``invalid_name_specials``), ``conversations.info|list|invite|join|setTopic|setPurpose``,
``users.lookupByEmail`` (``users_not_found``), ``chat.postMessage`` (``not_in_channel``,
``channel_not_found``; a user id as the channel is the app's DM with that user), ``chat.update``
(``message_not_found``), ``chat.postEphemeral``, ``usergroups.users.list`` and ``views.open``.
Every request is recorded (method, parameters, arrival time), and :meth:`SlackWorkspace.rate_limit`
makes the next calls of a method answer HTTP 429 with ``Retry-After`` (Slack API docs, "Rate
limits": the body is ``{"ok": false, "error": "ratelimited"}``).

It is deliberately small: one workspace, one bot user (``U0FIRELINE``) that creates the channels it
is a member of, and no persistence.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from integrations.slack.loopback_api import handle
from integrations.slack.loopback_workspace import BOT_USER, TOKEN, Message, Request, SlackError, SlackWorkspace

__all__ = ["BOT_USER", "TOKEN", "Message", "Request", "SlackError", "SlackLoopback", "SlackWorkspace"]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests and the demo read the record
        return

    def _params(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8") if length else ""
        query = self.path.partition("?")[2]
        params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(query).items()}
        if "json" in (self.headers.get("Content-Type") or ""):
            params.update(json.loads(body or "{}"))
        else:
            params.update({k: v[-1] for k, v in parse_qs(body).items()})
        return params

    def _answer(self) -> None:
        method = self.path.split("?")[0].removeprefix("/api/").strip("/")
        try:
            params = self._params()
        except (ValueError, UnicodeDecodeError):
            status, body, headers = 200, {"ok": False, "error": "invalid_json"}, dict[str, str]()
        else:
            status, body, headers = handle(self.server.workspace, method, params, self.headers.get("Authorization"))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = _answer
    do_POST = _answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    workspace: SlackWorkspace


class SlackLoopback:
    """The loopback server: ``start()``, ``base_url``, ``workspace``, ``stop()`` (also a context manager)."""

    def __init__(self, workspace: SlackWorkspace | None = None) -> None:
        self.workspace = workspace or SlackWorkspace()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the Slack loopback is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    def use(self, workspace: SlackWorkspace) -> SlackWorkspace:
        """Serve a fresh workspace from now on (tests reset state without restarting the server)."""
        self.workspace = workspace
        if self._server is not None:
            self._server.workspace = workspace
        return workspace

    def start(self) -> SlackLoopback:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.workspace = self.workspace
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="slack-loopback", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SlackLoopback:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
