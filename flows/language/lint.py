"""Semantic checks of playbooks (``fireline lint``, also part of ``fireline validate``).

Errors make a playbook unusable: cycles, unknown or duplicate step ids, unknown actions, bad
``with`` parameters, templates that refer to undeclared inputs or to steps that are not upstream.
Warnings flag what is legal but usually a mistake; ``strict`` turns them into errors.

Codes: E3xx actions and parameters, E4xx the step graph and templates, W5xx warnings (the full
table is in docs/playbook-language.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from flows.actions.registry import ActionKind, Registry
from flows.errors import Diagnostic, SpecError
from flows.language.diagnose import suggest
from flows.language.input_defaults import default_problem
from flows.language.lint_steps import action_sites, check_actions, check_templates, is_secret_ref
from flows.language.loader import LoadedPlaybook, PlaybookValidationError, load_playbook, sort_diagnostics
from flows.language.spec import Playbook
from flows.language.template_refs import contains_template
from flows.language.yaml_safe import DocPath, PositionMap, format_path

_SECRET_KEY = re.compile(r"(^|_)(password|passwd|secret|token|api_key|apikey|private_key|client_secret)$", re.I)
_SECRET_VALUE = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b|\bxox[abposr]-[0-9A-Za-z-]{10,}|-----BEGIN [A-Z ]*PRIVATE KEY")


def _graph(playbook: Playbook, positions: PositionMap, out: list[Diagnostic]) -> bool:
    """Report duplicate, unknown and self dependencies and cycles; True when the graph is sound."""
    from flows.language.dag import check_graph

    ids = [s.id for s in playbook.steps]
    problems = check_graph(playbook.steps)
    if any(p.kind == "duplicate" for p in problems):  # a cycle through a duplicated id is not real
        problems = [p for p in problems if p.kind != "cycle"]
    for p in problems:
        base: DocPath = ("steps", p.step_index)
        if p.kind == "duplicate":
            path: DocPath = (*base, "id")
            first = ids.index(p.step_id)
            out.append(
                Diagnostic(
                    "E401", f"{p.detail} (first used by steps[{first}])", positions.value(path), format_path(path)
                )
            )
        elif p.kind in ("unknown", "self"):
            path = (*base, "needs", p.needs_index or 0)
            need = playbook.steps[p.step_index].needs or [""]
            hint = suggest(need[p.needs_index or 0], ids) if p.kind == "unknown" else None
            code = "E402" if p.kind == "unknown" else "E403"
            out.append(Diagnostic(code, p.detail, positions.value(path), format_path(path), hint=hint))
        else:
            path = (*base, "needs")
            out.append(Diagnostic("E404", p.detail, positions.value(path), format_path(path)))
    return not problems


def _kind(registry: Registry, name: str) -> ActionKind | None:
    return registry.get(name).kind if name in registry else None


@dataclass
class _Warnings:
    """Collects warnings located through the playbook's positions."""

    positions: PositionMap
    out: list[Diagnostic]

    def __call__(self, code: str, message: str, path: DocPath, hint: str | None = None) -> None:
        self.out.append(Diagnostic(code, message, self.positions.value(path), format_path(path), "warning", hint))


def _unreachable(playbook: Playbook, deps: dict[str, list[str]], order: list[str]) -> dict[str, str]:
    """Steps that can never run, each with the ``fail`` step that blocks it (one pass in topological order)."""
    by_id = {s.id: s for s in playbook.steps}
    blocked: dict[str, str] = {}
    for step_id in order:
        if by_id[step_id].needs_outcome == "any":
            continue
        for dep in deps[step_id]:
            d = by_id[dep]
            if d.action == "fail" and not d.continue_on_error and d.when is None:
                blocked[step_id] = dep
                break
            if dep in blocked:
                blocked[step_id] = blocked[dep]
                break
    return blocked


def _before(playbook: Playbook, deps: dict[str, list[str]], order: list[str], mark: Callable[[Any], bool]) -> set[str]:
    """Ids of the steps that have a step satisfying ``mark`` somewhere upstream (linear)."""
    by_id = {s.id: s for s in playbook.steps}
    found: set[str] = set()
    for step_id in order:
        if any(mark(by_id[d]) or d in found for d in deps[step_id]):
            found.add(step_id)
    return found


