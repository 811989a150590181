"""The JSON Schemas of the people documents, added to ``fireline schema`` beside the playbook's."""

from __future__ import annotations

from typing import Any


def people_schemas() -> dict[str, dict[str, Any]]:
    """``contact_tree`` (``kind: ContactTree``) and ``directory`` (``kind: Directory``), draft 2020-12."""
    from flows.people.models import ContactTreeDoc, DirectoryDoc

    return {
        "contact_tree": ContactTreeDoc.model_json_schema(
            by_alias=True, ref_template="#/$defs/contact_tree/$defs/{model}"
        ),
        "directory": DirectoryDoc.model_json_schema(by_alias=True, ref_template="#/$defs/directory/$defs/{model}"),
    }


def with_people(document: dict[str, Any]) -> dict[str, Any]:
    """The playbook schema with ``$defs.contact_tree`` and ``$defs.directory`` (``$ref: #/$defs/...``)."""
    return {**document, "$defs": {**document.get("$defs", {}), **people_schemas()}}
