"""Conditional flow matching sampler: Euler steps from noise to mel, with classifier-free guidance.

Same grid, guidance and noise as upstream `CFM.sample`, with two differences that change no number:
the text features are computed once per request, and the caller may stop it between steps (between
chunks where a CUDA graph replays a chunk's loop whole).

`sample` = `prepare_steps` (everything constant over a chunk's steps, once) + `euler_loop` (the steps).
`euler_loop` is also exactly what a CUDA graph records (chunk_graphs.py): one graph per chunk layout
replays the whole loop, so the graph and the eager path run the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from ..errors import SynthesisCancelled
from .dit import AttentionMask, DiT
from .options import MAX_FRAMES, ceil_to

# Empirically pruned step grids (EPSS, Fast F5-TTS), in 1/32 units of flow time.
EPSS_GRIDS: dict[int, tuple[int, ...]] = {
    5: (0, 2, 4, 8, 16, 32),
    6: (0, 2, 4, 6, 8, 16, 32),
    7: (0, 2, 4, 6, 8, 16, 24, 32),
    10: (0, 2, 4, 6, 8, 12, 16, 20, 24, 28, 32),
    12: (0, 2, 4, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32),
    16: (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32),
}


def timesteps(
    steps: int, sway: float | None, dtype: torch.dtype = torch.float32, use_epss: bool = True
) -> torch.Tensor:
    """steps + 1 times from 0 to 1: an EPSS grid where one exists, else uniform; then sway sampling,
    which for sway = -1 becomes 1 - cos(pi t / 2) and spends more steps early, where the flow bends most."""
    grid = EPSS_GRIDS.get(steps) if use_epss else None
    t = torch.tensor(grid, dtype=dtype) * (1 / 32) if grid else torch.linspace(0, 1, steps + 1, dtype=dtype)
    if sway is not None:
        t = t + sway * (torch.cos(torch.pi / 2 * t) - 1 + t)
    return t


def draw_noise(durations: Sequence[int], mel_dim: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One (duration, mel) normal draw per item, in order, from a CPU generator.

    Drawing on the CPU makes a seed mean the same audio on every device, and drawing per item (not one
    padded block) keeps each item's noise independent of what else shares the batch.
    """
    return [torch.randn(d, mel_dim, generator=generator) for d in durations]


def total_frames(durations: torch.Tensor, text_lens: torch.Tensor, cond_lens: torch.Tensor) -> torch.Tensor:
    """Each item's total frames (reference + new) as sampled: something must be generated, so at least one
    frame past the reference and past the text, and at most MAX_FRAMES. (B,) integers in, (B,) out."""
    return torch.maximum(torch.maximum(text_lens, cond_lens) + 1, durations.to(cond_lens)).clamp(
        max=MAX_FRAMES
    )


def pad_frames(x: torch.Tensor, n: int) -> torch.Tensor:
    """Zero-pad (B, frames, C) to n frames (no copy when it has them already)."""
    return x if x.shape[1] == n else torch.nn.functional.pad(x, (0, 0, 0, n - x.shape[1]))


@dataclass(frozen=True)
class ChunkInputs:
    """What every Euler step of a chunk reads besides the state and its time, prepared once per chunk."""

    context: torch.Tensor
    """(R, N, mel + T) the input layer's reference mel and text features (`DiT.context`), R = 2B rows with
    guidance (conditional, then unconditional), else B."""
    mask: AttentionMask | None
    """The padding mask of the R rows, None when nothing is padded."""
    cfg_strength: float
    guided: bool


class StepFn(Protocol):
    """One Euler step; `guided_step`'s signature, so a captured replay of it (a CUDA graph) can stand in."""

    def __call__(
        self, model: DiT, x: torch.Tensor, chunk: ChunkInputs, modulation: torch.Tensor, dt: torch.Tensor
    ) -> torch.Tensor: ...


