"""A headless Chromium driven over the DevTools protocol, for the report rendering test.

Chromium runs with every host name unresolvable and a proxy that does not exist, so a report that
tried to fetch anything could not; the test still records every request the page makes
(``Network.requestWillBeSent``) and asserts there was none beyond the report file itself.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("FIRELINE_TEST_CHROMIUM", "/usr/bin/chromium")


def find_chromium() -> str | None:
    if Path(CHROMIUM).is_file():
        return CHROMIUM
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One tab: send commands, collect events."""

    def __init__(self, ws: Any, session: str) -> None:
        self.ws = ws
        self.session = session
        self.events: list[dict[str, Any]] = []
        self._next = 0

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        while True:
            answer = json.loads(self.ws.recv(timeout=120))
            if answer.get("id") == self._next and answer.get("sessionId", "") == self.session:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result
            if "method" in answer:
                self.events.append(answer)

    def wait_for(self, method: str, timeout: float = 120.0) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            message = json.loads(self.ws.recv(timeout=timeout))
            if "method" in message:
                self.events.append(message)
                if message["method"] == method:
                    return message


@contextmanager
def chromium_page(binary: str, width: int = 1280, height: int = 1600) -> Iterator[Page]:
    """A fresh headless Chromium with one tab; every network name resolution and proxy fails."""
    from websockets.sync.client import connect

    profile = tempfile.mkdtemp(prefix="fireline-chromium-")
    args = [
        binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",
        f"--user-data-dir={profile}", f"--window-size={width},{height}", "--remote-debugging-port=0", "about:blank",
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        url = None
        for line in proc.stderr:  # Chromium announces its DevTools endpoint on stderr
            if line.startswith("DevTools listening on "):
                url = line.split(" on ", 1)[1].strip()
                break
        if url is None:
            raise RuntimeError(f"chromium exited ({proc.wait()}) without a DevTools endpoint")
        # Keep reading its stderr: a full pipe would block Chromium's logging, and then the page.
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        with connect(url, max_size=None, open_timeout=60) as ws:
            browser = Page(ws, "")
            target = browser.send("Target.createTarget", url="about:blank")["targetId"]
            session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            page = Page(ws, session)
            page.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                      mobile=False)  # fmt: skip
            yield page
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(page: Page, path: Path) -> None:
    data = page.send("Page.captureScreenshot", format="png")["data"]
    path.write_bytes(base64.b64decode(data))
