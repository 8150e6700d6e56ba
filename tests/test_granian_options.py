"""Granian's own knobs (--loop, --task-impl, --runtime-mode, --runtime-threads,
--runtime-blocking-threads): validated like every setting and handed to Granian as given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tickfan import cli
from tickfan.config import Config
from tickfan.errors import ConfigError


def test_round_trip_and_flag_beats_variable() -> None:
    env = {"TICKFAN_LOOP": "asyncio", "TICKFAN_RUNTIME_MODE": "st", "TICKFAN_RUNTIME_THREADS": "2"}
    config = Config.build({"loop": "uvloop", "task_impl": "rust"}, env)
    assert (config.loop, config.task_impl, config.runtime_mode, config.runtime_threads) == ("uvloop", "rust", "st", 2)
    assert Config.from_env(config.to_env()) == config


@pytest.mark.parametrize(
    "env,message",
    [
        ({"TICKFAN_LOOP": "rloop"}, "--loop must be one of"),
        ({"TICKFAN_TASK_IMPL": "trio"}, "--task-impl must be one of"),
        ({"TICKFAN_RUNTIME_MODE": "many"}, "--runtime-mode must be one of"),
        ({"TICKFAN_RUNTIME_THREADS": "0"}, "--runtime-threads must be >= 1"),
        ({"TICKFAN_RUNTIME_BLOCKING_THREADS": "-1"}, "--runtime-blocking-threads must be >= 0"),
    ],
)
def test_bad_values_are_config_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.build({}, env)


def test_cli_rejects_an_unknown_loop() -> None:
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["serve", "--loop", "nope"])
    assert exc.value.code == 2


class _FakeServer:
    seen: dict[str, Any] = {}

    def __init__(self, target: str, **kwargs: Any) -> None:
        _FakeServer.seen = {"target": target, **kwargs}

    def serve(self) -> None:
        pass


@pytest.mark.parametrize(
    "argv,expected",
    [
        ([], {"loop": "uvloop", "task_impl": "asyncio", "runtime_mode": "st", "runtime_threads": 1,
              "runtime_blocking_threads": None}),
        (["--loop", "asyncio", "--task-impl", "rust", "--runtime-mode", "mt", "--runtime-threads", "2",
          "--runtime-blocking-threads", "4"],
         {"loop": "asyncio", "task_impl": "rust", "runtime_mode": "mt", "runtime_threads": 2,
          "runtime_blocking_threads": 4}),
    ],
)
def test_serve_hands_the_options_to_granian(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                            argv: list[str], expected: dict[str, Any]) -> None:
    import granian.server

    monkeypatch.setattr(granian.server, "Server", _FakeServer)
    for name in list(__import__("os").environ):
        if name.startswith("TICKFAN_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(cli.os, "environ", dict(cli.os.environ))  # serve exports the config here
    assert cli.main(["serve", "--feed", "none", "--core", "python", "--data-dir", str(tmp_path), *argv]) == 0
    seen = {k: (str(v) if v is not None and k != "runtime_threads" and k != "runtime_blocking_threads" else v)
            for k, v in _FakeServer.seen.items() if k in expected}
    assert seen == expected


def test_uvloop_missing_is_a_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    with pytest.raises(ConfigError, match="--loop uvloop needs the uvloop package"):
        cli.prepare({"loop": "uvloop", "core": "python", "data_dir": tmp_path})
    assert cli.prepare({"loop": "asyncio", "core": "python", "data_dir": tmp_path}).loop == "asyncio"
