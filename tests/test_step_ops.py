"""How many operations one guided sampler step dispatches (ishowtts_dev.bench.profile counts them).

Eager PyTorch pays a kernel launch for each (8-15 µs on a GPU), so for F5TTS_v1_Base's 22 layers the count is
the step's floor on a GPU whatever its matrix work. Counted on random models of the tiny width at two
depths: the difference is what one layer costs, and the base model's count follows from it without running
the base model. The limits are what the step is built to (issue 24): 11 per layer in fp32 (two norms, four
matrix multiplies, one RoPE multiply for q and k together, attention, GELU, two gated residual adds), and
nothing of the modulation, the time embedding or the mask left in the step.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
import torch

from ishowtts_dev.bench.profile import count_operations, step_of
from wyoming_ishowtts.engine.dit import DiT
from wyoming_ishowtts.tools.random_model import SIZES, randomize_

BASE_DEPTH = 22


def _model(depth: int, precision: torch.dtype = torch.float32) -> DiT:
    _, cfg, _, vocab = SIZES["tiny"]
    model = DiT(replace(cfg, text_num_embeds=vocab, depth=depth))
    randomize_(model, torch.Generator().manual_seed(0))
    model = model.eval().requires_grad_(False).fuse_projections()
    return model.to_precision(precision, mixed=True) if precision != torch.float32 else model


def _count(depth: int, precision: torch.dtype = torch.float32) -> Counter[str]:
    model = _model(depth, precision)
    run = step_of(model, 96, model.cfg.text_num_embeds)
    run()  # the first step grows the RoPE table: not a step's work
    return count_operations(run).operations


@pytest.mark.parametrize(
    ("precision", "per_layer", "base_limit"),
    [(torch.float32, 11, 300), (torch.bfloat16, 15, 350)],
)
def test_a_guided_step_launches_few_operations_per_layer(
    precision: torch.dtype, per_layer: int, base_limit: int
) -> None:
    two, three = _count(2, precision), _count(3, precision)
    layer = three - two
    assert sum(layer.values()) <= per_layer, f"one layer costs {dict(layer)}"
    base = sum(two.values()) + (BASE_DEPTH - 2) * sum(layer.values())
    assert base <= base_limit, f"the base model's step would launch {base}: {dict(two)}"
    # What depends only on the step's time is computed once per chunk: no time embedding or modulation
    # matrix multiply (one per layer) in the step, nothing of the sinusoids.
    assert layer["addmm"] == 4 and not {"sin", "cos", "exp", "silu"} & set(two)


def test_guidance_runs_the_input_layer_once_for_both_halves() -> None:
    counted = _count(2)
    assert counted["convolution"] == 2  # the position embedding's two convolutions, over all rows at once
    assert counted["cat"] == 1  # the noisy mel joined to the chunk's context, once
