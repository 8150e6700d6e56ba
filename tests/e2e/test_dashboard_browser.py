"""The dashboard at ``/`` and ``tickfan.js`` in a real browser (Debian's Chromium, Playwright)
against a real ``tickfan serve``, both cores: live chart and table, the reconnect banner, backfill
after going offline, in-band token refresh, conflation while hidden, the bounded series,
notifications by polling when their socket is refused, the close codes, and the zero-config URL.

Ticks are published with ``POST /api/ticks`` (``--feed none``); each test of the shared server
uses its own symbol, so timestamps never regress across tests. Harness: ``tickfan_browser.py``.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from playwright.async_api import BrowserContext, WebSocketRoute

from tickfan.config import DEFAULT_UNIVERSE
from tickfan.web.dashboard import STATIC_DIR
from tickfan_browser import BOTS, MARKET, METRICS, NOTES, Dash, open_dashboard
from tickfan_e2e import CORES, SECRET, Client, Server, now_ms, run, users

pytestmark = pytest.mark.e2e

DASH_SYMBOLS = [f"DASH/T{i}" for i in range(1, 8)]


def universe(path: Path) -> Path:
    items = [{"symbol": s.symbol, "price_decimals": s.price_decimals, "size_decimals": s.size_decimals} for s in DEFAULT_UNIVERSE]
    items += [{"symbol": name, "price_decimals": 2, "size_decimals": 4} for name in DASH_SYMBOLS]
    path.write_text(json.dumps(items))
    return path


@pytest.fixture(scope="module", params=CORES)
def dash_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp(f"dash-{request.param}")
    srv = Server(request.param, data_dir, "--feed", "none", "--symbols", str(universe(data_dir / "symbols.json")),
                 "--log-level", "warning").start()
    yield srv
    srv.stop()


def second(offset_s: int = 0) -> int:
    """A whole second of server time, ``offset_s`` from now (bucket boundaries are exact)."""
    return (now_ms() // 1000 + offset_s) * 1000


def unique_token(sub: str, ttl_s: int) -> str:
    """A token no other call returns (a ``jti``), so each token the page sent can be traced."""
    now = int(time.time())
    return jwt.encode({"sub": sub, "iat": now, "exp": now + ttl_s, "jti": uuid.uuid4().hex}, SECRET, algorithm="HS256")


async def publish(server: Server, symbol: str, *points: tuple[int, float]) -> None:
    r = await server.apublish([{"symbol": symbol, "price": p, "size": 1.5, "ts": ts} for ts, p in points])
    assert r.status_code == 202, r.text


async def choose(d: Dash, symbol: str) -> None:
    await d.js("s => window.tickfanDemo.choose(s)", symbol)
    await d.until(lambda: any(symbol in m["symbols"] for s in d.channel(MARKET) for m in s.got("subscribed")),
                  f"a subscribed ack naming {symbol}")


def test_live_chart_table_bots_notifications_perf_and_no_console_error(dash_server: Server, request: pytest.FixtureRequest) -> None:
    (sub,) = users("alice")
    sym = DASH_SYMBOLS[0]

    async def scenario() -> None:
        async with open_dashboard(dash_server, request.node.name, sub=sub) as d, Client(dash_server) as c:
            await d.ready()
            assert "token" not in d.page.url  # the fragment left the address bar
            await choose(d, sym)
            base = second(-10)
            images = [await d.canvas()]
            for i, (price, text) in enumerate([(101.25, "101.25"), (103.5, "103.50"), (99.75, "99.75")]):
                await publish(dash_server, sym, (base + i * 1000 + 250, price))
                await d.wait_price(sym, text)
                await d.wait_js("n => window.tickfanDemo.series().length === n", i + 1)
                images.append(await d.canvas())
            assert len(set(images)) == len(images), "the chart did not change with every tick"
            assert await d.line_pixels() > 50
            assert await d.series(sym) == [[base, 101.25], [base + 1000, 103.5], [base + 2000, 99.75]]

            # Redrawn only when something changed: two more metrics messages, no new tick, no redraw.
            draws = await d.js("() => window.tickfanDemo.stats.draws")
            seen = len(d.channel(METRICS)[0].got("metrics"))
            await d.until(lambda: len(d.channel(METRICS)[0].got("metrics")) >= seen + 2, "two metrics messages")
            assert await d.js("() => window.tickfanDemo.stats.draws") == draws

            # Bots: status and the running count.
            for bot, status in [("b-1", "running"), ("b-2", "running"), ("b-3", "paused")]:
                assert (await c.bot_status(sub, bot, status)).status_code == 200
            await d.wait_js("() => document.getElementById('running').textContent === '2 running'"
                            " && document.querySelectorAll('#bots li').length === 3")

            # Notifications over the socket: unread count, then mark-read by a click.
            note_id = await c.notify(sub, "Order filled")
            await d.wait_js("() => document.getElementById('unread').textContent === '1 unread'")
            await d.page.click(f"#notes li[data-id='{note_id}']")
            await d.wait_js("() => document.getElementById('unread').textContent === '0 unread'")
            assert any(m["ids"] == [note_id] for m in d.channel(NOTES)[0].got("marked_read"))
            assert [n["read"] for n in await c.poll(sub) if n["id"] == note_id] == [True]

            # Performance: FPS, RTT from ping/pong, the server's metrics.
            await d.wait_js("c => { const t = document.getElementById('perf').innerText;"
                            " return t.includes('server core\\n' + c) || t.includes('server core\\t' + c); }", dash_server.core)
            perf = await d.js("() => Object.fromEntries([...document.querySelectorAll('#perf dt')].map(dt => [dt.textContent, dt.nextElementSibling.textContent]))")
            assert perf["round trip (ping/pong)"].endswith(" ms") and float(perf["page FPS"]) > 0
            assert perf["server core"] == dash_server.core and "page JS heap" in perf
            assert d.channel(MARKET)[0].got("pong")
            assert d.errors == []

    run(scenario(), timeout=90)


def test_no_token_shows_how_to_get_one(dash_server: Server, request: pytest.FixtureRequest) -> None:
    async def scenario() -> None:
        async with open_dashboard(dash_server, request.node.name, url=dash_server.http + "/") as d:
            await d.page.wait_for_selector("#no-token", state="visible")
            text = await d.page.inner_text("#no-token")
            assert "tickfan token --sub" in text and "#token=" in text
            assert await d.page.is_hidden("#main") and d.sockets == []
            assert d.errors == []

    run(scenario())


def test_restart_shows_banner_then_reconnects_with_auth_then_subscribe(
    fresh_server: Callable[..., Server], request: pytest.FixtureRequest
) -> None:
    srv = fresh_server()
    (sub,) = users("alice")

    async def scenario() -> None:
        async with open_dashboard(srv, request.node.name, sub=sub) as d:
            await d.ready()
            await choose(d, "ETH/USD")
            await publish(srv, "ETH/USD", (now_ms(), 2291.55))
            await d.wait_price("ETH/USD", "2291.55")
            before = len(d.channel(MARKET))
            srv.stop()  # SIGTERM: the server closes every socket with 1001
            await d.page.wait_for_selector("#banner", state="visible", timeout=20000)
            assert await d.price_cell("ETH/USD") == "2291.55"  # the last known data stays on screen
            srv.start()  # the same port
            await d.page.wait_for_selector("#banner", state="hidden", timeout=30000)
            fresh = [s for s in d.channel(MARKET)[before:] if s.got("auth_success")]
            assert len(fresh) == 1, [s.url for s in d.channel(MARKET)]
            sent = fresh[0].sent
            assert sent[0]["type"] == "auth" and sent[1]["type"] == "subscribe"
            assert "ETH/USD" in sent[1]["symbols"]
            # Every channel came back, each authenticating first.
            for path in (BOTS, NOTES, METRICS):
                assert any(s.got("auth_success") and s.sent[0]["type"] == "auth" for s in d.channel(path)[1:]), path

    run(scenario(), timeout=120)


def test_offline_then_online_backfills_from_the_last_tick_without_duplicates(
    dash_server: Server, request: pytest.FixtureRequest
) -> None:
    (sub,) = users("alice")
    sym = DASH_SYMBOLS[1]

    async def scenario() -> None:
        async with open_dashboard(dash_server, request.node.name, sub=sub) as d:
            await d.ready()
            await choose(d, sym)
            base = second(-30)
            await publish(dash_server, sym, (base + 100, 10.0), (base + 1100, 10.1), (base + 2100, 10.2))
            await d.wait_price(sym, "10.20")
            before = len(d.channel(MARKET))
            await d.page.context.set_offline(True)
            await d.page.wait_for_selector("#banner", state="visible")
            assert "offline" in await d.page.inner_text("#banner")
            # Into new buckets while the page is offline (the server is up and keeps them).
            await publish(dash_server, sym, (base + 3100, 10.3), (base + 4100, 10.4), (base + 4600, 10.45))
            await d.page.context.set_offline(False)
            await d.until(lambda: any(m["symbols"] == [sym] for s in d.channel(MARKET)[before:]
                                      for m in s.sent_of("backfill_request")), "a backfill_request after reconnecting")
            requests = [m for s in d.channel(MARKET)[before:] for m in s.sent_of("backfill_request") if m["symbols"] == [sym]]
            assert requests[0]["since"] == base + 2100 and requests[0]["interval"] == "1s"
            # the reconnect's subscribe resumes from the last seq seen, under the epoch it was seen in
            resubscribes = [m for s in d.channel(MARKET)[before:] for m in s.sent_of("subscribe") if sym in m["symbols"]]
            assert resubscribes and sym in resubscribes[0]["resume"] and resubscribes[0]["epoch"]
            await d.wait_js("([s, t]) => window.tickfanDemo.series(s).some(p => p[0] === t && p[1] === 10.45)", [sym, base + 4000])
            await d.page.wait_for_selector("#banner", state="hidden")
            series = await d.series(sym)
            keys = [t for t, _ in series]
            assert len(keys) == len(set(keys)) and keys == sorted(keys)
            assert series == [[base + i * 1000, p] for i, p in enumerate([10.0, 10.1, 10.2, 10.3, 10.45])]

    run(scenario(), timeout=90)


def test_short_lived_token_is_refreshed_in_band(dash_server: Server, request: pytest.FixtureRequest) -> None:
    (sub,) = users("alice")
    handed: dict[str, str] = {}  # token -> the reason the page gave for asking

    def provider(why: dict[str, str]) -> str:
        minted = unique_token(sub, ttl_s=4)
        handed[minted] = why["reason"]
        return minted

    async def scenario() -> None:
        async with open_dashboard(dash_server, request.node.name, token_provider=provider) as d:
            await d.ready()
            await d.until(lambda: all(len(d.channel(p)[0].got("auth_success")) >= 3 for p in (MARKET, BOTS, NOTES, METRICS)),
                          "two in-band refreshes on every channel", timeout=30)
            for path in (MARKET, BOTS, NOTES, METRICS):
                assert len(d.channel(path)) == 1, f"{path} reconnected instead of refreshing"
                sock = d.channel(path)[0]
                assert not sock.closed and len(sock.sent_of("auth")) >= 3
                assert all(m.get("code") != "token_expired" for _, m in sock.received)
                first_exp = sock.got("auth_success")[0]["expires_at"]
                third_at = [t for t, m in sock.received if m.get("type") == "auth_success"][2]
                assert third_at > first_exp  # the socket outlived its first token
            tokens = [m["token"] for m in d.channel(MARKET)[0].sent_of("auth")]
            assert len(set(tokens)) == len(tokens)
            assert [handed[t] for t in tokens[:3]] == ["connect", "refresh", "refresh"]

    run(scenario(), timeout=90)


def test_hidden_tab_conflates_then_auto_and_backfill_when_visible(dash_server: Server, request: pytest.FixtureRequest) -> None:
    (sub,) = users("alice")
    sym = DASH_SYMBOLS[2]
    set_visibility = ("v => { Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => v});"
                      " document.dispatchEvent(new Event('visibilitychange')); }")

    async def scenario() -> None:
        async with open_dashboard(dash_server, request.node.name, sub=sub) as d:
            await d.ready()
            await choose(d, sym)
            base = second(-20)
            await publish(dash_server, sym, (base, 50.0))
            await d.wait_price(sym, "50.00")
            market = d.channel(MARKET)[-1]
            await d.js(set_visibility, "hidden")
            await d.until(lambda: any(m.get("mode") == "conflate" for m in market.got("subscribed")), "a conflate ack")
            conflated = [m for m in market.sent_of("subscribe") if m.get("mode") == "conflate"]
            assert conflated[0]["interval_ms"] == 1000 and sym in conflated[0]["symbols"]
            ticks_before = len([m for _, m in market.received if m.get("symbol") == sym])
            await publish(dash_server, sym, *[(base + 1000 + i * 10, 50.0 + i) for i in range(10)])
            await d.wait_price(sym, "59.00")  # the latest tick always arrives
            delivered = [m for _, m in market.received if m.get("symbol") == sym][ticks_before:]
            assert all(m["type"] == "market_data" for m in delivered) and len(delivered) < 10
            await d.js(set_visibility, "visible")
            await d.until(lambda: any(m.get("mode") == "auto" for m in market.sent_of("subscribe")[len(conflated):]), "an auto subscribe")
            await d.until(lambda: any(m["symbols"] == [sym] and m["since"] == base for m in market.sent_of("backfill_request")),
                          "a backfill from where the tab was hidden")
            await d.wait_js("([s, t]) => window.tickfanDemo.series(s).some(p => p[0] === t && p[1] === 59)", [sym, base + 1000])

    run(scenario(), timeout=90)


def test_series_never_exceeds_300_points(dash_server: Server, request: pytest.FixtureRequest) -> None:
    (sub,) = users("alice")
    sym = DASH_SYMBOLS[3]

    async def scenario() -> None:
        async with open_dashboard(dash_server, request.node.name, sub=sub) as d:
            await d.ready()
            await choose(d, sym)
            base = second(-600)
            prices = [round(200 + i / 100, 2) for i in range(420)]
            await publish(dash_server, sym, *[(base + i * 1000 + 500, p) for i, p in enumerate(prices)])
            await d.wait_price(sym, f"{prices[-1]:.2f}")
            series = await d.series(sym)
            assert len(series) == 300
            assert series == [[base + i * 1000, prices[i]] for i in range(120, 420)]  # exact prices
            assert any(m for s in d.channel(MARKET) for m in s.got("market_data_batch") if m["symbol"] == sym)
            assert "300 / 300" in await d.page.inner_text("#points")

    run(scenario(), timeout=90)


def test_notifications_poll_while_their_socket_is_refused_and_titles_stay_text(
    dash_server: Server, request: pytest.FixtureRequest
) -> None:
    (sub,) = users("alice")
    title = '<img src=x onerror="window.__pwned = 1">'

    async def refuse(ws: WebSocketRoute) -> None:
        await ws.close(code=4403, reason="refused by the test")

    async def setup(context: BrowserContext) -> None:
        await context.route_web_socket(re.compile(r".*/ws/notifications$"), refuse)

    async def scenario() -> None:
        async with open_dashboard(dash_server, request.node.name, sub=sub, setup=setup) as d, Client(dash_server) as c:
            await d.wait_js("() => window.tickfanDemo && window.tickfanDemo.notes.polling !== null")
            note_id = await c.notify(sub, title)
            await d.wait_js("id => !!document.querySelector(`#notes li[data-id='${id}']`)", note_id)
            li = d.page.locator(f"#notes li[data-id='{note_id}']")
            assert (await li.inner_text()).startswith(title)
            assert await d.page.locator("#notes img").count() == 0
            assert await d.js("() => window.__pwned === undefined")
            assert await d.page.inner_text("#unread") == "1 unread"
            await li.click()  # mark-read over HTTP: the socket is down
            await d.wait_js("() => document.getElementById('unread').textContent === '0 unread'")
            assert [n["read"] for n in await c.poll(sub) if n["id"] == note_id] == [True]
            assert all(not s.got("auth_success") for s in d.channel(NOTES))

    run(scenario(), timeout=90)


def test_close_codes_1013_conflates_1008_expired_new_token_1001_reconnects(
    dash_server: Server, request: pytest.FixtureRequest
) -> None:
    """The page side of each close is played by a route in front of the real server."""
    (sub,) = users("alice")
    plan = [(1013, None), (1008, "token_expired"), (1001, None)]  # one close per connection, then pass
    routes: list[WebSocketRoute] = []
    handed: dict[str, str] = {}  # token -> the reason the page gave for asking

    def provider(why: dict[str, str]) -> str:
        minted = unique_token(sub, ttl_s=3600)
        handed[minted] = why["reason"]
        return minted

    def relay(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        routes.append(ws)
        index = len(routes) - 1

        def from_server(message: str | bytes) -> None:
            ws.send(message)
            if index < len(plan) and json.loads(message).get("type") == "subscribed":
                code, error = plan[index]
                if error is not None:
                    ws.send(json.dumps({"type": "error", "code": error, "error": "Token expired"}))
                # The page sees the close; the real server sees this socket go away.
                asyncio.ensure_future(server.close())
                asyncio.ensure_future(ws.close(code=code))

        server.on_message(from_server)

    async def setup(context: BrowserContext) -> None:
        await context.route_web_socket(re.compile(r".*/ws/market-data$"), relay)

    async def scenario() -> None:
        async with open_dashboard(dash_server, request.node.name, token_provider=provider, setup=setup) as d:
            await d.until(lambda: len(d.channel(MARKET)) >= 4 and d.channel(MARKET)[3].got("subscribed"),
                          "a fourth market socket, subscribed", timeout=40)
            socks = d.channel(MARKET)[:4]
            # After 1013 the next socket subscribes with conflate.
            assert socks[1].sent_of("subscribe")[0]["mode"] == "conflate"
            assert all(s.sent[0]["type"] == "auth" for s in socks)
            # After 1008 token_expired the page asked for a new token because it expired.
            assert [handed[s.sent[0]["token"]] for s in socks] == ["connect", "connect", "expired", "connect"]

    run(scenario(), timeout=90)


def test_zero_config_serve_prints_a_dashboard_url_that_shows_live_prices(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    srv = Server("rust", tmp_path / "data", "--feed", "sim", "--log-level", "warning")
    srv.env.pop("TICKFAN_JWT_SECRET")
    srv.start()
    try:
        found = re.search(rf"http://127\.0\.0\.1:{srv.port}/#token=(\S+)", srv.log())
        assert found, srv.log()
        secret = (srv.data_dir / "jwt_secret").read_text().strip()
        claims = jwt.decode(found.group(1), secret, algorithms=["HS256"])
        assert claims["sub"] == "local" and claims["exp"] - claims["iat"] == 8 * 3600

        async def scenario() -> None:
            async with open_dashboard(srv, request.node.name, url=found.group(0)) as d:
                await d.ready()
                assert d.page.url == srv.http + "/"
                first = await d.price_cell("BTC/USD")
                await d.wait_js("p => { const r = [...document.querySelectorAll('#prices tbody tr')]"
                                ".find(r => r.cells[0].textContent === 'BTC/USD'); return r.cells[1].textContent !== p; }", first)
                await d.wait_js("() => window.tickfanDemo.series('BTC/USD').length >= 2")
                assert await d.line_pixels() > 50
                assert d.errors == []

        run(scenario(), timeout=60)
    finally:
        srv.stop()


def test_decode_batch_is_exact_in_the_browser(dash_server: Server, request: pytest.FixtureRequest) -> None:
    """``decodeBatch`` yields the very doubles that tick mode's JSON text parses to."""
    rng = random.Random(11)
    batches, expected = [], []
    for b in range(60):
        pd, sd, n = rng.randint(0, 8), rng.randint(0, 8), rng.randint(1, 50)
        units = [rng.randint(1, 10**rng.randint(1, 14)) for _ in range(n)]
        sizes = [rng.randint(0, 10**rng.randint(1, 12)) for _ in range(n)]
        ts = sorted(rng.randint(1_700_000_000_000, 1_700_000_100_000) for _ in range(n))
        batches.append({"type": "market_data_batch", "symbol": f"S{b}", "seq": 7, "count": n,
                        "price_decimals": pd, "size_decimals": sd,
                        "ts": [ts[0]] + [ts[i] - ts[i - 1] for i in range(1, n)],
                        "price": [units[0]] + [units[i] - units[i - 1] for i in range(1, n)], "size": sizes})
        expected += [[f"S{b}", 7 + i, ts[i], float(decimal_text(units[i], pd)), float(decimal_text(sizes[i], sd))] for i in range(n)]

    async def scenario() -> list[list[Any]]:
        async with open_dashboard(dash_server, request.node.name, url=dash_server.http + "/") as d:
            return await d.js("""async (batches) => {
                const { decodeBatch } = await import('/static/tickfan.js');
                return batches.flatMap(b => decodeBatch(b).map(t => [t.symbol, t.seq, t.ts, t.price, t.size]));
            }""", batches)  # type: ignore[no-any-return]

    got = run(scenario())
    assert len(got) == len(expected) > 1000
    assert got == expected


