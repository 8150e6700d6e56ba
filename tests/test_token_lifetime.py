"""The maximum token lifetime (``--jwt-max-lifetime-s``) and ``tickfan token`` refusing to sign
for a server that does not accept HS256."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from tickfan.auth import ALGORITHM_FILE, SECRET_FILE, AuthError, Verifier, record_algorithm, recorded_algorithm
from tickfan.cli import main
from tickfan.config import Config

SECRET = "s" * 40
DAY = 86_400


def hs(claims: dict[str, object]) -> str:
    return jwt.encode({"sub": "alice", **claims}, SECRET, algorithm="HS256")


def test_default_max_lifetime_is_a_day() -> None:
    assert Config.build({}, env={}).jwt_max_lifetime_s == DAY
    assert Config.build({}, env={"TICKFAN_JWT_MAX_LIFETIME_S": "60"}).jwt_max_lifetime_s == 60


@pytest.mark.parametrize(
    "exp,iat",
    [(10**30, None), (DAY + 120, None), (3600, -DAY)],  # seconds from now (10**30: absolute)
    ids=["exp_1e30", "exp_past_a_day", "exp_minus_iat_over_a_day"],
)
def test_token_longer_than_the_maximum_lifetime_is_refused_as_invalid(exp: int, iat: int | None) -> None:
    now = int(time.time())  # here, not at collection: the suite may run long before this test
    claims: dict[str, object] = {"exp": exp if exp == 10**30 else now + exp}
    if iat is not None:
        claims["iat"] = now + iat
    verifier = Verifier("HS256", SECRET, max_lifetime_s=DAY)
    with pytest.raises(AuthError) as caught:
        verifier.verify(hs(claims))
    assert not caught.value.expired and "maximum lifetime" in str(caught.value)


def test_token_within_the_maximum_lifetime_is_accepted() -> None:
    now = int(time.time())
    verifier = Verifier("HS256", SECRET, max_lifetime_s=DAY)
    assert verifier.verify(hs({"exp": now + DAY - 60, "iat": now})).sub == "alice"
    assert verifier.verify(hs({"exp": now + 60})).sub == "alice"


def test_lifetime_bound_is_inclusive(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = Verifier("HS256", SECRET, max_lifetime_s=DAY)
    now = int(time.time())
    frozen = float(now)
    monkeypatch.setattr(time, "time", lambda: frozen)
    assert verifier.verify(hs({"exp": now + DAY})).sub == "alice"
    with pytest.raises(AuthError):
        verifier.verify(hs({"exp": now + DAY + 1}))
    assert verifier.verify(hs({"exp": now + 60, "iat": now + 60 - DAY})).sub == "alice"
    with pytest.raises(AuthError):
        verifier.verify(hs({"exp": now + 60, "iat": now + 59 - DAY}))


def test_without_a_maximum_a_long_token_is_accepted() -> None:
    assert Verifier("HS256", SECRET).verify(hs({"exp": 10**12})).sub == "alice"


def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("TICKFAN_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_token_command_refuses_a_data_dir_served_with_public_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], algorithm: str
) -> None:
    clean_env(monkeypatch)
    record_algorithm(tmp_path, algorithm)
    assert recorded_algorithm(tmp_path) == algorithm
    assert main(["token", "--sub", "alice", "--data-dir", str(tmp_path)]) == 2
    out = capsys.readouterr()
    assert out.out == "" and algorithm in out.err and "HS256 only" in out.err
    assert not (tmp_path / SECRET_FILE).exists()


def test_token_command_refuses_a_ttl_over_the_maximum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    clean_env(monkeypatch)
    assert main(["token", "--sub", "alice", "--ttl", str(DAY + 1), "--data-dir", str(tmp_path)]) == 2
    assert "maximum token lifetime" in capsys.readouterr().err
    assert main(["token", "--sub", "alice", "--ttl", str(DAY), "--data-dir", str(tmp_path)]) == 0
    token = capsys.readouterr().out.strip()
    secret = (tmp_path / SECRET_FILE).read_text().strip()
    assert Verifier("HS256", secret, max_lifetime_s=DAY).verify(token).sub == "alice"
    assert not (tmp_path / ALGORITHM_FILE).exists()  # only `serve` records it
