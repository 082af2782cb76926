"""From settings and checkpoint files to a model on a device: device and precision choice (refusing a GPU
the torch build has no kernels for), the DiT and Vocos strictly loaded under upstream's names, and an
identity of the files loaded."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ModelLoadError
from .checkpoints import ModelFiles, dit_config_for, load_strict, read_dit_state, read_vocos_state
from .dit import DiT, NoInit
from .hardware import cpu_auto_precision, cpu_flags, cuda_arch_problem, default_threads
from .options import PRECISIONS, EngineSettings
from .quantize import int8_problem, needs_reduced_range, quantize_dit
from .tokenizer import Vocab
from .vocoder import Vocos, VocosConfig

_LOGGER = logging.getLogger(__name__)


def pick_device(name: str, cuda: Any = torch.cuda) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` as a torch device; ModelLoadError when it does not exist.
    `cuda` is ``torch.cuda`` (a stand-in in tests, to play a machine with GPUs)."""
    if name == "auto":
        return torch.device("cuda" if cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not cuda.is_available():
            raise ModelLoadError(f"--device {name} was asked for, but this PyTorch build sees no CUDA GPU")
        count = cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ModelLoadError(
                f"--device {name}: this process sees {count} GPU(s), cuda:0 to cuda:{count - 1} "
                "(CUDA_VISIBLE_DEVICES, or a container's GPU reservation, narrows and renumbers them)"
            )
    return device


def bind_thread(name: str, cuda: Any = torch.cuda) -> None:
    """Make the engine's GPU the current CUDA device of the calling thread, the one that will run it.

    The current device is kept per thread, and everything that names no device uses it: the CUDA context
    made on first use, ``torch.cuda.empty_cache()`` after running out of memory, CUDA graphs, memory
    statistics.  Without this, a server on ``cuda:1`` would also open a context on GPU 0 (hundreds of MB
    there) and free the wrong GPU's cache.  Nothing to do for the CPU or for ``cuda`` (the current GPU)."""
    device = pick_device(name, cuda)
    if device.type == "cuda" and device.index is not None:
        cuda.set_device(device)


DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "int8": torch.float32}
"""The dtype the model's activations run in, per precision: int8 has int8 weights in its per-step matrix
multiplies and float32 everywhere else (quantize.py)."""


def pick_precision(precision: str, device: torch.device, flags: frozenset[str] | None = None) -> str:
    """`precision` (PRECISIONS) as one that runs: ``auto`` resolved for the device, ``int8`` refused on
    a GPU. `flags`: the CPU's (hardware.cpu_flags, read when None; the tests inject them)."""
    if precision not in PRECISIONS:
        raise ModelLoadError(f"unknown precision {precision!r} ({', '.join(PRECISIONS)})")
    if precision == "int8":
        problem = int8_problem(device)
        if problem:
            raise ModelLoadError(problem)
    if precision != "auto":
        return precision
    if device.type == "cuda":
        # fp16 gives silence or NaN on GPUs before Volta (GTX 16xx and older): fp32 there.
        major, _ = torch.cuda.get_device_capability(device)
        return "fp16" if major >= 7 else "fp32"
    chosen = cpu_auto_precision(cpu_flags() if flags is None else flags)
    if chosen == "int8" and int8_problem(device):
        return "fp32"  # a torch build without int8 kernels: fp32, as on an unmeasured CPU
    return chosen


def pick_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The activations' dtype `precision` runs in on `device` (`pick_precision`, then `DTYPES`)."""
    return DTYPES[pick_precision(precision, device)]


def runs_mixed(dtype: torch.dtype) -> bool:
    """Whether the model runs `dtype` mixed (`DiT.to_precision`): only the matrix multiplies in half
    precision, the residual stream, norms and time modulation in float32.

    bf16 keeps 8 mantissa bits: on the base random model mixed bf16 measured 43 dB SNR against fp32, where
    the whole-model bf16 of the engine before it measured 15.7 dB (BENCHMARKS.md, "bf16 after
    numerics"). fp16 keeps 11 and runs whole, as
    upstream runs it: it is the GPU default, and whether mixed pays there is for a GPU to measure.
    """
    return dtype == torch.bfloat16


def tf32_enabled() -> bool:
    """Whether float32 matrix multiplies on CUDA may use TF32 now (either of torch's two APIs)."""
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):  # torch >= 2.9; reading the legacy flag then can raise
        return bool(matmul.fp32_precision == "tf32")
    return bool(matmul.allow_tf32)


@contextlib.contextmanager
def tf32_matmuls() -> Iterator[None]:
    """TF32 for CUDA float32 matrix multiplies inside the block, then the setting as it was.

    For the fp32 fallback's model only (`Engine.run_batch`): on Hopper a TF32 matrix multiply is
    several times faster than a true float32 one, and the fallback exists to keep serving after half
    precision overflowed, not to be bit-exact. Everything else keeps the process's setting (torch's
    default: off), so ``--precision fp32`` stays upstream's numbers and gpu-check's strict comparison
    strict. torch >= 2.9 has the per-backend ``fp32_precision`` (mixing it with the legacy ``allow_tf32``
    is an error there); older torch only the legacy flag. On a CPU neither changes anything."""
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):
        before = matmul.fp32_precision
        matmul.fp32_precision = "tf32"
        try:
            yield
        finally:
            matmul.fp32_precision = before
    else:
        legacy = matmul.allow_tf32
        matmul.allow_tf32 = True
        try:
            yield
        finally:
            matmul.allow_tf32 = legacy


