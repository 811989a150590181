"""report.html in a real headless Chromium: the SVG timeline is laid out with its bars, nothing is fetched.

Chromium is Debian's ``chromium`` package (``/usr/bin/chromium``); the test set-up installs it. Under
``CI=true`` a missing Chromium fails this test instead of skipping it. ``REGEN_DOCS_PNG=1`` also
writes the screenshot to ``docs/images/report-timeline.png``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from flows.report import build, render
from tests.flows.report.cdp import chromium_page, find_chromium, screenshot
from tests.flows.report.conftest import NOW, RUNS

DOCS_PNG = Path(__file__).resolve().parents[3] / "docs" / "images" / "report-timeline.png"
_LAYOUT = """JSON.stringify((() => {
  const svg = document.querySelector('svg#timeline');
  if (!svg) return null;
  const box = svg.getBoundingClientRect();
  const bars = [...svg.querySelectorAll('rect.bar')].map(b => b.getBoundingClientRect());
  const inside = b => b.width > 0 && b.height > 0 && b.left >= box.left && b.right <= box.right + 1;
  return {width: box.width, height: box.height, bars: bars.length, laid_out: bars.filter(inside).length,
          milestones: svg.querySelectorAll('line.milestone').length,
          marks: svg.querySelectorAll('path.mark').length,
          title: document.title};
})())"""


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = find_chromium()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (apt-get install -y chromium); CI must run this test")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return binary


@pytest.mark.slow
def test_report_html_renders_its_timeline_and_fetches_nothing(chromium: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(RUNS / "succeeded", run)
    html = run / "report.html"
    ctx = build(run, now=NOW)
    html.write_text(render(ctx, "html"), encoding="utf-8")
    expected_bars = sum(1 + min(len(s["items"]), 12) for s in ctx["actions"])
    png = tmp_path / "report.png"
    with chromium_page(chromium) as page:
        page.send("Network.enable")
        page.send("Page.enable")
        page.send("Page.navigate", url=html.as_uri())
        page.wait_for("Page.loadEventFired")
        value = page.send("Runtime.evaluate", expression=_LAYOUT, returnByValue=True)["result"]["value"]
        screenshot(page, png)
        requests = [e["params"]["request"]["url"] for e in page.events if e["method"] == "Network.requestWillBeSent"]
    layout = json.loads(value)
    assert layout is not None, "no svg#timeline in the rendered page"
    assert layout["width"] > 500
    assert layout["height"] > 100
    assert layout["bars"] == expected_bars
    assert layout["laid_out"] == expected_bars
    assert layout["milestones"] >= 1
    assert layout["marks"] >= 1
    assert "compromised-inference-host@1" in layout["title"]
    assert requests == [html.as_uri()]  # the report itself, and nothing else
    assert png.read_bytes().startswith(b"\x89PNG")
    assert png.stat().st_size > 10_000
    if os.environ.get("REGEN_DOCS_PNG") == "1":
        DOCS_PNG.parent.mkdir(exist_ok=True)
        shutil.copyfile(png, DOCS_PNG)
