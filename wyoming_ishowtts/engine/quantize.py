"""``--precision int8`` on a CPU: the DiT's per-step matrix multiplies with int8 weights.

A sampler step on a CPU is matrix multiplies (the linear layers of the 22 blocks: about 80 % of its
arithmetic at 891 frames, attention most of the rest), and a CPU multiplies 8-bit integers several times as
fast as float32 numbers (AVX2's ``vpmaddubsw`` does 32 multiply-adds where an FMA does 8). So each of those
layers becomes an `Int8Linear`: its weight rounded once, at load, to int8 with one scale per output channel
(symmetric: scale = max |w| / 127 of that row), and each call's float32 input rounded to 8 bits with one
scale for the whole tensor, taken from that input's own range (dynamic quantization: nothing to calibrate).
The products are summed in int32 and the result comes back as float32, the bias added in float32. Everything
else stays as in fp32: the residual stream, norms, time modulation, attention itself, the input and output
projections, the text encoder, everything the sampler accumulates, and the vocoder.

The kernels are PyTorch's own (``torch.ops.quantized``: FBGEMM/oneDNN on x86, QNNPACK on ARM), no other
dependency. What int8 costs in accuracy, and what it gains in speed, is measured in BENCHMARKS.md ("int8
on a CPU"); random weights cannot show how a trained model's outlier activations round, so fp32 stays one
flag away (``--precision fp32``).
"""

from __future__ import annotations

import warnings
from typing import cast

import torch
from torch import nn

PER_STEP_LINEARS = ("attn.to_qkv", "attn.to_out.0", "ff.ff.0.0", "ff.ff.2")
"""The linear layers of a block that int8 replaces (after `DiT.fuse_projections`): the attention's joined
q/k/v projection and its output projection, the MLP's two layers. Each block's time modulation
(``attn_norm.linear``) reads one row per batch item, not one per frame: rounding it would gain nothing."""


def int8_problem(device: torch.device) -> str | None:
    """Why ``--precision int8`` cannot run here, or None. Only a CPU: on a GPU these kernels do not exist
    (and half precision is the fast path there); the torch build must carry a quantized engine."""
    if device.type != "cpu":
        return (
            f"--precision int8 runs on a CPU only (the engine is on {device}); on a GPU use fp16 or bf16 "
            "(or auto), or --device cpu"
        )
    if not kernels_present():
        return (
            f"--precision int8: this PyTorch build ({torch.__version__}) lacks the int8 linear kernels "
            "(torch.ops.quantized.linear_dynamic); use --precision fp32"
        )
    if quantized_engine() is None:
        engines = ", ".join(torch.backends.quantized.supported_engines) or "none"
        return (
            f"--precision int8: this PyTorch build has no int8 kernels for this CPU (quantized engines: "
            f"{engines}); use --precision fp32"
        )
    return None


def kernels_present() -> bool:
    """Whether this torch has what `Int8Linear` calls. PyTorch has deprecated its quantized tensors
    (``torch.quantize_per_channel`` warns that they go in a future release); a torch without them is
    refused at start-up with `int8_problem`'s message, and ``auto`` runs fp32 there."""
    ops = torch.ops.quantized
    return hasattr(torch, "quantize_per_channel") and all(
        hasattr(ops, name) for name in ("linear_prepack", "linear_dynamic")
    )


def quantized_engine() -> str | None:
    """The PyTorch quantized engine to use: x86's (FBGEMM and oneDNN), else FBGEMM, else QNNPACK (ARM)."""
    supported = set(torch.backends.quantized.supported_engines)
    return next((name for name in ("x86", "fbgemm", "qnnpack") if name in supported), None)


def quantize_weight(weight: torch.Tensor) -> torch.Tensor:
    """(out, in) float -> a quantized int8 tensor with one symmetric scale per output row (zero point 0)."""
    weight = weight.detach().float()
    scales = weight.abs().amax(dim=1).double() / 127.0
    scales = torch.where(scales > 0, scales, torch.ones_like(scales))  # an all-zero row: any scale
    zero_points = torch.zeros(weight.shape[0], dtype=torch.long)
    with warnings.catch_warnings():  # the deprecation `kernels_present` describes, once per layer
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor, torch\.quantize_per_channel")
        return torch.quantize_per_channel(weight, scales, zero_points, axis=0, dtype=torch.qint8)


class Int8Linear(nn.Module):
    """``nn.Linear``'s forward with int8 weights and float32 input and output (see the module docstring).

    reduce_range: round inputs to 7 bits instead of 8. Needed where the CPU has no VNNI (``vpdpbusd``):
    AVX2's ``vpmaddubsw`` adds two uint8 x int8 products into an int16, which two 8-bit extremes
    (2 x 255 x 127) overflow and 7-bit ones (2 x 127 x 127) cannot; PyTorch's own dynamic quantization
    reduces the range on x86 for the same reason. It costs about 3 dB of the layers' SNR."""

    def __init__(self, linear: nn.Linear, reduce_range: bool) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.reduce_range = reduce_range
        bias = None if linear.bias is None else linear.bias.detach().float()
        # The weights in the kernel's own packed layout, made once; the float32 ones are not kept.
        self.packed = torch.ops.quantized.linear_prepack(quantize_weight(linear.weight), bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., in_features) float32 -> (..., out_features) float32."""
        return torch.ops.quantized.linear_dynamic(x, self.packed, self.reduce_range)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def needs_reduced_range(flags: frozenset[str]) -> bool:
    """Whether int8 inputs must keep to 7 bits on this CPU (`Int8Linear`): on x86 without VNNI. ARM's
    QNNPACK sums in 32 bits and needs the full 8."""
    x86 = "avx2" in flags or "sse4_2" in flags
    return x86 and not ({"avx512_vnni", "avx_vnni", "amx_int8"} & flags)


def quantize_dit(model: nn.Module, reduce_range: bool) -> int:
    """Replace `PER_STEP_LINEARS` in every block of a float32 DiT (fused, on the CPU) by `Int8Linear`,
    in place; returns how many were replaced."""
    engine = quantized_engine()
    if engine is None:
        raise RuntimeError("no quantized engine in this PyTorch build")
    torch.backends.quantized.engine = engine  # prepack and the kernels use the process's engine
    blocks = cast(nn.ModuleList, model.get_submodule("transformer_blocks"))
    replaced = 0
    for block in blocks:
        for name in PER_STEP_LINEARS:
            parent_name, _, child = name.rpartition(".")
            parent = block.get_submodule(parent_name)
            linear = parent.get_submodule(child)
            if not isinstance(linear, nn.Linear) or linear.weight.dtype != torch.float32:
                raise RuntimeError(
                    f"int8 expects a float32 nn.Linear at {name}, found {type(linear).__name__}"
                )
            setattr(parent, child, Int8Linear(linear, reduce_range))
            replaced += 1
    return replaced


def is_quantized(model: nn.Module) -> bool:
    """Whether `quantize_dit` made this model's per-step layers int8."""
    return any(isinstance(module, Int8Linear) for module in model.modules())
