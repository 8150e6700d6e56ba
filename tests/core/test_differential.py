"""Differential tests: random operation sequences on a Rust core and a Python core.

Every return value, every exception (class, message, ``.errors``, ``.symbol``) and every
drained frame must be identical. Outputs are compared by ``repr``, so a tuple is not a list
and ``-0.0`` is not ``0.0``.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st

NAMES = ["A", "B/C", "d.e-1"]
UNKNOWN = "ZZ"
MODES = ["tick", "batch", "conflate", "auto"] * 3 + ["bogus"]
INTERVALS = [None, None, None, 10, 20, 50, 120, 60000] * 2 + [5, 60001]
CANDLE_INTERVALS = ["1s", "1m", "5m", "1h", "1d"]


@pytest.fixture(scope="module")
def cores() -> tuple[Any, Any]:
    try:
        rust = importlib.import_module("tickfan._core")
    except ImportError as exc:  # fail, never skip: CI must not pass without the extension
        pytest.fail(f"the rust core cannot be imported ({exc}); run `make build`", pytrace=False)
    return rust, importlib.import_module("tickfan.core._python")


universes = st.lists(
    st.tuples(st.integers(0, 12), st.integers(0, 12)), min_size=2, max_size=3
).map(lambda ds: [(NAMES[i], pd, sd) for i, (pd, sd) in enumerate(ds)])

configs = st.fixed_dictionaries(
    {},
    optional={
        "high_freq_per_s": st.sampled_from([1.0, 2.0, 3.5, 6]),
        "max_queue_frames": st.sampled_from([2, 5, 10_000]),
        "max_queue_bytes": st.sampled_from([150, 1000, 8 * 1024 * 1024]),
        "max_symbols_per_connection": st.sampled_from([1, 2, 100]),
        "candle_capacity": st.sampled_from([{"1s": 2, "1m": 3}, {"5m": 1}, {"1h": 4, "1s": 1}]),
        # the Driver's ticks start at ts 10**12 and its clock at 1000: these bounds are crossed
        "max_ts_skew_ms": st.sampled_from([None, 0, 10**12, 10**12 + 50_000, 10**12 + 1_000_000]),
        # tick ts steps are 0..3 ms or up to 70 s: windows that both keep and evict
        "resume_window_ms": st.sampled_from([1, 4, 50, 60_000]),
        "resume_max_ticks": st.sampled_from([1, 3, 10, 100_000]),
        # water marks low enough for the drains and bursts below to degrade and recover
        "high_water_frames": st.sampled_from([None, 2, 3, 6]),
        "low_water_frames": st.sampled_from([0, 0, 1, 4]),
        "degrade_interval_ms": st.sampled_from([10, 1000]),
        # the Driver's clock moves 0..1500 ms per step: graces that expire and that do not
        "slow_consumer_grace_ms": st.sampled_from([0, 0, 100, 2000]),
        # the age rule: ages that the clock's steps cross and ones they do not
        "degrade_after_ms": st.sampled_from([None, 1, 100, 2000]),
    },
).map(
    lambda c: {k: v for k, v in c.items() if k != "low_water_frames"}
    if c.get("low_water_frames", 0) >= (c.get("high_water_frames") or 10**9)
    else c
)

symbol_index = st.integers(0, 3)  # 3 (or past the universe) is unknown
conn_id = st.one_of(st.integers(1, 4), st.integers(1, 4), st.integers(0, 7))

# (symbol, price kind, price units, size kind, size units, ts step)
tick_spec = st.tuples(
    symbol_index,
    st.sampled_from(["ok"] * 12 + ["extra", "zero", "neg", "nan", "inf", "int", "bool", "huge"]),
    st.one_of(st.integers(1, 50), st.integers(1, 10**6), st.just(2**53 - 1), st.just(2**53)),
    st.sampled_from(["ok"] * 12 + ["extra", "neg", "negzero", "int", "str"]),
    st.one_of(st.integers(0, 50), st.integers(0, 10**9)),
    st.one_of(
        st.integers(0, 3), st.integers(0, 3), st.integers(-3, 0), st.integers(0, 400_000),
        st.sampled_from(["badts", "shape"]),
    ),
)

# Mostly-valid ticks: small ts steps (several ticks per candle, bursts for auto mode).
good_tick = st.tuples(
    st.sampled_from([0, 0, 0, 1, 1, 1, 2]),  # 0 and 1 always exist
    st.just("ok"),
    st.one_of(st.integers(1, 50), st.integers(1, 10**6)),
    st.sampled_from(["ok", "ok", "ok", "int", "negzero"]),
    st.integers(0, 50),
    st.one_of(st.integers(0, 3), st.integers(0, 70_000)),
)

valid_subscribe = st.tuples(
    st.just("subscribe"), st.integers(1, 3),
    st.lists(st.sampled_from([0, 0, 1, 1, 2]), min_size=1, max_size=3),
    st.sampled_from(["tick", "batch", "conflate", "auto"]), st.sampled_from([None, 10, 20, 120]),
)
good_ingest = st.tuples(st.just("ingest"), st.lists(good_tick, min_size=2, max_size=20),
                        st.integers(0, 120))

# Weighted: a strategy listed n times is drawn n times as often.
WEIGHTED_OPS = [
    *[valid_subscribe] * 3,
    *[good_ingest] * 10,
    *[st.tuples(st.just("flush"), st.integers(0, 200))] * 6,
    *[st.tuples(st.just("drain"), st.integers(1, 3), st.sampled_from([3, 1024]))] * 2,
    st.just(("connect",)),
    st.tuples(st.just("disconnect"), conn_id),
    st.tuples(
        st.just("subscribe"), conn_id, st.lists(symbol_index, max_size=4),
        st.sampled_from(MODES), st.sampled_from(INTERVALS),
    ),
    st.tuples(st.just("unsubscribe"), conn_id, st.lists(symbol_index, max_size=4)),
    st.tuples(st.just("ingest"), st.lists(tick_spec, max_size=4), st.integers(0, 120)),
    good_ingest,
    st.tuples(st.just("flush"), st.integers(0, 200)),
    st.tuples(st.just("push"), conn_id, st.sampled_from(["{}", "pong", "héllo", "x" * 100])),
    st.tuples(st.just("drain"), conn_id, st.sampled_from([1, 2, 1024])),
    st.tuples(st.just("flush"), st.integers(0, 1500)),
    st.tuples(st.just("flush"), st.integers(0, 1500)),
    st.tuples(
        st.just("backfill"), symbol_index, st.sampled_from(CANDLE_INTERVALS),
        st.integers(-400_000, 400_000),
    ),
    st.tuples(
        st.just("recent"), symbol_index, st.sampled_from(CANDLE_INTERVALS), st.integers(-1, 5)
    ),
    st.tuples(
        st.just("add_alert"), st.integers(0, 5), symbol_index,
        st.sampled_from(["above", "below", "below", "up"]),
        st.one_of(st.integers(1, 10**6), st.sampled_from([0.0, -1.0, math.inf, 2.5])),
    ),
    st.tuples(st.just("remove_alert"), st.integers(0, 5)),
    st.sampled_from(
        [("take_ready",), ("take_overflowed",), ("take_fired",), ("stats",), ("next_deadline",), ("checkpoint",)]
    ),
    st.tuples(st.sampled_from(["queued", "subscriptions"]), conn_id),
    st.tuples(st.sampled_from(["latest", "is_hf", "ring_range"]), symbol_index),
    *[
        st.tuples(
            st.just("resume"), st.one_of(st.integers(1, 3), conn_id), st.sampled_from([0, 0, 1, 1, 2, 3]),
            st.one_of(st.integers(0, 40), st.integers(0, 40), st.sampled_from([-1, 2**64, True, 1.0])),
            st.sampled_from([True, True, True, False]),
        )
    ] * 4,
]
ops = st.sampled_from(WEIGHTED_OPS).flatmap(lambda strategy: strategy)


class Driver:
    """Turns abstract operations into concrete calls (the same calls for both cores)."""

    def __init__(self, universe: list[tuple[str, int, int]]) -> None:
        self.universe = universe
        self.now_ms = 1000
        self.ts = 10**12

    def name(self, i: int) -> str:
        return self.universe[i][0] if i < len(self.universe) else UNKNOWN

    def decimals(self, i: int) -> tuple[int, int]:
        return self.universe[i][1:] if i < len(self.universe) else (2, 2)

    def tick(self, spec: tuple) -> Any:
        sym, pkind, punits, skind, sunits, step = spec
        pd, sd = self.decimals(sym)
        price: Any = punits / 10.0**pd
        price = {
            "extra": (punits * 10 + 3) / 10.0 ** (pd + 1),
            "zero": 0.0,
            "neg": -price,
            "nan": math.nan,
            "inf": math.inf,
            "int": punits,
            "bool": True,
            "huge": 10**400,
        }.get(pkind, price)
        size: Any = sunits / 10.0**sd
        size = {
            "extra": (sunits * 10 + 7) / 10.0 ** (sd + 1),
            "neg": -1.0 - size,
            "negzero": -0.0,
            "int": sunits,
            "str": "1",
        }.get(skind, size)
        if step == "shape":
            return (self.name(sym), price, size)
        if step == "badts":
            return (self.name(sym), price, size, -1)
        if step < 0:  # earlier than the previous tick: rejected, so the clock stays
            return [self.name(sym), price, size, self.ts + step]
        self.ts += step
        return [self.name(sym), price, size, self.ts]

    def concrete(self, op: tuple) -> tuple:
        """The call, as (method name, args); also advances the clock."""
        kind = op[0]
        if kind == "ingest":
            self.now_ms += op[2]
            return ("ingest", ([self.tick(t) for t in op[1]], self.now_ms))
        if kind == "flush":
            self.now_ms += op[1]
            return ("flush", (self.now_ms,))
        if kind == "subscribe":
            _, cid, syms, mode, interval = op
            return ("subscribe", (cid, [self.name(s) for s in syms], mode, interval, self.now_ms))
        if kind == "unsubscribe":
            return ("unsubscribe", (op[1], [self.name(s) for s in op[2]]))
        if kind == "backfill":
            return ("backfill", (self.name(op[1]), op[2], self.ts + op[3]))
        if kind == "recent":
            return ("recent_candles", (self.name(op[1]), op[2], op[3]))
        if kind == "add_alert":
            _, alert_id, sym, direction, level = op
            if isinstance(level, int):
                level = level / 10.0 ** self.decimals(sym)[0]
            return ("add_alert", (alert_id, self.name(sym), direction, level))
        if kind == "take_overflowed":
            return ("take_overflowed", (self.now_ms,))
        if kind == "next_deadline":
            return ("next_deadline_ms", ())
        if kind == "is_hf":
            return ("is_high_frequency", (self.name(op[1]),))
        if kind == "ring_range":
            return ("ring_range", (self.name(op[1]),))
        if kind == "resume":
            _, cid, sym, last_seq, epoch_matches = op
            return ("resume", (cid, self.name(sym), last_seq, epoch_matches))
        if kind == "latest":
            return ("latest", (self.name(op[1]),))
        return (kind, tuple(op[1:]))


def outcome(core: Any, method: str, args: tuple) -> str:
    try:
        result = getattr(core, method)(*args)
    except Exception as exc:  # noqa: BLE001 - the exception is the output being compared
        return repr(
            (
                "raised", type(exc).__module__, type(exc).__name__, str(exc),
                getattr(exc, "errors", None), getattr(exc, "symbol", None),
            )
        )
    return repr(("ok", result))


@given(
    universe=universes,
    config=configs,
    prologue=st.lists(valid_subscribe, min_size=1, max_size=4),
    operations=st.lists(ops, min_size=20, max_size=100),
)
def test_rust_and_python_agree(cores, universe, config, prologue, operations):
    rust_mod, python_mod = cores
    r = rust_mod.Core(universe, **config)
    p = python_mod.Core(universe, **config)
    driver = Driver(universe)
    for _ in range(3):
        assert r.connect() == p.connect()
    for step, op in enumerate(prologue + operations):
        method, args = driver.concrete(op)
        note(f"{step}: {method}{args!r}")
        got_rust = outcome(r, method, args)
        got_python = outcome(p, method, args)
        event(f"{method} {'raised' if 'raised' in got_python[:12] else 'ok'}")
        if method == "drain" and '"type":"gap"' in got_python:
            event("recovered from degraded with a gap")
        if method == "drain" and '"type":"degraded"' in got_python:
            event("degraded" if config.get("high_water_frames") else "degraded by the age rule")
        if method == "resume" and got_python.startswith("('ok', (["):
            event("resume: " + ("gap " + got_python.rsplit("'", 2)[-2] if "], None" not in got_python else "resumed with frames" if "(['" in got_python else "resumed, nothing missed"))
        assert got_rust == got_python, f"step {step}: {method}{args!r}"
    for sym, _, _ in universe:
        if p.is_high_frequency(sym):
            event("a symbol ended high-frequency")
    stats = p.stats()
    event(f"frames queued: {min(stats['frames_queued'], 40) // 10 * 10}+")
    if stats["dropped"]:
        event("frames were dropped")
    for cid in range(1, 8):
        assert outcome(r, "drain", (cid, 10**6)) == outcome(p, "drain", (cid, 10**6)), cid
    for method in ("stats", "take_ready", "take_fired", "next_deadline_ms"):
        assert outcome(r, method, ()) == outcome(p, method, ()), method
    over = (driver.now_ms + 10**6,)
    assert outcome(r, "take_overflowed", over) == outcome(p, "take_overflowed", over)


@given(
    symbols=st.lists(
        st.tuples(
            st.sampled_from(["A", "B", "", "a b", "x" * 33, "é", 'q"']),
            st.integers(-1, 13),
            st.integers(-1, 13),
        ),
        max_size=3,
    ),
    config=st.fixed_dictionaries(
        {},
        optional={
            "high_freq_per_s": st.sampled_from([0, -1.0, 0.5, math.nan, math.inf, 20]),
            "max_queue_frames": st.integers(-1, 2),
            "max_queue_bytes": st.integers(-1, 2),
            "max_symbols_per_connection": st.integers(-1, 2),
            "max_ts_skew_ms": st.sampled_from([None, -1, 0, 1, 2**62]),
            "resume_window_ms": st.integers(-1, 2),
            "resume_max_ticks": st.integers(-1, 2),
            "high_water_frames": st.sampled_from([None, -1, 0, 1, 2]),
            "low_water_frames": st.integers(-1, 2),
            "degrade_interval_ms": st.sampled_from([9, 10, 60_000, 60_001]),
            "slow_consumer_grace_ms": st.sampled_from([-1, 0, 1, 5000]),
            "degrade_after_ms": st.sampled_from([None, -1, 0, 1, 500]),
            "candle_capacity": st.dictionaries(
                st.sampled_from(["1s", "1m", "2m"]), st.integers(-1, 2), max_size=1
            ),
        },
    ),
)
def test_constructors_agree(cores, symbols, config):
    rust_mod, python_mod = cores

    def build(mod: Any) -> str:
        try:
            core = mod.Core(symbols, **config)
        except Exception as exc:  # noqa: BLE001 - the exception is the output being compared
            return repr((type(exc).__name__, str(exc)))
        return repr(("ok", core.symbols()))

    assert build(rust_mod) == build(python_mod)


@given(units=st.integers(0, 2**53 - 1), decimals=st.integers(0, 12))
def test_format_units_agree(cores, units, decimals):
    rust_mod, python_mod = cores
    assert rust_mod.format_units(units, decimals) == python_mod.format_units(units, decimals)


degrade_configs = st.tuples(
    st.sampled_from([2, 3, 6, 20]), st.sampled_from([0, 1, 5]), st.sampled_from([10, 50, 1000]),
    st.sampled_from([1.0, 6, 20.0]), st.sampled_from([8, 30, 10_000]),
    st.sampled_from([None, None, 1, 50, 300]),
).map(lambda t: {
    "high_water_frames": t[0], "low_water_frames": min(t[1], t[0] - 1), "degrade_interval_ms": t[2],
    "high_freq_per_s": t[3], "max_queue_frames": t[4],
    **({} if t[5] is None else {"degrade_after_ms": t[5]}),
})
DEGRADE_OPS = [
    valid_subscribe, good_ingest, good_ingest, good_ingest,
    st.tuples(st.just("flush"), st.integers(0, 200)),
    st.tuples(st.just("drain"), st.integers(1, 3), st.sampled_from([1, 2, 5, 1024])),
    st.tuples(st.just("drain"), st.integers(1, 3), st.sampled_from([1, 2, 5, 1024])),
    st.tuples(st.just("push"), st.integers(1, 3), st.just("{}")),
    st.tuples(st.just("unsubscribe"), st.integers(1, 3), st.lists(symbol_index, max_size=2)),
    st.tuples(st.just("subscriptions"), st.integers(1, 3)),
    st.tuples(
        st.just("resume"), st.integers(1, 3), st.sampled_from([0, 1, 2]), st.integers(0, 30), st.just(True)
    ),
]


@given(
    universe=universes,
    config=degrade_configs,
    prologue=st.lists(valid_subscribe, min_size=1, max_size=4),
    operations=st.lists(st.sampled_from(DEGRADE_OPS).flatmap(lambda s: s), min_size=20, max_size=80),
)
def test_degrade_and_recover_decisions_agree(cores, universe, config, prologue, operations):
    """Slow consumers: both cores degrade and recover the same connections at the same calls,
    with the same frames (``degraded``, conflated ticks, ``gap``) and subscriptions."""
    rust_mod, python_mod = cores
    r = rust_mod.Core(universe, **config)
    p = python_mod.Core(universe, **config)
    driver = Driver(universe)
    for _ in range(3):
        assert r.connect() == p.connect()
    for step, op in enumerate(prologue + operations):
        method, args = driver.concrete(op)
        note(f"{step}: {method}{args!r}")
        got_rust = outcome(r, method, args)
        got_python = outcome(p, method, args)
        if '"type":"degraded"' in got_python:
            event("degraded, the age rule on" if "degrade_after_ms" in config else "degraded")
        if '"type":"gap"' in got_python:
            event("recovered with a gap")
        if method == "subscriptions" and "'conflate'" in got_python:
            event("subscriptions while degraded")
        assert got_rust == got_python, f"step {step}: {method}{args!r}"
    for cid in range(1, 4):
        assert outcome(r, "drain", (cid, 10**6)) == outcome(p, "drain", (cid, 10**6)), cid
        assert outcome(r, "subscriptions", (cid,)) == outcome(p, "subscriptions", (cid,)), cid
    for method in ("stats", "take_ready", "next_deadline_ms"):
        assert outcome(r, method, ()) == outcome(p, method, ()), method
    over = (driver.now_ms + 10**6,)
    assert outcome(r, "take_overflowed", over) == outcome(p, "take_overflowed", over)


over_limit_configs = st.tuples(
    st.sampled_from([3, 4, 8, 60]), st.sampled_from([400, 1000, 8 * 1024 * 1024]),
    st.sampled_from([0, 50, 400, 5000]), st.sampled_from([None, 2, 3]), st.sampled_from([1.0, 20.0]),
    st.sampled_from([None, 1, 60, 300]),
).map(lambda t: {
    "max_queue_frames": t[0], "max_queue_bytes": t[1], "slow_consumer_grace_ms": t[2],
    "high_freq_per_s": t[4],
    **({} if t[3] is None or t[3] >= t[0] else {"high_water_frames": t[3], "low_water_frames": 1}),
    **({} if t[5] is None else {"degrade_after_ms": t[5]}),
})
OVER_LIMIT_OPS = [
    valid_subscribe, good_ingest, good_ingest, good_ingest,
    st.tuples(st.just("flush"), st.integers(0, 300)),
    st.tuples(st.just("drain"), st.integers(1, 3), st.sampled_from([1, 1, 2, 1024])),
    st.just(("take_overflowed",)),
    st.just(("take_overflowed",)),
    st.tuples(st.just("push"), st.integers(1, 3), st.sampled_from(["{}", "x" * 100])),
    st.tuples(st.just("unsubscribe"), st.integers(1, 3), st.lists(symbol_index, max_size=2)),
    st.tuples(st.sampled_from(["queued", "subscriptions"]), st.integers(1, 3)),
    st.tuples(
        st.just("resume"), st.integers(1, 3), st.sampled_from([0, 1, 2]), st.integers(0, 30), st.just(True)
    ),
]


@given(
    universe=universes,
    config=over_limit_configs,
    prologue=st.lists(valid_subscribe, min_size=1, max_size=4),
    operations=st.lists(st.sampled_from(OVER_LIMIT_OPS).flatmap(lambda s: s), min_size=20, max_size=80),
)
def test_over_limit_and_close_decisions_agree(cores, universe, config, prologue, operations):
    """Over the hard limit: both cores drop the same market data, recover the same connections
    with the same ``gap`` frames, and report the same ones to close at the same clock."""
    rust_mod, python_mod = cores
    r = rust_mod.Core(universe, **config)
    p = python_mod.Core(universe, **config)
    driver = Driver(universe)
    for _ in range(3):
        assert r.connect() == p.connect()
    for step, op in enumerate(prologue + operations):
        method, args = driver.concrete(op)
        note(f"{step}: {method}{args!r}")
        got_rust = outcome(r, method, args)
        got_python = outcome(p, method, args)
        if method == "drain" and '"type":"gap"' in got_python:
            event("recovered with a gap")
        if '"type":"degraded"' in got_python and "high_water_frames" not in config:
            event("degraded by the age rule")
        if method == "take_overflowed" and got_python != repr(("ok", [])):
            event("closed: " + ("at once" if config["slow_consumer_grace_ms"] == 0 else "after the grace"))
        assert got_rust == got_python, f"step {step}: {method}{args!r}"
    if p.stats()["dropped"]:
        event("frames were dropped")
    for cid in range(1, 4):
        assert outcome(r, "drain", (cid, 10**6)) == outcome(p, "drain", (cid, 10**6)), cid
    over = (driver.now_ms + 10**6,)
    assert outcome(r, "take_overflowed", over) == outcome(p, "take_overflowed", over)
    assert outcome(r, "stats", ()) == outcome(p, "stats", ())
