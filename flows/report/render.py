"""Render the report context as markdown, HTML or JSON, and write the reports of a run.

Templates are package data (``flows/report/templates``). HTML is autoescaped and self-contained:
embedded CSS, an inline SVG, no script, no external URL, and a Content-Security-Policy that
forbids fetching anything. Markdown values go through :func:`md_text` / :func:`md_code`, so a
value (an alert label, a name given with ``--as``) can never start a heading, a list, a link or
raw HTML of its own.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.errors import BadInputError, RecordError
from flows.record.store import iso, utcnow, write_atomic
from flows.report.context import build_context
from flows.report.load import LoadedRun, load_run

if TYPE_CHECKING:
    from jinja2 import Environment

FORMATS = {"md": "report.md", "html": "report.html", "json": "report.json"}
ALIASES = {"markdown": "md", "md": "md", "html": "html", "json": "json"}
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#!~&])")
_MAX_CELL = 300
_ENV: Environment | None = None
_COMPILE_LOCK = threading.Lock()


def normalise_formats(formats: Iterable[str]) -> list[str]:
    """``md``/``markdown``, ``html``, ``json`` → canonical names in a stable order; BadInputError otherwise."""
    chosen: set[str] = set()
    for name in formats:
        canonical = ALIASES.get(str(name).lower())
        if canonical is None:
            raise BadInputError(f"unknown report format {name!r}: expected one of md, html, json")
        chosen.add(canonical)
    return [f for f in FORMATS if f in chosen]


def md_text(value: Any, limit: int = _MAX_CELL) -> str:
    """One line of markdown-inert text: whitespace collapsed, markdown and HTML characters escaped."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False, sort_keys=True)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_code(value: Any, limit: int = _MAX_CELL) -> str:
    """A one-line code span that no backtick or pipe in ``value`` can close early."""
    text = " ".join(str("" if value is None else value).split())[:limit].replace("|", "¦")
    if not text:
        return ""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _env() -> Environment:
    global _ENV
    if _ENV is None:
        from jinja2 import Environment, FileSystemLoader, StrictUndefined

        env = Environment(
            loader=FileSystemLoader(str(Path(__file__).resolve().parent / "templates")),
            undefined=StrictUndefined,
            autoescape=lambda name: bool(name and name.endswith(".html.j2")),
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters["md"] = md_text
        env.filters["code"] = md_code
        env.filters["tojson_compact"] = lambda v: json.dumps(v, sort_keys=True, ensure_ascii=False, default=str)
        _ENV = env
    return _ENV


def _json(ctx: dict[str, Any]) -> str:
    """One top-level key a line: readable, and each value goes through json's C encoder (``indent``
    would force the pure-Python one, several times slower on a 10,000-event run)."""
    dump = json.JSONEncoder(sort_keys=True, ensure_ascii=False, default=str).encode
    return "{\n" + ",\n".join(f"  {dump(key)}: {dump(ctx[key])}" for key in sorted(ctx)) + "\n}\n"


def render(ctx: dict[str, Any], fmt: str) -> str:
    """Render one format (``md``, ``html`` or ``json``) of a report context."""
    fmt = normalise_formats([fmt])[0]
    if fmt == "json":
        return _json(ctx)
    extra: dict[str, Any] = {}
    if fmt == "html":
        from markupsafe import Markup

        from flows.report.timeline import render_svg

        extra["svg"] = Markup(render_svg(ctx, ctx["marks"]))  # built with every text escaped
    return str(_template(f"report.{fmt}.j2").render(r=ctx, **extra))


def render_template(name: str, ctx: dict[str, Any]) -> str:
    """Render another report of the same family (``drill.md.j2``) with this environment and filters."""
    return _json(ctx) if name.endswith(".json") else str(_template(name).render(r=ctx))


def _template(name: str) -> Any:
    """A compiled template, compiled once per process: runs that end together (an alert storm's) wait
    for the first compile instead of each compiling it again (py-spy: a quarter of a storm's CPU)."""
    with _COMPILE_LOCK:
        return _env().get_template(name)


def _s3_checks(loaded: LoadedRun, settings: Any) -> dict[str, Any]:
    """Every S3 item checked once (``fireline evidence verify``'s own code), by item id."""
    from flows.record.evidence_verify import verify_run

    try:
        return {c.id: c for c in verify_run(loaded.run_dir, settings) if c.location.startswith("s3://")}
    except Exception as e:  # the report still renders; each S3 item shows the reason
        return {"": f"{type(e).__name__}: {e}"}


def evidence_checks(loaded: LoadedRun, settings: Any = None) -> dict[str, dict[str, str]]:
    """``fireline evidence verify`` at report time: local items always, S3 items when ``settings`` are given.

    The engine passes no settings at the end of a run (the objects were just written, and re-reading
    gigabytes of preserved objects would delay every report); ``fireline report`` does.
    """
    from flows.record.evidence_verify import ItemCheck, _check_local
    from flows.record.store import EvidenceItem

    remote = any(str(i.get("location", "")).startswith("s3://") for i in loaded.evidence)
    s3 = _s3_checks(loaded, settings) if remote and settings is not None else {}
    out: dict[str, dict[str, str]] = {}
    for raw in loaded.evidence:
        try:
            item = EvidenceItem.model_validate(raw)
        except ValueError as e:
            out[str(raw.get("id"))] = {"status": "error", "detail": f"unreadable manifest entry: {e}"}
            continue
        check: ItemCheck
        if item.location.startswith("s3://"):
            found = s3.get(item.id)
            if not isinstance(found, ItemCheck):
                detail = s3.get("", "in S3; fireline report RUN (or fireline evidence verify RUN) checks it")
                out[item.id] = {"status": "not checked" if settings is None else "error", "detail": str(detail)}
                continue
            check = found
        else:
            check = _check_local(loaded.run_dir, item)
        if check.status == "ok" and check.actual_sha256 not in (None, item.sha256):
            check.status, check.detail = "mismatch", f"sha256 is now {check.actual_sha256}"
        out[item.id] = {"status": check.status, "detail": check.detail}
    return out


def build(run_dir: Path, *, now: str | None = None, settings: Any = None) -> dict[str, Any]:
    """Load a run directory and build its report context."""
    loaded = load_run(run_dir)
    return build_context(loaded, now=now or iso(utcnow()), evidence_checks=evidence_checks(loaded, settings))


def run_formats(run_dir: Path) -> list[str]:
    """The formats the run's playbook asked for (``report.formats`` recorded in run.json); md by default."""
    try:
        data = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        asked = (data.get("report") or {}).get("formats") or ["md"]
    except (OSError, ValueError, AttributeError):
        asked = ["md"]
    return normalise_formats(asked)


def write_reports(
    run_dir: Path, formats: Sequence[str] | None = None, *, now: str | None = None, settings: Any = None
) -> list[Path]:
    """Render the run's reports into its directory (``report.md``/``.html``/``.json``); return the paths."""
    return write_reports_with_context(run_dir, formats, now=now, settings=settings)[0]


def write_reports_with_context(
    run_dir: Path, formats: Sequence[str] | None = None, *, now: str | None = None, settings: Any = None
) -> tuple[list[Path], dict[str, Any]]:
    """:func:`write_reports`, also returning the context the reports were rendered from."""
    chosen = normalise_formats(formats) if formats is not None else run_formats(run_dir)
    ctx = build(run_dir, now=now, settings=settings)
    paths = []
    for fmt in chosen:
        path = run_dir / FORMATS[fmt]
        try:
            write_atomic(path, render(ctx, fmt).encode("utf-8"))
        except OSError as e:
            raise RecordError(f"{path}: cannot write the report: {e.strerror or e}") from e
        paths.append(path)
    return paths, ctx
