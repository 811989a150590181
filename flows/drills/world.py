"""The drill's world: the sandbox platform seeded into moto, and targets that disappear.

The seeders are the sandbox's own (``integrations.aws.sandbox.SEEDERS``, loaded by module name:
``flows`` never imports ``integrations``), so a drill's ``plan()`` reads find the same instances,
buckets, roles and endpoints as the sandbox and the end-to-end tests. With ``endpoint_url`` None
the world goes into the in-process moto of :func:`in_process_aws`; with a URL, into a moto server
(the live half of the fidelity tests).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
from collections.abc import Iterator
from typing import Any

from flows.drills.models import Fault
from flows.errors import ConfigError

_KEY = re.compile(r"^([a-z_]+)(?:\[(\d+)\])?$")
_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip


def seeders() -> dict[str, Any]:
    """Every sandbox seeder by short name (``seed_inference_hosts`` -> ``inference_hosts``)."""
    sandbox = importlib.import_module("integrations.aws.sandbox")
    return {f.__name__.lstrip("_").removeprefix("seed_"): f for f in sandbox.SEEDERS}


@contextlib.contextmanager
def in_process_aws() -> Iterator[None]:
    """An in-process moto for the whole drill, with throw-away credentials (never real ones)."""
    try:
        from moto import mock_aws
    except ImportError as e:  # pragma: no cover - moto is a dependency of the drill extra
        raise ConfigError("drills need moto (pip install 'fireline[test]')") from e
    saved = {k: os.environ.get(k) for k in _ENV}
    os.environ.update(_ENV)
    try:
        with mock_aws():
            yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def seed(names: list[str], endpoint_url: str | None) -> Any:
    """Seed the world (every seeder when ``names`` is empty); returns the sandbox ``World``."""
    sandbox = importlib.import_module("integrations.aws.sandbox")
    table = seeders()
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ConfigError(f"unknown world seeder(s) {unknown}; known: {sorted(table)}")
    chosen = [table[n] for n in names] if names else None
    return sandbox.seed(endpoint_url, seeders=chosen)


def lookup(world: Any, key: str) -> Any:
    """A world value by key, ``name`` or ``name[i]``."""
    m = _KEY.match(key)
    if m is None or m.group(1) not in world.data:
        raise ConfigError(f"world has no {key!r}; it has {sorted(world.data)}")
    value = world.data[m.group(1)]
    return value[int(m.group(2))] if m.group(2) is not None else value


def render_world(value: Any, world: Any) -> Any:
    """Replace ``${world.KEY}`` in alert and input text with the world's ids (lists comma-joined)."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            found = lookup(world, m.group(1))
            return ",".join(map(str, found)) if isinstance(found, list) else str(found)

        return re.sub(r"\$\{world\.([a-z_]+(?:\[\d+\])?)\}", sub, value)
    if isinstance(value, dict):
        return {k: render_world(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [render_world(v, world) for v in value]
    return value


def remove_targets(world: Any, faults: list[Fault]) -> list[str]:
    """Make each ``target_missing`` target disappear before the run (terminated, deleted)."""
    gone: list[str] = []
    for fault in faults:
        if fault.kind != "target_missing" or not fault.target:
            continue
        target = str(lookup(world, fault.target))
        if target.startswith("i-"):
            world.client("ec2").terminate_instances(InstanceIds=[target])
        elif fault.target.startswith("endpoint"):
            world.client("sagemaker").delete_endpoint(EndpointName=target)
        else:
            raise ConfigError(f"target_missing: cannot remove {target!r} (instances and endpoints can disappear)")
        gone.append(target)
    return gone
