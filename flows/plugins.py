"""Parts of fireline that ``integrations`` provides, found by ``"module:attribute"`` strings.

``flows`` never imports ``integrations``: where the engine or the command line needs something an
integration implements (the AWS sandbox, the S3 evidence check, model attestation), it names it here
as a string and loads it when first used, the way :data:`flows.actions.registry.BUILTIN_MODULES`
names the built-in actions. A missing optional dependency becomes one line with the install hint.
"""

from __future__ import annotations

import importlib
from typing import Any

from flows.errors import ConfigError

# What each name resolves to; the signatures are documented where they are used.
PROVIDERS: dict[str, str] = {
    # (settings, location, check) -> None: re-hash the evidence object at an s3:// location
    "evidence.s3": "integrations.aws.evidence_store:check_s3_item",
    # a module with start_server, credentials, seed, env and demo_steps (see flows.sandbox.SandboxBackend)
    "sandbox.aws": "integrations.aws.sandbox_demo",
    # a module with attach(stack, settings) -> object with .settings and .show(run_dir) (a loopback Slack)
    "sandbox.slack": "integrations.slack.sandbox",
    # a module with parse_target and attest (see flows.cli.model_cmds)
    "models.attest": "integrations.models.attest",
}

# Extras that provide a module, for the message when it cannot be imported.
_EXTRAS = {"moto": "sandbox", "mlflow": "mlflow"}


def load(name: str) -> Any:
    """The object registered under ``name`` in :data:`PROVIDERS` (a module, or ``module:attribute``).

    Raises:
        ConfigError: the module or a library it needs is not installed (with the ``pip`` extra to add).
    """
    module_name, _, attribute = PROVIDERS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        missing = (e.name or "").split(".")[0]
        extra = _EXTRAS.get(missing)
        hint = f": pip install 'fireline[{extra}]'" if extra else ""
        raise ConfigError(f"{name} needs {missing or module_name}, which is not installed{hint}") from e
    return getattr(module, attribute) if attribute else module
