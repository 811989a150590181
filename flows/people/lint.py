"""``fireline validate`` and ``lint`` for people: directories, contact trees and ``contacts:``.

A library folder may hold ``people.yaml`` (``kind: Directory``) and ``contact-trees/*.yaml``
(``kind: ContactTree``) beside its playbooks; :func:`validate_file` checks whichever kind a file is.
A playbook's ``contacts:`` must name a tree of its library (E820, with did-you-mean), and so must a
``contacts.page`` step's literal ``tree``; the tree's own targets are checked in the tree's file.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from flows.errors import Diagnostic, SpecError
from flows.language.diagnose import suggest
from flows.language.template_refs import contains_template

PEOPLE_KINDS = ("Directory", "ContactTree")


def document_kind(path: Path) -> str | None:
    """The ``kind:`` of a YAML document, or None when it cannot be read (the full check reports why)."""
    from flows.language.loader import load_yaml

    try:
        data, _ = load_yaml(path)
    except SpecError:
        return None
    kind = data.get("kind") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else None


def people_files(paths: list[Path]) -> list[Path]:
    """The directory and contact trees of the given library folders."""
    found: list[Path] = []
    for path in paths:
        if not path.is_dir():
            continue
        found.extend(p for p in (path / "people.yaml", path / "people.yml") if p.is_file())
        folder = path / "contact-trees"
        if folder.is_dir():
            found.extend(sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()))
    return found


def _settings() -> Any:
    from flows.config import load_settings

    return load_settings()


def check_people_file(path: Path, kind: str, settings: Any) -> list[Diagnostic]:
    """Every error of a directory or contact tree file (a tree is checked against its library's directory)."""
    from flows.language.loader import sort_diagnostics
    from flows.people.directory import Directory, load_directory
    from flows.people.load import load_doc
    from flows.people.models import ContactTreeDoc
    from flows.people.trees import check_tree

    try:
        if kind == "Directory":
            Directory.load(path)
            return []
        library = path.parent.parent if path.parent.name == "contact-trees" else path.parent
        loaded = load_doc(path, ContactTreeDoc, "ContactTree")
    except SpecError as e:
        return sort_diagnostics(list(e.diagnostics))
    try:
        directory = load_directory(settings, library)
    except SpecError:
        return []  # the directory's own file reports its errors; the targets cannot be checked without it
    return sort_diagnostics(check_tree(loaded, directory))


def check_contacts(loaded: Any, settings: Any) -> list[Diagnostic]:
    """``contacts:`` and literal ``contacts.page`` trees name trees of the playbook's library."""
    from flows.language.diagnose import format_path
    from flows.people.settings import trees_dir
    from flows.people.trees import tree_files

    library = Path(loaded.path).parent
    folder = trees_dir(settings, library)
    names = tree_files(folder)
    out: list[Diagnostic] = []
    sites: list[tuple[tuple[str | int, ...], str]] = []
    if loaded.playbook.contacts:
        sites.append((("contacts",), loaded.playbook.contacts))
    for index, step in enumerate(loaded.playbook.steps):
        handlers: list[tuple[tuple[str | int, ...], str, dict[str, Any]]] = [
            (("steps", index, "with", "tree"), step.action, step.with_)
        ]
        handlers += [(("steps", index, "on_failure", h, "with", "tree"), f.action, f.with_)
                     for h, f in enumerate(step.on_failure)]  # fmt: skip
        for path, action, with_ in handlers:
            tree = with_.get("tree") if action == "contacts.page" else None
            if isinstance(tree, str) and not contains_template(tree):
                sites.append((path, tree))
            elif action == "contacts.page" and tree is None and not loaded.playbook.contacts:
                message = "contacts.page without a tree, and the playbook names no contacts"
                pos = loaded.position(path[:-1])
                out.append(Diagnostic("E821", message, pos, format_path(path[:-1]), hint="set contacts: TREE"))
    for path, tree in sites:
        if tree not in names:
            hint = suggest(tree, names)
            message = f"contact tree {tree!r} does not exist in {folder}/"
            out.append(Diagnostic("E820", message, loaded.position(path), format_path(path), hint=hint))
    return out


def validate_file(path: Path, strict: bool = False, settings: Any = None) -> tuple[Any, list[Diagnostic]]:
    """Validate a playbook, directory or contact tree file; never raises for a bad file."""
    from flows.language.lint import validate_path
    from flows.language.loader import sort_diagnostics

    kind = document_kind(path)
    if path.parent.name == "contact-trees":
        kind = "ContactTree"  # whatever it says: a file there is checked as a tree
    elif path.name in ("people.yaml", "people.yml"):
        kind = "Directory"
    if kind in PEOPLE_KINDS:
        found = check_people_file(path, kind, settings or _settings())
        loaded = None
    else:
        loaded, found = validate_path(path, strict=strict)
        if loaded is not None:
            found = sort_diagnostics([*found, *check_contacts(loaded, settings or _settings())])
    if strict:
        found = [replace(d, severity="error") if d.severity == "warning" else d for d in found]
    return loaded, found
