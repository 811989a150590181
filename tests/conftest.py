"""Settings every test gets: no real AWS credentials, no real state directory, loopback only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Set before any test module imports boto3, so nothing can ever reach a real AWS account.
_FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
os.environ.update(_FAKE_AWS)
for _name in [k for k in os.environ if k.startswith("FIRELINE_")]:
    del os.environ[_name]

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own fireline home and runs directory, never the user's."""
    base = tmp_path_factory.mktemp("fireline-state")
    monkeypatch.setenv("FIRELINE_HOME", str(base / "home"))
    monkeypatch.setenv("FIRELINE_RUNS_DIR", str(base / "runs"))
    monkeypatch.setenv("FIRELINE_PLAYBOOKS_DIR", str(REPO / "playbooks"))


@pytest.fixture
def repo_root() -> Path:
    return REPO
