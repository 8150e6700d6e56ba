"""``Core``: the composition root of the pure-Python twin of ``tickfan._core``.

The behaviour is specified in ``tickfan/_core.pyi``; differential tests hold this twin and the
Rust core to the same outputs, byte for byte.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from math import inf

from tickfan.errors import InvalidArgument, TooManySymbols, UnknownConnection
from tickfan.core._python import candles as candle_mod
from tickfan.core._python import frame as frame_mod
from tickfan.core._python.alerts import Alerts, Fired
from tickfan.core._python.batch import BATCH_KIND, CONFLATE_KIND, Group, Windows
from tickfan.core._python.candles import Candle, capacities, to_floats
from tickfan.core._python.fanout import (
    AUTO, BATCH, CONFLATE, DEFAULT_INTERVAL_MS, MODES, TICK, Sub, SymbolState,
)
from tickfan.core._python.queue import Conn, Outbound
from tickfan.core._python.ring import EPOCH, EVICTED
from tickfan.core._python.tick import as_float, validate
from tickfan.core._python.universe import MAX_INTERVAL_MS, MIN_INTERVAL_MS, Universe

_INTERVAL_INDEX = {name: i for i, name in enumerate(candle_mod.INTERVALS)}

BatchCache = dict[tuple[int, int, int], str]
SymbolCheckpoint = tuple[str, int, int, list[tuple[int, int, int]], list[tuple[int, list[tuple[int, int, int, int, int, int]]]]]


class Core:
    """Symbol universe, tick ingest, subscriptions, fan-out queues, candles and price alerts.

    Not thread-safe: one owner (the server's event loop) calls it.
    """

    def __init__(
        self,
        symbols: Sequence[tuple[str, int, int]],
        *,
        high_freq_per_s: float = 20.0,
        candle_capacity: Mapping[str, int] | None = None,
        max_queue_frames: int = 10_000,
        max_queue_bytes: int = 8 * 1024 * 1024,
        max_symbols_per_connection: int = 100,
        max_ts_skew_ms: int | None = None,
        resume_window_ms: int = 60_000,
        resume_max_ticks: int = 100_000,
        high_water_frames: int | None = None,
        low_water_frames: int = 0,
        degrade_interval_ms: int = 1000,
        slow_consumer_grace_ms: int = 0,
        degrade_after_ms: int | None = None,
    ) -> None:
        self._universe = Universe(symbols)
        caps = capacities(candle_capacity)
        threshold = as_float(high_freq_per_s)
        if threshold is None or not (0 < threshold < inf):
            raise InvalidArgument("high_freq_per_s must be a finite number > 0")
        if max_queue_frames < 1 or max_queue_bytes < 1:
            raise InvalidArgument("queue limits must be >= 1")
        if max_symbols_per_connection < 1:
            raise InvalidArgument("max_symbols_per_connection must be >= 1")
        if max_ts_skew_ms is not None and max_ts_skew_ms < 0:
            raise InvalidArgument("max_ts_skew_ms must be >= 0")
        if resume_window_ms < 1:
            raise InvalidArgument("resume_window_ms must be >= 1")
        if resume_max_ticks < 1:
            raise InvalidArgument("resume_max_ticks must be >= 1")
        if high_water_frames is not None and high_water_frames < 1:
            raise InvalidArgument("high_water_frames must be >= 1")
        if low_water_frames < 0 or (high_water_frames is not None and low_water_frames >= high_water_frames):
            raise InvalidArgument("low_water_frames must be >= 0 and below high_water_frames")
        if not MIN_INTERVAL_MS <= degrade_interval_ms <= MAX_INTERVAL_MS:
            raise InvalidArgument(
                f"degrade_interval_ms must be between {MIN_INTERVAL_MS} and {MAX_INTERVAL_MS}"
            )
        if slow_consumer_grace_ms < 0:
            raise InvalidArgument("slow_consumer_grace_ms must be >= 0")
        if degrade_after_ms is not None and degrade_after_ms < 1:
            raise InvalidArgument("degrade_after_ms must be >= 1")
        # With the age rule, a degraded connection stays so for one conflation window at least.
        self._recover_hold = 0 if degrade_after_ms is None else int(degrade_interval_ms)
        self._low_water = int(low_water_frames)
        self._degrade_interval = int(degrade_interval_ms)
        self._ring_window_ms = int(resume_window_ms)
        self._ring_max_ticks = int(resume_max_ticks)
        self._max_ts_skew_ms = None if max_ts_skew_ms is None else int(max_ts_skew_ms)
        self._high = threshold
        self._low = threshold / 2
        self._max_symbols = int(max_symbols_per_connection)
        self._syms = [SymbolState(i, spec, caps) for i, spec in enumerate(self._universe.specs)]
        self._last_ts = [-1] * len(self._syms)
        self._out = Outbound(
            int(max_queue_frames), int(max_queue_bytes),
            inf if high_water_frames is None else int(high_water_frames),
            int(slow_consumer_grace_ms),
            None if degrade_after_ms is None else int(degrade_after_ms),
        )
        self._windows = Windows()
        self._alerts = Alerts(len(self._syms))
        self._ticks_in = 0
        self._n_subs = 0

    def symbols(self) -> list[tuple[str, int, int]]:
        return list(self._universe.specs)

    # --- ticks --------------------------------------------------------------------------

    def ingest(self, ticks: Sequence[tuple[str, float, float, int]], now_ms: int) -> int:
        if isinstance(ticks, (str, bytes)):
            raise TypeError("ticks must be a sequence of [symbol, price, size, ts]")
        parsed = validate(self._universe, self._last_ts, ticks, now_ms, self._max_ts_skew_ms)
        syms = self._syms
        last_ts = self._last_ts
        out = self._out
        out.advance(now_ms)
        windows = self._windows
        alerts = self._alerts
        high, low = self._high, self._low
        cache: BatchCache = {}
        window_ms, max_ticks = self._ring_window_ms, self._ring_max_ticks
        for s, pu, su, ts in parsed:
            sym = syms[s]
            seq = sym.seq = sym.seq + 1
            sym.ring.push(seq, ts, pu, su, window_ms, max_ticks)
            last_ts[s] = ts
            sym.latest = (seq, ts, pu, su)
            sym.frame = None
            candle_mod.update(sym.rings, ts, pu, su)
            rate = sym.rate.add(now_ms)
            # 1. auto mode switch
            if sym.hf:
                if rate <= low:
                    self._stop_high_frequency(sym, seq, cache)
            elif rate > high:
                sym.hf = True
                sym.direct = None
                for sub in sym.auto_subs.values():
                    sub.next_seq = seq
            if sym.n_batch or (sym.hf and sym.auto_subs):
                sym.record(seq, ts, pu, su)
            # 2. market_data to tick-mode and auto-tick connections, then leading conflate ticks
            direct = sym.direct if sym.direct is not None else sym.receivers()
            if direct:
                out.put_many(direct, sym.tick_frame(), s, seq)
            if sym.conflate_groups:
                for group in sym.conflate_groups.values():
                    if group.token is None:
                        text = sym.tick_frame()
                        for sub in group.members.values():
                            out.put_data(sub.conn, text, s, seq, seq)
                            sub.received = seq
                        group.last_sent = seq
                        windows.open(group, now_ms + group.interval_ms)
            # 3. batch windows opened
            if sym.batch_groups:
                for group in sym.batch_groups.values():
                    if group.token is None and group.active():
                        windows.open(group, now_ms + group.interval_ms)
            if alerts.watched(s):
                alerts.check(s, sym.name, seq, ts, pu / sym.price_p)
        self._ticks_in += len(parsed)
        out.note_aged()
        if out.to_degrade:
            self._degrade_noted()
        return len(parsed)

    def _stop_high_frequency(self, sym: SymbolState, seq: int, cache: BatchCache) -> None:
        """The symbol's rate fell to half the threshold at tick ``seq``: auto subscribers get
        their pending range now and this tick as ``market_data``."""
        sym.hf = False
        sym.direct = None
        for conn_id in sorted(sym.auto_subs):
            sub = sym.auto_subs[conn_id]
            if sub.next_seq < seq:
                self._out.put_data(sub.conn, sym.batch_frame(sub.next_seq, seq, cache), sym.index, sub.next_seq, seq - 1)
            sub.next_seq = seq
        for group in sym.batch_groups.values():
            if group.token is not None and not group.active():
                Windows.discard(group)

    # --- checkpoints ----------------------------------------------------------------------

    def checkpoint(self) -> list[SymbolCheckpoint]:
        out: list[SymbolCheckpoint] = []
        for sym in self._syms:
            if sym.seq == 0:
                continue
            candles = [
                (ring.evicted_open_ms, [(c[0], c[1], c[2], c[3], c[4], c[5]) for c in ring.candles])
                for ring in sym.rings
            ]
            out.append((sym.name, sym.seq, sym.ring.base, list(sym.ring.ticks), candles))
        return out

    def restore(self, state: Sequence[SymbolCheckpoint]) -> None:
        if self._ticks_in or any(sym.seq for sym in self._syms):
            raise InvalidArgument("restore needs a core that has applied no tick")
        loaded = []
        for name, seq, base, ticks, candles in state:
            sym = self._syms[self._universe.lookup(name)]
            ticks = [(int(ts), int(pu), int(su)) for ts, pu, su in ticks]
            if seq < 1 or not ticks or base < 1 or base + len(ticks) - 1 != seq or len(candles) != len(sym.rings):
                raise InvalidArgument(f"invalid checkpoint of '{sym.name}'")
            loaded.append((sym, int(seq), int(base), ticks, candles))
        window_ms, max_ticks = self._ring_window_ms, self._ring_max_ticks
        for sym, seq, base, ticks, candles in loaded:
            ts, pu, su = ticks[-1]
            sym.seq = seq
            sym.latest = (seq, ts, pu, su)
            sym.frame = None
            self._last_ts[sym.index] = ts
            ring = sym.ring
            ring.base, ring.ticks = base, deque(ticks)
            while len(ring.ticks) > max_ticks or ts - ring.ticks[0][0] >= window_ms:
                ring.ticks.popleft()
                ring.base += 1
            for held, (evicted, bars) in zip(sym.rings, candles):
                held.evicted_open_ms = int(evicted)
                held.candles.clear()
                for bar in bars:
                    if len(held.candles) == held.candles.maxlen:
                        held.evicted_open_ms = held.candles[0][0]
                    held.candles.append([*(int(v) for v in bar), None])

    def latest(self, symbol: str) -> tuple[int, int, float, float] | None:
        sym = self._syms[self._universe.lookup(symbol)]
        if sym.latest is None:
            return None
        seq, ts, pu, su = sym.latest
        return (seq, ts, pu / sym.price_p, su / sym.size_p)

    def is_high_frequency(self, symbol: str) -> bool:
        return self._syms[self._universe.lookup(symbol)].hf

    # --- connections and subscriptions --------------------------------------------------

    def connect(self) -> int:
        return self._out.connect()

    def disconnect(self, conn_id: int) -> None:
        conn = self._out.remove(conn_id)
        if conn is None:
            return
        for s, sub in conn.subs.items():
            self._leave(self._syms[s], sub, None)
        self._n_subs -= len(conn.subs)
        conn.subs.clear()

    def _conn(self, conn_id: int) -> Conn:
        conn = self._out.conns.get(conn_id)
        if conn is None:
            raise UnknownConnection(f"unknown connection {conn_id}")
        return conn

    def subscribe(
        self,
        conn_id: int,
        symbols: Sequence[str],
        mode: str = "auto",
        interval_ms: int | None = None,
        now_ms: int = 0,
    ) -> tuple[list[str], list[str], list[str]]:
        names = _names(symbols)
        conn = self._conn(conn_id)
        if mode not in MODES:
            raise InvalidArgument("mode must be one of tick, batch, conflate, auto")
        if mode == TICK:
            interval = 0
        elif interval_ms is None:
            interval = DEFAULT_INTERVAL_MS[mode]
        elif (
            not isinstance(interval_ms, int)
            or isinstance(interval_ms, bool)
            or not MIN_INTERVAL_MS <= interval_ms <= MAX_INTERVAL_MS
        ):
            raise InvalidArgument(
                f"interval_ms must be between {MIN_INTERVAL_MS} and {MAX_INTERVAL_MS}"
            )
        else:
            interval = int(interval_ms)
        index = self._universe.index
        known: list[tuple[str, int]] = []
        unknown: list[str] = []
        seen: set[str] = set()
        for name in names:
            if name in seen:
                continue
            seen.add(name)
            s = index.get(name)
            if s is None:
                unknown.append(name)
            else:
                known.append((name, s))
        new = sum(1 for _, s in known if s not in conn.subs)
        if len(conn.subs) + new > self._max_symbols:
            raise TooManySymbols(f"at most {self._max_symbols} symbols per connection")
        self._out.advance(now_ms)
        snapshots: list[str] = []
        cache: BatchCache = {}
        for _, s in known:
            sym = self._syms[s]
            old = conn.subs.get(s)
            if old is None:
                conn.subs[s] = self._join(sym, conn, mode, interval, sym.seq)
                self._n_subs += 1
                if sym.latest is not None:
                    snapshots.append(sym.tick_frame())
            else:
                # A re-subscription replaces the old one (even an identical one): leave, then join.
                conn.restore.pop(s, None)
                received = self._leave(sym, old, cache)
                conn.subs[s] = self._join(sym, conn, mode, interval, received)
        self._out.note_aged()
        if self._out.to_degrade:
            self._degrade_noted()
        return [name for name, _ in known], unknown, snapshots

    def _join(self, sym: SymbolState, conn: Conn, mode: str, interval: int, received: int) -> Sub:
        sub = Sub(conn, mode, interval, sym.seq + 1, received)
        if mode == TICK:
            sym.tick_subs[conn.id] = sub
            sym.direct = None
        elif mode == CONFLATE:
            group = sym.conflate_groups.get(interval)
            if group is None:
                group = sym.conflate_groups[interval] = Group(sym, CONFLATE_KIND, interval)
            group.add(sub)
        else:
            if mode == AUTO:
                sym.auto_subs[conn.id] = sub
                sym.direct = None
            else:
                sym.n_batch += 1
            group = sym.batch_groups.get(interval)
            if group is None:
                group = sym.batch_groups[interval] = Group(sym, BATCH_KIND, interval)
            group.add(sub)
        return sub

    def _leave(self, sym: SymbolState, sub: Sub, cache: BatchCache | None) -> int:
        """Remove ``sub`` from the symbol's structures. With a ``cache`` (a re-subscription),
        its pending batch range is queued first. Returns the newest seq it has been sent."""
        mode = sub.mode
        conn_id = sub.conn.id
        if mode == TICK:
            del sym.tick_subs[conn_id]
            sym.direct = None
            return sym.seq
        batching = mode == BATCH or (mode == AUTO and sym.hf)
        if cache is not None and batching and sub.next_seq <= sym.seq:
            self._out.put_data(
                sub.conn, sym.batch_frame(sub.next_seq, sym.seq + 1, cache), sym.index, sub.next_seq, sym.seq
            )
        if mode == CONFLATE:
            groups = sym.conflate_groups
        else:
            groups = sym.batch_groups
            if mode == AUTO:
                del sym.auto_subs[conn_id]
                sym.direct = None
            else:
                sym.n_batch -= 1
        group = groups[sub.interval_ms]
        group.remove(sub)
        if not group.members:
            Windows.discard(group)
            del groups[sub.interval_ms]
        elif group.token is not None and not group.active():
            Windows.discard(group)
        return sub.received if mode == CONFLATE else sym.seq

    def unsubscribe(self, conn_id: int, symbols: Sequence[str]) -> list[str]:
        names = _names(symbols)
        conn = self._conn(conn_id)
        index = self._universe.index
        dropped: list[str] = []
        for name in names:
            s = index.get(name)
            if s is None:
                continue
            sub = conn.subs.pop(s, None)
            if sub is None:
                continue
            conn.restore.pop(s, None)
            self._leave(self._syms[s], sub, None)
            self._n_subs -= 1
            dropped.append(name)
        return dropped

    def subscriptions(self, conn_id: int) -> list[tuple[str, str, int]]:
        conn = self._conn(conn_id)
        syms = self._syms
        return [
            (syms[s].name, sub.mode, sub.interval_ms)
            for s, sub in sorted(conn.subs.items(), key=lambda kv: kv[0])
        ]

    # --- resume -------------------------------------------------------------------------

    def ring_range(self, symbol: str) -> tuple[int, int] | None:
        return self._syms[self._universe.lookup(symbol)].ring.range()

    def resume(
        self, conn_id: int, symbol: str, last_seq: int, epoch_matches: bool
    ) -> tuple[list[str], tuple[int, int | None, str] | None]:
        conn = self._conn(conn_id)
        s = self._universe.lookup(symbol)
        sub = conn.subs.get(s)
        if sub is None:
            raise InvalidArgument(f"not subscribed to '{symbol}'")
        if not isinstance(last_seq, int) or isinstance(last_seq, bool) or last_seq < 0:
            raise InvalidArgument("last_seq must be an integer >= 0")
        last = min(last_seq, 2**63 - 1)
        sym = self._syms[s]
        seq = sym.seq
        if not epoch_matches:
            return [], (last + 1, seq if seq > 0 else None, EPOCH)
        if last >= seq:
            return [], None
        evicted = (last + 1, seq, EVICTED)
        held = sym.ring.range()
        if held is None or held[0] > last + 1:
            return [], evicted
        mode = sub.mode
        if mode == CONFLATE:
            frames = [sym.tick_frame()]
        elif mode == BATCH or (mode == AUTO and sym.hf):
            ticks = sym.ring.slice(last + 1, seq)
            frames = [
                frame_mod.market_data_batch(
                    sym.name, last + 1, sym.price_decimals, sym.size_decimals,
                    [t[0] for t in ticks], [t[1] for t in ticks], [t[2] for t in ticks],
                )
            ]
        else:
            name, pd, sd = sym.name, sym.price_decimals, sym.size_decimals
            frames = [
                frame_mod.market_data(name, n, ts, pu, pd, su, sd)
                for n, (ts, pu, su) in enumerate(sym.ring.slice(last + 1, seq), last + 1)
            ]
        out = self._out
        if (
            len(conn.frames) + len(frames) > out.max_frames
            or conn.bytes + sum(map(len, frames)) > out.max_bytes
        ):
            return [], evicted
        return frames, None

    # --- outbound queues ----------------------------------------------------------------

    def push(self, conn_id: int, frame: str) -> bool:
        if not isinstance(frame, str):
            raise TypeError("frame must be a str")
        ok = self._out.put(self._conn(conn_id), frame)
        if self._out.to_degrade:
            self._degrade_noted()
        return ok

    def drain(self, conn_id: int, max_frames: int = 1024) -> list[str]:
        conn = self._out.conns.get(conn_id)
        if conn is None:
            return []
        out = self._out
        frames = out.drain(conn, max_frames)
        if conn.over and (skipped := out.leaves_over(conn)) is not None:
            out.restart_age(conn)
            syms = self._syms
            for s in sorted(skipped):
                first, last = skipped[s]
                out.put(conn, frame_mod.gap(syms[s].name, first, last, EVICTED))
        if (
            conn.degraded and len(conn.frames) <= self._low_water
            and out.clock - conn.degraded_at >= self._recover_hold
        ):
            self._recover(conn)
        return frames

    # --- slow consumers: degrade and recover ---------------------------------------------

    def _degrade_noted(self) -> None:
        """Connections whose queue reached the high-water mark, or noted by the age rule
        (ascending id): their tick and auto subscriptions become conflate ones, and they get one
        ``degraded`` frame."""
        out = self._out
        ids = sorted(out.to_degrade)
        out.to_degrade.clear()
        cache: BatchCache = {}
        for conn_id in ids:
            conn = out.conns.get(conn_id)
            if conn is None:
                continue
            conn.noted = False
            if conn.over or conn.overflowed:
                # Its market data is being dropped already; noted again by the next frame
                # queued at the mark once it has drained.
                continue
            conn.degraded = True
            conn.degraded_at = out.clock
            names: list[str] = []
            for s in sorted(conn.subs):
                sub = conn.subs[s]
                if sub.mode != TICK and sub.mode != AUTO:
                    continue
                sym = self._syms[s]
                self._leave(sym, sub, cache)
                conn.subs[s] = self._join(sym, conn, CONFLATE, self._degrade_interval, sym.seq)
                conn.restore[s] = (sub.mode, sub.interval_ms, sym.seq + 1)
                names.append(sym.name)
            if names:
                out.put(conn, frame_mod.degraded(names))

    def _recover(self, conn: Conn) -> None:
        """The queue drained to the low-water mark (and the hold passed): back to the subscribed
        modes, with a ``gap`` per symbol for the ticks conflation may have skipped."""
        conn.degraded = False
        self._out.restart_age(conn)
        for s in sorted(conn.restore):
            mode, interval, skipped = conn.restore[s]
            sym = self._syms[s]
            self._leave(sym, conn.subs[s], None)
            conn.subs[s] = self._join(sym, conn, mode, interval, sym.seq)
            if skipped <= sym.seq:
                self._out.put(conn, frame_mod.gap(sym.name, skipped, sym.seq, EVICTED))
        conn.restore.clear()

    def queued(self, conn_id: int) -> tuple[int, int]:
        conn = self._conn(conn_id)
        return (len(conn.frames), conn.bytes)

    def take_ready(self) -> list[int]:
        ready = sorted(self._out.ready)
        self._out.ready.clear()
        return ready

    def take_overflowed(self, now_ms: int = 0) -> list[int]:
        return self._out.take_overflowed(now_ms)

    def flush(self, now_ms: int) -> None:
        windows = self._windows
        out = self._out
        out.advance(now_ms)
        cache: BatchCache = {}
        while (group := windows.pop_due(now_ms)) is not None:
            sym = group.sym
            latest = sym.seq
            if group.kind == BATCH_KIND:
                hf = sym.hf
                for sub in group.members.values():
                    if sub.next_seq <= latest and (hf or sub.mode == BATCH):
                        out.put_data(
                            sub.conn, sym.batch_frame(sub.next_seq, latest + 1, cache), sym.index,
                            sub.next_seq, latest,
                        )
                        sub.next_seq = latest + 1
                sym.trim()
            elif latest > group.last_sent:
                text = sym.tick_frame()
                for sub in group.members.values():
                    if sub.received < latest:
                        out.put_data(sub.conn, text, sym.index, latest, latest)
                        sub.received = latest
                group.last_sent = latest
                windows.open(group, now_ms + group.interval_ms)
        out.note_aged()
        if out.to_degrade:
            self._degrade_noted()

    def next_deadline_ms(self) -> int | None:
        return self._windows.next_deadline()

    def stats(self) -> dict[str, int]:
        out = self._out
        return {
            "ticks_in": self._ticks_in,
            "frames_queued": out.frames_queued,
            "bytes_queued": out.bytes_queued,
            "dropped": out.dropped,
            "connections": len(out.conns),
            "subscriptions": self._n_subs,
            "alerts": len(self._alerts.armed),
        }

    # --- candles --------------------------------------------------------------------------

    def _ring(self, symbol: str, interval: str) -> tuple[SymbolState, candle_mod.CandleRing]:
        sym = self._syms[self._universe.lookup(symbol)]
        candle_mod.interval_ms(interval)
        return sym, sym.rings[_INTERVAL_INDEX[interval]]

    def backfill(self, symbol: str, interval: str, since_ms: int) -> tuple[list[Candle], bool]:
        sym, ring = self._ring(symbol, interval)
        held, complete = ring.select_since(since_ms)
        return to_floats(held, sym.price_p, sym.size_p), complete

    def recent_candles(self, symbol: str, interval: str, limit: int) -> tuple[list[Candle], bool]:
        sym, ring = self._ring(symbol, interval)
        if limit < 1:
            raise InvalidArgument("limit must be >= 1")
        held, complete = ring.select_recent(limit)
        return to_floats(held, sym.price_p, sym.size_p), complete

    # --- price alerts -------------------------------------------------------------------

    def add_alert(self, alert_id: int, symbol: str, direction: str, level: float) -> None:
        s = self._universe.lookup(symbol)
        if direction not in ("above", "below"):
            raise InvalidArgument("direction must be above or below")
        value = as_float(level)
        if value is None or not (0 < value < inf):
            raise InvalidArgument("level must be a finite number > 0")
        if alert_id in self._alerts.armed:
            raise InvalidArgument(f"alert {alert_id} already exists")
        self._alerts.add(alert_id, s, direction, value)

    def remove_alert(self, alert_id: int) -> bool:
        return self._alerts.remove(alert_id)

    def take_fired(self) -> list[Fired]:
        return self._alerts.take_fired()


def _names(symbols: Sequence[str]) -> list[str]:
    if isinstance(symbols, str):
        raise TypeError("symbols must be a sequence of str, not a str")
    names = list(symbols)
    for name in names:
        if not isinstance(name, str):
            raise TypeError("symbols must be a sequence of str")
    return names
