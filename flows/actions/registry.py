"""The action interface: what every action provides, and the registry that holds them.

An action is a class with a frozen ``Params`` model, a ``Result`` model, a dotted name, a kind and
declared IAM permissions, and three methods:

- ``plan(params, ctx) -> Plan``: what it would do and to which resources, with no side effect.
  Dry-run and drills call only this. It must work without credentials.
- ``apply(params, ctx) -> Result``: does it, idempotently under ``ctx.idempotency_key``.
- ``undo(result, ctx) -> UndoResult`` (optional): reverses a completed ``apply``.

The :func:`action` decorator only records metadata; :class:`Registry` checks definitions when it
loads them from an explicit list of built-in modules and the ``fireline.actions`` entry points.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import typing
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from flows.errors import RegistrationError, UnknownActionError
from flows.language.spec import ACTION_NAME_PATTERN

if TYPE_CHECKING:
    from flows.actions.context import ActionContext

ENTRY_POINT_GROUP = "fireline.actions"

# Modules that define the built-in catalogue. Explicit on purpose: packages are never walked.
BUILTIN_MODULES: tuple[str, ...] = (
    "flows.actions.control",
    "flows.people.page",
    "integrations.aws.ec2",
    "integrations.aws.ec2_snapshot",
    "integrations.aws.iam",
    "integrations.aws.iam_capture",
    "integrations.aws.iam_restore",
    "integrations.aws.s3",
    "integrations.aws.cloudtrail",
    "integrations.aws.logs",
    "integrations.aws.lambda_",
    "integrations.aws.sagemaker",
    "integrations.models.actions",
    "integrations.models.registry_actions",
    "integrations.slack.actions",
    "integrations.data.quarantine",
    "integrations.data.radius",
    "integrations.data.pipeline",
)


class ActionKind(StrEnum):
    EVIDENCE = "evidence"
    CONTAINMENT = "containment"
    RECOVERY = "recovery"
    NOTIFY = "notify"
    CONTROL = "control"


class ActionParams(BaseModel):
    """Base of every ``Params`` model: frozen, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class ActionResult(BaseModel):
    """Base of every ``Result`` model. ``changed`` is False for a recorded no-op (already done)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    changed: bool = True
    summary: str = ""


class Target(BaseModel):
    """A resource an action reads or changes; guards are enforced against these.

    ``tags`` is None when they are unknown (no credentials in a dry-run); a guard that needs tags
    then refuses in live mode and reports "unknown" in a plan.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(description="Resource type, e.g. aws:ec2:instance, aws:iam:user, model:sagemaker:endpoint.")
    id: str
    arn: str | None = None
    region: str | None = None
    tags: dict[str, str] | None = None


class Plan(BaseModel):
    """What an action would do, produced without side effects."""

    model_config = ConfigDict(extra="forbid")

    action: str
    summary: str
    targets: list[Target] = Field(default_factory=list)
    changes: list[str] = Field(default_factory=list, description="Each change it would make, one line each.")
    reads: list[str] = Field(default_factory=list, description="What it would read, for evidence actions.")
    warnings: list[str] = Field(default_factory=list)
    mutating: bool = True


class UndoResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    changed: bool = True
    summary: str = ""


P = TypeVar("P", bound=ActionParams)
R = TypeVar("R", bound=ActionResult)


class Action(Generic[P, R]):
    """Base class for actions. Subclasses set the class variables through :func:`action`."""

    name: ClassVar[str]
    kind: ClassVar[ActionKind]
    Params: ClassVar[type[ActionParams]]
    Result: ClassVar[type[ActionResult]]
    permissions: ClassVar[tuple[str, ...]] = ()
    undo_permissions: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    # The provider guidance the action follows, and what it leaves open (``fireline actions show``).
    guidance: ClassVar[tuple[str, ...]] = ()
    caveats: ClassVar[tuple[str, ...]] = ()

    def plan(self, params: P, ctx: ActionContext) -> Plan:
        raise NotImplementedError

    def apply(self, params: P, ctx: ActionContext) -> R:
        raise NotImplementedError

    def undo(self, result: R, ctx: ActionContext) -> UndoResult:
        raise NotImplementedError

    def unavailable(self, ctx: ActionContext) -> str | None:
        """Why this run cannot use the action at all, or None. Asked of ``notify`` actions only.

        A notify action whose integration is not configured (Slack without a token) answers with
        a sentence; the engine then skips the step (reason ``not_configured``) in every mode
        alike, before planning. Other kinds are never skipped this way: containment with missing
        credentials fails its step.
        """
        return None

    @classmethod
    def undoable(cls) -> bool:
        return cls.undo is not Action.undo

    @property
    def mutating(self) -> bool:
        return self.kind in (ActionKind.CONTAINMENT, ActionKind.RECOVERY)

    def policy_statements(self, params: P | None) -> list[dict[str, Any]]:
        """IAM statements this action needs; the default grants its permissions on every resource.

        Actions override this to scope resources when ``params`` are known literals.
        """
        actions = sorted({*self.permissions, *self.undo_permissions})
        if not actions:
            return []
        return [{"Effect": "Allow", "Action": actions, "Resource": "*"}]