def guided_step(
    model: DiT, x: torch.Tensor, chunk: ChunkInputs, modulation: torch.Tensor, dt: torch.Tensor
) -> torch.Tensor:
    """One Euler step of the flow ODE with classifier-free guidance; returns the next state.

    x: (B, N, mel) float32 state; chunk: the chunk's constant inputs; modulation: this step's row of
    `DiT.modulation` (6 L + 2, D); dt: the step to the next time, a 0-d float32 tensor on the model's device
    (tensors, not Python numbers: `euler_loop` hands it views of the chunk's (nfe, ...) buffers, which a
    CUDA graph of the whole loop reads from static memory). Everything the step reads is an argument: no
    Python state changes between steps, which is what lets a graph capture it.
    """
    flow = model.flow(x, chunk.context, modulation, chunk.mask).float()  # (R, N, mel)
    if chunk.guided:
        cond_flow, null_flow = flow.chunk(2, dim=0)
        # lerp(null, cond, 1 + w) = cond + (cond - null) * w, upstream's guidance, in one pass
        flow = torch.lerp(null_flow, cond_flow, 1.0 + chunk.cfg_strength)
    return torch.addcmul(x, dt, flow)  # x + dt * flow


def euler_loop(
    model: DiT,
    x: torch.Tensor,
    chunk: ChunkInputs,
    modulation: torch.Tensor,
    dt: torch.Tensor,
    step: StepFn = guided_step,
    cancelled: Callable[[], bool] | None = None,
) -> torch.Tensor:
    """Every Euler step of one chunk, from the noise `x` (B, N, mel) to the final state (B, N, mel).

    modulation: (nfe, 6 L + 2, D), one row per step; dt: (nfe,). The number of steps is modulation's first
    dimension, so a recording of this function on static buffers (chunk_graphs.py) replays the whole chunk.
    `cancelled` is asked before each step (the eager path only: a replayed graph cannot stop midway).
    """
    for i in range(modulation.shape[0]):
        if cancelled is not None and cancelled():
            raise SynthesisCancelled("synthesis cancelled")
        x = step(model, x, chunk, modulation[i], dt[i])  # (B, N, mel)
    return x


class LoopFn(Protocol):
    """`euler_loop`'s signature, so that a replay of a recorded loop (`ChunkGraphs`) can stand in."""

    def __call__(
        self,
        model: DiT,
        x: torch.Tensor,
        chunk: ChunkInputs,
        modulation: torch.Tensor,
        dt: torch.Tensor,
        step: StepFn = ...,
        cancelled: Callable[[], bool] | None = None,
    ) -> torch.Tensor: ...


@dataclass(frozen=True)
class StepInputs:
    """What the Euler steps of one `sample` call read, prepared once per chunk (`prepare_steps`): the step
    loop (`euler_loop`) alone is then what runs `nfe` times (and what a benchmark of a step times)."""

    x: torch.Tensor
    """(B, N, mel) float32 noise, padded to N: the ODE state before the first step."""
    chunk: ChunkInputs
    t: torch.Tensor
    """(nfe + 1,) float32 flow times on the device."""
    modulation: torch.Tensor
    """(nfe, 6 L + 2, D) every layer's time modulation at each step's time (`DiT.modulation`)."""
    dt: torch.Tensor
    """(nfe,) float32: t[i + 1] - t[i]."""
    cond: torch.Tensor
    """(B, N, mel) the reference mel padded to N, in the precision it came in."""
    cond_mask: torch.Tensor

    @property
    def nfe(self) -> int:
        return int(self.t.shape[0]) - 1


