"""The post-mortem report of a run: one context from the run record, rendered as md, html and json.

:func:`write_reports` is what the runner, ``fireline report`` and ``fireline undo`` call;
:func:`build` and :func:`render` are the two halves. See ``docs/reports.md``.
"""

from flows.report.render import FORMATS, build, normalise_formats, render, run_formats, write_reports

__all__ = ["FORMATS", "build", "normalise_formats", "render", "run_formats", "write_reports"]
