"""The one AWS session layer every AWS action and model adapter uses.

Per run it builds one boto3 session (optionally assuming a role) and caches clients per service
and region. Every client gets adaptive retries, connect/read timeouts and, outside live mode, the
write guard: a botocore ``before-call`` hook that refuses any operation that is not read-only, so a
bug in a dry-run or a drill can never leak a side effect.

The module also holds the small helpers every AWS action shares: translating botocore errors into
fireline errors (:func:`aws_errors`), tag lists, pagination and ARNs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from flows.actions.context import ActionContext
from flows.config import Settings
from flows.errors import ActionError, DryRunRefusal, IntegrationError, one_line

# Operation-name prefixes that only read. Everything else is refused outside live mode.
READ_ONLY_PREFIXES: tuple[str, ...] = (
    "Describe",
    "Get",
    "List",
    "Head",
    "Lookup",
    "Filter",
    "Search",
    "BatchGet",
    "Select",
)
# Reads whose names do not say so.
READ_ONLY_OPERATIONS: frozenset[str] = frozenset({"AssumeRole", "GetCallerIdentity", "StartQuery", "GetQueryResults"})
# Error codes worth another attempt (after botocore's own adaptive retries gave up).
RETRYABLE_CODES: frozenset[str] = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "PriorRequestNotComplete",
    }
)
# A resource in a transitional state refuses changes until it settles; another attempt, once it has,
# succeeds. AWS names most of these by code alone; SageMaker answers ``ValidationException`` (a code
# it also uses for bad input), so for it the message marker it documents is what tells them apart.
# code -> message markers (lower case); an empty tuple matches any message of the code.
CONFLICT_CODES: dict[str, tuple[str, ...]] = {
    "ValidationException": ("cannot update in-progress endpoint", "in-progress endpoint", "is in progress"),
    "ResourceConflictException": ("in progress", "pending", "is currently"),
    "ResourceInUse": (),
    "ResourceInUseException": ("in progress", "in-progress", "is being updated"),
    "IncorrectInstanceState": (),
    "IncorrectState": (),
    "ConcurrentModification": (),
    "ConcurrentModificationException": (),
    "OperationAbortedException": (),
    "OperationAborted": (),
    "ScalingActivityInProgress": (),
    "ConflictException": (),
    # Auto Scaling's DetachInstances on an instance still Pending (a launch lifecycle hook holds it).
    "ValidationError": ("not in inservice or standby",),
}
# Codes that mean "the thing named does not exist": bad input, never retried.
NOT_FOUND_MARKERS: tuple[str, ...] = ("NotFound", "NoSuch", "Malformed", "InvalidInstanceID", "ValidationError")


def is_read_only(operation_name: str) -> bool:
    """True when the API operation cannot change anything."""
    return operation_name in READ_ONLY_OPERATIONS or operation_name.startswith(READ_ONLY_PREFIXES)


def install_write_guard(client: Any, ctx: ActionContext) -> None:
    """Refuse every mutating call made through ``client`` (dry-run and drill modes).

    The hook runs after parameter validation and before the request is signed and sent, so a
    refused call never reaches the network. Events are named by the hyphenated service id
    (``cloudwatch-logs``, not ``logs``), so that is what the hook registers on.
    """
    service = client.meta.service_model.service_name
    event_service = client.meta.service_model.service_id.hyphenize()

    def refuse(model: Any, params: Any, **_: Any) -> None:
        if is_read_only(model.name):
            return
        call = f"{service}:{model.name}"
        with ctx.services.lock:
            ctx.services.refused_calls.append(call)
        ctx.emit("dryrun.refused", {"call": call, "mode": ctx.mode})
        raise DryRunRefusal(f"{call} refused: mutating calls are not made in {ctx.mode} mode")

    client.meta.events.register(f"before-call.{event_service}", refuse)


def _session(ctx: ActionContext) -> Any:
    return settings_session(ctx.settings, f"fireline-{ctx.run_id}")


_LOADER: list[Any] = []
_LOADER_LOCK = threading.Lock()


def _botocore_session(profile: str | None) -> Any:
    """A fresh botocore session (its own credential chain) sharing one process-wide model loader.

    Parsing the service models is what makes a new session slow (about 0.3 s per service); the
    loader caches them, so runs after the first pay only for credentials and client set-up.
    """
    import botocore.session

    made = botocore.session.get_session()
    with _LOADER_LOCK:
        if not _LOADER:
            _LOADER.append(made.get_component("data_loader"))
        made.register_component("data_loader", _LOADER[0])
    if profile:
        made.set_config_variable("profile", profile)
    return made


def shared_botocore_session() -> Any:
    """A botocore session on the shared model loader, for tools that bring their own credentials."""
    return _botocore_session(None)


@dataclass
class AwsSession:
    """Credentials and region for a run's clients, on a process-wide botocore session."""

    botocore_session: Any
    region: str
    credentials: dict[str, str] | None = None  # explicit keys (an assumed role); None: the default chain

    def client(self, service: str, **kwargs: Any) -> Any:
        return self.botocore_session.create_client(service, **(self.credentials or {}), **kwargs)

    def get_credentials(self) -> Any:
        return self.credentials or self.botocore_session.get_credentials()


