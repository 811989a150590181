"""The loader: golden diagnostics for bad playbooks, positions, caps on hostile input."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from flows.errors import Diagnostic, SourcePosition, SpecError, YamlSyntaxError
from flows.language.lint import validate_path
from flows.language.loader import LoadedPlaybook, load_playbook, load_yaml
from tests.flows.fake_actions import registry

DATA = Path(__file__).resolve().parents[3] / "tests" / "data"
BAD = DATA / "bad"
CASES = sorted(p.stem for p in BAD.glob("*.yaml"))

GOOD = """\
apiVersion: fireline/v1
kind: Playbook
metadata:
  name: good
  version: 3
  title: A good playbook
inputs:
  ids: {type: "list[string]", required: true}
steps:
  - id: collect
    action: demo.evidence.collect
    for_each: "{{ inputs.ids }}"
    concurrency: 2
    with: {target: "{{ item }}", window: 15m}
  - id: approve
    action: approval
    with: {approvers: ["group:sec"], timeout: 10m}
  - id: isolate
    action: demo.box.isolate
    for_each: "{{ inputs.ids }}"
    concurrency: 4
    with:
      instance_id: "{{ item }}"
      reason: "{{ steps.collect.output.items }} items"
    on_failure:
      - action: log
        with: {message: "isolation failed: {{ error.message }}"}
"""


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30
    missing = [c for c in CASES if not (BAD / f"{c}.expected").is_file()]
    assert not missing


@pytest.mark.parametrize("case", CASES)
def test_bad_playbook_matches_its_golden_file(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(BAD)
    loaded, found = validate_path(Path(f"{case}.yaml"), registry())
    rendered = "".join(d.render() + "\n" for d in found)
    assert rendered == (BAD / f"{case}.expected").read_text(encoding="utf-8")
    assert found, "a bad playbook must produce at least one finding"
    # Findings of the YAML and the schema leave nothing loaded; semantic findings keep the playbook.
    try:
        load_playbook(Path(f"{case}.yaml"))
    except SpecError:
        assert loaded is None
    else:
        assert loaded is not None


def test_good_playbook_loads_with_positions_and_digest(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD, encoding="utf-8")
    loaded = load_playbook(path)
    assert isinstance(loaded, LoadedPlaybook)
    assert loaded.playbook.ref == "good@3"
    assert len(loaded.sha256) == 64
    assert loaded.source == GOOD
    assert str(loaded.position(("steps", 2, "with", "instance_id"))) == f"{path}:23:20"
    assert str(loaded.position(("steps", 1))) == f"{path}:15:5"
    # A path that does not exist falls back to its nearest ancestor.
    assert loaded.position(("steps", 1, "with", "nope")) == loaded.position(("steps", 1, "with"))
    assert validate_path(path, registry()) == (loaded, [])


def test_all_schema_errors_of_a_file_come_out_in_one_pass(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(GOOD.replace("version: 3", "version: three").replace("concurrency: 4", "concurrency: 0"))
    _, found = validate_path(path, registry())
    assert [d.code for d in found] == ["E203", "E207"]


def test_size_cap_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"# padding\n" * 100_001)
    with pytest.raises(YamlSyntaxError) as caught:
        load_yaml(path)
    assert caught.value.diagnostics[0].render() == (
        f"{path}:1:1: error[E103] file is 1000010 bytes, over the 1000000-byte limit"
    )
    assert load_yaml(path, max_bytes=2_000_000)[0] is None  # only comments


def test_missing_file_is_a_fireline_error(tmp_path: Path) -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        load_yaml(tmp_path / "nope.yaml")
    assert caught.value.diagnostics[0].code == "E109"


def test_load_yaml_is_general_and_typed_by_yaml_1_2(tmp_path: Path) -> None:
    path = tmp_path / "alert.yaml"
    path.write_text("labels: {alertname: X, on: yes}\ncount: 0x10\nratio: .5\nwhen: 2024-01-01\nnone: ~\nq: '1'\n")
    data, positions = load_yaml(path)
    assert data == {
        "labels": {"alertname": "X", "on": "yes"},
        "count": 16,
        "ratio": 0.5,
        "when": "2024-01-01",
        "none": None,
        "q": "1",
    }
    assert (positions.value(("labels", "on")).line, positions.value(("labels", "on")).col) == (1, 28)
    assert positions.key(("count",)).col == 1


def test_billion_laughs_is_refused_with_bounded_memory() -> None:
    laughs = DATA / "bad" / "billion_laughs.yaml"
    tracemalloc.start()
    try:
        with pytest.raises(YamlSyntaxError):
            load_yaml(laughs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50_000_000


def test_diagnostic_shape_is_the_golden_format() -> None:
    d = Diagnostic("E201", "field required", load_position(), "steps[2].with.instance_id")
    assert d.render() == "playbooks/x.yaml:14:7: error[E201] steps[2].with.instance_id: field required"


def load_position() -> SourcePosition:
    return SourcePosition("playbooks/x.yaml", 14, 7)
