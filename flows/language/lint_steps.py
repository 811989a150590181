"""Per-step checks: known actions, ``with`` parameters against each action's ``Params``, templates.

Parameters are checked statically where they are literals; a field whose value holds a template
(``{{`` or ``{%``) is left to run time, and so are model-level rules that such a field could satisfy.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from flows.actions.registry import Registry
from flows.errors import Diagnostic
from flows.language.diagnose import PARAM_CODES, format_path, pydantic_diagnostics, suggest
from flows.language.spec import ACTION_NAME_PATTERN
from flows.language.template_refs import builtin_names, contains_template, is_template, parse_template
from flows.language.yaml_safe import DocPath, PositionMap

_ACTION_NAME = re.compile(ACTION_NAME_PATTERN)
SECRET_REF = re.compile(r"^secret:[A-Za-z_][A-Za-z0-9_]*$")
STEP_ROOTS = frozenset({"inputs", "alert", "incident", "steps"})
DEFAULT_ROOTS = frozenset({"alert", "incident"})


def action_sites(steps: Any) -> Iterator[tuple[DocPath, Any, Any]]:
    """Every (path, action name, with) of raw step mappings and their on_failure handlers."""
    if not isinstance(steps, list):
        return
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        yield ("steps", index), step.get("action"), step.get("with", {})
        handlers = step.get("on_failure")
        for h_index, handler in enumerate(handlers if isinstance(handlers, list) else []):
            if isinstance(handler, dict):
                yield ("steps", index, "on_failure", h_index), handler.get("action"), handler.get("with", {})


def is_secret_ref(value: object) -> bool:
    """True for a ``secret:NAME`` reference, which the engine resolves when the step runs."""
    return isinstance(value, str) and SECRET_REF.match(value) is not None


def check_params(action: Any, with_: dict[str, Any], base: DocPath, positions: PositionMap) -> list[Diagnostic]:
    """Validate the literal fields of ``with`` against ``action.Params``."""
    from pydantic import ValidationError as PydanticValidationError

    # Templates render and secret:NAME references resolve at run time: only the rest is known now.
    literal = {k: v for k, v in with_.items() if not contains_template(v) and not is_secret_ref(v)}
    deferred = set(with_) - set(literal)
    try:
        action.Params.model_validate(literal)
    except PydanticValidationError as e:
        # A templated field satisfies "required" at run time, and may satisfy a model-level rule.
        errors = [
            err
            for err in e.errors(include_url=False)
            if ((err["loc"][0] not in deferred) if err["loc"] else not deferred)
        ]
        return pydantic_diagnostics(errors, literal, positions, action.Params, base=base, codes=PARAM_CODES)
    except Exception as e:  # a Params validator that raises something pydantic does not wrap
        message = f"parameters of {action.name!r} could not be checked: {type(e).__name__}: {e}"
        return [Diagnostic("E304", message, positions.value(base), format_path(base))]
    return []


def check_actions(steps: Any, registry: Registry, positions: PositionMap) -> list[Diagnostic]:
    """Unknown actions (with the closest name) and ``with`` parameters of known ones."""
    out: list[Diagnostic] = []
    for base, name, with_ in action_sites(steps):
        if not isinstance(name, str) or not _ACTION_NAME.match(name):  # the schema reports a malformed name
            continue
        if name not in registry:
            path = (*base, "action")
            hint = suggest(name, registry.names())
            out.append(
                Diagnostic("E301", f"unknown action {name!r}", positions.value(path), format_path(path), hint=hint)
            )
            continue
        if isinstance(with_, dict):
            out.extend(check_params(registry.get(name), with_, (*base, "with"), positions))
    return out


@dataclass(frozen=True)
class Scope:
    """What templates at one place of a playbook may refer to."""

    roots: frozenset[str]
    step_id: str | None = None
    upstream: Collection[str] | None = None  # None: the graph is broken, skip the upstream rule


@dataclass
class TemplateChecker:
    """Checks every template of a playbook against declared inputs and the step graph."""

    positions: PositionMap
    inputs: Collection[str]
    step_ids: Collection[str]
    out: list[Diagnostic]
    results: Mapping[str, tuple[str, type[BaseModel]]] = field(default_factory=dict)  # id -> (action, Result)

    def check(self, value: Any, path: DocPath, scope: Scope) -> None:
        """Check ``value`` and everything nested in it."""
        if isinstance(value, dict):
            for key, item in value.items():
                self.check(item, (*path, key), scope)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.check(item, (*path, index), scope)
        elif is_template(value):
            self._one(value, path, scope)

    def _add(self, code: str, message: str, path: DocPath, hint: str | None = None) -> None:
        self.out.append(Diagnostic(code, message, self.positions.value(path), format_path(path), hint=hint))

    def _one(self, text: str, path: DocPath, scope: Scope) -> None:
        parsed = parse_template(text)
        if parsed.error is not None:
            self._add("E410", f"template syntax error: {parsed.error}", path)
            return
        known = scope.roots | builtin_names()
        # `steps.collect-logs.output` parses as a subtraction; its id is reported once, as a step.
        dashed = {part for ref in parsed.refs if ref.root == "steps" for part in self._dashed_tail(ref)}
        for name in sorted(parsed.free - known - dashed):
            if name in STEP_ROOTS | {"item", "error"} and name not in scope.roots and scope.roots == DEFAULT_ROOTS:
                self._add("E415", f"{name!r} is not available in input defaults (only alert and incident)", path)
            elif name == "item":
                self._add("E413", "'item' is only defined in steps with for_each (in with and when)", path)
            elif name == "error":
                self._add("E414", "'error' is only defined in on_failure handlers", path)
            else:
                hint = suggest(name, scope.roots)
                self._add("E415", f"template refers to unknown name {name!r}", path, hint)
        for ref in parsed.refs:
            if ref.root == "inputs" and "inputs" in scope.roots:
                self._input_ref(ref, path)
            elif ref.root == "steps" and "steps" in scope.roots:
                self._step_ref(ref, path, scope)

    def _dashed_tail(self, ref: Any) -> list[str]:
        if not ref.parts or not isinstance(ref.parts[0], str) or ref.parts[0] in self.step_ids:
            return []
        return [p for s in self.step_ids if s.startswith(f"{ref.parts[0]}-") for p in s.split("-")[1:]]

    def _input_ref(self, ref: Any, path: DocPath) -> None:
        if ref.parts and isinstance(ref.parts[0], str) and ref.parts[0] not in self.inputs:
            name = ref.parts[0]
            self._add("E411", f"template refers to undeclared input {name!r}", path, suggest(name, self.inputs))

    def _step_ref(self, ref: Any, path: DocPath, scope: Scope) -> None:
        if not ref.parts or not isinstance(ref.parts[0], str):
            return
        target = ref.parts[0]
        if target not in self.step_ids:
            dashed = [s for s in self.step_ids if s.startswith(f"{target}-")]
            hint = f"ids with '-' are written steps[{dashed[0]!r}]" if dashed else suggest(target, self.step_ids)
            self._add("E412", f"template refers to unknown step {target!r}", path, hint)
        elif scope.upstream is not None and target not in scope.upstream:
            where = f"step {scope.step_id!r}" if scope.step_id else "this place"
            self._add(
                "E412",
                f"template refers to step {target!r}, which is not upstream of {where}",
                path,
                f"add {target!r} to needs",
            )
        else:
            self._output_field(ref, path)

    def _output_field(self, ref: Any, path: DocPath) -> None:
        """``steps.<id>.output.<field>``: the field must exist in the action's ``Result`` model."""
        parts = ref.parts
        if len(parts) < 3 or parts[1] != "output" or not isinstance(parts[2], str) or parts[0] not in self.results:
            return
        action, model = self.results[parts[0]]
        if model.model_config.get("extra") == "allow" or hasattr(dict, parts[2]):  # dict methods: .get, .items
            return
        fields = {f.alias or name for name, f in model.model_fields.items()}
        if parts[2] not in fields:
            hint = suggest(parts[2], fields) or "its fields: " + ", ".join(sorted(fields))
            message = f"step {parts[0]!r} ({action}) has no output field {parts[2]!r}"
            self._add("E416", message, path, hint)


