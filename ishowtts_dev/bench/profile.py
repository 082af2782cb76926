"""Where one sampler step's time goes: a torch profiler table of one guided DiT forward pass.

    python -m ishowtts_dev.bench.profile --model-dir bench-results/model-base --frames 891 [--precision fp32]

BENCHMARKS.md quotes it where a speed target is missed. The forward pass is the one the sampler runs each
step (conditional and unconditional halves in one batch of two, text features cached, nothing padded), on
the engine's own model as `Engine.load` prepares it for `--precision`; one warm-up pass is not profiled.
Printed: the operators by their own (self) CPU time, and the shares of the matrix multiplies, attention
and the convolutions in the pass.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from wyoming_ishowtts.engine import Engine, EngineSettings

MATMUL_OPS = ("aten::addmm", "aten::mm", "aten::bmm", "aten::linear", "aten::matmul", "aten::baddbmm")
ATTENTION_OPS = (
    "aten::_scaled_dot_product_flash_attention_for_cpu",
    "aten::_scaled_dot_product_attention_math",
)
CONVOLUTION_OPS = ("aten::mkldnn_convolution", "aten::_convolution", "aten::convolution", "aten::conv1d")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=891, help="sequence length (reference + generated)")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--rows", type=int, default=15)
    args = parser.parse_args(argv)

    engine = Engine.load(
        EngineSettings(model_dir=args.model_dir, device="cpu", precision=args.precision, warmup=False)
    )
    model, n = engine.model, args.frames
    torch.manual_seed(0)
    x, cond = torch.randn(1, n, 100), torch.randn(1, n, 100)
    text = torch.randint(0, engine.vocab.size, (1, min(150, n - 1)))
    t = torch.tensor([0.5])
    with torch.inference_mode():
        features = model.embed_text(text, torch.tensor([n]))
        model(x, cond, features, t)  # warm-up, not profiled
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model(x, cond, features, t)
    events = prof.key_averages()
    print(f"one guided forward, {n} frames, {engine.dtype}, torch threads {torch.get_num_threads()}")
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows))
    total = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS)
    attention = sum(e.self_cpu_time_total for e in events if e.key in ATTENTION_OPS)
    convolution = sum(e.self_cpu_time_total for e in events if e.key in CONVOLUTION_OPS)
    rest = total - matmul - attention - convolution
    print(
        f"self CPU total {total / 1e6:.3f} s: matrix multiplies {100 * matmul / total:.0f} %, "
        f"attention {100 * attention / total:.0f} %, convolutions {100 * convolution / total:.0f} %, "
        f"the rest {100 * rest / total:.0f} %"
    )


if __name__ == "__main__":
    main()
