"""The SDK and `tickfan tail` load no server code: checked in a fresh interpreter's sys.modules."""

from __future__ import annotations

import subprocess
import sys

SERVER = ("litestar", "granian", "tickfan._core", "tickfan.core", "tickfan.web", "tickfan.hub", "tickfan.session")

CHECK = f"""
import sys
{{}}
loaded = sorted(m for m in sys.modules if any(m == s or m.startswith(s + ".") for s in {SERVER!r}))
print(",".join(loaded))
"""


def loaded_after(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", CHECK.format(code)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [m for m in out.stdout.strip().split(",") if m]


def test_importing_the_sdk_loads_no_server_code():
    assert loaded_after("import tickfan.client\nfrom tickfan.client import Client, Tick, MarketState") == []


def test_the_tail_command_path_loads_no_server_code():
    code = "from tickfan.cli import build_parser\nbuild_parser().parse_args(['tail', '--count', '1'])\nimport tickfan.client.tail"
    assert loaded_after(code) == []


def test_the_check_sees_server_modules():
    # the same probe does see the server stack when it is imported
    assert "litestar" in loaded_after("import tickfan.web.app")
