"""``/readyz`` answers 503 when the store behind notifications and alerts is unreachable (the
real app and store, in-process; the store is closed under the running app)."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import TestClient

from tickfan.config import Config
from tickfan.web.app import create_app


def test_readyz_is_503_when_the_store_is_closed(tmp_path: Path) -> None:
    config = Config.build({"feed": "none", "core": "python", "data_dir": tmp_path, "jwt_secret": "s" * 40}, env={})
    app = create_app(config)
    with TestClient(app) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["store"] == "ok"
        client.blocking_portal.call(app.state.hub.broker.store.close)
        down = client.get("/readyz")
        assert down.status_code == 503
        assert down.json() == {"status": "unavailable", "core": "python", "broker": "memory", "store": "unreachable"}
        assert client.get("/healthz").status_code == 200  # alive, not ready
