"""The static action-name -> module index, and the lazy default registry built on it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flows.actions.builtin_index import BUILTIN_INDEX
from flows.actions.registry import BUILTIN_MODULES, Registry, builtin_index, default_registry
from flows.errors import UnknownActionError

REPO = Path(__file__).resolve().parents[3]


def test_index_equals_what_registering_every_builtin_module_produces() -> None:
    fresh = builtin_index()
    assert fresh == BUILTIN_INDEX, "paste into flows/actions/builtin_index.py:\n" + "\n".join(
        f'    "{name}": "{module}",' for name, module in sorted(fresh.items())
    )


def _lazy() -> Registry:
    registry = Registry()
    registry.defer(BUILTIN_MODULES, BUILTIN_INDEX, entry_points=False)
    return registry


def test_lazy_registry_answers_as_the_full_one() -> None:
    full = Registry()
    for module in BUILTIN_MODULES:
        full.register_module(module)
    lazy = _lazy()
    for name in full.names():
        assert name in lazy
        assert type(lazy.get(name)) is type(full.get(name))
    assert lazy.names() == full.names()
    assert "aws.ec2.isolat_instance" not in _lazy()
    with pytest.raises(UnknownActionError):
        _lazy().get("no.such.action")


def test_lazy_registry_imports_only_the_named_module() -> None:
    # A fresh interpreter: the module cache of this test process already holds the built-ins.
    code = (
        "import sys\n"
        "from flows.actions.registry import default_registry\n"
        "assert 'log' in default_registry()\n"
        "print(sorted(m for m in sys.modules if m.startswith('integrations')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_unknown_name_loads_the_whole_catalogue_for_did_you_mean() -> None:
    registry = _lazy()
    assert "aws.ec2.isolat_instance" not in registry
    assert set(BUILTIN_INDEX) <= set(registry._actions)
    assert default_registry().names() == sorted(set(default_registry().names()))


@pytest.mark.parametrize("field", ["user_name", "role_name"])
def test_iam_names_keep_their_limits_without_a_counted_unicode_class(field: str) -> None:
    # The pattern lost its {1,128} (slow to compile at every start); max_length keeps the limit.
    from pydantic import ValidationError

    from integrations.aws.iam import DisableKeysParams
    from integrations.aws.iam_principal import PrincipalParams

    models: list[type[PrincipalParams] | type[DisableKeysParams]] = [PrincipalParams]
    models += [DisableKeysParams] if field == "user_name" else []
    for model in models:
        assert getattr(model.model_validate({field: "a" * 128}), field) == "a" * 128
        assert getattr(model.model_validate({field: "ci+bot=,.@-_x"}), field) == "ci+bot=,.@-_x"
        for bad in ("a" * 129, "", "two words", "line\n"):
            with pytest.raises(ValidationError):
                model.model_validate({field: bad})
