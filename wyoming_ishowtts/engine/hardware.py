"""What this machine and this torch build can run: GPU kernels, and a compiler for torch.compile; which
GPU errors leave the GPU unusable for the rest of the process; and on a CPU, what its flags say runs fastest
(``--precision auto``) and how many threads to run.

Each check turns a failure that would otherwise come at the first request (or as a restart loop) into a
clear message at start-up, or an endless run of failed requests into a restart.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path


def arch_supported(capability: tuple[int, int], arch_list: Sequence[str]) -> bool:
    """Whether a torch build with `arch_list` (``torch.cuda.get_arch_list()``) carries kernels this GPU runs:
    a cubin of the same major version and a minor version at most the GPU's, or PTX (``compute_XY``) of an
    older or equal architecture, which the driver compiles for newer GPUs. ``sm_90a``-style cubins run only
    on exactly that GPU."""
    major, minor = capability
    for arch in arch_list:
        kind, _, rest = arch.partition("_")
        digits = "".join(ch for ch in rest if ch.isdigit())
        specific = kind == "sm" and rest.endswith(("a", "f"))
        if len(digits) < 2 or (specific and digits != f"{major}{minor}"):
            continue
        a_major, a_minor = int(digits[:-1]), int(digits[-1])
        if kind == "sm" and a_major == major and a_minor <= minor:
            return True
        if kind == "compute" and (a_major, a_minor) <= (major, minor):
            return True
    return False


def cuda_arch_problem(name: str, capability: tuple[int, int], arch_list: Sequence[str]) -> str | None:
    """A message when the torch build has no kernels for this GPU (it would fail at the first kernel)."""
    if not arch_list or arch_supported(capability, arch_list):
        return None
    return (
        f"this PyTorch build has no CUDA kernels for {name} (compute capability "
        f"{capability[0]}.{capability[1]}; the build carries {', '.join(arch_list)}). Install a torch "
        "build for this GPU (older GPUs need an older CUDA variant, see docs/install.md), or use --device cpu"
    )


def compiler_problem(device_type: str) -> str | None:
    """torch.compile builds code with the system's compiler: Triton a C compiler on a GPU (CC, gcc or
    clang), Inductor a C++ compiler on a CPU (CXX, g++ or clang++). A message when there is none."""
    if device_type == "cuda":
        found = os.environ.get("CC") or shutil.which("gcc") or shutil.which("clang")
        needed = "a C compiler (gcc or clang, or CC)"
    else:
        found = os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")
        needed = "a C++ compiler (g++ or clang++, or CXX)"
    if found:
        return None
    return f"--compile needs {needed} to build its kernels, and this machine has none"


STICKY_CUDA_ERRORS = (
    "an illegal memory access was encountered",
    "device-side assert triggered",
    "unspecified launch failure",
    "misaligned address",
    "an illegal instruction was encountered",
    "invalid program counter",
    "the launch timed out and was terminated",
    "uncorrectable ecc error encountered",
    "hardware stack error",
    "cuda driver error: unknown error",
)
"""CUDA runtime messages of the errors that corrupt the process's CUDA context: every later CUDA call fails
the same way, so only a new process can use the GPU again (CUDA's documentation of cudaErrorIllegalAddress,
cudaErrorAssert, cudaErrorLaunchFailure, ...). Out of memory is not among them: it passes."""


def sticky_cuda_error(err: BaseException) -> str | None:
    """The CUDA error's message when `err`, or an exception it was raised from, is one that leaves the GPU
    unusable for this process (STICKY_CUDA_ERRORS); None for every other error. Read from the message,
    which is all torch carries on every version (torch.AcceleratorError, 2.8+, is a RuntimeError too)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current)
        lowered = text.lower()
        if "cuda" in lowered and any(phrase in lowered for phrase in STICKY_CUDA_ERRORS):
            return text.strip().splitlines()[0][:300]
        current = current.__cause__ or current.__context__
    return None


# --------------------------------------------------------------------------- the CPU: flags and cores


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags as Linux lists them: x86's ``flags`` line (avx2, avx512_bf16, ...) or ARM's
    ``Features`` (asimd, asimddp, ...) of the first CPU; empty where the file cannot be read."""
    try:
        text = cpuinfo.read_text(encoding="ascii", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    return frozenset()


def cpu_class(flags: frozenset[str]) -> str:
    """The class of CPU that decides what runs fastest on it (`CPU_AUTO_PRECISION`), from its flags:
    native bf16 matrix arithmetic; x86 with VNNI (int8 dot products in one instruction); x86 with AVX2 and
    FMA only; ARM with dot products (``asimddp``); other ARM; anything else."""
    if {"avx512_bf16", "amx_bf16"} & flags:
        return "x86-bf16"
    if {"avx512_vnni", "avx_vnni", "amx_int8"} & flags:
        return "x86-vnni"
    if {"avx2", "fma"} <= flags:
        return "x86-avx2"
    if "asimddp" in flags:
        return "arm-dotprod"
    if "asimd" in flags:
        return "arm"
    return "other"


INT8_MIN_SPEEDUP = 1.4
"""int8 joins ``auto`` on a class of CPU only where a guided step measured at least this much faster ..."""
INT8_MIN_SNR_DB = 25.0
"""... and its audio at least this close to fp32's (the same seed, text and steps)."""


