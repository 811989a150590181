"""A generic payload's own keys in an error stay on one line (found by the adapters' fuzz test)."""

from __future__ import annotations

import pytest

from flows.triggers.adapters import parse
from flows.triggers.model import AlertError


@pytest.mark.parametrize("key", ["\n", "a\r\nb", "x\u2028y", "\x1b[2Jclear"])
def test_a_key_with_line_breaks_or_controls_is_named_on_one_line(key: str) -> None:
    with pytest.raises(AlertError) as raised:
        parse("generic", {key: None})
    message = str(raised.value)
    assert message.splitlines() == [message]
    assert "\x1b" not in message
    assert "Extra inputs are not permitted" in message
