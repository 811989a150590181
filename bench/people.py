"""People benchmarks. Prints figures and ratios, never asserts.

Sections, each a function of its own:

- :func:`page_storm` (Slack): one run that records ~200 timeline events in a burst, with the
  Slack timeline on a loopback Slack Web API that answers some posts with HTTP 429. Goals: about one
  message a second per channel at the fake (pacing kept), 0 timeline entries lost or repeated.
  Baseline, measured in the same run: posting one message per event with no pacing, as a naive
  timeline would.

Run: ``.venv/bin/python bench/people.py [--events 200] [--interval 1.0] [--rate-limits 3]``.
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


# -- page storm (Slack timeline) -------------------------------------------------------------------
def _storm_playbook(folder: Path, steps: int) -> Path:
    """A playbook of ``steps`` independent log steps (3 events each: started, log, succeeded)."""
    lines = ["apiVersion: fireline/v1", "kind: Playbook",
             "metadata: {name: storm, version: 1, title: Page storm, severity: high}", "steps:"]  # fmt: skip
    lines += [f"  - {{id: s{i}, needs: [], action: log, with: {{message: entry {i}}}}}" for i in range(steps)]
    path = folder / "storm.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _max_in_window(times: list[float], window: float = 1.0) -> int:
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _naive_baseline(events: int) -> dict[str, Any]:
    """One chat.postMessage per event, unpaced, against a fresh loopback: how fast a naive timeline posts."""
    from slack_sdk import WebClient

    from integrations.slack.loopback import TOKEN, SlackLoopback

    with SlackLoopback() as server:
        cid = server.workspace.add_channel("naive")
        client = WebClient(token=TOKEN, base_url=server.base_url)
        began = time.monotonic()
        for n in range(events):
            client.chat_postMessage(channel=cid, text=f"event {n}")
        seconds = time.monotonic() - began
        times = [r.at for r in server.workspace.posted("chat.postMessage")]
    return {"messages": events, "seconds": seconds, "max_per_second": _max_in_window(times)}


def page_storm(events: int = 200, interval: float = 1.0, rate_limits: int = 3) -> dict[str, Any]:
    """Run the storm with the Slack timeline on; count at the fake what arrived and when."""
    from flows.config import Settings, SlackSettings
    from flows.engine import run_playbook
    from flows.record.store import read_events
    from integrations.slack.loopback import TOKEN, SlackLoopback

    with tempfile.TemporaryDirectory() as tmp, SlackLoopback() as server:
        root = Path(tmp)
        ws = server.workspace
        channel = ws.add_channel("incidents")
        settings = Settings(runs_dir=root / "runs", home=root / "home", playbooks_dir=root,
                            slack=SlackSettings(base_url=server.base_url, token=TOKEN, channel="incidents",
                                                min_interval=interval))  # fmt: skip
        ws.rate_limit("chat.postMessage", times=rate_limits, retry_after=1)
        began = time.monotonic()
        summary = run_playbook(_storm_playbook(root, max(1, (events - 2) // 3)), settings=settings)
        total = time.monotonic() - began
        recorded = [e["seq"] for e in read_events(summary.run_dir / "events.jsonl")]
        [root_message] = ws.history(channel)
        replies = ws.history(channel, root_message.ts)
        posted = [int(m.group(1)) for r in replies for line in r.text.splitlines() if (m := re.match(r"#(\d+) ", line))]
        sends = [r for r in ws.posted() if r.method in ("chat.postMessage", "chat.update")
                 and r.params.get("channel") in (channel, "incidents")]  # fmt: skip
        ok_times = [r.at for r in sends if r.status == 200]
        gaps = [b - a for a, b in itertools.pairwise(ok_times)]
    return {
        "events": len(recorded),
        "thread_entries": len(posted),
        "lost": len(set(recorded) - set(posted)),
        "repeated": len(posted) - len(set(posted)),
        "in_order": posted == sorted(posted),
        "thread_messages": len(replies),
        "root_updates": root_message.edits,
        "http_429": sum(1 for r in sends if r.status == 429),
        "accepted_sends": len(ok_times),
        "max_per_second": _max_in_window(ok_times),
        "min_gap": min(gaps) if gaps else None,
        "run_seconds": total,
        "outcome": summary.outcome,
    }


def print_page_storm(events: int, interval: float, rate_limits: int) -> None:
    import os

    naive = _naive_baseline(events)
    storm = page_storm(events, interval, rate_limits)
    print(f"page storm: {storm['events']} timeline events in one run, pacing {interval:g}s/channel, "
          f"{rate_limits} injected 429s (Retry-After 1), load {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"  entries in the thread     {storm['thread_entries']} (lost {storm['lost']}, repeated "
          f"{storm['repeated']}, in order: {storm['in_order']})")  # fmt: skip
    print(f"  Slack calls on the channel {storm['accepted_sends']} accepted + {storm['http_429']} answered 429: "
          f"{storm['thread_messages']} thread messages, 1 root message, "
          f"{storm['root_updates']} root updates")  # fmt: skip
    gap = f"{storm['min_gap']:.2f}s" if storm["min_gap"] is not None else "n/a"
    print(f"  pacing at the fake        max {storm['max_per_second']} message(s) in any 1 s window; min gap {gap}")
    print(f"  run incl. timeline flush  {storm['run_seconds']:.1f}s (outcome {storm['outcome']})")
    print(f"  baseline (one unpaced post per event): {naive['messages']} messages in {naive['seconds']:.2f}s, "
          f"max {naive['max_per_second']} in 1 s (Slack allows ~1/s a channel and answers the rest 429)")  # fmt: skip
    ratio = naive["messages"] / max(1, storm["accepted_sends"])
    print(f"  ratio: {ratio:.0f}x fewer Slack messages than the baseline, "
          f"{naive['max_per_second'] / max(1, storm['max_per_second']):.0f}x lower peak rate")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--rate-limits", type=int, default=3)
    args = parser.parse_args()
    print_page_storm(args.events, args.interval, args.rate_limits)


if __name__ == "__main__":
    main()
