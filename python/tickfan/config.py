"""One frozen :class:`Config`, built from command-line flags and ``TICKFAN_*`` variables.

Every setting has a flag ``--name-with-dashes`` and a variable ``TICKFAN_NAME_WITH_UNDERSCORES``;
a flag beats its variable, the variable beats the default. :meth:`Config.build` validates
everything at start and raises :class:`~tickfan.errors.ConfigError` with a message that says how
to fix it. Granian workers are separate processes: the parent exports the resolved config with
:meth:`Config.to_env` and each worker rebuilds it with :meth:`Config.from_env`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tickfan.errors import ConfigError

__all__ = ["Config", "SymbolSpec", "DEFAULT_UNIVERSE", "SETTINGS", "ENV_PREFIX"]

ENV_PREFIX = "TICKFAN_"
ALGORITHMS = ("HS256", "RS256", "ES256")
FEEDS = ("sim", "none")
CORES = ("auto", "rust", "python")
INTERVAL_NAMES = ("1s", "1m", "5m", "1h")
LOOPS = ("auto", "asyncio", "uvloop")
TASK_IMPLS = ("asyncio", "rust")
RUNTIME_MODES = ("auto", "st", "mt")


@dataclass(frozen=True)
class SymbolSpec:
    """One symbol of the universe, with the simulator's starting price and rate."""

    symbol: str
    price_decimals: int
    size_decimals: int
    price: float = 100.0
    rate_per_s: float = 2.0


DEFAULT_UNIVERSE: tuple[SymbolSpec, ...] = (
    # BTC/USD is the high-frequency pair (>= 200 ticks/s) so auto mode batches by default.
    SymbolSpec("BTC/USD", 2, 8, 43125.37, 250.0),
    SymbolSpec("ETH/USD", 2, 6, 2291.55, 40.0),
    SymbolSpec("SOL/USD", 3, 4, 98.412, 10.0),
    SymbolSpec("XRP/USD", 5, 2, 0.61234, 5.0),
    SymbolSpec("ADA/USD", 5, 2, 0.38011, 3.0),
    SymbolSpec("DOGE/USD", 6, 1, 0.082345, 3.0),
    SymbolSpec("LTC/USD", 2, 6, 71.25, 2.0),
    SymbolSpec("DOT/USD", 4, 3, 6.7812, 2.0),
    SymbolSpec("LINK/USD", 4, 3, 14.4521, 2.0),
    SymbolSpec("AVAX/USD", 3, 4, 36.125, 2.0),
    SymbolSpec("ETH/BTC", 6, 6, 0.053125, 1.0),
    SymbolSpec("BTC/EUR", 2, 8, 39870.5, 5.0),
)


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _parse_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _parse_retention(text: str) -> tuple[tuple[str, int], ...]:
    out: list[tuple[str, int]] = []
    for part in _parse_list(text):
        name, sep, count = part.partition("=")
        if not sep:
            raise ValueError(f"expected INTERVAL=COUNT, got {part!r}")
        out.append((name.strip(), int(count)))
    return tuple(out)


