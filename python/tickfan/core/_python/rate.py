"""Per-symbol tick rate over the last 10 buckets of 100 ms of the caller's clock (``now_ms``)."""

from __future__ import annotations

BUCKET_MS = 100
BUCKETS = 10


class Rate:
    """``[bucket, ticks]`` pairs, oldest first.

    With a non-decreasing clock this holds at most 10 entries; a clock that steps back only
    makes the count ignore "future" buckets (buckets older than 10 before a tick's own are
    forgotten at that tick).
    """

    __slots__ = ("buckets",)

    def __init__(self) -> None:
        self.buckets: list[list[int]] = []

    def add(self, now_ms: int) -> int:
        """Count one tick at ``now_ms``; return the ticks in the last 10 buckets, this one included."""
        b = now_ms // BUCKET_MS
        buckets = self.buckets
        last = buckets[-1] if buckets else None
        if last is not None and last[0] == b and buckets[0][0] >= b - (BUCKETS - 1):
            # The common case: another tick in the current bucket, nothing expired.
            last[1] += 1
            return sum(n for k, n in buckets if k <= b)
        oldest = b - (BUCKETS - 1)
        buckets[:] = [e for e in buckets if e[0] >= oldest]
        for e in buckets:
            if e[0] == b:
                e[1] += 1
                break
        else:
            buckets.append([b, 1])
        return sum(n for k, n in buckets if k <= b)
