"""A run's own copy of the people documents, and who a terminal user is.

When a run starts it copies the directory, the legacy approvers file and its contact tree into
``state/people/`` and records their name, version and sha256 in run.json (``people``). Every
answer to the run is checked against that snapshot, by the run and by ``fireline approve``/``ack``
alike, so an edit to ``people.yaml`` during an incident cannot change who may approve it.
"""

from __future__ import annotations

import getpass
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.errors import ApprovalError
from flows.people.identity import Identity, canonical_name
from flows.record.store import write_atomic

if TYPE_CHECKING:
    from flows.engine.approvals import Approvers
    from flows.people.directory import Directory


def _folder(run_dir: Path) -> Path:
    return run_dir / "state" / "people"


@dataclass
class Snapshot:
    """The people documents a run starts with, read and checked before the run directory exists."""

    files: dict[str, bytes] = field(default_factory=dict)
    entry: dict[str, Any] = field(default_factory=dict)

    def write(self, run_dir: Path) -> dict[str, Any]:
        """Copy the documents into ``state/people/``; returns the run.json ``people`` entry."""
        folder = _folder(run_dir)
        for name, raw in self.files.items():  # write_atomic makes the folder: none when there is no file
            write_atomic(folder / name, raw)
        return self.entry


def prepare_snapshot(settings: Any, tree: str | None, library: Path | None = None) -> Snapshot:
    """Read and check the directory, the approvers file and the playbook's contact tree.

    Raises:
        SpecError, ConfigError: the directory or the tree is malformed or missing.
    """
    from flows.people.directory import load_directory
    from flows.people.trees import load_tree

    directory = load_directory(settings, library)
    snap = Snapshot(entry={"directory": None, "contact_tree": None, "approvers_file": None})
    if directory.path is not None:
        raw = directory.path.read_bytes()
        snap.files["directory.yaml"] = raw
        snap.entry["directory"] = {**directory.snapshot(), "sha256": hashlib.sha256(raw).hexdigest()}
    approvers = getattr(settings, "approvers_file", None)
    if approvers is not None and Path(approvers).is_file():
        raw = Path(approvers).read_bytes()
        snap.files["approvers.yaml"] = raw
        snap.entry["approvers_file"] = {"path": str(approvers), "sha256": hashlib.sha256(raw).hexdigest()}
    if tree:
        loaded = load_tree(tree, settings, directory, library)
        raw = loaded.path.read_bytes()
        snap.files["contact-tree.yaml"] = raw
        meta = loaded.doc.metadata
        snap.entry["contact_tree"] = {"name": meta.name, "version": meta.version, "sha256": loaded.sha256,
                                      "path": str(loaded.path)}  # fmt: skip
    return snap


def run_directory(run_dir: Path, settings: Any) -> Directory:
    """The run's directory snapshot (the configured directory for a run started without one)."""
    from flows.people.directory import Directory, load_directory

    copy = _folder(run_dir) / "directory.yaml"
    if copy.is_file():
        return Directory.load(copy, Path(settings.home) / "people" / "slack-ids.json")
    if (_folder(run_dir)).is_dir():
        return Directory()  # the run started with no directory: it knows nobody
    return load_directory(settings)


def run_approvers(run_dir: Path, settings: Any) -> Approvers:
    """Who may answer the run's approvals, from its snapshot."""
    from flows.engine.approvals import ApproverDirectory, Approvers

    copy = _folder(run_dir) / "approvers.yaml"
    if copy.is_file():
        legacy = ApproverDirectory.load(copy)
    elif _folder(run_dir).is_dir():
        legacy = ApproverDirectory()
    else:
        legacy = ApproverDirectory.load(getattr(settings, "approvers_file", None))
    return Approvers(legacy=legacy, directory=run_directory(run_dir, settings))


def ack_refusal(run_dir: Path, settings: Any, raw: str) -> tuple[str, str | None]:
    """The canonical acker and why the ack does not qualify (None: it does)."""
    directory = run_directory(run_dir, settings)
    person = directory.canonical(raw)
    if person is None:
        return raw, f"{raw!r} is not a person name"
    if directory.people and person not in directory.people:
        return person, f"{person} is not in the directory {directory.name!r}"
    return person, None


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def cli_identity(claim: str | None, directory: Directory, login: str | None = None) -> Identity:
    """Who is answering at this terminal: the OS login, mapped through the directory.

    Without ``--as`` the login must belong to exactly one person. With ``--as NAME`` the claim is
    accepted only when the directory lists this login in NAME's ``unix_logins``; it is recorded as
    a claim. With no directory at all, ``--as`` is an unauthenticated claim, recorded as such, and
    the login still counts for one person per approval.

    Raises:
        ApprovalError: the login maps to nobody (or to several people and no ``--as``), or the
            directory does not let this login act for the claimed person.
    """
    login = login or os_user()
    if not directory.people:
        if claim is None:
            raise ApprovalError("no people directory is configured: say who you are with --as NAME")
        return Identity(canonical_name(claim), "cli", login, claim)
    if claim is None:
        people = directory.people_for_login(login)
        if len(people) != 1:
            who = "nobody" if not people else ", ".join(p.id for p in people)
            raise ApprovalError(f"OS user {login!r} maps to {who} in the directory {directory.name!r}: use --as NAME")
        return Identity(people[0].id, "cli", login, None)
    person = directory.resolve(claim)
    if person is None:
        canonical_name(claim)  # a malformed name gets its own message
        raise ApprovalError(f"{claim!r} is not in the directory {directory.name!r}")
    if login not in person.unix_logins:
        raise ApprovalError(
            f"OS user {login!r} may not act for {person.id} (the directory lists {person.id}'s unix_logins: "
            f"{', '.join(person.unix_logins) or 'none'})"
        )
    return Identity(person.id, "cli", login, claim)
