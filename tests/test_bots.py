"""Bot statuses and the bot_status wire shape (running_count and storage: tests/test_stores.py)."""

from __future__ import annotations

import msgspec
import pytest

from tickfan.bots import STATUSES, BotState, check_status


def test_every_protocol_status_is_accepted() -> None:
    assert STATUSES == ("starting", "running", "paused", "stopping", "stopped", "error")
    for status in STATUSES:
        check_status(status)


@pytest.mark.parametrize("bad", ["RUNNING", "crashed", "", "run"])
def test_unknown_status_is_refused_naming_the_allowed_ones(bad: str) -> None:
    with pytest.raises(ValueError, match="status must be one of starting, running, paused, stopping, stopped, error"):
        check_status(bad)


def test_wire_shape() -> None:
    state = BotState("b-1", "running", 1731283200123, 1, {"pnl": 1.5})
    assert msgspec.json.decode(msgspec.json.encode(state)) == {
        "type": "bot_status",
        "bot_id": "b-1",
        "status": "running",
        "ts": 1731283200123,
        "running_count": 1,
        "detail": {"pnl": 1.5},
    }
