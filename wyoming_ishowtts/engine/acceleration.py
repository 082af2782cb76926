"""How the sampler's steps run: eagerly, or a chunk's whole loop replayed (CUDA graphs) and/or its steps
compiled (torch.compile) per input layout, every layout recorded at start-up.

An engine has one `Acceleration`. `Acceleration.build` reads the settings and the machine: each thing asked
for that the machine cannot do is logged, and the steps run eagerly instead. `warm_up` records (or compiles)
the loop for every layout a request can bring: batch size, padded length, guidance, step count. `drop` goes
back to eager steps for good, freeing the graphs: a failed recording, or a precision fallback (the graphs
were made for the model that was replaced). Each batch (batch.py) reads `chunk_graphs` (what runs each
chunk's loop; None: the eager `sampler.euler_loop`) and `bucket` (frames each batch's length is rounded up
to).

A recorder other than CUDA's may be given (`Engine.load(settings, recorder=...)`): the loops are then
recorded with it on any device, as if --cuda-graphs had been asked for. The tests and gpu-check's CPU run
play the CUDA-graph path with `chunk_graphs.EagerRecorder` that way.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager

import torch

from .chunk_graphs import ChunkGraphs, CudaRecorder, EagerRecorder, Recorder
from .chunking import estimate_total_frames, max_chars_for, model_ref_text
from .dit import DiT
from .hardware import compiler_problem
from .loading import raise_recompile_limit
from .options import DEFAULT_LENGTH_BUCKET, MAX_FRAMES, EngineSettings, SynthesisOptions, ceil_to
from .sampler import StepFn, draw_noise, guided_step, sample
from .tokenizer import Vocab, text_to_tokens
from .voice import Voice

_LOGGER = logging.getLogger(__name__)

__all__ = ["Acceleration"]


class Acceleration:
    """What runs an engine's sampler steps (see the module docstring). Only the engine's thread uses it."""

    def __init__(
        self, device: torch.device, chunk_graphs: ChunkGraphs | None = None, bucket: int = 1
    ) -> None:
        self.device = device
        self.chunk_graphs = chunk_graphs
        """CUDA graphs of a chunk's loop and/or compiled steps per layout; None: every chunk's loop eager
        (`euler_loop` of `guided_step`)."""
        self.bucket = bucket if chunk_graphs is not None else 1
        """Frames each batch's length is rounded up to (1: none; CUDA graphs and compiled steps need it)."""

    @classmethod
    def build(
        cls, model: DiT, settings: EngineSettings, device: torch.device, recorder: Recorder | None = None
    ) -> Acceleration:
        """CUDA graphs and/or torch.compile of `model`'s sampler step, as `settings` ask and the machine
        allows; each refusal is logged, and the steps run eagerly instead. With a `recorder` the steps are
        recorded with it, on any device, as if CUDA graphs had been asked for."""
        graphs = settings.cuda_graphs or recorder is not None
        if graphs and device.type != "cuda" and recorder is None:
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
            return cls(device)
        recorder = recorder or (CudaRecorder(device) if graphs else EagerRecorder())
        chunk_graphs = ChunkGraphs(model, recorder, ChunkGraphs.sizes_for(settings.batch_chunks), step)
        return cls(device, chunk_graphs, settings.length_bucket or DEFAULT_LENGTH_BUCKET)

    @property
    def name(self) -> str:
        """What runs the sampler steps: "eager", "cuda-graphs", "compiled" or "compiled cuda-graphs" (or
        "recorded": a stand-in recorder's uncompiled steps)."""
        if self.chunk_graphs is None:
            return "eager"
        names = [] if self.chunk_graphs.step is guided_step else ["compiled"]
        if isinstance(self.chunk_graphs.recorder, CudaRecorder):
            names.append("cuda-graphs")
        return " ".join(names) or "recorded"

    @property
    def needs_voices(self) -> bool:
        """Whether `warm_up` records per-voice layouts: then it should be given every voice requests may use,
        so that their lengths and options are covered."""
        return self.chunk_graphs is not None

    def recording(self) -> AbstractContextManager[None]:
        """Within this block a loop of a layout not yet recorded is recorded; outside, it runs eagerly."""
        return self.chunk_graphs.recording() if self.chunk_graphs is not None else contextlib.nullcontext()

    def bucket_lengths(self, voice: Voice, options: SynthesisOptions | None = None) -> list[int]:
        """The padded lengths `voice`'s chunks can reach with `options` (speed, chunk budget): from just past
        the reference to the longest chunk the budget allows (a first chunk cut for latency is shorter)."""
        if self.bucket <= 1:
            return []
        low, high = self.length_range(voice, options or SynthesisOptions())
        return list(range(low, high + 1, self.bucket))

    def length_range(self, voice: Voice, options: SynthesisOptions) -> tuple[int, int]:
        """The shortest and longest padded length of `voice`'s chunks with `options`."""
        ref_text = model_ref_text(voice.ref_text)
        budget = options.max_chars or max_chars_for(voice.ref_text, voice.source_seconds, options.speed)
        longest = estimate_total_frames(voice.ref_frames, ref_text, "x" * max(budget, 1), options.speed)
        shortest = int(voice.mel.shape[1]) + 1
        return ceil_to(shortest, self.bucket), min(ceil_to(longest, self.bucket), MAX_FRAMES)

    def warm_up(
        self,
        vocab: Vocab,
        voices: Sequence[tuple[Voice, SynthesisOptions]],
        max_batch: int,
        policy_counts: Sequence[int],
    ) -> None:
        """Record the loop for every layout `voices` (each with its request options) can bring in batches of
        up to `max_batch` chunks; `policy_counts`: the step counts the engine's policy picks for options
        without their own `nfe` (`NfePolicy.counts`). A failure is logged and the steps run eagerly from
        then on: slower, never broken."""
        if self.chunk_graphs is None:
            return
        name = self.name
        try:
            self.record(vocab, voices, max_batch, policy_counts)
        except Exception:
            _LOGGER.exception("Warm-up of the %s sampler loop failed: every step now runs eagerly", name)
            self.drop()
        else:
            _LOGGER.info("Sampler loop %s: %d layouts recorded", name, len(self.chunk_graphs))

    def record(
        self,
        vocab: Vocab,
        voices: Sequence[tuple[Voice, SynthesisOptions]],
        max_batch: int,
        policy_counts: Sequence[int],
    ) -> None:
        """Record the loop for every (batch size, length, guidance, step count) `voices` can bring (see
        `warm_up`).

        A batch may mix voices, and its length is its longest item's: every bucket from the shortest any
        voice reaches to the longest any reaches. Guidance and step count go in pairs, as each voice's
        options bring them (a batch shares both: `ChunkJob.batch_key`). The inputs come from the voice with
        the shortest reference, which fits every length: a layout depends on shapes only, not on values.
        """
        chunk_graphs = self.chunk_graphs
        assert chunk_graphs is not None
        chunk_graphs.batch_sizes = ChunkGraphs.sizes_for(max(1, max_batch))
        ranges = [self.length_range(v, o) for v, o in voices]
        lengths = range(min(r[0] for r in ranges), max(r[1] for r in ranges) + 1, self.bucket)
        loops = sorted(
            {(o.cfg_strength, nfe) for _, o in voices for nfe in ([o.nfe] if o.nfe else policy_counts)}
        )
        voice = min((v for v, _ in voices), key=lambda v: int(v.mel.shape[1]))
        ids = vocab.encode(text_to_tokens(model_ref_text(voice.ref_text) + "Warm."))
        cond_frames = int(voice.mel.shape[1])
        model, device = chunk_graphs.model, self.device
        generator = torch.Generator().manual_seed(0)
        with chunk_graphs.recording():
            for cfg_strength, nfe in loops:
                for batch in chunk_graphs.batch_sizes:
                    for n in lengths:
                        sample(
                            model,
                            voice.mel.expand(batch, -1, -1),
                            torch.full((batch,), cond_frames, device=device),
                            torch.tensor([ids] * batch, device=device),
                            torch.full((batch,), n, device=device),
                            draw_noise([n] * batch, model.cfg.mel_dim, generator),
                            nfe=nfe,
                            cfg_strength=cfg_strength,
                            pad_to=self.bucket,
                            loop=chunk_graphs,
                        )
        _LOGGER.debug(
            "Recorded batches %s x lengths %d..%d x (guidance, steps) %s",
            chunk_graphs.batch_sizes,
            lengths[0],
            lengths[-1],
            loops,
        )

    def drop(self) -> None:
        """Back to eager steps for good: the graphs (with their memory) and the compiled code go."""
        chunk_graphs, self.chunk_graphs, self.bucket = self.chunk_graphs, None, 1
        if chunk_graphs is None:
            return
        compiled = chunk_graphs.step is not guided_step
        chunk_graphs.clear()
        del chunk_graphs
        if compiled:
            import torch._dynamo

            torch._dynamo.reset()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
