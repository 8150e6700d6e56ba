"""Socket error paths against a real server."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import ConnectionClosed

from tickfan_e2e import Server, expect_close, run

pytestmark = pytest.mark.e2e

def test_a_flood_before_auth_gets_one_auth_required_and_1008(server: Server) -> None:
    async def scenario() -> tuple[int | None, list[dict[str, object]]]:
        async with await server.connect() as ws:
            try:
                for i in range(300):
                    await ws.send(json.dumps({"type": "ping", "ts": i}))
            except ConnectionClosed:
                pass  # the server closed after the first: the rest went nowhere
            return await expect_close(ws)

    code, seen = run(scenario())
    assert code == 1008
    assert seen == [{"type": "error", "code": "auth_required", "error": "Authentication required"}]
