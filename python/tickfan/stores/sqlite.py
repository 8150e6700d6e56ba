"""SQLite store: one file in the data dir, WAL journal, one dedicated worker thread.

Trade-offs: every call is one short transaction run on a single thread that owns the
connection, so the event loop never blocks on disk and no locking is needed in Python; calls
are serialised, which is ample for notification and alert traffic (thousands per second) but
is not a hot path for ticks. ``synchronous=NORMAL`` under WAL survives a process crash (the
case a restart test exercises); a power loss may lose the last commits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from tickfan.bots import BotState, check_status
from tickfan.errors import TooManyAlerts
from tickfan.stores.base import Alert, Direction, FiredAlert, Notification, Store

__all__ = ["SqliteStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    title       TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    data        TEXT,
    created_at  INTEGER NOT NULL,
    read        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS notifications_by_user ON notifications (user_id, id);
CREATE INDEX IF NOT EXISTS notifications_unread_by_user ON notifications (user_id, id)
    WHERE read = 0;
CREATE TABLE IF NOT EXISTS alerts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     TEXT    NOT NULL,
    symbol      TEXT    NOT NULL,
    direction   TEXT    NOT NULL CHECK (direction IN ('above', 'below')),
    level       REAL    NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_by_user ON alerts (user_id, id);
CREATE TABLE IF NOT EXISTS bots (
    user_id     TEXT    NOT NULL,
    bot_id      TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    ts          INTEGER NOT NULL,
    detail      TEXT,
    PRIMARY KEY (user_id, bot_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS bots_running_by_user ON bots (user_id) WHERE status = 'running';
"""

_N_COLUMNS = "id, kind, title, body, data, created_at, read"
_A_COLUMNS = "id, user_id, symbol, direction, level, created_at"
# SQLite's default limit on host parameters is 32766 (3.32+); stay far below it.
_MAX_IDS_PER_QUERY = 500

_encode = msgspec.json.encode
_decode = msgspec.json.decode


def _notification(row: tuple[Any, ...]) -> Notification:
    data = None if row[4] is None else _decode(row[4])
    return Notification(row[0], row[1], row[2], row[3], data, row[5], bool(row[6]))


def _alert(row: tuple[Any, ...]) -> Alert:
    return Alert(row[0], row[1], row[2], row[3], row[4], row[5])


