"""Our engine against upstream f5-tts and vocos on the same random weights, part by part and end to end.

Upstream is the `reference` extra (always installed by script/setup --dev). Each test prints the max abs difference
(`pytest -s` shows them); fp32 must agree to ~1e-4 relative or better.
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from f5_tts.infer import utils_infer  # the reference extra: a hard dependency of the tests
from f5_tts.model import DiT as UpstreamDiT
from f5_tts.model.modules import MelSpec

from wyoming_ishowtts.engine import Engine, EngineSettings, SynthesisOptions
from wyoming_ishowtts.engine.checkpoints import load_strict, read_dit_state, read_vocos_state
from wyoming_ishowtts.engine.dit import DiT, DiTConfig
from wyoming_ishowtts.engine.mel import MelSpectrogram
from wyoming_ishowtts.engine.sampler import draw_noise, sample
from wyoming_ishowtts.engine.tokenizer import Vocab, text_to_tokens
from wyoming_ishowtts.engine.vocoder import Vocos, VocosConfig
from wyoming_ishowtts.tools.random_model import write_random_model

REF_TEXT = "This is the reference transcript for the test voice. "
TWO_CHUNKS = "The first sentence is here, and it keeps going for a while. Then a second sentence follows it."


def report(name: str, ours: torch.Tensor | np.ndarray, theirs: torch.Tensor | np.ndarray) -> float:
    a = torch.as_tensor(np.asarray(ours, dtype=np.float64))
    b = torch.as_tensor(np.asarray(theirs, dtype=np.float64))
    assert a.shape == b.shape, f"{name}: shape {tuple(a.shape)} != {tuple(b.shape)}"
    diff = float((a - b).abs().max())
    scale = float(b.abs().max())
    print(f"\n{name}: max abs diff {diff:.3e} (max abs value {scale:.3e}, relative {diff / scale:.3e})")
    assert scale > 1e-3, f"{name}: reference output is ~zero, the comparison would prove nothing"
    return diff / scale


def tiny_arch(dir_: Path) -> dict[str, Any]:
    import json

    dit = json.loads((dir_ / "model.json").read_text())["dit"]
    return {k: v for k, v in dit.items() if k not in ("mel_dim",)}


def upstream_model(dir_: Path) -> Any:
    arch = tiny_arch(dir_)
    cfg = {
        "dim": arch["dim"],
        "depth": arch["depth"],
        "heads": arch["heads"],
        "dim_head": arch["dim_head"],
        "ff_mult": arch["ff_mult"],
        "text_dim": arch["text_dim"],
        "conv_layers": arch["conv_layers"],
        "text_mask_padding": arch["text_mask_padding"],
        "pe_attn_head": arch["pe_attn_head"],
        "attn_mask_enabled": False,
    }
    model = utils_infer.load_model(
        UpstreamDiT, cfg, str(dir_ / "model.safetensors"), vocab_file=str(dir_ / "vocab.txt"), device="cpu"
    )
    return model.eval()  # upstream's sample() does this itself; a bare transformer call would keep dropout on


def upstream_vocoder(dir_: Path) -> Any:
    return utils_infer.load_vocoder("vocos", is_local=True, local_path=str(dir_ / "vocos"), device="cpu")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_model(tmp_path_factory.mktemp("tiny"), "tiny", seed=1)


@pytest.fixture(scope="module")
def engine(tiny_dir: Path) -> Engine:
    return Engine.load(EngineSettings(model_dir=tiny_dir, device="cpu", precision="fp32", warmup=False))


def voice_clip(seconds: float = 2.0, amplitude: float = 0.05) -> np.ndarray:
    """A quiet (RMS < 0.1) harmonic clip with a little noise: exercises the loudness rule."""
    rng = np.random.default_rng(3)
    t = np.arange(int(seconds * 24000)) / 24000
    wave = np.sin(2 * np.pi * 180 * t) + 0.5 * np.sin(2 * np.pi * 360 * t) + 0.1 * rng.standard_normal(t.size)
    return (amplitude * wave * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))).astype(np.float32)


def test_mel_features_match_torchaudio() -> None:
    wave = torch.from_numpy(voice_clip(1.5, 0.3))[None]
    report("mel", MelSpectrogram()(wave), MelSpec()(wave))
    assert torch.equal(MelSpectrogram()(wave), MelSpec()(wave))


@pytest.fixture(scope="module")
def tiny_v0_dir(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same weights with F5TTS_Base behaviour: RoPE on the first head only, no filler masking."""
    import json
    import shutil

    folder = tmp_path_factory.mktemp("tiny_v0") / "model"
    shutil.copytree(tiny_dir, folder)
    info = json.loads((folder / "model.json").read_text())
    info["dit"].update(text_mask_padding=False, pe_attn_head=1)
    (folder / "model.json").write_text(json.dumps(info))
    return folder


