"""CUDA graphs of a chunk's whole sampling loop, without torch.compile.

An eager sampler step of F5TTS_v1_Base launches some 250 kernels (22 DiT blocks of 11;
`python -m ishowtts_dev.bench.profile` counts them), and a chunk runs 7 to 32 steps; on an H100 launching them
can take longer than the GPU's work. A CUDA graph records the launches once and replays them all with one call.
`ChunkGraphs` records `sampler.euler_loop` (every guided step of a chunk: the DiT forward with
classifier-free guidance, the guidance combine and the Euler update, `nfe` times) once per input layout
(batch size, padded length, guidance, number of steps) into static input buffers and one memory pool shared
by all graphs, and then stands in for `euler_loop` in `sampler.sample`: each chunk copies its inputs into the
buffers once (the noise, the context and mask, the modulation of every step, the dts) and replays once; the
graph's output holds the final state. The step buffers (modulation, dt) depend only on the number of steps
and the precision, so graphs of the same `nfe` share one set of them.

Cancellation: a replay cannot stop midway, so with a graph `cancelled` is asked once per chunk, before the
replay (a chunk on a GPU takes tens of milliseconds); the eager path (`euler_loop`) still asks before each step.

Layouts are recorded only inside `recording()` (the engine's start-up warm-up), so no request ever waits for
a recording; a layout that was not recorded runs eagerly and is logged once. Batches are padded up to the next
recorded size (1, 2, 4, 8, ...) by repeating the first item, whose extra results are dropped (items never mix:
the same audio); lengths are padded by the sampler to the engine's length bucket (masked: the same audio).

The graph captures kernels, not Python: the model must not change (a precision fallback drops the graphs,
`clear`), and everything the loop reads must be one of its arguments (``guided_step`` guarantees that for
each step). Only the engine's one worker thread may use it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from ..errors import SynthesisCancelled
from .dit import AttentionMask, DiT
from .sampler import ChunkInputs, StepFn, euler_loop, guided_step

_LOGGER = logging.getLogger(__name__)

Replay = Callable[[], None]


class Recorder(Protocol):
    """Turns a chunk's loop on static buffers into (replay, output buffer)."""

    def record(self, loop: Callable[[], torch.Tensor]) -> tuple[Replay, torch.Tensor]: ...


