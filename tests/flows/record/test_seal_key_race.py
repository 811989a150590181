"""The per-home record key is never seen half-written: by concurrent first runs, or after a kill mid-write."""

from __future__ import annotations

import threading
from pathlib import Path

from flows.record.seal import _home_key


def _race(path: Path) -> tuple[list[bytes], list[BaseException]]:
    start = threading.Barrier(16)
    keys: list[bytes] = []
    errors: list[BaseException] = []

    def first_use() -> None:
        start.wait()
        try:
            keys.append(_home_key(path))
        except BaseException as e:  # a half-written key read by a racing run raised RecordError here
            errors.append(e)

    threads = [threading.Thread(target=first_use) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return keys, errors


def test_concurrent_first_uses_all_read_one_whole_key(tmp_path: Path) -> None:
    # 20 fresh homes: the unsafe create-then-write lost about one race in four, so this fails it.
    for n in range(20):
        path = tmp_path / f"home{n}" / "record.key"
        keys, errors = _race(path)
        assert errors == []
        assert len(set(keys)) == 1
        assert len(keys[0]) == 64
        assert path.stat().st_mode & 0o777 == 0o600
        assert sorted(p.name for p in path.parent.iterdir()) == ["record.key"]  # no private temporary left


def test_a_key_written_before_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "record.key"
    first = _home_key(path)
    assert _home_key(path) == first
