"""``POST /slack/interactions``: Ack, Approve and Reject buttons pressed in Slack reach the run.

Slack posts ``payload=<JSON>`` (form-encoded) to the app's interactivity URL and expects an answer
within 3 seconds (Slack API docs, "Handling user interaction"). Each request is checked in this
order, and nothing is written before the check that refuses it:

1. the signature: slack-sdk's ``SignatureVerifier`` with ``[slack] signing_secret``, which refuses
   a timestamp more than 5 minutes away (Slack API docs, "Verifying requests from Slack"): 401;
2. a replay of a request already handled (same signature and timestamp): 200, done nothing;
3. the payload: ``block_actions`` with a ``fireline.ack|approve|reject`` button whose value is
   ``{"run", "step"}``, or the ``view_submission`` of the reject-reason modal; anything else is
   400 with a one-line error;
4. then the request is answered at once and the work goes to a thread: the Slack user is mapped to
   a person through the run's directory snapshot (by Slack user id, else by e-mail lookup), and
   :func:`flows.people.answers.submit_answer` / :func:`submit_ack` decide whether the run accepts
   the answer (allowed approvers and groups, no self-approval, M-of-N distinct people, a replay
   counts once). The clicking user is told the outcome in an ephemeral message.

Reject opens a modal asking for the reason (``views.open`` needs the click's ``trigger_id``, valid
for 3 seconds); its submission is the rejection. A submission without a reason is answered with the
modal's field error and records nothing.

The Slack calls (modal, ephemeral replies, e-mail lookups) live in :data:`REPLY_MODULE`, loaded by
name: ``flows`` never imports ``integrations`` statically.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from flows.errors import ApprovalError, FirelineError

REPLY_MODULE = "integrations.slack.replies"
MAX_BODY = 1 << 20
REPLAY_WINDOW = 600.0  # seconds a handled signature is remembered (the verifier refuses older ones anyway)
ACTIONS = {"fireline.ack": "ack", "fireline.approve": "approve", "fireline.reject": "reject"}
REJECT_CALLBACK = "fireline.reject"
REASON_BLOCK, REASON_INPUT = "reason", "reason_input"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # a run or step id, never a path


class PayloadError(ValueError):
    """The interaction payload is not one fireline sent buttons for (answered 400)."""


@dataclass(frozen=True)
class Click:
    """One decoded interaction: who did what to which run step."""

    kind: str  # ack | approve | reject (the button) | rejected (the modal's submission)
    user_id: str
    run: str
    step: str | None
    channel: str | None
    trigger_id: str | None = None
    reason: str | None = None


def _target(raw: Any) -> tuple[str, str | None]:
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
        run, step = value["run"], value.get("step")
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise PayloadError('the button value is not {"run", "step"}') from e
    if not isinstance(run, str) or not _ID.match(run):
        raise PayloadError("the button value names no run")
    if not (step is None or (isinstance(step, str) and _ID.match(step))):
        raise PayloadError("the button value names no step")
    return run, step


def parse_payload(body: bytes) -> Click:
    """Decode a form-encoded interaction body.

    Raises:
        PayloadError: not ``payload=<JSON>``, not a fireline button or modal, or a field missing.
    """
    try:
        payload = json.loads(parse_qs(body.decode("utf-8"), strict_parsing=True)["payload"][-1])
    except (UnicodeDecodeError, ValueError, KeyError) as e:
        raise PayloadError("the body is not payload=<JSON>") from e
    if not isinstance(payload, dict) or not isinstance(payload.get("user"), dict) or not payload["user"].get("id"):
        raise PayloadError("the payload names no user")
    try:
        return _decode(payload, str(payload["user"]["id"]))
    except (AttributeError, TypeError, ValueError) as e:  # a field of the wrong shape somewhere inside
        if isinstance(e, PayloadError):
            raise
        raise PayloadError(f"malformed {payload.get('type')} payload ({type(e).__name__})") from e


def _decode(payload: dict[str, Any], user: str) -> Click:
    kind = payload.get("type")
    if kind == "block_actions":
        actions = payload.get("actions")
        if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
            raise PayloadError("block_actions without actions")
        action = ACTIONS.get(str(actions[0].get("action_id")))
        if action is None:
            raise PayloadError(f"unknown action_id {actions[0].get('action_id')!r}")
        run, step = _target(actions[0].get("value"))
        channel = (payload.get("channel") or {}).get("id") or (payload.get("container") or {}).get("channel_id")
        return Click(action, user, run, step, channel, payload.get("trigger_id"))
    if kind == "view_submission":
        view = payload.get("view") or {}
        if view.get("callback_id") != REJECT_CALLBACK:
            raise PayloadError(f"unknown view {view.get('callback_id')!r}")
        meta = json.loads(view.get("private_metadata") or "{}") if isinstance(view, dict) else {}
        run, step = _target(meta)
        values = ((view.get("state") or {}).get("values") or {}).get(REASON_BLOCK) or {}
        reason = str((values.get(REASON_INPUT) or {}).get("value") or "").strip()
        return Click("rejected", user, run, step, meta.get("channel"), reason=reason)
    raise PayloadError(f"unsupported interaction type {kind!r}")


class SlackInteractions:
    """The endpoint and its worker threads. ``app`` is the Starlette app (route ``/interactions``).

    ``clock`` (epoch seconds) feeds the signature verifier; ``replies`` replaces the Slack calls
    module (:data:`REPLY_MODULE`).
    """

    def __init__(
        self, settings: Any, *, workers: int = 4, clock: Callable[[], float] | None = None,
        replies: Any = None,
    ) -> None:  # fmt: skip
        from slack_sdk.signature import Clock, SignatureVerifier

        secret = settings.slack.signing_secret
        if not secret:
            raise FirelineError("slack.signing_secret is not set: Slack interactions cannot be verified")
        if secret.startswith("secret:"):  # settings resolve references when they load; this is a fallback
            name = secret.removeprefix("secret:")
            if not os.environ.get(name):
                raise FirelineError(f"slack.signing_secret: secret {name!r} is not set in the environment")
            secret = os.environ[name]
        self.settings = settings
        custom = clock

        class _Clock(Clock):
            def now(self) -> float:
                return custom() if custom is not None else time.time()

        self.verifier = SignatureVerifier(secret, _Clock())
        self.replies = replies or importlib.import_module(REPLY_MODULE)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="slack-interaction")
        self._futures: list[Future[None]] = []
        self._seen: dict[str, float] = {}
        self._run_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.app = self._build()

    def _build(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route

        async def interactions(request: Request) -> Response:
            body = await request.body()
            if len(body) > MAX_BODY:
                return JSONResponse({"error": f"body larger than {MAX_BODY} bytes"}, status_code=413)
            if not self.verifier.is_valid_request(body, dict(request.headers)):
                return JSONResponse({"error": "bad or stale Slack signature"}, status_code=401)
            if self._replayed(request.headers.get("x-slack-signature", "")):
                return Response(status_code=200)
            try:
                click = parse_payload(body)
            except PayloadError as e:
                return JSONResponse({"error": f"interaction payload: {e}"}, status_code=400)
            if click.kind == "rejected" and not click.reason:
                errors = {REASON_BLOCK: "Say why you reject: the reason goes into the run record."}
                return JSONResponse({"response_action": "errors", "errors": errors})
            self._submit(click)
            return Response(status_code=200)

        return Starlette(routes=[Route("/interactions", interactions, methods=["POST"])])

    def _replayed(self, signature: str) -> bool:
        now = time.monotonic()
        with self._lock:
            self._seen = {k: t for k, t in self._seen.items() if now - t < REPLAY_WINDOW}
            if signature in self._seen:
                return True
            self._seen[signature] = now
            return False

    def _submit(self, click: Click) -> None:
        future = self._pool.submit(self.handle, click)
        with self._lock:
            self._futures = [f for f in self._futures if not f.done()] + [future]

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait for the handed-off work (tests, shutdown); True when all of it finished."""
        with self._lock:
            pending = list(self._futures)
        done, not_done = wait(pending, timeout)
        for future in done:
            future.result()
        return not not_done

    def handle(self, click: Click) -> None:
        """Record the click's answer (on a worker thread) and tell the user how it went.

        Answers to one run are submitted one at a time, so that a second click of the same person
        is seen as the duplicate it is.
        """
        with self._lock:
            run_lock = self._run_locks.setdefault(click.run, threading.Lock())
        try:
            with run_lock:
                text = self._apply(click)
        except FirelineError as e:
            text = f"Not recorded: {e}"
        if text and click.channel:
            self.replies.tell(self.settings, click.channel, click.user_id, text)

    def _apply(self, click: Click) -> str | None:
        from flows.engine.runs import find_run
        from flows.people.answers import submit_ack, submit_answer
        from flows.people.identity import Identity
        from flows.people.snapshot import run_directory

        if click.kind == "reject":
            self.replies.open_reject_modal(self.settings, click.trigger_id, click.run, click.step, click.channel)
            return None
        run_dir = find_run(click.run, self.settings)
        directory = run_directory(run_dir, self.settings)
        person = self.replies.person_for(self.settings, directory, click.user_id)
        identity = Identity(person or click.user_id.lower(), "slack", click.user_id)
        if click.kind == "ack":
            receipt = submit_ack(click.run, identity, self.settings, step=click.step)
        else:
            if click.step is None:
                raise ApprovalError("the button names no approval step")
            decision = "approve" if click.kind == "approve" else "reject"
            receipt = submit_answer(click.run, click.step, decision, identity, click.reason, self.settings)
        if not receipt.accepted:
            return f"Not counted ({receipt.person_id}): {receipt.reason}"
        done = "already counted" if receipt.duplicate else "recorded"
        return f"{receipt.decision} by {receipt.person_id} {done} for run {receipt.run_id}"

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def interactions_app(settings: Any) -> Any:
    """The Starlette app to mount at ``/slack`` in ``fireline serve`` (route ``/slack/interactions``)."""
    return SlackInteractions(settings).app
