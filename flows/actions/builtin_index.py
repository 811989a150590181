"""Which built-in module defines each built-in action, so a command can import only the ones it needs.

Derived from :data:`flows.actions.registry.BUILTIN_MODULES`: a test asserts it equals what
registering every built-in module produces (:func:`flows.actions.registry.builtin_index`), and its
failure prints the table to paste here. A stale entry costs only speed: a name the index
does not place loads the whole catalogue.
"""

from __future__ import annotations

BUILTIN_INDEX: dict[str, str] = {
    "approval": "flows.actions.control",
    "aws.cloudtrail.collect_events": "integrations.aws.cloudtrail",
    "aws.ec2.isolate_instance": "integrations.aws.ec2",
    "aws.ec2.snapshot_volumes": "integrations.aws.ec2_snapshot",
    "aws.iam.capture_principal": "integrations.aws.iam_capture",
    "aws.iam.disable_access_keys": "integrations.aws.iam",
    "aws.iam.quarantine_principal": "integrations.aws.iam",
    "aws.iam.restore_principal": "integrations.aws.iam_restore",
    "aws.lambda.throttle": "integrations.aws.lambda_",
    "aws.logs.collect": "integrations.aws.logs",
    "aws.s3.block_public_access": "integrations.aws.s3",
    "aws.s3.preserve_objects": "integrations.aws.s3",
    "aws.sagemaker.capture_endpoint": "integrations.aws.sagemaker",
    "aws.sagemaker.isolate_endpoint": "integrations.aws.sagemaker",
    "contacts.page": "flows.people.page",
    "data.blast_radius": "integrations.data.radius",
    "data.quarantine": "integrations.data.quarantine",
    "fail": "flows.actions.control",
    "log": "flows.actions.control",
    "model.capture_registry": "integrations.models.registry_actions",
    "model.quarantine": "integrations.models.registry_actions",
    "model.rollback": "integrations.models.actions",
    "model.verify": "integrations.models.actions",
    "pipeline.trigger": "integrations.data.pipeline",
    "slack.open_incident_channel": "integrations.slack.actions",
    "slack.post": "integrations.slack.actions",
    "wait": "flows.actions.control",
}
