"""Report benchmark: render a run of 10,000 events and 200 steps; compare with just parsing events.jsonl.

Goal: all three reports (md, html, json) in <= 2 s, and <= 10x the time of parsing the event log
with ``json.loads`` line by line (the least any report must do). The run record is synthetic but
written the way the engine writes it: a hash-chained events.jsonl, run.json with the step results
and action kinds, and an evidence manifest with real files.

Run: ``.venv/bin/python bench/report.py [--steps 200] [--events 10000] [--repeat 3]``. Prints
figures and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FAN_OUT = 40  # items of every fifth step


class _Writer:
    """Hash-chained event lines with a synthetic clock (one event every 150 ms)."""

    def __init__(self, path: Path, start: datetime) -> None:
        self.fh = path.open("wb")
        self.prev = "0" * 64
        self.seq = 0
        self.start = start

    def at(self) -> str:
        return (self.start + timedelta(milliseconds=150 * self.seq)).isoformat().replace("+00:00", "Z")

    def emit(self, type_: str, step: str | None = None, item: Any = None, **detail: Any) -> str:
        at = self.at()
        line = json.dumps({"seq": self.seq, "at": at, "type": type_, "step": step, "item": item,
                           "detail": {**detail, "mode": "live"}, "prev_sha256": self.prev},
                          separators=(",", ":")).encode()  # fmt: skip
        self.fh.write(line + b"\n")
        self.prev = hashlib.sha256(line).hexdigest()
        self.seq += 1
        return at


def make_run(folder: Path, steps: int, events: int) -> Path:
    run = folder / "bench-run"
    (run / "evidence").mkdir(parents=True)
    start = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    log = _Writer(run / "events.jsonl", start)
    log.emit("run.started", playbook="bench@1")
    record: dict[str, Any] = {}
    evidence = []
    fan_steps = [i for i in range(steps) if i % 5 == 0]
    per_item_extra = max(0, (events - 2 - 4 * steps - 4 * FAN_OUT * len(fan_steps)) // (FAN_OUT * len(fan_steps)))
    for i in range(steps):
        sid = f"step-{i:03d}"
        started = log.emit("step.started", sid, action="aws.ec2.isolate_instance")
        outputs: Any = {"summary": f"isolated i-{i:017x}", "instance_id": f"i-{i:017x}"}
        if i in fan_steps:
            outputs = []
            for n in range(FAN_OUT):
                item = f"i-{i:08x}{n:09x}"
                log.emit("step.started", sid, item, item_key=item)
                for _ in range(per_item_extra):
                    log.emit("log", sid, item, message=f"working on {item}")
                out = {
                    "summary": f"isolated {item}",
                    "instance_id": item,
                    "quarantine_group_id": "sg-0123456789abcdef0",
                }
                log.emit("step.succeeded", sid, item, attempts=1, output=out)
                outputs.append(out)
        if i % 50 == 7:
            log.emit("step.retrying", sid, None, attempt=1, error="Rate exceeded", delay=1.0)
        if i % 20 == 3:
            data = f"evidence {i}".encode()
            path = run / "evidence" / f"e{i}.json"
            path.write_bytes(data)
            evidence.append({"id": f"e{i}", "name": f"e{i}.json", "location": f"evidence/e{i}.json", "size": len(data),
                             "sha256": hashlib.sha256(data).hexdigest(), "collected_at": started,
                             "collected_by": "bench", "step": sid})  # fmt: skip
            log.emit("evidence.stored", sid, id=f"e{i}", name=f"e{i}.json")
        finished = log.emit("step.succeeded", sid, output=outputs if not isinstance(outputs, list) else None)
        record[sid] = {"status": "succeeded", "output": outputs, "started_at": started, "finished_at": finished}
    while log.seq < events - 1:
        log.emit("log", None, message="filler")
    log.emit("run.finished", outcome="succeeded")
    log.fh.close()
    run_json = {
        "run_id": "bench-run", "status": "finished", "mode": "live", "outcome": "succeeded",
        "playbook": {"name": "bench", "version": 1, "ref": "bench@1", "sha256": "0" * 64},
        "incident": {"id": "bench-run", "severity": "high"}, "trigger": {"by": "user:bench", "how": "cli"},
        "inputs": {}, "alert": {"source": "generic", "labels": {"alertname": "Bench"}},
        "started_at": start.isoformat().replace("+00:00", "Z"), "finished_at": log.at(), "steps": record,
        "actions": {sid: {"action": "aws.ec2.isolate_instance", "kind": "containment", "undoable": True}
                    for sid in record},
        "events": {"count": log.seq, "head_sha256": log.prev},
    }  # fmt: skip
    (run / "run.json").write_text(json.dumps(run_json))
    (run / "evidence" / "manifest.json").write_text(json.dumps({"run_id": "bench-run", "items": evidence}))
    return run


def _best(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from flows.report import build, render

    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(Path(tmp), args.steps, args.events)
        lines = (run / "events.jsonl").read_bytes().count(b"\n")
        size = (run / "events.jsonl").stat().st_size

        def parse() -> None:
            with (run / "events.jsonl").open("rb") as fh:
                [json.loads(line) for line in fh]

        parse_s = _best(parse, args.repeat)
        ctx_holder: dict[str, Any] = {}
        build_s = _best(lambda: ctx_holder.update(ctx=build(run, now="2026-12-01T00:00:00Z")), args.repeat)
        ctx = ctx_holder["ctx"]
        per_format = {fmt: _best(lambda f=fmt: render(ctx, f), args.repeat) for fmt in ("md", "html", "json")}
        total = build_s + sum(per_format.values())
        sizes = {fmt: len(render(ctx, fmt).encode()) for fmt in per_format}
        bars = render(ctx, "html").count('class="bar')
    print(f"run: {args.steps} steps, {lines} events ({size / 1e6:.1f} MB events.jsonl)")
    print(f"parse events.jsonl (json.loads per line): {parse_s * 1000:8.1f} ms   (baseline)")
    print(f"build the report context:                  {build_s * 1000:8.1f} ms   {build_s / parse_s:5.1f}x")
    for fmt, seconds in per_format.items():
        print(f"render {fmt:4} ({sizes[fmt] / 1e6:5.2f} MB):                {seconds * 1000:8.1f} ms")
    print(f"all three reports:                         {total * 1000:8.1f} ms   {total / parse_s:5.1f}x the parse")
    print(f"SVG bars drawn: {bars} (steps plus at most 12 items each)")
    print(f"goal: <= 2000 ms -> {'met' if total <= 2 else 'MISSED'}; <= 10x -> "
          f"{'met' if total / parse_s <= 10 else 'MISSED'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
