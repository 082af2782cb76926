"""The model's numerics: what half precision rounds and what it keeps, RoPE's two forms, the attention mask,
and the batched vocoder. Each test names the property it guards and fails when that property breaks.

Upstream equality in float32 is tests/test_equivalence.py; here the tiny random model is enough.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import weakref
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from wyoming_ishowtts.engine import dit as dit_module
from wyoming_ishowtts.engine.checkpoints import load_strict, read_dit_state, read_vocos_state
from wyoming_ishowtts.engine.dit import DiT, DiTBlock, DiTConfig, Rope, RotaryEmbedding, apply_rope
from wyoming_ishowtts.engine.sampler import draw_noise, sample
from wyoming_ishowtts.engine.tokenizer import Vocab
from wyoming_ishowtts.engine.vocoder import Vocos, VocosConfig


def snr_db(reference: torch.Tensor, other: torch.Tensor) -> float:
    noise = float((reference.double() - other.double()).pow(2).sum())
    return math.inf if noise == 0 else 10 * math.log10(float(reference.double().pow(2).sum()) / noise)


@pytest.fixture(scope="module")
def vocab_size(tiny_model_dir: Path) -> int:
    return Vocab.from_file(tiny_model_dir / "vocab.txt").size


def tiny_dit(model_dir: Path, vocab_size: int) -> DiT:
    import json

    arch = json.loads((model_dir / "model.json").read_text())["dit"]
    model = DiT(DiTConfig(**{**arch, "text_num_embeds": vocab_size}))
    load_strict(model, read_dit_state(model_dir / "model.safetensors"), model_dir)
    return model.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def fp32_model(tiny_model_dir: Path, vocab_size: int) -> DiT:
    return tiny_dit(tiny_model_dir, vocab_size).fuse_projections()


def inputs(n: int, vocab_size: int, batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n, 100, generator=g)
    cond = torch.randn(batch, n, 100, generator=g)
    text = torch.randint(0, vocab_size, (batch, n // 3), generator=g)
    return x, cond, text


# ----------------------------------------------------------------------------------------- half precision


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("mixed", [False, True])
def test_half_precision_keeps_position_tables_in_float32(
    tiny_model_dir: Path, vocab_size: int, dtype: torch.dtype, mixed: bool
) -> None:
    model = tiny_dit(tiny_model_dir, vocab_size)
    inv_freq = model.rotary_embed.inv_freq.clone()
    text_table = model.text_embed.freqs_cis.clone()
    model.to_precision(dtype, mixed=mixed)
    block = model.transformer_blocks[0]
    assert isinstance(block, DiTBlock)
    assert block.attn.to_q.weight.dtype == dtype  # the cast did happen
    assert model.rotary_embed.inv_freq.dtype == torch.float32
    assert torch.equal(model.rotary_embed.inv_freq, inv_freq)
    assert model.text_embed.freqs_cis.dtype == torch.float32
    assert torch.equal(model.text_embed.freqs_cis, text_table)
    # A plain `.to(dtype)` (what the engine's fp32 fallback undoes with `.float()`) keeps them too.
    model.to(torch.float16).float()
    assert torch.equal(model.rotary_embed.inv_freq, inv_freq)
    rope = model.rotary_embed(50)
    assert rope.cos.dtype == rope.sin.dtype == torch.float32


def test_mixed_precision_keeps_the_stream_norms_and_time_in_float32(fp32_model: DiT, vocab_size: int) -> None:
    import copy

    model = copy.deepcopy(fp32_model).to_precision(torch.bfloat16, mixed=True)
    block = model.transformer_blocks[0]
    assert isinstance(block, DiTBlock)
    assert block.attn.dtype == torch.bfloat16
    assert all(p.dtype == torch.bfloat16 for p in block.ff.parameters())
    assert model.input_embed.proj.weight.dtype == torch.bfloat16
    for kept in (model.time_embed, model.text_embed, block.attn_norm, model.norm_out, model.proj_out):
        assert all(p.dtype == torch.float32 for p in kept.parameters()), kept

    seen: dict[str, list[torch.dtype]] = {"stream": [], "attn": [], "time_mlp": []}
    hooks = [
        block.register_forward_pre_hook(lambda m, a: seen["stream"].append(a[0].dtype)),
        block.attn.register_forward_pre_hook(lambda m, a: seen["attn"].append(a[0].dtype)),
        model.time_embed.time_mlp.register_forward_pre_hook(lambda m, a: seen["time_mlp"].append(a[0].dtype)),
    ]
    x, cond, text = inputs(60, vocab_size)
    with torch.inference_mode():
        mixed = model(x, cond, model.embed_text(text, torch.tensor([60])), torch.tensor([0.37]))
        reference = fp32_model(x, cond, fp32_model.embed_text(text, torch.tensor([60])), torch.tensor([0.37]))
    for hook in hooks:
        hook.remove()
    assert seen == {"stream": [torch.float32], "attn": [torch.bfloat16], "time_mlp": [torch.float32]}
    assert mixed.dtype == torch.float32
    assert snr_db(reference, mixed) > 30


def test_time_enters_the_embedding_in_float32(fp32_model: DiT) -> None:
    """bf16 rounds 1000 * 0.37 by up to 1: radians of phase on the fastest sinusoids. Only the sinusoids'
    values may be rounded to the MLP's dtype."""
    import copy

    model = copy.deepcopy(fp32_model).to_precision(torch.bfloat16, mixed=False)
    captured: list[torch.Tensor] = []
    first = model.time_embed.time_mlp[0]
    hook = first.register_forward_pre_hook(lambda m, a: captured.append(a[0]))
    t = torch.tensor([0.3712345])
    with torch.inference_mode():
        model.time_embed(t)
    hook.remove()
    half = 128
    freqs = torch.exp(torch.arange(half).float() * -(math.log(10000) / (half - 1)))
    angles = 1000 * t[:, None].double() * freqs[None, :].double()
    exact = torch.cat((angles.sin(), angles.cos()), dim=-1)
    (got,) = captured
    assert got.dtype == torch.bfloat16
    # float32 time: within bf16 rounding of the exact sinusoids (2^-8 relative, values in [-1, 1]).
    assert float((got.double() - exact).abs().max()) <= 2**-8


