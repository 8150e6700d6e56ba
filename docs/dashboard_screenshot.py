"""Makes docs/dashboard.png, and checks by hand what `make run` shows: a zero-config
`tickfan serve` (simulated feed) in a fresh data dir, three bots and two notifications for the
user `local`, the printed `/#token=` URL opened in Debian's headless Chromium.

    .venv/bin/python docs/dashboard_screenshot.py [--port 8000] [--settle 150] [--out docs/dashboard.png]

Prints how long after navigation the first BTC/USD price showed and then moved, the address
bar (the token must be gone) and the console errors (there must be none).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.async_api import async_playwright

BIN = Path(sys.executable).parent
FIRST_PRICE = "() => document.querySelector('#prices tbody tr')?.cells[1].textContent"


async def browse(url: str, out: Path, settle: float) -> None:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--disable-gpu", "--disable-quic"])
        print("chromium", browser.version)
        page = await browser.new_page(viewport={"width": 1280, "height": 728})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        start = time.monotonic()
        await page.goto(url)
        await page.wait_for_function(f"() => ({FIRST_PRICE})() && ({FIRST_PRICE})() !== '–'")
        first, shown = await page.evaluate(FIRST_PRICE), time.monotonic() - start
        await page.wait_for_function(f"p => ({FIRST_PRICE})() !== p", arg=first)
        print(f"first BTC/USD price {shown:.2f} s after navigation, moved at {time.monotonic() - start:.2f} s")
        print("address bar:", page.url)
        await asyncio.sleep(settle)  # let the chart fill up for the picture
        await page.screenshot(path=str(out))
        print("console errors:", errors or "none")
        await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", default="8000")
    parser.add_argument("--settle", type=float, default=150.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("dashboard.png"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tickfan-screenshot-"))
    log = (work / "serve.log").open("w")
    proc = subprocess.Popen([str(BIN / "tickfan"), "serve", "--port", args.port], cwd=work, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{args.port}"
    try:
        while True:
            found = re.search(rf"{re.escape(base)}/#token=\S+", (work / "serve.log").read_text())
            try:
                if found and httpx.get(base + "/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                sys.exit((work / "serve.log").read_text())
            time.sleep(0.1)
        minted = subprocess.run([str(BIN / "tickfan"), "token", "--sub", "ops", "--scope", "publish", "--data-dir", str(work / ".tickfan")],
                                capture_output=True, text=True, check=True)
        headers = {"Authorization": "Bearer " + minted.stdout.strip()}
        for bot, status in [("momentum-btc", "running"), ("arb-eth-btc", "running"), ("grid-sol", "paused")]:
            httpx.post(f"{base}/api/bots/{bot}/status", json={"user_id": "local", "status": status, "detail": None}, headers=headers).raise_for_status()
        for kind, title, body in [("fill", "Order filled: BTC/USD buy 0.25 @ 43120.10", "momentum-btc"),
                                  ("risk", "Drawdown limit at 80%", "grid-sol paused by its risk rule")]:
            note = {"user_id": "local", "kind": kind, "title": title, "body": body, "data": None}
            httpx.post(f"{base}/api/notifications", json=note, headers=headers).raise_for_status()
        asyncio.run(browse(found.group(0), args.out, args.settle))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


if __name__ == "__main__":
    main()
