"""Drill wall time: a drill whose simulated clock spans 2 hours against the same drill with no waits.

The long drill pages a contact tree nobody answers (every level's ack timeout, the repeat, the
reminders) and lets a 2-hour approval time out; the baseline is the same scenario with the
on-call acking and the approver rejecting at once (the same steps run, nothing is waited for).
Both run on an in-process moto. Prints the wall time of the run itself (the median of 3) and with
the world's seeding, the simulated span, and the ratio. Goal: under 5 s, within 2x the baseline.

    .venv/bin/python bench/drill.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LONG = """apiVersion: fireline/v1
kind: Scenario
metadata: {name: bench-long}
playbook: PLAYBOOK
alert: ALERT
world: {seed: [buckets]}
responders:
  unreachable: [alice, bob, carol]
faults:
  - {kind: approval_timeout, step: approve-rollback}
expect:
  outcome: rejected
  approvals: {approve-rollback: timed_out}
"""

ZERO = """apiVersion: fireline/v1
kind: Scenario
metadata: {name: bench-zero}
playbook: PLAYBOOK
alert: ALERT
world: {seed: [buckets]}
responders:
  acks: [{step: page-on-call, by: alice, after: 0s}]
  approvals: [{step: approve-rollback, by: bob, decision: reject, after: 0s, reason: bench}]
expect:
  outcome: rejected
  approvals: {approve-rollback: rejected}
"""


def main() -> None:
    from flows.config import load_settings
    from flows.drills.expect import format_duration
    from flows.drills.run import run_scenario

    playbook = REPO / "playbooks" / "model-drift-rollback.yaml"
    alert = REPO / "playbooks" / "alerts" / "model-drift-rollback.json"
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        settings = load_settings().model_copy(
            update={"runs_dir": base / "runs", "home": base / "home", "playbooks_dir": REPO / "playbooks"}
        )
        files = {}
        for name, text in (("long", LONG), ("zero", ZERO)):
            files[name] = base / f"{name}.yaml"
            files[name].write_text(text.replace("PLAYBOOK", str(playbook)).replace("ALERT", str(alert)))
        run_scenario(files["zero"], settings, write_report=False)  # warm imports and model caches
        figures: dict[str, list[tuple[float, float, float]]] = {"long": [], "zero": []}
        for _ in range(3):
            for name in ("long", "zero"):
                started = time.perf_counter()
                result = run_scenario(files[name], settings, write_report=False)
                total = time.perf_counter() - started
                assert result.ok, [(c.name, c.expected, c.observed) for c in result.unmet]
                figures[name].append((result.wall_seconds, total, result.virtual_seconds))
    for name, label in (("long", "2 h drill: "), ("zero", "zero waits:")):
        run = statistics.median(f[0] for f in figures[name])
        total = statistics.median(f[1] for f in figures[name])
        span = format_duration(figures[name][0][2])
        print(f"{label} run {run:.3f} s wall (with seeding {total:.3f} s), simulated {span}")
    long_run = statistics.median(f[0] for f in figures["long"])
    zero_run = statistics.median(f[0] for f in figures["zero"])
    print(f"ratio 2 h / zero waits: {long_run / zero_run:.2f}x (goal <= 2x); 2 h drill under 5 s: {long_run < 5}")


if __name__ == "__main__":
    main()
