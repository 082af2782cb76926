"""CUDA graphs of the sampler step, without torch.compile.

An eager sampler step of F5TTS_v1_Base launches some 250 kernels (22 DiT blocks of 11;
`python -m ishowtts_dev.bench.profile` counts them); on an H100 launching them can take longer than the
GPU's work for a typical chunk. A CUDA graph records the launches once and replays them all with one call.
`StepGraphs` records `sampler.guided_step` (the DiT forward with classifier-free guidance, the guidance
combine and the Euler update) once per input layout (batch size, padded length, guidance) into static input
buffers and one memory pool shared by all graphs, and then stands in for `guided_step` in `sampler.sample`:
each step copies its inputs into the buffers (the state, the step's row of the modulation and its dt; the
chunk's context and mask once per chunk) and replays.

Layouts are recorded only inside `recording()` (the engine's start-up warm-up), so no request ever waits for
a recording; a layout that was not recorded runs eagerly and is logged once. Batches are padded up to the next
recorded size (1, 2, 4, 8, ...) by repeating the first item, whose extra results are dropped (items never mix:
the same audio); lengths are padded by the sampler to the engine's length bucket (masked: the same audio).

The graph captures kernels, not Python: the model must not change (a precision fallback drops the graphs,
`clear`), and everything the step reads must be one of its arguments (``guided_step`` guarantees that).
Only the engine's one worker thread may use it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from .dit import AttentionMask, DiT
from .sampler import ChunkInputs, StepFn, guided_step

_LOGGER = logging.getLogger(__name__)

Replay = Callable[[], None]


class Recorder(Protocol):
    """Turns a step on static buffers into (replay, output buffer)."""

    def record(self, step: Callable[[], torch.Tensor]) -> tuple[Replay, torch.Tensor]: ...


class CudaRecorder:
    """`torch.cuda.CUDAGraph` captures sharing one memory pool: the graphs run one at a time on one thread,
    so their intermediate buffers can overlap, and the pool costs what the largest step needs."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.pool = torch.cuda.graph_pool_handle()

    def record(self, step: Callable[[], torch.Tensor]) -> tuple[Replay, torch.Tensor]:
        # Two eager runs on a side stream first, as capture requires: lazy initialisation (cuBLAS
        # handles and workspaces, kernel selection, any cache the model fills) happens outside the graph.
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(2):
                step()
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            out = step()
        return graph.replay, out


class EagerRecorder:
    """The stand-in where there is no GPU: "replaying" runs the step again on the same static buffers. It
    does what a graph does except the speed-up, so the buffers, batch padding and layouts can be tested on a
    CPU (and gpu-check's CPU run exercises this code)."""

    def record(self, step: Callable[[], torch.Tensor]) -> tuple[Replay, torch.Tensor]:
        out = step()

        def replay() -> None:
            out.copy_(step())

        return replay, out


@dataclass(eq=False)
class _Graph:
    replay: Replay
    buffers: list[torch.Tensor | None]
    out: torch.Tensor
    loaded: list[Any] = field(default_factory=list)
    """The source tensor last copied into each buffer: the inputs constant over a chunk's steps (reference,
    text, mask) are copied once per chunk, not once per step."""


_CONSTANT = (False, True, True, True, True, False, False)
"""Per input of `_inputs` (x, context, the mask's bias, padding and frames_padding, modulation, dt): whether
it stays the same tensor over the steps of one chunk."""
_BATCHED = (True, True, True, True, True, False, False)
"""Per input of `_inputs`: whether its first dimension is the batch's (B, or R rows with guidance)."""


def _inputs(
    x: torch.Tensor, chunk: ChunkInputs, modulation: torch.Tensor, dt: torch.Tensor
) -> list[torch.Tensor | None]:
    mask = chunk.mask
    masks: list[torch.Tensor | None] = (
        [None] * 3 if mask is None else [mask.bias, mask.padding, mask.frames_padding]
    )
    return [x, chunk.context, *masks, modulation, dt]