def test_one_dit_forward_tiny_v0(tiny_v0_dir: Path) -> None:
    engine = Engine.load(EngineSettings(model_dir=tiny_v0_dir, device="cpu", precision="fp32", warmup=False))
    assert engine.model.cfg.pe_attn_head == 1 and not engine.model.cfg.text_mask_padding
    test_one_dit_forward_tiny(tiny_v0_dir, engine, label="DiT forward (tiny, F5TTS_Base variant)")


def test_one_dit_forward_tiny(tiny_dir: Path, engine: Engine, label: str = "DiT forward (tiny)") -> None:
    upstream = upstream_model(tiny_dir)
    torch.manual_seed(0)
    n = 90
    x, cond = torch.randn(1, n, 100), torch.randn(1, n, 100)
    text = torch.randint(0, engine.vocab.size, (1, 40))
    t = torch.tensor([0.37])
    with torch.inference_mode():
        theirs = upstream.transformer(x=x, cond=cond, text=text, time=t, cfg_infer=True, cache=False)
        ours = engine.model(x, cond, engine.model.embed_text(text, torch.tensor([n])), t)
    assert report(label, ours, theirs) < 1e-4


def test_one_dit_forward_tiny_real_rope(
    tiny_dir: Path, tiny_v0_dir: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RoPE's real-valued form (what a GPU and torch.compile run; a CPU runs the complex one) against
    upstream, both variants (all heads, first head only)."""
    import dataclasses

    from wyoming_ishowtts.engine.dit import Rope, RotaryEmbedding

    original = RotaryEmbedding._compute

    def real_only(self: RotaryEmbedding, n: int) -> Rope:
        return dataclasses.replace(original(self, n), rotation=None)

    monkeypatch.setattr(RotaryEmbedding, "_compute", real_only)
    engine.model.rotary_embed.buffers_moved()  # drop the cached (complex) table
    try:
        test_one_dit_forward_tiny(tiny_dir, engine, label="DiT forward (tiny, real-valued RoPE)")
        v0 = Engine.load(EngineSettings(model_dir=tiny_v0_dir, device="cpu", precision="fp32", warmup=False))
        test_one_dit_forward_tiny(tiny_v0_dir, v0, label="DiT forward (tiny, F5TTS_Base, real-valued RoPE)")
    finally:
        monkeypatch.undo()
        engine.model.rotary_embed.buffers_moved()


@pytest.mark.slow
def test_one_dit_forward_base(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The real F5TTS_v1_Base shape, loaded by upstream's own F5TTS API from the files our tool writes."""
    from f5_tts.api import F5TTS

    base = write_random_model(tmp_path_factory.mktemp("base"), "base", seed=2)
    upstream = F5TTS(
        model="F5TTS_v1_Base",
        ckpt_file=str(base / "model.safetensors"),
        vocab_file=str(base / "vocab.txt"),
        vocoder_local_path=str(base / "vocos"),
        device="cpu",
    )
    vocab = Vocab.from_file(base / "vocab.txt")
    ours = DiT(DiTConfig(text_num_embeds=vocab.size)).eval()
    load_strict(ours, read_dit_state(base / "model.safetensors"), base / "model.safetensors")
    torch.manual_seed(0)
    n = 48
    x, cond = torch.randn(1, n, 100), torch.randn(1, n, 100)
    text = torch.randint(0, vocab.size, (1, 30))
    t = torch.tensor([0.61])
    with torch.inference_mode():
        upstream.ema_model.eval()
        theirs = upstream.ema_model.transformer(
            x=x, cond=cond, text=text, time=t, cfg_infer=True, cache=False
        )
        mine = ours(x, cond, ours.embed_text(text, torch.tensor([n])), t)
    assert report("DiT forward (base)", mine, theirs) < 1e-4
    del upstream


@pytest.mark.parametrize("steps", [7, 32])
def test_full_sample_same_seed(tiny_dir: Path, engine: Engine, steps: int) -> None:
    upstream = upstream_model(tiny_dir)
    audio = torch.from_numpy(voice_clip())[None]
    text = REF_TEXT + " " + "Hello world, this is a test."
    tokens = text_to_tokens(text)
    duration = 260
    seed = 1234
    with torch.inference_mode():
        theirs, _ = upstream.sample(
            cond=audio,
            text=[tokens],
            duration=duration,
            steps=steps,
            cfg_strength=2.0,
            sway_sampling_coef=-1.0,
            seed=seed,
        )
        cond = engine.mel(audio).transpose(1, 2)
        ids = torch.tensor([engine.vocab.encode(tokens)])
        total = max(max(ids.shape[1], cond.shape[1]) + 1, duration)
        ours = sample(
            engine.model,
            cond,
            torch.tensor([cond.shape[1]]),
            ids,
            torch.tensor([total]),
            draw_noise([total], 100, torch.Generator().manual_seed(seed)),
            nfe=steps,
            cfg_strength=2.0,
            sway=-1.0,
        )
    assert report(f"sample() {steps} steps", ours, theirs) < 1e-4


def test_vocos_decode(tiny_dir: Path, engine: Engine) -> None:
    theirs_model = upstream_vocoder(tiny_dir)
    cfg = VocosConfig.from_yaml(tiny_dir / "vocos" / "config.yaml")
    ours_model = Vocos(cfg).eval()
    load_strict(ours_model, read_vocos_state(tiny_dir / "vocos" / "pytorch_model.bin"), tiny_dir)
    mel = torch.randn(1, 100, 75, generator=torch.Generator().manual_seed(11)) * 2 - 4
    with torch.inference_mode():
        assert report("Vocos decode", ours_model.decode(mel), theirs_model.decode(mel)) < 1e-4


class _InlineExecutor:
    """Upstream joins chunks from a thread pool drawing noise from the global RNG; run them in order so a seed
    means one thing (the same order our engine draws in)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __enter__(self) -> _InlineExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(*args))
        return future


def test_whole_text_to_waveform_two_chunks(
    tiny_dir: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = voice_clip(2.5)
    voice = engine.prepare_voice(clip, 24000, REF_TEXT, trim=False)
    opts = SynthesisOptions(nfe=7, seed=99, first_chunk_max_chars=None, max_chars=70)
    chunks = engine.plan(voice, TWO_CHUNKS, opts)
    assert len(chunks) == 2, chunks
    assert chunks == utils_infer.chunk_text(TWO_CHUNKS, max_chars=70)

    ours = engine.synthesize_all(voice, TWO_CHUNKS, opts)

    monkeypatch.setattr(utils_infer, "ThreadPoolExecutor", _InlineExecutor)
    torch.manual_seed(99)
    upstream = upstream_model(tiny_dir)
    vocoder = upstream_vocoder(tiny_dir)
    torch.manual_seed(99)
    theirs, sr, _ = next(
        utils_infer.infer_batch_process(
            (torch.from_numpy(clip)[None], 24000),
            voice.ref_text,
            chunks,
            upstream,
            vocoder,
            nfe_step=7,
            cfg_strength=2.0,
            sway_sampling_coef=-1,
            speed=1.0,
            device="cpu",
            progress=None,
        )
    )
    assert sr == 24000
    assert report("text -> waveform, two chunks", ours, theirs) < 1e-4


def test_output_depends_on_reference_text_and_seed(engine: Engine) -> None:
    """Random weights with no zero layer: every input must move the output, or the tests above prove nothing."""
    opts = SynthesisOptions(nfe=4, seed=5)
    voice = engine.prepare_voice(voice_clip(2.0, 0.3), 24000, REF_TEXT, trim=False)
    base = engine.synthesize_all(voice, "Hello there.", opts)
    other_voice = engine.prepare_voice(voice_clip(2.0, 0.3)[::-1].copy(), 24000, REF_TEXT, trim=False)
    changed_ref = engine.synthesize_all(other_voice, "Hello there.", opts)
    changed_text = engine.synthesize_all(voice, "Jello where.", opts)
    changed_seed = engine.synthesize_all(voice, "Hello there.", SynthesisOptions(nfe=4, seed=6))
    same = engine.synthesize_all(voice, "Hello there.", opts)
    assert np.array_equal(base, same)
    for name, other in (("reference", changed_ref), ("text", changed_text), ("seed", changed_seed)):
        n = min(len(base), len(other))
        assert np.abs(base[:n] - other[:n]).max() > 1e-3 * np.abs(base).max(), f"output ignores the {name}"
