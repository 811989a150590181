"""The drill's parts on their own: botocore-level faults, the simulated clock, metrics exclusion."""

from __future__ import annotations

import itertools
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from flows.config import load_settings
from flows.drills.clock import DrillClock
from flows.drills.faults import FaultBook
from flows.drills.models import Fault
from flows.drills.run import run_scenario
from flows.drills.world import in_process_aws

REPO = Path(__file__).resolve().parents[3]
TIMEOUT_SCENARIO = REPO / "playbooks" / "scenarios" / "model-drift-rollback-approval-timeout.yaml"


def test_aws_error_is_raised_by_botocore_on_the_faulted_step_only() -> None:
    from integrations.aws.session import shared_botocore_session

    book = FaultBook.of([Fault(kind="aws_error", step="grab", code="Throttling", times=2)])
    with in_process_aws():
        ec2 = shared_botocore_session().create_client("ec2", region_name="us-east-1")
        book.hook(ec2)
        ec2.describe_instances()  # no step marked: the hook lets it through
        book.local.step = "other"
        ec2.describe_instances()
        book.local.step = "grab"
        codes = []
        for _ in range(2):
            with pytest.raises(ClientError) as caught:
                ec2.describe_instances()
            codes.append(caught.value.response["Error"]["Code"])
        ec2.describe_instances()  # the third call goes through: the fault was two calls
    assert codes == ["Throttling", "Throttling"]
    assert book.injected == [{"step": "grab", "code": "Throttling"}] * 2


def test_clock_stops_at_alarms_on_its_way() -> None:
    clock = DrillClock(start=1000.0)
    clock.alarm(1240.0)
    stop = threading.Event()
    clock.sleep(900.0, stop)
    assert clock.now() == 1240.0  # the scripted answer's time, not the deadline's
    clock.sleep(900.0, stop)
    assert clock.now() == 2140.0


def test_two_hour_drill_costs_no_wall_time_and_its_times_are_consistent() -> None:
    result = run_scenario(TIMEOUT_SCENARIO, load_settings())
    assert result.ok, result.unmet
    events = [json.loads(line) for line in (result.run_dir / "events.jsonl").read_text().splitlines()]
    at = {e["type"]: datetime.fromisoformat(e["at"].replace("Z", "+00:00")) for e in events}
    waited = at["approval.rejected"] - at["approval.requested"]
    assert waited == timedelta(hours=2)  # the approval's own timeout, to the microsecond
    run = json.loads((result.run_dir / "run.json").read_text())
    span = datetime.fromisoformat(run["finished_at"].replace("Z", "+00:00")) - datetime.fromisoformat(
        run["started_at"].replace("Z", "+00:00")
    )
    assert span >= timedelta(hours=2)
    assert span.total_seconds() > 100 * result.wall_seconds  # simulated, not waited for
    assert all(a["at"] <= b["at"] for a, b in itertools.pairwise(events))  # one timeline, in order


def test_drill_runs_are_excluded_from_metrics() -> None:
    from flows.report.aggregate import collect_metrics

    settings = load_settings()
    result = run_scenario(REPO / "playbooks" / "scenarios" / "s3-training-data-exposure.yaml", settings)
    found = collect_metrics(settings.runs_dir, since=timedelta(days=3650), now=datetime.now(UTC) + timedelta(days=1))
    assert result.run_id in json.dumps(found["excluded"])
    assert result.run_id not in json.dumps({k: v for k, v in found.items() if k != "excluded"})


def test_a_missing_target_is_gone_at_moto_before_the_run() -> None:
    from flows.drills.world import lookup, remove_targets, seed

    with in_process_aws():
        world = seed(["network", "inference_hosts"], None)
        gone = remove_targets(world, [Fault(kind="target_missing", target="inference_instances[0]")])
        target = lookup(world, "inference_instances[0]")
        found = world.client("ec2").describe_instances(InstanceIds=[target])["Reservations"][0]["Instances"][0]
    assert gone == [target]
    assert found["State"]["Name"] in ("shutting-down", "terminated")
