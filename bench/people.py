"""People benchmarks. Prints figures and ratios, never asserts.

Sections, each a function of its own:

- :func:`page_storm` (Slack): one run that records ~200 timeline events in a burst, with the
  Slack timeline on a loopback Slack Web API that answers some posts with HTTP 429. Goals: about one
  message a second per channel at the fake (pacing kept), 0 timeline entries lost or repeated.
  Baseline, measured in the same run: posting one message per event with no pacing, as a naive
  timeline would.

- :func:`concurrent_waits` (waiting without a worker): one run with 1,000 approval steps waiting at
  once and a chain of unrelated log steps; the chain's latency with the waits against the same run
  without them (goal: within 1.2x). The waits hold no executor thread (the thread count is printed).
- :func:`simulated_ack_timeout`: a page escalating through two 15-minute levels to the fallback on a
  virtual clock that jumps to the next deadline: the wall seconds it takes.

Run: ``.venv/bin/python bench/people.py [--events 200] [--interval 1.0] [--rate-limits 3] [--waits 1000]
[--sections storm,waits,clock]``.
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


# -- waiting without a worker ------------------------------------------------------------------------
def _waits_playbook(folder: Path, waits: int, probes: int, skipped: bool = False) -> Path:
    """A ``gate`` approval, then a chain of ``probes`` log steps; beside it ``waits`` approval steps.

    The bench approves the gate once every wait is in place, so the chain runs beside ``waits``
    steps that are all waiting (not while they are still being set up and recorded).
    """
    gate = "  - {id: settle, needs: [], action: approval, with: {approvers: ['user:bench'], timeout: 1h}}"
    lines = ["apiVersion: fireline/v1", "kind: Playbook", "metadata: {name: waits, version: 1, title: Waits}", "steps:",
             gate]  # fmt: skip
    for i in range(probes):
        after = "settle" if i == 0 else f"p{i - 1}"
        lines.append(f"  - {{id: p{i}, needs: [{after}], action: log, with: {{message: probe {i}}}}}")
    when = ", when: '{{ false }}'" if skipped else ""
    lines += [f"  - {{id: a{i}, needs: []{when}, action: approval, with: {{approvers: ['user:nobody'], timeout: 1h}}}}"
              for i in range(waits)]  # fmt: skip
    path = folder / f"waits-{waits}{'-skipped' if skipped else ''}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class _Tail:
    """The run's events.jsonl read incrementally: each look parses only the lines added since the last.

    Re-reading the whole file every 50 ms took the GIL from the run being measured, and more so the
    bigger the playbook: the harness, not the engine, grew with the number of steps.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.counts: dict[str, int] = {}
        self.at: dict[tuple[str, str | None], str] = {}

    def read(self) -> None:
        import json

        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1  # a line still being written is read on the next look
        self.offset += end
        for line in chunk[:end].splitlines():
            event = json.loads(line)
            self.counts[event["type"]] = self.counts.get(event["type"], 0) + 1
            self.at.setdefault((event["type"], event.get("step")), event["at"])

    def count(self, type_: str) -> int:
        return self.counts.get(type_, 0)

    def chain(self, probes: int) -> float | None:
        """Seconds from the first probe's start to the last probe's success, once both are recorded."""
        from datetime import datetime

        first, last = self.at.get(("step.started", "p0")), self.at.get(("step.succeeded", f"p{probes - 1}"))
        if first is None or last is None:
            return None
        return (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()


def _one_waits_run(root: Path, waits: int, probes: int, skipped: bool = False) -> dict[str, Any]:
    import threading

    from flows.config import Settings
    from flows.engine import run_playbook
    from flows.engine.waits import VirtualClock

    clock = VirtualClock()
    label = f"{waits}{'-skipped' if skipped else ''}"
    settings = Settings(runs_dir=root / f"runs-{label}", home=root / "home", playbooks_dir=root)
    run_id = f"waits-{label}"
    book = _waits_playbook(root, waits, probes, skipped)
    result: dict[str, Any] = {}
    began = time.monotonic()
    thread = threading.Thread(
        target=lambda: result.update(summary=run_playbook(book, settings=settings, run_id=run_id, clock=clock))
    )
    thread.start()
    run_dir = settings.runs_dir / run_id
    tail = _Tail(run_dir / "events.jsonl")
    peak_threads = 0
    while tail.count("approval.requested") + tail.count("step.skipped") < waits + 1:
        time.sleep(0.05)
        tail.read()
    set_up = time.monotonic() - began
    from flows.people.answers import submit_answer
    from flows.people.identity import Identity

    submit_answer(run_dir, "settle", "approve", Identity("bench", "script", "script"), "go", settings)
    while (chain := tail.chain(probes)) is None:
        peak_threads = max(peak_threads, threading.active_count())
        time.sleep(0.05)
        tail.read()
    waiting_since = time.monotonic()
    while thread.is_alive():  # time every approval out, also those requested after a first jump
        clock.advance(7200)
        thread.join(0.5)
    waiting_seconds = time.monotonic() - waiting_since
    return {"chain": chain, "threads": peak_threads, "seconds": time.monotonic() - began,
            "all_requested_after": set_up, "teardown": waiting_seconds,
            "outcome": result["summary"].outcome}  # fmt: skip


def concurrent_waits(waits: int = 1000, probes: int = 50, repeats: int = 3) -> dict[str, Any]:
    """Latency of an unrelated chain of steps with and without ``waits`` approvals waiting beside it.

    The chain without waits is cheap to measure and noisy on a shared machine: its median of
    ``repeats`` runs is the baseline.
    """
    import statistics

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in range(repeats):
            (root / f"base-{n}").mkdir()
        bases = [_one_waits_run(root / f"base-{n}", 0, probes) for n in range(repeats)]
        base = sorted(bases, key=lambda r: float(r["chain"]))[len(bases) // 2]
        base["chain"] = statistics.median(float(r["chain"]) for r in bases)
        same_size = _one_waits_run(root, waits, probes, skipped=True)
        loaded = _one_waits_run(root, waits, probes)
    ratio = loaded["chain"] / base["chain"] if base["chain"] else float("inf")
    same = loaded["chain"] / same_size["chain"] if same_size["chain"] else float("inf")
    return {"waits": waits, "probes": probes, "baseline": base, "same_size": same_size, "loaded": loaded,
            "ratio": ratio, "ratio_same_size": same}  # fmt: skip


def print_concurrent_waits(waits: int) -> None:
    import os

    r = concurrent_waits(waits)
    b, w = r["baseline"], r["loaded"]
    print(f"concurrent waits: {r['waits']} approval steps waiting at once beside a chain of {r['probes']} log steps "
          f"(load {os.getloadavg()[0]:.1f})")  # fmt: skip
    print(f"  chain without waits       {b['chain'] * 1000:.0f} ms (threads {b['threads']})")
    print(f"  chain with {r['waits']} waits     {w['chain'] * 1000:.0f} ms (threads {w['threads']}; "
          f"run {w['seconds']:.1f}s, outcome {w['outcome']})")  # fmt: skip
    print(f"  all {r['waits']} waits requested {w['all_requested_after']:.1f}s after the start; timing them all out "
          f"and finishing the run took {w['teardown']:.1f}s")  # fmt: skip
    s = r["same_size"]
    print(
        f"  chain beside {r['waits']} steps that were skipped instead (same playbook size) {s['chain'] * 1000:.0f} ms"
    )
    print(f"  ratio {r['ratio']:.2f}x against the small playbook (goal <= 1.2x); {r['ratio_same_size']:.2f}x against "
          "the same-size playbook whose steps do not wait (the cost of waiting itself)")  # fmt: skip


# -- a 15-minute ack timeout on a simulated clock ---------------------------------------------------
def simulated_ack_timeout() -> dict[str, Any]:
    """Two 15-minute levels and the fallback, nobody acks, on a clock that jumps to each deadline."""
    import os
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from flows.config import Settings
    from flows.engine import run_playbook
    from flows.engine.waits import VirtualClock

    received: list[str] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    for name in ("L0", "L1", "FB"):
        os.environ[f"BENCH_HOOK_{name}"] = f"http://127.0.0.1:{port}/{name.lower()}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "contact-trees").mkdir()
            (root / "contact-trees" / "slow.yaml").write_text(
                "apiVersion: fireline/v1\nkind: ContactTree\nmetadata: {name: slow, version: 1}\nlevels:\n"
                "  - {targets: ['webhook:secret:BENCH_HOOK_L0'], ack_timeout: 15m}\n"
                "  - {targets: ['webhook:secret:BENCH_HOOK_L1'], ack_timeout: 15m}\n"
                "fallback: ['webhook:secret:BENCH_HOOK_FB']\nreminder_interval: 10m\nreminders: 2\n"
            )  # fmt: skip
            book = root / "page.yaml"
            book.write_text(
                "apiVersion: fireline/v1\nkind: Playbook\nmetadata: {name: page, version: 1, title: P}\n"
                "contacts: slow\nsteps:\n  - {id: page, action: contacts.page, with: {message: slow}}\n"
            )
            clock = VirtualClock(auto=True)
            start = clock.now()
            began = time.monotonic()
            summary = run_playbook(book, settings=Settings(runs_dir=root / "runs", home=root / "home",
                                                           playbooks_dir=root), clock=clock)  # fmt: skip
            wall = time.monotonic() - began
    finally:
        server.shutdown()
    return {"virtual_seconds": clock.now() - start, "wall_seconds": wall, "pages": [p.strip("/") for p in received],
            "status": summary.steps["page"].status}  # fmt: skip


def print_simulated_ack_timeout() -> None:
    r = simulated_ack_timeout()
    print("simulated clock: two 15-minute ack timeouts, exhaustion, 2 reminders every 10 minutes, nobody acks")
    print(f"  {r['virtual_seconds'] / 60:.0f} virtual minutes in {r['wall_seconds']:.2f} s of wall time "
          f"({r['virtual_seconds'] / max(r['wall_seconds'], 1e-9):.0f}x); pages {', '.join(r['pages'])}; "
          f"step {r['status']}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--rate-limits", type=int, default=3)
    parser.add_argument("--waits", type=int, default=1000)
    parser.add_argument("--sections", default="storm,waits,clock")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    if "storm" in sections:
        print_page_storm(args.events, args.interval, args.rate_limits)
    if "waits" in sections:
        print_concurrent_waits(args.waits)
    if "clock" in sections:
        print_simulated_ack_timeout()


if __name__ == "__main__":
    main()
