"""Child-process entry for the kill test: ``python -m tests.flows.engine.kill_runner run|resume ...``.

Also started through a multiprocessing fork server (:func:`child`), which imports fireline once so
each child starts in milliseconds. Runs with the thread executor and the test plug-in; no Prefect.
"""

from __future__ import annotations

import sys
from pathlib import Path

from flows.engine import resume_run, run_playbook
from tests.flows.engine.engine_helpers import make_registry, make_settings


def main(argv: list[str]) -> int:
    command, tmp, run_id = argv[0], Path(argv[1]), argv[2]
    settings = make_settings(tmp)
    if command == "run":
        summary = run_playbook(Path(argv[3]), settings=settings, registry=make_registry(), run_id=run_id)
    else:
        summary = resume_run(run_id, settings=settings, registry=make_registry())
    print(summary.outcome)
    return 0 if summary.ok else 1


def child(argv: list[str], kill_at: str | None) -> None:
    """Entry of a forked child (the fork server has these modules imported already)."""
    import os

    if kill_at:
        os.environ["FIRELINE_TEST_KILL_AT"] = kill_at
    else:
        os.environ.pop("FIRELINE_TEST_KILL_AT", None)
    sys.exit(main(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
