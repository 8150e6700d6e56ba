"""Token lifetime (``--jwt-max-lifetime-s``) and ``tickfan token`` against real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tickfan.auth import SECRET_FILE
from tickfan_e2e import SECRET, Server, expect_close, recv_json, run

pytestmark = pytest.mark.e2e


def tickfan(*args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TICKFAN_")}
    return subprocess.run([sys.executable, "-m", "tickfan", *args], capture_output=True, text=True, timeout=60, env=clean)


@pytest.mark.parametrize(
    "exp,iat",
    [(10**30, None), (86_400 + 600, None), (600, -86_400)],  # seconds from now (10**30: absolute)
    ids=["exp_1e30", "exp_past_default_max", "lifetime_from_iat"],
)
def test_a_token_over_the_maximum_lifetime_is_refused(server: Server, exp: int, iat: int | None) -> None:
    now = int(time.time())  # here, not at collection: the suite may run long before this test
    claims = {"exp": exp if exp == 10**30 else now + exp}
    if iat is not None:
        claims["iat"] = now + iat
    token = jwt.encode({"sub": "alice", **claims}, SECRET, algorithm="HS256")
    response = httpx.get(server.http + "/api/symbols", headers={"Authorization": "Bearer " + token})
    assert response.status_code == 401 and response.json()["error"] == "The token is invalid"

    async def socket() -> tuple[int | None, list[dict[str, object]]]:
        ws = await server.connect()
        await ws.send(json.dumps({"type": "auth", "token": token}))
        return await expect_close(ws)

    code, seen = run(socket())
    assert code == 1008 and [m.get("code") for m in seen] == ["auth_required"]


def test_the_maximum_lifetime_is_configurable(fresh_server: Callable[..., Server]) -> None:
    srv = fresh_server("--jwt-max-lifetime-s", "120")
    long = jwt.encode({"sub": "alice", "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")
    short = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    assert httpx.get(srv.http + "/api/symbols", headers={"Authorization": "Bearer " + long}).status_code == 401
    assert httpx.get(srv.http + "/api/symbols", headers={"Authorization": "Bearer " + short}).status_code == 200

    async def socket() -> str:
        ws = await srv.connect()
        await ws.send(json.dumps({"type": "auth", "token": short}))
        reply = await recv_json(ws)
        await ws.close()
        return str(reply["type"])

    assert run(socket()) == "auth_success"


def test_token_command_on_a_data_dir_served_with_rs256_says_so(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "public.pem"
    pem.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    data_dir = tmp_path / "data"
    srv = Server("python", data_dir, "--feed", "none", "--jwt-algorithm", "RS256", "--jwt-public-key", str(pem)).start()
    try:
        minted = tickfan("token", "--sub", "alice", "--data-dir", str(data_dir))
        assert minted.returncode != 0 and minted.stdout == ""
        assert "RS256" in minted.stderr and "HS256 only" in minted.stderr
        assert not (data_dir / SECRET_FILE).exists()
        # while a token from the identity provider works
        token = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, key, algorithm="RS256")
        assert httpx.get(srv.http + "/api/symbols", headers={"Authorization": "Bearer " + token}).status_code == 200
    finally:
        srv.stop()