@torch.inference_mode()
def prepare_steps(
    model: DiT,
    cond: torch.Tensor,
    cond_lens: torch.Tensor,
    text_ids: torch.Tensor,
    durations: torch.Tensor,
    noise: Sequence[torch.Tensor],
    nfe: int,
    cfg_strength: float = 2.0,
    sway: float | None = -1.0,
    use_epss: bool = True,
    pad_to: int = 1,
) -> StepInputs:
    """Everything before the first Euler step of `sample` (same arguments): lengths, masks, the text
    features and the input layer's context (once per chunk), the noise on the device, the time grid and
    every layer's modulation at each of its times."""
    device = cond.device
    batch = cond.shape[0]
    durations = total_frames(durations, (text_ids != -1).sum(dim=-1), cond_lens)
    n = min(ceil_to(int(durations.max()), pad_to), MAX_FRAMES)
    frames = torch.arange(n, device=device)
    cond_mask = (frames[None, :] < cond_lens[:, None])[..., None]  # (B, N, 1)
    cond = pad_frames(cond, n)
    step_cond = torch.where(cond_mask, cond, torch.zeros_like(cond))
    # Nothing padded, no mask: upstream skips it for one item too, and without one SDPA may pick
    # FlashAttention on a GPU. A batch of unequal lengths hides its padding, and so does a padded length
    # (always, then, so that a compiled model or a CUDA graph sees one input layout per length: a chunk
    # whose every item happens to end on the bucket is 1 in `pad_to` of them, and recording a second,
    # unmasked layout of every (batch, length, guidance, steps) for it would double the warm-up and the
    # graphs for that one chunk in `pad_to`; issue 24, item 4).
    padded = pad_to > 1 or (batch > 1 and bool((durations < n).any()))
    valid = (frames[None, :] < durations[:, None]) if padded else None

    # With padding the features end at the longest item; the frames past it are masked anyway.
    text_cond, text_null = model.embed_text(
        text_ids, durations if valid is not None else torch.full_like(durations, n)
    )
    guided = cfg_strength >= 1e-5
    # What every step reads is cast once per chunk to the precision the model's input layer runs in; the
    # reference copied back at the end keeps the precision it came in.
    context = model.context(
        step_cond, (pad_frames(text_cond, n), pad_frames(text_null, n) if guided else None)
    )
    mask = None if valid is None else model.attention_mask(valid, context.shape[0])

    # The ODE state and the time grid stay in float32 whatever the model's precision: in fp16/bf16 only the
    # network runs in half precision, and the Euler sum does not lose bits step after step.
    x = pad_frames(
        torch.nn.utils.rnn.pad_sequence([z.to(device, torch.float32) for z in noise], batch_first=True), n
    )
    t = timesteps(nfe, sway, torch.float32, use_epss).to(device)
    return StepInputs(
        x,
        ChunkInputs(context, mask, float(cfg_strength), guided),
        t,
        model.modulation(t[:-1]),
        t.diff(),
        cond,
        cond_mask,
    )


@torch.inference_mode()
def sample(
    model: DiT,
    cond: torch.Tensor,
    cond_lens: torch.Tensor,
    text_ids: torch.Tensor,
    durations: torch.Tensor,
    noise: Sequence[torch.Tensor],
    nfe: int,
    cfg_strength: float = 2.0,
    sway: float | None = -1.0,
    use_epss: bool = True,
    cancelled: Callable[[], bool] | None = None,
    pad_to: int = 1,
    step: StepFn = guided_step,
    loop: LoopFn = euler_loop,
) -> torch.Tensor:
    """Generate mel frames after a reference.

    cond: (B, Nc, mel) reference mel; cond_lens: (B,) valid reference frames; text_ids: (B, Nt) with -1
    padding; durations: (B,) total frames (reference + new); noise: per item (duration, mel).
    pad_to > 1 rounds the sequence length up to a multiple of it (masked padding: the same numbers), so
    that a compiled model or a CUDA graph sees a few fixed lengths instead of a new one per chunk.
    step: runs each Euler step (default `guided_step`); loop: runs all `nfe` of them (default `euler_loop`;
    a `ChunkGraphs` replays a recorded loop instead, with `step` only for a layout it did not record).
    Returns (B, N, mel) with N >= max(durations), the reference region copied back from `cond`.
    """
    inputs = prepare_steps(
        model, cond, cond_lens, text_ids, durations, noise, nfe, cfg_strength, sway, use_epss, pad_to
    )
    x = loop(model, inputs.x, inputs.chunk, inputs.modulation, inputs.dt, step, cancelled)  # (B, N, mel)
    return torch.where(inputs.cond_mask, inputs.cond.float(), x)
