"""Starting our server for the benchmark, and reading its memory from outside.

The server runs unmodified (``wyoming_ishowtts.__main__.main``) in a subprocess, with its normal command
line. The only addition is this module's entry point, which runs that same ``main`` in-process after
starting, on CUDA only, a small thread that reports ``torch.cuda.max_memory_allocated`` to a file (peak GPU
memory cannot be read from outside a process). On CPU no thread is started, so the measured process is
exactly the server.

    python -m wyoming_ishowtts.bench.server STATS_FILE -- <server arguments>
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from .client import wait_until_listening
from .measure import peak_rss_mb, reset_peak_rss


def _gpu_reporter(stats: Path, control: Path) -> None:
    """Write {"peak_gpu_mb", "ack"} to `stats` twice a second; a new token in `control` resets the peak."""
    import torch

    acked = ""
    while True:
        time.sleep(0.25)
        if not torch.cuda.is_initialized():
            continue
        try:
            token = control.read_text().strip() if control.exists() else ""
        except OSError:
            token = ""
        if token != acked:
            torch.cuda.reset_peak_memory_stats()
            acked = token
        data = {"peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20, "ack": acked}
        tmp = stats.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(stats)


def serve_main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    stats = Path(argv.pop(0))
    if argv and argv[0] == "--":
        argv.pop(0)
    device = argv[argv.index("--device") + 1] if "--device" in argv else "auto"
    if device != "cpu":
        import torch

        if torch.cuda.is_available():
            thread = threading.Thread(
                target=_gpu_reporter, args=(stats, stats.with_suffix(".control")), daemon=True
            )
            thread.start()
    from wyoming_ishowtts.__main__ import main

    main(argv)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """One server on a free loopback port, its log in `log_path`; stopped with SIGTERM on exit."""

    host = "127.0.0.1"

    def __init__(self, server_args: list[str], work_dir: Path, name: str, device: str) -> None:
        self.port = free_port()
        self.work_dir = work_dir
        self.name = name
        self.device = device
        self.log_path = work_dir / f"server-{name}.log"
        self.stats_path = work_dir / f"server-{name}.gpu.json"
        self.args = ["--uri", f"tcp://{self.host}:{self.port}", *server_args]
        self.proc: subprocess.Popen[bytes] | None = None
        self.listening_s: float | None = None
        self._token = 0

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "wyoming_ishowtts.bench.server", str(self.stats_path), "--", *self.args]

    def __enter__(self) -> ServerProcess:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.stats_path.unlink(missing_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy()
            )
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def wait_listening(self, deadline_s: float = 300.0) -> float:
        self.listening_s = await wait_until_listening(self.host, self.port, deadline_s, self.alive)
        return self.listening_s

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # ---------------------------------------------------------------- memory
    def reset_peaks(self) -> bool:
        """Reset the server's peak RSS (and peak GPU memory, waiting up to 3 s for the reporter to ack)."""
        assert self.proc is not None
        ok = reset_peak_rss(self.proc.pid)
        if self.device != "cpu" and self.stats_path.exists():
            self._token += 1
            token = str(self._token)
            self.stats_path.with_suffix(".control").write_text(token)
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                if self._gpu_stats().get("ack") == token:
                    break
                time.sleep(0.05)
        return ok

    def _gpu_stats(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.stats_path.read_text())
            return data
        except (OSError, ValueError):
            return {}

    def peaks(self) -> tuple[float | None, float | None]:
        """(peak RSS MiB, peak GPU MiB) since the last reset; GPU is None on CPU. Waits one reporter
        period so the GPU figure covers the work just finished."""
        assert self.proc is not None
        gpu = None
        if self.device != "cpu":
            time.sleep(0.6)
            value = self._gpu_stats().get("peak_gpu_mb")
            gpu = float(value) if value is not None else None
        return peak_rss_mb(self.proc.pid), gpu


if __name__ == "__main__":
    serve_main()
