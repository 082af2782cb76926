"""Public API: load a model once, prepare a voice once, then synthesize text as a stream of audio pieces.

    engine = Engine.load(EngineSettings(model_dir=Path("models/f5")))
    voice = engine.prepare_voice(*load_audio(Path("voices/alice/reference.wav")), text="Transcript.")
    for piece in engine.synthesize(voice, "Hello there. How are you today?"):
        play(piece)  # float32 mono at 24 kHz, one piece per text chunk

The front door is `synthesize`; the server's worker uses the parts it is made of (`begin`, `run_batch`,
`Synthesis.deliver`) to interleave requests. Loading is in loading.py, one request's state in
synthesis.py, the prepared clip in voice.py, what runs the sampler steps (CUDA graphs, torch.compile, length
buckets, the warm-up's recording) in acceleration.py. The server, the command-line tool and the benchmark
are all thin clients of this module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from ..errors import EngineFailure, ReferenceAudioError
from .acceleration import Acceleration
from .batch import BatchInputs, sample_and_vocode
from .checkpoints import ModelFiles, resolve_model_files
from .chunk_graphs import Recorder
from .dit import DiT
from .loading import bind_thread, load_dit, load_model, tf32_matmuls
from .mel import MelConfig, MelSpectrogram
from .nfe import NfePolicy
from .options import HOP_LENGTH, SAMPLE_RATE, EngineSettings, SynthesisOptions
from .quantize import is_quantized
from .synthesis import CancelCheck, ChunkJob, Synthesis, plan_chunks
from .tokenizer import Vocab
from .vocoder import Vocos
from .voice import MIN_FRAMES, PreparedClip, Voice, prepare_clip, tone_clip

_LOGGER = logging.getLogger(__name__)

__all__ = ["Engine"]


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
        files: ModelFiles | None = None,
        *,
        recorder: Recorder | None = None,
    ) -> None:
        self.model = model
        self.vocoder = vocoder
        self.vocab = vocab
        self.device = device
        self.dtype = dtype
        self.settings = settings
        self.identity = identity
        """Of the model files loaded: changes when the checkpoint or the vocabulary changes."""
        self.policy = NfePolicy(fixed=settings.nfe)
        self.mel = MelSpectrogram(MelConfig()).to(device)
        self._files = files
        self.acceleration = Acceleration.build(model, settings, device, recorder)
        """What runs the sampler steps (acceleration.py): `recorder` records them on any device (see there)."""
        self.fell_back = False
        """True once half precision overflowed and the model runs fp32, with TF32 matrix multiplies."""

    @classmethod
    def load(cls, settings: EngineSettings, *, recorder: Recorder | None = None) -> Engine:
        """Find the model's files (a local folder, or the hub), load them, and make the engine.

        The calling thread is the one that will run the engine (it is not thread-safe): its current CUDA
        device becomes the engine's GPU first (``bind_thread``), so ``--device cuda:N`` touches no other GPU.
        `recorder`: the steps are recorded with it, as if --cuda-graphs had been asked (`Acceleration.build`)."""
        bind_thread(settings.device)
        files = resolve_model_files(settings.model, settings.model_dir, settings.cache_dir)
        loaded = load_model(files, settings)
        return cls(
            loaded.model,
            loaded.vocoder,
            loaded.vocab,
            loaded.device,
            loaded.dtype,
            settings,
            loaded.identity,
            loaded.files,
            recorder=recorder,
        )

    @property
    def audio_identity(self) -> str:
        """What decides the audio besides the voice, the text and the request's options: the model files,
        the precision the model runs in now (a fall-back to fp32 changes it) and the step setting. The
        server's audio cache keys on it."""
        nfe = "auto" if self.settings.nfe is None else str(self.settings.nfe)
        precision = "int8" if is_quantized(self.model) else str(self.dtype).removeprefix("torch.")
        return f"{self.identity}/{precision}/nfe={nfe}"

    @property
    def warm_up_needs_voices(self) -> bool:
        """Whether `warm_up` records per-voice layouts (CUDA graphs, compiled steps): then it should be
        given every voice requests may use (`others`), so that their lengths and options are covered."""
        return self.acceleration.needs_voices

    def prepare_voice(
        self, audio: np.ndarray, sample_rate: int, text: str, name: str = "", trim: bool = True
    ) -> Voice:
        """A reference clip as a voice on this engine: `prepare_clip` (upstream's clipping, trimming and
        loudness rule; `trim=False` keeps the clip as given), then `voice`."""
        return self.voice(prepare_clip(audio, sample_rate, text, name, trim))

    def voice(self, clip: PreparedClip) -> Voice:
        """A prepared clip (fresh, or read from a cache) with its mel computed on this engine's device."""
        if clip.audio.shape[-1] < HOP_LENGTH * MIN_FRAMES:
            raise ReferenceAudioError("reference clip is too short")
        with torch.inference_mode():
            # float32 whatever the model's precision: the sampler casts what the model reads, and the
            # reference frame the vocoder starts from is copied back from it unrounded.
            mel = self.mel(clip.audio.to(self.device)).transpose(1, 2)
        return Voice(clip.name, clip.ref_text, clip.audio, clip.rms, clip.source_seconds, mel=mel)

    def plan(self, voice: Voice, text: str, options: SynthesisOptions | None = None) -> list[str]:
        """The text chunks `synthesize` will speak, in order."""
        return plan_chunks(voice, text, options or SynthesisOptions())

    def begin(
        self,
        voice: Voice,
        text: str,
        options: SynthesisOptions | None = None,
        cancelled: CancelCheck | None = None,
    ) -> Synthesis:
        """Start speaking `text`: plans the chunks now (so bad text fails here), samples nothing yet."""
        return Synthesis(
            voice,
            text,
            options or SynthesisOptions(),
            vocab=self.vocab,
            mel_dim=self.model.cfg.mel_dim,
            policy=self.policy,
            batch_chunks=self.settings.batch_chunks,
            cancelled=cancelled,
        )

    def run_batch(self, jobs: Sequence[ChunkJob]) -> list[list[np.ndarray]]:
        """Sample and vocode `jobs` in one batch (they must share a `batch_key`; they may come from different
        requests and voices); returns each job's waves, one per chunk, before the cross-fade.

        Each item keeps its own text, length, reference and noise and padding is masked, so a job's audio
        is the same (to float rounding) whatever else shares the batch.  Raises SynthesisCancelled when
        every job's request was cancelled. Half precision that overflows falls back to fp32 for good (the
        weights read again from the checkpoint: `_fp32_model`; the step graphs dropped: they were made for
        the half-precision model), with TF32 matrix multiplies on a GPU (`tf32_matmuls`), and the same
        chunks run again with the same noise.
        """
        if not jobs:
            return []
        batch = BatchInputs.of(jobs, self.device)
        while True:
            out_of_memory, joined = False, None
            lengths: list[int] = []
            try:
                with tf32_matmuls() if self.fell_back else contextlib.nullcontext():
                    joined, lengths = sample_and_vocode(
                        self.model,
                        self.vocoder,
                        batch,
                        self.acceleration,
                        cancelled=lambda: all(job.synthesis.cancelled() for job in jobs),
                    )
            except torch.cuda.OutOfMemoryError:
                out_of_memory = True
            if out_of_memory:
                # Raised here, after the handler, so that neither its traceback nor a chained exception keeps
                # the failed batch's activations alive while the caller retries its items one by one.
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                raise EngineFailure("the GPU ran out of memory for this text; try a shorter text")
            assert joined is not None
            if bool(torch.isfinite(joined).all()):  # one check and one copy to the host for the batch
                break
            if self.dtype == torch.float32:
                raise EngineFailure("the model produced non-finite audio")
            _LOGGER.warning(
                "Non-finite output in %s: switching the model to fp32 (TF32 matrix multiplies on a GPU), eager",
                str(self.dtype).removeprefix("torch."),
            )
            self.acceleration.drop()
            self.model = _fp32_model(self.model, self._files, self.vocab, self.device)
            self.dtype, self.fell_back = torch.float32, True
        host = joined.cpu().numpy().astype(np.float32, copy=False)
        waves = np.split(host, np.cumsum(lengths)[:-1])
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
            (waves,) = self.run_batch([job])
            yield from synthesis.deliver(job, waves, time.monotonic() - started)

    def synthesize_all(self, voice: Voice, text: str, options: SynthesisOptions | None = None) -> np.ndarray:
        pieces = list(self.synthesize(voice, text, options))
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)

    def warm_up(
        self,
        voice: Voice | None = None,
        nfe: int = 1,
        *,
        options: SynthesisOptions | None = None,
        others: Sequence[tuple[Voice, SynthesisOptions]] = (),
        max_requests: int = 1,
    ) -> None:
        """Run the whole path once (at `nfe` steps) so the first real request pays no one-time costs.

        With CUDA graphs or torch.compile it first records (or compiles) a chunk's sampler loop for every
        layout a request can bring (`Acceleration.warm_up`): each batch size up to `max_requests` clients'
        `batch_chunks` chunks, each length bucket `voice` (with `options`) and the `others` (each with its
        own options: speed, chunk budget, guidance) can reach, and each step count (the options' own `nfe`,
        else every count the engine's policy picks); the whole path then runs at one of those counts, with
        `options`' guidance, so that it records nothing new. If that fails the error is logged and the
        engine runs eagerly from then on: slower, never broken. An eager failure is raised: the engine cannot
        synthesize at all.
        """
        if voice is None:
            voice = self.prepare_voice(tone_clip(2.0, pitch=220.0), SAMPLE_RATE, "Warm up.")
        started = time.monotonic()
        max_batch = max(1, max_requests) * max(1, self.settings.batch_chunks)
        voices = [(voice, options or SynthesisOptions()), *others]
        self.acceleration.warm_up(self.vocab, voices, max_batch, self.policy.counts())
        warm = SynthesisOptions(nfe=nfe, seed=0)
        if self.acceleration.chunk_graphs is not None:  # a step count and guidance the warm-up recorded
            first = voices[0][1]
            warm = dataclasses.replace(first, nfe=first.nfe or self.policy.counts()[0], seed=0)
        with self.acceleration.recording():  # its layouts are recorded already: nothing new, nothing logged
            self.synthesize_all(voice, "Warming up the engine.", warm)
        _LOGGER.info("Warm-up took %.2fs", time.monotonic() - started)


def _fp32_model(model: DiT, files: ModelFiles | None, vocab: Vocab, device: torch.device) -> DiT:
    """The fp32 model of a fall-back from half precision: the weights read again from the checkpoint (widening
    the half-precision ones would keep their rounding). Voices need nothing: their reference mels are float32
    in every precision (`Engine.voice`)."""
    if files is None:  # an engine made by hand, with no files to read again
        return model.float()
    return load_dit(files, vocab, device, torch.float32)