class CudaRecorder:
    """`torch.cuda.CUDAGraph` captures sharing one memory pool: the graphs run one at a time on one thread,
    so their intermediate buffers can overlap, and the pool costs what the largest loop needs (each step's
    intermediates are freed within the capture, so a loop needs about what one step does)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.pool = torch.cuda.graph_pool_handle()

    def record(self, loop: Callable[[], torch.Tensor]) -> tuple[Replay, torch.Tensor]:
        # Two eager runs on a side stream first, as capture requires: lazy initialisation (cuBLAS
        # handles and workspaces, kernel selection, any cache the model fills) happens outside the graph.
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(2):
                loop()
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            out = loop()
        return graph.replay, out


class EagerRecorder:
    """The stand-in where there is no GPU: "replaying" runs the loop again on the same static buffers. It
    does what a graph does except the speed-up, so the buffers, batch padding and layouts can be tested on a
    CPU (and gpu-check's CPU run exercises this code)."""

    def record(self, loop: Callable[[], torch.Tensor]) -> tuple[Replay, torch.Tensor]:
        out = loop()

        def replay() -> None:
            out.copy_(loop())

        return replay, out


@dataclass(eq=False)
class _Graph:
    replay: Replay
    buffers: list[torch.Tensor | None]
    out: torch.Tensor


_BATCHED = (True, True, True, True, True, False, False)
"""Per input of `_inputs` (x, context, the mask's bias, padding and frames_padding, modulation, dt): whether
its first dimension is the batch's (B, or R rows with guidance). The others (the step buffers) are shared by
every graph of their shape."""


def _inputs(
    x: torch.Tensor, chunk: ChunkInputs, modulation: torch.Tensor, dt: torch.Tensor
) -> list[torch.Tensor | None]:
    mask = chunk.mask
    masks: list[torch.Tensor | None] = (
        [None] * 3 if mask is None else [mask.bias, mask.padding, mask.frames_padding]
    )
    return [x, chunk.context, *masks, modulation, dt]


class ChunkGraphs:
    """A drop-in for `sampler.euler_loop` that replays recorded CUDA graphs, one per chunk (see the module
    docstring).

    `step` is what each recorded loop runs: `guided_step` itself, or a torch.compile'd guided_step (then
    "recording" compiles each layout at warm-up, and with the `EagerRecorder` a layout that was not compiled
    at warm-up runs uncompiled rather than compiling inside a request). `replays` counts chunks replayed,
    `eager_steps` the steps of chunks that ran eagerly.
    """

    def __init__(
        self, model: DiT, recorder: Recorder, batch_sizes: Sequence[int] = (1,), step: StepFn = guided_step
    ) -> None:
        self.model = model
        self.recorder = recorder
        self.step = step
        self.batch_sizes = sorted(set(batch_sizes))
        self._graphs: dict[tuple[Any, ...], _Graph] = {}
        self._shared: dict[tuple[Any, ...], torch.Tensor] = {}
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
        """Within this block a chunk of a layout not yet recorded is recorded (the warm-up); outside, it runs
        eagerly."""
        self._recording = True
        try:
            yield
        finally:
            self._recording = False

    def clear(self) -> None:
        """Drop every graph and its memory (the model changed: a precision fallback)."""
        self._graphs.clear()
        self._shared.clear()
        self._missed.clear()

    def _layout(self, batch: int, inputs: list[torch.Tensor | None], chunk: ChunkInputs) -> tuple[Any, ...]:
        # Every input's shape past its first dimension: the batch's (B or R rows), or the step count's (the
        # step buffers), which `batch` and `nfe` stand for.
        shapes = tuple(None if value is None else (tuple(value.shape[1:]), value.dtype) for value in inputs)
        nfe = int(inputs[-1].shape[0])  # type: ignore[union-attr]
        return (batch, nfe, chunk.cfg_strength, chunk.guided, shapes)

    def __call__(
        self,
        model: DiT,
        x: torch.Tensor,
        chunk: ChunkInputs,
        modulation: torch.Tensor,
        dt: torch.Tensor,
        step: StepFn = guided_step,
        cancelled: Callable[[], bool] | None = None,
    ) -> torch.Tensor:
        """All `nfe` = len(dt) steps of a chunk: x (B, N, mel) noise in, the final state (B, N, mel) out.
        `step` runs the steps of a layout not recorded (eagerly, `cancelled` asked before each); a recorded
        one asks `cancelled` once, then replays."""
        batch = int(x.shape[0])
        size = next((s for s in self.batch_sizes if s >= batch), None)
        inputs = _inputs(x, chunk, modulation, dt)
        layout = None if size is None else self._layout(size, inputs, chunk)
        graph = None if layout is None else self._graphs.get(layout)
        if graph is None and layout is not None and self._recording and model is self.model:
            graph = self._record(layout, size or batch, inputs, chunk)
        if graph is None or model is not self.model:
            self._eager(layout, batch, x, int(dt.shape[0]))
            return euler_loop(model, x, chunk, modulation, dt, step, cancelled)
        if cancelled is not None and cancelled():
            raise SynthesisCancelled("synthesis cancelled")
        self._load(graph, inputs, batch)
        graph.replay()
        self.replays += 1
        return graph.out[:batch].clone()  # the buffer is overwritten by the next replay

    def _eager(self, layout: tuple[Any, ...] | None, batch: int, x: torch.Tensor, nfe: int) -> None:
        self.eager_steps += nfe
        key = layout or (batch,)
        if key not in self._missed:
            self._missed.add(key)
            _LOGGER.warning(
                "Sampler loop for a batch of %d x %d frames at %d steps not warmed as a CUDA graph: "
                "it runs eagerly",
                batch,
                int(x.shape[1]),
                nfe,
            )

    def _buffer(self, i: int, value: torch.Tensor, size: int, rows: int) -> torch.Tensor:
        """A static buffer for input `i`: its own for a batched input (size or rows first), else the one
        every graph of this shape and precision shares (the step buffers)."""
        if _BATCHED[i]:
            shape = ((size if i == 0 else rows), *value.shape[1:])
            return torch.empty(shape, dtype=value.dtype, device=value.device)
        key = (i, tuple(value.shape), value.dtype, value.device)
        if key not in self._shared:
            self._shared[key] = torch.empty(value.shape, dtype=value.dtype, device=value.device)
        return self._shared[key]

    def _record(
        self, layout: tuple[Any, ...], size: int, inputs: list[torch.Tensor | None], chunk: ChunkInputs
    ) -> _Graph:
        rows = size * (int(inputs[1].shape[0]) // int(inputs[0].shape[0]))  # type: ignore[union-attr]
        buffers = [
            None if value is None else self._buffer(i, value, size, rows) for i, value in enumerate(inputs)
        ]
        graph = _Graph(replay=lambda: None, buffers=buffers, out=torch.empty(0))
        self._load(graph, inputs, int(inputs[0].shape[0]))  # type: ignore[union-attr]
        x, context, bias, padding, frames_padding, modulation, dt = buffers
        assert x is not None and context is not None and modulation is not None and dt is not None
        mask = None
        if bias is not None and padding is not None and frames_padding is not None:
            mask = AttentionMask(bias, padding, frames_padding)
        static = ChunkInputs(context, mask, chunk.cfg_strength, chunk.guided)

        def loop() -> torch.Tensor:
            # x is never written: each step makes a new state, so every replay starts from the noise
            return euler_loop(self.model, x, static, modulation, dt, self.step)

        graph.replay, graph.out = self.recorder.record(loop)
        self._graphs[layout] = graph
        _LOGGER.debug(
            "Recorded the sampler loop for a batch of %d x %d frames at %d steps",
            size,
            int(x.shape[1]),
            int(dt.shape[0]),
        )
        return graph

    @staticmethod
    def _load(graph: _Graph, inputs: list[torch.Tensor | None], batch: int) -> None:
        """Copy a chunk's inputs into the graph's buffers (once per chunk: one replay runs all its steps). A
        batch smaller than the graph's fills its spare rows with copies of its first item, in each half of the
        rows (conditional, unconditional) on its own."""
        for i, (buffer, value) in enumerate(zip(graph.buffers, inputs, strict=True)):
            if buffer is None or value is None:
                continue
            if not _BATCHED[i] or buffer.shape[0] == value.shape[0]:
                buffer.copy_(value)
            else:
                halves = value.shape[0] // batch  # 2 for the rows of a guided batch, else 1
                target = buffer.view(halves, -1, *buffer.shape[1:])
                source = value.view(halves, batch, *value.shape[1:])
                target[:, :batch].copy_(source)
                target[:, batch:].copy_(source[:, :1].expand(-1, target.shape[1] - batch, *value.shape[1:]))