_A = TypeVar("_A", bound=type[Action[Any, Any]])
_MARK = "__fireline_action__"


def action(
    name: str,
    *,
    kind: ActionKind | str,
    params: type[ActionParams],
    result: type[ActionResult],
    permissions: Iterable[str] = (),
    undo_permissions: Iterable[str] = (),
) -> Callable[[_A], _A]:
    """Record an action's metadata on its class; checking happens at registration."""

    def mark(cls: _A) -> _A:
        cls.name = name
        cls.kind = ActionKind(kind)
        cls.Params = params
        cls.Result = result
        cls.permissions = tuple(permissions)
        cls.undo_permissions = tuple(undo_permissions)
        cls.description = inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0].replace("\n", " ")
        setattr(cls, _MARK, True)
        return cls

    return mark


def _where(obj: Any) -> str:
    try:
        return f"{inspect.getsourcefile(obj)}:{inspect.getsourcelines(obj)[1]}"
    except (OSError, TypeError):
        return getattr(obj, "__module__", "?")


class _LazyWhere:
    """``file:line`` of a definition, looked up only when an error message needs it.

    Reading source lines costs milliseconds per class; registration checks every built-in at start-up.
    """

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __str__(self) -> str:
        return _where(self.obj)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


_PERMISSION = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9*]+$")


def _check_method_hint(cls: type[Action[Any, Any]], method: str, arg: str, expected: type) -> None:
    func = getattr(cls, method)
    try:
        hints = typing.get_type_hints(func, vars(sys.modules[cls.__module__]))
    except Exception as e:  # any failure to resolve hints is a registration error
        raise RegistrationError(f"{_where(cls)}: action {cls.name!r}: cannot read the hints of {method}(): {e}") from e
    got = hints.get(arg)
    if got is not expected:
        raise RegistrationError(
            f"{_where(func)}: action {cls.name!r}: {method}() must take {arg}: {expected.__name__}, "
            f"got {getattr(got, '__name__', got)}"
        )


def check_definition(cls: type[Action[Any, Any]]) -> None:
    """Verify one action class; raise :class:`RegistrationError` naming its file:line."""
    where = _LazyWhere(cls)
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not re.match(ACTION_NAME_PATTERN, name):
        raise RegistrationError(f"{where}: action name {name!r} must be dotted lower-case (system.resource.verb)")
    if not (inspect.isclass(cls.Params) and issubclass(cls.Params, ActionParams)):
        raise RegistrationError(f"{where}: action {name!r}: Params must subclass ActionParams")
    if not (inspect.isclass(cls.Result) and issubclass(cls.Result, ActionResult)):
        raise RegistrationError(f"{where}: action {name!r}: Result must subclass ActionResult")
    if cls.Params.model_config.get("extra") != "forbid" or not cls.Params.model_config.get("frozen"):
        raise RegistrationError(f"{where}: action {name!r}: Params must be frozen with extra='forbid'")
    if cls.plan is Action.plan or cls.apply is Action.apply:
        raise RegistrationError(f"{where}: action {name!r}: plan() and apply() are both required")
    _check_method_hint(cls, "plan", "params", cls.Params)
    _check_method_hint(cls, "apply", "params", cls.Params)
    _check_method_hint(cls, "apply", "return", cls.Result)
    if cls.undoable():
        _check_method_hint(cls, "undo", "result", cls.Result)
    for perm in (*cls.permissions, *cls.undo_permissions):
        if not _PERMISSION.match(perm):
            raise RegistrationError(f"{where}: action {name!r}: {perm!r} is not an IAM action like 'ec2:StopInstances'")
    if name.startswith("aws.") and not cls.permissions:
        raise RegistrationError(f"{where}: action {name!r}: an AWS action must declare its IAM permissions")


