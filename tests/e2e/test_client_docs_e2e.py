"""The bot of docs/client.md, run as written against a real server (both cores): it fits in 20
lines, publishes its status, prints and marks read its owner's notifications, and says
``stopped`` when interrupted."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from tickfan.client import BotStatus, Client
from tickfan_e2e import Server, run, token, users

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"


def bot_source() -> str:
    section = DOC.read_text().split("## A bot in", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def test_the_bot_fits_in_20_lines() -> None:
    lines = bot_source().strip().splitlines()
    assert len(lines) <= 20
    assert f"## A bot in {len(lines)} lines" in DOC.read_text()


def test_the_documented_bot_runs(plain_server: Server) -> None:
    (user,) = users("botowner")

    async def scenario() -> None:
        env = {**os.environ, "TICKFAN_URL": plain_server.http, "TICKFAN_TOKEN": token(user, publish=True), "TICKFAN_USER": user}
        async with Client(plain_server.http, token=token(user, publish=True)) as c:
            statuses: list[BotStatus] = []
            bots = c.bot_status()

            async def watch() -> None:
                async for ev in bots:
                    if isinstance(ev, BotStatus):
                        statuses.append(ev)

            watcher = asyncio.get_running_loop().create_task(watch())
            proc = await asyncio.create_subprocess_exec(sys.executable, "-c", bot_source(), env=env,
                                                        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            try:
                assert proc.stdout is not None
                await poll(lambda: [s.status for s in statuses] == ["running"])
                assert statuses[0].bot_id == "grid-1" and statuses[0].detail == {"pairs": ["BTC/USD"]}
                note = await c.notify(user, "filled 0.5 BTC", kind="order")
                line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
                assert line == f"#{note} [order] filled 0.5 BTC\n"
                await poll_async(lambda: c.list_notifications(), lambda ns: [(n.id, n.read) for n in ns] == [(note, True)])
                proc.send_signal(signal.SIGINT)
                await asyncio.wait_for(proc.wait(), 20)
                await poll(lambda: [s.status for s in statuses] == ["running", "stopped"])
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                watcher.cancel()

    run(scenario())


async def poll(condition, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def poll_async(fetch, condition, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition(await fetch()):
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