def load_dit(
    files: ModelFiles, vocab: Vocab, device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> DiT:
    """The DiT loaded strictly under upstream's names, cast (on the CPU, so a GPU never holds the float32
    copy), moved, frozen, and its q/k/v projections fused.

    It is built on the meta device and the checkpoint's tensors become its weights (``assign=True``):
    building it on the CPU would first fill every weight with random numbers, only to overwrite them
    (BENCHMARKS.md, "Model load": the start-up time that saves). A safetensors file is memory-mapped, so
    whatever is still the file's memory after the cast and the move (float32 weights on the CPU) is copied
    out of it (`_own_memory`): a model living in the file's mapping would change, or crash the server,
    if the file were rewritten in place."""
    with torch.device("meta"), NoInit():
        model = DiT(dit_config_for(files, vocab.size))
    state = {  # float32, as the weights were before to_precision (no copy where they are already)
        key: value.float() if value.is_floating_point() else value
        for key, value in read_dit_state(files.checkpoint).items()
    }
    borrowed = {value.untyped_storage().data_ptr() for value in state.values()}
    load_strict(model, state, files.checkpoint, assign=True)
    del state
    left = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:  # a tensor neither the checkpoint nor __init__ provides: a bug here, not in the file
        raise ModelLoadError(f"{files.checkpoint}: nothing loaded or computed for {', '.join(left[:8])}")
    model = model.to_precision(dtype, mixed=runs_mixed(dtype)).to(device=device)
    _own_memory(model, borrowed)
    return model.eval().requires_grad_(False).fuse_projections()


def _own_memory(model: torch.nn.Module, borrowed: set[int]) -> None:
    """Copy every parameter and buffer whose storage is one of `borrowed` (the file's) into memory of its own."""
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.untyped_storage().data_ptr() in borrowed:
                tensor.data = tensor.data.clone()


def load_vocoder(files: ModelFiles, device: torch.device) -> Vocos:
    try:
        vocos_cfg = VocosConfig.from_yaml(files.vocos_config)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"Vocoder config {files.vocos_config}: {err}") from err
    vocoder = Vocos(vocos_cfg)
    load_strict(vocoder, read_vocos_state(files.vocos_weights), files.vocos_weights)
    return vocoder.to(device).eval().requires_grad_(False)  # float32, as upstream runs it


def raise_recompile_limit(at_least: int) -> None:
    """Let dynamo keep `at_least` graphs of one function. The setting is ``recompile_limit`` from torch 2.7
    on and ``cache_size_limit`` before (the Jetson base's torch 2.5 has only that name)."""
    from torch._dynamo import config as dynamo_config

    name = "recompile_limit" if hasattr(dynamo_config, "recompile_limit") else "cache_size_limit"
    setattr(dynamo_config, name, max(getattr(dynamo_config, name), at_least))


def identity_of(files: ModelFiles) -> str:
    """Changes when the checkpoint or vocabulary file changes (name, size, modification time)."""
    digest = hashlib.sha256()
    for path in (files.checkpoint, files.vocab):
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class LoadedModel:
    """Everything `Engine` runs on, as loaded for its settings."""

    model: DiT
    vocoder: Vocos
    vocab: Vocab
    device: torch.device
    dtype: torch.dtype
    identity: str
    files: ModelFiles
    """Where it came from: a fallback to fp32 reads the weights again from here."""


def set_threads(threads: int | None) -> int:
    """Give torch `threads` intra-op threads (None: `default_threads`, one per physical core) and one
    inter-op thread; returns the intra-op count.

    The engine has no inter-op parallelism (it runs no ``torch.jit.fork``; its one worker thread calls
    the model), so torch's inter-op pool, one thread per logical CPU by default, would only sit idle: one
    is set on purpose. torch accepts that setting once per process, before any parallel work: a second
    engine in the same process keeps what the first set."""
    count = threads or default_threads()
    torch.set_num_threads(count)
    if torch.get_num_interop_threads() != 1:
        with contextlib.suppress(RuntimeError):  # too late in this process: already set, or work began
            torch.set_num_interop_threads(1)
    return count


def load_model(files: ModelFiles, settings: EngineSettings) -> LoadedModel:
    threads = set_threads(settings.threads)
    device = pick_device(settings.device)
    if device.type == "cuda":
        problem = cuda_arch_problem(
            torch.cuda.get_device_name(device),
            torch.cuda.get_device_capability(device),
            torch.cuda.get_arch_list(),
        )
        if problem:  # else the first kernel fails, inside the warm-up or a request
            raise ModelLoadError(problem)
    precision = pick_precision(settings.precision, device)
    dtype = DTYPES[precision]
    vocab = Vocab.from_file(files.vocab)
    model = load_dit(files, vocab, device, dtype)
    if precision == "int8":
        quantize_dit(model, reduce_range=needs_reduced_range(cpu_flags()))
    vocoder = load_vocoder(files, device)
    _LOGGER.info(
        "Model %s loaded on %s (%s%s)",
        files.checkpoint,
        device,
        precision,
        f", {threads} threads" if device.type == "cpu" else "",
    )
    return LoadedModel(model, vocoder, vocab, device, dtype, identity_of(files), files)
