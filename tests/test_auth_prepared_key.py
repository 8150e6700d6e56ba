"""The HS256 key is checked and prepared once, at start; every token is still fully verified."""

from __future__ import annotations

import time

import jwt
import pytest
from jwt.algorithms import HMACAlgorithm

from tickfan.auth import AuthError, Verifier
from tickfan.errors import ConfigError

SECRET = "prepared-key-secret-" + "z" * 40


def _token(key: str = SECRET, alg: str = "HS256", **claims: object) -> str:
    return jwt.encode({"sub": "alice", "exp": int(time.time()) + 600, **claims}, key, algorithm=alg)


def test_key_is_prepared_once_not_per_token(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = Verifier("HS256", SECRET)
    tokens = [_token(n=n) for n in range(3)]  # signing prepares its key too: mint first
    calls = []
    original = HMACAlgorithm.prepare_key

    def counting(self: HMACAlgorithm, key: str | bytes) -> bytes:
        calls.append(key)
        return original(self, key)

    monkeypatch.setattr(HMACAlgorithm, "prepare_key", counting)
    for token in tokens:
        assert verifier.verify(token).sub == "alice"
    assert calls == []
    # the count is real: a key other than the prepared one is prepared as usual
    monkeypatch.setattr(verifier, "_key", SECRET)
    assert verifier.verify(tokens[0]).sub == "alice"
    assert calls == [SECRET]


@pytest.mark.parametrize(
    "token",
    [
        _token("another-secret-" + "w" * 40),  # signature by another key
        _token(exp=int(time.time()) - 1),  # expired
        _token(alg="HS384"),  # not the pinned algorithm
        _token()[:-2] + ("AA" if not _token().endswith("AA") else "BB"),  # tampered signature
        jwt.encode({"sub": "alice", "exp": int(time.time()) + 600}, None, algorithm="none"),
    ],
)
def test_every_token_is_still_verified(token: str) -> None:
    verifier = Verifier("HS256", SECRET)
    verifier.verify(_token())  # a good one first: nothing about it carries over
    with pytest.raises(AuthError):
        verifier.verify(token)


def test_an_asymmetric_key_as_hs256_secret_is_a_config_error() -> None:
    pem = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n"
    with pytest.raises(ConfigError, match="HS256"):
        Verifier("HS256", pem)
