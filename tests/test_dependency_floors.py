"""Security floors of dependencies: the declared requirement excludes every version with a known
escape, and the installed version is at or above the floor (a stale environment fails here)."""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

# package -> (first safe version, the last unsafe one, why)
FLOORS = {
    "jinja2": ("3.1.6", "3.1.5", "sandbox escapes fixed in 3.1.5 (str.format) and 3.1.6 (|attr)"),
    "starlette": ("0.47.2", "0.47.1", "multipart/form denial of service fixed in 0.40.0 and 0.47.2"),
    "mlflow": ("2.22.4", "2.22.2", "directory traversal on model creation fixed in 2.22.4"),
}


def _declared() -> dict[str, Requirement]:
    data = tomllib.loads(PYPROJECT.read_text())
    lines = list(data["project"]["dependencies"])
    for extra in data["project"]["optional-dependencies"].values():
        lines += [line for line in extra if not line.startswith("fireline")]
    return {Requirement(line).name.lower(): Requirement(line) for line in lines}


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_the_requirement_excludes_every_version_below_the_floor(package: str) -> None:
    floor, unsafe, why = FLOORS[package]
    requirement = _declared()[package]
    assert not requirement.specifier.contains(unsafe, prereleases=True), f"{package} {unsafe} allowed: {why}"
    assert requirement.specifier.contains(floor), f"{package} {floor} refused by {requirement}"


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_the_installed_version_is_at_or_above_the_floor(package: str) -> None:
    floor, _, why = FLOORS[package]
    try:
        installed = Version(version(package))
    except PackageNotFoundError:
        pytest.fail(f"{package} is not installed (pip install -e '.[test]')")
    assert installed >= Version(floor), f"installed {package} {installed} is below the floor {floor}: {why}"
