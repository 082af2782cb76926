"""Starting our server for the benchmark, and reading its memory from outside.

The server runs unmodified (``wyoming_ishowtts.__main__.main``) in a subprocess, with its normal command
line. The only addition is this module's entry point, which runs that same ``main`` in-process after
starting, on CUDA only, a small thread that reports ``torch.cuda.max_memory_allocated`` and
``max_memory_reserved`` to a file (peak GPU memory cannot be read from outside a process); nvidia-smi adds
what the process holds beyond that (the CUDA context, kernels). On CPU no thread is started, so the
measured process is exactly the server.

    python -m ishowtts_dev.bench.server STATS_FILE -- <server arguments>
"""

from __future__ import annotations

import json
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any, TypeVar

from .. import launcher
from .client import wait_until_listening
from .measure import gpu_used_mb, peak_rss_mb, reset_peak_rss


def _gpu_reporter(stats: Path, control: Path, device: str) -> None:
    """Write {"peak_gpu_mb", "peak_gpu_reserved_mb", "ack"} to `stats` four times a second; a new token in
    `control` resets the peaks. The GPU is named: this thread's current device is GPU 0, whichever one the
    server runs on."""
    import torch

    gpu = torch.device("cuda") if device == "auto" else torch.device(device)

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
            torch.cuda.reset_peak_memory_stats(gpu)
            acked = token
        data = {
            "peak_gpu_mb": torch.cuda.max_memory_allocated(gpu) / 2**20,
            "peak_gpu_reserved_mb": torch.cuda.max_memory_reserved(gpu) / 2**20,
            "ack": acked,
        }
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
                target=_gpu_reporter, args=(stats, stats.with_suffix(".control"), device), daemon=True
            )
            thread.start()
    from wyoming_ishowtts.__main__ import main

    main(argv)


_Bench = TypeVar("_Bench", bound="ServerProcess")


class ServerProcess(launcher.ServerProcess):
    """The server started through this module's entry point, so that it can report peak GPU memory."""

    def __init__(self, server_args: list[str], work_dir: Path, name: str, device: str) -> None:
        self.stats_path = work_dir / f"server-{name}.gpu.json"
        super().__init__(
            server_args,
            work_dir / f"server-{name}.log",
            module="ishowtts_dev.bench.server",
            module_args=[str(self.stats_path), "--"],
        )
        self.device = device
        self.listening_s: float | None = None
        self._token = 0

    def start(self: _Bench) -> _Bench:
        self.stats_path.unlink(missing_ok=True)
        return super().start()

    @property
    def display_command(self) -> str:
        """The server's command line as a user would type it (without the reporter wrapper)."""
        return shlex.join(["python", "-m", "wyoming_ishowtts", *self.args])

    async def wait_listening(self, deadline_s: float = 300.0) -> float:
        self.listening_s = await wait_until_listening(self.host, self.port, deadline_s, self.alive)
        return self.listening_s

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

    def gpu_memory(self) -> dict[str, float | None]:
        """Beside `peaks`' allocated figure (call this after it): the allocator's peak reserved memory and
        what nvidia-smi charges to the server now (context and kernels included). None on CPU."""
        assert self.proc is not None
        if self.device == "cpu":
            return {"peak_gpu_reserved_mb": None, "gpu_smi_mb": None}
        value = self._gpu_stats().get("peak_gpu_reserved_mb")
        return {
            "peak_gpu_reserved_mb": float(value) if value is not None else None,
            "gpu_smi_mb": gpu_used_mb(self.proc.pid),
        }


if __name__ == "__main__":
    serve_main()
