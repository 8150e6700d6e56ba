"""The servers under test: how each is started, probed, measured and stopped, by PID.

Every server is a fresh process on a fresh port with a fresh data dir for every run (nothing is
reused between runs), bound to 127.0.0.1. CPU and RSS are summed over the server's process tree
(Granian runs its workers as child processes), read with psutil.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable
ROOT = os.path.dirname(os.path.dirname(HERE))
RUST_PEER = os.path.join(HERE, "peers", "rust_broadcast")
RUST_PEER_TARGET = os.path.join(ROOT, "target", "bench-peers")
RUST_PEER_BIN = os.path.join(RUST_PEER_TARGET, "release", "rust-broadcast-peer")


def build_rust_peer() -> str:
    """cargo build --release the Rust reference peer (its own crate, its own target dir, so the
    project's workspace and `make test` never build it); returns the binary's path."""
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--manifest-path", os.path.join(RUST_PEER, "Cargo.toml"),
         "--target-dir", RUST_PEER_TARGET],
        check=True,
    )  # fmt: skip
    return RUST_PEER_BIN


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class ServerSpec:
    name: str
    label: str
    notes: str
    separate_ingest_port: bool = False
    env: dict[str, str] = field(default_factory=dict)

    def command(self, port: int, ingest_port: int, data_dir: str) -> list[str]:
        if self.name.startswith("tickfan-"):
            fast = self.name == "tickfan-fast"
            core = "rust" if fast else self.name.removeprefix("tickfan-")
            exe = os.path.join(os.path.dirname(PY), "tickfan")
            head = [exe] if os.path.exists(exe) else [PY, "-c", "import sys; from tickfan.cli import main; sys.exit(main())"]
            # Every load client connects from 127.0.0.1, thousands of handshakes in flight: lift
            # the per-address limit on unauthenticated sockets (meant for one real peer each).
            # The HTTP API (ingest, metrics) is on ``ingest_port``; the sockets on ``port``, which
            # for the fast lane is the extension's own listener (--fast-port).
            cmd = head + ["serve", "--host", "127.0.0.1", "--port", str(ingest_port), "--feed", "none",
                          "--core", core, "--data-dir", data_dir,
                          "--max-unauthenticated-per-peer", "1000000"]  # fmt: skip
            return cmd + ["--fast-port", str(port)] if fast else cmd
        if self.name == "naive":
            return [PY, os.path.join(HERE, "peers", "naive_litestar.py"), "--port", str(port)]
        if self.name == "picows":
            return [PY, os.path.join(HERE, "peers", "picows_broadcast.py"), "--port", str(port),
                    "--ingest-port", str(ingest_port)]  # fmt: skip
        if self.name in ("rust-ref", "rust-ref-fws"):
            ws = "fastwebsockets" if self.name == "rust-ref-fws" else "tungstenite"
            return [RUST_PEER_BIN, "--port", str(port), "--ingest-port", str(ingest_port), "--ws", ws]
        raise ValueError(self.name)


SERVERS: dict[str, ServerSpec] = {
    s.name: s
    for s in (
        ServerSpec("tickfan-rust", "tickfan (Rust core)", "full protocol: JWT auth, modes as asked"),
        ServerSpec("tickfan-python", "tickfan (Python twin)", "full protocol: JWT auth, modes as asked"),
        ServerSpec(
            "tickfan-fast",
            "tickfan fast lane (Rust core)",
            "full protocol on the extension's own WebSocket listener (--fast-port); HTTP API on Granian",
            separate_ingest_port=True,
        ),
        ServerSpec(
            "naive",
            "naive Litestar",
            "JWT auth; tick frames only (no batching): send_json per subscriber, awaited",
        ),
        ServerSpec(
            "picows",
            "picows broadcast",
            "JWT auth; tick frames only (no batching): one encode per tick, writes coalesced per ingest request, unbounded send buffers",
            separate_ingest_port=True,
        ),
        ServerSpec(
            "rust-ref",
            "Rust reference (tokio-tungstenite)",
            "peers/rust_broadcast: one tokio thread, 4 KiB read buffer, each tick encoded once and shared; "
            "every waiting frame fed then one flush per connection; JWT auth; tick frames only; unbounded queues",
            separate_ingest_port=True,
        ),
        ServerSpec(
            "rust-ref-fws",
            "Rust reference (fastwebsockets)",
            "the same server on fastwebsockets (--ws fastwebsockets): 8 KiB read buffer (fixed by the crate), "
            "frames written into a 4 KiB BufWriter, one flush per burst",
            separate_ingest_port=True,
        ),
    )
}


class RunningServer:
    """One started server process; stop() ends it and every child it had, by PID."""

    def __init__(self, spec: ServerSpec, secret: str, log_dir: str) -> None:
        self.spec = spec
        self.port = free_port()
        self.ingest_port = free_port() if spec.separate_ingest_port else self.port
        self.data_dir = tempfile.mkdtemp(prefix="tickfan-load-")
        env = {k: v for k, v in os.environ.items() if not k.startswith("TICKFAN_")}
        env.update(spec.env, TICKFAN_JWT_SECRET=secret, PYTHONUNBUFFERED="1")
        self.log_path = os.path.join(log_dir, f"server-{spec.name}-{self.port}.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            spec.command(self.port, self.ingest_port, self.data_dir),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.data_dir,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        self._known: dict[int, psutil.Process] = {}

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.spec.name} exited with {self.proc.returncode}: {self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.ingest_port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    conn.close()
                    # the WebSocket port too, where it is a separate listener
                    socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
                    return
            time.sleep(0.1)
        raise TimeoutError(f"{self.spec.name} not ready after {timeout_s} s: {self.log_tail()}")

    def log_tail(self, n: int = 2000) -> str:
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read()[-n:].decode(errors="replace")

    def _tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        for p in procs:
            self._known.setdefault(p.pid, p)
        return procs

    def cpu_s(self) -> float:
        total = 0.0
        for p in self._tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                c = p.cpu_times()
                total += c.user + c.system
        return total

    def thread_cpu_s(self) -> dict[str, float]:
        """CPU seconds (user + system) per thread name over the process tree, from
        /proc/PID/task/TID/{comm,stat}: which thread (Python, Granian's runtime, the fast lane's
        tokio thread) does the work. Linux only; {} elsewhere."""
        out: dict[str, float] = {}
        tick = os.sysconf("SC_CLK_TCK")
        for p in self._tree():
            try:
                tids = os.listdir(f"/proc/{p.pid}/task")
            except OSError:
                continue
            for tid in tids:
                try:
                    with open(f"/proc/{p.pid}/task/{tid}/comm") as f:
                        name = f.read().strip()
                    with open(f"/proc/{p.pid}/task/{tid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    cpu = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
                except (OSError, ValueError, IndexError):
                    continue
                out[name] = out.get(name, 0.0) + cpu
        return out

    def rss_bytes(self) -> int:
        total = 0
        for p in self._tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
        return total

    def scrape(self) -> dict[str, float] | None:
        """GET /metrics (Prometheus text) as {sample name with labels: value}; None if not served."""
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.ingest_port, timeout=10)
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            body = resp.read().decode(errors="replace")
            conn.close()
        except (OSError, http.client.HTTPException):
            return None
        if resp.status != 200:
            return None
        out: dict[str, float] = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                try:
                    out[name] = float(value)
                except ValueError:
                    pass
        return out

    def stop(self, timeout_s: float = 10.0) -> None:
        self._tree()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            pass
        for pid, p in self._known.items():  # only processes this server started
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                if p.is_running():
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self.log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)
