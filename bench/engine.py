"""Engine benchmarks: per-step orchestration overhead, and the time from ``fireline run`` to the first step.

Prints figures and ratios, never asserts. Goals: <= 20 ms orchestration overhead per step on a
100-step playbook; <= 3 s from ``fireline run`` start to the first step's ``apply`` cold, <= 0.5 s
with ``fireline serve`` warm. "First step's apply" is the first ``step.started`` event's timestamp
(the engine writes it just before calling ``apply``), measured against the wall clock at launch.

Run: ``.venv/bin/python bench/engine.py [--steps 100] [--skip-prefect] [--skip-cold] [--skip-serve]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

HEADER = "apiVersion: fireline/v1\nkind: Playbook\nmetadata: {{name: {name}, version: 1, title: Bench}}\nsteps:\n"


def playbook(folder: Path, name: str, steps: int, parallel: bool = False) -> Path:
    """A playbook of ``steps`` log steps: a chain, or all independent with ``parallel``."""
    needs = " needs: []," if parallel else ""
    body = "".join(f"  - {{id: s{i},{needs} action: log, with: {{message: step {i}}}}}\n" for i in range(steps))
    path = folder / f"{name}.yaml"
    path.write_text(HEADER.format(name=name) + body, encoding="utf-8")
    return path


def _settings(root: Path, **prefect: Any) -> Any:
    from flows.config import PrefectSettings, Settings

    return Settings(home=root / "home", runs_dir=root / "runs", playbooks_dir=root, prefect=PrefectSettings(**prefect))


def direct_per_step(root: Path, steps: int) -> float:
    """Seconds per step calling the log action's apply() directly, with a real run record."""
    from flows.actions.context import make_context
    from flows.actions.control import Log, LogParams

    ctx = make_context(root / "runs" / "direct")
    action, params = Log(), LogParams(message="step")
    started = time.perf_counter()
    for i in range(steps):
        action.apply(params, ctx.for_step(f"s{i}"))
    return (time.perf_counter() - started) / steps


def thread_run(path: Path, settings: Any) -> float:
    from flows.engine import ThreadExecutor, run_playbook

    started = time.perf_counter()
    summary = run_playbook(path, settings=settings, executor=ThreadExecutor())
    assert summary.ok, summary.outcome
    return time.perf_counter() - started


def prefect_runs(paths: list[Path], settings: Any) -> list[float]:
    from flows.engine.prefect_env import prefect_runtime
    from flows.engine.prefect_flow import run_respond
    from flows.engine.prefect_server import default_template_dir

    times: list[float] = []
    with prefect_runtime(settings, template=default_template_dir()):
        run_respond(str(paths[0]), settings=settings)  # first flow run of a process pays client set-up
        for path in paths:
            started = time.perf_counter()
            state, _ = run_respond(str(path), settings=settings)
            times.append(time.perf_counter() - started)
            assert state.is_completed(), state.message
    return times


def first_step_after(launched: float, run_dir: Path, timeout: float = 120.0) -> float | None:
    """Seconds from ``launched`` (time.time()) to the first step.started event of the run."""
    events = run_dir / "events.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if events.exists():
            for line in events.read_text(encoding="utf-8").splitlines():
                event = json.loads(line)
                if event["type"] == "step.started":
                    return datetime.fromisoformat(event["at"].replace("Z", "+00:00")).timestamp() - launched
        time.sleep(0.02)
    return None


def _env(settings: Any) -> dict[str, str]:
    return {
        **os.environ,
        "FIRELINE_HOME": str(settings.home),
        "FIRELINE_RUNS_DIR": str(settings.runs_dir),
        "FIRELINE_PLAYBOOKS_DIR": str(settings.playbooks_dir),
        "PYTHONPATH": str(REPO),
    }


def cold_cli(path: Path, settings: Any) -> tuple[float | None, float]:
    """`fireline run` in a fresh process: (seconds to the first step, seconds to exit)."""
    launched = time.time()
    done = subprocess.run(
        [sys.executable, "-m", "flows", "run", str(path), "--json"],
        env=_env(settings),
        capture_output=True,
        text=True,
        check=False,
    )
    total = time.time() - launched
    if done.returncode != 0:
        print(f"  fireline run failed: {done.stderr.strip()[-300:]}")
        return None, total
    return first_step_after(launched, Path(json.loads(done.stdout)["run_dir"])), total


COLD_PREFECT = """
import sys, time
from pathlib import Path
from flows.config import Settings
from flows.engine.prefect_flow import run_with_prefect
settings = Settings(home=Path(sys.argv[1]), runs_dir=Path(sys.argv[2]), playbooks_dir=Path(sys.argv[3]))
print(run_with_prefect(sys.argv[4], settings=settings).run_dir)
"""


def cold_prefect(path: Path, settings: Any) -> tuple[float | None, float]:
    """A fresh process running the playbook as a flow on its own embedded server (migrated home)."""
    from flows.engine.prefect_env import prefect_home
    from flows.engine.prefect_server import default_template_dir, prepare_database

    prepare_database(prefect_home(settings), template=default_template_dir())
    launched = time.time()
    args = [str(settings.home), str(settings.runs_dir), str(settings.playbooks_dir), str(path)]
    done = subprocess.run(
        [sys.executable, "-c", COLD_PREFECT, *args], env=_env(settings), capture_output=True, text=True, check=False
    )
    total = time.time() - launched
    if done.returncode != 0:
        print(f"  embedded Prefect run failed: {done.stderr.strip()[-300:]}")
        return None, total
    return first_step_after(launched, Path(done.stdout.strip().splitlines()[-1])), total


