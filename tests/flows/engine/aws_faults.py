"""A loopback proxy in front of the moto server that injects faults into chosen API operations.

The engine talks to the proxy exactly as to AWS (real boto3, real HTTP); the proxy forwards every
request to moto unless a rule matches the operation (``Action=`` of the EC2 query protocol, or the
``X-Amz-Target`` of JSON protocols): then it answers with an error, or holds the request for a
while before forwarding it, the way a slow or failing API does.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Fault:
    """What to do with an operation: hold it ``delay`` seconds, or answer ``status`` with ``code``."""

    delay: float = 0.0
    status: int | None = None
    code: str = "InternalError"


@dataclass
class FaultProxy:
    upstream: str
    faults: dict[str, Fault] = field(default_factory=dict)
    seen: Counter[str] = field(default_factory=Counter)
    endpoint: str = ""
    released: threading.Event = field(default_factory=threading.Event)  # ends every delay at once


def _operation(handler: BaseHTTPRequestHandler, body: bytes) -> str:
    target = handler.headers.get("X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1]
    fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
    return fields.get("Action", [""])[0]


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    up = urllib.parse.urlsplit(proxy.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            op = _operation(self, body)
            proxy.seen[op] += 1
            fault = proxy.faults.get(op)
            if fault is not None and fault.status is not None:
                payload = (
                    f"<Response><Errors><Error><Code>{fault.code}</Code><Message>injected</Message></Error>"
                    "</Errors><RequestID>x</RequestID></Response>"
                ).encode()
                self.send_response(fault.status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            if fault is not None and fault.delay:
                proxy.released.wait(fault.delay)
            conn = http.client.HTTPConnection(up.hostname or "127.0.0.1", up.port or 80, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            conn.request(self.command, self.path, body=body or None, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            conn.close()

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def fault_proxy(upstream: str, faults: dict[str, Fault] | None = None) -> Iterator[FaultProxy]:
    """A running proxy to ``upstream``; stopped (and every held request released) on exit."""
    proxy = FaultProxy(upstream, dict(faults or {}))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    server.daemon_threads = True
    proxy.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.released.set()
        server.shutdown()
        server.server_close()
