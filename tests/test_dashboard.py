"""What ``tickfan serve`` prints about the dashboard, per JWT mode (``tickfan.web.dashboard``)."""

from __future__ import annotations

import re
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tickfan.auth import SECRET_FILE, Verifier
from tickfan.config import Config
from tickfan.web.dashboard import DASHBOARD_TOKEN_TTL_S, DASHBOARD_USER, STATIC_DIR, console_lines


def test_zero_config_prints_a_ready_url_with_a_short_lived_local_token(tmp_path: Path) -> None:
    config = Config.build({"data_dir": tmp_path, "port": 8123, "host": "0.0.0.0"}, {})
    text = console_lines(config)
    found = re.search(r"http://127\.0\.0\.1:8123/#token=(\S+)", text)
    assert found, text
    secret = (tmp_path / SECRET_FILE).read_text().strip()
    principal = Verifier("HS256", secret).verify(found.group(1))
    assert principal.sub == DASHBOARD_USER and not principal.scopes
    assert abs(principal.exp - (time.time() + DASHBOARD_TOKEN_TTL_S)) < 5


def test_the_printed_token_never_outlives_the_servers_maximum_lifetime(tmp_path: Path) -> None:
    config = Config.build({"data_dir": tmp_path, "jwt_max_lifetime_s": 600}, {})
    text = console_lines(config)
    found = re.search(r"#token=(\S+)", text)
    assert found and "token valid 600 s" in text
    secret = (tmp_path / SECRET_FILE).read_text().strip()
    principal = Verifier("HS256", secret, max_lifetime_s=600).verify(found.group(1))
    assert principal.exp - time.time() <= 600


def test_configured_secret_prints_how_to_mint_a_token_and_no_token(tmp_path: Path) -> None:
    config = Config.build({"data_dir": tmp_path}, {"TICKFAN_JWT_SECRET": "x" * 40})
    text = console_lines(config)
    assert "http://127.0.0.1:8000/#token=$(tickfan token --sub" in text
    assert "eyJ" not in text and not (tmp_path / SECRET_FILE).exists()


def test_public_key_mode_points_at_the_identity_provider(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = tmp_path / "key.pem"
    pem.write_bytes(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    config = Config.build({"data_dir": tmp_path, "jwt_algorithm": "ES256", "jwt_public_key": pem}, {})
    text = console_lines(config)
    assert "#token=<a ES256 token from your identity provider>" in text and "eyJ" not in text


def test_the_page_ships_inside_the_package() -> None:
    assert STATIC_DIR.is_absolute() and STATIC_DIR.parent.name == "web"
    assert {"index.html", "dashboard.js", "tickfan.js", "dashboard.css"} <= {p.name for p in STATIC_DIR.iterdir()}
