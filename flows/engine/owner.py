"""Who drives a run: a process's start time, the kernel's boot id, and whether a recorded owner still lives.

A pid and its start time only mean something under the kernel that wrote them (a restarted
container keeps the kernel's boot id, a rebooted or different machine does not).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; fields resume after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def boot_id() -> str:
    """This kernel's boot id: a pid and start time only mean something under the kernel that wrote them."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return socket.gethostname()


def same_kernel(lock: dict[str, Any]) -> bool:
    """Whether a lock was written under this kernel (a container restart keeps the kernel, not the host name)."""
    if "boot_id" in lock:
        return bool(lock["boot_id"] == boot_id())
    return lock.get("host") in (None, socket.gethostname())


def pid_alive(pid: int, start_time: str | None) -> bool:
    """Whether the process that wrote a lock still runs."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if Path("/proc").is_dir():
        current = process_start_time(pid)
        if current is None:
            return False
        # A zombie (exited, not yet reaped) no longer drives anything.
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        except (OSError, IndexError):
            return False
        return start_time is None or current == start_time
    return True
