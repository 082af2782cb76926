"""Public API: load a model once, prepare a voice once, then synthesize text as a stream of audio pieces.

    engine = Engine.load(EngineSettings(model_dir=Path("models/f5")))
    voice = engine.prepare_voice(*load_audio(Path("voices/alice/reference.wav")), text="Transcript.")
    for piece in engine.synthesize(voice, "Hello there. How are you today?"):
        play(piece)  # float32 mono at 24 kHz, one piece per text chunk

The server, the command-line tool and the benchmark are all thin clients of this module.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoints import (
    ModelFiles,
    dit_config_for,
    load_strict,
    read_dit_state,
    read_vocos_state,
    resolve_model_files,
)
from .chunking import (
    CrossFader,
    chunk_text,
    estimate_total_frames,
    max_chars_for,
    model_ref_text,
    shorten_first_chunk,
)
from .dit import DiT
from .errors import EngineFailure, ModelLoadError, ReferenceAudioError, SynthesisCancelled, TextError
from .mel import MelConfig, MelSpectrogram
from .nfe import NfePolicy
from .reference import normalize_ref_text, resample, to_mono, trim_reference
from .sampler import draw_noise, sample
from .tokenizer import Vocab, text_to_tokens
from .vocoder import Vocos, VocosConfig

_LOGGER = logging.getLogger(__name__)

SAMPLE_RATE = 24000
HOP_LENGTH = 256
VOICE_FORMAT = 2
TARGET_RMS = 0.1
"""Quiet references are brought up to this loudness, and the output scaled back down (upstream's rule)."""

CancelCheck = Callable[[], bool]

__all__ = [
    "SAMPLE_RATE",
    "Engine",
    "EngineSettings",
    "SynthesisCancelled",
    "SynthesisOptions",
    "Voice",
]


@dataclass(frozen=True)
class EngineSettings:
    """Everything the engine needs to know, decided once at start-up."""

    model: str = "F5TTS_v1_Base"
    """Architecture or hub model name (F5TTS_v1_Base, F5TTS_Base) or hf://owner/repo/path/file."""
    model_dir: Path | None = None
    """Local folder with model.safetensors, vocab.txt, vocos/ (see checkpoints.py)."""
    device: str = "auto"
    """auto | cpu | cuda | cuda:N"""
    precision: str = "auto"
    """auto | fp32 | fp16 | bf16"""
    nfe: int | None = None
    """Fixed sampler steps for every chunk; None selects the adaptive policy (nfe.py)."""
    cache_dir: Path | None = None
    """Where hub downloads go (None: the Hugging Face default cache)."""
    warmup: bool = True
    threads: int | None = None
    """torch intra-op threads on CPU (None: torch's default)."""
    batch_chunks: int = 1
    """Later chunks of one request sampled together, up to this many per forward pass. Same audio as one
    at a time (padding is masked); it pays where one chunk leaves the hardware idle (a GPU), not on a CPU,
    where it was measured no faster, so the default is 1."""
    compile: bool = False
    """torch.compile the DiT (dynamic shapes, compiled during warm-up). Off by default: on this project's
    2-core CPU it cost ~90 s at start-up for a gain within noise; measure it on your GPU with script/bench."""


@dataclass(frozen=True)
class SynthesisOptions:
    """Per-request knobs. Defaults are upstream's, except the short first chunk (latency)."""

    nfe: int | None = None
    """None: the engine's setting (fixed, or adaptive)."""
    speed: float = 1.0
    cfg_strength: float = 2.0
    sway_sampling_coef: float = -1.0
    cross_fade_seconds: float = 0.15
    seed: int | None = None
    """None: a fresh random seed per request."""
    first_chunk_max_chars: int | None = 60
    """Cap (UTF-8 bytes) on the first text chunk, so the first audio leaves early; None: upstream's chunking."""
    max_chars: int | None = None
    """None: upstream's formula from the reference's speaking rate."""


@dataclass
class Voice:
    """A reference clip prepared once: trimmed, loudness-normalized, resampled, its mel on the device."""

    name: str
    ref_text: str
    """Transcript, normalized to end in '. ' or '。' as upstream does."""
    audio: torch.Tensor
    """(1, samples) at 24 kHz, on the CPU, after loudness normalization."""
    rms: float
    """Loudness of the trimmed clip before normalization; output is scaled back to it when it was quiet."""
    source_seconds: float
    """Length of the trimmed clip at its own sample rate (sizes the text chunks, as upstream does)."""
    mel: torch.Tensor = field(repr=False)
    """(1, frames, 100) on the engine's device in the model's dtype; frames = samples // 256 + 1."""

    @property
    def ref_frames(self) -> int:
        return int(self.audio.shape[-1]) // HOP_LENGTH

    def save(self, path: Path) -> None:
        """Write the prepared clip (not the mel: it depends on the device and is cheap to recompute)."""
        torch.save(
            {
                "format": VOICE_FORMAT,
                "name": self.name,
                "ref_text": self.ref_text,
                "audio": self.audio.cpu(),
                "rms": self.rms,
                "source_seconds": self.source_seconds,
            },
            path,
        )

    @classmethod
    def load(cls, path: Path, engine: Engine) -> Voice:
        """Read a file written by `save`; raises ReferenceAudioError when it is corrupt or from another format."""
        try:
            data: Any = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(data, dict) or data.get("format") != VOICE_FORMAT:
                raise ValueError("unknown voice cache format")
            audio = data["audio"]
            if (
                not isinstance(audio, torch.Tensor)
                or audio.ndim != 2
                or audio.shape[0] != 1
                or audio.numel() == 0
            ):
                raise ValueError("bad audio tensor")
            return engine._voice_from_prepared(
                str(data["name"]),
                str(data["ref_text"]),
                audio.float(),
                float(data["rms"]),
                float(data["source_seconds"]),
            )
        except ReferenceAudioError:
            raise
        except Exception as err:
            raise ReferenceAudioError(f"voice cache {path.name} is unreadable: {err}") from err


def _pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("--device cuda was asked for, but this PyTorch build sees no CUDA GPU")
    return device


def _pick_dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision == "fp32":
        return torch.float32
    if precision == "fp16":
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise ModelLoadError(f"unknown precision {precision!r} (auto, fp32, fp16, bf16)")
    if device.type == "cuda":
        # fp16 gives silence or NaN on GPUs before Volta (GTX 16xx and older): fp32 there.
        major, _ = torch.cuda.get_device_capability(device)
        return torch.float16 if major >= 7 else torch.float32
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


def cpu_has_native_bf16() -> bool:
    """True when the CPU multiplies bf16 in hardware (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


class Engine:
    """A loaded model and vocoder on one device. Not thread-safe: one worker thread drives it."""

    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        model: DiT,
        vocoder: Vocos,
        vocab: Vocab,
        device: torch.device,
        dtype: torch.dtype,
        settings: EngineSettings,
        identity: str,
    ) -> None:
        self.model = model
        self.vocoder = vocoder
        self.vocab = vocab
        self.device = device
        self.dtype = dtype
        self.settings = settings
        self.policy = NfePolicy(fixed=settings.nfe)
        self.mel = MelSpectrogram(MelConfig()).to(device)
        self._identity = identity

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, settings: EngineSettings) -> Engine:
        files = resolve_model_files(settings.model, settings.model_dir, settings.cache_dir)
        return cls.from_files(files, settings)

    @classmethod
    def from_files(cls, files: ModelFiles, settings: EngineSettings) -> Engine:
        if settings.threads:
            torch.set_num_threads(settings.threads)
        device = _pick_device(settings.device)
        dtype = _pick_dtype(settings.precision, device)
        vocab = Vocab.from_file(files.vocab)

        model = DiT(dit_config_for(files, vocab.size))
        load_strict(model, read_dit_state(files.checkpoint), files.checkpoint)
        model = model.to(device=device, dtype=dtype).eval().requires_grad_(False).fuse_projections()
        if settings.compile:
            # Only the per-step forward: the text features run once per chunk and gain nothing.
            model.forward = torch.compile(model.forward, dynamic=True)  # type: ignore[method-assign]

        try:
            vocos_cfg = VocosConfig.from_yaml(files.vocos_config)
        except (OSError, ValueError) as err:
            raise ModelLoadError(f"Vocoder config {files.vocos_config}: {err}") from err
        vocoder = Vocos(vocos_cfg)
        load_strict(vocoder, read_vocos_state(files.vocos_weights), files.vocos_weights)
        vocoder = vocoder.to(device).eval().requires_grad_(False)  # float32, as upstream runs it

        digest = hashlib.sha256()
        for path in (files.checkpoint, files.vocab):
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
        _LOGGER.info("Model %s loaded on %s (%s)", files.checkpoint, device, str(dtype).replace("torch.", ""))
        return cls(model, vocoder, vocab, device, dtype, settings, digest.hexdigest()[:16])

    @property
    def voice_cache_key(self) -> str:
        """Changes when anything that shapes a prepared voice changes."""
        return f"v{VOICE_FORMAT}-{self._identity}"

    # ---------------------------------------------------------------- voices
    def prepare_voice(
        self, audio: np.ndarray, sample_rate: int, text: str, name: str = "", trim: bool = True
    ) -> Voice:
        """Upstream's reference preparation: clip to <= 12 s on silences, trim the edges, bring a quiet clip
        up to RMS 0.1 (remembering its loudness), resample to 24 kHz. `trim=False` keeps the clip as given
        (for a clip that was already prepared, and for comparisons with upstream's inner functions)."""
        ref_text = normalize_ref_text(text)
        clip = np.asarray(audio, dtype=np.float32)
        if trim:  # on the file's own channels and rate, before mixing down, as upstream does
            clip = trim_reference(clip, sample_rate).astype(np.float32, copy=False)
        mono = to_mono(clip)
        seconds = len(mono) / sample_rate  # upstream sizes text chunks by the clip's length at its own rate
        rms = float(np.sqrt(np.mean(np.square(mono, dtype=np.float64))))
        if not np.isfinite(rms) or rms <= 0:
            raise ReferenceAudioError("reference clip is silent")
        wave = torch.from_numpy(np.ascontiguousarray(mono))[None, :]
        if rms < TARGET_RMS:
            wave = wave * TARGET_RMS / rms
        if sample_rate != SAMPLE_RATE:
            wave = torch.from_numpy(resample(wave[0].numpy(), sample_rate, SAMPLE_RATE).astype(np.float32))[
                None
            ]
        return self._voice_from_prepared(name, ref_text, wave, rms, seconds)

    def _voice_from_prepared(
        self, name: str, ref_text: str, audio: torch.Tensor, rms: float, seconds: float
    ) -> Voice:
        if audio.shape[-1] < HOP_LENGTH * 8:
            raise ReferenceAudioError("reference clip is too short")
        with torch.inference_mode():
            mel = self.mel(audio.to(self.device)).transpose(1, 2).to(self.dtype)
        return Voice(name=name, ref_text=ref_text, audio=audio, rms=rms, source_seconds=seconds, mel=mel)

    # ---------------------------------------------------------------- synthesis
    def plan(self, voice: Voice, text: str, options: SynthesisOptions | None = None) -> list[str]:
        """The text chunks `synthesize` will speak, in order."""
        opts = options or SynthesisOptions()
        text = " ".join(text.split())
        if not text:
            raise TextError("text is empty")
        max_chars = opts.max_chars or max_chars_for(voice.ref_text, voice.source_seconds, opts.speed)
        chunks = chunk_text(text, max(1, max_chars))
        if opts.first_chunk_max_chars:
            chunks = shorten_first_chunk(chunks, opts.first_chunk_max_chars, max_chars)
        return chunks

    def synthesize(
        self,
        voice: Voice,
        text: str,
        options: SynthesisOptions | None = None,
        cancelled: CancelCheck | None = None,
    ) -> Iterator[np.ndarray]:
        """Yield float32 mono 24 kHz audio, one piece per text chunk, joined by upstream's cross-fade.

        Each piece leaves as soon as its chunk is vocoded; the last cross-fade tail is held back until the
        next chunk, so the concatenation equals upstream's joined waveform.
        """
        opts = options or SynthesisOptions()
        chunks = self.plan(voice, text, opts)
        seed = opts.seed if opts.seed is not None else random.randrange(2**63)
        generator = torch.Generator().manual_seed(seed)
        fader = CrossFader(int(opts.cross_fade_seconds * SAMPLE_RATE))
        started = time.monotonic()
        delivered = 0.0
        step_cost: float | None = None  # seconds per step per frame, measured on this request
        index = 0
        while index < len(chunks):
            group = chunks[index : index + (1 if index == 0 else max(1, self.settings.batch_chunks))]
            frames = sum(self._total_frames(voice, chunk, opts) for chunk in group)
            predicted = None if step_cost is None else step_cost * frames
            slack = delivered - (time.monotonic() - started)
            steps = opts.nfe or self.policy.choose(index, slack, predicted)
            t0 = time.monotonic()
            waves = self._synthesize_chunks(voice, group, steps, generator, opts, cancelled)
            spent = time.monotonic() - t0
            step_cost = spent / max(steps, 1) / frames
            _LOGGER.debug(
                "chunk %d/%d: %d steps, %d frames, %.2fs audio in %.2fs (slack %.2fs): %r",
                index + 1,
                len(chunks),
                steps,
                frames,
                sum(len(w) for w in waves) / SAMPLE_RATE,
                spent,
                slack,
                group,
            )
            for wave in waves:
                index += 1
                piece = fader.push(wave)
                if index == len(chunks):
                    piece = np.concatenate([piece, fader.flush()])
                delivered += len(piece) / SAMPLE_RATE
                if len(piece):
                    yield piece

    def synthesize_all(self, voice: Voice, text: str, options: SynthesisOptions | None = None) -> np.ndarray:
        pieces = list(self.synthesize(voice, text, options))
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)

    def warm_up(self, voice: Voice | None = None, steps: int = 1) -> None:
        """Run the whole path once so the first real request pays no one-time costs (allocations, kernels)."""
        if voice is None:
            t = np.arange(SAMPLE_RATE * 2) / SAMPLE_RATE
            tone = (0.3 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(
                np.float32
            )
            voice = self.prepare_voice(tone, SAMPLE_RATE, "Warm up.")
        started = time.monotonic()
        self.synthesize_all(voice, "Warming up the engine.", SynthesisOptions(nfe=steps, seed=0))
        _LOGGER.info("Warm-up took %.2fs", time.monotonic() - started)

    def _total_frames(self, voice: Voice, chunk: str, opts: SynthesisOptions) -> int:
        return estimate_total_frames(voice.ref_frames, model_ref_text(voice.ref_text), chunk, opts.speed)

    def _synthesize_chunks(
        self,
        voice: Voice,
        chunks: list[str],
        steps: int,
        generator: torch.Generator,
        opts: SynthesisOptions,
        cancelled: CancelCheck | None,
    ) -> list[np.ndarray]:
        """Sample one or more chunks in one batch (each with its own text, length and noise), vocode each."""
        ref_text = model_ref_text(voice.ref_text)
        ref_frames = voice.ref_frames
        cond_frames = int(voice.mel.shape[1])
        token_ids = [self.vocab.encode(text_to_tokens(ref_text + chunk)) for chunk in chunks]
        totals = [
            min(
                max(
                    len(ids) + 1, cond_frames + 1, estimate_total_frames(ref_frames, ref_text, c, opts.speed)
                ),
                65536,
            )
            for ids, c in zip(token_ids, chunks, strict=True)
        ]
        noise = draw_noise(
            totals, self.model.cfg.mel_dim, generator
        )  # in chunk order, as one at a time would
        batch = len(chunks)
        text_ids = torch.nn.utils.rnn.pad_sequence(
            [torch.tensor(ids, dtype=torch.long) for ids in token_ids], batch_first=True, padding_value=-1
        ).to(self.device)
        while True:
            try:
                mel = sample(
                    self.model,
                    voice.mel.expand(batch, -1, -1),
                    torch.full((batch,), cond_frames, device=self.device),
                    text_ids,
                    torch.tensor(totals, device=self.device),
                    noise,
                    steps=steps,
                    cfg_strength=opts.cfg_strength,
                    sway=opts.sway_sampling_coef,
                    cancelled=cancelled,
                )
                # Upstream keeps the last reference frame ([ref_frames:], with cond_frames = ref_frames + 1).
                waves = [
                    self.vocoder.decode(mel[i : i + 1, ref_frames:total].float().transpose(1, 2))[0]
                    for i, total in enumerate(totals)
                ]
            except torch.cuda.OutOfMemoryError as err:
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                raise EngineFailure("the GPU ran out of memory for this text; try a shorter text") from err
            if all(bool(torch.isfinite(w).all()) for w in waves):
                break
            if self.dtype == torch.float32:
                raise EngineFailure("the model produced non-finite audio")
            self._fall_back_to_fp32()  # then the same chunks again, with the same noise
        if voice.rms < TARGET_RMS:  # back to the reference's own loudness, in upstream's order of operations
            waves = [w * voice.rms / TARGET_RMS for w in waves]
        return [w.cpu().numpy().astype(np.float32, copy=False) for w in waves]

    def _fall_back_to_fp32(self) -> None:
        """Half precision overflowed (some GPUs and checkpoints do): switch to fp32 for good, and say so."""
        _LOGGER.warning(
            "Non-finite output in %s: switching the model to fp32", str(self.dtype).replace("torch.", "")
        )
        self.model = self.model.float()
        self.dtype = torch.float32
