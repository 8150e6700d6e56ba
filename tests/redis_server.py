"""A private ``redis-server`` for the tests: own temp dir, free port, 127.0.0.1, AOF ``always``.

Started by the ``redis_server`` session fixture (tests/conftest.py). The failure tests drive it
through the helpers:

* :meth:`RedisServer.kill`: SIGKILL (nothing flushed beyond what ``appendfsync always`` wrote);
* :meth:`RedisServer.restart`: start again on the same port and dir, so the AOF replays;
* :meth:`RedisServer.freeze`: SIGSTOP for ``seconds``, then SIGCONT (a network stall without root);
* :meth:`RedisServer.drop_clients`: ``CLIENT KILL TYPE normal`` (every client connection cut);
* :meth:`RedisServer.flushall`: data lost while the server stays up;
* :meth:`RedisServer.restart_empty`: SIGKILL, delete the AOF, start again (data lost).

A missing binary fails with ``CI=true`` (CI must not pass without Redis) and skips elsewhere
with a message naming the package.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

__all__ = ["RedisServer", "redis_binary"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_binary() -> str:
    """The ``redis-server`` path, or fail saying what to install (never a skip: a missing part
    must not look like a passing run)."""
    path = shutil.which("redis-server")
    if path is None:
        message = "redis-server is not installed (Debian: apt-get install redis-server; `make test` installs it as root)"
        pytest.fail(message, pytrace=False)
    return path


class RedisServer:
    """One redis-server process; ``url`` is what ``--broker`` takes."""

    def __init__(self, directory: Path, binary: str | None = None) -> None:
        self.binary = binary or redis_binary()
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.dir / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def args(self) -> list[str]:
        return [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--dir", str(self.dir),
            "--enable-debug-command", "local",
            "--logfile", str(self.log_path),
        ]  # fmt: skip

    # --- process ----------------------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> RedisServer:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if self.command("PING") == "+PONG":
                    return self
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer PING within {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def kill(self) -> None:
        """SIGKILL: what ``appendfsync always`` wrote survives, nothing else runs."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def restart(self) -> RedisServer:
        """Start again on the same port and dir: the AOF replays."""
        self.kill()
        return self.start()

    def restart_empty(self) -> RedisServer:
        """Kill, delete the AOF (data lost), start again on the same port."""
        self.kill()
        for path in self.dir.iterdir():
            if path.name.startswith("appendonly") or path.suffix in (".aof", ".rdb"):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        return self.start()

    def freeze(self, seconds: float) -> None:
        """SIGSTOP for ``seconds``, then SIGCONT (blocks the caller meanwhile)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(seconds)  # the stall itself is the thing under test, not a synchronisation
        finally:
            self.proc.send_signal(signal.SIGCONT)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    # --- commands (a minimal RESP client, so the fixture needs no redis-py state) ------------

    def command(self, *args: str, timeout: float = 5.0) -> str:
        """Send one command; return the first reply line (``+PONG``, ``:3``, ``-ERR ...``)."""
        payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(payload.encode())
            data = b""
            while not data.endswith(b"\r\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data.split(b"\r\n", 1)[0].decode(errors="replace")

    def drop_clients(self) -> int:
        """Cut every normal client connection; return how many."""
        return int(self.command("CLIENT", "KILL", "TYPE", "normal").lstrip(":"))

    def flushall(self) -> None:
        assert self.command("FLUSHALL") == "+OK"
