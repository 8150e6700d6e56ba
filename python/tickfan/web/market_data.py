"""``/ws/market-data`` (PROTOCOL.md section 3): subscriptions, snapshots, modes and backfill.

The channel only translates messages into hub calls (the hub owns the core) and replies; the
core queues tick and batch frames itself (encoded once, shared by every subscriber) and the session's writer sends
them. Decisions where the protocol is silent (docs/protocol.md):

* ``unknown_symbol`` (naming the unknown ones) comes before the ``subscribed`` ack; the ack is
  always sent for an accepted request and lists the known symbols of the request, in request
  order, even when that list is empty. ``too_many_symbols`` or an invalid ``interval_ms`` apply
  nothing and get no ack.
* ``unsubscribed`` lists the symbols that were subscribed and now are not.
* ``resume``: its symbols must be among ``symbols`` (else ``invalid_message``, nothing applied).
  Each resumed symbol's missed ticks (from ``hub.resume``) replace its snapshot and follow the
  ack in the same turn, so no live tick comes before them; a symbol that cannot be resumed gets
  a ``gap`` right after the ack, then its snapshot as today. A missing ``epoch`` never matches.
* ``backfill_request``: one ``backfill`` per known symbol, in request order; unknown symbols get
  one ``unknown_symbol`` error; an unknown interval is ``invalid_message``.
"""

from __future__ import annotations

from typing import Any

from msgspec import Struct

from tickfan.errors import InvalidArgument, TooManySymbols, UnknownSymbol
from tickfan.hub import Hub
from tickfan.protocol import MARKET_DATA_MESSAGES, BackfillRequest, ErrorCode, Subscribe, Unsubscribe, encode
from tickfan.session import Channel, Session

__all__ = ["MarketDataChannel"]

_DEFAULT_INTERVAL = {"tick": None, "batch": 50, "auto": 50, "conflate": 1000}


class _Subscribed(Struct, tag="subscribed", tag_field="type", omit_defaults=True):
    symbols: list[str]
    mode: str
    interval_ms: int | None
    epoch: str
    resumed: list[str] | None = None


class _Gap(Struct, tag="gap", tag_field="type"):
    symbol: str
    from_seq: int
    to_seq: int | None
    reason: str


class _Unsubscribed(Struct, tag="unsubscribed", tag_field="type"):
    symbols: list[str]


class _Backfill(Struct, tag="backfill", tag_field="type"):
    symbol: str
    interval: str
    candles: list[Any]
    complete: bool


def _unknown(symbols: list[str]) -> str:
    shown = ", ".join(repr(s[:40]) for s in symbols[:20])
    more = f" and {len(symbols) - 20} more" if len(symbols) > 20 else ""
    return f"Unknown symbols: {shown}{more}"


class MarketDataChannel(Channel):
    name = "market_data"
    path = "/ws/market-data"
    messages = MARKET_DATA_MESSAGES

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.intervals = hub.intervals

    async def on_message(self, session: Session, message: Struct) -> None:
        if isinstance(message, Subscribe):
            self._subscribe(session, message)
        elif isinstance(message, Unsubscribe):
            removed = self.hub.unsubscribe(session.conn_id, message.symbols)
            session.send(encode(_Unsubscribed(removed)))
        elif isinstance(message, BackfillRequest):
            self._backfill(session, message)

    def _subscribe(self, session: Session, message: Subscribe) -> None:
        resume = message.resume
        hub = self.hub
        if resume is not None:
            requested = set(message.symbols)
            stray = [symbol for symbol in resume if symbol not in requested]
            if stray:
                shown = ", ".join(repr(s[:40]) for s in stray[:20])
                session.send_error(ErrorCode.INVALID_MESSAGE, f"'resume' names symbols not in 'symbols': {shown}")
                return
            before = {symbol for symbol, _, _ in hub.subscriptions(session.conn_id)}
        try:
            subscribed, unknown, snapshots = hub.subscribe(
                session.conn_id, message.symbols, message.mode, message.interval_ms
            )
        except TooManySymbols as exc:
            session.send_error(ErrorCode.TOO_MANY_SYMBOLS, str(exc))
            return
        except InvalidArgument as exc:
            session.send_error(ErrorCode.INVALID_MESSAGE, str(exc))
            return
        if unknown:
            session.send_error(ErrorCode.UNKNOWN_SYMBOL, _unknown(unknown))
        interval = None if message.mode == "tick" else (message.interval_ms or _DEFAULT_INTERVAL[message.mode])
        epoch = self.hub.epoch
        if resume is None:
            session.send(encode(_Subscribed(subscribed, message.mode, interval, epoch)))
            for frame in snapshots:
                session.send(frame)
            return
        # The core lists snapshots for the newly subscribed symbols that have traded, in order.
        traded = [s for s in subscribed if s not in before and hub.latest(s) is not None]
        snapshot_of = dict(zip(traded, snapshots))
        epoch_matches = message.epoch == epoch
        resumed: list[str] = []
        after: list[str] = []
        for symbol in subscribed:
            last_seq = resume.get(symbol)
            if last_seq is None:
                if symbol in snapshot_of:
                    after.append(snapshot_of[symbol])
                continue
            frames, gap = hub.resume(session.conn_id, symbol, last_seq, epoch_matches)
            if gap is None:
                resumed.append(symbol)
                after.extend(frames)
            else:
                after.append(encode(_Gap(symbol, *gap)))
                if symbol in snapshot_of:
                    after.append(snapshot_of[symbol])
        session.send(encode(_Subscribed(subscribed, message.mode, interval, epoch, resumed)))
        for frame in after:
            session.send(frame)

    def _backfill(self, session: Session, message: BackfillRequest) -> None:
        if message.interval not in self.intervals:
            names = ", ".join(self.intervals)
            session.send_error(ErrorCode.INVALID_MESSAGE, f"Unknown interval {message.interval[:16]!r}; one of {names}")
            return
        unknown: list[str] = []
        seen: set[str] = set()
        for symbol in message.symbols:
            if symbol in seen:
                continue
            seen.add(symbol)
            try:
                candles, complete = self.hub.backfill(symbol, message.interval, message.since)
            except UnknownSymbol:
                unknown.append(symbol)
                continue
            session.send(encode(_Backfill(symbol, message.interval, candles, complete)))
        if unknown:
            session.send_error(ErrorCode.UNKNOWN_SYMBOL, _unknown(unknown))
