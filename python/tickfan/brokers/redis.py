"""The Redis broker: every node of a deployment (each ``--workers`` process, each machine) on one
Redis 7 primary with AOF (docs/architecture.md, "Cluster data flow").

Keys (one primary, no Cluster: the scripts touch user keys they are not given):

* ``tf:log``: the ordered tick log, one entry per ingested batch ``{e: epoch, t: ticks JSON,
  q: "SYM=last seq;...", o: ingesting node, p: the previous entry's id}``, written only by
  ``lua/ingest.lua``; trimmed behind the previous checkpoint (``lua/checkpoint.lua``), or by time
  (``MINID ~``, ``--log-retention-s``) when checkpoints are off;
* ``tf:ckpt``: the checkpoint ``{e: epoch, p: log id, s: every traded symbol's tick state
  (Core.checkpoint, msgpack)}``, written every ``--checkpoint-interval-s`` by the lease holder;
* ``tf:meta`` (``epoch``; ``top``, the last entry's id; ``ckpt``, the checkpoint's), ``tf:seq``
  and ``tf:lastts`` (per symbol), ``tf:config`` (the config hash every node must match),
  ``tf:lease`` (who runs the simulated feed and writes checkpoints);
* ``tf:events``: per-user events ``{k: n|b, u: user, ...}`` (notifications, bot states),
  capped at :data:`EVENTS_MAX`;
* per user ``tf:u:{U}:*`` and per alert ``tf:alert:N``, ``tf:al:{SYM}:above|below`` (see the
  scripts under ``lua/``).

Each node runs one reader (its own connection, no retries): ``XREAD BLOCK`` over ``tf:log`` and
``tf:events``. Every node, the ingesting one included, applies ticks only from the log, so its
core's state is a function of its log position. On a connection error the reader backs off and
resumes from the last id it applied: nothing acknowledged is lost or applied twice.

A node starts from the checkpoint (``Hub.restore``) and reads the log after its position. An
entry whose ``p`` is not the id the node applied last means the log was trimmed past the node
(it joined or lagged too long): it loads the newer checkpoint (sockets closed with 1012, as the
core is replaced) and reads on from there, unready until it has caught up.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import random
import secrets
import time
import uuid
from collections.abc import Sequence
from importlib import resources
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from tickfan.bots import BotState, check_status
from tickfan.brokers.base import Broker, Node
from tickfan.config import Config
from tickfan.core._python.tick import validate
from tickfan.core._python.universe import POW10, Universe
from tickfan.errors import (
    BrokerUnavailable,
    ConfigError,
    InvalidArgument,
    TickRejected,
    TooManyAlerts,
    UnknownSymbol,
)
from tickfan.stores.base import Alert, Direction, FiredAlert, Notification, Store

__all__ = ["RedisBroker", "RedisStore", "check_url", "safe_url", "config_hash", "EVENTS_MAX"]

_log = logging.getLogger("tickfan.brokers.redis")

LOG = "tf:log"
EVENTS = "tf:events"
META = "tf:meta"
SEQ = "tf:seq"
LASTTS = "tf:lastts"
CONFIG = "tf:config"
LEASE = "tf:lease"
CKPT = "tf:ckpt"
EPOCH_KEYS = [META, SEQ, LASTTS, LOG]

EVENTS_MAX = 100_000
"""``tf:events`` length cap: events are for live pushes only; state is read from the keys."""
IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000
"""How long a client's ``Idempotency-Key`` is remembered."""
INTERNAL_KEY_TTL_MS = 60_000
"""The key every batch without one gets, so a command retried after a timeout applies once."""
INGEST_ATTEMPTS = 2
"""An ingest whose call failed is sent once more with the same key before the 503."""
CALL_TIMEOUT_S = 1.0
"""Deadline of one broker call (ingest, a write): then ``BrokerUnavailable`` (HTTP 503)."""
READ_BLOCK_MS = 1000
READ_COUNT = 1000
READER_TIMEOUT_S = 3.0
PING_EVERY_S = 0.25
PING_TIMEOUT_S = 0.5
LEASE_MS = 3000
BOOT_WAIT_S = 5.0
_MAX_TS = 2**53 - 1
_CHECKPOINT = list[tuple[str, int, int, list[tuple[int, int, int]], list[tuple[int, list[tuple[int, int, int, int, int, int]]]]]]
"""``Core.checkpoint`` as ``tf:ckpt`` holds it (msgpack decodes it back to these tuples)."""


