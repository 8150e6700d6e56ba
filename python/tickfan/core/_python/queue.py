"""Connections and their bounded outbound FIFOs of encoded frames."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tickfan.core._python.fanout import Sub


# The clock before the first timed core call (Rust: i64::MIN).
UNSET = -(2**63)


class Conn:
    """One connection: its queue (a list, oldest first), byte count and subscriptions."""

    __slots__ = (
        "id", "frames", "bytes", "overflowed", "over", "over_since", "skipped", "subs", "degraded",
        "noted", "restore", "busy_since", "degraded_at",
    )

    def __init__(self, conn_id: int) -> None:
        self.id = conn_id
        self.frames: list[str] = []
        self.bytes = 0
        # To be closed: a control frame did not fit, or the grace ran out; all is dropped.
        self.overflowed = False
        # Over the hard limit: market data is dropped (its seq ranges noted in ``skipped``, by
        # symbol index: [first, last]) until a drain leaves the queue at most half full.
        self.over = False
        # The now_ms of the first take_overflowed that saw the over state.
        self.over_since: int | None = None
        self.skipped: dict[int, list[int]] = {}
        # Subscriptions by symbol index.
        self.subs: dict[int, Sub] = {}
        # Degraded (past the high-water mark); noted: listed in Outbound.to_degrade.
        self.degraded = False
        self.noted = False
        # While degraded, by symbol index: (mode, interval_ms, first seq conflation skipped).
        self.restore: dict[int, tuple[str, int, int]] = {}
        # The clock when the queue last went non-empty (or the connection recovered with
        # frames still queued): where the age rule's age starts; and when it was last degraded.
        self.busy_since = 0
        self.degraded_at = 0


class Outbound:
    """Every connection's queue under the same limits, plus the counters of ``stats()``.

    A control frame that does not fit overflows its connection for good: it and every later
    frame for that connection are dropped and counted. Market data that does not fit puts the
    connection *over* the limit instead (see ``put_data``).
    """

    __slots__ = (
        "conns", "next_id", "ready", "overflowed", "max_frames", "max_bytes",
        "frames_queued", "bytes_queued", "dropped", "high", "to_degrade", "over", "grace_ms",
        "degrade_after", "clock", "aging",
    )

    def __init__(
        self, max_frames: int, max_bytes: int, high: float = float("inf"), grace_ms: int = 0,
        degrade_after: int | None = None,
    ) -> None:
        # The age rule: a queue not empty for this many ms notes its connection (None: off).
        self.degrade_after = degrade_after
        # The latest now_ms a timed core call brought (never goes back); UNSET until the first,
        # which then stamps the ages started before it.
        self.clock = UNSET
        # (id, busy_since) of queues that went non-empty, in clock order; an entry whose
        # busy_since no longer matches its connection's is stale.
        self.aging: deque[tuple[int, int]] = deque()
        # Connections that went over and are not reported yet, and how long they may stay so.
        self.over: list[int] = []
        self.grace_ms = grace_ms
        # The high-water mark (frames): a connection whose queue reaches it is noted for degrading.
        self.high = high
        self.to_degrade: list[int] = []
        self.conns: dict[int, Conn] = {}
        self.next_id = 1
        self.ready: set[int] = set()
        self.overflowed: set[int] = set()
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.frames_queued = 0
        self.bytes_queued = 0
        self.dropped = 0

    def advance(self, now_ms: int) -> None:
        """Advance the clock to ``now_ms`` (a ``now_ms`` behind it is ignored)."""
        if self.clock == UNSET and self.aging:
            stamped: deque[tuple[int, int]] = deque()
            for conn_id, _ in self.aging:
                conn = self.conns.get(conn_id)
                if conn is not None and conn.busy_since == UNSET:
                    conn.busy_since = now_ms
                stamped.append((conn_id, now_ms))
            self.aging = stamped
        if now_ms > self.clock:
            self.clock = now_ms

    def _start_age(self, conn: Conn) -> None:
        conn.busy_since = self.clock
        if self.degrade_after is not None:
            self.aging.append((conn.id, self.clock))

    def restart_age(self, conn: Conn) -> None:
        """A connection that recovered with frames still queued: its age starts again now."""
        if conn.frames:
            self._start_age(conn)

    def note_aged(self) -> None:
        """The age rule: note for degrading every connection whose queue has not been empty
        since ``degrade_after`` ms or more before the clock and that is not degraded."""
        after = self.degrade_after
        if after is None:
            return
        aging, clock, conns = self.aging, self.clock, self.conns
        while aging and clock - aging[0][1] >= after:
            conn_id, since = aging.popleft()
            conn = conns.get(conn_id)
            if (
                conn is not None and conn.busy_since == since and conn.frames
                and not conn.degraded and not conn.noted
            ):
                conn.noted = True
                self.to_degrade.append(conn_id)

    def connect(self) -> int:
        conn_id = self.next_id
        self.next_id += 1
        self.conns[conn_id] = Conn(conn_id)
        return conn_id

    def put_data(self, conn: Conn, frame: str, s: int, first: int, last: int) -> bool:
        """Queue market data of symbol index ``s``, seqs ``first ..= last``; False when dropped.
        A frame that does not fit, and every one while the connection is over, is dropped and
        its range noted for the recovery's ``gap``."""
        if conn.overflowed:
            self.dropped += 1
            return False
        if conn.over or len(conn.frames) >= self.max_frames or conn.bytes + len(frame) > self.max_bytes:
            self._drop_data(conn, s, first, last)
            return False
        return self.put(conn, frame)

    def _drop_data(self, conn: Conn, s: int, first: int, last: int) -> None:
        if not conn.over:
            conn.over = True
            conn.over_since = None
            self.over.append(conn.id)
        held = conn.skipped.get(s)
        if held is None:
            conn.skipped[s] = [first, last]
        elif last > held[1]:
            held[1] = last
        self.dropped += 1

    def leaves_over(self, conn: Conn) -> dict[int, list[int]] | None:
        """If ``conn`` is over and its queue is at most half full (frames and bytes), it leaves
        the over state: returns what it skipped (the caller reports it)."""
        if (
            not conn.over or conn.overflowed
            or len(conn.frames) > self.max_frames // 2 or conn.bytes > self.max_bytes // 2
        ):
            return None
        conn.over = False
        conn.over_since = None
        skipped, conn.skipped = conn.skipped, {}
        return skipped

    def take_overflowed(self, now_ms: int) -> list[int]:
        """Connections to close, each once: a control frame did not fit, or over for the grace."""
        ids = self.overflowed
        self.overflowed = set()
        still: set[int] = set()
        for conn_id in self.over:
            conn = self.conns.get(conn_id)
            if conn is None or not conn.over or conn.overflowed:
                continue
            if conn.over_since is None:
                conn.over_since = now_ms
            if now_ms - conn.over_since >= self.grace_ms:
                conn.overflowed = True
                ids.add(conn_id)
            else:
                still.add(conn_id)
        self.over = sorted(still)
        return sorted(ids)

    def put(self, conn: Conn, frame: str) -> bool:
        """Queue a control frame; False when it was dropped."""
        if conn.overflowed:
            self.dropped += 1
            return False
        n = len(frame)
        frames = conn.frames
        if len(frames) >= self.max_frames or conn.bytes + n > self.max_bytes:
            conn.overflowed = True
            self.overflowed.add(conn.id)
            self.dropped += 1
            return False
        if not frames:
            self.ready.add(conn.id)
            self._start_age(conn)
        frames.append(frame)
        conn.bytes += n
        self.frames_queued += 1
        self.bytes_queued += n
        if len(frames) >= self.high and not conn.degraded and not conn.noted:
            conn.noted = True
            self.to_degrade.append(conn.id)
        return True

    def put_many(self, conns: list[Conn], frame: str, s: int, seq: int) -> None:
        """Queue one shared tick frame (symbol index ``s``, ``seq``) to each of ``conns`` (the
        fan-out hot path of ``put_data``)."""
        n = len(frame)
        max_frames = self.max_frames
        room = self.max_bytes - n
        ready_add = self.ready.add
        high = self.high
        queued = 0
        for conn in conns:
            frames = conn.frames
            if conn.overflowed:
                self.dropped += 1
            elif not conn.over and len(frames) < max_frames and conn.bytes <= room:
                if not frames:
                    ready_add(conn.id)
                    self._start_age(conn)
                frames.append(frame)
                conn.bytes += n
                queued += 1
                if len(frames) >= high and not conn.degraded and not conn.noted:
                    conn.noted = True
                    self.to_degrade.append(conn.id)
            else:
                self._drop_data(conn, s, seq, seq)
        self.frames_queued += queued
        self.bytes_queued += queued * n

    def drain(self, conn: Conn, max_frames: int) -> list[str]:
        frames = conn.frames
        if len(frames) <= max_frames:
            conn.frames = []
            conn.bytes = 0
            return frames
        if max_frames <= 0:
            return []
        out = frames[:max_frames]
        del frames[:max_frames]
        conn.bytes -= sum(map(len, out))
        return out

    def remove(self, conn_id: int) -> Conn | None:
        conn = self.conns.pop(conn_id, None)
        if conn is not None:
            self.ready.discard(conn_id)
            self.overflowed.discard(conn_id)
        return conn
