"""Batch and conflate groups ``(symbol, interval_ms)`` and their windows.

Open windows sit in one heap ordered by ``(deadline, symbol index, batch before conflate,
interval_ms)``: exactly the order in which ``flush`` must close them. A window that is
discarded (its group lost its last active member) is left in the heap and skipped when popped.
"""

from __future__ import annotations

from heapq import heappop, heappush
from itertools import count
from typing import TYPE_CHECKING

from tickfan.core._python.fanout import AUTO, BATCH, Sub

if TYPE_CHECKING:
    from tickfan.core._python.fanout import SymbolState

BATCH_KIND = 0
CONFLATE_KIND = 1


class Group:
    """The connections sharing one ``(symbol, kind, interval_ms)`` window."""

    __slots__ = ("sym", "kind", "interval_ms", "members", "n_batch", "n_auto", "token",
                 "deadline", "last_sent")

    def __init__(self, sym: SymbolState, kind: int, interval_ms: int) -> None:
        self.sym = sym
        self.kind = kind
        self.interval_ms = interval_ms
        # By connection id, kept in ascending order (see `add`).
        self.members: dict[int, Sub] = {}
        self.n_batch = 0
        self.n_auto = 0
        # The open window's heap token, or None when no window is open.
        self.token: int | None = None
        self.deadline = 0
        # conflate: the newest seq the group has sent.
        self.last_sent = 0

    def add(self, sub: Sub) -> None:
        members = self.members
        conn_id = sub.conn.id
        if members and conn_id < next(reversed(members)):
            # Keep ascending id order for an older connection joining late.
            items = sorted([*members.items(), (conn_id, sub)], key=lambda kv: kv[0])
            members.clear()
            members.update(items)
        else:
            members[conn_id] = sub
        if sub.mode == BATCH:
            self.n_batch += 1
        elif sub.mode == AUTO:
            self.n_auto += 1

    def remove(self, sub: Sub) -> None:
        del self.members[sub.conn.id]
        if sub.mode == BATCH:
            self.n_batch -= 1
        elif sub.mode == AUTO:
            self.n_auto -= 1

    def active(self) -> bool:
        """Whether a member takes the symbol through this group now (only then a window is open)."""
        if self.kind == CONFLATE_KIND:
            return bool(self.members)
        return self.n_batch > 0 or (self.n_auto > 0 and self.sym.hf)


class Windows:
    """The heap of open windows."""

    __slots__ = ("heap", "tokens")

    def __init__(self) -> None:
        self.heap: list[tuple[int, int, int, int, int, Group]] = []
        self.tokens = count(1)

    def open(self, group: Group, deadline: int) -> None:
        token = next(self.tokens)
        group.token = token
        group.deadline = deadline
        heappush(self.heap, (deadline, group.sym.index, group.kind, group.interval_ms, token, group))

    @staticmethod
    def discard(group: Group) -> None:
        group.token = None

    def pop_due(self, now_ms: int) -> Group | None:
        """The next group whose window is due, its window now closed; None when none is."""
        heap = self.heap
        while heap and heap[0][0] <= now_ms:
            _, _, _, _, token, group = heappop(heap)
            if group.token == token:
                group.token = None
                return group
        return None

    def next_deadline(self) -> int | None:
        heap = self.heap
        while heap:
            _, _, _, _, token, group = heap[0]
            if group.token == token:
                return heap[0][0]
            heappop(heap)
        return None
