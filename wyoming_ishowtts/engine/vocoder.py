"""Vocos mel vocoder (charactr/vocos-mel-24khz), decode path only: ConvNeXt backbone + inverse-STFT head.

Parameter names follow the published `pytorch_model.bin` (`backbone.convnext.0.dwconv.weight`, `head.out.weight`,
...). The checkpoint also carries the analysis front end's buffers (`feature_extractor.*`), which decoding never
uses; the loader checks and drops them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from .options import HOP_LENGTH, SAMPLE_RATE


@dataclass(frozen=True)
class VocosConfig:
    input_channels: int = 100
    dim: int = 512
    intermediate_dim: int = 1536
    num_layers: int = 8
    n_fft: int = 1024
    hop_length: int = HOP_LENGTH
    padding: str = "center"
    sample_rate: int = SAMPLE_RATE

    @classmethod
    def from_yaml(cls, path: Path) -> VocosConfig:
        """Read the hub's `config.yaml` (class paths with init_args); only the mel/ISTFT variant is supported."""
        raw: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
        try:
            fe, bb, head = (raw[k] for k in ("feature_extractor", "backbone", "head"))
            if not str(head["class_path"]).endswith("ISTFTHead") or not str(bb["class_path"]).endswith(
                "VocosBackbone"
            ):
                raise ValueError(f"unsupported vocoder classes {bb['class_path']}, {head['class_path']}")
            if bb["init_args"].get("adanorm_num_embeddings"):
                raise ValueError("conditional (adanorm) Vocos backbones are not supported")
            return cls(
                input_channels=int(bb["init_args"]["input_channels"]),
                dim=int(bb["init_args"]["dim"]),
                intermediate_dim=int(bb["init_args"]["intermediate_dim"]),
                num_layers=int(bb["init_args"]["num_layers"]),
                n_fft=int(head["init_args"]["n_fft"]),
                hop_length=int(head["init_args"]["hop_length"]),
                padding=str(head["init_args"].get("padding", "same")),
                sample_rate=int(fe["init_args"].get("sample_rate", SAMPLE_RATE)),
            )
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"{path}: not a Vocos config ({err!r})") from err


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, hidden: int, layer_scale: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, hidden)
        self.pwconv2 = nn.Linear(hidden, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        h = self.dwconv(x).transpose(1, 2)
        h = self.gamma * self.pwconv2(F.gelu(self.pwconv1(self.norm(h))))
        return x + h.transpose(1, 2)


class Backbone(nn.Module):
    def __init__(self, cfg: VocosConfig) -> None:
        super().__init__()
        self.embed = nn.Conv1d(cfg.input_channels, cfg.dim, kernel_size=7, padding=3)
        self.norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.convnext = nn.ModuleList(
            [ConvNeXtBlock(cfg.dim, cfg.intermediate_dim, 1 / cfg.num_layers) for _ in range(cfg.num_layers)]
        )
        self.final_layer_norm = nn.LayerNorm(cfg.dim, eps=1e-6)

    def forward(self, mel: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
        """(B, mel, T) -> (B, T, C). padding: (B, 1, T) True past each item's end, or None. Padding frames are
        zeroed before every convolution, so each item sees the zeros its own unpadded decode would see."""
        x = self.norm(self.embed(mel).transpose(1, 2)).transpose(1, 2)
        for block in self.convnext:
            x = block(x if padding is None else x.masked_fill(padding, 0.0))
        return self.final_layer_norm(x.transpose(1, 2))


class ISTFT(nn.Module):
    window: torch.Tensor

    def __init__(self, cfg: VocosConfig) -> None:
        super().__init__()
        if cfg.padding != "center":
            raise ValueError("only the 'center' ISTFT padding of the published 24 kHz model is supported")
        self.n_fft, self.hop = cfg.n_fft, cfg.hop_length
        self.register_buffer("window", torch.hann_window(cfg.n_fft))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:  # complex (B, n_fft/2+1, T) -> (B, (T-1)*hop)
        return torch.istft(spec, self.n_fft, self.hop, self.n_fft, self.window.float(), center=True)


class ISTFTHead(nn.Module):
    def __init__(self, cfg: VocosConfig) -> None:
        super().__init__()
        self.out = nn.Linear(cfg.dim, cfg.n_fft + 2)
        self.istft = ISTFT(cfg)

    def spectrum(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> complex (B, n_fft/2+1, T), float32 even for a half-precision backbone (complex half
        is poorly supported)."""
        mag, phase = self.out(x).transpose(1, 2).float().chunk(2, dim=1)
        mag = torch.exp(mag).clip(max=1e2)  # the published guard against runaway magnitudes
        return mag * (torch.cos(phase) + 1j * torch.sin(phase))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.istft(self.spectrum(x))


class Vocos(nn.Module):
    def __init__(self, cfg: VocosConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg)
        self.head = ISTFTHead(cfg)

    @torch.inference_mode()
    def decode(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, 100, T) log-mel -> waveform (B, (T - 1) * 256) float32.

        The backbone runs in the module's dtype (float32 as published; ishowtts_dev.precision measures half);
        the ISTFT always in float32."""
        return self.head(self.backbone(mel.to(self.backbone.embed.weight.dtype)))

    @torch.inference_mode()
    def decode_batch(self, mels: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Several mels (each (100, T_i), any lengths) in one pass -> their waveforms ((T_i - 1) * 256 each).

        The network runs once on the zero-padded batch, with the padding masked before every convolution,
        so each wave equals `decode` of its own mel (to float rounding). The inverse STFT runs per item on
        its own frames: its overlap-add normalization at the end of an item would otherwise count the
        padding's windows."""
        if len(mels) == 1:
            return [self.decode(mels[0][None])[0]]
        lengths = [int(m.shape[-1]) for m in mels]
        batch = torch.nn.utils.rnn.pad_sequence([m.transpose(0, 1) for m in mels], batch_first=True)
        frames = torch.arange(batch.shape[1], device=batch.device)
        padding = (frames[None, :] >= torch.tensor(lengths, device=batch.device)[:, None])[:, None, :]
        hidden = self.backbone(batch.transpose(1, 2).to(self.backbone.embed.weight.dtype), padding)
        spectrum = self.head.spectrum(hidden)
        return [self.head.istft(spectrum[i : i + 1, :, :n])[0] for i, n in enumerate(lengths)]
