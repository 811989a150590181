"""Settings of the alert receiver: the ``[triggers]`` section of ``fireline.toml``.

```toml
[triggers]
mode = "live"                      # mode of the runs alerts start (dry-run to rehearse routing)
[triggers.sources.alertmanager]
auth = "bearer"
secret_env = "FIRELINE_AM_TOKEN"   # the token or HMAC key comes from the environment, never the file
[triggers.sources.cloudwatch]
topics = ["arn:aws:sns:eu-west-1:123456789012:ml-alarms"]
```
Per source: ``auth`` (``none``, ``bearer``, ``hmac``; CloudWatch is authenticated by the SNS
signature), the HMAC ``header``, ``prefix``, ``encoding`` and optional ``timestamp_header`` (then the
signed bytes are ``<timestamp>.<body>`` and the timestamp must be within ``replay_window``),
``max_body`` bytes, and a rate limit of ``rate`` requests a second with bursts of ``burst``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

KIB = 1024


class SourceSettings(BaseModel):
    """Authentication and limits of one source."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    auth: Literal["none", "bearer", "hmac"] = "none"
    secret_env: str | None = Field(default=None, description="Environment variable holding the token or HMAC key.")
    secret: SecretStr | None = Field(default=None, description="The token or key itself (prefer secret_env).")
    header: str = "X-Fireline-Signature"
    prefix: str = "sha256="
    encoding: Literal["hex", "base64"] = "hex"
    algorithm: Literal["sha256", "sha1", "sha512"] = "sha256"
    timestamp_header: str | None = "X-Fireline-Timestamp"
    max_body: int = Field(default=1024 * KIB, ge=1, le=16 * 1024 * KIB)
    rate: float = Field(default=200.0, gt=0, description="Requests a second, sustained.")
    burst: int = Field(default=2000, ge=1)
    topics: list[str] = Field(default_factory=list, description="SNS topic ARNs accepted (cloudwatch).")

    def secret_value(self) -> str | None:
        if self.secret_env:
            return os.environ.get(self.secret_env) or None
        return self.secret.get_secret_value() if self.secret is not None else None


def _default_sources() -> dict[str, SourceSettings]:
    return {
        "alertmanager": SourceSettings(),
        "grafana": SourceSettings(),
        "cloudwatch": SourceSettings(),
        "datadog": SourceSettings(),
        # PagerDuty V3 webhooks sign the body: v1=<hex HMAC-SHA256>, no timestamp header.
        "pagerduty": SourceSettings(header="X-PagerDuty-Signature", prefix="v1=", timestamp_header=None),
        "generic": SourceSettings(),
    }


class TriggersSettings(BaseModel):
    """The ``[triggers]`` section."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["live", "dry-run", "drill"] = "live"
    spool: Path | None = Field(default=None, description="The spool database (default <home>/triggers/spool.db).")
    replay_window: float = Field(default=300.0, gt=0, description="Seconds a signed timestamp stays valid.")
    sources: dict[str, SourceSettings] = Field(default_factory=_default_sources)
    sns_cert_host: str = Field(
        default=r"^sns\.[a-z]{2}(-[a-z]+)+-\d\.amazonaws\.com(\.cn)?$",
        description="Hosts SNS signing certificates may come from (a regex).",
    )

    def source(self, name: str) -> SourceSettings:
        return self.sources.get(name) or _default_sources().get(name) or SourceSettings()

    def spool_path(self, home: Path) -> Path:
        return self.spool or home / "triggers" / "spool.db"