class _LogGap(Exception):
    """The log no longer holds the entry after this node's position (trimmed behind a checkpoint)."""


def _script(name: str) -> str:
    text = resources.files("tickfan.brokers").joinpath("lua", name).read_text(encoding="utf-8")
    if name in ("ingest.lua", "notification.lua", "alert_fire.lua"):
        text = resources.files("tickfan.brokers").joinpath("lua", "notify.lua").read_text(encoding="utf-8") + text
    return text


def _client(url: str, timeout: float, retries: int = 0) -> aioredis.Redis:
    """A client that retries a command ``retries`` times on a fresh connection (a pooled
    connection may be stale after a Redis restart); ingest is idempotent, so its retry is safe."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), retries),
    )


def safe_url(url: str) -> str:
    """``url`` without its password (for messages and logs)."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at:
        return url
    user = creds.partition(":")[0]
    return f"{scheme}{sep}{user}:***@{host}" if ":" in creds else f"{scheme}{sep}***@{host}"


def check_url(url: str, config: Config | None = None, timeout: float = 2.0) -> None:
    """``ConfigError`` (one line) unless ``url`` parses, a Redis >= 7 answers there and, given
    ``config``, the cluster's config hash (if any node wrote one) is this config's."""
    import redis as sync_redis

    try:
        client = sync_redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=None)
    except ValueError as exc:
        raise ConfigError(f"--broker {safe_url(url)!r} is not a valid Redis URL: {exc}") from None
    try:
        client.ping()
        version = str(client.info("server").get("redis_version", "0"))
        found = client.get(CONFIG)
    except RedisError as exc:
        raise ConfigError(f"cannot reach Redis at --broker {safe_url(url)!r}: {exc}") from None
    finally:
        client.close()
    if int(version.split(".")[0]) < 7:
        raise ConfigError(f"Redis at --broker {safe_url(url)!r} is {version}; tickfan needs Redis >= 7")
    if config is not None and found is not None and _s(found) != config_hash(config):
        raise ConfigError(_MISMATCH.format(mine=config_hash(config), theirs=_s(found)))


_MISMATCH = (
    "this node's symbol universe / candle retention / --high-freq-per-s / resume ring "
    "(--resume-window-ms, --resume-max-ticks) differ from the cluster's "
    "(config hash {mine} != {theirs} in Redis): every node must be started with the same ones"
)


def config_hash(config: Config) -> str:
    """What every node must share to give the same answers: universe, candles, auto threshold,
    and the resume ring's bounds (so a client resumes alike on every node)."""
    shared = {
        "universe": [(s.symbol, s.price_decimals, s.size_decimals) for s in config.universe()],
        "candle_retention": sorted(config.candle_retention),
        "high_freq_per_s": config.high_freq_per_s,
        "resume_window_ms": config.resume_window_ms,
        "resume_max_ticks": config.resume_max_ticks,
    }
    return hashlib.sha256(json.dumps(shared, sort_keys=True).encode()).hexdigest()[:16]


def _id(stream_id: bytes | str) -> tuple[int, int]:
    text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _text(value: float) -> str:
    return repr(float(value))


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


_decode_json = msgspec.json.decode
_encode_json = msgspec.json.encode


class _NotificationBody(msgspec.Struct):
    kind: str
    title: str
    body: str
    data: Any
    created_at: int


class _BotBody(msgspec.Struct):
    bot_id: str
    status: str
    ts: int
    detail: Any = None


def _notification(nid: int, raw: bytes, read: bool) -> Notification:
    b = msgspec.json.decode(raw, type=_NotificationBody)
    return Notification(nid, b.kind, b.title, b.body, b.data, b.created_at, read)


def _bot(raw: bytes, running: int) -> BotState:
    b = msgspec.json.decode(raw, type=_BotBody)
    return BotState(b.bot_id, b.status, b.ts, running, b.detail)


def _user(user_id: str) -> str:
    return "tf:u:{" + user_id + "}:"