def test_sampler_hands_the_model_float32_time_once_per_chunk(tiny_model_dir: Path, vocab_size: int) -> None:
    """The time grid enters the time embedding in float32, whole: every step's modulation is computed
    once per chunk (`DiT.modulation`), not once per step."""
    model = tiny_dit(tiny_model_dir, vocab_size).to_precision(torch.bfloat16, mixed=False).fuse_projections()
    times: list[tuple[torch.dtype, tuple[int, ...]]] = []
    hook = model.time_embed.register_forward_pre_hook(lambda m, a: times.append((a[0].dtype, a[0].shape)))
    block = model.transformer_blocks[0]
    assert isinstance(block, DiTBlock)
    rows: list[int] = []
    linear_hook = block.attn_norm.linear.register_forward_pre_hook(lambda m, a: rows.append(a[0].shape[0]))
    _, cond, text = inputs(40, vocab_size)
    sample(
        model,
        cond.to(torch.bfloat16),
        torch.tensor([20]),
        text,
        torch.tensor([40]),
        draw_noise([40], 100, torch.Generator().manual_seed(0)),
        nfe=3,
    )
    hook.remove()
    linear_hook.remove()
    assert times == [(torch.float32, (3,))]  # the grid's first three times, once
    assert rows == [3]  # each layer's modulation: one matrix multiply of the three times


