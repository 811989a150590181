"""Waiting for a resource to leave a transitional state before changing it.

AWS refuses most changes to a resource that is mid-change: a SageMaker endpoint that is
``Updating`` answers ``ValidationException: Cannot update in-progress endpoint`` (SageMaker API
Reference, UpdateEndpointWeightsAndCapacities and UpdateEndpoint), a Lambda function whose state is
``Pending`` or whose last update is ``InProgress`` answers ``ResourceConflictException`` (AWS Lambda
Developer Guide, "Lambda function states"), an EC2 instance that is ``pending`` or ``stopping``
answers ``IncorrectInstanceState``, an Auto Scaling instance still ``Pending`` (or held by a launch
lifecycle hook) cannot be detached (``ValidationError: The instance ... is not in InService or
Standby``). An incident often coincides with a deployment, so a containment
that treats the refusal as final leaves the resource serving. Every action that mutates such a
resource first waits here for a stable state, within the step's timeout, and then acts; the
refusal itself is classed retryable (:data:`integrations.aws.session.CONFLICT_CODES`) for the
race where the resource starts changing again between the read and the call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from flows.actions.context import ActionContext
from flows.errors import ActionError, IntegrationError

POLL_SECONDS = 5.0
"""Seconds between two reads of a resource's state (tests lower it)."""
DEFAULT_LIMIT = 900.0
"""How long to wait when the step has no timeout: a SageMaker update can take this long."""


@dataclass(frozen=True)
class States:
    """The lifecycle of one resource type: which states accept changes, which pass, which never will."""

    kind: str
    stable: frozenset[str]
    transitional: frozenset[str]
    failed: frozenset[str] = frozenset()


SAGEMAKER_ENDPOINT = States(
    "SageMaker endpoint",
    stable=frozenset({"InService"}),
    transitional=frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"}),
    failed=frozenset({"Failed", "OutOfService", "Deleting", "UpdateRollbackFailed"}),
)
"""DescribeEndpoint ``EndpointStatus`` (SageMaker API Reference, DescribeEndpoint)."""

LAMBDA_FUNCTION = States(
    "Lambda function",
    stable=frozenset({"Active", "Inactive"}),
    transitional=frozenset({"Pending", "InProgress"}),
    failed=frozenset({"Failed"}),
)
"""GetFunction ``State`` and ``LastUpdateStatus`` (AWS Lambda Developer Guide, function states)."""

EC2_INSTANCE = States(
    "EC2 instance",
    stable=frozenset({"running", "stopped"}),
    transitional=frozenset({"pending", "stopping"}),
    failed=frozenset({"shutting-down", "terminated"}),
)
"""DescribeInstances ``State.Name`` (Amazon EC2 User Guide, instance state changes)."""

ASG_INSTANCE = States(
    "Auto Scaling instance",
    stable=frozenset({"InService", "Standby"}),
    transitional=frozenset({"Pending", "Pending:Wait", "Pending:Proceed", "EnteringStandby"}),
    failed=frozenset({"Terminating", "Terminating:Wait", "Terminating:Proceed", "Terminated", "Detaching", "Detached"}),
)
"""DescribeAutoScalingInstances ``LifecycleState``: DetachInstances takes only ``InService`` or
``Standby`` instances (Amazon EC2 Auto Scaling User Guide, instance lifecycle; a ``Pending:Wait``
instance held by a launch lifecycle hook can stay so for an hour)."""


def wait_stable(
    ctx: ActionContext,
    states: States,
    name: str,
    read: Callable[[], str],
    *,
    limit: float | None = None,
    accept: frozenset[str] = frozenset(),
) -> str:
    """Read a resource's state until it is stable (or in ``accept``); return that state.

    Bounded by the step's deadline when it has a timeout, else by ``limit`` (default
    :data:`DEFAULT_LIMIT` seconds). Raises a retryable :class:`IntegrationError` when the bound passes
    while the resource is still changing, and :class:`ActionError` when it is in a state that will
    never accept the change (``Failed``, ``terminated``). Every wait is recorded in the run record.
    """
    bound = time.monotonic() + (DEFAULT_LIMIT if limit is None else limit)
    if ctx.deadline is not None:
        bound = min(bound, ctx.deadline)
    first = True
    started = time.monotonic()
    while True:
        ctx.check_cancelled()
        state = read()
        if state in states.stable or state in accept:
            if not first:
                ctx.emit(
                    "resource.stable",
                    {"kind": states.kind, "name": name, "state": state, "waited": round(time.monotonic() - started, 3)},
                )
            return state
        if state in states.failed or state not in states.transitional:
            raise ActionError(f"{states.kind} {name} is {state}: it cannot be changed now", details={"state": state})
        if first:
            ctx.emit("resource.transitional", {"kind": states.kind, "name": name, "state": state})
            first = False
        # Checked after the sleep too: a sleep that overran the bound on a busy machine still ends
        # in this retryable error, not in the step's timeout.
        if time.monotonic() + POLL_SECONDS > bound:
            raise _still(states, name, state, started)
        ctx.sleep(POLL_SECONDS)
        if time.monotonic() > bound:
            raise _still(states, name, state, started)


def _still(states: States, name: str, state: str, started: float) -> IntegrationError:
    return IntegrationError(
        f"{states.kind} {name} is still {state} after {time.monotonic() - started:.0f}s; "
        "it refuses changes until it settles",
        retryable=True,
        details={"code": "StillTransitioning", "state": state, "conflict": True},
    )
