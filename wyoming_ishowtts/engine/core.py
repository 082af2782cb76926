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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import EngineFailure, ModelLoadError, ReferenceAudioError, SynthesisCancelled, TextError
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
from .mel import MelConfig, MelSpectrogram
from .nfe import NfePolicy
from .options import HOP_LENGTH, MAX_FRAMES, SAMPLE_RATE, EngineSettings, SynthesisOptions, ceil_to
from .reference import normalize_ref_text, resample, to_mono, trim_reference
from .sampler import draw_noise, sample
from .tokenizer import Vocab, text_to_tokens
from .vocoder import Vocos, VocosConfig

_LOGGER = logging.getLogger(__name__)

VOICE_FORMAT = 2
TARGET_RMS = 0.1
"""Quiet references are brought up to this loudness, and the output scaled back down (upstream's rule)."""

CancelCheck = Callable[[], bool]

__all__ = [
    "SAMPLE_RATE",
    "ChunkJob",
    "Engine",
    "EngineSettings",
    "Synthesis",
    "SynthesisCancelled",
    "SynthesisOptions",
    "Voice",
]


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
            # Only the per-step forward: the text features run once per chunk and gain nothing. Fixed
            # lengths (buckets) allow CUDA graphs, which replay a whole step without per-kernel launches.
            bucketed = settings.length_bucket > 0
            mode = "reduce-overhead" if bucketed and device.type == "cuda" else None
            if bucketed:  # one graph per (length, batch size): more than dynamo's default limit of 8
                from torch._dynamo import config as dynamo_config

                dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 256)
            model.forward = torch.compile(  # type: ignore[method-assign]
                model.forward, dynamic=not bucketed, mode=mode
            )

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

    def begin(
        self,
        voice: Voice,
        text: str,
        options: SynthesisOptions | None = None,
        cancelled: CancelCheck | None = None,
    ) -> Synthesis:
        """Start speaking `text`: plans the chunks now (so bad text fails here), samples nothing yet."""
        return Synthesis(self, voice, text, options or SynthesisOptions(), cancelled)

    def run(self, jobs: Sequence[ChunkJob]) -> list[list[np.ndarray]]:
        """Sample and vocode `jobs` in one batch (they must share a `batch_key`; they may come from different
        requests and voices); returns each job's waves, one per chunk, before the cross-fade.

        Each item keeps its own text, length, reference and noise and padding is masked, so a job's audio
        is the same (to float rounding) whatever else shares the batch.  Raises SynthesisCancelled when
        every job's request was cancelled.
        """
        if not jobs:
            return []
        if any(job.batch_key != jobs[0].batch_key for job in jobs):
            raise ValueError("jobs with different steps or guidance cannot share a batch")

        def cancelled() -> bool:
            return all(job.synthesis.cancelled() for job in jobs)

        waves = self._synthesize_chunks(list(jobs), cancelled)
        out: list[list[np.ndarray]] = []
        for job in jobs:
            out.append(waves[: len(job.texts)])
            waves = waves[len(job.texts) :]
        return out

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
        synthesis = self.begin(voice, text, options, cancelled)
        while (job := synthesis.next_job()) is not None:
            started = time.monotonic()
            (waves,) = self.run([job])
            yield from synthesis.deliver(job, waves, time.monotonic() - started)

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
        if self.settings.length_bucket > 0:
            self._warm_buckets(voice)
        _LOGGER.info("Warm-up took %.2fs", time.monotonic() - started)

    def bucket_lengths(self, voice: Voice) -> list[int]:
        """The padded lengths `voice`'s chunks can reach: from just past the reference to the longest chunk
        upstream's budget allows (a first sentence cut for latency is shorter, never longer)."""
        bucket = self.settings.length_bucket
        if bucket <= 0:
            return []
        ref_text = model_ref_text(voice.ref_text)
        budget = max_chars_for(voice.ref_text, voice.source_seconds, 1.0)
        longest = estimate_total_frames(voice.ref_frames, ref_text, "x" * max(budget, 1), 1.0)
        shortest = int(voice.mel.shape[1]) + 1
        top = min(ceil_to(longest, bucket), MAX_FRAMES)
        return list(range(ceil_to(shortest, bucket), top + 1, bucket))

    def _warm_buckets(self, voice: Voice) -> None:
        """One sampler step at every padded length, so no request waits for a compilation."""
        ids = torch.tensor([self.vocab.encode(text_to_tokens(model_ref_text(voice.ref_text) + "Warm."))])
        cond_frames = int(voice.mel.shape[1])
        generator = torch.Generator().manual_seed(0)
        for n in self.bucket_lengths(voice):
            sample(
                self.model,
                voice.mel,
                torch.tensor([cond_frames], device=self.device),
                ids.to(self.device),
                torch.tensor([n], device=self.device),
                draw_noise([n], self.model.cfg.mel_dim, generator),
                steps=1,
                pad_to=self.settings.length_bucket,
            )
            _LOGGER.debug("Warmed up length %d", n)

    def _chunk_shapes(
        self, voice: Voice, chunks: list[str], speed: float
    ) -> tuple[list[list[int]], list[int]]:
        """Token ids (reference transcript + chunk) and total frames (reference + new) of each chunk."""
        ref_text = model_ref_text(voice.ref_text)
        cond_frames = int(voice.mel.shape[1])
        token_ids = [self.vocab.encode(text_to_tokens(ref_text + chunk)) for chunk in chunks]
        totals = [
            min(
                max(
                    len(ids) + 1, cond_frames + 1, estimate_total_frames(voice.ref_frames, ref_text, c, speed)
                ),
                MAX_FRAMES,
            )
            for ids, c in zip(token_ids, chunks, strict=True)
        ]
        return token_ids, totals

    def _synthesize_chunks(self, jobs: list[ChunkJob], cancelled: CancelCheck | None) -> list[np.ndarray]:
        """Sample every chunk of `jobs` in one batch (each with its own reference, text, length and noise),
        vocode each; the waves come back flat, in job and chunk order."""
        items = [(job.synthesis.voice, i, job) for job in jobs for i in range(len(job.texts))]
        voices = [voice for voice, _, _ in items]
        steps, cfg_strength, sway = jobs[0].batch_key
        totals = [job.totals[i] for _, i, job in items]
        noise = [job.noise[i] for _, i, job in items]
        batch = len(items)
        text_ids = torch.nn.utils.rnn.pad_sequence(
            [torch.tensor(job.token_ids[i], dtype=torch.long) for _, i, job in items],
            batch_first=True,
            padding_value=-1,
        ).to(self.device)
        cond_lens = torch.tensor([int(v.mel.shape[1]) for v in voices], device=self.device)
        if all(v is voices[0] for v in voices):
            cond = voices[0].mel.expand(batch, -1, -1)
        else:  # different references: padded, and the padding is outside every item's cond_lens
            cond = torch.nn.utils.rnn.pad_sequence(
                [v.mel[0].to(self.dtype) for v in voices], batch_first=True
            )
        while True:
            try:
                mel = sample(
                    self.model,
                    cond,
                    cond_lens,
                    text_ids,
                    torch.tensor(totals, device=self.device),
                    noise,
                    steps=steps,
                    cfg_strength=cfg_strength,
                    sway=sway,
                    cancelled=cancelled,
                    pad_to=max(1, self.settings.length_bucket),
                )
                # Upstream keeps the last reference frame ([ref_frames:], with cond_frames = ref_frames + 1).
                waves = [
                    self.vocoder.decode(mel[i : i + 1, v.ref_frames : total].float().transpose(1, 2))[0]
                    for i, (v, total) in enumerate(zip(voices, totals, strict=True))
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
        # Back to each reference's own loudness where it was quiet, in upstream's order of operations.
        waves = [
            w * v.rms / TARGET_RMS if v.rms < TARGET_RMS else w for w, v in zip(waves, voices, strict=True)
        ]
        return [w.cpu().numpy().astype(np.float32, copy=False) for w in waves]

    def _fall_back_to_fp32(self) -> None:
        """Half precision overflowed (some GPUs and checkpoints do): switch to fp32 for good, and say so."""
        _LOGGER.warning(
            "Non-finite output in %s: switching the model to fp32", str(self.dtype).replace("torch.", "")
        )
        self.model = self.model.float()
        self.dtype = torch.float32


@dataclass(eq=False)
class ChunkJob:
    """One or more text chunks of one request, with their step count chosen and their noise drawn.

    The unit of work `Engine.run` samples: jobs with the same `batch_key` may share one batch, even when
    they come from different requests and voices.
    """

    synthesis: Synthesis
    first_index: int
    """Index of the first of `texts` in the request's plan."""
    texts: list[str]
    token_ids: list[list[int]]
    totals: list[int]
    """Total frames (reference + new) of each chunk."""
    noise: list[torch.Tensor]
    steps: int

    @property
    def batch_key(self) -> tuple[int, float, float]:
        """What must be equal for jobs to share a batch: the time grid and the guidance."""
        options = self.synthesis.options
        return (self.steps, options.cfg_strength, options.sway_sampling_coef)

    @property
    def frames(self) -> int:
        return sum(self.totals)


class Synthesis:
    """One request's way through its text chunks: the plan, the seeded noise, each chunk's step count and
    the cross-fade that joins the pieces.

    `Engine.synthesize` drives one on its own; the server's worker drives several at once and may sample
    their jobs together.  Jobs must be delivered in the order they were made.
    """

    def __init__(
        self,
        engine: Engine,
        voice: Voice,
        text: str,
        options: SynthesisOptions,
        cancelled: CancelCheck | None = None,
    ) -> None:
        self.engine = engine
        self.voice = voice
        self.options = options
        self.chunks = engine.plan(voice, text, options)
        seed = options.seed if options.seed is not None else random.randrange(2**63)
        self._generator = torch.Generator().manual_seed(seed)
        self._fader = CrossFader(int(options.cross_fade_seconds * SAMPLE_RATE))
        self._cancelled = cancelled
        self._started = time.monotonic()
        self._delivered = 0.0  # seconds of audio handed out so far
        self._step_cost: float | None = None  # seconds per step per frame, measured on this request
        self._next = 0  # the next chunk to put in a job
        self._done = 0  # chunks delivered

    @property
    def finished(self) -> bool:
        """Every chunk has been delivered."""
        return self._done >= len(self.chunks)

    def cancelled(self) -> bool:
        return self._cancelled is not None and self._cancelled()

    def next_job(self) -> ChunkJob | None:
        """The next chunk (or, after the first, up to `batch_chunks` chunks), None when all were handed out.

        The step count is chosen here, from the slack the audio delivered so far leaves (nfe.py).
        """
        index = self._next
        if index >= len(self.chunks):
            return None
        engine, opts = self.engine, self.options
        size = 1 if index == 0 else max(1, engine.settings.batch_chunks)
        texts = self.chunks[index : index + size]
        token_ids, totals = engine._chunk_shapes(self.voice, texts, opts.speed)
        predicted = None if self._step_cost is None else self._step_cost * sum(totals)
        slack = self._delivered - (time.monotonic() - self._started)
        steps = opts.nfe or engine.policy.choose(index, slack, predicted)
        noise = draw_noise(totals, engine.model.cfg.mel_dim, self._generator)  # in chunk order, always
        self._next += len(texts)
        _LOGGER.debug(
            "chunk %d/%d: %d steps, %d frames (slack %.2fs): %r",
            index + 1,
            len(self.chunks),
            steps,
            sum(totals),
            slack,
            texts,
        )
        return ChunkJob(self, index, texts, token_ids, totals, noise, steps)

    def deliver(self, job: ChunkJob, waves: list[np.ndarray], spent: float) -> list[np.ndarray]:
        """Take the waves `Engine.run` made for `job` (which took `spent` seconds, batch included) and return
        the audio pieces to play now, cross-faded; the last chunk's piece carries the held-back tail."""
        if job.first_index != self._done:
            raise ValueError("jobs must be delivered in order")
        self._step_cost = spent / max(job.steps, 1) / max(job.frames, 1)
        _LOGGER.debug(
            "chunk %d/%d: %.2fs audio in %.2fs",
            job.first_index + 1,
            len(self.chunks),
            sum(len(w) for w in waves) / SAMPLE_RATE,
            spent,
        )
        pieces = []
        for wave in waves:
            self._done += 1
            piece = self._fader.push(wave)
            if self._done == len(self.chunks):
                piece = np.concatenate([piece, self._fader.flush()])
            self._delivered += len(piece) / SAMPLE_RATE
            if len(piece):
                pieces.append(piece)
        return pieces
