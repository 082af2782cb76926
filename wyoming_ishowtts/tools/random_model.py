"""Write a randomly initialized model in upstream's exact file formats.

No weights can be downloaded where this project is tested, so the tests and benchmarks run the real loading
code on files that look exactly like the published ones (same keys, same containers, `base` has the same
shapes), filled with random numbers. Every parameter is random and non-zero: upstream zero-initializes the
adaLN and output layers, and with a zero layer the output would not depend on the input, so an equivalence
test against upstream could pass without testing anything.

    python -m wyoming_ishowtts.tools.random_model --size tiny|base OUT_DIR
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from ..engine.checkpoints import MODEL_INFO_FILE
from ..engine.dit import ARCHITECTURES, DiT, DiTConfig
from ..engine.mel import MelConfig, mel_filterbank
from ..engine.vocoder import Vocos, VocosConfig

SIZES: dict[str, tuple[str, DiTConfig, VocosConfig, int]] = {
    # name -> (architecture label, DiT shape, Vocos shape, vocabulary lines)
    "tiny": (
        "custom",
        DiTConfig(dim=64, depth=2, heads=2, dim_head=32, ff_mult=2, text_dim=32, conv_layers=2),
        VocosConfig(dim=64, intermediate_dim=128, num_layers=2),
        600,
    ),
    "base": ("F5TTS_v1_Base", ARCHITECTURES["F5TTS_v1_Base"], VocosConfig(), 2545),
}

_INITIALS = [
    "b",
    "p",
    "m",
    "f",
    "d",
    "t",
    "n",
    "l",
    "g",
    "k",
    "h",
    "j",
    "q",
    "x",
    "zh",
    "ch",
    "sh",
    "r",
    "z",
    "c",
    "s",
    "y",
    "w",
]
_FINALS = [
    "a",
    "o",
    "e",
    "i",
    "u",
    "v",
    "ai",
    "ei",
    "ui",
    "ao",
    "ou",
    "iu",
    "ie",
    "ve",
    "er",
    "an",
    "en",
    "in",
    "un",
    "vn",
    "ang",
    "eng",
    "ing",
    "ong",
    "ia",
    "iao",
    "ian",
    "iang",
    "iong",
    "ua",
    "uo",
    "uai",
    "uan",
    "uang",
]


def make_vocab(lines: int) -> list[str]:
    """Space first (id 0, also the unknown token), printable ASCII, some Latin letters, then pinyin with tones."""
    tokens = [" "] + [chr(c) for c in range(33, 127)] + [chr(c) for c in range(0xC0, 0x100)]
    tokens += ["，", "。", "！", "？", "、", "：", "；"]
    syllables = [i + f for f in _FINALS for i in ["", *_INITIALS]]
    tokens += [s + str(tone) for s in syllables for tone in range(1, 6)]
    if len(tokens) < lines:
        raise ValueError(f"cannot make a {lines}-line vocabulary")
    return tokens[:lines]


def randomize_(module: nn.Module, generator: torch.Generator) -> None:
    """Fill every parameter with non-zero random values, scaled so activations stay in a sane range."""
    with torch.no_grad():
        for name, param in module.named_parameters():
            if param.ndim >= 2:
                fan_in = param[0].numel()
                std = 1.0 if "text_embed.text_embed" in name else 1.0 / math.sqrt(fan_in)
                if name.endswith(("attn_norm.linear.weight", "norm_out.linear.weight")):
                    std *= 0.5  # modulation: keep (1 + scale) mostly positive
                values = torch.randn(param.shape, generator=generator) * std
            elif name.endswith("gamma") and param.ndim == 1:  # Vocos layer scale: around its init value
                values = param.detach().cpu() * (1 + 0.5 * torch.rand(param.shape, generator=generator))
            elif param.ndim == 1 and "norm" in name and name.endswith("weight"):
                values = 1 + 0.1 * torch.randn(param.shape, generator=generator)
            else:
                values = 0.05 * torch.randn(param.shape, generator=generator)
            values[values == 0] = 1e-3  # a random normal is almost never exactly zero; make it never
            param.copy_(values.to(param.dtype))


def vocos_yaml(cfg: VocosConfig) -> str:
    return (
        "feature_extractor:\n"
        "  class_path: vocos.feature_extractors.MelSpectrogramFeatures\n"
        "  init_args:\n"
        f"    sample_rate: {cfg.sample_rate}\n"
        f"    n_fft: {cfg.n_fft}\n"
        f"    hop_length: {cfg.hop_length}\n"
        f"    n_mels: {cfg.input_channels}\n"
        f"    padding: {cfg.padding}\n\n"
        "backbone:\n"
        "  class_path: vocos.models.VocosBackbone\n"
        "  init_args:\n"
        f"    input_channels: {cfg.input_channels}\n"
        f"    dim: {cfg.dim}\n"
        f"    intermediate_dim: {cfg.intermediate_dim}\n"
        f"    num_layers: {cfg.num_layers}\n\n"
        "head:\n"
        "  class_path: vocos.heads.ISTFTHead\n"
        "  init_args:\n"
        f"    dim: {cfg.dim}\n"
        f"    n_fft: {cfg.n_fft}\n"
        f"    hop_length: {cfg.hop_length}\n"
        f"    padding: {cfg.padding}\n"
    )


def write_random_model(out_dir: Path, size: str = "tiny", seed: int = 0) -> Path:
    label, arch, vocos_cfg, vocab_lines = SIZES[size]
    out_dir.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)

    vocab = make_vocab(vocab_lines)
    # The hub's vocab.txt has CRLF line endings; write the same so the loader is tested on them.
    with open(out_dir / "vocab.txt", "w", encoding="utf-8", newline="\r\n") as f:
        f.writelines(token + "\n" for token in vocab)

    dit_cfg = replace(arch, text_num_embeds=len(vocab))
    dit = DiT(dit_cfg)
    randomize_(dit, generator)
    from safetensors.torch import save_file

    tensors = {f"ema_model.transformer.{k}": v.contiguous() for k, v in dit.state_dict().items()}
    save_file(tensors, str(out_dir / "model.safetensors"))

    vocos = Vocos(vocos_cfg)
    randomize_(vocos, generator)
    state = dict(vocos.state_dict())
    # The published file also holds the analysis front end's buffers (torchaudio MelSpectrogram).
    mel_cfg = MelConfig(
        vocos_cfg.sample_rate, vocos_cfg.n_fft, vocos_cfg.hop_length, vocos_cfg.input_channels
    )
    state["feature_extractor.mel_spec.spectrogram.window"] = torch.hann_window(vocos_cfg.n_fft)
    state["feature_extractor.mel_spec.mel_scale.fb"] = mel_filterbank(mel_cfg)
    (out_dir / "vocos").mkdir(exist_ok=True)
    (out_dir / "vocos" / "config.yaml").write_text(vocos_yaml(vocos_cfg), encoding="utf-8")
    torch.save(state, out_dir / "vocos" / "pytorch_model.bin")

    info = {"architecture": label, "size": size, "seed": seed, "random": True}
    info["dit"] = {k: v for k, v in arch.to_dict().items() if k != "text_num_embeds"}
    (out_dir / MODEL_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_random_model(args.out_dir, args.size, args.seed)
    print(args.out_dir)


if __name__ == "__main__":
    main()
