"""The inline SVG Gantt chart of a run: steps as bars over UTC time, for_each items nested under
their step, approvals and pages as marks, milestones as vertical lines.

Built as a string (with every text escaped) rather than in the template: at 200 steps and
thousands of items it is the largest part of report.html, and plain string building keeps it fast.
Large fan-outs show their first :data:`MAX_ITEM_ROWS` items and a "+N more" row.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

from flows.report.facts import parse_time

MAX_ITEM_ROWS = 12
_LABEL_W, _CHART_W, _STEP_H, _ITEM_H, _TOP, _BOTTOM = 230, 860, 18, 11, 44, 30
_COLOURS = {"succeeded": "#2e7d32", "failed": "#c62828", "timed_out": "#c62828", "rejected": "#ad1457",
            "skipped": "#9e9e9e", "running": "#1565c0"}  # fmt: skip
_MARKS = {"approval.answered": ("#6a1b9a", "approval"), "approval.rejected": ("#ad1457", "rejection"),
          "approval.granted": ("#6a1b9a", "approval"), "page.sent": ("#ef6c00", "page"),
          "page.acked": ("#00838f", "ack")}  # fmt: skip
_MILESTONES = ("detected", "acknowledged", "contained", "recovered")


class _Scale:
    def __init__(self, start: datetime, end: datetime) -> None:
        self.start = start
        self.span = max((end - start).total_seconds(), 0.001)

    def x(self, moment: datetime | None) -> float:
        if moment is None:
            return _LABEL_W
        return _LABEL_W + max(0.0, min(1.0, (moment - self.start).total_seconds() / self.span)) * _CHART_W


def _bounds(ctx: dict[str, Any]) -> tuple[datetime, datetime] | None:
    times = [parse_time(ctx["run"]["started_at"]), parse_time(ctx["run"]["finished_at"])]
    for step in ctx["actions"]:
        times += [parse_time(step["started_at"]), parse_time(step["finished_at"])]
    times += [parse_time(t) for t in ctx["milestones"].values()]
    known = [t for t in times if t is not None]
    return (min(known), max(known)) if known else None


def _bar(out: list[str], scale: _Scale, y: float, h: float, row: dict[str, Any], css: str) -> None:
    start, end = parse_time(row.get("started_at")), parse_time(row.get("finished_at"))
    x0 = scale.x(start)
    x1 = scale.x(end) if end is not None else x0
    colour = _COLOURS.get(str(row.get("status")), "#616161")
    when = f"{row.get('started_at') or ''} → {row.get('finished_at') or ''}"
    tip = f"{row.get('tip') or row.get('label')}: {row.get('status')} {when}"
    out.append(
        f'<rect class="{css}" x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0, 2.0):.1f}" height="{h:.1f}" '
        f'fill="{colour}"><title>{escape(tip)}</title></rect>'
    )


def _ticks(out: list[str], scale: _Scale, height: float) -> None:
    for n in range(6):
        x = _LABEL_W + _CHART_W * n / 5
        moment = datetime.fromtimestamp(scale.start.timestamp() + scale.span * n / 5, tz=scale.start.tzinfo)
        # Sub-minute runs need the milliseconds to tell the ticks apart.
        label = moment.strftime("%H:%M:%S.%f")[:-3] if scale.span < 60 else moment.strftime("%H:%M:%S")
        out.append(f'<line class="tick" x1="{x:.1f}" y1="{_TOP - 4}" x2="{x:.1f}" y2="{height - _BOTTOM}"/>')
        out.append(f'<text class="axis" x="{x:.1f}" y="{height - _BOTTOM + 14}" text-anchor="middle">{label}</text>')


def render_svg(ctx: dict[str, Any], marks: list[dict[str, Any]]) -> str:
    """The ``<svg>`` element for a report context; ``marks`` are ``{"at", "type", "step"}`` rows."""
    bounds = _bounds(ctx)
    if bounds is None:
        return ""
    scale = _Scale(*bounds)
    rows: list[tuple[str, dict[str, Any], float]] = []
    for step in ctx["actions"]:
        rows.append(("step", {**step, "label": step["id"]}, _STEP_H))
        for item in step["items"][:MAX_ITEM_ROWS]:
            # Nested under its step, an item row is labelled by the item alone (its tooltip names both).
            rows.append(("item", {**item, "label": item["item"], "tip": f"{step['id']}[{item['item']}]"}, _ITEM_H))
        if len(step["items"]) > MAX_ITEM_ROWS:
            rows.append(("more", {"label": f"+{len(step['items']) - MAX_ITEM_ROWS} more items"}, _ITEM_H))
    height = _TOP + sum(h + 3 for _, _, h in rows) + _BOTTOM
    width = _LABEL_W + _CHART_W + 60  # room for the last tick's label
    out = [f'<svg id="timeline" role="img" width="{width}" height="{height:.0f}" '
           f'viewBox="0 0 {width} {height:.0f}"><title>Run timeline (UTC)</title>']  # fmt: skip
    _ticks(out, scale, height)
    y = float(_TOP)
    step_y: dict[str, float] = {}
    for kind, row, h in rows:
        indent = 8 if kind == "step" else 22
        css = "label" if kind == "step" else "label item"
        text = row["label"] if len(row["label"]) <= 34 else row["label"][:33] + "…"
        out.append(f'<text class="{css}" x="{indent}" y="{y + h - 3:.1f}">{escape(text)}</text>')
        if kind == "step":
            step_y[row["id"]] = y
            _bar(out, scale, y, h, row, "bar")
        elif kind == "item":
            _bar(out, scale, y + 1, h - 2, row, "bar item")
        y += h + 3
    for mark in marks:
        colour, name = _MARKS[mark["type"]]
        x = scale.x(parse_time(mark["at"]))
        my = step_y.get(mark.get("step") or "", _TOP - 14) + _STEP_H / 2
        tip = f"{name} {mark['at']} {mark.get('who') or ''}".strip()
        out.append(f'<path class="mark" d="M{x:.1f} {my - 6:.1f} l5 6 l-5 6 l-5 -6 z" fill="{colour}">'
                   f"<title>{escape(tip)}</title></path>")  # fmt: skip
    for name in _MILESTONES:
        moment = parse_time(ctx["milestones"].get(name))
        if moment is not None:
            x = scale.x(moment)
            out.append(f'<line class="milestone" x1="{x:.1f}" y1="{_TOP - 22}" x2="{x:.1f}" y2="{height - _BOTTOM}"/>')
            # Near the right edge the label goes left of its line, so it is never cut off.
            right = x > _LABEL_W + _CHART_W - 80
            anchor, lx = ("end", x - 3) if right else ("start", x + 3)
            out.append(
                f'<text class="milestone-label" x="{lx:.1f}" y="{_TOP - 26}" text-anchor="{anchor}">{name}</text>'
            )
    out.append("</svg>")
    return "".join(out)


def marks_from(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Approval answers, pages and acks to draw on the chart."""
    return [
        {"at": e["at"], "type": e["type"], "step": e.get("step"), "who": (e.get("detail") or {}).get("by")}
        for e in events
        if e["type"] in _MARKS
    ]
