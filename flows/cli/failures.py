"""The one place where an exception becomes what the user sees: a line on stderr, a JSON error, an exit code.

Every command inherits this through :func:`flows.cli.main`: a :class:`~flows.errors.FirelineError`
prints its message; the usual faults of a command line tool (a missing or unreadable file, a
directory where a file was expected, malformed JSON, no AWS credentials, an unreachable endpoint)
print a sentence naming what and where; anything else is a bug and says so. Exit 2 is for usage
only (unknown options, missing arguments, options that exclude each other); everything else is 1.
"""

from __future__ import annotations

import errno
import json
from dataclasses import dataclass
from typing import Any

from flows.errors import FirelineError, UsageError, one_line

USAGE_CODE = "E001"


@dataclass(frozen=True)
class Failure:
    """What an error shows: ``code`` (stable), one-line ``message``, ``where`` (or None), exit code."""

    code: str
    message: str
    where: str | None
    exit_code: int
    lines: tuple[str, ...] = ()  # several findings (a playbook's diagnostics) print one per line

    def as_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "where": self.where}}


_OS_WORDS = {
    errno.ENOENT: "no such file or directory",
    errno.EISDIR: "is a directory, expected a file",
    errno.ENOTDIR: "a part of the path is not a directory",
    errno.EACCES: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device",
}


def _os_failure(e: OSError) -> Failure:
    where = str(e.filename) if e.filename is not None else None
    words = _OS_WORDS.get(e.errno or 0, (e.strerror or str(e)).lower())
    return Failure("E003", f"{where}: {words}" if where else words, where, 1)


def _boto_failure(e: Exception) -> Failure | None:
    """botocore's credential and connection errors, without importing botocore when it is not loaded."""
    import sys

    if "botocore.exceptions" not in sys.modules:
        return None
    from botocore import exceptions as bx

    if isinstance(e, bx.NoCredentialsError | bx.PartialCredentialsError | bx.ProfileNotFound):
        return Failure(
            "E502",
            f"no usable AWS credentials ({one_line(str(e))}): set AWS_PROFILE or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or aws.profile in fireline.toml; `fireline sandbox up` prints settings for a "
            "local sandbox",
            None,
            1,
        )
    if isinstance(e, bx.EndpointConnectionError | bx.ConnectTimeoutError | bx.ReadTimeoutError):
        url = getattr(e, "kwargs", {}).get("endpoint_url")
        return Failure("E503", f"cannot reach {url or 'the AWS endpoint'}: {one_line(str(e))}", url, 1)
    if isinstance(e, bx.ClientError):
        return Failure("E500", one_line(str(e)), None, 1)
    if isinstance(e, bx.BotoCoreError):
        return Failure("E500", one_line(str(e)), None, 1)
    return None


def _click_usage(e: BaseException) -> str | None:
    usage: tuple[type[BaseException], ...] = ()
    try:  # typer 0.2x raises its own vendored copies of click's exceptions
        from typer._click.exceptions import UsageError as VendoredUsageError

        usage = (VendoredUsageError,)
    except ImportError:
        pass
    try:  # older typer raises click's own
        import click

        usage = (*usage, click.UsageError)
    except ImportError:
        pass
    if isinstance(e, usage):
        return str(e.format_message())  # type: ignore[attr-defined]
    return None


def describe(e: BaseException) -> Failure:
    """Classify an exception raised by a command."""
    if isinstance(e, UsageError):
        return Failure(e.code, one_line(str(e), 2000), e.where, 2)
    if isinstance(e, FirelineError):
        text = str(e)
        lines = tuple(text.splitlines()) if "\n" in text else ()
        first = lines[0] if lines else text
        message = first if not lines else f"{first} (and {len(lines) - 1} more)"
        return Failure(e.code, one_line(message, 2000), e.where, 1, lines)
    usage = _click_usage(e)
    if usage is not None:
        return Failure(USAGE_CODE, one_line(usage, 2000), None, 2)
    if type(e).__name__ == "Abort":  # click's (or typer's vendored) Abort: the user said no at a prompt
        return Failure("E005", "aborted", None, 1)
    if isinstance(e, json.JSONDecodeError):
        return Failure("E004", f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}", None, 1)
    if isinstance(e, UnicodeDecodeError):
        return Failure("E004", f"not UTF-8 text: {e.reason} at byte {e.start}", None, 1)
    if isinstance(e, OSError):
        return _os_failure(e)
    boto = _boto_failure(e) if isinstance(e, Exception) else None
    if boto is not None:
        return boto
    return Failure(
        "E999", f"internal error: {type(e).__name__}: {one_line(str(e))} (run with --debug for a traceback)", None, 1
    )


def report(e: BaseException, as_json: bool) -> int:
    """Print the failure (stderr, and stdout as JSON with ``--json``) and return the exit code."""
    import sys

    failure = describe(e)
    if failure.lines:
        sys.stderr.write("".join(line + "\n" for line in failure.lines))
    else:
        prefix = "fireline: usage: " if failure.exit_code == 2 else "fireline: error: "
        sys.stderr.write(prefix + failure.message + "\n")
    if as_json:
        sys.stdout.write(json.dumps(failure.as_json(), ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return failure.exit_code
