"""The browser half of the end-to-end harness: Debian's Chromium driven by Playwright's async API.

``open_dashboard`` launches ``/usr/bin/chromium`` headless (``--disable-gpu --disable-quic``;
Playwright adds ``--no-sandbox`` itself), opens a server's dashboard and hands back a
:class:`Dash`: the page, every WebSocket frame the page sent and received (per socket), and the
console errors. A missing Chromium fails the test (never a skip). On the way out it saves a
full-page screenshot under ``.artifacts/browser/`` (``TICKFAN_ARTIFACTS`` moves it), pass or fail.

Tests drive it inside ``tickfan_e2e.run`` (``asyncio.run``), as every async test of the suite.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, WebSocket, async_playwright

from tickfan_e2e import Server

CHROMIUM = Path(os.environ.get("TICKFAN_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("TICKFAN_ARTIFACTS", Path(__file__).resolve().parents[2] / ".artifacts")) / "browser"
LAUNCH_ARGS = ["--disable-gpu", "--disable-quic"]
MARKET, BOTS, NOTES, METRICS = "/ws/market-data", "/ws/bot-status", "/ws/notifications", "/ws/performance-metrics"


@dataclass
class Sock:
    """One WebSocket the page opened: the JSON frames it sent and received, with arrival times."""

    url: str
    sent: list[dict[str, Any]] = field(default_factory=list)
    received: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    closed: bool = False

    def got(self, type_: str) -> list[dict[str, Any]]:
        return [m for _, m in self.received if m.get("type") == type_]

    def sent_of(self, type_: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m.get("type") == type_]


def _json(payload: str | bytes) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except ValueError:
        return {"type": "<not json>"}
    return value if isinstance(value, dict) else {"type": "<not an object>"}


class Dash:
    """The dashboard page and what it did: ``sockets`` in opening order, console ``errors``."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.sockets: list[Sock] = []
        self.errors: list[str] = []
        page.on("websocket", self._on_socket)
        page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def _on_socket(self, ws: WebSocket) -> None:
        sock = Sock(ws.url)
        self.sockets.append(sock)
        ws.on("framesent", lambda p: sock.sent.append(_json(p)))
        ws.on("framereceived", lambda p: sock.received.append((time.time(), _json(p))))
        ws.on("close", lambda _: setattr(sock, "closed", True))

    def channel(self, path: str) -> list[Sock]:
        return [s for s in self.sockets if s.url.endswith(path)]

    async def until(self, predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
        """Poll ``predicate`` (on what the page did) until true; fail naming ``what`` at the deadline."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)

    async def js(self, expression: str, arg: Any = None) -> Any:
        return await self.page.evaluate(expression, arg)

    async def wait_js(self, expression: str, arg: Any = None, timeout: float = 20.0) -> None:
        await self.page.wait_for_function(expression, arg=arg, timeout=timeout * 1000)

    async def ready(self) -> None:
        """Every channel authenticated and the price table built."""
        await self.wait_js("() => window.tickfanDemo && window.tickfanDemo.channels.every(c => c.state === 'open')"
                           " && document.querySelectorAll('#prices tbody tr').length > 0")

    async def price_cell(self, symbol: str) -> str:
        return await self.js(
            "s => [...document.querySelectorAll('#prices tbody tr')].find(r => r.cells[0].textContent === s).cells[1].textContent",
            symbol,
        )

    async def wait_price(self, symbol: str, text: str) -> None:
        await self.wait_js(
            "([s, t]) => [...document.querySelectorAll('#prices tbody tr')].some(r => r.cells[0].textContent === s && r.cells[1].textContent === t)",
            [symbol, text],
        )

    async def series(self, symbol: str) -> list[list[float]]:
        return await self.js("s => window.tickfanDemo.series(s)", symbol)  # type: ignore[no-any-return]

    async def canvas(self) -> str:
        return await self.js("() => document.getElementById('chart').toDataURL()")  # type: ignore[no-any-return]

    async def line_pixels(self, rgb: tuple[int, int, int] = (47, 129, 247), tolerance: int = 10) -> int:
        """How many chart pixels have the line's colour (#2f81f7)."""
        return await self.js(  # type: ignore[no-any-return]
            """([r, g, b, tol]) => {
                const c = document.getElementById('chart'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0;
                for (let i = 0; i < d.length; i += 4)
                    if (Math.abs(d[i] - r) <= tol && Math.abs(d[i + 1] - g) <= tol && Math.abs(d[i + 2] - b) <= tol) n++;
                return n;
            }""",
            [*rgb, tolerance],
        )


def _artifact_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") + ".png"


@asynccontextmanager
async def open_dashboard(
    server: Server,
    name: str,
    *,
    sub: str = "alice",
    url: str | None = None,
    token_provider: Callable[[], str] | None = None,
    setup: Callable[[BrowserContext], Awaitable[Any]] | None = None,
) -> AsyncIterator[Dash]:
    """The dashboard of ``server`` in a fresh browser. The token is ``sub``'s in the URL's
    fragment, unless ``token_provider`` is given (exposed as ``window.tickfanGetToken``) or ``url``
    is. ``setup`` runs on the browser context before the page opens (routes, say)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium package "
                    "(`make test` installs it when run as root)", pytrace=False)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "chromium-version.txt").write_text(browser.version + "\n")  # Debian's build, not Playwright's
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            if token_provider is not None:
                await context.expose_function("tickfanGetToken", token_provider)
            if setup is not None:
                await setup(context)
            page = await context.new_page()
            dash = Dash(page)
            if url is None:
                url = server.http + "/" + ("" if token_provider else "#token=" + server.token(sub))
            await page.goto(url)
            try:
                yield dash
            finally:
                await page.screenshot(path=str(ARTIFACTS / _artifact_name(name)), full_page=True)
        finally:
            await browser.close()