def settings_session(settings: Settings, session_name: str = "fireline") -> AwsSession:
    """A session from fireline's settings (profile, region, and the role to assume if any)."""
    aws = settings.aws
    base = AwsSession(_botocore_session(aws.profile), aws.region)
    if not aws.role_arn:
        return base
    sts = base.client("sts", region_name=aws.region, endpoint_url=aws.endpoint_url, config=botocore_config(settings))
    with aws_errors(f"assume role {aws.role_arn}"):
        creds = sts.assume_role(RoleArn=aws.role_arn, RoleSessionName=session_name[:64])["Credentials"]
    return AwsSession(
        base.botocore_session,
        aws.region,
        {
            "aws_access_key_id": creds["AccessKeyId"],
            "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"],
        },
    )


def _config(ctx: ActionContext) -> Any:
    return botocore_config(ctx.settings)


def botocore_config(settings: Settings) -> Any:
    """Adaptive retries, timeouts and a connection pool sized for fan-out steps."""
    from botocore.config import Config

    aws = settings.aws
    return Config(
        retries={"mode": "adaptive", "max_attempts": aws.max_attempts},
        connect_timeout=aws.connect_timeout,
        read_timeout=aws.read_timeout,
        max_pool_connections=64,
    )


def client(ctx: ActionContext, service: str, region: str | None = None) -> Any:
    """A boto3 client for ``service``, shared by the run's steps, guarded outside live mode."""
    region = region or ctx.settings.aws.region
    key = f"aws:client:{service}:{region}:{ctx.mode}"

    def build() -> Any:
        session = ctx.services.get_or_create("aws:session", lambda: _session(ctx))
        made = session.client(
            service, region_name=region, endpoint_url=ctx.settings.aws.endpoint_url, config=_config(ctx)
        )
        if not ctx.live:
            install_write_guard(made, ctx)
        for hook in ctx.services.cache.get("aws.client_hooks", ()):  # a drill's fault injection
            hook(made)
        return made

    return ctx.services.get_or_create(key, build)


def standalone_client(settings: Settings, service: str, region: str | None = None) -> Any:
    """A client outside any run (for ``fireline evidence verify``); it is only used to read."""
    session = settings_session(settings)
    region = region or settings.aws.region
    return session.client(
        service, region_name=region, endpoint_url=settings.aws.endpoint_url, config=botocore_config(settings)
    )


def has_credentials(ctx: ActionContext) -> bool:
    """Whether AWS credentials can be found; plan() works without them, only less precisely."""
    try:
        session = ctx.services.get_or_create("aws:session", lambda: _session(ctx))
        return session.get_credentials() is not None
    except Exception:
        return False


def error_code(error: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (empty for anything else)."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def is_conflict(code: str, message: str) -> bool:
    """Whether an AWS error says the resource is mid-change (retryable once it settles)."""
    markers = CONFLICT_CODES.get(code)
    if markers is None:
        return False
    lowered = message.lower()
    return not markers or any(marker in lowered for marker in markers)


def is_not_found(error: BaseException) -> bool:
    code = error_code(error)
    return any(marker in code for marker in NOT_FOUND_MARKERS)


@contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Turn botocore errors raised inside the block into one-line fireline errors.

    ``what`` says what was being done ("describe instance i-123"); the AWS error code is kept in
    ``details["code"]``; throttling-like codes and a resource caught mid-change (:data:`CONFLICT_CODES`,
    ``details["conflict"]``) are marked retryable for the step's retry policy.
    """
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    try:
        yield
    except (DryRunRefusal, ActionError):
        raise
    except ClientError as e:
        code = error_code(e)
        # A server that fails badly (a proxy, an operation moto lacks) answers with an HTML page.
        message = one_line(e.response.get("Error", {}).get("Message", "") or str(e))
        conflict = is_conflict(code, message)
        details: dict[str, object] = {"code": code}
        if conflict:
            details["conflict"] = True
        raise IntegrationError(
            f"{what}: {code}: {message}", retryable=code in RETRYABLE_CODES or conflict, details=details
        ) from e
    except BotoCoreError as e:
        # Network trouble may pass; missing credentials or invalid parameters will not.
        transient = isinstance(
            e, EndpointConnectionError | ConnectionClosedError | ReadTimeoutError | ConnectTimeoutError
        )
        message = f"{what}: {one_line(str(e))}"
        raise IntegrationError(message, retryable=transient, details={"code": type(e).__name__}) from e


def tag_dict(tags: list[dict[str, str]] | None) -> dict[str, str]:
    """``[{"Key": k, "Value": v}]`` as a dict."""
    return {t["Key"]: t.get("Value", "") for t in tags or []}


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def paginate(aws_client: Any, operation: str, key: str, **kwargs: Any) -> Iterator[Any]:
    """Yield every element of ``key`` across the pages of ``operation``."""
    for page in aws_client.get_paginator(operation).paginate(**kwargs):
        yield from page.get(key, [])


def is_template(value: object) -> bool:
    """True for a parameter that is still a template (not known before the run)."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def known(params: Any, name: str) -> Any:
    """A parameter's value when it is a literal, None when it is absent or still a template.

    ``fireline iam-policy`` passes params built without validation from a playbook's ``with``,
    leaving out the values that are templates; actions scope their IAM resources with this.
    """
    if params is None:
        return None
    value = getattr(params, name, None)
    return None if is_template(value) else value