class SqliteStore(Store):
    """Notifications, alerts and bot states in one SQLite file (``path``), safe to reopen after a restart."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.fspath(path)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None

    @property
    def path(self) -> str:
        return self._path

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError("SqliteStore is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    # --- lifecycle (these run on the worker thread) --------------------------------------

    def _open_sync(self) -> None:
        directory = os.path.dirname(self._path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        # isolation_level=None: explicit BEGIN/COMMIT only, no implicit transactions.
        db = sqlite3.connect(self._path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(_SCHEMA)
        self._db = db

    def _close_sync(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("SqliteStore is not open")
        return self._db

    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="tickfan-sqlite"
        )
        try:
            await self._run(self._open_sync)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def close(self) -> None:
        if self._executor is None:
            return
        try:
            await self._run(self._close_sync)
        finally:
            self._executor.shutdown(wait=False)
            self._executor = None

    async def ping(self) -> bool:
        try:
            return await self._run(lambda: self._conn().execute("SELECT 1").fetchone() == (1,))
        except (RuntimeError, sqlite3.Error):
            return False

    # --- notifications ------------------------------------------------------------------

    def _add_notification_sync(
        self, user_id: str, kind: str, title: str, body: str, data: bytes | None, created_at: int
    ) -> Notification:
        cur = self._conn().execute(
            "INSERT INTO notifications (user_id, kind, title, body, data, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (user_id, kind, title, body, data, created_at),
        )
        assert cur.lastrowid is not None
        return Notification(
            cur.lastrowid, kind, title, body, None if data is None else _decode(data),
            created_at, False,
        )

    async def add_notification(
        self, user_id: str, kind: str, title: str, body: str, data: Any, created_at: int
    ) -> Notification:
        # Encoded here, on the caller's thread, so an unencodable value fails before any I/O.
        raw = None if data is None else _encode(data)
        return await self._run(
            self._add_notification_sync, user_id, kind, title, body, raw, created_at
        )

    def _unread_sync(self, user_id: str, limit: int) -> list[Notification]:
        rows = self._conn().execute(
            f"SELECT {_N_COLUMNS} FROM notifications WHERE user_id = ? AND read = 0"
            " ORDER BY id DESC LIMIT ?",
            (user_id, limit),
        ).fetchall()
        rows.reverse()
        return [_notification(r) for r in rows]

    async def unread_notifications(self, user_id: str, limit: int = 50) -> list[Notification]:
        return await self._run(self._unread_sync, user_id, limit)

    def _list_sync(self, user_id: str, after: int, limit: int) -> list[Notification]:
        rows = self._conn().execute(
            f"SELECT {_N_COLUMNS} FROM notifications WHERE user_id = ? AND id > ?"
            " ORDER BY id LIMIT ?",
            (user_id, after, limit),
        ).fetchall()
        return [_notification(r) for r in rows]

    async def list_notifications(self, user_id: str, after: int, limit: int) -> list[Notification]:
        return await self._run(self._list_sync, user_id, after, limit)

    def _mark_read_sync(self, user_id: str, ids: list[int]) -> list[int]:
        db = self._conn()
        owned: list[int] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(ids), _MAX_IDS_PER_QUERY):
                chunk = ids[start : start + _MAX_IDS_PER_QUERY]
                marks = ",".join("?" * len(chunk))
                owned.extend(
                    r[0]
                    for r in db.execute(
                        f"SELECT id FROM notifications WHERE user_id = ? AND id IN ({marks})",
                        (user_id, *chunk),
                    )
                )
                db.execute(
                    f"UPDATE notifications SET read = 1"
                    f" WHERE user_id = ? AND read = 0 AND id IN ({marks})",
                    (user_id, *chunk),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return sorted(set(owned))

    async def mark_read(self, user_id: str, ids: list[int]) -> list[int]:
        unique = sorted({i for i in ids if isinstance(i, int) and not isinstance(i, bool)})
        if not unique:
            return []
        return await self._run(self._mark_read_sync, user_id, unique)

    # --- alerts ---------------------------------------------------------------------------

    def _add_alert_sync(
        self, user_id: str, symbol: str, direction: Direction, level: float, created_at: int,
        limit: int | None,
    ) -> Alert:
        conn = self._conn()
        if limit is not None:  # one database thread: the count and the insert cannot interleave
            (held,) = conn.execute("SELECT COUNT(*) FROM alerts WHERE user_id = ?", (user_id,)).fetchone()
            if held >= limit:
                raise TooManyAlerts(f"at most {limit} alerts per user")
        cur = conn.execute(
            "INSERT INTO alerts (user_id, symbol, direction, level, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (user_id, symbol, direction, level, created_at),
        )
        assert cur.lastrowid is not None
        return Alert(cur.lastrowid, user_id, symbol, direction, level, created_at)

    async def add_alert(
        self, user_id: str, symbol: str, direction: Direction, level: float, created_at: int,
        limit: int | None = None,
    ) -> Alert:
        if direction not in ("above", "below"):
            raise ValueError("direction must be above or below")
        return await self._run(self._add_alert_sync, user_id, symbol, direction, level, created_at, limit)

    def _list_alerts_sync(self, user_id: str | None) -> list[Alert]:
        if user_id is None:
            cur = self._conn().execute(f"SELECT {_A_COLUMNS} FROM alerts ORDER BY id")
        else:
            cur = self._conn().execute(
                f"SELECT {_A_COLUMNS} FROM alerts WHERE user_id = ? ORDER BY id", (user_id,)
            )
        return [_alert(r) for r in cur]

    async def list_alerts(self, user_id: str) -> list[Alert]:
        return await self._run(self._list_alerts_sync, user_id)

    async def all_alerts(self) -> list[Alert]:
        return await self._run(self._list_alerts_sync, None)

    def _delete_alert_sync(self, user_id: str, alert_id: int) -> bool:
        cur = self._conn().execute(
            "DELETE FROM alerts WHERE id = ? AND user_id = ?", (alert_id, user_id)
        )
        return cur.rowcount > 0

    async def delete_alert(self, user_id: str, alert_id: int) -> bool:
        return await self._run(self._delete_alert_sync, user_id, alert_id)

    def _fire_alert_sync(
        self, alert_id: int, kind: str, title: str, body: str, data: bytes | None, created_at: int
    ) -> FiredAlert | None:
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT user_id FROM alerts WHERE id = ?", (alert_id,)).fetchone()
            if row is None:
                db.execute("ROLLBACK")
                return None
            db.execute("DELETE FROM alerts WHERE id = ?", (alert_id,))
            notification = self._add_notification_sync(row[0], kind, title, body, data, created_at)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return FiredAlert(row[0], notification)

    async def fire_alert(
        self, alert_id: int, kind: str, title: str, body: str, data: Any, created_at: int
    ) -> FiredAlert | None:
        raw = None if data is None else _encode(data)
        return await self._run(self._fire_alert_sync, alert_id, kind, title, body, raw, created_at)

    # --- bot states -----------------------------------------------------------------------

    def _running_sync(self, user_id: str) -> int:
        row = self._conn().execute(
            "SELECT COUNT(*) FROM bots WHERE user_id = ? AND status = 'running'", (user_id,)
        ).fetchone()
        return int(row[0])

    def _put_bot_sync(
        self, user_id: str, bot_id: str, status: str, ts: int, detail: bytes | None
    ) -> BotState:
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT INTO bots (user_id, bot_id, status, ts, detail) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (user_id, bot_id) DO UPDATE SET"
                " status = excluded.status, ts = excluded.ts, detail = excluded.detail",
                (user_id, bot_id, status, ts, detail),
            )
            running = self._running_sync(user_id)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return BotState(bot_id, status, ts, running, None if detail is None else _decode(detail))

    async def put_bot(
        self, user_id: str, bot_id: str, status: str, ts: int, detail: Any
    ) -> BotState:
        check_status(status)
        raw = None if detail is None else _encode(detail)
        return await self._run(self._put_bot_sync, user_id, bot_id, status, ts, raw)

    def _bots_sync(self, user_id: str) -> list[BotState]:
        db = self._conn()
        # One read transaction: the count and the rows are of the same instant.
        db.execute("BEGIN")
        try:
            running = self._running_sync(user_id)
            rows = db.execute(
                "SELECT bot_id, status, ts, detail FROM bots WHERE user_id = ? ORDER BY bot_id",
                (user_id,),
            ).fetchall()
        finally:
            db.execute("COMMIT")
        return [
            BotState(r[0], r[1], r[2], running, None if r[3] is None else _decode(r[3]))
            for r in rows
        ]

    async def bots(self, user_id: str) -> list[BotState]:
        return await self._run(self._bots_sync, user_id)
