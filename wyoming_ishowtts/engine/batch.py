"""One batch of chunk jobs through the model and the vocoder: `Engine.run_batch`'s work.

Jobs that share a `batch_key` (steps, guidance, sway) may share a batch, whatever request and voice they come
from: every chunk of every job is one item with its own reference, text, length and noise, and the padding
is masked, so a job's audio does not depend on what else shares the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .acceleration import Acceleration
from .dit import DiT
from .sampler import euler_loop, guided_step, sample
from .synthesis import CancelCheck, ChunkJob
from .vocoder import Vocos
from .voice import TARGET_RMS, Voice


@dataclass(frozen=True)
class BatchInputs:
    """The model inputs of one batch of chunk jobs, every chunk of every job one item, in order."""

    voices: list[Voice]
    totals: list[int]
    """Total frames (reference + new) of each item."""
    noise: list[torch.Tensor]
    text_ids: torch.Tensor
    """(B, Nt) token ids, -1 padding."""
    cond_lens: torch.Tensor
    cond: torch.Tensor
    """(B, Nc, mel) the references, float32 in every precision (so the fp32 rerun after a half-precision
    fallback uses the same), padded past each item's `cond_lens`."""
    durations: torch.Tensor
    """(B,) `totals` on the device."""
    key: tuple[int, float, float]
    """The jobs' shared `batch_key`: steps, guidance and sway."""

    @classmethod
    def of(cls, jobs: Sequence[ChunkJob], device: torch.device) -> BatchInputs:
        if any(job.batch_key != jobs[0].batch_key for job in jobs):
            raise ValueError("jobs with different steps or guidance cannot share a batch")
        items = [(job, i) for job in jobs for i in range(len(job.texts))]
        voices = [job.synthesis.voice for job, _ in items]
        text_ids = torch.nn.utils.rnn.pad_sequence(
            [torch.tensor(job.token_ids[i], dtype=torch.long) for job, i in items],
            batch_first=True,
            padding_value=-1,
        )
        if all(v is voices[0] for v in voices):
            cond = voices[0].mel.expand(len(items), -1, -1)
        else:  # different references: padded, and the padding is outside every item's cond_lens
            cond = torch.nn.utils.rnn.pad_sequence([v.mel[0] for v in voices], batch_first=True)
        totals = [job.totals[i] for job, i in items]
        return cls(
            voices,
            totals,
            [job.noise[i] for job, i in items],
            text_ids.to(device),
            torch.tensor([int(v.mel.shape[1]) for v in voices], device=device),
            cond,
            torch.tensor(totals, device=device),
            jobs[0].batch_key,
        )


def sample_and_vocode(
    model: DiT, vocoder: Vocos, batch: BatchInputs, acceleration: Acceleration, cancelled: CancelCheck
) -> tuple[torch.Tensor, list[int]]:
    """Sample `batch` and vocode it in one vocoder pass: the items' waves joined, and each one's length."""
    nfe, cfg_strength, sway = batch.key
    mel = sample(
        model,
        batch.cond,
        batch.cond_lens,
        batch.text_ids,
        batch.durations,
        batch.noise,
        nfe=nfe,
        cfg_strength=cfg_strength,
        sway=sway,
        cancelled=cancelled,
        pad_to=acceleration.bucket,
        step=guided_step,
        loop=acceleration.chunk_graphs or euler_loop,
    )
    # Upstream keeps the last reference frame ([ref_frames:], with cond_frames = ref_frames + 1).
    waves = vocoder.decode_batch(
        [
            mel[i, v.ref_frames : total].transpose(0, 1)
            for i, (v, total) in enumerate(zip(batch.voices, batch.totals, strict=True))
        ]
    )
    # Back to each reference's own loudness where it was quiet, in upstream's order of operations.
    joined = [
        w * v.rms / TARGET_RMS if v.rms < TARGET_RMS else w for w, v in zip(waves, batch.voices, strict=True)
    ]
    return torch.cat(joined), [len(w) for w in waves]
