"""Token verification, pure: a JWT in, a :class:`Principal` out, or :class:`AuthError`.

The accepted algorithm is pinned by configuration (HS256 with a shared secret by default, RS256
or ES256 with a PEM public key) and never taken from the token's header, so ``alg: none`` and
algorithm-confusion tokens are refused. ``sub`` (a non-empty string) and ``exp`` are required;
``aud`` and ``iss`` are checked when configured. There is no leeway on ``exp``. A token whose
``exp`` is more than ``max_lifetime_s`` ahead of now, or of its ``iat``, is refused as invalid
(``--jwt-max-lifetime-s``): a leaked token stays usable for that long at most.

Tokens are secrets: nothing here logs or echoes them, and :class:`AuthError` messages never
contain them.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jwt.algorithms import HMACAlgorithm

from tickfan.config import Config
from tickfan.errors import ConfigError, TickfanError

__all__ = [
    "Principal",
    "AuthError",
    "Verifier",
    "mint",
    "load_or_create_secret",
    "resolve_secret",
    "verifier_from_config",
    "SECRET_FILE",
    "ALGORITHM_FILE",
    "record_algorithm",
    "recorded_algorithm",
    "PUBLISH_SCOPE",
]

SECRET_FILE = "jwt_secret"
ALGORITHM_FILE = "jwt_algorithm"
"""The JWT algorithm of the last ``serve`` on a data dir, read by ``tickfan token``."""
PUBLISH_SCOPE = "publish"


@dataclass(frozen=True)
class Principal:
    """Who a valid token speaks for."""

    sub: str
    exp: int
    scopes: frozenset[str] = frozenset()

    def can(self, scope: str) -> bool:
        return scope in self.scopes


class AuthError(TickfanError):
    """A token was refused. ``expired`` tells an expired token from an invalid one."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


class _PreparedHMAC(HMACAlgorithm):
    """HS256 whose key is checked and converted once, at start.

    PyJWT prepares the key on every decode; for HMAC that means trying to parse it as a DER
    public key, a certificate and JSON (~9% of the server's CPU per connection in the S3
    connect storm). Here :meth:`prepare_key` returns the bytes prepared at start when handed
    that same object, and prepares anything else the usual way. Only the key is reused: every
    token's signature and claims are still verified.
    """

    def __init__(self, key: str | bytes) -> None:
        super().__init__(HMACAlgorithm.SHA256)
        self.prepared: bytes = super().prepare_key(key)

    def prepare_key(self, key: str | bytes) -> bytes:
        if key is self.prepared:
            return self.prepared
        return super().prepare_key(key)


