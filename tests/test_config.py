"""Config: defaults, precedence (flag > variable > default), validation, round trip to workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tickfan.config import DEFAULT_UNIVERSE, SETTINGS, Config
from tickfan.errors import ConfigError


def test_defaults_match_protocol_section_8() -> None:
    config = Config.build({}, {})
    assert (config.host, config.port, config.workers, config.feed, config.core, config.broker) == (
        "127.0.0.1", 8000, 1, "sim", "auto", "memory",
    )
    assert config.data_dir == Path(".tickfan")
    assert config.jwt_algorithm == "HS256" and config.auth_timeout_ms == 5000
    assert config.max_message_bytes == 64 * 1024 and config.allowed_origins == ()


def test_default_universe() -> None:
    names = [s.symbol for s in DEFAULT_UNIVERSE]
    assert len(names) >= 10 and {"BTC/USD", "ETH/USD"} <= set(names)
    assert max(s.rate_per_s for s in DEFAULT_UNIVERSE) >= 200


def test_flag_beats_variable_beats_default() -> None:
    env = {"TICKFAN_PORT": "9001", "TICKFAN_FEED": "none", "TICKFAN_ALLOWED_ORIGINS": "https://a, https://b"}
    config = Config.build({"port": 9002, "feed": None}, env)
    assert config.port == 9002
    assert config.feed == "none"
    assert config.allowed_origins == ("https://a", "https://b")


def test_every_setting_has_flag_and_variable() -> None:
    for setting in SETTINGS:
        assert setting.flag == "--" + setting.name.replace("_", "-")
        assert setting.env == "TICKFAN_" + setting.name.upper()
        assert hasattr(Config, setting.name)


def test_round_trip_through_the_environment(tmp_path: Path) -> None:
    config = Config.build(
        {"port": 8123, "feed": "none", "data_dir": tmp_path, "allowed_origins": ("https://x",),
         "candle_retention": (("1s", 10),), "jwt_audience": "tickfan", "jwt_secret": "k" * 40},
        {},
    )
    assert Config.from_env(config.to_env()) == config


def test_frozen() -> None:
    with pytest.raises(AttributeError):
        Config.build({}, {}).port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "flags,env,message",
    [
        ({"port": 0}, {}, "--port"),
        ({"port": 65536}, {}, "--port"),
        ({}, {"TICKFAN_PORT": "eighty"}, "TICKFAN_PORT"),
        ({"workers": 2}, {}, "in-memory broker"),
        ({"workers": 2}, {}, "--broker redis://HOST:PORT/0"),
        ({"workers": 0}, {}, "--workers"),
        ({"core": "java"}, {}, "unknown core"),
        ({"feed": "nasdaq"}, {}, "--feed"),
        ({"broker": "kafka://x"}, {}, "--broker"),
        ({"jwt_algorithm": "HS512"}, {}, "--jwt-algorithm"),
        ({"jwt_algorithm": "RS256"}, {}, "--jwt-public-key"),
        ({"jwt_algorithm": "ES256", "jwt_public_key": Path("/nonexistent.pem")}, {}, "cannot read"),
        ({"jwt_secret": "short"}, {}, "32 characters"),
        ({"auth_timeout_ms": 0}, {}, "--auth-timeout-ms"),
        ({"rate_limit_per_s": 0.0}, {}, "--rate-limit-per-s"),
        ({"candle_retention": (("2m", 5),)}, {}, "unknown interval"),
        ({}, {"TICKFAN_CANDLE_RETENTION": "1s:5"}, "TICKFAN_CANDLE_RETENTION"),
        ({"symbols": Path("/nonexistent.json")}, {}, "cannot read"),
    ],
)
def test_validation_errors(flags: dict[str, object], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        Config.build(flags, env)
    assert message in str(info.value)


def test_symbols_file(tmp_path: Path) -> None:
    path = tmp_path / "symbols.json"
    path.write_text(json.dumps([{"symbol": "AAA/USD", "price_decimals": 2, "size_decimals": 3, "price": 5, "rate_per_s": 0}]))
    universe = Config.build({"symbols": path}, {}).universe()
    assert [(s.symbol, s.price_decimals, s.size_decimals, s.rate_per_s) for s in universe] == [("AAA/USD", 2, 3, 0.0)]


@pytest.mark.parametrize(
    "content,message",
    [
        ("{", "not valid JSON"),
        ("[]", "non-empty JSON list"),
        ('[{"symbol": "A"}]', "price_decimals"),
        ('[{"symbol": "A", "price_decimals": 13, "size_decimals": 1}]', "price_decimals"),
        ('[{"price_decimals": 1, "size_decimals": 1}]', "symbol"),
    ],
)
def test_bad_symbols_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "symbols.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        Config.build({"symbols": path}, {})
    assert message in str(info.value)


def test_secret_is_never_in_repr_or_describe() -> None:
    config = Config.build({"jwt_secret": "z" * 40}, {})
    assert "z" * 40 not in repr(config)
    assert "z" * 40 not in str(config.describe())
