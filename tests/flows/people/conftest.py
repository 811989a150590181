from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.flows.people.helpers import Receiver, receiver


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """A loopback webhook receiver; secrets HOOK_L0..HOOK_L4 and HOOK_FALLBACK point at its paths."""
    for rec in receiver():
        for name in ("l0", "l1", "l2", "l3", "l4", "fallback"):
            monkeypatch.setenv(f"HOOK_{name.upper()}", rec.url(name))
        yield rec


from tests.fixtures.moto import aws, moto, moto_server  # noqa: E402  # the case test checks moto's state

__all__ = ["aws", "hooks", "moto", "moto_server"]
