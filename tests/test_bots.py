"""BotRegistry: per-user bot state, running_count and status validation."""

from __future__ import annotations

import msgspec
import pytest

from tickfan.bots import STATUSES, BotRegistry


def test_running_count_is_exact_after_every_update() -> None:
    r = BotRegistry()
    steps = [
        ("b1", "starting", 0),
        ("b1", "running", 1),
        ("b2", "running", 2),
        ("b2", "running", 2),  # repeated status: no double count
        ("b1", "paused", 1),
        ("b3", "error", 1),
        ("b2", "stopping", 0),
        ("b1", "running", 1),
    ]
    for ts, (bot, status, expected) in enumerate(steps):
        state = r.update("alice", bot, status, ts)
        assert (state.bot_id, state.status, state.ts, state.running_count) == (bot, status, ts, expected)
        assert r.running_count("alice") == expected


def test_users_are_isolated_even_with_the_same_bot_id() -> None:
    r = BotRegistry()
    r.update("alice", "b1", "running", 1)
    r.update("bob", "b1", "stopped", 2, {"reason": "manual"})
    assert [(s.bot_id, s.status) for s in r.states("alice")] == [("b1", "running")]
    assert [(s.bot_id, s.status, s.detail) for s in r.states("bob")] == [
        ("b1", "stopped", {"reason": "manual"})
    ]
    assert r.running_count("alice") == 1 and r.running_count("bob") == 0
    assert r.states("carol") == [] and r.running_count("carol") == 0
    assert len(r) == 2


def test_states_are_sorted_and_carry_the_current_running_count() -> None:
    r = BotRegistry()
    r.update("u", "zeta", "running", 1)
    r.update("u", "alpha", "running", 2)
    r.update("u", "mid", "paused", 3)
    states = r.states("u")
    assert [s.bot_id for s in states] == ["alpha", "mid", "zeta"]
    # zeta was stored with running_count 1; the initial view says what is true now.
    assert [s.running_count for s in states] == [2, 2, 2]


@pytest.mark.parametrize("bad", ["RUNNING", "crashed", "", "run"])
def test_unknown_status_is_refused_and_changes_nothing(bad: str) -> None:
    r = BotRegistry()
    r.update("u", "b", "running", 1)
    with pytest.raises(ValueError, match="status must be one of starting, running, paused"):
        r.update("u", "b", bad, 2)
    assert [(s.status, s.ts) for s in r.states("u")] == [("running", 1)]
    assert r.running_count("u") == 1


def test_every_protocol_status_is_accepted() -> None:
    assert STATUSES == ("starting", "running", "paused", "stopping", "stopped", "error")
    r = BotRegistry()
    for i, status in enumerate(STATUSES):
        assert r.update("u", f"b{i}", status, i).status == status


def test_wire_shape() -> None:
    state = BotRegistry().update("u", "b-1", "running", 1731283200123, {"pnl": 1.5})
    assert msgspec.json.decode(msgspec.json.encode(state)) == {
        "type": "bot_status",
        "bot_id": "b-1",
        "status": "running",
        "ts": 1731283200123,
        "running_count": 1,
        "detail": {"pnl": 1.5},
    }