def decimal_text(units: int, decimals: int) -> str:
    digits = str(units).rjust(decimals + 1, "0")
    return digits if decimals == 0 else f"{digits[:-decimals]}.{digits[-decimals:]}"


def test_page_is_plain_files_with_a_strict_csp(dash_server: Server) -> None:
    index = httpx.get(dash_server.http + "/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    csp = index.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp
    html = index.text
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all(re.search(r'\bsrc="/static/[\w.-]+\.js"', s) for s in scripts)
    assert not re.search(r"<script\b[^>]*>\s*[^<\s]", html)  # no inline script
    assert not re.search(r"\son[a-z]+\s*=", html)  # no inline handler
    static = STATIC_DIR
    for path in static.iterdir():
        text = path.read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text.replace("http://www.w3.org/2000/svg", "")), path
        served = httpx.get(f"{dash_server.http}/static/{path.name}")
        assert served.status_code == 200 and served.text == text
    js = httpx.get(dash_server.http + "/static/tickfan.js")
    assert js.headers["content-type"].startswith("text/javascript") and js.headers["access-control-allow-origin"] == "*"
    lines = sum(len((static / name).read_text().splitlines()) for name in ("tickfan.js", "dashboard.js"))
    assert lines <= 600, lines


def test_any_gap_reason_is_a_gap_with_a_candle_backfill_in_the_browser(dash_server: Server, request: pytest.FixtureRequest) -> None:
    """``tickfan.js`` treats every ``gap`` alike, whatever its ``reason`` (the contract's two, or
    one it does not know): a ``gap`` event, then a ``backfill_request`` from the symbol's last tick."""
    reasons = ["evicted", "epoch", "degraded", "a-reason-added-later"]

    async def scenario() -> list[Any]:
        async with open_dashboard(dash_server, request.node.name, url=dash_server.http + "/") as d:
            return await d.js("""async (reasons) => {
                const { MarketData } = await import('/static/tickfan.js');
                return reasons.map((reason) => {
                    const md = new MarketData({ followNetwork: false }), sent = [], gaps = [];
                    md.ch.send = (m) => { sent.push(m); return true; };
                    md.addEventListener("gap", (e) => gaps.push(e.detail));
                    md.subscribe(["X"]);
                    md.onMessage({ type: "market_data", symbol: "X", seq: 4, ts: 500, price: 1.5, size: 1.0 });
                    md.onMessage({ type: "gap", symbol: "X", from_seq: 5, to_seq: 9, reason });
                    md.onMessage({ type: "market_data", symbol: "X", seq: 10, ts: 600, price: 1.5, size: 1.0 });
                    return [gaps, sent.filter((m) => m.type === "backfill_request")];
                });
            }""", reasons)  # type: ignore[no-any-return]

    got = run(scenario())
    for reason, (gaps, backfills) in zip(reasons, got):
        assert gaps == [{"symbol": "X", "from": 5, "to": 9, "reason": reason}], reason
        assert backfills == [{"type": "backfill_request", "symbols": ["X"], "since": 500, "interval": "1s"}], reason
