"""Live step progress on stderr: one line per step status change, as ``fireline run`` shows it."""

from __future__ import annotations

import time
from typing import Any

from flows.cli.output import err_console
from flows.errors import one_line

MARKS = {
    "succeeded": "[green]✓[/]",
    "failed": "[red]✗[/]",
    "timed_out": "[red]⏱[/]",
    "rejected": "[red]⊘[/]",
    "skipped": "[dim]–[/]",
    "running": "[cyan]…[/]",
    "waiting": "[yellow]?[/]",
    "retrying": "[yellow]↻[/]",
}


class StepProgress:
    """A ``progress(step, status, detail)`` callback that prints each change with the time since start.

    An error in ``detail`` is shown as one line (a server's HTML error page becomes its words).
    """

    def __init__(self, run_id: str = "RUN") -> None:
        self.started = time.monotonic()
        self.run_id = run_id

    def __call__(self, step: str, status: str, detail: dict[str, Any]) -> None:
        from rich.markup import escape

        extra = ""
        if status == "waiting":
            who = ", ".join(detail.get("approvers", []))
            extra = f" for approval ({who}): fireline approve {self.run_id} {step} --as USER"
        elif detail.get("error"):
            extra = f": {one_line(str(detail['error']))}"
        elapsed = time.monotonic() - self.started
        line = f"{escape(step)}[/] {status}{escape(extra)}"
        err_console.print(f"  {MARKS.get(status, ' ')} [bold]{line} [dim]+{elapsed:.1f}s[/]")
