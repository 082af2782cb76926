"""Loading checkpoints: every way a model folder can be wrong gives one clear error."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import TONE_TRANSCRIPT, RunsCode, expected_samples, make_voice

from wyoming_ishowtts.engine import Engine, EngineSettings, SynthesisOptions
from wyoming_ishowtts.engine.checkpoints import read_dit_state, resolve_model_files
from wyoming_ishowtts.engine.reference import load_audio
from wyoming_ishowtts.errors import ModelLoadError
from wyoming_ishowtts.tools.random_model import write_random_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_model(tmp_path_factory.mktemp("model"), "tiny", seed=7)


def copy_of(model_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    return target


def load(folder: Path) -> Engine:
    return Engine.load(EngineSettings(model_dir=folder, device="cpu", precision="fp32"))


def test_written_files_have_upstream_layout(model_dir: Path) -> None:
    from safetensors.torch import load_file

    keys = set(load_file(str(model_dir / "model.safetensors")))
    assert all(k.startswith("ema_model.transformer.") for k in keys)
    assert "ema_model.transformer.transformer_blocks.0.attn.to_q.weight" in keys
    assert "ema_model.transformer.rotary_embed.inv_freq" in keys
    vocos = torch.load(model_dir / "vocos" / "pytorch_model.bin", weights_only=True)
    assert "head.istft.window" in vocos and "feature_extractor.mel_spec.mel_scale.fb" in vocos
    assert (model_dir / "vocab.txt").read_bytes().startswith(b" \r\n!\r\n")


def test_every_parameter_is_random_and_non_zero(model_dir: Path) -> None:
    engine = load(model_dir)
    for module in (engine.model, engine.vocoder):
        for name, param in module.named_parameters():
            assert bool((param != 0).all()), f"{name} has zeros"
            assert float(param.detach().std()) > 0 or param.numel() == 1, f"{name} is constant"


def test_loads_and_synthesizes(model_dir: Path, tmp_path: Path) -> None:
    """The loaded model speaks: audio exactly as long as upstream's duration rule says, finite, not silent,
    and the same again for the same seed."""
    engine = load(model_dir)
    assert engine.vocab.size == 600
    assert engine.model.cfg.dim == 64
    folder = make_voice(tmp_path, "tone")
    voice = engine.prepare_voice(*load_audio(folder / "reference.wav"), text=TONE_TRANSCRIPT)
    text = "The model that was just loaded says this."
    audio = engine.synthesize_all(voice, text, SynthesisOptions(nfe=2, seed=1))
    assert len(audio) == expected_samples(text)
    assert np.isfinite(audio).all() and float(np.sqrt(np.mean(audio**2))) > 1e-3
    assert np.array_equal(audio, engine.synthesize_all(voice, text, SynthesisOptions(nfe=2, seed=1)))


def test_missing_checkpoint(model_dir: Path, tmp_path: Path) -> None:
    folder = copy_of(model_dir, tmp_path)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="No checkpoint"):
        load(folder)


def test_missing_vocab(model_dir: Path, tmp_path: Path) -> None:
    folder = copy_of(model_dir, tmp_path)
    (folder / "vocab.txt").unlink()
    with pytest.raises(ModelLoadError, match=r"vocab\.txt"):
        load(folder)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not a folder"):
        load(tmp_path / "nope")


def test_truncated_checkpoint(model_dir: Path, tmp_path: Path) -> None:
    folder = copy_of(model_dir, tmp_path)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated or not a checkpoint"):
        load(folder)


def test_truncated_vocoder(model_dir: Path, tmp_path: Path) -> None:
    folder = copy_of(model_dir, tmp_path)
    path = folder / "vocos" / "pytorch_model.bin"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match=r"pytorch_model\.bin"):
        load(folder)


def test_wrong_keys_are_named(model_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    folder = copy_of(model_dir, tmp_path)
    tensors = load_file(str(folder / "model.safetensors"))
    del tensors["ema_model.transformer.proj_out.weight"]
    tensors["ema_model.transformer.surprise.weight"] = torch.ones(3)
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(ModelLoadError) as err:
        load(folder)
    assert "proj_out.weight" in str(err.value) and "surprise.weight" in str(err.value)


def test_wrong_architecture_shapes_are_named(model_dir: Path, tmp_path: Path) -> None:
    folder = copy_of(model_dir, tmp_path)
    (folder / "model.json").write_text('{"architecture": "F5TTS_v1_Base"}')  # says base, holds tiny weights
    with pytest.raises(ModelLoadError, match=r"wrong shapes|missing keys"):
        load(folder)


def test_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ModelLoadError, match="truncated or not a checkpoint"):
        read_dit_state(path)


def test_pt_checkpoint_with_ema_container(model_dir: Path, tmp_path: Path) -> None:
    """The older .pt layout: {"ema_model_state_dict": {"ema_model.transformer.*", "initted", "step"}}."""
    from safetensors.torch import load_file

    folder = copy_of(model_dir, tmp_path)
    tensors = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    tensors["initted"] = torch.tensor(True)
    tensors["step"] = torch.tensor(1200000)
    torch.save({"ema_model_state_dict": tensors}, folder / "model_1200000.pt")
    engine = load(folder)
    reference = load(model_dir)
    for (name, a), (_, b) in zip(
        engine.model.state_dict().items(), reference.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_offline_without_local_copy_says_what_to_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as err:
        resolve_model_files("F5TTS_v1_Base", None, cache_dir=tmp_path)
    message = str(err.value)
    assert "--model-dir" in message and "SWivid/F5-TTS" in message


def test_unknown_model_name() -> None:
    with pytest.raises(ModelLoadError, match="Unknown model"):
        resolve_model_files("NotAModel", None)


def test_pickle_checkpoint_cannot_run_code(tiny_model_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    tensors: dict[str, Any] = dict(load_file(str(folder / "model.safetensors")))
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "code-ran"
    tensors["surprise"] = RunsCode(marker)
    torch.save({"ema_model_state_dict": tensors}, folder / "model_1200000.pt")
    with pytest.raises(ModelLoadError, match=r"model_1200000\.pt"):
        Engine.load(EngineSettings(model_dir=folder, device="cpu", precision="fp32"))
    assert not marker.exists(), "loading the checkpoint ran code"
    # The same file does run code when loaded the unsafe way: the test above is not vacuous.
    torch.load(folder / "model_1200000.pt", weights_only=False)
    assert marker.is_dir()


def test_the_dit_is_built_without_random_weights_and_holds_the_files_own(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """load_dit builds the DiT on the meta device and assigns the checkpoint's tensors: no weight of real
    memory is filled with random numbers first (each torch.nn.init call is watched), the weights are the
    file's, the computed position table is there, and they are the model's own memory: rewriting the
    file in place afterwards (same size, other numbers) changes nothing in the loaded model."""
    from wyoming_ishowtts.engine.dit import sinusoidal_table
    from wyoming_ishowtts.engine.loading import load_dit
    from wyoming_ishowtts.engine.tokenizer import Vocab

    folder = copy_of(model_dir, tmp_path)
    filled: list[tuple[str, tuple[int, ...]]] = []
    for name in ("kaiming_uniform_", "uniform_", "normal_", "trunc_normal_", "xavier_uniform_"):
        original = getattr(torch.nn.init, name)

        def watched(
            tensor: torch.Tensor, *args: Any, _original: Any = original, _name: str = name, **kw: Any
        ):
            if not tensor.is_meta:
                filled.append((_name, tuple(tensor.shape)))
            return _original(tensor, *args, **kw)

        monkeypatch.setattr(torch.nn.init, name, watched)
    files = resolve_model_files("F5TTS_v1_Base", folder)
    model = load_dit(files, Vocab.from_file(files.vocab), torch.device("cpu"), torch.float32)
    assert filled == []
    state = {k: v.clone() for k, v in read_dit_state(files.checkpoint).items()}  # not the file's mapping
    ours = model.state_dict()
    for key, value in state.items():
        if ".attn.to_" in key and key.split(".attn.to_")[1][0] in "qkv":
            continue  # fused below
        torch.testing.assert_close(ours[key], value, rtol=0, atol=0)
    joined = torch.cat([state[f"transformer_blocks.0.attn.to_{p}.weight"] for p in "qkv"])
    torch.testing.assert_close(ours["transformer_blocks.0.attn.to_qkv.weight"], joined, rtol=0, atol=0)
    text = model.text_embed
    torch.testing.assert_close(
        text.freqs_cis, sinusoidal_table(text.text_embed.embedding_dim, text.max_positions), rtol=0, atol=0
    )
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    other = write_random_model(tmp_path / "other", "tiny", seed=8) / "model.safetensors"
    assert other.stat().st_size == files.checkpoint.stat().st_size
    with files.checkpoint.open("r+b") as f:  # in place: the same file, not a new one under its name
        f.write(other.read_bytes())
    assert not torch.equal(read_dit_state(files.checkpoint)["proj_out.weight"], state["proj_out.weight"])
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} changed with the file: the model lives in its mapping"


def test_loading_the_model_imports_no_compiler(model_dir: Path) -> None:
    """A model built on the meta device must not reach torch's Python reference kernels for meta tensors
    (nn.init.normal_, arange): they import torch._dynamo and sympy, seconds of start-up that an eager
    server never needs. Seen in a fresh process, where nothing imported them before."""
    import subprocess
    import sys

    probe = (
        "import sys, torch\n"
        "from pathlib import Path\n"
        "from wyoming_ishowtts.engine import Engine, EngineSettings\n"
        f"Engine.load(EngineSettings(model_dir=Path({str(model_dir)!r}), device='cpu', warmup=False))\n"
        "print(sorted(m for m in ('torch._dynamo', 'sympy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