class Verifier:
    """Verifies tokens against one pinned algorithm and key."""

    def __init__(
        self,
        algorithm: str,
        key: str | bytes,
        *,
        audience: str | None = None,
        issuer: str | None = None,
        max_lifetime_s: float | None = None,
    ) -> None:
        if algorithm not in ("HS256", "RS256", "ES256"):
            raise ConfigError(f"unsupported JWT algorithm {algorithm!r}")
        self.algorithm = algorithm
        self.audience = audience
        self.issuer = issuer
        self.max_lifetime_s = max_lifetime_s
        if algorithm == "HS256":
            try:
                algo: Any = _PreparedHMAC(key)
            except jwt.InvalidKeyError as exc:
                raise ConfigError(f"the JWT secret cannot be an HS256 key: {exc}") from None
            self._key: Any = algo.prepared
        else:
            # Parse once at start: an unreadable or mismatched key fails here, not per token.
            try:
                algo = jwt.get_algorithm_by_name(algorithm)
                self._key = algo.prepare_key(key)
            except Exception as exc:  # noqa: BLE001 - any parse failure is a config error
                raise ConfigError(f"the JWT public key is not a valid {algorithm} PEM public key: {exc}") from None
        # A decoder of its own that knows the pinned algorithm only (with the prepared key).
        jws = jwt.PyJWS(algorithms=[])
        jws.register_algorithm(algorithm, algo)
        self._jwt = jwt.PyJWT()
        self._jwt._jws = jws  # as PyJWT's own module-level decoder is wired (jwt.api_jwt)
        self._algorithms = [algorithm]
        self._options = {
            "require": ["sub", "exp"],
            "verify_aud": audience is not None,
            "verify_iss": issuer is not None,
        }

    def verify(self, token: object, now: float | None = None) -> Principal:
        """Return the token's :class:`Principal` or raise :class:`AuthError`."""
        if not isinstance(token, str) or not token:
            raise AuthError("token must be a non-empty string")
        try:
            claims = self._jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                audience=self.audience,
                issuer=self.issuer,
                options=self._options,  # type: ignore[arg-type]
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired", expired=True) from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {type(exc).__name__}") from None
        sub, exp = claims.get("sub"), claims.get("exp")
        if not isinstance(sub, str) or not sub:
            raise AuthError("invalid token: 'sub' must be a non-empty string")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool):
            raise AuthError("invalid token: 'exp' must be a number")
        # jwt.decode checked exp against its own clock; the explicit clock serves the tests.
        if now is not None and exp <= now:
            raise AuthError("token expired", expired=True)
        if self.max_lifetime_s is not None:
            self._check_lifetime(exp, claims.get("iat"), time.time() if now is None else now)
        scope = claims.get("scope", "")
        scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
        return Principal(sub=sub, exp=int(exp), scopes=scopes)


    def _check_lifetime(self, exp: float, iat: Any, now: float) -> None:
        limit = self.max_lifetime_s
        assert limit is not None
        if exp - now > limit:
            raise AuthError(f"invalid token: 'exp' is more than {limit:g} s ahead (the maximum lifetime)")
        if isinstance(iat, (int, float)) and not isinstance(iat, bool) and exp - iat > limit:
            raise AuthError(f"invalid token: 'exp' is more than {limit:g} s after 'iat' (the maximum lifetime)")


def mint(
    secret: str,
    sub: str,
    *,
    ttl_s: int = 3600,
    scopes: Iterable[str] = (),
    audience: str | None = None,
    issuer: str | None = None,
    now: float | None = None,
) -> str:
    """An HS256 token for ``sub`` valid ``ttl_s`` seconds (used by ``tickfan token``)."""
    if not sub:
        raise ConfigError("--sub must not be empty")
    if ttl_s < 1:
        raise ConfigError("--ttl must be >= 1 second")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"sub": sub, "iat": issued, "exp": issued + ttl_s}
    scope = " ".join(scopes)
    if scope:
        claims["scope"] = scope
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256")


def load_or_create_secret(data_dir: Path) -> str:
    """The data dir's HS256 secret, created (mode 0600, 256 random bits) when absent."""
    path = data_dir / SECRET_FILE
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the data dir {str(data_dir)!r}: {exc.strerror}") from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot create the JWT secret file {str(path)!r}: {exc.strerror}") from None
    else:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
    try:
        secret = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the JWT secret file {str(path)!r}: {exc.strerror}") from None
    if len(secret) < 32:
        raise ConfigError(f"the JWT secret in {str(path)!r} is shorter than 32 characters")
    return secret


def resolve_secret(config: Config) -> str:
    """``TICKFAN_JWT_SECRET``/``--jwt-secret`` if given, else the data dir's (created if needed)."""
    return config.jwt_secret if config.jwt_secret else load_or_create_secret(config.data_dir)


def verifier_from_config(config: Config) -> Verifier:
    if config.jwt_algorithm == "HS256":
        key: str | bytes = resolve_secret(config)
    else:
        assert config.jwt_public_key is not None
        try:
            key = config.jwt_public_key.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the JWT public key file: {exc.strerror}") from None
    return Verifier(
        config.jwt_algorithm, key, audience=config.jwt_audience, issuer=config.jwt_issuer,
        max_lifetime_s=config.jwt_max_lifetime_s,
    )


def record_algorithm(data_dir: Path, algorithm: str) -> None:
    """Note the server's JWT algorithm in the data dir, for ``tickfan token``."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / ALGORITHM_FILE).write_text(algorithm + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot write {str(data_dir / ALGORITHM_FILE)!r}: {exc.strerror}") from None


def recorded_algorithm(data_dir: Path) -> str | None:
    """The algorithm the last ``serve`` on ``data_dir`` used, or None if none was recorded."""
    try:
        return (data_dir / ALGORITHM_FILE).read_text().strip() or None
    except OSError:
        return None
