"""A best-effort view of a playbook that failed its schema, so graph and template checks still run.

``fireline validate`` reports every finding of a file in one pass: a misspelt key in one step must
not hide an unknown ``needs`` id (E402) or an undeclared input (E411) in another. The schema error
is reported by the loader; this view gives the graph and template checks the parts that are
readable, duck-typed like :class:`~flows.language.spec.Playbook` where those checks look.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PartialHandler:
    with_: Any = None


@dataclass(frozen=True)
class PartialStep:
    id: str
    action: Any = None
    needs: list[str] | None = None
    for_each: Any = None
    when: Any = None
    with_: Any = None
    on_failure: list[PartialHandler] = field(default_factory=list)


@dataclass(frozen=True)
class PartialInput:
    default: Any = None


@dataclass(frozen=True)
class PartialPlaybook:
    inputs: dict[str, PartialInput]
    steps: list[PartialStep]
    templates_checkable: bool  # False when the inputs cannot be read (every reference would look undeclared)


def _step(index: int, raw: Any) -> PartialStep:
    if not isinstance(raw, dict):
        return PartialStep(id=f"\0steps[{index}]")  # keeps indices aligned with the document
    step_id = raw.get("id")
    needs = raw.get("needs")
    handlers = raw.get("on_failure")
    return PartialStep(
        id=step_id if isinstance(step_id, str) else f"\0steps[{index}]",
        action=raw.get("action"),
        needs=[n for n in needs if isinstance(n, str)] if isinstance(needs, list) else None,
        for_each=raw.get("for_each"),
        when=raw.get("when"),
        with_=raw.get("with") if isinstance(raw.get("with"), dict) else None,
        on_failure=[
            PartialHandler(h.get("with") if isinstance(h.get("with"), dict) else None)
            for h in (handlers if isinstance(handlers, list) else [])
            if isinstance(h, dict)
        ],
    )


def partial_playbook(data: Any) -> PartialPlaybook | None:
    """The readable parts of a raw playbook document, or None when it has no list of steps."""
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        return None
    raw_inputs = data.get("inputs")
    readable = raw_inputs is None or isinstance(raw_inputs, dict)
    inputs = {
        str(name): PartialInput(spec.get("default") if isinstance(spec, dict) else None)
        for name, spec in (raw_inputs.items() if isinstance(raw_inputs, dict) else [])
    }
    return PartialPlaybook(inputs, [_step(i, raw) for i, raw in enumerate(data["steps"])], readable)
