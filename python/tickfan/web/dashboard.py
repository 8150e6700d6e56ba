"""The dashboard: ``GET /`` (``index.html`` with its CSP) and ``/static/*`` (the page's files and
``tickfan.js``, the browser client), shipped in the package next to this module; and the lines
``tickfan serve`` prints to open it (a ready ``/#token=…`` URL in zero-config mode).

The page is plain files: no build step, no external URL, no inline script (``script-src
'self'``). The static directory is given to Litestar as an absolute path: it resolves relative
ones against the working directory, not the package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Response, get
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

from tickfan.config import Config

__all__ = ["ROUTES", "STATIC_DIR", "CSP", "DASHBOARD_USER", "DASHBOARD_TOKEN_TTL_S", "console_lines"]

STATIC_DIR = (Path(__file__).parent / "static").resolve()

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The page's Content-Security-Policy: its own files and its own origin's sockets, nothing else."""

DASHBOARD_USER = "local"
"""The ``sub`` of the token in the URL a zero-config ``tickfan serve`` prints."""

DASHBOARD_TOKEN_TTL_S = 8 * 3600
"""That token's lifetime: a working day (at most ``--jwt-max-lifetime-s``); then mint another."""

_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


@get("/", include_in_schema=False, cache_control=CacheControlHeader(no_cache=True))
async def index() -> Response[bytes]:
    return Response((STATIC_DIR / "index.html").read_bytes(), media_type="text/html", headers=_HEADERS)


def _static_headers(response: Any) -> Any:
    # Public code, no credentials: any page may import tickfan.js as a module (CORS).
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


ROUTES: list[Any] = [
    index,
    create_static_files_router(
        "/static", [STATIC_DIR], name="dashboard-static", after_request=_static_headers, cache_control=CacheControlHeader(no_cache=True)
    ),
]


def console_lines(config: Config) -> str:
    """What ``tickfan serve`` prints about the dashboard (on the console, never through logging:
    the zero-config line holds a token)."""
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    url = f"http://{'[' + host + ']' if ':' in host else host}:{config.port}/"
    if config.jwt_algorithm != "HS256":
        return f"dashboard: {url}#token=<a {config.jwt_algorithm} token from your identity provider>"
    if config.jwt_secret:
        return f"dashboard: {url}#token=$(tickfan token --sub alice)    (a token signed with TICKFAN_JWT_SECRET)"
    from tickfan.auth import mint, resolve_secret

    ttl_s = min(DASHBOARD_TOKEN_TTL_S, config.jwt_max_lifetime_s)  # the server refuses longer ones
    token = mint(resolve_secret(config), DASHBOARD_USER, ttl_s=ttl_s, audience=config.jwt_audience, issuer=config.jwt_issuer)
    valid = f"{ttl_s / 3600:g} h" if ttl_s % 3600 == 0 else f"{ttl_s} s"
    return f"dashboard (user {DASHBOARD_USER!r}, token valid {valid}):\n    {url}#token={token}"
