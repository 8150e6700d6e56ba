"""Token verification: pinned algorithms, required claims, aud/iss, scopes, the secret file."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tickfan.auth import AuthError, Principal, Verifier, load_or_create_secret, mint, verifier_from_config
from tickfan.config import Config
from tickfan.errors import ConfigError

SECRET = "unit-test-secret-" + "q" * 50


def hs(claims: dict[str, object], key: str = SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=alg)


def valid(**extra: object) -> dict[str, object]:
    return {"sub": "alice", "exp": int(time.time()) + 86400, **extra}


def test_valid_token_gives_principal_with_scopes() -> None:
    exp = int(time.time()) + 86400
    principal = Verifier("HS256", SECRET).verify(hs({"sub": "svc", "exp": exp, "scope": "publish read"}))
    assert principal == Principal("svc", exp, frozenset({"publish", "read"}))
    assert principal.can("publish") and not principal.can("admin")


def test_mint_round_trip() -> None:
    token = mint(SECRET, "bob", ttl_s=60, scopes=["publish"])
    principal = Verifier("HS256", SECRET).verify(token)
    assert principal.sub == "bob" and principal.can("publish")
    assert 55 <= principal.exp - time.time() <= 61


def _rsa() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def _ec() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


@pytest.mark.parametrize("alg,keys", [("RS256", _rsa), ("ES256", _ec)])
def test_public_key_algorithms(alg: str, keys: object) -> None:
    private, public = keys()  # type: ignore[operator]
    verifier = Verifier(alg, public)
    assert verifier.verify(jwt.encode(valid(), private, algorithm=alg)).sub == "alice"
    # an HS256 token is refused outright: the algorithm is pinned, not read from the header
    with pytest.raises(AuthError):
        verifier.verify(hs(valid(), "k" * 64))
    with pytest.raises(AuthError):
        verifier.verify(jwt.encode(valid(), None, algorithm="none"))


def test_bad_public_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        Verifier("RS256", b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        hs(valid(), "wrong-secret-" + "w" * 50),
        jwt.encode(valid(), None, algorithm="none"),
        hs(valid(), SECRET, "HS512"),
        hs({"exp": int(time.time()) + 86400}),
        hs({"sub": "alice"}),
        hs({"sub": "", "exp": int(time.time()) + 86400}),
        hs({"sub": 42, "exp": int(time.time()) + 86400}),
        hs({"sub": "alice", "exp": "tomorrow"}),
    ],
    ids=["empty", "garbage", "wrong_secret", "alg_none", "hs512", "no_sub", "no_exp", "empty_sub", "int_sub", "str_exp"],
)
def test_invalid_tokens(token: str) -> None:
    with pytest.raises(AuthError) as info:
        Verifier("HS256", SECRET).verify(token)
    assert not info.value.expired
    assert token == "" or token not in str(info.value)


@pytest.mark.parametrize("token", [None, 42, ["a"]])
def test_non_string_tokens(token: object) -> None:
    with pytest.raises(AuthError):
        Verifier("HS256", SECRET).verify(token)


def test_expired_is_flagged() -> None:
    with pytest.raises(AuthError) as info:
        Verifier("HS256", SECRET).verify(hs({"sub": "a", "exp": int(time.time()) - 1}))
    assert info.value.expired


def test_audience_and_issuer_when_configured() -> None:
    verifier = Verifier("HS256", SECRET, audience="tickfan", issuer="https://id.example")
    assert verifier.verify(hs(valid(aud="tickfan", iss="https://id.example"))).sub == "alice"
    for claims in (valid(aud="other", iss="https://id.example"), valid(iss="https://id.example"), valid(aud="tickfan", iss="https://evil")):
        with pytest.raises(AuthError):
            verifier.verify(hs(claims))
    # not configured: not checked
    assert Verifier("HS256", SECRET).verify(hs(valid(aud="anything", iss="anyone"))).sub == "alice"


def test_secret_file_created_0600_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = load_or_create_secret(data_dir)
    assert len(first) >= 64
    assert stat.S_IMODE((data_dir / "jwt_secret").stat().st_mode) == 0o600
    assert load_or_create_secret(data_dir) == first


def test_configured_secret_wins_over_the_data_dir(tmp_path: Path) -> None:
    config = Config.build({"data_dir": tmp_path, "jwt_secret": SECRET}, {})
    assert verifier_from_config(config).verify(mint(SECRET, "x")).sub == "x"
    assert not (tmp_path / "jwt_secret").exists()
