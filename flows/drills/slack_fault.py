"""The ``slack_429`` fault: a loopback proxy in front of the Slack Web API that rate-limits.

The drill points ``[slack] base_url`` at the proxy. Its first ``times`` requests are answered
``429 Too Many Requests`` with ``Retry-After: 1`` and Slack's ``ratelimited`` body, as Slack does
(Slack API docs, "Rate limits"); every other request is forwarded to the configured Web API and
its answer relayed unchanged. The real ``slack_sdk.WebClient`` and its rate-limit retry handler
see a real HTTP 429: nothing in the SDK is replaced. The retry handler sleeps ``Retry-After`` of
real time, so each injected 429 costs about a second of wall time.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_FORWARDED = ("Authorization", "Content-Type")


class SlackRateLimiter:
    """A started proxy: ``base_url`` to give the drill's settings, ``answered_429`` once it ran."""

    def __init__(self, upstream: str, times: int) -> None:
        self.upstream = upstream if upstream.endswith("/") else upstream + "/"
        self.remaining = times
        self.answered_429 = 0
        self.forwarded = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # the drill's record says what happened
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy.lock:
                    limited = proxy.remaining > 0
                    if limited:
                        proxy.remaining -= 1
                        proxy.answered_429 += 1
                    else:
                        proxy.forwarded += 1
                if limited:
                    self._answer(429, b'{"ok": false, "error": "ratelimited"}',
                                 {"Content-Type": "application/json", "Retry-After": "1"})  # fmt: skip
                    return
                self._forward(body)

            def _forward(self, body: bytes) -> None:
                headers = {k: v for k in _FORWARDED if (v := self.headers.get(k))}
                request = urllib.request.Request(proxy.upstream + self.path.lstrip("/"), body, headers, method="POST")
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        self._answer(answer.status, answer.read(), dict(answer.headers))
                except urllib.error.HTTPError as e:
                    self._answer(e.code, e.read(), dict(e.headers))

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() in ("content-type", "retry-after"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="drill-slack-429", daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
