"""The F5-TTS diffusion transformer (DiT), inference only, in one file.

Module and parameter names follow upstream's checkpoints key for key (`transformer_blocks.3.attn.to_q.weight`,
`ff.ff.0.0.weight`, ...), so published weights load with a strict `load_state_dict` and no renaming table.

Shapes: B batch, N mel frames (reference + generated), D model width, T text width (text_dim), H heads.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class DiTConfig:
    dim: int = 1024
    depth: int = 22
    heads: int = 16
    dim_head: int = 64
    ff_mult: int = 2
    text_dim: int = 512
    conv_layers: int = 4
    mel_dim: int = 100
    text_num_embeds: int = 2545  # vocabulary size; the embedding table has one more row (id 0 = filler)
    text_mask_padding: bool = True  # v1: zero filler positions between ConvNeXt blocks
    pe_attn_head: int | None = None  # v0 F5TTS_Base: RoPE on the first head only

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


ARCHITECTURES: dict[str, DiTConfig] = {
    "F5TTS_v1_Base": DiTConfig(),
    "F5TTS_Base": DiTConfig(text_mask_padding=False, pe_attn_head=1),
}


def sinusoidal_table(dim: int, length: int, theta: float = 10000.0) -> torch.Tensor:
    """Absolute positions for the text encoder, (length, dim): [cos(p*f_0..), sin(p*f_0..)]."""
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
    angles = torch.outer(torch.arange(length, dtype=torch.float32), freqs)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class TimestepEmbedding(nn.Module):
    """Flow time t in [0, 1] -> (B, D): 256 sinusoids of 1000*t, then an MLP."""

    def __init__(self, dim: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.time_mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.freq_dim // 2
        scale = math.log(10000) / (half - 1)
        freqs = torch.exp(torch.arange(half, device=t.device).float() * -scale)
        angles = 1000 * t.unsqueeze(1) * freqs.unsqueeze(0)
        hidden = torch.cat((angles.sin(), angles.cos()), dim=-1).to(t.dtype)
        return self.time_mlp(hidden)


class GRN(nn.Module):
    """Global response normalization (ConvNeXt-V2), over the sequence axis."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """valid (B, N): in a batch, an item's norm must not include the padding past its own length."""
        gx = torch.norm(x if valid is None else x * valid[..., None], p=2, dim=1, keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class ConvNeXtV2Block(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, hidden)
        self.grn = GRN(hidden)
        self.pwconv2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:  # (B, N, T)
        h = self.dwconv(x.transpose(1, 2)).transpose(1, 2)
        h = self.pwconv2(self.grn(F.gelu(self.pwconv1(self.norm(h))), valid))
        return x + h


class TextEmbedding(nn.Module):
    """Token ids -> per-frame text features (B, N, T). Run once per request, not once per sampler step."""

    max_positions = 8192
    freqs_cis: torch.Tensor

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.mask_padding = cfg.text_mask_padding
        self.text_embed = nn.Embedding(cfg.text_num_embeds + 1, cfg.text_dim)
        self.register_buffer(
            "freqs_cis", sinusoidal_table(cfg.text_dim, self.max_positions), persistent=False
        )
        self.text_blocks = nn.Sequential(
            *[ConvNeXtV2Block(cfg.text_dim, cfg.text_dim * 2) for _ in range(cfg.conv_layers)]
        )

    def forward(self, ids: torch.Tensor, seq_lens: torch.Tensor, drop_text: bool) -> torch.Tensor:
        """ids: (B, Nt) vocabulary ids with -1 as batch padding; seq_lens: (B,) mel frames per item."""
        n = int(seq_lens.max())
        ids = ids[:, :n] + 1  # 0 becomes the filler id; text longer than the audio is cut
        ids = F.pad(ids, (0, n - ids.shape[1]), value=0)
        valid = torch.arange(n, device=ids.device)[None, :] < seq_lens[:, None]  # (B, N)
        ids = ids.masked_fill(~valid, 0)
        filler = ids == 0  # computed before dropping the text: the null branch keeps the real layout
        if drop_text:
            ids = torch.zeros_like(ids)
        x = self.text_embed(ids).masked_fill(~valid[..., None], 0.0)
        x = x + self.freqs_cis[:n] * valid[..., None].to(x.dtype)
        # v1 zeroes filler positions between blocks. v0 does not, but a batch's padding past an item's own
        # length must still stay zero, or it would leak into that item through the convolutions and GRN.
        hidden = filler if self.mask_padding else ~valid
        ragged = (
            None if bool(valid.all()) else valid
        )  # a single item (or equal lengths) takes upstream's path
        x = x.masked_fill(hidden[..., None], 0.0)
        for block in self.text_blocks:
            x = block(x, ragged).masked_fill(hidden[..., None], 0.0)
        return x


class ConvPositionEmbedding(nn.Module):
    """Two grouped 1-D convolutions over time give each frame a sense of its neighbours."""

    def __init__(self, dim: int, kernel: int = 31, groups: int = 16) -> None:
        super().__init__()
        self.conv1d = nn.Sequential(
            nn.Conv1d(dim, dim, kernel, groups=groups, padding=kernel // 2),
            nn.Mish(),
            nn.Conv1d(dim, dim, kernel, groups=groups, padding=kernel // 2),
            nn.Mish(),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:  # (B, N, D)
        h = x.transpose(1, 2)
        if mask is None:
            h = self.conv1d(h)
        else:  # padding frames stay zero so they cannot leak into a shorter item of the batch
            keep = mask[:, None, :]
            h = h.masked_fill(~keep, 0.0)
            for layer in self.conv1d:
                h = layer(h)
                if isinstance(layer, nn.Conv1d):
                    h = h.masked_fill(~keep, 0.0)
        return h.transpose(1, 2)


class InputEmbedding(nn.Module):
    """[noisy mel, reference mel, text] -> D, plus the convolutional position embedding."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.proj = nn.Linear(cfg.mel_dim * 2 + cfg.text_dim, cfg.dim)
        self.conv_pos_embed = ConvPositionEmbedding(cfg.dim)

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor, text: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        x = self.proj(torch.cat((x, cond, text), dim=-1))
        return self.conv_pos_embed(x, mask) + x


class RotaryEmbedding(nn.Module):
    """GPT-J style RoPE (adjacent pairs rotate together), base 10000; `inv_freq` is saved in checkpoints."""

    inv_freq: torch.Tensor

    def __init__(self, dim_head: int) -> None:
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, dim_head, 2).float() / dim_head)))

    def forward(self, n: int) -> torch.Tensor:
        """Unit complex rotations (N, 1, dim_head / 2): one per position and pair."""
        angles = torch.arange(n, device=self.inv_freq.device).float()[:, None] * self.inv_freq[None, :]
        return torch.polar(torch.ones_like(angles), angles)[:, None, :]


def apply_rope(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """x: (B, N, H, dh) with (x[2i], x[2i+1]) as one complex number, rotated in float32 like upstream.

    One complex multiply computes upstream's x*cos + rotate_half(x)*sin with the same products, without
    materializing the rotated copy; it was a quarter of a CPU forward pass.
    """
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)).contiguous())
    return torch.view_as_real(pairs * rotation).flatten(-2).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        inner = cfg.heads * cfg.dim_head
        self.heads = cfg.heads
        self.rope_heads = cfg.pe_attn_head
        self.to_q = nn.Linear(cfg.dim, inner)
        self.to_k = nn.Linear(cfg.dim, inner)
        self.to_v = nn.Linear(cfg.dim, inner)
        self.to_out = nn.ModuleList([nn.Linear(inner, cfg.dim)])
        self.to_qkv: nn.Linear | None = None

    def fuse_qkv(self) -> None:
        """Replace the three projections by one (same weights, one matrix multiply instead of three:
        measured ~15 % faster for these projections on CPU). Done after loading, which uses upstream's names."""
        weight = torch.cat([self.to_q.weight, self.to_k.weight, self.to_v.weight])
        bias = torch.cat([self.to_q.bias, self.to_k.bias, self.to_v.bias])
        fused = nn.Linear(weight.shape[1], weight.shape[0], device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            fused.weight.copy_(weight)
            fused.bias.copy_(bias)
        self.to_qkv = fused.requires_grad_(False)
        del self.to_q, self.to_k, self.to_v

    def forward(self, x: torch.Tensor, rope: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, _ = x.shape
        if self.to_qkv is not None:
            q, k, v = self.to_qkv(x).view(b, n, 3, self.heads, -1).unbind(dim=2)
        else:
            q, k, v = (proj(x).view(b, n, self.heads, -1) for proj in (self.to_q, self.to_k, self.to_v))
        if self.rope_heads is None:
            q, k = apply_rope(q, rope), apply_rope(k, rope)
        else:
            r = self.rope_heads
            q = torch.cat((apply_rope(q[:, :, :r], rope), q[:, :, r:]), dim=2)
            k = torch.cat((apply_rope(k[:, :, :r], rope), k[:, :, r:]), dim=2)
        # Padding frames of a batched request are hidden as keys, so a batched item equals its single run.
        attn_mask = None if mask is None else mask[:, None, None, :]
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=attn_mask
        )
        out = self.to_out[0](out.transpose(1, 2).reshape(b, n, -1))
        return out if mask is None else out.masked_fill(~mask[..., None], 0.0)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int) -> None:
        super().__init__()
        inner = dim * mult
        # Index 1 is upstream's (inactive) dropout slot, kept so the weight names line up.
        self.ff = nn.Sequential(
            nn.Sequential(nn.Linear(dim, inner), nn.GELU(approximate="tanh")),
            nn.Identity(),
            nn.Linear(inner, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ff(x)


class AdaLayerNorm(nn.Module):
    """Time-conditioned LayerNorm: one Linear gives shift/scale/gate for attention and for the MLP."""

    def __init__(self, dim: int, chunks: int) -> None:
        super().__init__()
        self.chunks = chunks
        self.linear = nn.Linear(dim, dim * chunks)

    def forward(self, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(c[:, None, :] for c in self.linear(F.silu(t)).chunk(self.chunks, dim=1))


def _norm(x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), eps=1e-6)


class DiTBlock(nn.Module):
    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.attn_norm = AdaLayerNorm(cfg.dim, 6)
        self.attn = Attention(cfg)
        self.ff = FeedForward(cfg.dim, cfg.ff_mult)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        rope: torch.Tensor,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = self.attn_norm(t)
        x = x + gate_a * self.attn(_norm(x) * (1 + scale_a) + shift_a, rope, mask)
        return x + gate_f * self.ff(_norm(x) * (1 + scale_f) + shift_f)


class DiT(nn.Module):
    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.time_embed = TimestepEmbedding(cfg.dim)
        self.text_embed = TextEmbedding(cfg)
        self.input_embed = InputEmbedding(cfg)
        self.rotary_embed = RotaryEmbedding(cfg.dim_head)
        self.transformer_blocks = nn.ModuleList([DiTBlock(cfg) for _ in range(cfg.depth)])
        self.norm_out = AdaLayerNorm(cfg.dim, 2)
        self.proj_out = nn.Linear(cfg.dim, cfg.mel_dim)

    def fuse_projections(self) -> DiT:
        """Inference layout: fused attention projections. Call after loading the checkpoint."""
        for block in self.transformer_blocks:
            assert isinstance(block, DiTBlock)
            block.attn.fuse_qkv()
        return self

    def embed_text(self, ids: torch.Tensor, seq_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(conditional, null) text features, each (B, N, T); constant across sampler steps."""
        return self.text_embed(ids, seq_lens, drop_text=False), self.text_embed(ids, seq_lens, drop_text=True)

    def forward(
        self,
        x: torch.Tensor,
        cond: torch.Tensor,
        text: tuple[torch.Tensor, torch.Tensor | None],
        t: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the flow. x, cond: (B, N, mel); t: (B,). With a null text, returns (2B, N, mel):
        the conditional half, then the unconditional half (no reference audio, no text), in one pass."""
        text_cond, text_null = text
        h = self.input_embed(x, cond, text_cond, mask)
        if text_null is not None:
            h = torch.cat((h, self.input_embed(x, torch.zeros_like(cond), text_null, mask)), dim=0)
            t = torch.cat((t, t), dim=0)
            mask = None if mask is None else torch.cat((mask, mask), dim=0)
        temb = self.time_embed(t)
        rope = self.rotary_embed(h.shape[1])
        for block in self.transformer_blocks:
            h = block(h, temb, rope, mask)
        scale, shift = self.norm_out(temb)
        return self.proj_out(_norm(h) * (1 + scale) + shift)
