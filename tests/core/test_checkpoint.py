"""Checkpoints (``Core.checkpoint`` / ``Core.restore``): a core restored from another's
checkpoint, then given the rest of the ticks, answers exactly as the core that got them all;
both cores write the same checkpoint and load each other's.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickfan.errors import InvalidArgument, UnknownSymbol

UNIVERSE = [("A", 2, 4), ("B/C", 0, 8), ("d.e-1", 5, 0)]
NAMES = [name for name, _, _ in UNIVERSE]
INTERVALS = ["1s", "1m", "5m", "1h"]


@pytest.fixture(scope="module")
def cores() -> tuple[Any, Any]:
    try:
        rust = importlib.import_module("tickfan._core")
    except ImportError as exc:  # fail, never skip: CI must not pass without the extension
        pytest.fail(f"the rust core cannot be imported ({exc}); run `make build`", pytrace=False)
    return rust, importlib.import_module("tickfan.core._python")


settings_ = st.fixed_dictionaries(
    {},
    optional={
        "candle_capacity": st.sampled_from([{"1s": 2, "1m": 3}, {"5m": 1}, {"1h": 4, "1s": 1}]),
        "resume_window_ms": st.sampled_from([1, 4, 50, 60_000]),
        "resume_max_ticks": st.sampled_from([1, 3, 10]),
    },
)
# (symbol index, price units, size units, ts step): several ticks per candle, and gaps.
ticks_ = st.lists(
    st.tuples(st.integers(0, 2), st.integers(1, 10**6), st.integers(0, 10**4),
              st.one_of(st.integers(0, 3), st.integers(0, 70_000), st.integers(0, 4_000_000))),
    min_size=0, max_size=60,
)


def concrete(spec: list[tuple[int, int, int, int]]) -> list[tuple[str, float, float, int]]:
    ts, out = 10**12, []
    for s, pu, su, step in spec:
        ts += step
        name, pd, sd = UNIVERSE[s]
        out.append((name, pu / 10.0**pd, su / 10.0**sd, ts))
    return out


def answers(core: Any) -> list[Any]:
    """Everything a client can ask of the tick state, and what a new subscriber is sent."""
    out: list[Any] = [core.checkpoint()]
    for name in NAMES:
        out += [core.latest(name), core.ring_range(name)]
        for interval in INTERVALS:
            out += [core.backfill(name, interval, 0), core.recent_candles(name, interval, 3)]
    conn = core.connect()
    out.append(core.subscribe(conn, NAMES, "tick", None, 0))
    for name in NAMES:
        for last_seq in (0, 1, 5):
            out.append(core.resume(conn, name, last_seq, True))
    core.disconnect(conn)
    return out


@given(settings=settings_, spec=ticks_, cut=st.integers(0, 60))
def test_a_restored_core_answers_as_the_one_that_applied_every_tick(cores, settings, spec, cut) -> None:
    ticks = concrete(spec)
    cut = min(cut, len(ticks))
    for writer in cores:
        whole = writer.Core(UNIVERSE, **settings)
        whole.ingest(ticks[:cut], 0)
        state = whole.checkpoint()
        for reader in cores:  # each core loads the other's checkpoint too
            restored = reader.Core(UNIVERSE, **settings)
            restored.restore(state)
            assert restored.checkpoint() == state
            ref = reader.Core(UNIVERSE, **settings)
            ref.ingest(ticks[:cut], 0)
            # a subscriber before the rest of the ticks gets the same frames on both
            conns = [c.connect() for c in (ref, restored)]
            for c, conn in zip((ref, restored), conns):
                c.subscribe(conn, NAMES, "tick", None, 0)
            assert ref.ingest(ticks[cut:], 0) == restored.ingest(ticks[cut:], 0)
            assert ref.drain(conns[0], 10_000) == restored.drain(conns[1], 10_000)
            assert answers(ref) == answers(restored)


def test_restore_refuses_a_used_core_an_unknown_symbol_and_an_inconsistent_state(cores) -> None:
    for impl in cores:
        core = impl.Core(UNIVERSE, resume_max_ticks=2)
        core.ingest([("A", 1.5, 1.0, 1000), ("A", 1.25, 2.0, 1500), ("A", 2.0, 1.0, 2500)], 0)
        state = core.checkpoint()
        name, seq, base, ring, candles = state[0]
        assert (name, seq, base, ring) == ("A", 3, 2, [(1500, 125, 20000), (2500, 200, 10000)])
        assert candles[0] == (-1, [(1000, 150, 150, 125, 125, 30000), (2000, 200, 200, 200, 200, 10000)])
        with pytest.raises(InvalidArgument, match="restore needs a core that has applied no tick"):
            core.restore(state)
        fresh = impl.Core(UNIVERSE)
        with pytest.raises(UnknownSymbol):
            fresh.restore([("ZZ", seq, base, ring, candles)])
        for bad in [(name, seq + 1, base, ring, candles), (name, seq, base, [], candles),
                    (name, seq, base, ring, candles[:3]), (name, 0, 0, ring[:0], candles)]:
            with pytest.raises(InvalidArgument, match="invalid checkpoint of 'A'"):
                fresh.restore([bad])
        assert fresh.checkpoint() == [] and fresh.latest("A") is None  # nothing changed
