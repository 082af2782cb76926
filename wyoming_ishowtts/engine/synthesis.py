"""One request's way through its text: the plan (text chunks), each chunk's model inputs, its seeded noise
and step count, and the cross-fade that joins the pieces.

This is the scheduler's side of the engine: `Engine.begin` makes a `Synthesis`, whose `next_job` gives a
`ChunkJob`, which `Engine.run_batch` samples (several requests' jobs may share one batch), and whose
`deliver` turns the waves into the audio pieces to play. `Engine.synthesize` drives one on its own.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import TextError
from .chunking import (
    CrossFader,
    chunk_text,
    estimate_total_frames,
    max_chars_for,
    model_ref_text,
    shorten_first_chunk,
)
from .nfe import NfePolicy
from .options import SAMPLE_RATE, SynthesisOptions
from .sampler import draw_noise, total_frames
from .tokenizer import Vocab, text_to_tokens
from .voice import Voice

_LOGGER = logging.getLogger(__name__)

CancelCheck = Callable[[], bool]


def plan_chunks(voice: Voice, text: str, options: SynthesisOptions) -> list[str]:
    """The text chunks a request speaks, in order: upstream's chunking, the first chunk cut short."""
    text = " ".join(text.split())
    if not text:
        raise TextError("text is empty")
    max_chars = options.max_chars or max_chars_for(voice.ref_text, voice.source_seconds, options.speed)
    chunks = chunk_text(text, max(1, max_chars))
    if options.first_chunk_max_chars:
        chunks = shorten_first_chunk(chunks, options.first_chunk_max_chars, max_chars)
    return chunks


def chunk_inputs(
    vocab: Vocab, voice: Voice, chunks: list[str], speed: float
) -> tuple[list[list[int]], list[int]]:
    """Token ids (reference transcript + chunk) and total frames (reference + new) of each chunk."""
    ref_text = model_ref_text(voice.ref_text)
    token_ids = [vocab.encode(text_to_tokens(ref_text + chunk)) for chunk in chunks]
    estimates = [estimate_total_frames(voice.ref_frames, ref_text, chunk, speed) for chunk in chunks]
    totals = total_frames(
        torch.tensor(estimates),
        torch.tensor([len(ids) for ids in token_ids]),
        torch.full((len(chunks),), int(voice.mel.shape[1])),
    )  # as the sampler will bound them
    return token_ids, totals.tolist()


@dataclass(eq=False)
class ChunkJob:
    """One or more text chunks of one request, with their step count chosen and their noise drawn.

    The unit of work `Engine.run_batch` samples: jobs with the same `batch_key` may share one batch, even when
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
    nfe: int
    """Sampler steps (function evaluations) for these chunks."""

    @property
    def batch_key(self) -> tuple[int, float, float]:
        """What must be equal for jobs to share a batch: the time grid and the guidance."""
        options = self.synthesis.options
        return (self.nfe, options.cfg_strength, options.sway_sampling_coef)

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
        voice: Voice,
        text: str,
        options: SynthesisOptions,
        *,
        vocab: Vocab,
        mel_dim: int,
        policy: NfePolicy,
        batch_chunks: int = 1,
        cancelled: CancelCheck | None = None,
    ) -> None:
        self.voice = voice
        self.options = options
        self.chunks = plan_chunks(voice, text, options)
        self._vocab = vocab
        self._mel_dim = mel_dim
        self._policy = policy
        self._batch_chunks = max(1, batch_chunks)
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
        opts = self.options
        size = 1 if index == 0 else self._batch_chunks
        texts = self.chunks[index : index + size]
        token_ids, totals = chunk_inputs(self._vocab, self.voice, texts, opts.speed)
        predicted = None if self._step_cost is None else self._step_cost * sum(totals)
        slack = self._delivered - (time.monotonic() - self._started)
        nfe = opts.nfe or self._policy.choose(index, slack, predicted)
        noise = draw_noise(totals, self._mel_dim, self._generator)  # in chunk order, always
        self._next += len(texts)
        _LOGGER.debug(
            "chunk %d/%d: %d steps, %d frames (slack %.2fs): %r",
            index + 1,
            len(self.chunks),
            nfe,
            sum(totals),
            slack,
            texts,
        )
        return ChunkJob(self, index, texts, token_ids, totals, noise, nfe)

    def deliver(self, job: ChunkJob, waves: list[np.ndarray], spent: float) -> list[np.ndarray]:
        """Take the waves `Engine.run_batch` made for `job` (which took `spent` seconds, batch included) and return
        the audio pieces to play now, cross-faded; the last chunk's piece carries the held-back tail."""
        if job.first_index != self._done:
            raise ValueError("jobs must be delivered in order")
        self._step_cost = spent / max(job.nfe, 1) / max(job.frames, 1)
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
