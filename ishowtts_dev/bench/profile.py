"""Where one sampler step's time goes, and how many operations it launches.

    python -m ishowtts_dev.bench.profile --model-dir bench-results/model-base --frames 891 [--precision fp32]

BENCHMARKS.md quotes it where a speed target is missed. The step is the sampler's own (`sampler.guided_step`:
the conditional and unconditional halves in one batch of two, the guidance and the Euler update), on inputs
`sampler.prepare_steps` made once for the chunk (text features, noise), nothing padded, on the engine's own
model as `Engine.load` prepares it for `--precision`; one warm-up step is neither counted nor profiled.

Printed:
- ``operations per guided step: N``: the operators one step dispatches below autograd (what a GPU launches a
  kernel for), counted with a TorchDispatchMode, device-independently: views and allocations, which launch
  nothing, are counted apart. Eager PyTorch pays a launch (~8-15 µs on a GPU) for each of the N.
- the operators by their own (self) CPU time (torch.profiler), and the share of the step's time by kind
  (matrix multiplies, attention, convolutions, normalization, element-wise, copies and casts, the rest).
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

from wyoming_ishowtts.engine import Engine, EngineSettings
from wyoming_ishowtts.engine.dit import DiT
from wyoming_ishowtts.engine.sampler import draw_noise, guided_step, prepare_steps

KINDS: dict[str, tuple[str, ...]] = {
    "matrix multiplies": ("addmm", "mm", "bmm", "baddbmm", "linear", "matmul"),
    "attention": (
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_attention_math",
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_cudnn_attention",
        "_efficient_attention_forward",
        "_flash_attention_forward",
    ),
    "convolutions": ("mkldnn_convolution", "_convolution", "convolution", "conv1d", "cudnn_convolution"),
    "normalization": ("native_layer_norm", "layer_norm"),
    "copies and casts": ("copy_", "_to_copy", "clone", "cat", "contiguous", "stack", "repeat", "flip"),
}
"""Operator names (without `aten::`) by kind; the element-wise kind is every other pointwise operator."""
ALLOCATIONS = ("empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "resize_")


def kind_of(name: str, pointwise: bool) -> str:
    """The kind of operator `name` (`aten::` stripped)."""
    name = name.removeprefix("aten::")
    for kind, names in KINDS.items():
        if name in names:
            return kind
    return "element-wise" if pointwise else "the rest"


@dataclass(frozen=True)
class OperationCount:
    """What one call dispatched: launches by operator, and the views and allocations (no kernel) apart."""

    operations: Counter[str]
    views: int
    allocations: int

    @property
    def total(self) -> int:
        return sum(self.operations.values())

    def by_kind(self) -> Counter[str]:
        kinds: Counter[str] = Counter()
        for name, count in self.operations.items():
            kinds[kind_of(name, name in _POINTWISE_SEEN)] += count
        return kinds


_POINTWISE_SEEN: set[str] = set()
"""Operator names seen with torch's `pointwise` tag (filled while counting)."""


class _Counting(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.operations: Counter[str] = Counter()
        self.views = 0
        self.allocations = 0

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if torch._C._dispatch_has_kernel_for_dispatch_key(func.name(), "CompositeImplicitAutograd"):
            # A composite operator (linear, layer_norm, scaled_dot_product_attention, contiguous, ...) is
            # no kernel of its own: count what it is made of, as a GPU launches it.
            with self:
                decomposed = func.decompose(*args, **kwargs)
            if decomposed is not NotImplemented:
                return decomposed
        name = func.overloadpacket.__name__
        if func.is_view or name in ("view_as_real", "view_as_complex", "alias", "_unsafe_view", "detach"):
            self.views += 1
        elif name in ALLOCATIONS:
            self.allocations += 1
        else:
            self.operations[name] += 1
            if torch.Tag.pointwise in func.tags:
                _POINTWISE_SEEN.add(name)
        return func(*args, **kwargs)


def count_operations(run: Callable[[], Any]) -> OperationCount:
    """The operators one call of `run` dispatches below autograd (see the module docstring)."""
    with _Counting() as mode:
        run()
    return OperationCount(mode.operations, mode.views, mode.allocations)


def step_of(model: DiT, frames: int, vocab_size: int, seed: int = 0) -> Callable[[], torch.Tensor]:
    """One guided sampler step of the midpoint of a 16-step grid, on a chunk of `frames` frames (a third of
    them reference), its inputs prepared once as the sampler prepares them."""
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    ref = frames // 3
    cond = torch.randn(1, ref, model.cfg.mel_dim, generator=g).to(device)
    text = torch.randint(0, vocab_size, (1, min(150, frames - 1)), generator=g).to(device)
    with torch.inference_mode():
        inputs = prepare_steps(
            model,
            cond,
            torch.tensor([ref], device=device),
            text,
            torch.tensor([frames], device=device),
            draw_noise([frames], model.cfg.mel_dim, g),
            nfe=16,
        )
    i = inputs.nfe // 2

    def run() -> torch.Tensor:
        with torch.inference_mode():
            return guided_step(model, inputs.x, inputs.chunk, inputs.modulation[i], inputs.dt[i])

    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=891, help="sequence length (reference + generated)")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rows", type=int, default=15)
    args = parser.parse_args(argv)

    engine = Engine.load(
        EngineSettings(model_dir=args.model_dir, device=args.device, precision=args.precision, warmup=False)
    )
    run = step_of(engine.model, args.frames, engine.vocab.size)
    run()  # warm-up: neither counted nor profiled
    counted = count_operations(run)
    cuda = engine.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        run()
        if cuda:
            torch.cuda.synchronize()
    print(
        f"one guided sampler step, {args.frames} frames, batch 1 (2 rows with guidance), {engine.dtype}, "
        f"{engine.device}, torch threads {torch.get_num_threads()}"
    )
    print(f"operations per guided step: {counted.total}")
    kinds = counted.by_kind()
    print(
        "  by kind: "
        + ", ".join(f"{kind} {n}" for kind, n in kinds.most_common())
        + f"; besides them {counted.views} views and {counted.allocations} allocations (no kernel)"
    )
    print("  by operator: " + ", ".join(f"{name} {n}" for name, n in counted.operations.most_common()))
    events = prof.key_averages()
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    print(events.table(sort_by=sort, row_limit=args.rows))
    self_time: Counter[str] = Counter()
    for e in events:
        name = e.key.removeprefix("aten::")
        pointwise = name in _POINTWISE_SEEN
        self_time[kind_of(name, pointwise)] += e.self_device_time_total if cuda else e.self_cpu_time_total
    total = sum(self_time.values())
    print(
        f"self {'CUDA' if cuda else 'CPU'} time {total / 1e6:.3f} s: "
        + ", ".join(f"{kind} {100 * t / total:.0f} %" for kind, t in self_time.most_common())
    )


if __name__ == "__main__":
    main()
