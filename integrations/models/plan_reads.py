"""Read-only registry reads a model action's ``plan()`` makes, so that a dry-run or a drill foresees
what ``apply()`` will meet.

A plan works without credentials; where the read is possible it makes it:

- AWS registries (SageMaker, S3): only with AWS credentials (:func:`~integrations.aws.common.plan_read`);
  a resource that does not exist fails the plan, any other failure only leaves a warning.
- MLflow: only with a tracking URI. A server that does not answer at all fails the plan with the
  error class ``apply()`` would raise (:class:`~flows.errors.IntegrationError`): every read of that
  step would fail the same way. The socket probe comes first because the MLflow client retries an
  unreachable server for a long time, which a plan must not do.

Nothing here writes: the dry-run write guard on every AWS client stays in force, and the MLflow
calls are ``search_model_versions``, ``get_model_version`` and ``get_model_version_by_alias``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flows.actions.context import ActionContext
from flows.errors import ActionError, IntegrationError
from integrations.aws.common import plan_read
from integrations.models.base import TargetParams

T = TypeVar("T")


def mlflow_uri(params: TargetParams, ctx: ActionContext, warnings: list[str]) -> str | None:
    """The tracking URI when one is configured (None, with a warning, when not: nothing to read)."""
    uri = params.tracking_uri or ctx.settings.models.mlflow_tracking_uri
    if not uri:
        warnings.append(f"no MLflow tracking URI: {params.label} is not read; the plan is based on the parameters only")
    return uri or None


def require_reachable(uri: str, what: str) -> None:
    """Raise ``mlflow: WHAT: the MLflow server at URI does not answer`` when nothing accepts the connection."""
    from integrations.models.targets import _reachable

    if not _reachable(uri):
        raise IntegrationError(f"mlflow: {what}: the MLflow server at {uri} does not answer")


def registry_read(params: TargetParams, ctx: ActionContext, what: str, read: Callable[[], T],
                  warnings: list[str]) -> T | None:  # fmt: skip
    """Run ``read`` (read-only) against the target's registry for a plan.

    Returns None, with a warning, when the read cannot be made (no credentials, no tracking URI,
    a transient failure). Raises :class:`ActionError` when the resource does not exist and
    :class:`IntegrationError` ``mlflow: WHAT: the MLflow server at URI does not answer`` when the
    configured MLflow server refuses connections, as ``apply()`` would.
    """
    if params.registry != "mlflow":
        return plan_read(ctx, what, read, warnings)
    from integrations.models.mlflow import _not_found

    uri = mlflow_uri(params, ctx, warnings)
    if uri is None:
        return None
    require_reachable(uri, what)
    try:
        return read()
    except IntegrationError as e:
        cause = e.__cause__
        if cause is not None and _not_found(cause):
            raise ActionError(str(e), details=e.details) from e
        warnings.append(f"could not read ({e}); the plan is based on the parameters only")
        return None


def serving_read(params: TargetParams, ctx: ActionContext, warnings: list[str]) -> str | None:
    """What the target serves now, as a plan's read line (None when it could not be read)."""
    from integrations.models.base import load_adapter

    what = f"read what {params.label} serves"
    if params.registry == "mlflow" and (uri := mlflow_uri(params, ctx, [])):
        require_reachable(uri, what)  # every read apply makes would fail the same way
    try:
        state = registry_read(params, ctx, what, lambda: load_adapter(params, ctx).serving(), warnings)
    except ActionError as e:  # the target's own read (its tags) names a missing resource; this only informs
        warnings.append(f"could not read what {params.label} serves: {e}")
        return None
    if state is None:
        return None
    served = ", ".join(state.versions) or "no version"
    return f"{params.label} serves {served} now"
