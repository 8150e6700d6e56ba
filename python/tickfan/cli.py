"""``tickfan serve`` and ``tickfan token`` (PROTOCOL.md section 8).

``serve`` builds one :class:`~tickfan.config.Config` from flags and ``TICKFAN_*`` variables,
validates it (bad values exit with status 2 and one clear line), prepares the JWT secret, exports
the config to the environment for the worker processes and starts Granian (ASGI) with
backpressure sized for ``--max-connections`` sockets per worker (Granian's default would admit
only ``backlog / workers`` = 1024 concurrent connections), and with the event loop and Rust
runtime of ``--loop`` / ``--runtime-mode`` (uvloop and the single-threaded runtime by default:
both measured cheaper per frame and per connection, see docs/configuration.md).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
from collections.abc import Sequence
from typing import Any

from tickfan.config import SETTINGS, Config
from tickfan.errors import ConfigError, InvalidArgument

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tickfan", description="Real-time market-data server")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server", description="Run the server. Every flag has a TICKFAN_<FLAG> variable; a flag beats its variable.")
    for setting in SETTINGS:
        serve.add_argument(
            setting.flag,
            dest=setting.name,
            type=setting.parse,
            default=None,
            choices=setting.choices,
            metavar=setting.metavar or (None if setting.choices else setting.name.split("_")[-1].upper()),
            help=f"{setting.help} [{setting.env}]",
        )

    token = sub.add_parser("token", help="print a signed token", description="Print an HS256 token signed with the secret `serve` uses.")
    token.add_argument("--sub", required=True, help="the user id (JWT 'sub')")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.add_argument("--scope", action="append", default=[], help="a scope to grant, e.g. publish (repeatable)")
    token.add_argument("--data-dir", dest="data_dir", default=None, help="data dir holding the secret [TICKFAN_DATA_DIR]")

    from tickfan.client.tail import add_parser as add_tail  # the SDK's CLI; imports no server code

    add_tail(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve({s.name: getattr(args, s.name) for s in SETTINGS})
        if args.command == "tail":
            from tickfan.client.tail import run as tail

            return tail(args)
        return token(args)
    except ConfigError as exc:
        print(f"tickfan: configuration error: {exc}", file=sys.stderr)
        return 2


def token(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tickfan.auth import mint, recorded_algorithm, resolve_secret

    config = Config.build({"data_dir": Path(args.data_dir) if args.data_dir else None})
    served = recorded_algorithm(config.data_dir)
    for algorithm, where in ((config.jwt_algorithm, "TICKFAN_JWT_ALGORITHM"), (served, f"the server on {config.data_dir}")):
        if algorithm is not None and algorithm != "HS256":
            raise ConfigError(
                f"{where} accepts {algorithm} tokens, which your identity provider signs with its "
                "private key; `tickfan token` signs HS256 only (no token printed, no secret created)"
            )
    if args.ttl > config.jwt_max_lifetime_s:
        raise ConfigError(
            f"--ttl {args.ttl} is over the server's maximum token lifetime, "
            f"{config.jwt_max_lifetime_s} s (--jwt-max-lifetime-s): the server would refuse the token"
        )
    scopes = [part for value in args.scope for part in value.split()]
    print(mint(resolve_secret(config), args.sub, ttl_s=args.ttl, scopes=scopes,
               audience=config.jwt_audience, issuer=config.jwt_issuer))
    return 0


def prepare(flags: dict[str, Any]) -> Config:
    """Build, validate and resolve the config in the parent process (no server started)."""
    from tickfan import core as core_select
    from tickfan.auth import record_algorithm, verifier_from_config

    config = Config.build(flags)
    config = config.replace(
        data_dir=config.data_dir.resolve(),
        symbols=config.symbols.resolve() if config.symbols else None,
        jwt_public_key=config.jwt_public_key.resolve() if config.jwt_public_key else None,
    )
    verifier_from_config(config)  # creates the data dir's secret when needed; checks the key
    record_algorithm(config.data_dir, config.jwt_algorithm)  # so `tickfan token` can tell
    if config.loop == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            raise ConfigError("--loop uvloop needs the uvloop package (pip install uvloop); or use --loop asyncio") from None
    if config.broker != "memory":
        from tickfan.brokers.redis import check_url

        check_url(config.broker, config)  # bad, unreachable or another cluster's: one line, exit 2
    module = core_select.load(config.core)
    try:
        module.Core(
            [(s.symbol, s.price_decimals, s.size_decimals) for s in config.universe()],
            candle_capacity=config.candle_capacity() or None,
        )
    except InvalidArgument as exc:
        raise ConfigError(f"invalid symbol universe: {exc}") from None
    if config.fast_port is not None:
        if module.IMPLEMENTATION != "rust":
            raise ConfigError("--fast-port needs the Rust core (the fast lane is part of the extension); "
                              f"the {module.IMPLEMENTATION} core is selected")
        _check_port_free(config.host, config.fast_port)
    return config


def _check_port_free(host: str, port: int) -> None:
    """A clear error now rather than a worker failing to start: the fast port must be free."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        raise ConfigError(f"--fast-port {port}: cannot listen on {host}:{port} ({exc.strerror or exc})") from None


def _raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass


def serve(flags: dict[str, Any]) -> int:
    from granian.constants import Interfaces, Loops, RuntimeModes, TaskImpl
    from granian.log import LogLevels
    from granian.server import Server

    from tickfan.web.dashboard import console_lines

    config = prepare(flags)
    _raise_fd_limit(config.max_connections * config.workers + 1024)
    os.environ.update(config.to_env())

    url = f"http://{config.host}:{config.port}"
    ws = f"ws://{config.host}:{config.port}/ws/market-data"
    if config.fast_port is not None:
        ws += f", fast lane ws://{config.host}:{config.fast_port}/ws/market-data"
    data_dir_flag = "" if config.jwt_secret else f" --data-dir {config.data_dir}"
    print(
        f"tickfan serving {url} (WebSocket {ws}); core={config.core} feed={config.feed} workers={config.workers}\n"
        f"granian: loop={config.loop} task-impl={config.task_impl} runtime-mode={config.runtime_mode} "
        f"runtime-threads={config.runtime_threads}\n"
        f"mint a token:  tickfan token --sub alice{data_dir_flag}    (publisher: add --scope publish)\n"
        f"{console_lines(config)}",
        flush=True,
    )
    server = Server(
        "tickfan.web.app:create_app_from_env",
        address=config.host,
        port=config.port,
        interface=Interfaces.ASGI,
        workers=config.workers,
        websockets=True,
        backlog=config.backlog,
        backpressure=config.max_connections,
        log_level=LogLevels(config.log_level),
        workers_kill_timeout=int(config.shutdown_timeout_s) + 5,
        factory=True,
        loop=Loops(config.loop),
        task_impl=TaskImpl(config.task_impl),
        runtime_mode=RuntimeModes(config.runtime_mode),
        runtime_threads=config.runtime_threads,
        runtime_blocking_threads=config.runtime_blocking_threads or None,
    )
    server.serve()
    return 0
