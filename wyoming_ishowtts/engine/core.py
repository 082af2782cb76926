"""Public API: load a model once, prepare a voice once, then synthesize text as a stream of audio pieces.

    engine = Engine.load(EngineSettings(model_dir=Path("models/f5")))
    voice = engine.prepare_voice(*load_audio(Path("voices/alice/reference.wav")), text="Transcript.")
    for piece in engine.synthesize(voice, "Hello there. How are you today?"):
        play(piece)  # float32 mono at 24 kHz, one piece per text chunk

The front door is `synthesize`; the server's worker uses the parts it is made of (`begin`, `run_batch`,
`Synthesis.deliver`) to interleave requests. Loading is in loading.py, one request's state in
synthesis.py, the prepared clip in voice.py. The server, the command-line tool and the benchmark are all
thin clients of this module.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from ..errors import EngineFailure, ReferenceAudioError
from .checkpoints import ModelFiles, resolve_model_files
from .chunking import estimate_total_frames, max_chars_for, model_ref_text
from .dit import DiT
from .hardware import compiler_problem
from .loading import bind_thread, load_dit, load_model, raise_recompile_limit, tf32_matmuls
from .mel import MelConfig, MelSpectrogram
from .nfe import NfePolicy
from .options import (
    DEFAULT_LENGTH_BUCKET,
    HOP_LENGTH,
    MAX_FRAMES,
    SAMPLE_RATE,
    EngineSettings,
    SynthesisOptions,
    ceil_to,
)
from .quantize import is_quantized
from .sampler import StepFn, draw_noise, guided_step, sample
from .step_graphs import CudaRecorder, EagerRecorder, Recorder, StepGraphs
from .synthesis import CancelCheck, ChunkJob, Synthesis, plan_chunks
from .tokenizer import Vocab, text_to_tokens
from .vocoder import Vocos
from .voice import MIN_FRAMES, TARGET_RMS, PreparedClip, Voice, prepare_clip, tone_clip

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
        self._files = files
        self.steps: StepGraphs | None = None
        """CUDA graphs and/or compiled steps per layout; None: every sampler step eager (`guided_step`)."""
        self.bucket = 1
        """Frames each batch's length is rounded up to (1: none; CUDA graphs and compiled steps need it)."""
        self.fell_back = False
        """True once half precision overflowed and the model runs fp32, with TF32 matrix multiplies."""
        self._accelerate()

    @classmethod
    def load(cls, settings: EngineSettings) -> Engine:
        """Find the model's files (a local folder, or the hub), load them, and make the engine.

        The calling thread is the one that will run the engine (it is not thread-safe): its current CUDA
        device becomes the engine's GPU first (``bind_thread``), so ``--device cuda:N`` touches no other GPU."""
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
        )

    def _accelerate(self, stand_in: Recorder | None = None) -> None:
        """Set up CUDA graphs and/or torch.compile of the sampler step, as the settings ask and the machine
        allows; each refusal is logged, and the engine runs eagerly instead. `stand_in` (the tests and
        gpu-check's CPU run) records with it, on any device, as if CUDA graphs had been asked for."""
        settings, device = self.settings, self.device
        graphs = settings.cuda_graphs or stand_in is not None
        if graphs and device.type != "cuda" and stand_in is None:
            _LOGGER.warning("--cuda-graphs needs a CUDA GPU (running on %s): every step runs eagerly", device)
            graphs = False
        step: StepFn = guided_step
        if settings.compile:
            problem = compiler_problem(device.type)
            if problem:
                _LOGGER.error("%s: running the model uncompiled", problem)
            else:
                raise_recompile_limit(256)  # one compiled layout per (batch size, length bucket)
                step = torch.compile(guided_step, dynamic=True)
        if not graphs and step is guided_step:
            if settings.length_bucket:
                _LOGGER.warning(
                    "--length-bucket is ignored without --cuda-graphs or --compile: padding would cost time "
                    "and gain nothing"
                )
            return
        self.bucket = settings.length_bucket or DEFAULT_LENGTH_BUCKET
        recorder = stand_in or (CudaRecorder(device) if graphs else EagerRecorder())
        self.steps = StepGraphs(self.model, recorder, StepGraphs.sizes_for(settings.batch_chunks), step)

    @property
    def warm_up_needs_voices(self) -> bool:
        """Whether `warm_up` records per-voice layouts (CUDA graphs, compiled steps): then it should be
        given every voice requests may use (`others`), so that their lengths and options are covered."""
        return self.steps is not None

    @property
    def acceleration(self) -> str:
        """What runs the sampler steps: "eager", "cuda-graphs", "compiled" or "compiled cuda-graphs"."""
        if self.steps is None:
            return "eager"
        names = [] if self.steps.step is guided_step else ["compiled"]
        if isinstance(self.steps.recorder, CudaRecorder):
            names.append("cuda-graphs")
        return " ".join(names) or "recorded"

    def _drop_acceleration(self) -> None:
        """Back to eager steps for good: the graphs (with their memory) and the compiled code go."""
        steps, self.steps, self.bucket = self.steps, None, 1
        if steps is None:
            return
        compiled = steps.step is not guided_step
        steps.clear()
        del steps
        if compiled:
            import torch._dynamo

            torch._dynamo.reset()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    @property
    def identity(self) -> str:
        """Of the model files loaded: changes when the checkpoint or the vocabulary changes."""
        return self._identity

    @property
    def audio_identity(self) -> str:
        """What decides the audio besides the voice, the text and the request's options: the model files,
        the precision the model runs in now (a fall-back to fp32 changes it) and the step setting. The
        server's audio cache keys on it."""
        nfe = "auto" if self.settings.nfe is None else str(self.settings.nfe)
        precision = "int8" if is_quantized(self.model) else str(self.dtype).removeprefix("torch.")
        return f"{self._identity}/{precision}/nfe={nfe}"

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
            (waves,) = self.run_batch([job])
            yield from synthesis.deliver(job, waves, time.monotonic() - started)

    def synthesize_all(self, voice: Voice, text: str, options: SynthesisOptions | None = None) -> np.ndarray:
        pieces = list(self.synthesize(voice, text, options))
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)

    def warm_up(
        self,
        voice: Voice | None = None,
        steps: int = 1,
        *,
        options: SynthesisOptions | None = None,
        others: Sequence[tuple[Voice, SynthesisOptions]] = (),
        max_requests: int = 1,
    ) -> None:
        """Run the whole path once so the first real request pays no one-time costs (allocations, kernels).

        With CUDA graphs or torch.compile it first records (or compiles) the sampler step for every layout a
        request can bring: each batch size up to `max_requests` clients' `batch_chunks` chunks, and each
        length bucket `voice` (with `options`) and the `others` (each with its own options: speed, chunk
        budget, guidance) can reach. If that fails the error is logged and the engine runs eagerly from
        then on: slower, never broken. An eager failure is raised: the engine cannot synthesize at all.
        """
        if voice is None:
            voice = self.prepare_voice(tone_clip(2.0, pitch=220.0), SAMPLE_RATE, "Warm up.")
        started = time.monotonic()
        if self.steps is not None:
            name = self.acceleration
            try:
                self._record_steps([(voice, options or SynthesisOptions()), *others], max_requests)
            except Exception:
                _LOGGER.exception("Warm-up of the %s sampler step failed: every step now runs eagerly", name)
                self._drop_acceleration()
            else:
                _LOGGER.info("Sampler step %s: %d layouts recorded", name, len(self.steps))
        warm = SynthesisOptions(nfe=steps, seed=0)
        if self.steps is not None:
            with self.steps.recording():  # its layouts are recorded already: nothing new, nothing logged
                self.synthesize_all(voice, "Warming up the engine.", warm)
        else:
            self.synthesize_all(voice, "Warming up the engine.", warm)
        _LOGGER.info("Warm-up took %.2fs", time.monotonic() - started)

    def bucket_lengths(self, voice: Voice, options: SynthesisOptions | None = None) -> list[int]:
        """The padded lengths `voice`'s chunks can reach with `options` (speed, chunk budget): from just past
        the reference to the longest chunk the budget allows (a first chunk cut for latency is shorter)."""
        if self.bucket <= 1:
            return []
        low, high = self._length_range(voice, options or SynthesisOptions())
        return list(range(low, high + 1, self.bucket))

    def _length_range(self, voice: Voice, options: SynthesisOptions) -> tuple[int, int]:
        """The shortest and longest padded length of `voice`'s chunks with `options`."""
        ref_text = model_ref_text(voice.ref_text)
        budget = options.max_chars or max_chars_for(voice.ref_text, voice.source_seconds, options.speed)
        longest = estimate_total_frames(voice.ref_frames, ref_text, "x" * max(budget, 1), options.speed)
        shortest = int(voice.mel.shape[1]) + 1
        return ceil_to(shortest, self.bucket), min(ceil_to(longest, self.bucket), MAX_FRAMES)

    def _record_steps(self, voices: Sequence[tuple[Voice, SynthesisOptions]], max_requests: int) -> None:
        """Record the step for every (batch size, length, guidance) `voices` can bring (see `warm_up`).

        A batch may mix voices, and its length is its longest item's: every bucket from the shortest any
        voice reaches to the longest any reaches. The inputs come from the voice with the shortest
        reference, which fits every length: a layout depends on shapes only, not on values.
        """
        assert self.steps is not None
        self.steps.batch_sizes = StepGraphs.sizes_for(
            max(1, max_requests) * max(1, self.settings.batch_chunks)
        )
        ranges = [self._length_range(v, o) for v, o in voices]
        lengths = range(min(r[0] for r in ranges), max(r[1] for r in ranges) + 1, self.bucket)
        guidance = sorted({o.cfg_strength for _, o in voices})
        voice = min((v for v, _ in voices), key=lambda v: int(v.mel.shape[1]))
        ids = self.vocab.encode(text_to_tokens(model_ref_text(voice.ref_text) + "Warm."))
        cond_frames = int(voice.mel.shape[1])
        generator = torch.Generator().manual_seed(0)
        with self.steps.recording():
            for cfg_strength in guidance:
                for batch in self.steps.batch_sizes:
                    for n in lengths:
                        sample(
                            self.model,
                            voice.mel.expand(batch, -1, -1),
                            torch.full((batch,), cond_frames, device=self.device),
                            torch.tensor([ids] * batch, device=self.device),
                            torch.full((batch,), n, device=self.device),
                            draw_noise([n] * batch, self.model.cfg.mel_dim, generator),
                            steps=1,
                            cfg_strength=cfg_strength,
                            pad_to=self.bucket,
                            step=self.steps,
                        )
        _LOGGER.debug(
            "Recorded batches %s x lengths %d..%d x guidance %s",
            self.steps.batch_sizes,
            lengths[0],
            lengths[-1],
            guidance,
        )

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
        # Voice mels are float32 in every precision (the sampler casts what the model reads), so the same
        # cond serves the fp32 rerun after a half-precision fallback.
        if all(v is voices[0] for v in voices):
            cond = voices[0].mel.expand(batch, -1, -1)
        else:  # different references: padded, and the padding is outside every item's cond_lens
            cond = torch.nn.utils.rnn.pad_sequence([v.mel[0] for v in voices], batch_first=True)
        while True:
            out_of_memory, mel, waves = False, None, []
            try:
                with tf32_matmuls() if self.fell_back else contextlib.nullcontext():
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
                        pad_to=self.bucket,
                        step=self.steps or guided_step,
                    )
                # Upstream keeps the last reference frame ([ref_frames:], with cond_frames = ref_frames + 1).
                # One vocoder pass for the whole batch.
                waves = self.vocoder.decode_batch(
                    [
                        mel[i, v.ref_frames : total].transpose(0, 1)
                        for i, (v, total) in enumerate(zip(voices, totals, strict=True))
                    ]
                )
                # Back to each reference's own loudness where it was quiet, in upstream's order of operations.
                joined = torch.cat(
                    [
                        w * v.rms / TARGET_RMS if v.rms < TARGET_RMS else w
                        for w, v in zip(waves, voices, strict=True)
                    ]
                )
            except torch.cuda.OutOfMemoryError:
                out_of_memory = True
            if out_of_memory:
                # Raised here, after the handler, so that neither its traceback nor a chained exception keeps
                # the failed batch's activations alive while the caller retries its items one by one.
                mel, waves = None, []
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                raise EngineFailure("the GPU ran out of memory for this text; try a shorter text")
            if bool(torch.isfinite(joined).all()):  # one check and one copy to the host for the batch
                break
            if self.dtype == torch.float32:
                raise EngineFailure("the model produced non-finite audio")
            self._fall_back_to_fp32()  # then the same chunks again, with the same noise
        host = joined.cpu().numpy().astype(np.float32, copy=False)
        return np.split(host, np.cumsum([len(w) for w in waves])[:-1])

    def _fall_back_to_fp32(self) -> None:
        """Half precision overflowed (some GPUs and checkpoints do): switch to fp32 for good, and say so.

        The weights are read again from the checkpoint (widening the half-precision ones would keep their
        rounding) and CUDA graphs and compiled steps are dropped (they were made for the half-precision model);
        voices need nothing: their reference mels are float32 in every precision (`voice`). An fp32 run from
        the file's own weights, its matrix multiplies in TF32 on a GPU (`tf32_matmuls`: several times
        faster on Hopper than true fp32, for a model that exists to keep serving).
        """
        _LOGGER.warning(
            "Non-finite output in %s: switching the model to fp32 (TF32 matrix multiplies on a GPU), eager",
            str(self.dtype).replace("torch.", ""),
        )
        self._drop_acceleration()
        if self._files is not None:
            self.model = load_dit(self._files, self.vocab, self.device, torch.float32)
        else:  # an engine made by hand, with no files to read again
            self.model = self.model.float()
        self.dtype = torch.float32
        self.fell_back = True  # its steps run with TF32 matrix multiplies (`tf32_matmuls`)
