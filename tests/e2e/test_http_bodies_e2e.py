"""Request bodies of every write route against a real server: a body that is not readable
JSON (syntax, ``1e400``, deep nesting) is 400 with a JSON error, never 500; a body over the
route's size limit is 413; the server goes on serving."""

from __future__ import annotations

import httpx
import pytest

from tickfan_e2e import Server, bearer, users

pytestmark = pytest.mark.e2e

DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 5_000 + b"1" + b"}" * 5_000

# (route, publisher token?, a valid body with a hole "@" for the hostile value)
ROUTES = {
    "ticks": ("/api/ticks", True, b'[{"symbol":"BTC/USD","price":@,"size":1.0,"ts":1}]'),
    "notifications": ("/api/notifications", True, b'{"user_id":"u","kind":"info","title":"t","data":{"x":@}}'),
    "notifications_read": ("/api/notifications/read", False, b'{"ids":[@]}'),
    "bot_status": ("/api/bots/b-1/status", True, b'{"user_id":"u","status":"running","detail":{"x":@}}'),
    "alerts": ("/api/alerts", False, b'{"symbol":"BTC/USD","above":@}'),
}

BAD_BODIES = {
    "syntax": b"{not json",
    "deep_array": DEEP_ARRAY,
    "deep_object": DEEP_OBJECT,
    "huge_number_top": b"1e400",
    "huge_number_in_field": None,  # the route's own body with 1e400 in its number field
    "deep_in_field": None,  # the route's own body with deep nesting in a field
    "truncated": None,  # the route's own body cut short
}


def post(server: Server, route: str, body: bytes) -> httpx.Response:
    path, publisher, _ = ROUTES[route]
    headers = {**bearer(users("poster")[0], publish=publisher), "Content-Type": "application/json"}
    return httpx.post(server.http + path, content=body, headers=headers, timeout=30)


@pytest.mark.parametrize("case", list(BAD_BODIES))
@pytest.mark.parametrize("route", list(ROUTES))
def test_unreadable_json_is_400_on_every_write_route(plain_server: Server, route: str, case: str) -> None:
    template = ROUTES[route][2]
    body = BAD_BODIES[case]
    if case == "huge_number_in_field":
        body = template.replace(b"@", b"1e400")
    elif case == "deep_in_field":
        body = template.replace(b"@", DEEP_ARRAY)
    elif case == "truncated":
        body = template.replace(b"@", b"1")[:-3]
    assert body is not None
    response = post(plain_server, route, body)
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()
    assert error["status_code"] == 400 and error["error"].startswith("The body is not valid JSON")
    assert httpx.get(plain_server.http + "/healthz").status_code == 200


@pytest.mark.parametrize("route", [r for r in ROUTES if r != "ticks"])
def test_body_over_the_size_limit_is_413(plain_server: Server, route: str) -> None:
    body = ROUTES[route][2].replace(b"@", b"1" + b" " * (1024 * 1024))
    response = post(plain_server, route, body)
    assert response.status_code == 413, (response.status_code, response.text[:300])
    assert response.json()["error"]


@pytest.mark.parametrize("route", [r for r in ROUTES if r != "ticks"])
def test_a_body_just_under_the_size_limit_is_read(plain_server: Server, route: str) -> None:
    # whitespace pads the body to just under 1 MiB; the answer is the route's usual one, not 413
    base = ROUTES[route][2].replace(b"@", b"1")
    body = base[:-1] + b" " * (1024 * 1024 - len(base) - 8) + base[-1:]
    response = post(plain_server, route, body)
    assert response.status_code in (200, 201, 422), (response.status_code, response.text[:300])
