"""Cold-process cost of ``fireline validate``: 200 generated playbooks, and the shipped library.

Prints medians of several runs next to a bare ``python -c pass`` and the ratio. Goal: a cold
``fireline validate playbooks/`` within 0.5 s. Run: ``.venv/bin/python bench/validate.py``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REPEAT = 7

TEMPLATE = """\
apiVersion: fireline/v1
kind: Playbook
metadata: {{name: gen-{n}, version: 1, title: Generated playbook {n}, severity: high}}
inputs:
  hosts: {{type: "list[string]", required: true}}
  reason: {{type: string, default: "{{{{ alert.labels.alertname }}}}"}}
guards: {{max_targets: 5}}
steps:
  - id: note
    action: log
    with: {{message: "incident {{{{ incident.id }}}} for {{{{ inputs.hosts | length }}}} hosts"}}
  - id: approve
    action: approval
    needs: []
    with: {{approvers: ["group:sec-{n}"], timeout: 15m, on_timeout: escalate}}
  - id: settle
    action: wait
    needs: [note, approve]
    with: {{duration: 2s}}
  - id: each
    action: log
    for_each: "{{{{ inputs.hosts }}}}"
    concurrency: 4
    when: "{{{{ steps.approve.output.decision == 'approved' }}}}"
    with: {{message: "host {{{{ item }}}}: {{{{ inputs.reason }}}}"}}
    retries: {{attempts: 3, backoff: exponential, initial: 1s, max: 10s}}
    timeout: 1m
    on_failure: [{{action: log, with: {{message: "failed: {{{{ error.message }}}}"}}}}]
"""


def _median_seconds(argv: list[str], cwd: Path) -> tuple[float, int]:
    times = []
    code = 0
    for _ in range(REPEAT):
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
        code = done.returncode
    return statistics.median(times), code


def main() -> None:
    """Measure and print the figures."""
    fireline = [sys.executable, "-m", "flows"]
    bare, _ = _median_seconds([sys.executable, "-c", "pass"], REPO)
    print(f"python -c pass                     {bare * 1000:7.1f} ms (median of {REPEAT})")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for n in range(200):
            (folder / f"gen-{n:03d}.yaml").write_text(TEMPLATE.format(n=n), encoding="utf-8")
        gen, code = _median_seconds([*fireline, "validate", str(folder)], REPO)
        print(f"fireline validate 200 playbooks    {gen * 1000:7.1f} ms  x{gen / bare:5.1f} of bare  exit {code}")
        print(f"  per playbook (after start-up)    {(gen - bare) / 200 * 1000:7.2f} ms")
    shipped = REPO / "playbooks"
    lib, code = _median_seconds([*fireline, "validate", str(shipped)], REPO)
    verdict = "within" if lib <= 0.5 else "OVER"
    print(
        f"fireline validate playbooks/       {lib * 1000:7.1f} ms  x{lib / bare:5.1f} of bare  exit {code} "
        f"({verdict} the 0.5 s goal)"
    )


if __name__ == "__main__":
    main()
