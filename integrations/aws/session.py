"""The one AWS session layer every AWS action and model adapter uses.

Per run it builds one boto3 session (optionally assuming a role) and caches clients per service
and region. Every client gets adaptive retries, connect/read timeouts and, outside live mode, the
write guard: a botocore ``before-call`` hook that refuses any operation that is not read-only, so a
bug in a dry-run or a drill can never leak a side effect.
"""

from __future__ import annotations

from typing import Any

from flows.context import ActionContext
from flows.errors import DryRunRefusal

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


def is_read_only(operation_name: str) -> bool:
    """True when the API operation cannot change anything."""
    return operation_name in READ_ONLY_OPERATIONS or operation_name.startswith(READ_ONLY_PREFIXES)


def install_write_guard(client: Any, ctx: ActionContext) -> None:
    """Refuse every mutating call made through ``client`` (dry-run and drill modes)."""
    service = client.meta.service_model.service_name

    def refuse(model: Any, params: Any, **_: Any) -> None:
        if is_read_only(model.name):
            return
        call = f"{service}:{model.name}"
        with ctx.services.lock:
            ctx.services.refused_calls.append(call)
        ctx.emit("dryrun.refused", {"call": call, "mode": ctx.mode})
        raise DryRunRefusal(f"{call} refused: mutating calls are not made in {ctx.mode} mode")

    client.meta.events.register(f"before-call.{service}.*", refuse)


def _session(ctx: ActionContext) -> Any:
    import boto3

    aws = ctx.settings.aws
    base = boto3.session.Session(profile_name=aws.profile, region_name=aws.region)
    if not aws.role_arn:
        return base
    sts = base.client("sts", endpoint_url=aws.endpoint_url, config=_config(ctx))
    creds = sts.assume_role(RoleArn=aws.role_arn, RoleSessionName=f"fireline-{ctx.run_id}"[:64])["Credentials"]
    return boto3.session.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=aws.region,
    )


def _config(ctx: ActionContext) -> Any:
    from botocore.config import Config

    aws = ctx.settings.aws
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
        return made

    return ctx.services.get_or_create(key, build)


def has_credentials(ctx: ActionContext) -> bool:
    """Whether AWS credentials can be found; plan() works without them, only less precisely."""
    try:
        session = ctx.services.get_or_create("aws:session", lambda: _session(ctx))
        return session.get_credentials() is not None
    except Exception:  # any failure means: plan without reading
        return False
