"""Amazon SNS message authenticity (Amazon SNS Developer Guide, "Verifying the signatures of Amazon SNS messages").

A message is accepted only when: its ``TopicArn`` is on the allowlist; its ``SigningCertURL`` is
``https://sns.<region>.amazonaws.com/...`` (so nobody can sign with a certificate of their own);
and its ``Signature`` verifies, with ``SignatureVersion`` 1 (SHA1withRSA) or 2 (SHA256withRSA), over
the canonical string the guide defines (``Key\\nvalue\\n`` for the message type's fields in order).
A ``SubscriptionConfirmation`` for an allowlisted topic is confirmed by fetching its ``SubscribeURL``,
which must be on the same kind of host. The fetcher is injectable so that tests use a certificate
of their own without weakening the host check.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from flows.triggers.model import AlertError, AlertRefused

SNS_HOST = re.compile(r"^sns\.[a-z]{2}(-[a-z]+)+-\d\.amazonaws\.com(\.cn)?$")
NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_KEYS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
MAX_CERT = 64 * 1024


def canonical(message: dict[str, Any]) -> bytes:
    """The string SNS signs for this message type."""
    keys = NOTIFICATION_KEYS if message.get("Type") == "Notification" else CONFIRMATION_KEYS
    parts = []
    for key in keys:
        if key in message and message[key] is not None:
            parts.append(f"{key}\n{message[key]}\n")
    return "".join(parts).encode("utf-8")


def _https_get(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as response:  # host checked by the caller
        data: bytes = response.read(MAX_CERT + 1)
    if len(data) > MAX_CERT:
        raise AlertRefused("SNS certificate is larger than 64 KiB")
    return data


class SnsVerifier:
    """Checks SNS messages against a topic allowlist and their signing certificate."""

    def __init__(
        self,
        topics: Iterable[str],
        *,
        fetch: Callable[[str], bytes] | None = None,
        host: re.Pattern[str] = SNS_HOST,
    ) -> None:
        self.topics = frozenset(topics)
        self.fetch = fetch or _https_get
        self.host = host
        self._certs: dict[str, Any] = {}
        self._lock = threading.Lock()

    def check_url(self, url: Any, what: str) -> str:
        if not isinstance(url, str):
            raise AlertError(f"SNS message: {what} is missing")
        parts = urlsplit(url)
        if parts.scheme != "https" or not self.host.match(parts.hostname or "") or parts.port not in (None, 443):
            raise AlertRefused(f"SNS message: {what} host {parts.hostname!r} is not sns.<region>.amazonaws.com")
        return url

    def _certificate(self, url: str) -> Any:
        from cryptography.x509 import load_pem_x509_certificate

        with self._lock:
            cached = self._certs.get(url)
        if cached is not None:
            return cached
        try:
            cert = load_pem_x509_certificate(self.fetch(url))
        except AlertError:
            raise
        except Exception as e:
            raise AlertRefused(f"SNS message: cannot use the signing certificate: {type(e).__name__}") from e
        with self._lock:
            self._certs[url] = cert
        return cert

    def verify(self, message: dict[str, Any]) -> None:
        """Raise :class:`AlertRefused` unless the message is authentic and from an allowlisted topic."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        topic = message.get("TopicArn")
        if topic not in self.topics:
            raise AlertRefused(f"SNS topic {str(topic)[:256]!r} is not on the allowlist")
        version = str(message.get("SignatureVersion", ""))
        algorithm = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(version)
        if algorithm is None:
            raise AlertRefused(f"SNS SignatureVersion {version[:8]!r} is not 1 or 2")
        cert = self._certificate(self.check_url(message.get("SigningCertURL"), "SigningCertURL"))
        try:
            signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
            cert.public_key().verify(signature, canonical(message), padding.PKCS1v15(), algorithm)
        except (InvalidSignature, ValueError, TypeError) as e:
            raise AlertRefused("SNS message signature does not verify") from e

    def confirm(self, message: dict[str, Any]) -> None:
        """Confirm a verified subscription by fetching its SubscribeURL."""
        self.fetch(self.check_url(message.get("SubscribeURL"), "SubscribeURL"))
