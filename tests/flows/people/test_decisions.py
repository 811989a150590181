"""Every answer source parses decisions strictly: exact words after normalisation, the rest refused."""

from __future__ import annotations

import pytest

from flows.actions.control import ApprovalParams
from flows.engine.approvals import Answer, ApproverDirectory, Approvers, parse_decision, refusal_reason

PARAMS = ApprovalParams.model_validate({"approvers": ["user:bob"]})
BOB = Approvers(legacy=ApproverDirectory(groups={}))


@pytest.mark.parametrize(("text", "expected"), [("approve", "approve"), (" REJECT ", "reject"), ("Approve", "approve"),
                                                ("approved", None), ("yes", None), ("rejected", None), ("", None),
                                                ("approve please", None)])  # fmt: skip
def test_parse_decision(text: str, expected: str | None) -> None:
    assert parse_decision(text) == expected


def test_prefect_answers_keep_unknown_text_so_the_run_refuses_and_records_it() -> None:
    from flows.engine.prefect_answers import _answers_from

    answers = _answers_from([{"by": "bob", "decision": "APPROVED"}, {"by": "bob", "decision": 1}, "approve"], at="t")
    assert [a.decision for a in answers] == ["APPROVED", "1", "approve"]
    reasons = [refusal_reason(a, PARAMS, BOB, None) for a in answers]
    assert reasons[0] == "'APPROVED' is not a decision (expected approve or reject)"
    assert reasons[1] == "'1' is not a decision (expected approve or reject)"
    assert reasons[2] == "'?' is not a person name"  # a bare string names nobody


def test_a_scripted_answer_with_unknown_text_never_counts() -> None:
    assert refusal_reason(Answer(by="bob", decision="ok"), PARAMS, BOB, None) is not None
    assert refusal_reason(Answer(by="bob", decision="APPROVE"), PARAMS, BOB, None) is None
