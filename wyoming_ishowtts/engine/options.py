"""What the engine is told: its settings (once, at start-up), each request's options, and the model's fixed
numbers. Torch-free, so the voice folders and the command lines can use them without loading the engine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SAMPLE_RATE = 24000
"""Of the model's audio: the mel front end's input, the vocoder's output (F5-TTS with Vocos, 24 kHz)."""
HOP_LENGTH = 256
"""Audio samples per mel frame."""
MAX_FRAMES = 65536
"""The longest sequence (reference + new) the engine samples, in mel frames (~700 s)."""
CROSS_FADE_SECONDS = 0.15
"""Upstream's linear cross-fade between consecutive chunks' audio."""
DEFAULT_MODEL = "F5TTS_v1_Base"
DEFAULT_LENGTH_BUCKET = 256
"""Frames per length bucket when CUDA graphs or torch.compile need fixed lengths and none was given."""
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16", "int8")
"""What ``--precision`` accepts (loading.pick_precision says what each runs as)."""
MODEL_LANGUAGES: tuple[str, ...] = ("en", "zh")
"""F5-TTS was trained on English and Mandarin and clones across the two."""


def ceil_to(n: int, multiple: int) -> int:
    """``n`` rounded up to a multiple of ``multiple``."""
    return -(-n // multiple) * multiple


@dataclass(frozen=True)
class EngineSettings:
    """Everything the engine needs to know, decided once at start-up."""

    model: str = DEFAULT_MODEL
    """Architecture or hub model name (F5TTS_v1_Base, F5TTS_Base) or hf://owner/repo/path/file."""
    model_dir: Path | None = None
    """Local folder with model.safetensors, vocab.txt, vocos/ (see checkpoints.py)."""
    device: str = "auto"
    """auto | cpu | cuda | cuda:N"""
    precision: str = "auto"
    """One of PRECISIONS: auto | fp32 | fp16 | bf16 | int8 (CPU only: int8 weights in the DiT's per-step
    matrix multiplies, float32 activations; engine/quantize.py)."""
    nfe: int | None = None
    """Fixed sampler steps for every chunk; None selects the adaptive policy (nfe.py)."""
    cache_dir: Path | None = None
    """Where hub downloads go (None: the Hugging Face default cache)."""
    warmup: bool = True
    threads: int | None = None
    """torch intra-op threads (None: one per physical core the process may use, within its container's
    CPU quota: hardware.default_threads)."""
    batch_chunks: int = 1
    """Later chunks of one request sampled together, up to this many per forward pass. Same audio as one
    at a time (padding is masked); it pays where one chunk leaves the hardware idle (a GPU), not on a CPU,
    where it was measured no faster, so the default is 1."""
    compile: bool = False
    """torch.compile the sampler step (Inductor) for every batch size and length bucket the voices can
    reach, at warm-up; a layout not compiled then runs uncompiled. Needs a C (GPU) or C++ (CPU) compiler.
    Off by default: on this project's 2-core CPU it cost ~90 s at start-up for a gain within noise."""
    cuda_graphs: bool = False
    """Replay each chunk's whole sampler loop as a CUDA graph recorded at warm-up (chunk_graphs.py): one
    launch per chunk instead of some 250 per step, and no compiler needed. GPU only. Off by default until a GPU run of
    script/gpu-check shows it faster."""
    length_bucket: int = 0
    """With `cuda_graphs` or `compile`: pad every batch to a multiple of this many frames (masked: the same
    audio), so that they see a few fixed layouts; 0: DEFAULT_LENGTH_BUCKET. Without either it is ignored:
    padding would cost time for nothing."""


@dataclass(frozen=True)
class SynthesisOptions:
    """Per-request knobs. Defaults are upstream's, except the short first chunk (latency)."""

    nfe: int | None = None
    """None: the engine's setting (fixed, or adaptive)."""
    speed: float = 1.0
    cfg_strength: float = 2.0
    sway_sampling_coef: float = -1.0
    cross_fade_seconds: float = CROSS_FADE_SECONDS
    seed: int | None = None
    """None: a fresh random seed per request."""
    first_chunk_max_chars: int | None = 60
    """Cap (UTF-8 bytes) on the first text chunk, so the first audio leaves early; None: upstream's chunking."""
    max_chars: int | None = None
    """None: upstream's formula from the reference's speaking rate."""
