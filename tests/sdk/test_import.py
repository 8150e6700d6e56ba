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


def test_every_import_of_the_sdk_is_a_runtime_dependency():
    # `pip install tickfan` must give a working SDK: what it imports is in [project].dependencies
    import ast
    import re
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    runtime = {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in  # type: ignore[union-attr]
               tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]}
    imported: set[str] = set()
    for path in (root / "python" / "tickfan" / "client").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m not in ("tickfan", "__future__")}
    assert third_party == {"websockets", "msgspec", "httpx"}
    assert third_party <= runtime
    # tail mints tokens with PyJWT (through tickfan.auth) only when it has none given
    assert "pyjwt[crypto]" in {r.split(">")[0].lower() for r in
                               tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]}
