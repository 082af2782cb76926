"""Log-mel front end with plain `torch.stft`: the features F5-TTS conditions on and Vocos decodes.

Matches torchaudio's `MelSpectrogram(24000, n_fft=1024, hop=256, n_mels=100, power=1, center=True,
norm=None, mel_scale="htk")` followed by `clamp(1e-5).log()`, so no torchaudio is needed at run time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .options import HOP_LENGTH, SAMPLE_RATE


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = SAMPLE_RATE
    n_fft: int = 1024
    hop_length: int = HOP_LENGTH
    n_mels: int = 100


def _hz_to_mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def mel_filterbank(cfg: MelConfig) -> torch.Tensor:
    """Triangular HTK filters, shape (n_fft // 2 + 1, n_mels), unnormalized (norm=None)."""
    n_freqs = cfg.n_fft // 2 + 1
    # float32 throughout, in the same order of operations as torchaudio, so the filters match to the bit.
    freqs = torch.linspace(0.0, cfg.sample_rate // 2, n_freqs, dtype=torch.float32)
    mel_edges = torch.linspace(
        _hz_to_mel(0.0), _hz_to_mel(cfg.sample_rate / 2), cfg.n_mels + 2, dtype=torch.float32
    )
    hz_edges = 700.0 * (torch.pow(10.0, mel_edges / 2595.0) - 1.0)
    widths = hz_edges[1:] - hz_edges[:-1]  # (n_mels + 1,)
    dist = hz_edges[None, :] - freqs[:, None]  # (n_freqs, n_mels + 2)
    rising = -dist[:, :-2] / widths[:-1]
    falling = dist[:, 2:] / widths[1:]
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


class MelSpectrogram(nn.Module):
    """Waveform (B, samples) -> log-mel (B, n_mels, frames), frames = samples // hop + 1."""

    window: torch.Tensor
    filters: torch.Tensor

    def __init__(self, cfg: MelConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or MelConfig()
        self.register_buffer("window", torch.hann_window(self.cfg.n_fft), persistent=False)
        self.register_buffer("filters", mel_filterbank(self.cfg), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        wave = wave.float()
        spec = torch.stft(
            wave,
            n_fft=self.cfg.n_fft,
            hop_length=self.cfg.hop_length,
            win_length=self.cfg.n_fft,
            window=self.window,
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        ).abs()  # (B, n_freqs, frames), power 1
        mel = torch.matmul(spec.transpose(-1, -2), self.filters).transpose(-1, -2)
        return mel.clamp(min=1e-5).log()
