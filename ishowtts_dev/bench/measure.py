"""Process memory, timing statistics and a description of the machine, for the benchmark report.

Peak RSS comes from the kernel's high-water mark (VmHWM in /proc/<pid>/status). Writing "5" to
/proc/<pid>/clear_refs resets that mark to the current RSS, so each text's peak can be taken on its own
inside a long-lived process; where the reset is not allowed the peak is the process's lifetime peak, and
the report says so.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


def _status_kib(pid: int | str, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_mb(pid: int | str = "self") -> float | None:
    """Peak resident memory (MiB) since start or since the last `reset_peak_rss`; None if unreadable."""
    kib = _status_kib(pid, "VmHWM")
    return None if kib is None else kib / 1024


def reset_peak_rss(pid: int | str = "self") -> bool:
    """Reset the peak-RSS mark of a process we own; False when the kernel does not allow it."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


MIN_OTHER_CPU_SECONDS = 1.0
"""Runs shorter than this get no other-CPU share (clock ticks are 10 ms)."""


def _machine_busy_ticks() -> int | None:
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    except (OSError, ValueError, IndexError):
        return None
    return user + nice + system + irq + softirq + steal


def _process_ticks(pid: int | str) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, ValueError, IndexError):
        return 0


class OtherCpu:
    """Share of the machine's CPU time used by processes other than `pids` between `start()` and `stop()`.

    Timings on a shared machine are only as good as its quietness; every timed run records this so that a
    noisy figure can be recognized (and the report warns) instead of being taken at face value.
    """

    def __init__(self, pids: list[int | str]) -> None:
        self.pids = pids
        self._busy: int | None = None
        self._own = 0
        self._since = 0.0

    def start(self) -> None:
        self._busy = _machine_busy_ticks()
        self._own = sum(_process_ticks(p) for p in self.pids)
        self._since = time.monotonic()

    def stop(self) -> float | None:
        busy = _machine_busy_ticks()
        if busy is None or self._busy is None:
            return None
        own = sum(_process_ticks(p) for p in self.pids) - self._own
        elapsed = time.monotonic() - self._since
        if elapsed < MIN_OTHER_CPU_SECONDS:
            return None  # a few clock ticks: the share would be mostly rounding
        capacity = elapsed * os.sysconf("SC_CLK_TCK") * (os.cpu_count() or 1)
        return max(0.0, (busy - self._busy - own) / capacity)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: with a handful of samples it reports a real one)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[rank - 1])


def _package(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    kib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                kib = int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None if kib is None else round(kib / 1024**2, 1)


def nvidia_smi(*query: str) -> list[list[str]] | None:
    """Rows of `nvidia-smi --query-...=...` (csv, no units), split into cells; None where there is no
    nvidia-smi or it fails."""
    try:
        out = subprocess.run(
            ["nvidia-smi", *query, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return [[cell.strip() for cell in line.split(",")] for line in out.stdout.splitlines() if line.strip()]


def _gpus() -> list[str]:
    rows = nvidia_smi("--query-gpu=name,memory.total,driver_version") or []
    return [
        f"{name}, {total} MiB, {driver}" for name, total, driver in (row for row in rows if len(row) == 3)
    ]


def gpu_used_mb(pid: int) -> float | None:
    """GPU memory nvidia-smi charges to process `pid`: what the allocator reserved plus the CUDA context and
    kernels, which the process's own counters leave out. None without nvidia-smi or that process."""
    for fields in nvidia_smi("--query-compute-apps=pid,used_memory") or []:
        if len(fields) == 2 and fields[0] == str(pid):
            try:
                return float(fields[1])
            except ValueError:
                return None
    return None


def machine_info() -> dict[str, Any]:
    """What a reader needs to compare figures between machines."""
    import torch

    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "memory_gib": _memory_gib(),
        "gpus": _gpus(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "f5_tts": _package("f5-tts"),
        "wyoming_ishowtts": _package("wyoming-ishowtts"),
        "wyoming": _package("wyoming"),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=True) + "\n", encoding="utf-8")
    tmp.replace(path)