def warm_serve(path: Path, settings: Any, repeat: int) -> list[float]:
    """`fireline run` handing over to a warm `fireline serve`: seconds to the first step, per run."""
    from flows.engine.handoff import serve_status, try_handoff
    from flows.engine.prefect_env import prefect_home
    from flows.engine.prefect_server import default_template_dir, prepare_database

    prepare_database(prefect_home(settings), template=default_template_dir())
    serve = subprocess.Popen(
        [sys.executable, "-m", "flows", "serve", "--port", "0"],
        env=_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    times: list[float] = []
    try:
        started = time.monotonic()
        while serve_status(settings) is None and time.monotonic() - started < 120 and serve.poll() is None:
            time.sleep(0.1)
        print(f"  fireline serve ready after {time.monotonic() - started:.1f}s (start-up, paid once)")
        for _ in range(repeat):
            launched = time.time()
            done = subprocess.run(
                [sys.executable, "-m", "flows", "run", str(path), "--json"],
                env=_env(settings),
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                print(f"  handed-over run failed: {done.stderr.strip()[-300:]}")
                continue
            first = first_step_after(launched, Path(json.loads(done.stdout)["run_dir"]))
            if first is not None:
                times.append(first)
        inner: list[float] = []
        for _ in range(repeat):
            launched = time.time()
            answer = try_handoff({"playbook": str(path)}, settings)
            if answer is not None:
                first = first_step_after(launched, Path(answer["run_dir"]))
                inner.append(first if first is not None else float("nan"))
        if inner:
            print(f"  server side alone (in-process try_handoff to the first step): {statistics.median(inner):.2f}s")
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-prefect", action="store_true")
    parser.add_argument("--skip-cold", action="store_true")
    parser.add_argument("--skip-serve", action="store_true")
    args = parser.parse_args()
    n = args.steps
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {n}-step playbooks of log steps")
    with tempfile.TemporaryDirectory(prefix="fireline-bench-") as tmp:
        root = Path(tmp)
        chain, single, wide = playbook(root, "chain", n), playbook(root, "single", 1), playbook(root, "wide", n, True)
        settings = _settings(root)
        direct = statistics.median(direct_per_step(root, n) for _ in range(args.repeat))
        print(f"direct apply():            {direct * 1000:7.2f} ms/step (the action itself, run record included)")
        thread = statistics.median(thread_run(chain, settings) for _ in range(args.repeat)) / n
        wide_t = statistics.median(thread_run(wide, settings) for _ in range(args.repeat)) / n
        print(
            f"ThreadExecutor, chain:  {thread * 1000:7.2f} ms/step, overhead {(thread - direct) * 1000:6.2f} ms/step "
            f"({thread / direct:.1f}x direct)"
        )
        print(
            f"ThreadExecutor, parallel:  {wide_t * 1000:7.2f} ms/step, overhead {(wide_t - direct) * 1000:6.2f} ms/step"
        )
        if not args.skip_prefect:
            times = prefect_runs([single, chain, wide], settings)
            fixed = times[0]
            per = (times[1] - fixed) / (n - 1)
            per_wide = (times[2] - fixed) / (n - 1)
            print(f"Prefect flow run, 1 step:  {fixed * 1000:7.1f} ms (the flow run's fixed cost, warm server)")
            print(
                f"Prefect, chain:            {per * 1000:7.2f} ms/step, overhead {(per - direct) * 1000:6.2f} ms/step "
                f"({per / thread:.1f}x ThreadExecutor)"
            )
            print(
                f"Prefect, parallel:      {per_wide * 1000:7.2f} ms/step, overhead {(per_wide - direct) * 1000:6.2f} "
                f"ms/step ({per_wide / wide_t:.1f}x ThreadExecutor)"
            )
        cold_first: float | None = None
        if not args.skip_cold:
            first, total = cold_cli(single, _settings(root / "cold", api_url=None))
            cold_first = first
            print(
                f"cold `fireline run` (thread executor, no Prefect): first step after {first or float('nan'):.2f}s, "
                f"exit after {total:.2f}s"
            )
            if not args.skip_prefect:
                first, total = cold_prefect(single, _settings(root / "cold-prefect"))
                print(
                    f"cold process on embedded Prefect (migrated home): first step after "
                    f"{first or float('nan'):.2f}s, exit after {total:.2f}s"
                )
        if not args.skip_serve:
            warm = warm_serve(single, _settings(root / "warm"), args.repeat)
            if warm:
                print(
                    f"`fireline run` handed to warm `fireline serve`: first step after {statistics.median(warm):.2f}s "
                    f"(median of {len(warm)}; min {min(warm):.2f}s)"
                )
                if cold_first:
                    ratio = statistics.median(warm) / cold_first
                    verdict = "the warm path is the fastest" if ratio < 1 else "the warm path is SLOWER"
                    print(f"warm hand-off / cold in-process, end to end: {ratio:.2f} ({verdict})")


if __name__ == "__main__":
    main()