class Registry:
    """Holds action definitions by name.

    A registry made by :func:`default_registry` loads lazily: a name the built-in index places
    imports only its module; any other question (an unknown name, :meth:`names`, :meth:`all`)
    loads every built-in module and every plug-in first, so the answers are those of a full load.
    """

    def __init__(self) -> None:
        self._actions: dict[str, Action[Any, Any]] = {}
        # Lazy loading: action name -> built-in module, and the sources not loaded yet.
        self._index: dict[str, str] = {}
        self._pending_modules: list[str] = []
        self._pending_entry_points = False

    def defer(self, modules: Iterable[str], index: dict[str, str], entry_points: bool = True) -> None:
        """Load ``modules`` (and the plug-ins) only when asked; ``index`` says where each name lives."""
        self._pending_modules.extend(m for m in modules if m not in self._pending_modules)
        self._index.update(index)
        self._pending_entry_points = self._pending_entry_points or entry_points

    def load_all(self) -> None:
        """Load every deferred module and the plug-ins now (in the order of :data:`BUILTIN_MODULES`)."""
        while self._pending_modules:
            self.register_module(self._pending_modules.pop(0))
        if self._pending_entry_points:
            self._pending_entry_points = False
            self.load_entry_points()

    def _find(self, name: str) -> None:
        """Make ``name`` present if any deferred source defines it: its indexed module, else all."""
        if name in self._actions or not (self._pending_modules or self._pending_entry_points):
            return
        module = self._index.get(name)
        if module in self._pending_modules:
            self._pending_modules.remove(module)
            self.register_module(module)
        if name not in self._actions:
            self.load_all()

    def register(self, cls: type[Action[Any, Any]]) -> None:
        check_definition(cls)
        existing = self._actions.get(cls.name)
        if existing is not None and type(existing) is not cls:
            raise RegistrationError(
                f"{_where(cls)}: action {cls.name!r} is already registered by {_where(type(existing))}"
            )
        self._actions[cls.name] = cls()

    def register_module(self, module_name: str) -> None:
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if (
                inspect.isclass(value)
                and issubclass(value, Action)
                and value.__dict__.get(_MARK)
                and value.__module__ == module.__name__
            ):
                self.register(value)

    def load_entry_points(self) -> None:
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                loaded = ep.load()
            except Exception as e:  # a broken plug-in is reported, not fatal to the rest
                raise RegistrationError(f"entry point {ep.name!r} ({ep.value}) failed to load: {e}") from e
            if inspect.ismodule(loaded):
                self.register_module(loaded.__name__)
            elif inspect.isclass(loaded) and issubclass(loaded, Action):
                self.register(loaded)
            else:
                raise RegistrationError(f"entry point {ep.name!r} ({ep.value}) is neither a module nor an Action")

    def get(self, name: str) -> Action[Any, Any]:
        self._find(name)
        try:
            return self._actions[name]
        except KeyError:
            raise UnknownActionError(f"unknown action {name!r}") from None

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self._find(name)
        return name in self._actions

    def names(self) -> list[str]:
        self.load_all()
        return sorted(self._actions)

    def all(self) -> list[Action[Any, Any]]:
        return [self._actions[n] for n in self.names()]


_default: Registry | None = None


def default_registry() -> Registry:
    """The registry with every built-in action and every installed plug-in, loaded once."""
    global _default
    if _default is None:
        from flows.actions.builtin_index import BUILTIN_INDEX

        registry = Registry()
        # Validating a playbook imports only the modules of the actions it names (a cold start).
        registry.defer(BUILTIN_MODULES, BUILTIN_INDEX)
        _default = registry
    return _default


def builtin_index() -> dict[str, str]:
    """Action name -> defining module, from registering every built-in module in a fresh registry.

    The source of truth for :data:`flows.actions.builtin_index.BUILTIN_INDEX`.
    """
    registry = Registry()
    index: dict[str, str] = {}
    for module in BUILTIN_MODULES:
        before = set(registry._actions)
        registry.register_module(module)
        index.update((name, module) for name in set(registry._actions) - before)
    return index
