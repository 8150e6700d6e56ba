"""The native core's API: the spec that both cores meet, to the byte.

``tickfan._core`` (Rust, PyO3) and ``tickfan.core._python`` (the pure-Python twin) export the
same names with the same signatures, defaults, errors (``tickfan.errors``, same messages) and
outputs. ``tickfan.core`` picks one. The core is sans-I/O: ticks and subscription changes go in,
encoded JSON text frames (``str``) come out of per-connection queues. It never awaits, never
touches a socket and never calls back into Python.

Conventions
-----------
* Times are integer milliseconds. ``now_ms`` is the caller's clock (the server's wall clock);
  a tick's ``ts`` is the publisher's timestamp. Windows and rates run on ``now_ms``, candles on
  ``ts``.
* Prices and sizes are floats that must be exactly representable with the symbol's decimals:
  ``units = round(value * 10**d)`` and ``float(units) / POW10[d] == value`` must hold, where
  ``POW10[d]`` is the float ``10.0**d`` (exact for d <= 18). Every float the core emits (frames,
  candles, ``latest``) is computed as ``float(units) / POW10[d]`` so both cores agree bit for bit.
  ``units`` must be at most ``MAX_UNITS`` (2**53 - 1). All of it in f64: an int is first
  converted to the nearest float (an int too large for a float counts as not finite), ``round``
  breaks ties to even (Python's ``round``), and a product ``value * POW10[d]`` that overflows to
  inf fails the decimals check.
* Text formatting of a decimal in a frame, from integer ``units`` and decimals ``d``: the integer
  part, a dot, then the ``d`` fractional digits with trailing zeros removed, keeping at least one
  digit: units=4312537, d=2 -> ``43125.37``; units=4312500, d=2 -> ``43125.0``; units=15, d=3 ->
  ``0.015``; units=7, d=0 -> ``7.0``; units=0, d=8 -> ``0.0``.
* Frames are compact JSON (no spaces), keys in the order shown below. Symbol names are
  restricted (``[A-Za-z0-9._:/-]{1,32}``) so they never need escaping.
* A ``market_data`` frame, encoded once per tick and shared (the same ``str`` object) by every
  connection that receives that tick as its own message::

    {"type":"market_data","symbol":"BTC/USD","seq":1042,"ts":1731283200123,"price":43125.37,"size":0.015}

* A ``market_data_batch`` frame for the ticks with seq ``start .. end-1`` of one symbol, encoded
  once per (symbol, start, end) within one ``flush``/``ingest`` call and shared by every
  connection that gets exactly that range::

    {"type":"market_data_batch","symbol":"BTC/USD","seq":1042,"count":3,"price_decimals":2,"size_decimals":8,"ts":[1731283200123,5,0],"price":[4312537,-2,10],"size":[1500000,250000000,1000]}

  ``ts`` and ``price``: first element absolute, each later one the difference from the previous
  tick; ``size`` absolute units. Integers in JSON are plain decimal integers.

Subscription modes (per connection and symbol)
----------------------------------------------
* ``tick``: every tick's ``market_data`` frame is queued at ingest.
* ``batch``: the connection joins the batch group ``(symbol, interval_ms)`` (default 50). A
  group's window opens at the first tick ingested while it has no open window, with deadline
  ``now_ms + interval_ms``. ``flush(now_ms)`` closes every window whose deadline <= now_ms: each
  member connection gets one frame with the ticks from its own next seq up to the symbol's
  latest (nothing if that range is empty) and its next seq moves past them. A connection that
  joined mid-window therefore gets only ticks after its subscription (after its snapshot).
* ``conflate``: group ``(symbol, interval_ms)`` (default 1000); a leading-and-trailing throttle.
  A tick arriving while the group has no open window is queued at once (its ``market_data``
  frame) and opens a window with deadline ``now_ms + interval_ms``. Ticks arriving in an open
  window are held (only the latest counts). When ``flush`` closes the window: if a tick newer than
  the last one sent is held, its frame is queued to each member that has not yet received that
  seq and a new window opens with deadline ``now_ms + interval_ms``; otherwise no window is open.
* ``auto`` (default): per symbol, ``tick`` while the symbol is not high-frequency, ``batch``
  (interval default 50) while it is. The rate is the number of ticks of the symbol ingested with
  ``now_ms // 100`` in the last 10 buckets of 100 ms (the current bucket included), counted after
  adding the tick being ingested. A symbol becomes high-frequency at a tick that makes the rate
  greater than ``high_freq_per_s``, and stops being so at a tick that makes the rate <= half the
  threshold (hysteresis). (A clock that steps back: buckets after the tick's own are not
  counted, and buckets older than 9 before a tick's own are forgotten at that tick.) When a symbol becomes high-frequency, that tick is the first one its
  auto connections get in batches. When it stops, every auto connection's pending range is
  queued at once as a batch frame (before that tick's own ``market_data``), and the tick goes out
  as a ``market_data`` frame.
* Subscribing again to a subscribed symbol replaces mode and interval; anything pending for the
  old mode (a batch range) is queued first, so nothing is lost. Unsubscribing discards what is
  pending for that symbol. A re-subscription, even with the same mode and interval, leaves the
  old subscription (queuing its pending range) and then joins anew; a conflate member keeps the
  newest seq it was sent.
* Windows belong to groups with *active* members: conflate members, batch members, and auto
  members while the symbol is high-frequency. A tick opens a window only for a group with an
  active member; a group that loses its last active member (unsubscribe, re-subscribe,
  disconnect, or the symbol ceasing to be high-frequency) loses its open window; a group with
  no members no longer exists (a conflate group forgets what it last sent).

Ordering and determinism
------------------------
Within one ``ingest`` call, ticks are processed in input order, and for each tick: auto mode
switch (queuing pending batches), then ``market_data`` to tick-mode/auto-tick connections and
conflate groups without an open window, then windows opened. ``flush`` processes due windows in
the order (deadline, symbol's index in the universe, batch before conflate, interval_ms).
Connections are visited in ascending connection id everywhere. Outputs that are lists of ids are
sorted ascending and hold no duplicates.

Outbound queues
---------------
Each connection has a FIFO of frames bounded by ``max_queue_frames`` and ``max_queue_bytes``
(``len`` of the str; frames are ASCII). Every dropped frame is counted in ``stats()["dropped"]``.

* A control frame (``push``, and the core's own ``degraded`` and ``gap`` frames) that does not
  fit is dropped and the connection becomes *overflowed*: from then on every frame for it is
  dropped; the next ``take_overflowed`` reports it.
* Market data (``market_data``, ``market_data_batch``, conflated ticks) that does not fit puts
  the connection *over*: that frame and every market-data frame for it while it is over are
  dropped, and per symbol the first and last seq of the dropped frames are noted (a batch frame
  counts as its whole range). Control frames are still queued while they fit. The over state
  is timed from the ``now_ms`` of the first ``take_overflowed`` call that sees it: a call whose
  ``now_ms`` is ``slow_consumer_grace_ms`` or more after that makes the connection overflowed
  and reports it. After every ``drain``, an over (not overflowed) connection whose queue holds at
  most ``max_queue_frames // 2`` frames and ``max_queue_bytes // 2`` bytes leaves the over state:
  for each noted symbol, in universe order, a frame
  ``{"type":"gap","symbol":S,"from_seq":first,"to_seq":last,"reason":"evicted"}`` is queued
  (before the degraded recovery below, when both happen at the same drain).
* ``take_ready`` and ``take_overflowed`` never report a connection that has been disconnected.
  The server closes a reported socket with ``slow_consumer`` (1013). Frames already queued stay
  drainable; an overflowed connection never leaves that state.

Slow consumers (with ``high_water_frames`` set)
-----------------------------------------------
A connection whose queue reaches ``high_water_frames`` frames when a frame is queued to it is
*noted*. At the end of each ``ingest``, ``flush``, ``push`` and ``subscribe`` call, every noted
connection (ascending id) becomes *degraded* (unless it is over or overflowed: then it is just no longer noted): each of its ``tick`` and ``auto`` subscriptions,
in universe order, is replaced by a ``conflate`` one with interval ``degrade_interval_ms``
(leaving the old one as a re-subscription does: an auto member's pending batch range is queued
first; the conflate member holds the symbol's current seq), and if there was any, one frame
``{"type":"degraded","symbols":[those symbols]}`` is queued. ``subscriptions`` reports the
conflate mode meanwhile. A degraded connection is not noted again.
After every ``drain`` (even of 0 frames), a degraded connection whose queue holds at most
``low_water_frames`` frames *recovers*: each conflated subscription, in universe order, goes
back to its mode and interval (leaving the conflate group, joining as a new subscription), and
if the symbol's seq is at least the first seq after the one it held when degraded, a frame
``{"type":"gap","symbol":S,"from_seq":that first seq,"to_seq":the symbol's seq,"reason":"evicted"}``
is queued (ticks of that range may have arrived conflated). Subscribing again to, or
unsubscribing from, a degraded symbol ends its degraded state (nothing restored, no gap).
The overflow rule above is unchanged: the hard limits still apply.

The age rule (with ``degrade_after_ms`` set, whatever ``high_water_frames``)
------------------------------------------------------------------------------
The core keeps a *clock*: the largest ``now_ms`` given to ``ingest`` (after validation),
``subscribe`` (after its checks) or ``flush``, at the start of that call; unset before the
first. A queue that goes from empty to non-empty starts its *age* at the clock (started before
the first clock: at that first clock). At the end of each ``ingest``, ``subscribe`` and
``flush``, every connection whose queue is not empty, has not been empty since an age start
``degrade_after_ms`` or more before the clock, and is not degraded or noted, is noted (as at the
high-water mark) and so degraded like above; ``degraded_at`` is the clock then. With
``degrade_after_ms`` set, recovery also needs the clock to be ``degrade_interval_ms`` or more
after ``degraded_at`` (a hold, so a reader in sustained overload does not flap); a connection
that recovers, or leaves the over state, with frames still queued starts a new age at the clock
(an over connection is not degraded, as at the high-water mark).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

Mode = Literal["tick", "batch", "conflate", "auto"]
Direction = Literal["above", "below"]
Candle = tuple[int, float, float, float, float, float]
"""(open time ms, open, high, low, close, volume)."""
SymbolCheckpoint = tuple[str, int, int, list[tuple[int, int, int]], list[tuple[int, list[tuple[int, int, int, int, int, int]]]]]
"""``Core.checkpoint``: (symbol, seq, ring_base, ring ticks, candles per interval) in units."""

IMPLEMENTATION: Final[str]
"""``"rust"`` or ``"python"``."""
INTERVALS: Final[dict[str, int]]
"""Candle intervals and their length in ms: {"1s": 1000, "1m": 60000, "5m": 300000, "1h": 3600000}."""
DEFAULT_CANDLE_CAPACITY: Final[dict[str, int]]
"""{"1s": 3600, "1m": 1440, "5m": 2016, "1h": 720}."""
MAX_UNITS: Final[int]
"""2**53 - 1: the largest integer price or size in units of 10**-decimals."""
MAX_DECIMALS: Final[int]
"""12: the most decimals a symbol may declare for price or size."""
MIN_INTERVAL_MS: Final[int]
"""10"""
MAX_INTERVAL_MS: Final[int]
"""60000"""

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
        """``symbols``: ``(name, price_decimals, size_decimals)`` in universe order.

        ``max_ts_skew_ms``: ``ingest`` refuses a tick whose ts is later than its ``now_ms`` plus
        this (None: no bound but 2**63 - 1).

        ``candle_capacity`` overrides per interval name the defaults of
        ``DEFAULT_CANDLE_CAPACITY`` (each >= 1). Raises ``InvalidArgument`` for an empty or
        duplicated universe, a bad name (see module doc), decimals outside 0..=MAX_DECIMALS, an
        unknown interval name, a capacity < 1, ``high_freq_per_s`` not finite or <= 0, or a queue
        limit < 1. Messages:
        ``"symbol universe is empty"``, ``"duplicate symbol 'X'"``, ``"invalid symbol name 'X'"``,
        ``"decimals of 'X' must be between 0 and 12"``, ``"unknown candle interval 'X'"``,
        ``"candle capacity must be >= 1"``, ``"high_freq_per_s must be a finite number > 0"``,
        ``"queue limits must be >= 1"``, ``"max_symbols_per_connection must be >= 1"``,
        ``"max_ts_skew_ms must be >= 0"``, ``"resume_window_ms must be >= 1"``,
        ``"resume_max_ticks must be >= 1"``, ``"high_water_frames must be >= 1"``,
        ``"low_water_frames must be >= 0 and below high_water_frames"``,
        ``"degrade_interval_ms must be between 10 and 60000"``,
        ``"slow_consumer_grace_ms must be >= 0"``, ``"degrade_after_ms must be >= 1"``.
        Checked in this order: each symbol in turn (name, duplicate, decimals; the empty check
        when there are none), ``candle_capacity`` in its iteration order (each name, then its
        capacity), ``high_freq_per_s``, the two queue limits, ``max_symbols_per_connection``,
        ``max_ts_skew_ms``, ``resume_window_ms``, ``resume_max_ticks``, ``high_water_frames``,
        ``low_water_frames``, ``degrade_interval_ms``, ``slow_consumer_grace_ms``,
        ``degrade_after_ms``. The water marks: see "Slow consumers"; the grace: see "Outbound
        queues"; ``degrade_after_ms``: see "The age rule".

        ``resume_window_ms`` and ``resume_max_ticks`` bound each symbol's resume ring (see
        ``resume``).
        """

    def symbols(self) -> list[tuple[str, int, int]]:
        """The universe as given, in order."""

    # --- ticks --------------------------------------------------------------------------

    def ingest(self, ticks: Sequence[tuple[str, float, float, int]], now_ms: int) -> int:
        """Validate and apply ``(symbol, price, size, ts)`` ticks; return how many were applied.

        All or nothing: each item is checked in order against the state as it would be after
        every earlier *valid* item of the same call. If any item is invalid, ``TickRejected`` is
        raised with message ``"{k} of {n} ticks rejected"`` and ``errors`` = ``[(index,
        message), ...]`` for every invalid item, and nothing changes. One message per item, the
        first rule it breaks, in this order:

        * not a 4-tuple/list: ``"tick must be [symbol, price, size, ts]"``
        * ``"unknown symbol 'X'"`` (X is the ``str()`` of a symbol that is not a str)
        * price not an int/float (bool excluded), not finite or <= 0:
          ``"price must be a finite number > 0"``
        * size likewise but < 0: ``"size must be a finite number >= 0"``
        * ts not an int (bool excluded), < 0 or > 2**63 - 1: ``"ts must be an integer >= 0"``
        * with ``max_ts_skew_ms``, ts > ``now_ms + max_ts_skew_ms``:
          ``"ts {ts} is more than {max_ts_skew_ms} ms ahead of the server clock ({now_ms})"``
        * ``"price has more than {d} decimals"``, ``"size has more than {d} decimals"``
        * units > MAX_UNITS: ``"price out of range"``, ``"size out of range"``
        * ``"ts {ts} is earlier than the previous tick's ts {prev}"``

        An empty sequence is valid and returns 0. For each applied tick: seq = previous + 1
        (starting at 1), candles updated, latest tick replaced, rate updated, frames queued per
        the mode rules, alerts checked.
        """

    def latest(self, symbol: str) -> tuple[int, int, float, float] | None:
        """``(seq, ts, price, size)`` of the symbol's latest tick, or None. ``UnknownSymbol``."""

    def is_high_frequency(self, symbol: str) -> bool:
        """Whether ``auto`` currently batches this symbol. ``UnknownSymbol``."""

    # --- checkpoints --------------------------------------------------------------------

    def checkpoint(self) -> list[SymbolCheckpoint]:
        """The tick state of every symbol that has traded, in universe order, in integer units:
        ``(symbol, seq, ring_base, ring, candles)``. ``ring`` is the resume ring's ticks
        ``(ts, price units, size units)``, seqs ``ring_base ..= seq`` (the latest tick last);
        ``candles`` has one ``(newest evicted open ms or -1, bars)`` per interval of
        ``INTERVALS``, in order, ``bars`` ``(open ms, open, high, low, close, volume)`` in units,
        oldest first. Not in it: connections, windows, the auto-mode rate, alerts.
        """

    def restore(self, state: Sequence[SymbolCheckpoint]) -> None:
        """Load a ``checkpoint`` (as returned: tuples) into a core that has applied no tick.

        Afterwards ``latest``, subscribe snapshots, ``ring_range``, ``resume``, candles and the
        seqs, frames and candles of every later tick are those of the core that wrote it. The
        ring is then evicted with this core's ``resume_window_ms``/``resume_max_ticks`` and
        each interval cut to this core's capacity (as if the ticks had been applied here).
        Raises, changing nothing: ``InvalidArgument`` ``"restore needs a core that has applied
        no tick"``; ``UnknownSymbol``; ``InvalidArgument`` ``"invalid checkpoint of 'X'"``
        (seq or ring_base < 1, an empty ring, ``ring_base + len(ring) - 1 != seq``, not one
        entry per interval). Checked in this order, then each symbol in turn.
        """

    # --- connections and subscriptions --------------------------------------------------

    def connect(self) -> int:
        """Register a connection; ids are 1, 2, 3, ... and never reused."""

    def disconnect(self, conn_id: int) -> None:
        """Forget a connection, its subscriptions and its queue. Unknown ids are ignored."""

    def subscribe(
        self,
        conn_id: int,
        symbols: Sequence[str],
        mode: str = "auto",
        interval_ms: int | None = None,
        now_ms: int = 0,
    ) -> tuple[list[str], list[str], list[str]]:
        """Subscribe to the known symbols of ``symbols`` (duplicates ignored, first kept).

        Returns ``(subscribed, unknown, snapshots)``: the known symbols of the request in request
        order; the unknown ones in request order; and, for each *newly* subscribed symbol that has
        traded, its latest ``market_data`` frame (the same str the core cached for that tick).
        Snapshots are returned, not queued: the caller queues its ``subscribed`` ack first, then
        the snapshots, with ``push``. For a batch/auto subscription the connection's next seq is
        the latest seq + 1.

        Raises, changing nothing: ``UnknownConnection`` (``"unknown connection {id}"``);
        ``InvalidArgument`` ``"mode must be one of tick, batch, conflate, auto"``,
        ``"interval_ms must be between 10 and 60000"`` (None means the mode's default: 50 for
        batch and auto, 1000 for conflate; ignored for tick); ``TooManySymbols``
        ``"at most {n} symbols per connection"`` when the connection's subscriptions after the
        call would exceed ``max_symbols_per_connection``.
        """

    def unsubscribe(self, conn_id: int, symbols: Sequence[str]) -> list[str]:
        """Drop subscriptions; return those that existed, in request order, no duplicates.

        Unknown or unsubscribed symbols are ignored. ``UnknownConnection``.
        """

    def subscriptions(self, conn_id: int) -> list[tuple[str, str, int]]:
        """``(symbol, mode, interval_ms)`` in universe order; tick mode reports interval 0.
        ``UnknownConnection``."""

    # --- resume -------------------------------------------------------------------------

    def ring_range(self, symbol: str) -> tuple[int, int] | None:
        """``(first, last)`` seq held in the symbol's resume ring, None before its first tick.

        Every applied tick is appended; then, while the ring holds more than
        ``resume_max_ticks`` ticks or its oldest tick's ts is ``resume_window_ms`` or more
        before the ts of the tick just appended, the oldest is dropped. So the latest tick is
        always held, and the ring depends only on the applied ticks (not on ``now_ms``), the
        same on every node that applies the same log. ``UnknownSymbol``.
        """

    def resume(
        self, conn_id: int, symbol: str, last_seq: int, epoch_matches: bool
    ) -> tuple[list[str], tuple[int, int | None, str] | None]:
        """The ticks after ``last_seq`` for a symbol the connection subscribes to.

        Returns ``(frames, None)`` when resumed: the frames are returned, not queued (like
        subscribe's snapshots, the caller queues its ack first, then these, with ``push``, in
        the same turn so no live tick comes between). Or ``([], (from_seq, to_seq, reason))``
        for a gap. With ``seq`` the symbol's latest seq:

        * not ``epoch_matches``: gap ``(last_seq + 1, seq or None when 0, "epoch")``;
        * ``last_seq >= seq``: resumed, no frames;
        * the ring does not hold ``last_seq + 1`` (evicted, or never held): gap
          ``(last_seq + 1, seq, "evicted")``;
        * otherwise the frames of ticks ``last_seq + 1 ..= seq`` in the subscription's mode:
          ``tick``, and ``auto`` while not high-frequency, one ``market_data`` per tick (the
          same bytes as live); ``batch``, and ``auto`` while high-frequency, one
          ``market_data_batch`` from ``last_seq + 1``; ``conflate`` the latest tick's
          ``market_data`` only. If these frames would not fit in the connection's queue as it
          is now (frame and byte limits), gap ``(last_seq + 1, seq, "evicted")`` instead.

        Raises, in this order: ``UnknownConnection``; ``UnknownSymbol``; ``InvalidArgument``
        ``"not subscribed to 'X'"``; ``InvalidArgument`` ``"last_seq must be an integer >= 0"``
        (a bool or non-int too). An int beyond 2**63 - 1 counts as 2**63 - 1.
        """

    # --- outbound queues ----------------------------------------------------------------

    def push(self, conn_id: int, frame: str) -> bool:
        """Queue a control frame (ack, error, pong, backfill) under the same limits.

        Returns False if it was dropped (the connection is or just became overflowed).
        ``UnknownConnection``.
        """

    def drain(self, conn_id: int, max_frames: int = 1024) -> list[str]:
        """Remove and return up to ``max_frames`` queued frames, oldest first.

        Unknown connections return ``[]`` (a writer may outlive its connection by a moment).
        """

    def queued(self, conn_id: int) -> tuple[int, int]:
        """``(frames, bytes)`` queued. ``UnknownConnection``."""

    def take_ready(self) -> list[int]:
        """Connections whose queue went from empty to non-empty since the last call (sorted)."""

    def take_overflowed(self, now_ms: int = 0) -> list[int]:
        """Connections to close as slow consumers (sorted, each reported once): overflowed since
        the last call, or over for ``slow_consumer_grace_ms`` at ``now_ms`` (see "Outbound
        queues")."""

    def flush(self, now_ms: int) -> None:
        """Close every batch and conflate window whose deadline <= now_ms (see module doc)."""

    def next_deadline_ms(self) -> int | None:
        """The earliest deadline of an open window, or None when no window is open."""

    def stats(self) -> dict[str, int]:
        """Counters since construction: ``ticks_in``, ``frames_queued``, ``bytes_queued``,
        ``dropped``, and gauges ``connections``, ``subscriptions``, ``alerts``."""

    # --- candles --------------------------------------------------------------------------

    def backfill(self, symbol: str, interval: str, since_ms: int) -> tuple[list[Candle], bool]:
        """Candles with open time >= the open time of the candle containing ``since_ms``.

        Oldest first, the open candle included; ``complete`` is False only when a candle that
        belongs in the answer was evicted from the ring (then the list starts at the oldest held).
        ``since_ms`` in the future gives ``([], True)``; negative values act as 0.
        ``UnknownSymbol``; ``InvalidArgument`` ``"unknown candle interval 'X'"``.
        """

    def recent_candles(self, symbol: str, interval: str, limit: int) -> tuple[list[Candle], bool]:
        """The most recent ``limit`` candles, oldest first. ``complete`` is False only when fewer
        than ``limit`` are returned and some were evicted. ``limit`` < 1: ``InvalidArgument``
        ``"limit must be >= 1"``. Checked in order: symbol, interval (as ``backfill``), limit."""

    # --- price alerts -------------------------------------------------------------------

    def add_alert(self, alert_id: int, symbol: str, direction: str, level: float) -> None:
        """Arm an alert: ``above`` fires on the first later tick with price >= level, ``below``
        on price <= level. It fires once and is then removed. ``UnknownSymbol``;
        ``InvalidArgument``: ``"direction must be above or below"``,
        ``"level must be a finite number > 0"``, ``"alert {id} already exists"`` (checked in
        this order; an id is free again once its alert fired or was removed).
        Lookup per tick is O(log n + k): levels are kept sorted (heaps) per symbol and direction.
        """

    def remove_alert(self, alert_id: int) -> bool:
        """Disarm; False if no such armed alert."""

    def take_fired(self) -> list[tuple[int, str, int, int, float]]:
        """Alerts fired since the last call: ``(alert_id, symbol, seq, ts, price)`` of the tick
        that fired them, in tick order, and by alert id within one tick."""

