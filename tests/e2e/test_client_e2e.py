"""tickfan.client against a real ``tickfan serve``, both cores, through a TCP relay the test
controls (tcp_proxy.py): same ticks in batch and tick modes, reconnect after a restart with a new
token and a SeqReset, Backfill from the last ts seen after a cut, AuthError within two
connections, in-band token refresh, and the HTTP calls with the other channels."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tcp_proxy import TcpProxy
from tickfan.auth import mint
from tickfan.client import (
    AuthError,
    Backfill,
    BotStatus,
    Client,
    Disconnected,
    Gap,
    MarkedRead,
    Notification,
    Options,
    Reconnected,
    SeqReset,
    Subscribed,
    Tick,
)
from tickfan_e2e import CORES, SECRET, Server, next_ts, run, token, users, write_universe

pytestmark = pytest.mark.e2e

FAST = Options(backoff_max_s=1.0)  # the rules are the defaults'; only the cap is lower, to keep tests short


@pytest.fixture(scope="module", params=CORES)
def sdk_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp(f"sdk-{request.param}")
    srv = Server(request.param, data_dir, "--feed", "none", "--symbols", str(write_universe(data_dir / "symbols.json")),
                 "--log-level", "warning").start()
    yield srv
    srv.stop()


class Provider:
    """A token provider that counts its calls."""

    def __init__(self, sub: str = "alice", *, ttl_s: int = 3600, secret: str = SECRET) -> None:
        self.sub, self.ttl_s, self.secret, self.calls = sub, ttl_s, secret, 0

    def __call__(self) -> str:
        self.calls += 1
        return mint(self.secret, self.sub, ttl_s=self.ttl_s)


class Recorder:
    """Iterates a channel in the background; tests wait on what it has seen."""

    def __init__(self, channel: Any) -> None:
        self.events: list[Any] = []
        self.error: BaseException | None = None
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(channel))

    async def _run(self, channel: Any) -> None:
        try:
            async for event in channel:
                self.events.append(event)
                self._changed.set()
        except Exception as exc:
            self.error = exc
            self._changed.set()

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def until(self, pred: Callable[[list[Any]], Any], timeout: float = 20.0) -> Any:
        """The first truthy ``pred(events)``, checked on every event and every 50 ms (for
        conditions outside the events, like counters)."""
        deadline = time.monotonic() + timeout
        while True:
            found = pred(self.events)
            if found:
                return found
            if self.error is not None:
                raise self.error
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"condition not met; last events: {self.events[-5:]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 0.05))
            except TimeoutError:
                pass


def ticks_of(symbol: str, n: int, start_units: int = 4_000_000) -> list[dict[str, Any]]:
    return [{"symbol": symbol, "price": (start_units + 7 * i) / 100, "size": (i * 13 + 1) / 10_000, "ts": next_ts()}
            for i in range(n)]


def count_ticks(n: int, symbol: str) -> Callable[[list[Any]], bool]:
    return lambda events: sum(isinstance(e, Tick) and e.symbol == symbol for e in events) >= n


def test_batch_and_tick_modes_yield_the_same_ticks(sdk_server: Server) -> None:
    symbol = "TEST/SLOW1"

    async def scenario() -> None:
        async with Client(sdk_server.http, token=Provider()) as c:
            by_mode = {mode: Recorder(c.market([symbol], mode=mode)) for mode in ("tick", "batch")}
            for rec in by_mode.values():
                await rec.until(lambda ev: any(isinstance(e, Subscribed) for e in ev))
            sent: list[dict[str, Any]] = []
            for _ in range(5):  # several requests, so batches of several sizes
                chunk = ticks_of(symbol, 40, 4_000_000 + len(sent))
                assert (await sdk_server.apublish(chunk)).status_code == 202
                sent += chunk
            for rec in by_mode.values():
                await rec.until(count_ticks(len(sent), symbol))
            tick, batch = ([(e.ts, e.price, e.size) for e in rec.of(Tick)] for rec in by_mode.values())
            assert tick == batch == [(t["ts"], t["price"], t["size"]) for t in sent]
            assert [e.seq for e in by_mode["tick"].of(Tick)] == [e.seq for e in by_mode["batch"].of(Tick)]
            assert not by_mode["tick"].of(Gap) and not by_mode["batch"].of(Gap)

    run(scenario())


def test_disconnect_with_the_server_up_resumes_exactly_the_missed_ticks(sdk_server: Server) -> None:
    symbol = "TEST/SLOW2"

    async def scenario() -> None:
        async with TcpProxy(sdk_server.port) as proxy, Client(proxy.http, token=Provider(), options=FAST) as c:
            rec = Recorder(c.market([symbol], mode="tick"))
            await rec.until(lambda ev: any(isinstance(e, Subscribed) for e in ev))
            before = ticks_of(symbol, 3)
            await sdk_server.apublish(before)
            await rec.until(count_ticks(3, symbol))
            last_ts = rec.of(Tick)[-1].ts
            assert last_ts == before[-1]["ts"]
            proxy.refuse = True
            assert proxy.cut() == 1
            await rec.until(lambda ev: any(isinstance(e, Disconnected) for e in ev))
            during = ticks_of(symbol, 2, 5_000_000)  # published while the client is away
            await sdk_server.apublish(during)
            proxy.refuse = False
            await rec.until(count_ticks(5, symbol))
            events = rec.events[rec.events.index(rec.of(Reconnected)[0]):]
            kinds = [type(e) for e in events]
            # the reopen subscribes with resume (last seq 3, the epoch): the server sends 4 and 5
            assert kinds.index(Reconnected) < kinds.index(Subscribed) < kinds.index(Tick)
            assert Backfill not in kinds and Gap not in kinds
            resubscribed = [e for e in events if isinstance(e, Subscribed)][0]
            assert resubscribed.resumed == [symbol]
            assert [t.seq for t in rec.of(Tick)] == [1, 2, 3, 4, 5]
            assert [t.price for t in rec.of(Tick)[3:]] == [t["price"] for t in during]

    run(scenario())


@pytest.mark.memory_broker_only  # a restart is a new epoch only there; on Redis the epoch and seq carry on
def test_server_restart_reconnects_reauthenticates_resubscribes_and_reports_seq_reset(fresh_server: Callable[..., Server]) -> None:
    srv = fresh_server()

    async def scenario() -> None:
        provider = Provider()
        async with TcpProxy(srv.port) as proxy, Client(proxy.http, token=provider, options=FAST) as c:
            rec = Recorder(c.market(["BTC/USD"], mode="tick"))
            await rec.until(lambda ev: any(isinstance(e, Subscribed) for e in ev))
            published = await srv.apublish([{"symbol": "BTC/USD", "price": 100.5, "size": 1.0, "ts": next_ts()} for _ in range(3)])
            assert published.status_code == 202, published.text
            await rec.until(count_ticks(3, "BTC/USD"))
            calls = provider.calls
            await asyncio.to_thread(srv.restart)
            proxy.target_port = srv.port
            await rec.until(lambda ev: len([e for e in ev if isinstance(e, Subscribed)]) >= 2, timeout=30)
            assert provider.calls > calls  # a new token for the new socket
            await srv.apublish([{"symbol": "BTC/USD", "price": 101.25, "size": 2.0, "ts": next_ts()}])
            await rec.until(count_ticks(4, "BTC/USD"))
            first, second = rec.of(Subscribed)[:2]
            assert first.symbols == second.symbols == ["BTC/USD"]
            assert rec.of(Disconnected)[0].code == 1001
            assert rec.of(Reconnected)
            assert first.epoch != second.epoch  # a new process numbers seq afresh: a new epoch
            assert rec.of(SeqReset) == [SeqReset(first.epoch, second.epoch)]
            assert rec.events.index(rec.of(SeqReset)[0]) < rec.events.index(rec.of(Tick)[3])
            last = rec.of(Tick)[-1]
            assert (last.seq, last.price) == (1, 101.25)  # seq restarted at 1: not taken for a duplicate
            # the reopen asked to resume from seq 3 of the old epoch: the server says it cannot
            # (another epoch, nothing traded yet in the new one), and the SDK backfills candles
            assert rec.of(Gap) == [Gap("BTC/USD", 4, None, "epoch")]

    run(scenario(), timeout=90)


def test_a_bad_token_gives_auth_error_within_two_connections(sdk_server: Server) -> None:
    async def scenario() -> None:
        provider = Provider(secret="not-the-server-secret-" + "x" * 40)
        async with TcpProxy(sdk_server.port) as proxy, Client(proxy.http, token=provider) as c:
            with pytest.raises(AuthError):
                async for _ in c.market(["TEST/SLOW3"]):
                    pass
            assert proxy.accepted == 2 and provider.calls == 2  # one retry with a fresh token
        async with TcpProxy(sdk_server.port) as proxy, Client(proxy.http, token="garbage") as c:
            with pytest.raises(AuthError):
                async for _ in c.bot_status():
                    pass
            assert proxy.accepted == 1  # a fixed token is not retried

    run(scenario())


def test_short_lived_tokens_are_refreshed_in_band(sdk_server: Server) -> None:
    symbol = "TEST/SLOW3"

    async def scenario() -> None:
        provider = Provider(ttl_s=3)
        async with TcpProxy(sdk_server.port) as proxy, Client(proxy.http, token=provider) as c:
            channel = c.market([symbol], mode="tick")
            rec = Recorder(channel)
            # every refresh is one more provider call on the same socket; 4 calls outlive 2 tokens
            await rec.until(lambda _: provider.calls >= 4, timeout=30)
            await rec.until(lambda _: channel.auth_successes >= 3)
            await sdk_server.apublish(ticks_of(symbol, 1))
            await rec.until(count_ticks(1, symbol))
            assert proxy.accepted == 1 and channel.connections == 1
            assert not rec.of(Disconnected) and not rec.of(Reconnected)

    run(scenario())


def test_http_calls_and_the_bot_and_notification_channels(sdk_server: Server) -> None:
    (user,) = users("bob")

    async def scenario() -> None:
        async with Client(sdk_server.http, token=lambda: token(user, publish=True)) as c:
            symbols = {s.symbol: s for s in await c.symbols()}
            assert symbols["TEST/SLOW4"].price_decimals == 2
            sent = ticks_of("TEST/SLOW4", 3)
            assert await c.publish([(t["symbol"], t["price"], t["size"], t["ts"]) for t in sent]) == 3
            candles = await c.candles("TEST/SLOW4", "1s", since=0)
            assert candles.candles[-1].close == sent[-1]["price"]
            bots = Recorder(c.bot_status())
            assert await c.set_bot_status("grid-1", "running", user_id=user, detail={"pnl": 1.5}) == 1
            status = await bots.until(lambda ev: [e for e in ev if isinstance(e, BotStatus)])
            assert status[0] == BotStatus("grid-1", "running", status[0].ts, 1, {"pnl": 1.5})
            notes = Recorder(channel := c.notifications())
            first = await c.notify(user, "hello <b>", data={"k": 1})
            got = await notes.until(lambda ev: [e for e in ev if isinstance(e, Notification)])
            assert (got[0].id, got[0].title, got[0].data, got[0].read) == (first, "hello <b>", {"k": 1}, False)
            await channel.mark_read([first])
            assert (await notes.until(lambda ev: [e for e in ev if isinstance(e, MarkedRead)]))[0].ids == [first]
            listed = await c.list_notifications()
            assert [(n.id, n.read) for n in listed] == [(first, True)]
            alert = await c.create_alert("TEST/SLOW4", above=10**6)
            assert [a.id for a in await c.alerts()] == [alert]
            await c.delete_alert(alert)
            assert await c.alerts() == []

    run(scenario())
