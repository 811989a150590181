"""The seal of a run record: an HMAC-SHA256 over run.json (which carries the event chain's head).

The hash chain alone detects an edit only when the editor leaves the chain broken; anyone who can
write the run directory can also recompute every hash. The seal adds what they cannot rewrite: a
key kept outside the run directory. Each time run.json is written, :meth:`Sealer.seal` signs its
whole content (outcome, trigger, steps, inputs, and ``events``: the chain's line count and last
line hash), so an edit of run.json, a truncated or emptied log and a recomputed chain all fail
``fireline audit verify``.

The key is ``record.key`` in the settings (write ``secret:NAME``: the variable ``NAME`` holds it)
or, by default, ``<home>/record.key``: 32 random bytes made on first use with permissions 0600. A
key file readable by others is refused. The seal names the key by ``key_id`` (a one-way
fingerprint), never by value.

A run.json that fails its checks when a process first writes over it
(:func:`flows.record.store.rewrite_problems`) is never signed again: its new seal says
``unverified`` instead of carrying a MAC, so no later write (a crash mark, an undo, a resume)
launders an edit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.errors import ConfigError, RecordError

ALGORITHM = "HMAC-SHA256"
KEY_FILE = "record.key"
SEAL_FIELD = "seal"
MIN_KEY_BYTES = 16


def canonical(doc: dict[str, Any]) -> bytes:
    """The bytes a seal signs: the document without its seal, keys sorted, compact."""
    body = {k: v for k, v in doc.items() if k != SEAL_FIELD}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


@dataclass(frozen=True)
class Sealer:
    """Signs and checks run.json documents with one key."""

    key: bytes
    source: str  # where the key came from, for messages (never the key itself)

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"fireline-record-key\0" + self.key).hexdigest()[:16]

    def mac(self, run_id: str, doc: dict[str, Any]) -> str:
        return hmac.new(self.key, run_id.encode("utf-8") + b"\0" + canonical(doc), hashlib.sha256).hexdigest()

    def seal(self, run_id: str, doc: dict[str, Any], *, unverified: str | None = None) -> dict[str, Any]:
        """``doc`` with a fresh seal (any old one replaced).

        ``unverified`` (why the record failed its checks before this write) gives a seal without a
        MAC that says so: a record found edited is never signed again.
        """
        body = {k: v for k, v in doc.items() if k != SEAL_FIELD}
        if unverified is not None:
            return {**body, SEAL_FIELD: {"alg": ALGORITHM, "key_id": self.key_id, "unverified": unverified}}
        return {**body, SEAL_FIELD: {"alg": ALGORITHM, "key_id": self.key_id, "hmac": self.mac(run_id, body)}}

    def check(self, run_id: str, doc: dict[str, Any]) -> list[str]:
        """Problems with ``doc``'s seal (empty when it was signed by this key and not edited since)."""
        seal = doc.get(SEAL_FIELD)
        if not isinstance(seal, dict):
            return ["run.json carries no seal: it was not signed, or the seal was removed"]
        if seal.get("unverified"):
            return [f"run.json was written over a record that had failed its checks: {seal['unverified']}"]
        if seal.get("key_id") != self.key_id:
            return [f"run.json was sealed with key {seal.get('key_id')!r}, not with the configured key {self.key_id}"]
        if not hmac.compare_digest(str(seal.get("hmac", "")), self.mac(run_id, doc)):
            return ["run.json does not match its seal: run.json (outcome, trigger, steps or the event head) was edited"]
        return []


def unverified_reason(run_json: Path) -> str | None:
    """The reason an earlier write gave for leaving run.json unverified, if one did."""
    try:
        seal = json.loads(run_json.read_text(encoding="utf-8")).get(SEAL_FIELD)
    except (OSError, ValueError, AttributeError):
        return None
    reason = seal.get("unverified") if isinstance(seal, dict) else None
    return str(reason) if reason else None


def _home_key(path: Path) -> bytes:
    """The per-home key, made with 0600 on first use; a key file others can read is refused."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Written whole under a private name, then linked into place (link fails when the key exists):
        # a reader never sees a half-written key, whether a concurrent run or a process killed mid-write.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(f"{path}: the record key is readable by others (mode {mode:o}); chmod 600 it")
    text = path.read_text(encoding="utf-8").strip()
    if len(text) < 2 * MIN_KEY_BYTES:
        raise RecordError(f"{path}: the record key is too short (at least {MIN_KEY_BYTES} bytes, hex)")
    return text.encode("utf-8")


def sealer_for(settings: Any) -> Sealer:
    """The sealer of these settings: ``record.key`` when set, else ``<home>/record.key``."""
    section = getattr(settings, "record", None)
    configured = getattr(section, "key", None)
    if configured:
        if configured.startswith("secret:"):
            raise ConfigError(f"record.key: the variable {configured.removeprefix('secret:')} is not set")
        if len(configured) < MIN_KEY_BYTES:
            raise ConfigError(f"record.key: the key is shorter than {MIN_KEY_BYTES} characters")
        sealer = Sealer(configured.encode("utf-8"), "record.key")
    else:
        path = Path(settings.home) / KEY_FILE
        sealer = Sealer(_home_key(path), str(path))
    install(sealer)
    return sealer


_current: list[Sealer] = []
_lock = threading.Lock()


def install(sealer: Sealer) -> None:
    """Make ``sealer`` the one records opened without one use (the settings this process runs with)."""
    with _lock:
        _current[:] = [sealer]


def current() -> Sealer:
    """The installed sealer, else the one of the loaded settings."""
    with _lock:
        if _current:
            return _current[0]
    from flows.config import load_settings

    return sealer_for(load_settings())
