"""Who answered: canonical person ids and the authenticated identity behind an answer.

A person is compared in canonical form everywhere (approvals, no-self-approval, acks): lower-case,
one optional ``user:`` prefix removed, surrounding blanks removed. ``Alice``, ``alice`` and
``user:alice`` are one person; ``user:user:alice`` and names with characters outside
``[a-z0-9._@+-]`` are refused (:class:`~flows.errors.ApprovalError`). A Slack user id or an e-mail
address becomes the person's id through the directory (:meth:`Directory.resolve`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from flows.errors import ApprovalError

Via = Literal["slack", "cli", "prefect", "script"]
_CANONICAL = re.compile(r"^[a-z0-9][a-z0-9._@+-]{0,127}$")


def canonical_name(raw: str) -> str:
    """The canonical form of a person name written by a human or a tool.

    Raises:
        ApprovalError: empty, a doubled prefix (``user:user:alice``), or characters a person id
            never holds.
    """
    text = raw.strip()
    if text[:5].lower() == "user:":
        text = text[5:].strip()
    lowered = text.lower()
    if not _CANONICAL.match(lowered):
        raise ApprovalError(f"{raw!r} is not a person name (expected NAME or user:NAME, NAME in [a-z0-9._@+-])")
    return lowered


def try_canonical(raw: str | None) -> str | None:
    """:func:`canonical_name`, or None for a value that is not a person name."""
    if raw is None:
        return None
    try:
        return canonical_name(raw)
    except ApprovalError:
        return None


@dataclass(frozen=True)
class Identity:
    """Who gave an answer, and how we know.

    Attributes:
        person_id: the canonical person id (a directory id when the directory knows the person).
        via: the channel the answer came through: ``slack`` (a signed interaction), ``cli`` (the OS
            user of the terminal), ``prefect`` (flow run input or a Variable, unauthenticated),
            ``script`` (drill responders and tests).
        authenticated_as: what authenticated the answer: the Slack user id, the OS login, or
            ``prefect``/``script``.
        claim: the ``--as`` text when the person was claimed rather than authenticated, else None.
    """

    person_id: str
    via: Via
    authenticated_as: str
    claim: str | None = None

    def as_detail(self) -> dict[str, str | None]:
        """The identity as an event detail."""
        return {"by": self.person_id, "via": self.via, "authenticated_as": self.authenticated_as, "claim": self.claim}
