"""Cold-process cost of ``fireline validate``: 200 generated playbooks, the shipped library, and
single playbooks of 500 to 5,000 steps.

Prints medians of several runs next to a bare ``python -c pass`` and the ratio. Goals: a cold
``fireline validate playbooks/`` within 0.5 s; validation near-linear in the number of steps (the
per-step cost of a 5,000-step playbook close to that of a 500-step one).
Run: ``.venv/bin/python bench/validate.py``.
"""

from __future__ import annotations

import os
import resource
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


def big_playbook(steps: int) -> str:
    """A playbook of ``steps`` steps: evidence, approvals and containment, fan-outs, output references.

    Mostly one long chain (the worst case for upstream checks: every step has all earlier ones
    upstream), with an extra edge back nine steps on every tenth step; most steps read the output
    of the step before them.
    """
    lines = [
        "apiVersion: fireline/v1",
        "kind: Playbook",
        f"metadata: {{name: big-{steps}, version: 1, title: {steps} steps, severity: high}}",
        "inputs:",
        '  hosts: {type: "list[string]", required: true}',
        "guards: {max_targets: 5}",
        "steps:",
    ]
    for n in range(steps):
        kind = n % 5
        lines.append(f"  - id: s{n}")
        if kind == 0:
            lines.append("    action: aws.ec2.snapshot_volumes")
            lines.append('    for_each: "{{ inputs.hosts }}"')
            lines.append("    concurrency: 4")
            lines.append('    with: {instance_id: "{{ item }}"}')
        elif kind == 1:
            lines.append("    action: approval")
            lines.append("    with: {approvers: [group:sec], timeout: 15m}")
        elif kind == 2:
            lines.append("    action: aws.ec2.isolate_instance")
            lines.append(f"    when: \"{{{{ steps.s{n - 1}.output.decision == 'approved' }}}}\"")
            lines.append('    with: {instance_id: "i-0abc12345678"}')
        else:
            lines.append("    action: log")
            message = f"after s{n - 1}: {{{{ steps.s{n - 1}.output }}}} {{{{ inputs.hosts }}}}"
            lines.append(f'    with: {{message: "{message}"}}')
        if n % 10 == 9:
            lines.append(f"    needs: [s{n - 1}, s{n - 9}]")
    return "\n".join(lines) + "\n"


def _big(fireline: list[str], bare: float) -> None:
    cpu_of: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for steps in (500, 1000, 5000):
            path = Path(tmp) / f"big-{steps}.yaml"
            path.write_text(big_playbook(steps), encoding="utf-8")
            wall, cpu, code = _medians([*fireline, "validate", str(path)], REPO, repeat=3)
            cpu_of[steps] = cpu
            _line(f"fireline validate ({steps} steps)", wall, cpu, bare, f"exit {code}")
    # The cost of the steps beyond the first 500, per step: equal figures mean linear growth.
    near = (cpu_of[1000] - cpu_of[500]) / 500
    far = (cpu_of[5000] - cpu_of[500]) / 4500
    print(
        f"cpu per extra step: 500->1,000 steps {near * 1000:.3f} ms, 500->5,000 steps {far * 1000:.3f} ms "
        f"(ratio {far / near if near > 0 else float('nan'):.2f}; 1.0 is linear, 10 would be quadratic)"
    )


def _cached_bytecode(fireline: list[str], bare: float) -> float:
    """The same command with Python's bytecode cache on, as an installed package runs.

    With ``PYTHONDONTWRITEBYTECODE`` set (as in some CI images) every fireline module is compiled
    from source on each start; the cache lives in a temporary ``PYTHONPYCACHEPREFIX``, never the tree.
    """
    with tempfile.TemporaryDirectory() as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        argv = [*fireline, "validate", str(REPO / "playbooks")]
        subprocess.run(argv, cwd=REPO, env=env, capture_output=True, check=False)  # fills the cache
        wall, cpu, code = _medians(argv, REPO, env=env)
        _line("  same, bytecode cache on", wall, cpu, bare, f"exit {code}")
    return min(wall, cpu)


def _medians(
    argv: list[str], cwd: Path, repeat: int = REPEAT, env: dict[str, str] | None = None
) -> tuple[float, float, int]:
    """Median wall time and median CPU time (user + system) of a fresh process, and its exit code.

    CPU time stays meaningful on a loaded machine, where wall time mostly measures waiting.
    """
    walls, cpus = [], []
    code = 0
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
        code = done.returncode
    return statistics.median(walls), statistics.median(cpus), code


def _line(label: str, wall: float, cpu: float, bare: float, extra: str = "") -> None:
    print(f"{label:<34} wall {wall * 1000:7.1f} ms  cpu {cpu * 1000:7.1f} ms  x{wall / bare:5.1f} of bare {extra}")


def main() -> None:
    """Measure and print the figures."""
    script = Path(sys.executable).parent / "fireline"  # what a user runs: the installed console script
    fireline = [str(script)] if script.exists() else [sys.executable, "-m", "flows"]
    bare, bare_cpu, _ = _medians([sys.executable, "-c", "pass"], REPO)
    print(f"medians of {REPEAT} cold processes; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    _line("python -c pass", bare, bare_cpu, bare)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for n in range(200):
            (folder / f"gen-{n:03d}.yaml").write_text(TEMPLATE.format(n=n), encoding="utf-8")
        gen, gen_cpu, code = _medians([*fireline, "validate", str(folder)], REPO)
        _line("fireline validate (200 playbooks)", gen, gen_cpu, bare, f"exit {code}")
    shipped = REPO / "playbooks"
    lib, lib_cpu, code = _medians([*fireline, "validate", str(shipped)], REPO)
    _line("fireline validate playbooks/", lib, lib_cpu, bare, f"exit {code}")
    installed = min(lib, lib_cpu)
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        installed = _cached_bytecode(fireline, bare)
    print(f"per generated playbook: {(gen_cpu - lib_cpu) / 200 * 1000:.2f} ms cpu beyond start-up")
    verdict = "meets" if installed <= 0.5 else "misses"
    print(f"goal: cold `fireline validate playbooks/` <= 500 ms as installed (bytecode cache on): {verdict} it")
    _big(fireline, bare)


if __name__ == "__main__":
    main()
