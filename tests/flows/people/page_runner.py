"""Child process of the kill test: ``python -m tests.flows.people.page_runner run|resume TMP RUN_ID CLOCK [BOOK]``."""

from __future__ import annotations

import sys
from pathlib import Path

from flows.engine import resume_run, run_playbook
from tests.flows.people.helpers import FileClock, registry, settings


def main(argv: list[str]) -> int:
    command, tmp, run_id, clock = argv[0], Path(argv[1]), argv[2], FileClock(Path(argv[3]))
    if command == "run":
        summary = run_playbook(Path(argv[4]), settings=settings(tmp), registry=registry(), run_id=run_id, clock=clock)
    else:
        summary = resume_run(run_id, settings=settings(tmp), registry=registry(), clock=clock)
    print(summary.outcome)
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