def _warnings(playbook: Playbook, deps: dict[str, list[str]], registry: Registry, warn: _Warnings) -> None:
    from flows.language.dag import topological_order

    guarded = playbook.guards.max_targets is not None or bool(playbook.guards.require_tags)
    order = topological_order(deps)
    blocked = _unreachable(playbook, deps, order)
    after_evidence = _before(playbook, deps, order, lambda s: _kind(registry, s.action) == ActionKind.EVIDENCE)
    after_approval = _before(playbook, deps, order, lambda s: s.action == "approval")
    for index, step in enumerate(playbook.steps):
        base: DocPath = ("steps", index)
        if step.id in blocked:
            message = f"step can never run: it is downstream of fail step {blocked[step.id]!r}"
            warn("W501", message, base, "set needs_outcome: any if it must run after the failure")
        kind = _kind(registry, step.action)
        if kind == ActionKind.CONTAINMENT and step.id not in after_evidence:
            hint = "preserve evidence first (snapshot, capture, collect)"
            warn("W502", "containment step with no evidence step before it", base, hint)
        if kind in (ActionKind.CONTAINMENT, ActionKind.RECOVERY) and not guarded and step.id not in after_approval:
            hint = "add an approval step to needs, or guards: max_targets / require_tags"
            warn("W503", f"{kind.value} step with no approval before it and no guards", base, hint)
        if step.for_each is not None and step.concurrency is None:
            warn("W504", "for_each without a concurrency bound", (*base, "for_each"), "set concurrency")
        for h_index, handler in enumerate(step.on_failure):
            if _kind(registry, handler.action) == ActionKind.CONTAINMENT:
                hint = "contain in a step after an approval; keep handlers to notices and evidence"
                message = f"containment action {handler.action} in an on_failure handler runs without an approval"
                warn("W508", message, (*base, "on_failure", h_index, "action"), hint)


# What the template sandbox refuses at run time and lint can see in the text (W509).
_BOMBS = (
    (re.compile(r"%[-#0 +]*\d{6,}"), "a printf width or precision of six digits or more"),
    (re.compile(r"\{[^{}]*:[^{}]*\d{6,}[^{}]*\}"), "a format-spec width of six digits or more"),
    (re.compile(r"\bset\s+(\w+)\s*=\s*\1\s*[*~+]\s*\1\b"), "a value squared or doubled in place"),
)


def _template_bombs(data: Any, path: DocPath, warn: _Warnings) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            _template_bombs(value, (*path, key), warn)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            _template_bombs(value, (*path, index), warn)
    elif isinstance(data, str) and contains_template(data):
        for pattern, what in _BOMBS:
            if pattern.search(data):
                warn("W509", f"template has {what}, which the sandbox bounds at run time", path, "bound the value")


def _inline_secret(key: object, value: Any) -> bool:
    return (
        isinstance(value, str)
        and bool(value)
        and _SECRET_KEY.search(str(key)) is not None
        and not value.startswith("secret:")
        and not contains_template(value)
    )


def _secrets(data: Any, path: DocPath, warn: _Warnings) -> None:
    """Warn about values that look like credentials written into the playbook."""
    if isinstance(data, dict):
        for key, value in data.items():
            if _inline_secret(key, value):
                hint = "write secret:NAME and set NAME in the environment"
                warn("W505", f"{key!r} looks like an inline secret", (*path, key), hint)
            else:
                _secrets(value, (*path, key), warn)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            _secrets(value, (*path, index), warn)
    elif isinstance(data, str) and _SECRET_VALUE.search(data):
        warn("W505", "value looks like an inline credential", path, "use secret:NAME")
    elif isinstance(data, str) and data.startswith("secret:") and not is_secret_ref(data):
        warn(
            "W506",
            f"{data!r} is not a secret reference the engine resolves (NAME must match [A-Za-z_][A-Za-z0-9_]*)",
            path,
        )


