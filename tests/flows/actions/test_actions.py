"""Registration checks of the action registry: every mistake names the definition's file:line."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ConfigDict

from flows.actions.context import ActionContext
from flows.actions.registry import (
    BUILTIN_MODULES,
    Action,
    ActionKind,
    ActionParams,
    ActionResult,
    Plan,
    Registry,
    action,
    default_registry,
)
from flows.errors import RegistrationError, UnknownActionError

THIS_FILE = Path(__file__).name


class P(ActionParams):
    target: str


class R(ActionResult):
    pass


class Loose(ActionParams):
    model_config = ConfigDict(extra="forbid", frozen=False)
    target: str


@action("test.thing.ok", kind=ActionKind.EVIDENCE, params=P, result=R)
class Ok(Action[P, R]):
    """A correct action."""

    def plan(self, params: P, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary="ok")

    def apply(self, params: P, ctx: ActionContext) -> R:
        return R()


@action("test.thing.ok", kind=ActionKind.EVIDENCE, params=P, result=R)
class SameName(Action[P, R]):
    """Another action under a taken name."""

    def plan(self, params: P, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary="again")

    def apply(self, params: P, ctx: ActionContext) -> R:
        return R()


@action("test.thing.bad_sig", kind=ActionKind.EVIDENCE, params=P, result=R)
class BadSignature(Action[P, R]):
    """plan() takes the wrong params type."""

    def plan(self, params: dict, ctx: ActionContext) -> Plan:  # type: ignore[override,type-arg]  # on purpose
        return Plan(action=self.name, summary="bad")

    def apply(self, params: P, ctx: ActionContext) -> R:
        return R()


@action("test.thing.bad_return", kind=ActionKind.EVIDENCE, params=P, result=R)
class BadReturn(Action[P, R]):
    """apply() returns something other than Result."""

    def plan(self, params: P, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary="bad")

    def apply(self, params: P, ctx: ActionContext) -> Plan:  # type: ignore[override]  # on purpose
        return Plan(action=self.name, summary="bad")


@action("test.thing.loose", kind=ActionKind.EVIDENCE, params=Loose, result=R)
class NotFrozen(Action[Loose, R]):
    """Params that can be changed after validation."""

    def plan(self, params: Loose, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary="x")

    def apply(self, params: Loose, ctx: ActionContext) -> R:
        return R()


@action("aws.thing.no_perms", kind=ActionKind.CONTAINMENT, params=P, result=R)
class NoPermissions(Action[P, R]):
    """An AWS action that declares no IAM permissions."""

    def plan(self, params: P, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary="x")

    def apply(self, params: P, ctx: ActionContext) -> R:
        return R()


@action("aws.thing.bad_perm", kind=ActionKind.CONTAINMENT, params=P, result=R, permissions=["ec2 stop"])
class BadPermission(Action[P, R]):
    """An AWS action with a malformed permission."""

    def plan(self, params: P, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary="x")

    def apply(self, params: P, ctx: ActionContext) -> R:
        return R()


@action("Test.Bad-Name", kind=ActionKind.CONTROL, params=P, result=R)
class BadName(Action[P, R]):
    """A name that is not dotted lower-case."""

    def plan(self, params: P, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary="x")

    def apply(self, params: P, ctx: ActionContext) -> R:
        return R()


@action("test.thing.no_apply", kind=ActionKind.CONTROL, params=P, result=R)
class NoApply(Action[P, R]):
    """Only a plan."""

    def plan(self, params: P, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary="x")


def _refused(cls: type[Action[P, R]] | type[Action[Loose, R]]) -> str:
    with pytest.raises(RegistrationError) as caught:
        Registry().register(cls)
    return str(caught.value)


def test_a_correct_action_registers() -> None:
    registry = Registry()
    registry.register(Ok)
    registry.register(Ok)  # registering the same class twice is harmless
    assert registry.names() == ["test.thing.ok"]
    assert registry.get("test.thing.ok").description == "A correct action."
    with pytest.raises(UnknownActionError):
        registry.get("test.thing.nope")


def test_duplicate_names_name_both_definitions() -> None:
    registry = Registry()
    registry.register(Ok)
    with pytest.raises(RegistrationError) as caught:
        registry.register(SameName)
    message = str(caught.value)
    assert f"{THIS_FILE}:" in message
    assert "already registered by" in message
    assert message.count(THIS_FILE) == 2


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (BadSignature, "plan() must take params: P"),
        (BadReturn, "apply() must take return: R"),
        (NotFrozen, "Params must be frozen with extra='forbid'"),
        (NoPermissions, "an AWS action must declare its IAM permissions"),
        (BadPermission, "'ec2 stop' is not an IAM action"),
        (BadName, "must be dotted lower-case"),
        (NoApply, "plan() and apply() are both required"),
    ],
)
def test_bad_definitions_are_refused_with_file_and_line(cls: type[Action[P, R]], expected: str) -> None:
    message = _refused(cls)
    assert expected in message
    assert f"{THIS_FILE}:" in message
    line = int(message.split(f"{THIS_FILE}:")[1].split(":")[0])
    assert line > 1


def test_builtin_catalogue_is_valid() -> None:
    registry = default_registry()
    modules = {type(a).__module__ for a in registry.all()}
    assert "flows.actions.control" in modules
    assert modules <= set(BUILTIN_MODULES) | {m for m in modules if not m.startswith(("flows.", "integrations."))}
    for act in registry.all():
        if act.name.startswith("aws."):
            assert act.permissions, act.name
        assert act.kind in ActionKind


@pytest.fixture
def plugin_path(tmp_path: Path) -> Iterator[Path]:
    """A fake installed distribution with two fireline.actions entry points."""
    (tmp_path / "fl_plugin_demo.py").write_text(
        textwrap.dedent(
            '''
            from __future__ import annotations
            from flows.actions.registry import Action, ActionKind, ActionParams, ActionResult, Plan, action
            from flows.actions.context import ActionContext

            class P(ActionParams):
                x: int = 1

            class R(ActionResult):
                pass

            @action("plugin.demo.hello", kind=ActionKind.NOTIFY, params=P, result=R)
            class Hello(Action[P, R]):
                """Say hello."""

                def plan(self, params: P, ctx: ActionContext) -> Plan:
                    return Plan(action=self.name, summary="hello", mutating=False)

                def apply(self, params: P, ctx: ActionContext) -> R:
                    return R()
            '''
        )
    )
    dist = tmp_path / "fl_plugin_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fl-plugin-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[fireline.actions]\ndemo = fl_plugin_demo\n")
    sys.path.insert(0, str(tmp_path))
    try:
        yield dist
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("fl_plugin_demo", None)


def test_entry_points_register_plugin_actions(plugin_path: Path) -> None:
    registry = Registry()
    registry.load_entry_points()
    assert "plugin.demo.hello" in registry


def test_a_broken_entry_point_is_a_registration_error(plugin_path: Path) -> None:
    (plugin_path / "entry_points.txt").write_text("[fireline.actions]\nbroken = fl_plugin_missing_module\n")
    with pytest.raises(RegistrationError, match="entry point 'broken'"):
        Registry().load_entry_points()
