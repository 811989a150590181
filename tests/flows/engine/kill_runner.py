"""Child-process entry for the kill test: ``python -m tests.flows.engine.kill_runner run|resume ...``.

Runs with the thread executor and the test plug-in; no Prefect. The kill point comes from
``FIRELINE_TEST_KILL_AT`` in the environment (see ``plugin_actions``).
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