@dataclass(frozen=True)
class Setting:
    """One configuration entry: its field, flag, parser and help text."""

    name: str
    parse: Any
    help: str
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    secret: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("host", str, "interface to listen on"),
    Setting("port", int, "TCP port (1-65535)"),
    Setting("fast_port", int, "also serve /ws/market-data from the Rust extension's own listener on this port (the fast lane; needs the Rust core)", metavar="PORT"),
    Setting("workers", int, "worker processes; > 1 needs a broker spanning processes (Redis)"),
    Setting("feed", str, "tick source: the simulator, or none (publishers use POST /api/ticks)", choices=FEEDS),
    Setting("core", str, "core implementation", choices=CORES),
    Setting("broker", str, "memory, or redis://host:port/db", metavar="URL"),
    Setting("log_retention_s", float, "Redis broker without checkpoints (--checkpoint-interval-s 0): seconds of tick log kept for nodes that (re)join; 0: keep all", metavar="SECONDS"),
    Setting("checkpoint_interval_s", float, "Redis broker: seconds between checkpoints of the tick state (written by the lease holder; the log is trimmed behind the previous one); 0: none", metavar="SECONDS"),
    Setting("data_dir", Path, "directory for the generated JWT secret and other state", metavar="DIR"),
    Setting("symbols", Path, "JSON file with the symbol universe (see docs/configuration.md)", metavar="FILE"),
    Setting("log_level", str, "log level", choices=("debug", "info", "warning", "error")),
    Setting("jwt_secret", str, "HS256 shared secret (prefer the variable: flags show in ps)", secret=True),
    Setting("jwt_algorithm", str, "the one accepted JWT algorithm", choices=ALGORITHMS),
    Setting("jwt_public_key", Path, "PEM public key file for RS256/ES256", metavar="FILE"),
    Setting("jwt_audience", str, "required 'aud' claim (unchecked when empty)"),
    Setting("jwt_issuer", str, "required 'iss' claim (unchecked when empty)"),
    Setting("jwt_max_lifetime_s", int, "tokens whose exp is further than this ahead of now (or of iat) are refused"),
    Setting("auth_timeout_ms", int, "time a socket has to send its auth message"),
    Setting("max_unauthenticated_per_peer", int, "sockets one remote address may hold open before they authenticate; more are closed 1013"),
    Setting("allowed_origins", _parse_list, "comma-separated Origin allow-list for WebSockets; empty: any", metavar="LIST"),
    Setting("max_message_bytes", int, "largest inbound WebSocket message"),
    Setting("max_symbols_per_connection", int, "subscriptions one socket may hold"),
    Setting("max_alerts_per_user", int, "armed price alerts one user may hold; more are refused with 422"),
    Setting("rate_limit_per_s", float, "inbound messages per second per socket (token bucket rate)"),
    Setting("rate_limit_burst", int, "token bucket size (inbound burst)"),
    Setting("rate_limit_close_s", float, "a socket still over the rate limit this long after its flood began is closed (rate_limited, 1008)"),
    Setting("max_queue_frames", int, "outbound queue limit per socket, frames"),
    Setting("max_queue_bytes", int, "outbound queue limit per socket, bytes"),
    Setting("max_ts_skew_ms", int, "ticks whose ts is further ahead of the server clock than this are refused (ms)"),
    Setting("resume_window_ms", int, "resume ring per symbol: ticks less than this many ms (tick time) older than the latest"),
    Setting("resume_max_ticks", int, "resume ring per symbol: at most this many ticks"),
    Setting("high_water_frames", int, "a market-data socket whose queue reaches this many frames is degraded: tick/auto subscriptions conflated (0: never; ignored unless below --max-queue-frames)"),
    Setting("low_water_frames", int, "a degraded socket whose queue drains to this many frames returns to its modes, with a gap for what it skipped"),
    Setting("degrade_interval_ms", int, "conflation interval of a degraded socket's subscriptions (ms)"),
    Setting("degrade_after_ms", int, "a market-data socket whose queue has not been empty for this long is degraded like at --high-water-frames, and then stays degraded at least --degrade-interval-ms (ms; 0: never)"),
    Setting("slow_consumer_grace_ms", int, "a socket over --max-queue-frames/--max-queue-bytes gets its market data dropped (then a gap) and is closed (slow_consumer, 1013) only if still over after this long (ms; 0 = at once)"),
    Setting("send_timeout_s", float, "a socket that completes no frame for this long while it has frames to send is a slow consumer (slow_consumer, 1013)"),
    Setting("high_freq_per_s", float, "auto mode: ticks/s above which a symbol is batched"),
    Setting("candle_retention", _parse_retention, "candles kept per interval, e.g. 1s=3600,1m=1440", metavar="LIST"),
    Setting("sim_speed", float, "multiplier on every simulated symbol's tick rate"),
    Setting("sim_seed", int, "random seed of the simulator (0: random)"),
    Setting("max_connections", int, "concurrent connections per worker (Granian backpressure)"),
    Setting("backlog", int, "listen backlog of the server socket"),
    Setting("shutdown_timeout_s", float, "grace period for closing sockets at shutdown, and for any one socket's close (then the connection is dropped)"),
    Setting("loop", str, "event loop of the workers (auto: Granian's pick, rloop > uvloop > asyncio)", choices=LOOPS),
    Setting("task_impl", str, "Granian's task implementation for the app's coroutines (rust: experimental)", choices=TASK_IMPLS),
    Setting("runtime_mode", str, "Granian's Rust I/O runtime: st (single-threaded) or mt (auto: mt for ASGI)", choices=RUNTIME_MODES),
    Setting("runtime_threads", int, "Granian Rust I/O runtime threads per worker"),
    Setting("runtime_blocking_threads", int, "Granian Rust runtime blocking threads per worker (0: Granian's default)"),
)
_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Config:
    """The server's whole configuration; immutable once built."""

    host: str = "127.0.0.1"
    port: int = 8000
    fast_port: int | None = None
    workers: int = 1
    feed: str = "sim"
    core: str = "auto"
    broker: str = "memory"
    log_retention_s: float = 86_400.0
    checkpoint_interval_s: float = 10.0
    data_dir: Path = Path(".tickfan")
    symbols: Path | None = None
    log_level: str = "info"
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_algorithm: str = "HS256"
    jwt_public_key: Path | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_max_lifetime_s: int = 86_400
    auth_timeout_ms: int = 5000
    max_unauthenticated_per_peer: int = 64
    allowed_origins: tuple[str, ...] = ()
    max_message_bytes: int = 64 * 1024
    max_symbols_per_connection: int = 100
    max_alerts_per_user: int = 200
    rate_limit_per_s: float = 20.0
    rate_limit_burst: int = 40
    rate_limit_close_s: float = 5.0
    max_queue_frames: int = 10_000
    max_queue_bytes: int = 8 * 1024 * 1024
    max_ts_skew_ms: int = 60_000
    resume_window_ms: int = 60_000
    resume_max_ticks: int = 100_000
    high_water_frames: int = 1000
    low_water_frames: int = 100
    degrade_interval_ms: int = 1000
    degrade_after_ms: int = 500
    slow_consumer_grace_ms: int = 5000
    send_timeout_s: float = 10.0
    high_freq_per_s: float = 20.0
    candle_retention: tuple[tuple[str, int], ...] = ()
    sim_speed: float = 1.0
    sim_seed: int = 0
    max_connections: int = 16_384
    backlog: int = 4096
    shutdown_timeout_s: float = 5.0
    loop: str = "uvloop"
    task_impl: str = "asyncio"
    runtime_mode: str = "st"
    runtime_threads: int = 1
    runtime_blocking_threads: int = 0

    def high_water(self) -> int | None:
        """The core's ``high_water_frames``: None when degrading is off (0) or could never come
        before the hard limit (not below ``max_queue_frames``)."""
        if 0 < self.high_water_frames < self.max_queue_frames:
            return self.high_water_frames
        return None

    # --- building ------------------------------------------------------------------------

    @classmethod
    def build(cls, flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Config:
        """Defaults, overridden by ``env`` (``TICKFAN_*``), overridden by ``flags``; validated.

        ``flags`` maps field names to already-typed values; ``None`` values mean "not given".
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            raw = env.get(setting.env)
            if raw is None or (raw == "" and setting.name not in ("allowed_origins",)):
                continue
            try:
                values[setting.name] = setting.parse(raw)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{setting.env}={raw!r} is invalid: {exc}") from None
        for name, value in (flags or {}).items():
            if name not in _BY_NAME:
                raise ConfigError(f"unknown setting {name!r}")
            if value is not None:
                values[name] = value
        for name in ("jwt_audience", "jwt_issuer", "jwt_secret"):
            if values.get(name) == "":
                values[name] = None
        config = cls(**values)
        config.validate()
        return config

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        return cls.build(None, env)

    def to_env(self) -> dict[str, str]:
        """``TICKFAN_*`` variables that rebuild this config in another process."""
        out: dict[str, str] = {}
        for setting in SETTINGS:
            value = getattr(self, setting.name)
            if value is None:
                out[setting.env] = ""
            elif setting.name == "allowed_origins":
                out[setting.env] = ",".join(value)
            elif setting.name == "candle_retention":
                out[setting.env] = ",".join(f"{k}={v}" for k, v in value)
            else:
                out[setting.env] = str(value)
        return out

    def replace(self, **changes: Any) -> Config:
        config = dataclasses.replace(self, **changes)
        config.validate()
        return config

    # --- validation ----------------------------------------------------------------------

    def validate(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)

        need(bool(self.host), "--host must not be empty")
        need(1 <= self.port <= 65535, f"--port must be between 1 and 65535, got {self.port}")
        if self.fast_port is not None:
            need(1 <= self.fast_port <= 65535, f"--fast-port must be between 1 and 65535, got {self.fast_port}")
            need(self.fast_port != self.port, f"--fast-port must differ from --port (both {self.port})")
        need(self.workers >= 1, f"--workers must be >= 1, got {self.workers}")
        need(self.feed in FEEDS, f"--feed must be one of {', '.join(FEEDS)}, got {self.feed!r}")
        need(self.core in CORES, f"unknown core {self.core!r}: --core must be one of {', '.join(CORES)}")
        need(
            self.broker == "memory" or self.broker.startswith(("redis://", "rediss://")),
            f"--broker must be 'memory' or a redis:// URL, got {self.broker!r}",
        )
        need(
            self.workers == 1 or self.broker != "memory",
            f"--workers {self.workers} needs a broker that spans processes: the in-memory broker "
            "lives in one process, so each worker would see only its own ticks. Use --workers 1, "
            "or --broker redis://HOST:PORT/0 (a Redis 7 with AOF; see docs/operations.md).",
        )
        need(self.log_retention_s >= 0, "--log-retention-s must be >= 0 (0: keep the whole log)")
        need(
            self.checkpoint_interval_s == 0 or 0.1 <= self.checkpoint_interval_s <= 86_400,
            "--checkpoint-interval-s must be 0 (no checkpoints) or between 0.1 and 86400",
        )
        need(self.jwt_algorithm in ALGORITHMS, f"--jwt-algorithm must be one of {', '.join(ALGORITHMS)}, got {self.jwt_algorithm!r}")
        if self.jwt_algorithm != "HS256":
            need(
                self.jwt_public_key is not None,
                f"--jwt-algorithm {self.jwt_algorithm} needs --jwt-public-key (TICKFAN_JWT_PUBLIC_KEY), a PEM file",
            )
            assert self.jwt_public_key is not None
            try:
                self.jwt_public_key.read_bytes()
            except OSError as exc:
                raise ConfigError(f"cannot read the JWT public key file {str(self.jwt_public_key)!r}: {exc.strerror}") from None
        elif self.jwt_secret is not None:
            need(len(self.jwt_secret) >= 32, "the JWT secret must be at least 32 characters (HS256 needs 256 bits)")
        need(self.jwt_max_lifetime_s >= 1, "--jwt-max-lifetime-s must be >= 1")
        need(self.auth_timeout_ms >= 1, "--auth-timeout-ms must be >= 1")
        need(self.max_unauthenticated_per_peer >= 1, "--max-unauthenticated-per-peer must be >= 1")
        need(self.max_message_bytes >= 256, "--max-message-bytes must be >= 256")
        need(self.max_symbols_per_connection >= 1, "--max-symbols-per-connection must be >= 1")
        need(self.max_alerts_per_user >= 1, "--max-alerts-per-user must be >= 1")
        need(self.rate_limit_per_s > 0, "--rate-limit-per-s must be > 0")
        need(self.rate_limit_burst >= 1, "--rate-limit-burst must be >= 1")
        need(self.rate_limit_close_s > 0, "--rate-limit-close-s must be > 0")
        need(self.max_queue_frames >= 1 and self.max_queue_bytes >= 1, "queue limits must be >= 1")
        need(self.max_ts_skew_ms >= 0, "--max-ts-skew-ms must be >= 0")
        need(self.resume_window_ms >= 1, "--resume-window-ms must be >= 1")
        need(self.resume_max_ticks >= 1, "--resume-max-ticks must be >= 1")
        need(self.high_water_frames >= 0, "--high-water-frames must be >= 0")
        need(
            self.low_water_frames >= 0 and (self.high_water_frames == 0 or self.low_water_frames < self.high_water_frames),
            "--low-water-frames must be >= 0 and below --high-water-frames",
        )
        need(10 <= self.degrade_interval_ms <= 60_000, "--degrade-interval-ms must be between 10 and 60000")
        need(self.degrade_after_ms >= 0, "--degrade-after-ms must be >= 0")
        need(self.slow_consumer_grace_ms >= 0, "--slow-consumer-grace-ms must be >= 0")
        need(self.send_timeout_s > 0, "--send-timeout-s must be > 0")
        need(self.high_freq_per_s > 0, "--high-freq-per-s must be > 0")
        for name, count in self.candle_retention:
            need(name in INTERVAL_NAMES, f"--candle-retention: unknown interval {name!r} (one of {', '.join(INTERVAL_NAMES)})")
            need(count >= 1, f"--candle-retention: {name} must keep at least 1 candle")
        need(self.sim_speed > 0, "--sim-speed must be > 0")
        need(self.max_connections >= 1, "--max-connections must be >= 1")
        need(self.backlog >= 128, "--backlog must be >= 128")
        need(self.shutdown_timeout_s > 0, "--shutdown-timeout-s must be > 0")
        need(self.loop in LOOPS, f"--loop must be one of {', '.join(LOOPS)}, got {self.loop!r}")
        need(self.task_impl in TASK_IMPLS, f"--task-impl must be one of {', '.join(TASK_IMPLS)}, got {self.task_impl!r}")
        need(self.runtime_mode in RUNTIME_MODES, f"--runtime-mode must be one of {', '.join(RUNTIME_MODES)}, got {self.runtime_mode!r}")
        need(self.runtime_threads >= 1, "--runtime-threads must be >= 1")
        need(self.runtime_blocking_threads >= 0, "--runtime-blocking-threads must be >= 0 (0: Granian's default)")
        need(self.log_level in ("debug", "info", "warning", "error"), f"unknown --log-level {self.log_level!r}")
        if self.symbols is not None:
            self.universe()  # readable and well-formed

    # --- derived -------------------------------------------------------------------------

    def universe(self) -> tuple[SymbolSpec, ...]:
        """The symbol universe: ``--symbols`` FILE, else :data:`DEFAULT_UNIVERSE`."""
        if self.symbols is None:
            return DEFAULT_UNIVERSE
        return load_symbols(self.symbols)

    def candle_capacity(self) -> dict[str, int]:
        return dict(self.candle_retention)

    def describe(self) -> dict[str, Any]:
        """The settings for logs; the secret is never included."""
        return {f.name: ("<set>" if f.name == "jwt_secret" and getattr(self, f.name) else getattr(self, f.name)) for f in fields(self)}


def load_symbols(path: Path) -> tuple[SymbolSpec, ...]:
    """Read a universe file: a JSON list of objects ``{"symbol", "price_decimals",
    "size_decimals"}`` with optional ``"price"`` (simulator start) and ``"rate_per_s"``."""
    where = f"symbols file {str(path)!r}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the {where}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"the {where} is not valid JSON: {exc}") from None
    if not isinstance(data, list) or not data:
        raise ConfigError(f"the {where} must hold a non-empty JSON list of symbol objects")
    out: list[SymbolSpec] = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: item {i} must be an object")
        name = item.get("symbol", item.get("name"))
        pd, sd = item.get("price_decimals"), item.get("size_decimals")
        if not isinstance(name, str):
            raise ConfigError(f"{where}: item {i} needs a string 'symbol'")
        for key, value in (("price_decimals", pd), ("size_decimals", sd)):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 12:
                raise ConfigError(f"{where}: {name!r} needs an integer {key} between 0 and 12")
        price = item.get("price", 100.0)
        rate = item.get("rate_per_s", 2.0)
        if not isinstance(price, (int, float)) or isinstance(price, bool) or not price > 0:
            raise ConfigError(f"{where}: {name!r} price must be a number > 0")
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not rate >= 0:
            raise ConfigError(f"{where}: {name!r} rate_per_s must be a number >= 0")
        out.append(SymbolSpec(name, pd, sd, float(price), float(rate)))
    return tuple(out)