@dataclass(frozen=True)
class Int8Measurement:
    """One class of CPU's int8 measurement against fp32 (``python -m ishowtts_dev.bench.cpu precision``)."""

    step_speedup: float
    """fp32's time per guided step at 891 frames over int8's, median of interleaved rounds."""
    snr_db: float
    """The lower of the short and medium texts' waveform SNR against fp32."""
    where: str
    """The machine and the date: BENCHMARKS.md, "int8 on a CPU", has the table."""


def int8_pays(measured: Int8Measurement | None) -> bool:
    """The rule: int8 is `auto` only where it was measured both fast enough and close enough to fp32."""
    if measured is None:
        return False
    return measured.step_speedup >= INT8_MIN_SPEEDUP and measured.snr_db >= INT8_MIN_SNR_DB


INT8_MEASURED: dict[str, Int8Measurement] = {
    "x86-avx2": Int8Measurement(  # 1.32x in the precision run, 1.71x in the frames run: the lower counts
        step_speedup=1.32,
        snr_db=32.6,  # the step's output; whole texts on the base model not measured yet (tiny: 39 dB)
        where="2-core AMD EPYC (Zen 3), AVX2/FMA, no AVX-512 or VNNI, heavily loaded, 2026-12-07",
    ),
    "x86-bf16": Int8Measurement(  # passes the rule, but bf16 on the same machine measured 2.61x at 43 dB
        step_speedup=1.52,
        snr_db=31.0,  # the whole short and medium texts on the base model (the step's output: 37.0 dB)
        where="2-core Intel Xeon with AMX-BF16/AMX-INT8 and AVX512-VNNI/BF16, quiet, 2026-12-07",
    ),
}
"""Per `cpu_class`, what int8 measured there. A class not here was never measured: fp32 (or bf16) there."""


def cpu_auto_precision(flags: frozenset[str]) -> str:
    """What ``--precision auto`` runs on a CPU with these flags: bf16 where it is native (on a 2-core Xeon
    with AMX it measured 2.61x fp32's speed per step at 43 dB, int8 on the same machine 1.52x at 31 dB;
    AVX512-BF16 machines without AMX ran it in 0.55x fp32's time; emulated bf16 measured 7.6x slower), int8
    where `int8_pays` for the class's measurement, else fp32."""
    kind = cpu_class(flags)
    if kind == "x86-bf16":
        return "bf16"
    return "int8" if int8_pays(INT8_MEASURED.get(kind)) else "fp32"


def physical_cores(
    sysfs: Path = Path("/sys/devices/system/cpu"), allowed: Collection[int] | None = None
) -> int:
    """Physical cores among the logical CPUs this process may run on (its affinity): SMT siblings (two
    logical CPUs of one core) count once, read from each CPU's topology (package and core id). Where the
    topology cannot be read, the number of logical CPUs allowed."""
    cpus = sorted(os.sched_getaffinity(0) if allowed is None else allowed)
    cores: set[tuple[str, str]] = set()
    for cpu in cpus:
        topology = sysfs / f"cpu{cpu}" / "topology"
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
        except OSError:
            return max(1, len(cpus))
        cores.add((package, core))
    return max(1, len(cores))


def cpu_quota(cgroup: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The CPUs a container may use on average (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``), rounded
    up; None when unlimited or unknown. Docker's ``--cpus 2`` on a 16-core host is 2 here."""
    try:
        quota, _, period = (cgroup / "cpu.max").read_text().partition(" ")
        if quota.strip() == "max":
            return None
        return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 or period_us <= 0 else max(1, math.ceil(quota_us / period_us))


def default_threads(physical: int | None = None, quota: int | None = None) -> int:
    """The engine's intra-op threads when ``--threads`` is not given: one per physical core it may use,
    and no more than its container's CPU quota. A second logical CPU of a core shares the core's vector
    units, which a matrix multiply already keeps busy: a thread there only adds contention; a thread past
    the quota is paused by the scheduler mid-multiply, holding up the others."""
    cores = physical_cores() if physical is None else physical
    limit = cpu_quota() if quota is None else quota
    return max(1, min(cores, limit) if limit else cores)
