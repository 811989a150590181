"""Lambda, SageMaker, CloudWatch Logs and CloudTrail actions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.stub import Stubber

from flows.errors import ActionError
from integrations.aws.cloudtrail import CollectEvents, CollectEventsParams
from integrations.aws.lambda_ import Throttle, ThrottleParams
from integrations.aws.logs import CollectLogs, CollectLogsParams
from integrations.aws.sagemaker import CaptureEndpoint, CaptureParams, IsolateEndpoint, IsolateEndpointParams
from integrations.aws.sandbox import seed_buckets, seed_iam, seed_lambda, seed_sagemaker
from integrations.aws.session import client
from tests.fixtures.moto import AwsEnv

pytestmark = pytest.mark.moto_server


def _reserved(aws: AwsEnv) -> int | None:
    found = aws.client("lambda").get_function_concurrency(FunctionName="feature-transform")
    return found.get("ReservedConcurrentExecutions")  # type: ignore[no-any-return]


def test_throttle_to_zero_then_no_op_then_undo_restores_the_prior_value(aws: AwsEnv) -> None:
    aws.seed(seed_iam, seed_lambda)
    action, params = Throttle(), ThrottleParams(function_name="feature-transform")
    plan = action.plan(params, aws.context(mode="dry-run"))
    assert plan.targets[0].tags == {"env": "ml-prod", "team": "ml-platform"}
    result = action.apply(params, aws.context())
    assert result.previous_reserved_concurrency == 5
    assert _reserved(aws) == 0
    assert not action.apply(params, aws.context()).changed
    action.undo(result, aws.context())
    assert _reserved(aws) == 5
    with pytest.raises(ActionError, match="ResourceNotFoundException"):
        action.apply(ThrottleParams(function_name="no-such-function"), aws.context())


def test_capture_endpoint_preserves_endpoint_config_and_model(aws: AwsEnv) -> None:
    aws.seed(seed_iam, seed_sagemaker)
    ctx = aws.context()
    result = CaptureEndpoint().apply(CaptureParams(endpoint_name="fraud-detector"), ctx)
    assert result.models == ["fraud-model-v3"]
    item = next(i for i in ctx.record.evidence.items if i.id == result.evidence_id)
    doc = json.loads((ctx.record.dir / item.location).read_text())
    assert doc["endpoint_config"]["ProductionVariants"][0]["ModelName"] == "fraud-model-v3"
    assert doc["models"]["fraud-model-v3"]["PrimaryContainer"]["ModelDataUrl"] == "s3://ml-models/fraud/v3/model.tar.gz"
    assert item.source_arn == doc["endpoint"]["EndpointArn"]


def test_drain_endpoint_then_undo_restores_the_weights(aws: AwsEnv) -> None:
    aws.seed(seed_iam, seed_sagemaker)
    sm = aws.client("sagemaker")
    action, params = IsolateEndpoint(), IsolateEndpointParams(endpoint_name="fraud-detector")
    result = action.apply(params, aws.context())
    weights = {
        v["VariantName"]: v["CurrentWeight"]
        for v in sm.describe_endpoint(EndpointName="fraud-detector")["ProductionVariants"]
    }
    assert result.previous_weights == {"primary": 1.0}
    assert weights == {"primary": 0.0}
    assert not action.apply(params, aws.context()).changed
    action.undo(result, aws.context())
    assert sm.describe_endpoint(EndpointName="fraud-detector")["ProductionVariants"][0]["CurrentWeight"] == 1.0
    with pytest.raises(ActionError, match="has no variant canary"):
        action.apply(IsolateEndpointParams(endpoint_name="fraud-detector", variants=["canary"]), aws.context())


def test_delete_endpoint_captures_first_and_undo_recreates_it(aws: AwsEnv) -> None:
    aws.seed(seed_iam, seed_sagemaker)
    sm = aws.client("sagemaker")
    ctx = aws.context()
    result = IsolateEndpoint().apply(IsolateEndpointParams(endpoint_name="fraud-detector", mode="delete"), ctx)
    assert result.evidence_id in {i.id for i in ctx.record.evidence.items}
    with pytest.raises(sm.exceptions.ClientError):
        sm.describe_endpoint(EndpointName="fraud-detector")
    IsolateEndpoint().undo(result, aws.context())
    assert sm.describe_endpoint(EndpointName="fraud-detector")["EndpointConfigName"] == "fraud-detector-config"


def test_moto_lacks_update_endpoint() -> None:
    """Documented gap: moto 5.2.5 has no sagemaker UpdateEndpoint, so fireline drains by weights instead."""
    from moto.sagemaker.responses import SageMakerResponse

    assert not hasattr(SageMakerResponse, "update_endpoint")
    assert hasattr(SageMakerResponse, "update_endpoint_weights_and_capacities")


def test_collect_logs_keeps_every_event_of_the_window(aws: AwsEnv) -> None:
    aws.seed(seed_iam, seed_sagemaker)
    ctx = aws.context()
    params = CollectLogsParams.model_validate(
        {"log_group": "/aws/sagemaker/Endpoints/fraud-detector", "lookback": "1h"}
    )
    result = CollectLogs().apply(params, ctx)
    assert result.events == 4
    item = next(i for i in ctx.record.evidence.items if i.id == result.evidence_id)
    lines = [json.loads(line) for line in (ctx.record.dir / item.location).read_text().splitlines()]
    assert any("203.0.113.7" in line["message"] for line in lines)
    filtered = CollectLogs().apply(params.model_copy(update={"filter_pattern": "outbound"}), aws.context("run-2"))
    assert filtered.events == 1
    with pytest.raises(ActionError, match="ResourceNotFoundException"):
        CollectLogs().apply(CollectLogsParams(log_group="/no/such/group"), aws.context("run-3"))


def test_log_window_must_be_forward() -> None:
    now = datetime.now(UTC)
    with pytest.raises(ValueError, match="end must be after start"):
        CollectLogsParams(log_group="/g", start=now, end=now - timedelta(minutes=1))


@pytest.mark.xfail(
    strict=True,
    raises=ActionError,
    reason="moto 5.2.5 does not implement cloudtrail LookupEvents (the server answers 500)",
)
def test_collect_cloudtrail_events_on_moto(aws: AwsEnv) -> None:
    aws.seed(seed_buckets)
    CollectEvents().apply(CollectEventsParams(lookup={"ResourceName": "ml-training-data"}), aws.context())


def test_collect_cloudtrail_events_paginates_and_keeps_records_verbatim(aws: AwsEnv) -> None:
    """LookupEvents answered by botocore's Stubber (validated against the real service model), since moto lacks it."""
    ctx = aws.context()
    trail = client(ctx, "cloudtrail")
    start, end = datetime(2026, 11, 26, tzinfo=UTC), datetime(2026, 11, 27, tzinfo=UTC)
    event = {
        "EventId": "e1",
        "EventName": "GetObject",
        "Username": "ml-pipeline",
        "CloudTrailEvent": json.dumps({"eventName": "GetObject", "sourceIPAddress": "203.0.113.7"}),
    }
    expected = {
        "StartTime": start,
        "EndTime": end,
        "LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": "ml-pipeline"}],
    }
    with Stubber(trail) as stub:
        stub.add_response("lookup_events", {"Events": [event], "NextToken": "t1"}, expected)
        stub.add_response("lookup_events", {"Events": [{**event, "EventId": "e2"}]}, {**expected, "NextToken": "t1"})
        result = CollectEvents().apply(
            CollectEventsParams(start=start, end=end, lookup={"Username": "ml-pipeline"}), ctx
        )
        stub.assert_no_pending_responses()
    assert result.events == 2
    assert not result.truncated
    item = next(i for i in ctx.record.evidence.items if i.id == result.evidence_id)
    lines = (ctx.record.dir / item.location).read_text().splitlines()
    assert json.loads(json.loads(lines[0])["CloudTrailEvent"])["sourceIPAddress"] == "203.0.113.7"