def test_one_shared_time_equals_per_item_times(fp32_model: DiT, vocab_size: int) -> None:
    """A (1,) time (the sampler's, folded into LayerNorm's affine) equals the same time given per item, and
    per-item times still modulate each item on its own."""
    x, cond, text = inputs(50, vocab_size, batch=2)
    features = fp32_model.embed_text(text, torch.tensor([50, 50]))
    with torch.inference_mode():
        shared = fp32_model(x, cond, features, torch.tensor([0.3]))
        expanded = fp32_model(x, cond, features, torch.tensor([0.3, 0.3]))
        mixed_times = fp32_model(x, cond, features, torch.tensor([0.3, 0.8]))
        second_alone = fp32_model(
            x[1:],
            cond[1:],
            (features[0][1:], features[1][1:]),
            torch.tensor([0.8]),
        )
    assert shared.shape == (4, 50, 100)
    assert float((shared - expanded).abs().max()) <= 1e-5 * float(shared.abs().max())
    assert float((mixed_times[:1] - shared[:1]).abs().max()) <= 1e-5 * float(shared.abs().max())
    for half in (1, 3):  # the second item's conditional and null outputs
        got, alone = mixed_times[half], second_alone[half // 2]
        assert float((got - alone).abs().max()) <= 1e-5 * float(alone.abs().max())


# ----------------------------------------------------------------------------------------- RoPE


def upstream_style_rope(x: torch.Tensor, n: int, dim_head: int) -> torch.Tensor:
    """RoPE written out the way upstream does it: x * cos + rotate_half(x) * sin, frequencies repeated per pair."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, dim_head, 2).float() / dim_head))
    freqs = (torch.arange(n).float()[:, None] * inv_freq[None, :]).repeat_interleave(2, dim=-1)[:, None, :]
    pairs = x.float().unflatten(-1, (-1, 2))
    rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    return x.float() * freqs.cos() + rotated * freqs.sin()


@pytest.mark.parametrize("form", ["complex", "real"])
def test_rope_forms_compute_upstreams_rotation(form: str) -> None:
    n, dim_head = 300, 64
    rope = RotaryEmbedding(dim_head)(n)
    assert rope.rotation is not None  # on a CPU, eagerly, the table carries the complex form
    if form == "real":
        rope = dataclasses.replace(rope, rotation=None)
    x = torch.randn(2, n, 4, dim_head, generator=torch.Generator().manual_seed(1))
    expected = upstream_style_rope(x, n, dim_head)
    got = apply_rope(x, rope)
    assert float((got - expected).abs().max()) <= 1e-5 * float(expected.abs().max())
    # Half precision in, the same dtype out, computed in float32: one rounding at the end (half a bf16
    # step, 2^-9 relative; 2^-8 allows for a fused multiply-add), where bf16 arithmetic would round
    # each product and the sum, and lose everything to cancellation where the two products nearly cancel.
    x_half = x.to(torch.bfloat16)
    half = apply_rope(x_half, rope)
    assert half.dtype == torch.bfloat16
    exact = upstream_style_rope(x_half, n, dim_head)
    assert bool(((half.float() - exact).abs() <= 2**-8 * exact.abs() + 1e-30).all())


def test_rope_table_is_computed_once_and_sliced() -> None:
    rotary = RotaryEmbedding(64)
    first = rotary(500)
    again = rotary(300)
    assert again.cos.data_ptr() == first.cos.data_ptr() and again.cos.shape[0] == 300
    longer = rotary(1800)  # grows once, to a power of two
    assert longer.cos.data_ptr() != first.cos.data_ptr()
    assert rotary(2048).cos.data_ptr() == rotary(100).cos.data_ptr() == longer.cos.data_ptr()
    assert torch.equal(longer.cos[:500], first.cos) and torch.equal(longer.sin[:500], first.sin)
    rotary.to(torch.bfloat16)  # a cast drops the table (it would follow a device move)
    assert rotary(100).cos.data_ptr() != longer.cos.data_ptr()


def test_an_outgrown_rope_table_stays_allocated() -> None:
    """A CUDA graph recorded at a shorter length reads the table it was recorded with by address, holding
    no reference to it: growing the table for a longer length must not free (and so let another tensor
    reuse) the memory of the one it replaces."""
    rotary = RotaryEmbedding(64)
    address = rotary(300).cos.data_ptr()
    assert rotary._table is not None
    table = weakref.ref(rotary._table.cos)  # the whole table the returned views slice
    rotary(5000)  # grows
    gc.collect()
    assert table() is not None and table().data_ptr() == address  # type: ignore[union-attr]
    values = rotary(5000).cos[:300].clone()
    torch.testing.assert_close(table()[:300], values, rtol=0, atol=0)  # type: ignore[index]


def test_real_rope_dit_forward_equals_complex(fp32_model: DiT, vocab_size: int, monkeypatch: Any) -> None:
    """The real form is what a GPU and torch.compile run: the same model output as the CPU's complex form."""
    x, cond, text = inputs(90, vocab_size)
    args = (x, cond, fp32_model.embed_text(text, torch.tensor([90])), torch.tensor([0.6]))
    with torch.inference_mode():
        complex_out = fp32_model(*args)
        original = RotaryEmbedding._compute

        def real_only(self: RotaryEmbedding, n: int) -> Rope:
            return dataclasses.replace(original(self, n), rotation=None)

        monkeypatch.setattr(RotaryEmbedding, "_compute", real_only)
        fp32_model.rotary_embed.buffers_moved()
        try:
            real_out = fp32_model(*args)
        finally:
            monkeypatch.undo()
            fp32_model.rotary_embed.buffers_moved()
    assert float((real_out - complex_out).abs().max()) <= 1e-5 * float(complex_out.abs().max())


# ----------------------------------------------------------------------------------------- attention mask


class SdpaSpy:
    def __init__(self) -> None:
        self.masks: list[torch.Tensor | None] = []
        self.original = F.scaled_dot_product_attention

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        self.masks.append(kwargs.get("attn_mask"))
        return self.original(*args, **kwargs)


def _sample_batch(model: DiT, vocab_size: int, durations: list[int], steps: int = 2) -> torch.Tensor:
    _, cond, text = inputs(max(durations), vocab_size, batch=len(durations))
    return sample(
        model,
        cond,
        torch.tensor([10] * len(durations)),
        text[:, :8],
        torch.tensor(durations),
        draw_noise(durations, 100, torch.Generator().manual_seed(5)),
        nfe=steps,
    )


def test_padded_batch_builds_one_float_mask_per_chunk(
    fp32_model: DiT, vocab_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = SdpaSpy()
    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    builds: list[int] = []
    original_build = dit_module.AttentionMask.build.__func__  # type: ignore[attr-defined]

    def counting(cls: Any, valid: torch.Tensor, dtype: torch.dtype) -> Any:
        builds.append(1)
        return original_build(cls, valid, dtype)

    monkeypatch.setattr(dit_module.AttentionMask, "build", classmethod(counting))
    steps = 3
    _sample_batch(fp32_model, vocab_size, [40, 28], steps=steps)
    depth = fp32_model.cfg.depth
    assert len(spy.masks) == steps * depth and len(builds) == 1
    first = spy.masks[0]
    assert first is not None and first.dtype == torch.float32  # additive, not boolean
    assert all(m is first for m in spy.masks)  # the very same tensor in every layer and step
    assert first.shape == (4, 1, 1, 40)  # conditional and null halves of 2 items
    for row in (1, 3):  # the shorter item, in each half
        assert torch.isinf(first[row, 0, 0, 28:]).all() and (first[row, 0, 0, :28] == 0).all()
    assert (first[::2] == 0).all()


@pytest.mark.parametrize("durations", [[40], [40, 40]])
def test_nothing_padded_means_no_mask(
    fp32_model: DiT, vocab_size: int, monkeypatch: pytest.MonkeyPatch, durations: list[int]
) -> None:
    spy = SdpaSpy()
    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    _sample_batch(fp32_model, vocab_size, durations)
    assert spy.masks and all(m is None for m in spy.masks)


def test_equal_lengths_unmasked_equal_each_alone(fp32_model: DiT, vocab_size: int) -> None:
    _, cond, text = inputs(40, vocab_size, batch=2)
    noise = draw_noise([40, 40], 100, torch.Generator().manual_seed(5))
    both = sample(fp32_model, cond, torch.tensor([10, 14]), text, torch.tensor([40, 40]), noise, nfe=2)
    for i in range(2):
        alone = sample(
            fp32_model,
            cond[i : i + 1],
            torch.tensor([[10, 14][i]]),
            text[i : i + 1],
            torch.tensor([40]),
            noise[i : i + 1],
            nfe=2,
        )
        assert float((both[i] - alone[0]).abs().max()) <= 1e-5 * float(alone.abs().max())


# ----------------------------------------------------------------------------------------- vocoder


@pytest.fixture(scope="module")
def vocoder(tiny_model_dir: Path) -> Vocos:
    folder = tiny_model_dir / "vocos"
    model = Vocos(VocosConfig.from_yaml(folder / "config.yaml")).eval()
    load_strict(model, read_vocos_state(folder / "pytorch_model.bin"), folder)
    return model


def test_batched_vocoding_equals_each_alone(vocoder: Vocos) -> None:
    g = torch.Generator().manual_seed(0)
    mels = [torch.randn(100, n, generator=g) * 2 - 4 for n in (75, 40, 120, 41)]
    waves = vocoder.decode_batch(mels)
    assert len(waves) == len(mels)
    for mel, wave in zip(mels, waves, strict=True):
        alone = vocoder.decode(mel[None])[0]
        assert wave.shape == alone.shape == ((mel.shape[1] - 1) * 256,)
        # The end of each item too: padding masked before every convolution, the ISTFT per item.
        assert float((wave - alone).abs().max()) <= 1e-5 * float(alone.abs().max())


def test_batched_vocoding_runs_the_network_once(vocoder: Vocos, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, ...]] = []
    hook = vocoder.backbone.register_forward_pre_hook(lambda m, a: calls.append(tuple(a[0].shape)))
    vocoder.decode_batch([torch.zeros(100, 30), torch.zeros(100, 50), torch.zeros(100, 20)])
    hook.remove()
    assert calls == [(3, 100, 50)]


# ----------------------------------------------------------------------------------------- the engine


@pytest.fixture(scope="module")
def fp32_engine(tiny_model_dir: Path) -> Any:
    from wyoming_ishowtts.engine import Engine, EngineSettings

    return Engine.load(EngineSettings(model_dir=tiny_model_dir, device="cpu", precision="fp32", nfe=2))


def test_engine_vocodes_a_batch_in_one_pass(fp32_engine: Any) -> None:
    from wyoming_ishowtts.engine import SynthesisOptions
    from wyoming_ishowtts.engine.voice import tone_clip

    engine = fp32_engine
    voices = [
        engine.prepare_voice(tone_clip(2.0, pitch=200.0), 24000, "Hello world.", trim=False),
        engine.prepare_voice(tone_clip(3.0, pitch=150.0, level=0.02), 24000, "A quiet voice.", trim=False),
    ]
    opts = SynthesisOptions(seed=3)
    texts = ["The first request speaks here.", "A second one, longer than the first by far."]

    def first_jobs() -> list[Any]:
        jobs = [engine.begin(v, t, opts).next_job() for v, t in zip(voices, texts, strict=True)]
        assert all(job is not None for job in jobs)
        return jobs

    alone = [engine.run_batch([job])[0] for job in first_jobs()]

    passes: list[tuple[int, ...]] = []
    hook = engine.vocoder.backbone.register_forward_pre_hook(lambda m, a: passes.append(tuple(a[0].shape)))
    try:
        together = engine.run_batch(first_jobs())
    finally:
        hook.remove()
    assert len(passes) == 1 and passes[0][0] == 2  # one vocoder pass for the batch
    for (a,), (b,) in zip(alone, together, strict=True):
        assert a.shape == b.shape and float(abs(a - b).max()) <= 1e-4 * float(abs(a).max())


@pytest.mark.parametrize(("precision", "stream"), [("bf16", torch.float32), ("fp16", torch.float16)])
def test_engine_half_precision_layout(tiny_model_dir: Path, precision: str, stream: torch.dtype) -> None:
    """bf16 runs mixed (float32 stream), fp16 whole, as upstream; a voice's mel is float32 either way."""
    from wyoming_ishowtts.engine import Engine, EngineSettings
    from wyoming_ishowtts.engine.voice import tone_clip

    engine = Engine.load(
        EngineSettings(model_dir=tiny_model_dir, device="cpu", precision=precision, warmup=False)
    )
    block = engine.model.transformer_blocks[0]
    assert block.attn.dtype == engine.dtype != torch.float32
    assert engine.model.stream_dtype == stream
    assert engine.model.rotary_embed.inv_freq.dtype == torch.float32
    voice = engine.prepare_voice(tone_clip(2.0), 24000, "Hello world.", trim=False)
    assert voice.mel.dtype == torch.float32
