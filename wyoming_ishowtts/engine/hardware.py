"""What this machine and this torch build can run: GPU kernels, and a compiler for torch.compile; and which
GPU errors leave the GPU unusable for the rest of the process.

Each check turns a failure that would otherwise come at the first request (or as a restart loop) into a
clear message at start-up, or an endless run of failed requests into a restart.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence


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
