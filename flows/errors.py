"""The one error hierarchy of fireline.

Every error carries a stable ``code`` and, where it is known, ``where`` (a file, ``file:line:col``, a
setting or a run); callers branch on the class or the code, never on the text. The CLI prints
``str(error)`` as one line and exits 1 (2 for :class:`UsageError` only); with ``--json`` it also
prints ``{"error": {"code", "message", "where"}}`` on stdout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


class FirelineError(Exception):
    """Root of every error fireline raises on purpose."""

    code = "E000"
    where: str | None = None

    def __init__(self, *args: object, where: str | None = None) -> None:
        super().__init__(*args)
        if where is not None:
            self.where = where


class UsageError(FirelineError):
    """The command line itself is wrong: options that exclude each other, a value out of its set (exit 2).

    A file, run or playbook that the command line names but that is missing or bad is an
    :class:`BadInputError` (exit 1), not a usage error.
    """

    code = "E001"


class BadInputError(FirelineError):
    """A file, directory, run or playbook named on the command line is missing, unreadable or malformed."""

    code = "E003"


class ConfigError(FirelineError):
    """The fireline configuration (fireline.toml, environment) is wrong."""

    code = "E002"


@dataclass(frozen=True)
class SourcePosition:
    """Where something stands in a source file (1-based line and column)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Diagnostic:
    """One finding about a playbook: an error or a warning, located in its file."""

    code: str
    message: str
    pos: SourcePosition
    path: str = ""
    severity: str = "error"  # "error" | "warning"
    hint: str | None = None

    def render(self) -> str:
        where = f"{self.path}: " if self.path else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{self.pos}: {self.severity}[{self.code}] {where}{self.message}{hint}"


class SpecError(FirelineError):
    """A playbook (or another YAML document) is malformed; holds every diagnostic of the file."""

    code = "E100"

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        where = str(diagnostics[0].pos) if diagnostics else None
        super().__init__("\n".join(d.render() for d in diagnostics), where=where)


class YamlSyntaxError(SpecError):
    """The YAML itself cannot be read (syntax, size, bombs, duplicate keys)."""

    code = "E101"


class ValidationError(SpecError):
    """The document does not match the fireline/v1 language or its semantic rules."""

    code = "E200"


class RegistrationError(FirelineError):
    """An action definition is wrong (bad signature, duplicate name, missing permissions)."""

    code = "E300"


class UnknownActionError(FirelineError):
    """A playbook names an action that is not registered."""

    code = "E301"


class ActionError(FirelineError):
    """An action failed while planning, applying or undoing."""

    code = "E400"

    def __init__(self, message: str, *, retryable: bool = False, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.details: dict[str, object] = details or {}


class StepTimeoutError(ActionError):
    """A step ran past its timeout and was abandoned."""

    code = "E401"


class IntegrationError(ActionError):
    """An external system (AWS, Slack, a model registry) answered with an error."""

    code = "E500"


class DryRunRefusal(IntegrationError):
    """A mutating call was attempted in dry-run or drill mode and refused before leaving the process."""

    code = "E501"


class GuardError(FirelineError):
    """A blast-radius guard refused a step (max_targets, require_tags, protected_tags)."""

    code = "E600"


class TemplateError(FirelineError):
    """A template could not be rendered (undefined name, sandbox violation, size cap)."""

    code = "E700"


class RunError(FirelineError):
    """A run cannot be started, resumed or changed as asked."""

    code = "E800"


class ApprovalError(RunError):
    """An approval or rejection was refused (not authorised, self-approval, not waiting)."""

    code = "E801"


class RecordError(FirelineError):
    """The run record is missing, corrupt or fails verification."""

    code = "E900"


@dataclass
class Problems:
    """Accumulates diagnostics so that all errors of a file come out in one pass."""

    items: list[Diagnostic] = field(default_factory=list)

    def add(self, diagnostic: Diagnostic) -> None:
        self.items.append(diagnostic)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "warning"]


_TAG = re.compile(r"<[^>]+>")
_HTML_HINTS = ("<html", "<!doctype", "<body", "<title")


def one_line(text: str, limit: int = 400) -> str:
    """Text fit for one line of a terminal or an event: HTML reduced to its words, whitespace collapsed.

    Servers that fail badly (a proxy, a moto route that does not exist) answer with an HTML page;
    its ``<title>`` and visible text say what happened, the markup does not.
    """
    if any(hint in text[:2000].lower() for hint in _HTML_HINTS):
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        body = re.sub(r"<(script|style|head)[^>]*>.*?</\1>", " ", text, flags=re.IGNORECASE | re.DOTALL)
        words = " ".join(_TAG.sub(" ", body).split())
        lead = " ".join(_TAG.sub(" ", title.group(1)).split()) if title else ""
        text = f"{lead}: {words}" if lead and not words.startswith(lead) else (words or lead)
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
