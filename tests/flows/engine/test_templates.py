"""Templates: native values, strict names, rendered once, sandboxed, size-capped; alert values stay data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flows.engine import run_playbook
from flows.engine.templates import MAX_VALUE_BYTES, Placeholder, render_string, render_value, truthy
from flows.errors import TemplateError
from tests.flows.engine.engine_helpers import make_registry, make_settings, write_playbook

SCOPE: dict[str, Any] = {
    "inputs": {"ids": ["i-1", "i-2"], "name": "ep"},
    "alert": {"labels": {"alertname": "X"}, "annotations": {}},
    "incident": {"id": "inc-1", "mode": "live"},
    "steps": {"a": {"output": {"n": 3}, "status": "succeeded"}},
}

# Payloads an attacker can place in alert labels or annotations. Each must come out exactly as it went in.
INJECTIONS = [
    "{{ 7 * 7 }}",
    "{{ config }}",
    "{{ self.__init__.__globals__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].system('touch /tmp/pwned') }}",
    "{{ request.application.__globals__.__builtins__ }}",
    "{% for x in ().__class__.__base__.__subclasses__() %}{{ x }}{% endfor %}",
    "{% import os %}",
    "{% include '/etc/passwd' %}",
    "{% extends '/etc/passwd' %}",
    "{{ range(10**9) | list }}",
    "{{ 'a' * 10**9 }}",
    "{% set x = 'a' * 1000 %}{{ x * 1000000 }}",
    "{{ ''|attr('__class__') }}",
    "{{ ()|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "{{ inputs.__class__.__init__ }}",
    "{{ alert.labels.__class__.__mro__ }}",
    "{# comment #}{{ 1 }}",
    "{%raw%}{{ 1 }}{%endraw%}",
    "${{ github.token }} {{ 'x' }}",
    "{{ '%s' % ('a' * 100) }}",
    "{{ dict.mro() }}",
    "{{ [].append.__self__ }}",
    "{{ x.__getattribute__('__class__') }}",
    "{{{{ nested }}}}",
    "}}{{ unbalanced",
    "{{ incident.__dict__ }}",
]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_alert_values_are_data(payload: str) -> None:
    scope = {**SCOPE, "alert": {"labels": {"evil": payload}, "annotations": {"summary": payload}}}
    assert render_string("{{ alert.labels.evil }}", scope) == payload
    assert render_string("note: {{ alert.annotations.summary }}", scope) == f"note: {payload}"
    assert render_value({"m": ["{{ alert.labels.evil }}"]}, scope) == {"m": [payload]}


# Payloads placed in a playbook template itself: each is refused with a TemplateError, or renders inert.
HOSTILE_TEMPLATES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ lipsum.__globals__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ inputs.__class__ }}",
    "{{ ''|attr('__class__') }}",
    "{{ ().__class__.__base__.__subclasses__() }}",
    "{{ [].pop() }}",
    "{{ inputs.ids.append('x') }}",
    "{{ 'a' * 10**9 }}",
    "{{ [1] * 10**9 }}",
    "{{ range(10**9) | list }}",
    "{% for i in range(10**9) %}x{% endfor %}",
    "{% for i in range(100000) %}xxxxxxxxxx{% endfor %}",
    "{{ 'a' | center(10**9) }}",
    "{{ 'a' | indent(10**9) }}",
    "{{ '%999999999s' % 1 }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ 'a'.ljust(10**9) }}",
    "{{ 10 ** 100000 }}",
    "{{ undefined_name }}",
    "{{ inputs.missing }}",
    "{% include 'x' %}",
    "{{ range }}",
    "{{ 1/0 }}",
]


@pytest.mark.parametrize("source", HOSTILE_TEMPLATES)
def test_hostile_templates_are_refused(source: str) -> None:
    with pytest.raises(TemplateError):
        render_string(source, SCOPE)


def test_corpus_is_large_enough() -> None:
    assert len(INJECTIONS) >= 25
    assert len(HOSTILE_TEMPLATES) >= 25


def test_single_expression_is_native() -> None:
    assert render_string("{{ inputs.ids }}", SCOPE) == ["i-1", "i-2"]
    assert render_string("  {{ steps.a.output.n }} ", SCOPE) == 3
    assert render_string("{{ inputs.ids | length }} hosts", SCOPE) == "2 hosts"
    assert render_string("{{ range(3) }}", SCOPE) == [0, 1, 2]


def test_strict_undefined_names_the_place() -> None:
    with pytest.raises(TemplateError, match=r"steps\[x\]\.with\.m: .*'nope' is undefined"):
        render_value({"m": "{{ nope }}"}, SCOPE, where="steps[x].with")


def test_text_output_cap() -> None:
    big = "{% for i in range(9000) %}0123456789{% endfor %}"
    with pytest.raises(TemplateError, match="KiB cap"):
        render_string(big, SCOPE)
    assert len(render_string("{% for i in range(100) %}0123456789{% endfor %}", SCOPE)) == 1000
    assert MAX_VALUE_BYTES == 64 * 1024


def test_truthy() -> None:
    assert [truthy(v) for v in ("false", "False ", "0", "", "no", "None")] == [False] * 6
    assert truthy("yes")
    assert truthy(1)
    assert truthy([0])
    assert not truthy([])


def test_placeholder_keeps_dry_runs_going() -> None:
    scope = {"steps": {"iso": {"output": Placeholder("iso", {"plan": {"summary": "x"}})}}}
    assert render_string("{{ steps.iso.output.group_id }}", scope) == "<dry-run: iso.group_id>"
    assert render_string("{{ steps.iso.output.plan.summary }}", scope) == "x"


def test_a_label_with_braces_is_never_rendered_in_a_run(tmp_path: Path) -> None:
    steps = [
        {"id": "say", "action": "test.echo", "with": {"value": "{{ alert.labels.evil }}"}},
        {"id": "again", "action": "test.echo", "with": {"value": "{{ steps.say.output.value }}"}},
    ]
    path = write_playbook(tmp_path, steps)
    payload = "{{ cycler.__init__.__globals__.os.popen('id').read() }}"
    summary = run_playbook(
        path, alert={"labels": {"evil": payload}}, settings=make_settings(tmp_path), registry=make_registry()
    )
    assert summary.steps["again"].output["value"] == payload


_BOMBS = {
    "repeated squaring": "{% set a = 7 %}" + "{% set a = a * a %}" * 21 + "{{ a }}",
    "printf width filter": "{{ '%99999999s'|format('x') }}",
    "printf width operator": "{{ '%99999999s' % 'x' }}",
    "printf star width": "{{ '%*s'|format(99999999, 'x') }}",
    "str.format nested width": "{{ '{0:{1}}'.format('x', '999999999') }}",
    "format_map width": "{{ '{x:999999999}'.format_map({'x': 'y'}) }}",
    "tilde doubling": "{% set a = 'xxxxxxxxxxxxxxxx' %}" + "{% set a = a ~ a %}" * 30 + "{{ a|length }}",
    "silent nested loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "shared sub-lists": "{% set a = [1] %}" + "{% set a = [a, a] %}" * 40 + "{{ a|tojson }}",
    "exponential macro": "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}",
}


def _measured(source: str) -> tuple[float, int, BaseException | None]:
    import time
    import tracemalloc

    tracemalloc.start()
    started = time.perf_counter()
    error: BaseException | None = None
    try:
        render_string(source, SCOPE)
    except TemplateError as e:
        error = e
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return elapsed, peak, error


@pytest.mark.parametrize("bomb", list(_BOMBS))
def test_each_template_bomb_is_refused_quickly_and_small(bomb: str) -> None:
    baseline, _, none = _measured("{% for i in range(20000) %}{% endfor %}{{ 'x' * 60000 }}")
    assert none is None
    elapsed, peak, error = _measured(_BOMBS[bomb])
    assert isinstance(error, TemplateError)
    assert "refused" in str(error)
    assert peak < 100 * 1024 * 1024, f"{bomb}: peak allocation {peak / 1e6:.0f} MB"
    # The work bound is an operation count, so the ratio holds on a busy machine as on an idle one.
    assert elapsed < 40 * max(baseline, 0.005), f"{bomb}: {elapsed:.2f}s against a baseline of {baseline:.3f}s"


def test_the_bounds_need_no_tracer() -> None:
    import sys

    def tracer(*_: object) -> None:
        return None

    sys.settrace(tracer)
    try:
        with pytest.raises(TemplateError, match="operations"):
            render_string(_BOMBS["silent nested loops"], SCOPE)
        assert sys.gettrace() is tracer  # a coverage tracer or a debugger is never displaced
    finally:
        sys.settrace(None)


def test_ordinary_formatting_and_loops_still_render() -> None:
    source = "{{ '{0:>5}'.format('x') }}|{{ '%5s'|format('y') }}|{{ 'a' ~ 'b' }}|"
    source += "{% for i in range(3) %}{{ i }}{% endfor %}"
    assert render_string(source, SCOPE) == "    x|    y|ab|012"
    assert render_string("{{ 2 ** 64 * 3 }}", SCOPE) == 3 * 2**64


def test_lint_flags_the_bombs_it_can_see(tmp_path: Path) -> None:
    from flows.language.lint import validate_path

    steps = [
        {"id": "a", "action": "log", "with": {"message": _BOMBS["printf width filter"]}},
        {"id": "b", "action": "log", "with": {"message": _BOMBS["repeated squaring"]}},
        {"id": "c", "action": "log", "with": {"message": "{{ '%5s'|format('x') }} {% set n = m * 2 %}"}},
    ]
    _, found = validate_path(write_playbook(tmp_path, steps), make_registry())
    assert sorted(d.path for d in found if d.code == "W509") == ["steps[0].with.message", "steps[1].with.message"]
