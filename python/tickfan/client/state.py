"""Sans-I/O channel states: decoded server messages in, events out, outbound messages out.

No sockets, no awaits, no clocks: the asyncio driver (``channel.py``) feeds each state what the
server sent and sends what the state asks for, so every rule here is testable by feeding lists
(``tests/client/test_market_state.py`` does it with hypothesis).

A state has four calls: ``on_open()`` (the socket is authenticated: the messages to send now),
``receive(message)`` (the events it yields), ``on_close()``, and ``ready(message)`` (does this
message prove the session works, so the reconnect backoff can reset).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tickfan.client.events import (
    Backfill,
    Batch,
    Gap,
    InitialNotifications,
    MarkedRead,
    Mode,
    Notification,
    NotificationFrame,
    SeqReset,
    Subscribed,
    Tick,
)

__all__ = ["Wanted", "MarketState", "PassState", "NotificationState", "MetricsState"]

Message = dict[str, Any]


@dataclass(frozen=True)
class Wanted:
    """What the caller asked for one symbol; replayed after every auth."""

    mode: Mode = "auto"
    interval_ms: int | None = None


class MarketState:
    """``/ws/market-data``: subscriptions to replay, seq/epoch tracking, gaps, backfill since.

    Rules (docs/client.md):

    * Ticks: a batch is expanded into the ``Tick``s tick mode would have sent. Within one epoch a
      tick with ``seq <= last`` is a duplicate (the snapshot re-sent after a resubscribe) and is
      skipped (counted in ``duplicates``); ``seq > last + 1`` yields ``Gap(last+1, seq-1)``
      first. No gaps are counted for symbols the caller wants in ``conflate`` mode.
    * Epoch: the ``epoch`` of a ``subscribed`` ack differing from the last one yields
      ``SeqReset`` and forgets every seq (a restarted server numbers from 1 again).
    * Reopen: ``on_open`` sends one ``backfill_request`` (since = the oldest of the last ts seen
      of the wanted symbols, or ``since_ms`` before any tick) *before* the subscribes, so the
      ``Backfill`` events precede the live ticks in wire order without holding ticks back.
    * Degraded: after a ``slow_consumer`` close the driver calls ``degrade()``; subscribes go out
      as ``conflate`` until ``restore()``, and the seq jumps meanwhile are ``Gap(reason="overflow")``.

    * Resume: a reopen subscribes with ``resume`` (the last seq of each wanted symbol that has
      one) and the ``epoch`` it was seen under, so the server sends exactly the missed ticks;
      only the symbols without a last seq get the reopen ``backfill_request``. A server ``gap``
      (``evicted``/``epoch``, or any other reason: all are gaps) is passed on as ``Gap`` and
      queues a candle ``backfill_request`` for that symbol from its last ts seen
      (``take_outbox``, sent by the driver right after). Not while degraded or restoring: the
      overflow gaps and the reopen backfill cover those.
    """

    def __init__(self, *, backfill_interval: str | None = "1s", since_ms: int | None = None) -> None:
        self.wanted: dict[str, Wanted] = {}
        self.backfill_interval = backfill_interval
        self.since_ms = since_ms
        self.epoch: str | None = None
        self.last_seq: dict[str, int] = {}
        self.last_ts: dict[str, int] = {}
        self.duplicates = 0
        self.degraded = False
        self.connected = False
        self._asked_since: dict[str, int] = {}
        self._overflowed: set[str] = set()  # symbols whose next gap is the overflow's
        self._conflate_acked = False
        self._outbox: list[Message] = []

    # --- caller's intent -------------------------------------------------------------------------

    def subscribe(self, symbols: list[str], mode: Mode = "auto", interval_ms: int | None = None) -> list[Message]:
        """Want ``symbols`` in ``mode``; the messages to send now (none while disconnected)."""
        want = Wanted(mode, interval_ms)
        for symbol in symbols:
            self.wanted[symbol] = want
        return [self._subscribe_message(list(dict.fromkeys(symbols)), want)] if self.connected and symbols else []

    def unsubscribe(self, symbols: list[str]) -> list[Message]:
        for symbol in symbols:
            self.wanted.pop(symbol, None)
            self.last_seq.pop(symbol, None)  # ticks missed while unsubscribed are not a gap
        return [{"type": "unsubscribe", "symbols": list(symbols)}] if self.connected and symbols else []

    # --- connection ------------------------------------------------------------------------------

    def on_open(self, *, restoring: bool = False) -> list[Message]:
        self.connected = True
        out: list[Message] = []
        self._outbox = []
        # Not while degraded or restoring from it: conflation already skipped ticks (reported as
        # overflow gaps) and the candle backfill covers them.
        resume = self.epoch is not None and not self.degraded and not restoring
        resumable = {s: self.last_seq[s] for s in self.wanted if s in self.last_seq} if resume else {}
        since = self._backfill_since(exclude=resumable)
        if since is not None and self.backfill_interval:
            symbols, since_ms = since
            self._asked_since = dict.fromkeys(symbols, since_ms)
            out.append({"type": "backfill_request", "symbols": symbols, "since": since_ms, "interval": self.backfill_interval})
        self.since_ms = None
        groups: dict[Wanted, list[str]] = {}
        for symbol, want in self.wanted.items():
            groups.setdefault(self._effective(want), []).append(symbol)
        for want, symbols in groups.items():
            message = self._subscribe_message(symbols, want)
            resume = {s: resumable[s] for s in symbols if s in resumable}
            if resume:
                message["resume"] = resume
                message["epoch"] = self.epoch
            out.append(message)
        return out

    def take_outbox(self) -> list[Message]:
        """Messages ``receive`` decided to send (a candle backfill after a server ``gap``)."""
        out, self._outbox = self._outbox, []
        return out

    def on_close(self) -> None:
        self.connected = False

    def ready(self, message: Any) -> bool:
        return isinstance(message, Subscribed)

    def degrade(self) -> None:
        """Subscribe with ``conflate`` from the next open on (after a ``slow_consumer`` close);
        the first gap of each symbol after it is the overflow's, even once restored."""
        self.degraded = True
        self._conflate_acked = False
        self._overflowed = set(self.wanted)

    @property
    def restorable(self) -> bool:
        """Degraded, and the server has acked the ``conflate`` subscribe: the driver restores
        the wanted modes once the consumer has emptied its queue."""
        return self.degraded and self._conflate_acked

    def restore(self) -> list[Message]:
        """Back to the wanted modes, with a backfill from the last ts seen."""
        if not self.degraded:
            return []
        self.degraded = False
        return self.on_open(restoring=True) if self.connected else []

    # --- server messages -------------------------------------------------------------------------

    def receive(self, message: Any) -> list[Any]:
        if isinstance(message, Tick):
            return self._tick(message)
        if isinstance(message, Batch):
            out: list[Any] = []
            for tick in message.ticks():
                out += self._tick(tick)
            return out
        if isinstance(message, Subscribed):
            events: list[Any] = []
            if message.epoch is not None:
                if self.epoch is not None and message.epoch != self.epoch:
                    events.append(SeqReset(self.epoch, message.epoch))
                    self.last_seq.clear()
                self.epoch = message.epoch
            if self.degraded and message.mode == "conflate":
                self._conflate_acked = True
            events.append(message)
            return events
        if isinstance(message, Backfill):
            since = self._asked_since.pop(message.symbol, None)
            return [message if since is None else _replace(message, since=since)]
        if isinstance(message, Gap):
            if message.to_seq is not None:
                last = self.last_seq.get(message.symbol, 0)
                self.last_seq[message.symbol] = max(last, message.to_seq)
            since = self.last_ts.get(message.symbol)
            if since is not None and self.backfill_interval and message.symbol in self.wanted:
                self._asked_since[message.symbol] = since
                self._outbox.append({"type": "backfill_request", "symbols": [message.symbol], "since": since,
                                     "interval": self.backfill_interval})
            return [message]
        return [message]

    # --- internals -------------------------------------------------------------------------------

    def _tick(self, tick: Tick) -> list[Any]:
        symbol = tick.symbol
        last = self.last_seq.get(symbol)
        out: list[Any] = []
        if last is not None:
            if tick.seq <= last:
                self.duplicates += 1
                return out
            if tick.seq > last + 1 and self._counts_gaps(symbol):
                overflow = self.degraded or symbol in self._overflowed
                out.append(Gap(symbol, last + 1, tick.seq - 1, "overflow" if overflow else "seq"))
        self._overflowed.discard(symbol)
        self.last_seq[symbol] = tick.seq
        if tick.ts > self.last_ts.get(symbol, -1):
            self.last_ts[symbol] = tick.ts
        out.append(tick)
        return out

    def _counts_gaps(self, symbol: str) -> bool:
        want = self.wanted.get(symbol)
        return want is not None and want.mode != "conflate"

    def _effective(self, want: Wanted) -> Wanted:
        return Wanted("conflate", 1000) if self.degraded and want.mode != "conflate" else want

    def _subscribe_message(self, symbols: list[str], want: Wanted) -> Message:
        want = self._effective(want)
        message: Message = {"type": "subscribe", "symbols": symbols, "mode": want.mode}
        if want.interval_ms is not None:
            message["interval_ms"] = want.interval_ms
        return message

    def _backfill_since(self, exclude: dict[str, int]) -> tuple[list[str], int] | None:
        pairs = [(s, self.last_ts.get(s, self.since_ms)) for s in self.wanted if s not in exclude]
        pairs = [(s, t) for s, t in pairs if t is not None]
        if not pairs:
            return None
        return [s for s, _ in pairs], min(t for _, t in pairs)