# One ``{{ expression }}`` and nothing around it (the engine renders it to a native value).
_ONE_EXPRESSION = re.compile(r"^\s*\{\{(?:(?!\{\{|\}\}|\{%|\{#).)*\}\}\s*$", re.DOTALL)
_BOOLEAN_TEXT = frozenset({"true", "false", "yes", "no", "1", "0"})


def check_condition(when: str | None, path: DocPath, positions: PositionMap, out: list[Diagnostic]) -> None:
    """A ``when`` must be one expression (or a boolean literal): text around or between ``{{ }}``
    renders to a string such as "False and False", which is never a boolean (E417)."""
    if when is None:
        return
    if is_template(when):
        if _ONE_EXPRESSION.match(when) or parse_template(when).error is not None:  # E410 says that one
            return
        message = "a condition must be one expression: text around or between {{ }} renders to a string"
        hint = 'write one expression, e.g. "{{ a and b }}" instead of "{{ a }} and {{ b }}"'
    elif when.strip().lower() in _BOOLEAN_TEXT:
        return
    else:
        message = f"a condition must be one {{{{ expression }}}} or true/false, not the text {when!r}"
        hint = None
    out.append(Diagnostic("E417", message, positions.value(path), format_path(path), hint=hint))


def check_templates(
    playbook: Any,
    deps: Mapping[str, list[str]] | None,
    positions: PositionMap,
    out: list[Diagnostic],
    registry: Registry | None = None,
) -> None:
    """Check the templates of every step, handler and input default of a valid playbook.

    With ``registry``, ``steps.<id>.output.<field>`` is checked against the action's ``Result``
    (not for ``for_each`` steps, whose output is a list).
    """
    from flows.language.dag import Ancestry

    ancestry = Ancestry(dict(deps)) if deps is not None else None
    results = {
        s.id: (s.action, registry.get(s.action).Result)
        for s in playbook.steps
        if registry is not None and s.for_each is None and isinstance(s.action, str) and s.action in registry
    }
    checker = TemplateChecker(positions, set(playbook.inputs), {s.id for s in playbook.steps}, out, results)
    for name, spec in playbook.inputs.items():
        checker.check(spec.default, ("inputs", name, "default"), Scope(DEFAULT_ROOTS))
    for index, step in enumerate(playbook.steps):
        up = ancestry.of(step.id) if ancestry is not None else None
        base: DocPath = ("steps", index)
        plain = Scope(STEP_ROOTS, step.id, up)
        per_item = Scope(STEP_ROOTS | {"item"}, step.id, up) if step.for_each is not None else plain
        checker.check(step.for_each, (*base, "for_each"), plain)
        checker.check(step.when, (*base, "when"), per_item)
        check_condition(step.when, (*base, "when"), positions, out)
        checker.check(step.with_, (*base, "with"), per_item)
        for h_index, handler in enumerate(step.on_failure):
            scope = Scope(per_item.roots | {"error"}, step.id, up)
            checker.check(handler.with_, (*base, "on_failure", h_index, "with"), scope)
