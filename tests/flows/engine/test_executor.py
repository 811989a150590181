"""The retry rule and the thread executor."""

from __future__ import annotations

import threading

import pytest

from flows.engine.executor import ThreadExecutor, is_retryable
from flows.engine.fence import run_with_timeout
from flows.errors import ActionError, DryRunRefusal, GuardError, IntegrationError, StepTimeoutError, TemplateError


class FakeClientError(Exception):
    """Shaped like botocore's ClientError: the code lives in ``response``."""

    def __init__(self, code: str, status: int = 400) -> None:
        super().__init__(code)
        self.response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}


class ReadTimeoutError(Exception):
    """Named like botocore's read timeout."""


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ActionError("x", retryable=True), True),
        (ActionError("x"), False),
        (StepTimeoutError("slow"), True),
        (TimeoutError(), True),
        (ConnectionResetError(), True),
        (IntegrationError("x", details={"code": "ThrottlingException"}), True),
        (IntegrationError("x", details={"code": "RequestLimitExceeded"}), True),
        (IntegrationError("x", details={"code": "AccessDenied"}), False),
        (FakeClientError("Throttling"), True),
        (FakeClientError("SlowDown", 503), True),
        (FakeClientError("Anything", 429), True),
        (FakeClientError("InvalidInstanceID.NotFound"), False),
        (ReadTimeoutError(), True),
        (DryRunRefusal("ec2:CreateTags refused", retryable=True), False),
        (GuardError("no"), False),
        (TemplateError("no"), False),
        (ValueError("no"), False),
    ],
)
def test_retry_rule(error: BaseException, expected: bool) -> None:
    assert is_retryable(error) is expected


def test_retryable_cause_counts() -> None:
    outer = IntegrationError("ec2 said no")
    outer.__cause__ = FakeClientError("ThrottlingException")
    assert is_retryable(outer)


def test_run_with_timeout_sets_cancel_and_abandons() -> None:
    cancel = threading.Event()
    release = threading.Event()
    with pytest.raises(StepTimeoutError, match=r"timed out after 0\.05s"):
        run_with_timeout(lambda: release.wait(5), 0.05, cancel, "step 'x'")
    assert cancel.is_set()
    release.set()
    assert run_with_timeout(lambda: 42, 1.0, threading.Event(), "y") == 42
    with pytest.raises(KeyError):
        run_with_timeout(lambda: {}["k"], 1.0, threading.Event(), "z")


def test_thread_executor_runs_and_shuts_down() -> None:
    executor = ThreadExecutor(max_workers=2)
    futures = [executor.submit(f"s[{i}]", lambda i=i: i * 2) for i in range(4)]
    assert [f.result(timeout=5) for f in futures] == [0, 2, 4, 6]
    executor.shutdown()