class StepGraphs:
    """A drop-in for `sampler.guided_step` that replays recorded CUDA graphs (see the module docstring).

    `step` is what gets recorded: `guided_step` itself, or a torch.compile'd guided_step (then "recording"
    compiles each layout at warm-up, and with the `EagerRecorder` a layout that was not compiled at warm-up
    runs uncompiled rather than compiling inside a request).
    """

    def __init__(
        self, model: DiT, recorder: Recorder, batch_sizes: Sequence[int] = (1,), step: StepFn = guided_step
    ) -> None:
        self.model = model
        self.recorder = recorder
        self.step = step
        self.batch_sizes = sorted(set(batch_sizes))
        self._graphs: dict[tuple[Any, ...], _Graph] = {}
        self._recording = False
        self._missed: set[tuple[Any, ...]] = set()
        self.replays = 0
        self.eager_steps = 0

    @staticmethod
    def sizes_for(max_batch: int) -> list[int]:
        """Powers of two up to the first that holds `max_batch`: 1, 2, 4, 8 for a batch of up to 8."""
        sizes = [1]
        while sizes[-1] < max_batch:
            sizes.append(sizes[-1] * 2)
        return sizes

    def __len__(self) -> int:
        return len(self._graphs)

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Within this block a step of a layout not yet recorded is recorded (the warm-up); outside, it runs
        eagerly."""
        self._recording = True
        try:
            yield
        finally:
            self._recording = False

    def clear(self) -> None:
        """Drop every graph and its memory (the model changed: a precision fallback)."""
        self._graphs.clear()
        self._missed.clear()

    def _layout(self, batch: int, inputs: list[torch.Tensor | None], chunk: ChunkInputs) -> tuple[Any, ...]:
        shapes = tuple(
            None
            if value is None
            else (tuple(value.shape[1:]) if _BATCHED[i] else tuple(value.shape), value.dtype)
            for i, value in enumerate(inputs)
        )
        return (batch, chunk.cfg_strength, chunk.guided, shapes)

    def __call__(
        self, model: DiT, x: torch.Tensor, chunk: ChunkInputs, modulation: torch.Tensor, dt: torch.Tensor
    ) -> torch.Tensor:
        batch = int(x.shape[0])
        size = next((s for s in self.batch_sizes if s >= batch), None)
        inputs = _inputs(x, chunk, modulation, dt)
        layout = None if size is None else self._layout(size, inputs, chunk)
        graph = None if layout is None else self._graphs.get(layout)
        if graph is None and layout is not None and self._recording and model is self.model:
            graph = self._record(layout, size or batch, inputs, chunk)
        if graph is None or model is not self.model:
            self._eager(layout, batch, x)
            return guided_step(model, x, chunk, modulation, dt)
        self._load(graph, inputs, batch)
        graph.replay()
        self.replays += 1
        return graph.out[:batch].clone()  # the buffer is overwritten by the next replay

    def _eager(self, layout: tuple[Any, ...] | None, batch: int, x: torch.Tensor) -> None:
        self.eager_steps += 1
        key = layout or (batch,)
        if key not in self._missed:
            self._missed.add(key)
            _LOGGER.warning(
                "Sampler step for a batch of %d x %d frames not warmed as a CUDA graph: it runs eagerly",
                batch,
                int(x.shape[1]),
            )

    def _record(
        self, layout: tuple[Any, ...], size: int, inputs: list[torch.Tensor | None], chunk: ChunkInputs
    ) -> _Graph:
        rows = size * (int(inputs[1].shape[0]) // int(inputs[0].shape[0]))  # type: ignore[union-attr]
        buffers = [
            None
            if value is None
            else torch.empty(
                ((size if i == 0 else rows), *value.shape[1:]) if _BATCHED[i] else value.shape,
                dtype=value.dtype,
                device=value.device,
            )
            for i, value in enumerate(inputs)
        ]
        graph = _Graph(replay=lambda: None, buffers=buffers, out=torch.empty(0))
        graph.loaded = [None] * len(buffers)
        self._load(graph, inputs, int(inputs[0].shape[0]))  # type: ignore[union-attr]
        x, context, bias, padding, frames_padding, modulation, dt = buffers
        assert x is not None and context is not None and modulation is not None and dt is not None
        mask = None
        if bias is not None and padding is not None and frames_padding is not None:
            mask = AttentionMask(bias, padding, frames_padding)
        static = ChunkInputs(context, mask, chunk.cfg_strength, chunk.guided)

        def step() -> torch.Tensor:
            return self.step(self.model, x, static, modulation, dt)

        graph.replay, graph.out = self.recorder.record(step)
        self._graphs[layout] = graph
        _LOGGER.debug("Recorded the sampler step for a batch of %d x %d frames", size, int(x.shape[1]))
        return graph

    @staticmethod
    def _load(graph: _Graph, inputs: list[torch.Tensor | None], batch: int) -> None:
        """Copy the inputs into the graph's buffers. A batch smaller than the graph's fills its spare rows
        with copies of its first item, in each half of the rows (conditional, unconditional) on its own."""
        for i, (buffer, value) in enumerate(zip(graph.buffers, inputs, strict=True)):
            if buffer is None or value is None:
                continue
            if _CONSTANT[i] and graph.loaded[i] is value:
                continue  # the same tensor as last step: already there
            if not _BATCHED[i] or buffer.shape[0] == value.shape[0]:
                buffer.copy_(value)
            else:
                halves = value.shape[0] // batch  # 2 for the rows of a guided batch, else 1
                target = buffer.view(halves, -1, *buffer.shape[1:])
                source = value.view(halves, batch, *value.shape[1:])
                target[:, :batch].copy_(source)
                target[:, batch:].copy_(source[:, :1].expand(-1, target.shape[1] - batch, *value.shape[1:]))
            graph.loaded[i] = value
