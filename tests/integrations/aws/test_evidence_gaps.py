"""Paginated evidence collectors keep what they read and record the gap precisely.

Faults are injected on the real boto3 client through botocore's own events (a small page size
through ``provide-client-params``, a throttle or a repeated token through ``before-call``), so the
pages themselves come from moto. CloudTrail LookupEvents is not implemented by moto 5.2.5: its
pages come from botocore's Stubber, validated against the real service model.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from flows.actions.context import ActionContext
from flows.errors import ActionError
from integrations.aws.cloudtrail import CollectEvents, CollectEventsParams
from integrations.aws.iam_capture import CaptureParams, CapturePrincipal
from integrations.aws.logs import CollectLogs, CollectLogsParams
from integrations.aws.s3 import PreserveObjects, PreserveParams
from integrations.aws.sandbox import seed_iam
from integrations.aws.session import client
from tests.fixtures.moto import AwsEnv

pytestmark = pytest.mark.moto_server

THROTTLED = {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}


def _gap_events(ctx: ActionContext) -> list[dict[str, Any]]:
    lines = (ctx.record.dir / "events.jsonl").read_text().splitlines()
    return [e["detail"] for e in map(json.loads, lines) if e["type"] == "evidence.gap"]


def _stored(ctx: ActionContext, name_part: str) -> list[str]:
    item = next(i for i in ctx.record.evidence.items if name_part in i.name)
    return (ctx.record.dir / item.location).read_text().splitlines()


def _fault(aws_client: Any, operation: str, *, page_size: tuple[str, int], fail_on: int, error: dict[str, Any]) -> None:
    """Small pages from moto, and the ``fail_on``-th call of ``operation`` answered with ``error``."""
    service = aws_client.meta.service_model.service_id.hyphenize()
    calls = {"n": 0}

    def small(params: dict[str, Any], **_: Any) -> None:
        params.setdefault(page_size[0], page_size[1])

    def fail(**_: Any) -> None:
        calls["n"] += 1
        if calls["n"] == fail_on:
            raise ClientError(error, operation)

    aws_client.meta.events.register(f"provide-client-params.{service}.{operation}", small)
    aws_client.meta.events.register(f"before-call.{service}.{operation}", fail)


def _seed_logs(aws: AwsEnv, count: int) -> datetime:
    logs = aws.client("logs")
    logs.create_log_group(logGroupName="/ml/inference")
    logs.create_log_stream(logGroupName="/ml/inference", logStreamName="host-1")
    base = datetime.now(UTC) - timedelta(minutes=30)
    logs.put_log_events(
        logGroupName="/ml/inference",
        logStreamName="host-1",
        logEvents=[
            {"timestamp": int((base + timedelta(seconds=i)).timestamp() * 1000), "message": f"line {i}"}
            for i in range(count)
        ],
    )
    return base


def test_a_throttle_on_page_4_keeps_the_logs_read_and_records_the_gap(aws: AwsEnv) -> None:
    base = _seed_logs(aws, 10)
    ctx = aws.context()
    _fault(client(ctx, "logs"), "FilterLogEvents", page_size=("limit", 2), fail_on=4, error=THROTTLED)
    with pytest.raises(ActionError, match="evidence is incomplete") as caught:
        CollectLogs().apply(CollectLogsParams(log_group="/ml/inference", lookback="1h"), ctx)
    assert caught.value.retryable  # a throttle may pass: the step's retries read it all again
    lines = _stored(ctx, "partial-attempt-1")
    assert [json.loads(line)["message"] for line in lines] == [f"line {i}" for i in range(6)]
    (gap,) = _gap_events(ctx)
    assert gap["reason"] == "page_failed"
    assert gap["pages_read"] == 3
    assert gap["items_read"] == 6
    assert "ThrottlingException" in gap["error"]
    newest = datetime.fromisoformat(gap["missing"]["from"].replace("Z", "+00:00"))
    assert newest == (base + timedelta(seconds=5)).replace(microsecond=newest.microsecond)
    assert gap["missing"]["to"]  # up to the window's end


def test_on_gap_warn_returns_the_partial_evidence_with_the_gap(aws: AwsEnv) -> None:
    _seed_logs(aws, 10)
    ctx = aws.context()
    _fault(client(ctx, "logs"), "FilterLogEvents", page_size=("limit", 3), fail_on=2, error=THROTTLED)
    result = CollectLogs().apply(CollectLogsParams(log_group="/ml/inference", lookback="1h", on_gap="warn"), ctx)
    assert result.events == 3
    assert result.gap is not None
    assert result.gap.items_read == 3
    assert "INCOMPLETE" in result.summary
    assert result.warnings


def test_empty_pages_are_followed_and_a_repeated_token_is_a_gap(aws: AwsEnv) -> None:
    ctx = aws.context()
    trail = client(ctx, "cloudtrail")
    start, end = datetime(2026, 11, 26, tzinfo=UTC), datetime(2026, 11, 27, tzinfo=UTC)
    expected = {"StartTime": start, "EndTime": end}

    def event(n: int, hour: int) -> dict[str, Any]:
        return {"EventId": f"e{n}", "EventName": "GetObject", "EventTime": datetime(2026, 11, 26, hour, tzinfo=UTC)}

    with Stubber(trail) as stub:
        stub.add_response("lookup_events", {"Events": [event(1, 20)], "NextToken": "t1"}, expected)
        stub.add_response("lookup_events", {"Events": [], "NextToken": "t2"}, {**expected, "NextToken": "t1"})
        stub.add_response(
            "lookup_events", {"Events": [event(2, 9)], "NextToken": "t1"}, {**expected, "NextToken": "t2"}
        )
        result = CollectEvents().apply(CollectEventsParams(start=start, end=end, on_gap="warn"), ctx)
        stub.assert_no_pending_responses()
    assert result.events == 2  # the empty page was followed
    assert result.gap is not None
    assert result.gap.reason == "repeated_token"
    # Newest first: the part of the window before the oldest event read is what is missing.
    assert result.gap.missing == {"from": "2026-11-26T00:00:00.000000Z", "to": "2026-11-26T09:00:00.000000Z"}
    assert len(_stored(ctx, "partial-attempt-1")) == 2


def test_cloudtrail_throttle_on_page_7_keeps_six_pages(aws: AwsEnv) -> None:
    ctx = aws.context()
    trail = client(ctx, "cloudtrail")
    start, end = datetime(2026, 11, 26, tzinfo=UTC), datetime(2026, 11, 27, tzinfo=UTC)
    expected = {"StartTime": start, "EndTime": end}
    with Stubber(trail) as stub:
        for page in range(6):
            token = {"NextToken": f"t{page}"} if page else {}
            stub.add_response(
                "lookup_events",
                {
                    "Events": [{"EventId": f"e{page}", "EventTime": datetime(2026, 11, 26, 23 - page, tzinfo=UTC)}],
                    "NextToken": f"t{page + 1}",
                },
                {**expected, **token},
            )
        for _ in range(3):  # whatever botocore's own retries ask for
            stub.add_client_error("lookup_events", "ThrottlingException", "Rate exceeded")
        with pytest.raises(ActionError, match="incomplete"):
            CollectEvents().apply(CollectEventsParams(start=start, end=end), ctx)
    assert len(_stored(ctx, "cloudtrail-events.partial")) == 6
    (gap,) = _gap_events(ctx)
    assert gap["pages_read"] == 6
    assert gap["next_token"] == "t6"
    assert gap["missing"] == {"from": "2026-11-26T00:00:00.000000Z", "to": "2026-11-26T18:00:00.000000Z"}


def test_s3_preservation_keeps_the_versions_listed_before_a_failed_page(aws: AwsEnv) -> None:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="ml-training-data")
    s3.put_bucket_versioning(Bucket="ml-training-data", VersioningConfiguration={"Status": "Enabled"})
    for i in range(5):
        s3.put_object(Bucket="ml-training-data", Key=f"datasets/part-{i}.csv", Body=f"row {i}\n".encode())
    s3.create_bucket(Bucket="ml-evidence", ObjectLockEnabledForBucket=True)
    ctx = aws.context()
    _fault(client(ctx, "s3"), "ListObjectVersions", page_size=("MaxKeys", 2), fail_on=2, error=THROTTLED)
    params = PreserveParams(bucket="ml-training-data", evidence_bucket="ml-evidence", prefix="datasets/")
    with pytest.raises(ActionError, match="incomplete"):
        PreserveObjects().apply(params, ctx)
    copied = s3.list_objects_v2(Bucket="ml-evidence")["Contents"]
    assert len(copied) == 2  # read back: the two versions listed before the gap were preserved
    (gap,) = _gap_events(ctx)
    assert gap["missing"]["after_key"] == "datasets/part-1.csv"


def test_iam_capture_keeps_the_document_and_lists_the_gap(aws: AwsEnv) -> None:
    aws.seed(seed_iam)
    ctx = aws.context()
    # moto ignores MaxItems for this listing: the first page fails instead.
    _fault(client(ctx, "iam"), "ListAccessKeys", page_size=("MaxItems", 1), fail_on=1, error=THROTTLED)
    result = CapturePrincipal().apply(CaptureParams(user_name="ml-pipeline", on_gap="warn"), ctx)
    assert result.access_keys == []
    assert result.gaps[0].missing["listing"] == "list_access_keys"
    doc = json.loads("\n".join(_stored(ctx, "partial-attempt-1")))
    assert doc["gaps"][0]["reason"] == "page_failed"
    assert doc["inline_policies"]  # everything else was captured
    assert doc["user"]["UserName"] == "ml-pipeline"
