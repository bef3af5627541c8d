"""A throw-away ``redis-server`` on 127.0.0.1 for the shared rate budget's tests and benchmark.

Debian's binary (``make redis`` installs it when missing), a free port, a temporary directory, no persistence,
a hard time bound; stopped on exit, also on failure. ``kill()`` ends it abruptly, as a crash would.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

BINARY = "redis-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """``with RedisServer() as r: r.url`` -> ``redis://127.0.0.1:<port>/0``."""

    def __init__(self, *, max_seconds: float = 600.0) -> None:
        binary = shutil.which(BINARY) or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `make redis` (Debian's redis-server)")
        self.binary = binary
        self.max_seconds = max_seconds
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self._dir = tempfile.TemporaryDirectory(prefix="redis-")
        self.port = free_port()
        # `timeout` bounds its life even if this process dies without stopping it.
        self.proc = subprocess.Popen(
            ["timeout", str(int(self.max_seconds)), self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", self._dir.name, "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode} at start")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not answer PING within 10 s")

    def kill(self) -> None:
        """End the server abruptly (SIGKILL), as a crash or a lost network would look to its clients."""
        if self.proc is not None and self.proc.poll() is None:
            # SIGKILL to the server itself (the child of `timeout`, which then exits), not to `timeout`
            subprocess.run(["pkill", "-KILL", "-P", str(self.proc.pid)], check=False)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