def _input_defaults(playbook: Playbook, positions: PositionMap, out: list[Diagnostic], warn: _Warnings) -> None:
    """Literal defaults must fit their input's type and choices."""
    for name, spec in playbook.inputs.items():
        path: DocPath = ("inputs", name, "default")
        if spec.default is None or contains_template(spec.default) or is_secret_ref(spec.default):
            continue
        if spec.required:
            warn("W507", "a required input never uses its default", path, "drop required or the default")
            continue
        problem = default_problem(spec)
        if problem is not None:
            message = f"default does not fit the input: {problem}"
            out.append(Diagnostic("E208", message, positions.value(path), format_path(path)))


def lint_playbook(loaded: LoadedPlaybook, registry: Registry) -> list[Diagnostic]:
    """Semantic checks of a playbook that passed the schema: errors and warnings, in file order."""
    playbook, positions = loaded.playbook, loaded.positions or PositionMap(str(loaded.path))
    out: list[Diagnostic] = []
    sound = _graph(playbook, positions, out)
    raw_steps = [
        {
            "action": s.action,
            "with": s.with_,
            "on_failure": [{"action": h.action, "with": h.with_} for h in s.on_failure],
        }
        for s in playbook.steps
    ]
    out.extend(check_actions(raw_steps, registry, positions))
    from flows.language.dag import dependencies

    deps = dependencies(playbook.steps) if sound else None
    check_templates(playbook, deps, positions, out, registry)
    warn = _Warnings(positions, out)
    _input_defaults(playbook, positions, out, warn)
    if deps is not None:
        _warnings(playbook, deps, registry, warn)
    for base, _, with_ in action_sites(raw_steps):
        _secrets(with_, (*base, "with"), warn)
        _template_bombs(with_, (*base, "with"), warn)
    for name, spec in playbook.inputs.items():
        _secrets({"default": spec.default}, ("inputs", name), warn)
    return sort_diagnostics(out)


def _partial(e: PlaybookValidationError, registry: Registry) -> list[Diagnostic]:
    """Graph and template findings of a document that failed the schema (see :mod:`.partial`)."""
    from flows.language.dag import dependencies
    from flows.language.partial import partial_playbook

    partial = partial_playbook(e.data)
    if partial is None:
        return []
    out: list[Diagnostic] = []
    sound = _graph(partial, e.positions, out)  # type: ignore[arg-type]  # duck-typed like Playbook
    if partial.templates_checkable:
        deps = dependencies(partial.steps) if sound else None  # type: ignore[arg-type]
        check_templates(partial, deps, e.positions, out, registry)
    return out


def _unique(found: list[Diagnostic]) -> list[Diagnostic]:
    """Sorted findings, each once (the schema and the graph checks may see the same fault)."""
    seen: set[tuple[object, ...]] = set()
    out = []
    for d in sort_diagnostics(found):
        key = (d.pos, d.path, d.message)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def validate_path(
    path: Path, registry: Registry | None = None, strict: bool = False
) -> tuple[LoadedPlaybook | None, list[Diagnostic]]:
    """Load, validate and lint one playbook file; never raises for a bad playbook.

    Returns the loaded playbook (None when it failed the YAML or the schema) and every finding.
    With ``strict``, warnings come back as errors.
    """
    if registry is None:
        from flows.actions.registry import default_registry

        registry = default_registry()
    loaded: LoadedPlaybook | None = None
    try:
        loaded = load_playbook(path)
        found = lint_playbook(loaded, registry)
    except PlaybookValidationError as e:
        # Every finding in one pass: the steps of a file that failed the schema can still name
        # unknown actions, bad params, unknown needs, cycles and undeclared template references.
        steps = e.data.get("steps") if isinstance(e.data, dict) else None
        found = _unique([*e.diagnostics, *check_actions(steps, registry, e.positions), *_partial(e, registry)])
    except SpecError as e:
        found = list(e.diagnostics)
    if strict:
        found = [replace(d, severity="error") if d.severity == "warning" else d for d in found]
    return loaded, found