class RedisStore(Store):
    """Notifications, alerts and bot states in Redis (durable with AOF ``always``).

    Writes are Lua scripts that also append the event to ``tf:events``, so every node pushes it.
    """

    def __init__(self, url: str, timeout: float = CALL_TIMEOUT_S) -> None:
        self.url = url
        self._timeout = timeout
        self.redis: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}

    @property
    def r(self) -> aioredis.Redis:
        assert self.redis is not None, "RedisStore.open() first"
        return self.redis

    async def _call(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        return await self._guard(self._scripts[name](keys=list(keys), args=list(args)))

    async def _guard(self, awaitable: Any) -> Any:
        try:
            async with asyncio.timeout(self._timeout):
                return await awaitable
        except (RedisError, TimeoutError, OSError) as exc:
            if isinstance(exc, ResponseError) and "NOSCRIPT" not in str(exc):
                raise
            raise BrokerUnavailable(f"Redis did not answer: {exc or type(exc).__name__}") from None

    async def open(self) -> None:
        self.redis = _client(self.url, self._timeout, retries=1)
        for name in ("ingest", "epoch", "notification", "bot", "alert_add", "alert_delete", "alert_fire", "lease", "checkpoint"):
            self._scripts[name] = self.redis.register_script(_script(name + ".lua"))

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None

    async def ping(self) -> bool:
        try:
            return bool(await self._guard(self.r.ping()))
        except BrokerUnavailable:
            return False

    # --- notifications ------------------------------------------------------------------

    async def add_notification(
        self, user_id: str, kind: str, title: str, body: str, data: Any, created_at: int
    ) -> Notification:
        raw = _encode_json(_NotificationBody(kind, title, body, data, created_at))
        nid = int(await self._call("notification", [EVENTS], [user_id, raw, EVENTS_MAX]))
        return Notification(nid, kind, title, body, data, created_at, False)

    async def _load(self, user_id: str, ids: list[int], unread: set[int] | None) -> list[Notification]:
        if not ids:
            return []
        raws = await self._guard(self.r.hmget(_user(user_id) + "n", ids))
        if unread is None:
            scores = await self._guard(self.r.zmscore(_user(user_id) + "unread", ids))
            unread = {i for i, score in zip(ids, scores) if score is not None}
        return [_notification(i, raw, i not in unread) for i, raw in zip(ids, raws) if raw is not None]

    async def unread_notifications(self, user_id: str, limit: int = 50) -> list[Notification]:
        newest = await self._guard(self.r.zrevrange(_user(user_id) + "unread", 0, limit - 1))
        ids = sorted(int(i) for i in newest)
        return await self._load(user_id, ids, set(ids))

    async def list_notifications(self, user_id: str, after: int, limit: int) -> list[Notification]:
        ids = await self._guard(self.r.zrangebyscore(_user(user_id) + "all", f"({after}", "+inf", start=0, num=limit))
        return await self._load(user_id, [int(i) for i in ids], None)

    async def mark_read(self, user_id: str, ids: list[int]) -> list[int]:
        wanted = sorted(set(ids))
        if not wanted:
            return []
        scores = await self._guard(self.r.zmscore(_user(user_id) + "all", wanted))
        own = [i for i, score in zip(wanted, scores) if score is not None]
        if own:
            await self._guard(self.r.zrem(_user(user_id) + "unread", *own))
        return own

    # --- alerts ---------------------------------------------------------------------------

    async def add_alert(
        self, user_id: str, symbol: str, direction: Direction, level: float, created_at: int,
        limit: int | None = None,
    ) -> Alert:
        aid = int(await self._call("alert_add", [], [user_id, symbol, direction, _text(level), created_at, limit or 0]))
        if aid == 0:
            raise TooManyAlerts(f"at most {limit} alerts per user")
        return Alert(aid, user_id, symbol, direction, float(level), created_at)

    async def _alerts(self, ids: list[int]) -> list[Alert]:
        if not ids:
            return []
        pipe = self.r.pipeline(transaction=False)
        for aid in ids:
            pipe.hmget(f"tf:alert:{aid}", "user", "symbol", "direction", "level", "created_at")
        rows = await self._guard(pipe.execute())
        return [
            Alert(aid, _s(row[0]), _s(row[1]), _s(row[2]), float(row[3]), int(row[4]))  # type: ignore[arg-type]
            for aid, row in zip(ids, rows)
            if row[0] is not None
        ]

    async def list_alerts(self, user_id: str) -> list[Alert]:
        ids = await self._guard(self.r.zrange(_user(user_id) + "alerts", 0, -1))
        return await self._alerts(sorted(int(i) for i in ids))

    async def all_alerts(self) -> list[Alert]:
        ids = [int(_s(key).rsplit(":", 1)[1]) async for key in self.r.scan_iter(match="tf:alert:[0-9]*", count=1000)]
        return await self._alerts(sorted(ids))

    async def delete_alert(self, user_id: str, alert_id: int) -> bool:
        return bool(await self._call("alert_delete", [], [user_id, alert_id]))

    async def fire_alert(
        self, alert_id: int, kind: str, title: str, body: str, data: Any, created_at: int
    ) -> FiredAlert | None:
        raw = _encode_json(_NotificationBody(kind, title, body, data, created_at))
        result = await self._call("alert_fire", [EVENTS], [alert_id, raw, EVENTS_MAX])
        if not result:
            return None
        return FiredAlert(_s(result[0]), Notification(int(result[1]), kind, title, body, data, created_at, False))

    # --- bot states -----------------------------------------------------------------------

    async def put_bot(self, user_id: str, bot_id: str, status: str, ts: int, detail: Any) -> BotState:
        check_status(status)
        raw = _encode_json(_BotBody(bot_id, status, ts, detail))
        running = int(await self._call("bot", [EVENTS], [user_id, bot_id, status, raw, EVENTS_MAX]))
        return BotState(bot_id, status, ts, running, detail)

    async def bots(self, user_id: str) -> list[BotState]:
        pipe = self.r.pipeline(transaction=True)
        pipe.hgetall(_user(user_id) + "bots")
        pipe.scard(_user(user_id) + "running")
        states, running = await self._guard(pipe.execute())
        return sorted((_bot(raw, int(running)) for raw in states.values()), key=lambda s: s.bot_id)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class RedisBroker(Broker):
    """Ticks through ``tf:log``, events through ``tf:events``, state in :class:`RedisStore`."""

    checks_clock = True

    def __init__(self, config: Config, node_id: str | None = None) -> None:
        self.config = config
        self.url = config.broker
        self.node_id = node_id or uuid.uuid4().hex[:12]
        self.store: RedisStore = RedisStore(self.url)
        self._universe = Universe([(s.symbol, s.price_decimals, s.size_decimals) for s in config.universe()])
        self._specs = {s.symbol: s for s in config.universe()}
        self._epoch = ""
        self._node: Node | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # reader state
        self._log_id = "0-0"
        self._events_id = "0-0"
        self._applied: dict[str, int] = {}  # symbol -> last seq applied here
        self._waiters: list[tuple[tuple[int, int], asyncio.Future[None]]] = []
        self._boot_target: tuple[int, int] = (0, 0)
        self.caught_up = False
        self.diverged: str | None = None
        self._reader_ok_at = 0.0
        self._read_sent_at = 0.0
        self._ping_ok = False
        self._reset_to: str | None = None
        self._stopping = False
        # counters for /metrics and tests
        self.reconnects = 0
        self.unavailable = 0
        self.is_leader = False
        self.entries_applied = 0
        self.apply_delay_s = 0.0
        self.checkpoints_written = 0
        self.checkpoint_loaded: str | None = None
        """The log id of the last checkpoint this node loaded (None: it replayed from the start)."""
        self._checkpoint_written_at = 0.0

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def epoch(self) -> str:
        return self._epoch

    def stats(self) -> dict[str, float]:
        """Counters for ``/metrics`` (``tickfan_broker_*``)."""
        return {
            "ready": float(self.readiness() is None),
            "reconnects": self.reconnects,
            "unavailable": self.unavailable,
            "entries_applied": self.entries_applied,
            "apply_delay_s": self.apply_delay_s,
            "leader": float(self.is_leader),
            "checkpoints_written": self.checkpoints_written,
            "checkpoint_age_s": time.time() - self._checkpoint_written_at if self._checkpoint_written_at else 0.0,
        }

    async def start(self, node: Node) -> None:
        self._node = node
        metrics = getattr(node, "metrics", None)
        if metrics is not None:
            metrics.broker_stats = self.stats
        await self.store.open()
        r = self.store.r
        try:
            async with asyncio.timeout(5):
                wanted = config_hash(self.config)
                await r.set(CONFIG, wanted, nx=True)
                found = _s(await r.get(CONFIG))
                if found != wanted:
                    raise ConfigError(_MISMATCH.format(mine=wanted, theirs=found))
                self._epoch = _s(await self.store._scripts["epoch"](keys=EPOCH_KEYS, args=[secrets.token_hex(8)]))
                top = await r.xrevrange(LOG, "+", "-", count=1)
                self._boot_target = _id(top[0][0]) if top else (0, 0)
                await self._load_checkpoint(r)
                top_events = await r.xrevrange(EVENTS, "+", "-", count=1)
                self._events_id = _s(top_events[0][0]) if top_events else "0-0"
        except (RedisError, TimeoutError, OSError) as exc:
            raise ConfigError(f"cannot reach Redis at --broker {safe_url(self.url)!r}: {exc}") from None
        self._ping_ok = True
        self._reader_ok_at = time.monotonic()
        self._tasks = [
            asyncio.create_task(self._read_loop(), name="tickfan-redis-reader"),
            asyncio.create_task(self._ping_loop(), name="tickfan-redis-ping"),
        ]
        if self.config.checkpoint_interval_s > 0:
            self._tasks.append(asyncio.create_task(self._checkpoint_loop(), name="tickfan-redis-checkpoint"))
        _log.info("redis broker %s: node %s, epoch %s, from %s, replaying the log up to %s", safe_url(self.url),
                  self.node_id, self._epoch, f"the checkpoint at {self._log_id}" if self.checkpoint_loaded else "the start",
                  "%d-%d" % self._boot_target)
        # Catch up before serving when the log is short; a long replay goes on in the
        # background, /readyz answering 503 until it is done.
        deadline = time.monotonic() + BOOT_WAIT_S
        while not self.caught_up and time.monotonic() < deadline:
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        # redis-py may turn a cancelled blocking read into a TimeoutError: the loops also check
        # _stopping, and stop waits for them at most a read's timeout.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(READER_TIMEOUT_S):
                await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.is_leader:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(0.5):
                    if _s(await self.store.r.get(LEASE) or b"") == self.node_id:
                        await self.store.r.delete(LEASE)
        await self.store.close()

    async def ready(self) -> bool:
        return self.readiness() is None

    def readiness(self) -> str | None:
        """None when ready, else why not (``/readyz`` body)."""
        if self._stopping or self._node is None:
            return "stopped"
        if self.diverged:
            return self.diverged
        if not self._ping_ok:
            return "redis unreachable"
        if not self.caught_up:
            return "catching up with the log"
        # The reader is live while its last XREAD returned, or its current one was sent, within
        # its socket timeout: a blocked XREAD sent during a stall is served once Redis runs again.
        if time.monotonic() - max(self._reader_ok_at, self._read_sent_at) > READER_TIMEOUT_S:
            return "log reader lagging"
        return None

    # --- ticks ------------------------------------------------------------------------------

    def _validate(self, ticks: Sequence[Any], last_ts: list[int], now: int) -> list[tuple[int, int, int, int]]:
        """The cores' rules (the twin's code), the far-future ``ts`` bound against this node's
        clock included: the nodes applying the log do not check their own (``checks_clock``)."""
        if isinstance(ticks, (str, bytes)):
            raise TypeError("ticks must be a sequence of [symbol, price, size, ts]")
        return validate(self._universe, last_ts, ticks, now, self.config.max_ts_skew_ms)

    async def ingest(self, ticks: Sequence[Any], idempotency_key: str | None = None) -> int:
        now = now_ms()
        try:
            parsed = self._validate(ticks, [-1] * len(self._universe.specs), now)
        except TickRejected:
            await self._refuse(ticks, now)
            raise  # pragma: no cover - _refuse raises
        if not parsed:
            return 0
        too_far = [(i, "ts out of range") for i, (_, _, _, ts) in enumerate(parsed) if ts > _MAX_TS]
        if too_far:  # the scripts compare ts as doubles, exact up to 2**53
            raise TickRejected(f"{len(too_far)} of {len(parsed)} ticks rejected", too_far)
        specs = self._universe.specs
        rows: list[list[Any]] = []
        args: list[Any] = []
        for s, pu, su, ts in parsed:
            name, pd, sd = specs[s]
            price = pu / POW10[pd]
            rows.append([name, price, su / POW10[sd], ts])
            args += (name, ts, repr(price))
        key = f"tf:idem:{idempotency_key}" if idempotency_key else f"tf:idem:~{uuid.uuid4().hex}"
        ttl = IDEMPOTENCY_TTL_MS if idempotency_key else INTERNAL_KEY_TTL_MS
        # With checkpoints the log is trimmed behind them (lua/checkpoint.lua), not by time.
        retention_ms = int(self.config.log_retention_s * 1000) if self.config.checkpoint_interval_s == 0 else 0
        minid = max(1, now_ms() - retention_ms) if retention_ms else 0
        keys = [META, SEQ, LASTTS, LOG, EVENTS, key]
        argv = [secrets.token_hex(8), ttl, minid, now_ms(), _encode_json(rows), EVENTS_MAX, self.node_id, len(rows), *args]
        for attempt in range(INGEST_ATTEMPTS):
            try:
                result = await self.store._call("ingest", keys, argv)
                break
            except BrokerUnavailable:
                # A deadline can pass after Redis applied the call (this node's loop was late):
                # the same call again answers ``dup`` if so, and applies it once if not.
                if attempt + 1 == INGEST_ATTEMPTS:
                    self.unavailable += 1
                    raise
        status = _s(result[0])
        if status == "err":
            flat = result[1:]
            errors = [
                (int(flat[i]), f"ts {parsed[int(flat[i])][3]} is earlier than the previous tick's ts {int(flat[i + 1])}")
                for i in range(0, len(flat), 2)
            ]
            raise TickRejected(f"{len(errors)} of {len(rows)} ticks rejected", errors)
        await self._wait_applied(_id(result[1]))
        return len(rows)

    async def _refuse(self, ticks: Sequence[Any], now: int) -> None:
        """Raise ``TickRejected`` with every bad tick's message, as one core holding the
        cluster's last ts would (so the ts rule is checked against ``tf:lastts``)."""
        universe = self._universe
        names = sorted({t[0] for t in ticks if isinstance(t, (tuple, list)) and len(t) == 4
                        and isinstance(t[0], str) and t[0] in universe.index})
        last = [-1] * len(universe.specs)
        if names:
            with contextlib.suppress(BrokerUnavailable):
                stored = await self.store._guard(self.store.r.hmget(LASTTS, names))
                for name, value in zip(names, stored):
                    if value is not None:
                        last[universe.index[name]] = int(value)
        self._validate(ticks, last, now)

    async def _wait_applied(self, target: tuple[int, int]) -> None:
        """Return once this node applied the log up to ``target`` (read-your-writes), or after
        the call deadline: the batch is in the log either way and will be applied."""
        if _id(self._log_id) >= target:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, future))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CALL_TIMEOUT_S):
                await future

    # --- per-user writes -----------------------------------------------------------------------

    async def put_bot(self, user_id: str, bot_id: str, status: str, detail: Any) -> BotState:
        return await self._counted(self.store.put_bot(user_id, bot_id, status, now_ms(), detail))

    async def notify(self, user_id: str, kind: str, title: str, body: str, data: Any) -> Notification:
        return await self._counted(self.store.add_notification(user_id, kind, title, body, data, now_ms()))

    async def add_alert(self, user_id: str, symbol: str, direction: Direction, level: float) -> Alert:
        if symbol not in self._specs:
            raise UnknownSymbol(f"unknown symbol {symbol!r}", symbol)
        if direction not in ("above", "below"):
            raise InvalidArgument("direction must be above or below")
        if not (isinstance(level, (int, float)) and math.isfinite(level) and level > 0):
            raise InvalidArgument("level must be a finite number > 0")
        return await self._counted(
            self.store.add_alert(user_id, symbol, direction, float(level), now_ms(), self.config.max_alerts_per_user)
        )

    async def delete_alert(self, user_id: str, alert_id: int) -> bool:
        return await self._counted(self.store.delete_alert(user_id, alert_id))

    async def _counted(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except BrokerUnavailable:
            self.unavailable += 1
            raise

    # --- the lease (who runs the simulated feed and writes checkpoints) -------------------------

    async def hold_lease(self) -> bool:
        """Take or extend the lease (``LEASE_MS``); True while this node holds it."""
        try:
            held = bool(await self.store._call("lease", [LEASE], [self.node_id, LEASE_MS]))
        except BrokerUnavailable:
            held = False
        if held != self.is_leader:
            _log.info("node %s %s the lease (simulated feed, checkpoints)", self.node_id, "holds" if held else "lost")
        self.is_leader = held
        return held

    # --- checkpoints -----------------------------------------------------------------------------

    async def _checkpoint_loop(self) -> None:
        """Hold the lease (it also elects the simulated feed's node) and, while held, write a
        checkpoint every ``--checkpoint-interval-s``."""
        every = self.config.checkpoint_interval_s
        last = time.monotonic()
        while not self._stopping:
            await asyncio.sleep(min(every, LEASE_MS / 3000))
            try:
                if await self.hold_lease() and time.monotonic() - last >= every:
                    last = time.monotonic()
                    await self.write_checkpoint()
            except Exception:  # noqa: BLE001 - the next round tries again
                _log.exception("checkpoint")

    async def write_checkpoint(self) -> bool:
        """Store this node's tick state at its log position as the cluster's checkpoint, unless
        the stored one is as new, and trim the log behind the previous one. False if not written
        (not caught up, diverged, nothing applied, an older position, or Redis away)."""
        node = self._node
        if node is None or not self.caught_up or self.diverged or self._log_id == "0-0":
            return False
        position, epoch = self._log_id, self._epoch
        blob = msgspec.msgpack.encode(node.checkpoint())  # the state at `position`: nothing awaited since
        try:
            written = bool(await self.store._call("checkpoint", [META, CKPT, LOG], [epoch, position, blob]))
        except BrokerUnavailable:
            return False
        if written:
            self.checkpoints_written += 1
            self._checkpoint_written_at = time.time()
        return written

    async def _load_checkpoint(self, r: aioredis.Redis) -> bool:
        """Load the stored checkpoint into the node if it is of this epoch and ahead of the
        node's position; the reader then reads the log after it."""
        epoch, position, blob = await r.hmget(CKPT, ["e", "p", "s"])
        if epoch is None or position is None or blob is None or _s(epoch) != self._epoch:
            return False
        if _id(position) <= _id(self._log_id):
            return False
        state = msgspec.msgpack.decode(blob, type=_CHECKPOINT)
        assert self._node is not None
        self._node.restore(state)
        self._log_id = _s(position)
        self._applied = {name: seq for name, seq, *_ in state}
        self.diverged = None
        self.checkpoint_loaded = self._log_id
        return True

    async def _rebootstrap(self, client: aioredis.Redis, gap: _LogGap) -> None:
        """The log was trimmed past this node's position: load the newer checkpoint (or stay
        diverged if there is none) and catch up from it."""
        top = await client.xrevrange(LOG, "+", "-", count=1)
        if await self._load_checkpoint(client):
            self.caught_up = False
            self._boot_target = _id(top[0][0]) if top else (0, 0)
            _log.warning("node %s: %s; loaded the checkpoint at %s", self.node_id, gap, self._log_id)
        elif not self.diverged:
            self.diverged = (
                f"{gap} and no newer checkpoint exists (--checkpoint-interval-s 0 and "
                "--log-retention-s trimmed it?): see docs/operations.md"
            )
            _log.error("node %s diverged from the cluster: %s", self.node_id, self.diverged)

    # --- the reader ----------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        backoff = 0.05
        client: aioredis.Redis | None = None
        while not self._stopping:
            try:
                if client is None:
                    client = _client(self.url, READER_TIMEOUT_S)
                if self._reset_to is not None:
                    self._reset(self._reset_to)
                self._check_caught_up()
                self._read_sent_at = time.monotonic()
                reply = await client.xread({LOG: self._log_id, EVENTS: self._events_id}, count=READ_COUNT, block=READ_BLOCK_MS)
                self._reader_ok_at = time.monotonic()
                backoff = 0.05
                try:
                    for stream, entries in reply or ():
                        if _s(stream) == LOG:
                            self._apply(entries)
                        else:
                            self._events(entries)
                except _LogGap as gap:
                    await self._rebootstrap(client, gap)
                self._check_caught_up()
            except asyncio.CancelledError:
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.aclose()
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                if self._stopping:
                    break
                self.reconnects += 1
                _log.warning("redis log reader: %s; retrying in %.2fs from %s", exc or type(exc).__name__, backoff, self._log_id)
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.aclose()
                    client = None
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(1.0, backoff * 2)
            except Exception:  # noqa: BLE001 - the reader must survive anything
                _log.exception("redis log reader failed")
                await asyncio.sleep(0.1)
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    def _check_caught_up(self) -> None:
        if not self.caught_up and _id(self._log_id) >= self._boot_target:
            self.caught_up = True
            _log.info("node %s caught up with the log at %s", self.node_id, self._log_id)

    def _apply(self, entries: list[Any]) -> None:
        node = self._node
        assert node is not None
        for entry_id, fields in entries:
            epoch = _s(fields[b"e"])
            if epoch != self._epoch:
                self._new_epoch(epoch)
            elif not self.diverged and (previous := fields.get(b"p")) is not None and _s(previous) != self._log_id:
                raise _LogGap(f"the log was trimmed past this node's position {self._log_id} (next entry {_s(entry_id)})")
            ticks = _decode_json(fields[b"t"])
            if not self.diverged:
                try:
                    node.apply(ticks)
                except Exception as exc:  # noqa: BLE001 - never re-read an entry: mark and go on
                    self.diverged = f"log entry {_s(entry_id)} not applied: {exc!r}"[:300]
                    _log.error("node %s diverged from the cluster: %s", self.node_id, self.diverged)
                self._check_seqs(ticks, _s(fields[b"q"]), _s(entry_id))
            self._log_id = _s(entry_id)
            self.entries_applied += 1
        if entries:
            self.apply_delay_s = max(0.0, time.time() - _id(self._log_id)[0] / 1000.0)
        if self._waiters:
            done = _id(self._log_id)
            keep = []
            for target, future in self._waiters:
                if target <= done:
                    if not future.done():
                        future.set_result(None)
                else:
                    keep.append((target, future))
            self._waiters = keep

    def _check_seqs(self, ticks: list[Any], q: str, entry_id: str) -> None:
        applied = self._applied
        for tick in ticks:
            applied[tick[0]] = applied.get(tick[0], 0) + 1
        for part in q.split(";"):
            name, _, seq = part.partition("=")
            if applied.get(name) != int(seq) and not self.diverged:
                self.diverged = (
                    f"seq of {name} here ({applied.get(name)}) differs from the cluster's ({seq}) at {entry_id}: "
                    "the log was trimmed (--log-retention-s) before this node joined; see docs/operations.md"
                )
                _log.error("node %s diverged from the cluster: %s", self.node_id, self.diverged)

    def _events(self, entries: list[Any]) -> None:
        node = self._node
        assert node is not None
        for entry_id, fields in entries:
            self._events_id = _s(entry_id)
            try:
                kind, user = fields[b"k"], _s(fields[b"u"])
                if kind == b"n":
                    node.deliver(user, _notification(int(fields[b"i"]), fields[b"j"], False))
                elif kind == b"b":
                    node.deliver(user, _bot(fields[b"j"], int(fields[b"c"])))
            except Exception:  # noqa: BLE001 - one bad event must not stop the others
                _log.exception("event %s not delivered", _s(entry_id))

    def _new_epoch(self, epoch: str) -> None:
        """Redis lost the tick state: seq restarts at 1 under ``epoch``; the node resets."""
        old, self._epoch = self._epoch, epoch
        self._applied = {}
        self.diverged = None
        _log.warning("epoch changed %s -> %s (Redis lost its data): resetting", old, epoch)
        assert self._node is not None
        self._node.new_epoch(epoch)

    def _reset(self, epoch: str) -> None:
        """The ping found a new epoch before any entry of it reached the reader: read the new
        log and events from their start."""
        self._reset_to = None
        if epoch != self._epoch:
            self._log_id = "0-0"
            self._events_id = "0-0"
            self._new_epoch(epoch)

    async def _ping_loop(self) -> None:
        client = _client(self.url, PING_TIMEOUT_S)
        try:
            while not self._stopping:
                try:
                    async with asyncio.timeout(PING_TIMEOUT_S):
                        # One command is the health check: an answer proves Redis serves. An
                        # epoch is minted here when Redis lost its data (or tf:meta was
                        # deleted): the nodes move to it without waiting for the next ingest.
                        epoch = await self.store._scripts["epoch"](keys=EPOCH_KEYS, args=[secrets.token_hex(8)], client=client)
                    if not self._ping_ok:
                        _log.info("redis reachable again")
                    self._ping_ok = True
                    if epoch is not None and _s(epoch) != self._epoch and self._reset_to is None:
                        self._reset_to = _s(epoch)
                except (RedisError, OSError, TimeoutError) as exc:
                    if self._ping_ok:
                        _log.warning("redis unreachable: %s", exc or type(exc).__name__)
                    self._ping_ok = False
                    with contextlib.suppress(Exception):
                        await client.aclose()
                    client = _client(self.url, PING_TIMEOUT_S)
                await asyncio.sleep(PING_EVERY_S)
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()
