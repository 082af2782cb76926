"""The real server in a child process on a free loopback port: what the benchmark, the soak run and the
tests start.

It runs the unmodified command line (``python -m wyoming_ishowtts ...``, or a wrapper module that ends in
the same ``main``), sends its output to a log file, and stops it the way a service manager does: SIGTERM,
and a kill only if it has not exited in time.  Not used by the server itself.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from . import child_env

_Server = TypeVar("_Server", bound="ServerProcess")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """One server process; ``args`` are its command-line options, ``--uri`` first."""

    host = "127.0.0.1"

    def __init__(
        self,
        server_args: Sequence[str],
        log_path: Path,
        *,
        module: str = "wyoming_ishowtts",
        module_args: Sequence[str] = (),
        cwd: Path | None = None,
        stop_timeout: float = 60.0,
    ) -> None:
        self.port = free_port()
        self.uri = f"tcp://{self.host}:{self.port}"
        self.args = ["--uri", self.uri, *server_args]
        self.log_path = log_path
        self._module = module
        self._module_args = list(module_args)
        self._cwd = cwd
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", self._module, *self._module_args, *self.args]

    def start(self: _Server) -> _Server:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = child_env(PYTHONUNBUFFERED="1")
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.command, cwd=self._cwd, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        return self

    def __enter__(self: _Server) -> _Server:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_for_log(self, text: str, timeout: float) -> None:
        """Wait until the log contains `text` (e.g. "Model ready"); RuntimeError if the server exits first
        or the time runs out (then it is stopped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                code = None if self.proc is None else self.proc.returncode
                raise RuntimeError(f"server exited with {code}:\n{self.log()}")
            if text in self.log():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not log {text!r} within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM, then a kill after `timeout` seconds (default: `stop_timeout`); the exit status (None if
        never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