def _replace(struct: Any, **changes: Any) -> Any:
    import msgspec

    return msgspec.structs.replace(struct, **changes)


class PassState:
    """``/ws/bot-status``: every message is an event; the server re-sends each bot's current
    status after every auth, so a reconnect needs nothing more."""

    def on_open(self) -> list[Message]:
        return []

    def on_close(self) -> None:
        pass

    def ready(self, message: Any) -> bool:
        return True

    def receive(self, message: Any) -> list[Any]:
        return [message]


class MetricsState(PassState):
    """``/ws/performance-metrics``: re-sends ``set_interval`` after every auth when one is set."""

    def __init__(self, interval_ms: int | None = None) -> None:
        self.interval_ms = interval_ms

    def on_open(self) -> list[Message]:
        return [] if self.interval_ms is None else [{"type": "set_interval", "interval_ms": self.interval_ms}]


class NotificationState(PassState):
    """``/ws/notifications``: one ``Notification`` event per notification, each id once.

    The initial list is expanded; after a reconnect it repeats unread notifications already
    delivered, so an id at or below the highest delivered one is skipped (ids increase). The
    driver may also feed a ``GET /api/notifications?after=last_id`` page (``catch_up``) to
    recover what the 50-item initial list cannot hold.
    """

    def __init__(self) -> None:
        self.last_id = 0

    def receive(self, message: Any) -> list[Any]:
        if isinstance(message, InitialNotifications):
            return self._new(message.notifications)
        if isinstance(message, NotificationFrame):
            return self._new([message.notification])
        if isinstance(message, (Notification, MarkedRead)):
            return self._new([message]) if isinstance(message, Notification) else [message]
        return [message]

    def catch_up(self, notifications: list[Notification]) -> list[Any]:
        return self._new(notifications)

    def _new(self, notifications: list[Notification]) -> list[Any]:
        out = []
        for n in notifications:
            if n.id > self.last_id:
                self.last_id = n.id
                out.append(n)
        return out
