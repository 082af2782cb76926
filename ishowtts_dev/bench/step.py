"""One sampler step, ours against upstream's, interleaved in one process on the same weights.

    python -m ishowtts_dev.bench.step --model-dir bench-results/model-base --frames 891,1566

The end-to-end benchmark runs upstream's process and then our server, minutes apart; on a shared machine
whose speed drifts over that time, their ratio drifts with it. Here the two models take turns, forward
after forward, so drift hits both alike and the ratio isolates what one step costs: one classifier-free
guided forward pass (conditional and unconditional in one batch of two), text features cached, as both
samplers run it: upstream's transformer call, and our `sampler.guided_step` (which adds the guidance and the
Euler update) on what our sampler prepares once per chunk. Needs the `reference` extra (upstream f5-tts).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from wyoming_ishowtts.engine.checkpoints import (
    dit_config_for,
    load_strict,
    read_dit_state,
    resolve_model_files,
)
from wyoming_ishowtts.engine.dit import DiT
from wyoming_ishowtts.engine.options import DEFAULT_MODEL
from wyoming_ishowtts.engine.sampler import ChunkInputs, guided_step
from wyoming_ishowtts.engine.tokenizer import Vocab

from .measure import median


def _models(model_dir: Path) -> tuple[DiT, Any, int]:
    files = resolve_model_files(DEFAULT_MODEL, model_dir)
    vocab = Vocab.from_file(files.vocab)
    ours = DiT(dit_config_for(files, vocab.size))
    load_strict(ours, read_dit_state(files.checkpoint), files.checkpoint)
    ours = ours.eval().requires_grad_(False).fuse_projections()
    return ours, upstream_transformer(model_dir), vocab.size


def upstream_transformer(model_dir: Path, device: str = "cpu") -> Any:
    """Upstream f5-tts's DiT on the same weights, as its `load_model` prepares it for `device` (fp16 on a
    CUDA GPU that has it, as upstream runs)."""
    from f5_tts.infer import utils_infer
    from f5_tts.model import DiT as UpstreamDiT

    files = resolve_model_files(DEFAULT_MODEL, model_dir)
    info = json.loads((model_dir / "model.json").read_text())["dit"]
    keys = ("dim", "depth", "heads", "dim_head", "ff_mult", "text_dim", "conv_layers")
    cfg = {k: info[k] for k in keys} | {
        "text_mask_padding": info["text_mask_padding"],
        "pe_attn_head": info["pe_attn_head"],
        "attn_mask_enabled": False,
    }
    upstream = utils_infer.load_model(
        UpstreamDiT, cfg, str(files.checkpoint), vocab_file=str(files.vocab), device=device
    ).eval()
    return upstream.transformer


def measure(
    model_dir: Path, frames: list[int], repeats: int, compile_ours: bool = False, text_tokens: int = 150
) -> list[dict[str, Any]]:
    ours, theirs, vocab_size = _models(model_dir)
    # As the engine does with --compile (and without --length-bucket): dynamic shapes, the step only.
    step = torch.compile(guided_step, dynamic=True) if compile_ours else guided_step
    t = torch.tensor([0.5])
    rows = []
    for n in frames:
        torch.manual_seed(n)
        x, cond = torch.randn(1, n, 100), torch.randn(1, n, 100)
        text = torch.randint(0, vocab_size, (1, min(text_tokens, n - 1)))
        with torch.inference_mode():
            features = ours.embed_text(text, torch.tensor([n]))
            # Ours as its sampler runs a step: what depends on the chunk only (the input layer's context,
            # every layer's modulation at the step's time) is made once per chunk, before the steps.
            chunk = ChunkInputs(ours.context(cond, features), None, 2.0, guided=True)
            modulation = ours.modulation(t)[0]
            theirs.clear_cache()

            def run_ours(x: torch.Tensor = x, chunk: Any = chunk, modulation: Any = modulation) -> None:
                step(ours, x, chunk, modulation, t[0])

            def run_theirs(x: torch.Tensor = x, cond: torch.Tensor = cond, text: torch.Tensor = text) -> None:
                theirs(x=x, cond=cond, text=text, time=t, cfg_infer=True, cache=True)

            run_ours()  # warm-up, and upstream fills its text cache
            run_theirs()
            times: dict[str, list[float]] = {"ours": [], "upstream": []}
            for i in range(repeats):
                order = [("ours", run_ours), ("upstream", run_theirs)]
                for name, fn in order if i % 2 == 0 else order[::-1]:
                    started = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - started)
        ours_s, upstream_s = median(times["ours"]), median(times["upstream"])
        row: dict[str, Any] = {
            "frames": n,
            "ours_s": ours_s,
            "upstream_s": upstream_s,
            "ratio": ours_s / upstream_s,
            "runs": times,
        }
        rows.append(row)
        print(
            f"{n:>6} frames: ours {row['ours_s']:.3f} s, upstream {row['upstream_s']:.3f} s per step "
            f"(median of {repeats}): ratio {row['ratio']:.3f}",
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--frames", default="891,1566", help="sequence lengths (reference + generated)")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--compile", action="store_true", help="torch.compile our step (as --compile does)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = measure(args.model_dir, [int(f) for f in args.frames.split(",")], args.repeats, args.compile)
    if args.out:
        report = {"torch_threads": torch.get_num_threads(), "compiled": args.compile, "rows": rows}
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