def format_units(units: int, decimals: int) -> str:
    """The frame text of a decimal (see module doc)."""

class FastLane:
    """The Rust core only (the twin has none): the extension's own WebSocket listener for
    ``/ws/market-data`` (``--fast-port``). Data frames go from ``core``'s queues to the socket
    without Python; everything else is handed to Python as events (``tickfan.web.fast_lane``)."""

    def __init__(
        self, core: Core, host: str, port: int, allowed_origins: list[str], max_message_bytes: int,
        close_timeout_s: float,
    ) -> None:
        """Bind now (``OSError`` with a clear message if the port cannot be had), then serve on a
        thread of its own. ``SO_REUSEPORT``: the workers of one server share the port."""

    @property
    def port(self) -> int: ...

    def fileno(self) -> int:
        """Readable when events wait (for ``loop.add_reader``)."""

    def take_events(self) -> list[tuple[str, int, Any]]:
        """``(kind, lane_id, payload)``, oldest first: ``open`` (peer address), ``text`` (str),
        ``binary`` (bytes), ``too_large``, ``gone``, ``panic`` (what panicked)."""

    def attach(self, lane_id: int, conn_id: int) -> None:
        """The connection's session has this core connection id: its writer drains that queue."""

    def wake(self, lane_id: int) -> None:
        """The connection's core queue went non-empty."""

    def wake_ready(self, core: Core) -> list[int]:
        """``core.take_ready()``, waking the attached lane connections among them here (one
        wake-up of the lane's thread for all); returns the other ids, for the caller to wake."""

    def close(self, lane_id: int, frames: list[str], code: int, reason: str = "", discard: bool = False) -> None:
        """Write ``frames``, then close with ``code``; ``discard``: drop the frames in hand."""

    def progress(self, lane_id: int) -> tuple[int, int]:
        """``(frames in hand, frames written)`` of the connection's writer."""

    def use_core(self, core: Core) -> None:
        """Drain ``core`` from now on (the hub replaced its core: a new epoch, a loaded checkpoint)."""

    def stats(self) -> dict[str, int]:
        """``connections``, ``frames``, ``bytes``, ``bursts``, ``write_ns``, ``panics``."""

    def stop(self) -> None:
        """Stop accepting, let the writers finish their closes (bounded), end the thread."""
