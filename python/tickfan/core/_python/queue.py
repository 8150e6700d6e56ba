"""Connections and their bounded outbound FIFOs of encoded frames."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tickfan.core._python.fanout import Sub


class Conn:
    """One connection: its queue (a list, oldest first), byte count and subscriptions."""

    __slots__ = ("id", "frames", "bytes", "overflowed", "subs", "degraded", "noted", "restore")

    def __init__(self, conn_id: int) -> None:
        self.id = conn_id
        self.frames: list[str] = []
        self.bytes = 0
        self.overflowed = False
        # Subscriptions by symbol index.
        self.subs: dict[int, Sub] = {}
        # Degraded (past the high-water mark); noted: listed in Outbound.to_degrade.
        self.degraded = False
        self.noted = False
        # While degraded, by symbol index: (mode, interval_ms, first seq conflation skipped).
        self.restore: dict[int, tuple[str, int, int]] = {}


class Outbound:
    """Every connection's queue under the same limits, plus the counters of ``stats()``.

    A frame that does not fit overflows its connection for good: it and every later frame for
    that connection are dropped and counted.
    """

    __slots__ = (
        "conns", "next_id", "ready", "overflowed", "max_frames", "max_bytes",
        "frames_queued", "bytes_queued", "dropped", "high", "to_degrade",
    )

    def __init__(self, max_frames: int, max_bytes: int, high: float = float("inf")) -> None:
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

    def connect(self) -> int:
        conn_id = self.next_id
        self.next_id += 1
        self.conns[conn_id] = Conn(conn_id)
        return conn_id

    def put(self, conn: Conn, frame: str) -> bool:
        """Queue ``frame``; False when it was dropped."""
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
        frames.append(frame)
        conn.bytes += n
        self.frames_queued += 1
        self.bytes_queued += n
        if len(frames) >= self.high and not conn.degraded and not conn.noted:
            conn.noted = True
            self.to_degrade.append(conn.id)
        return True

    def put_many(self, conns: list[Conn], frame: str) -> None:
        """Queue one shared frame to each of ``conns`` (the fan-out hot path of ``put``)."""
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
            elif len(frames) < max_frames and conn.bytes <= room:
                if not frames:
                    ready_add(conn.id)
                frames.append(frame)
                conn.bytes += n
                queued += 1
                if len(frames) >= high and not conn.degraded and not conn.noted:
                    conn.noted = True
                    self.to_degrade.append(conn.id)
            else:
                conn.overflowed = True
                self.overflowed.add(conn.id)
                self.dropped += 1
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
