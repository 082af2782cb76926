"""The F5-TTS diffusion transformer (DiT), inference only, in one file.

Module and parameter names follow upstream's checkpoints key for key (`transformer_blocks.3.attn.to_q.weight`,
`ff.ff.0.0.weight`, ...), so published weights load with a strict `load_state_dict` and no renaming table.

Shapes: B batch, N mel frames (reference + generated), D model width, T text width (text_dim), H heads,
dh head width, L layers (depth), S flow times (a chunk's sampler steps), R = 2B rows with guidance (the
conditional half, then the unconditional one) or B without.

What a sampler step does not depend on is computed once per chunk, not once per step: the text features
(`DiT.embed_text`), the conditioning half of the input layer's input (`DiT.context`), every layer's time
modulation for every step of the grid (`DiT.modulation`) and the attention mask (`AttentionMask`);
`DiT.flow` is then the step's forward pass alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode


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


def compiling() -> bool:
    """True while torch.compile traces (torch.compiler.is_compiling appeared in torch 2.3; 2.1 is allowed)."""
    check: Callable[[], bool] | None = getattr(torch.compiler, "is_compiling", None)
    if check is None:  # torch < 2.3
        from torch._dynamo import is_compiling

        check = is_compiling
    return bool(check())


def sinusoidal_table(dim: int, length: int, theta: float = 10000.0) -> torch.Tensor:
    """Absolute positions for the text encoder, (length, dim): [cos(p*f_0..), sin(p*f_0..)]."""
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
    angles = torch.outer(torch.arange(length, dtype=torch.float32), freqs)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class Float32Buffers(nn.Module):
    """A module whose `float32_buffers` follow the module's device but never its dtype.

    `model.to(torch.bfloat16)` would otherwise round position tables and RoPE frequencies to 8 mantissa bits:
    at frame 2,000 a bf16 `inv_freq` turns a rotation by whole radians. Those values are not weights that
    a matrix multiply reads, so half precision gains nothing from rounding them.
    """

    float32_buffers: tuple[str, ...] = ()

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> Float32Buffers:
        kept = {name: getattr(self, name) for name in self.float32_buffers}
        super()._apply(fn, recurse)
        for name, value in kept.items():
            setattr(self, name, value.to(getattr(self, name).device))
        self.buffers_moved()
        return self

    def buffers_moved(self) -> None:
        """Hook: drop whatever was derived from the buffers on their old device."""


class NoInit(TorchFunctionMode):
    """``torch.nn.init``'s functions do nothing inside: for modules built on the meta device, whose weights
    come from elsewhere (a checkpoint: loading.load_dit; joined weights: `Attention.fuse_qkv`). On meta
    tensors they would do nothing useful and, for some (``normal_``; on torch 2.5 ``uniform_`` and
    ``zeros`` too), run torch's Python reference kernels, which import torch._dynamo and sympy: seconds of
    a server's start-up that eager serving never needs otherwise."""

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        if getattr(func, "__module__", None) == "torch.nn.init":
            return args[0] if args else (kwargs or {}).get("tensor")
        return func(*args, **(kwargs or {}))


class TimestepEmbedding(nn.Module):
    """Flow time t in [0, 1] -> (B, D): 256 sinusoids of 1000*t, then an MLP."""

    def __init__(self, dim: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.time_mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """t: (B,), any float dtype; the sinusoids are computed in float32 whatever the MLP's precision.

        1000 * t in bf16 is off by up to 2 (8 mantissa bits), i.e. radians on the fastest sinusoids:
        only the sinusoids' values are rounded to the MLP's dtype, never the time itself."""
        half = self.freq_dim // 2
        scale = math.log(10000) / (half - 1)
        freqs = torch.exp(torch.arange(half, device=t.device).float() * -scale)
        angles = 1000 * t.float().unsqueeze(1) * freqs.unsqueeze(0)
        hidden = torch.cat((angles.sin(), angles.cos()), dim=-1)
        return self.time_mlp(hidden.to(cast(nn.Linear, self.time_mlp[0]).weight.dtype))


class GRN(nn.Module):
    """Global response normalization (ConvNeXt-V2), over the sequence axis."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        # Zeroed through nn.init, which a model built on the meta device skips (NoInit): torch.zeros
        # there runs torch's Python reference (torch 2.5), importing torch._dynamo and sympy.
        self.gamma = nn.Parameter(nn.init.zeros_(torch.empty(1, 1, dim)))
        self.beta = nn.Parameter(nn.init.zeros_(torch.empty(1, 1, dim)))

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


class TextEmbedding(Float32Buffers):
    """Token ids -> per-frame text features (B, N, T). Run once per request, not once per sampler step."""

    max_positions = 8192
    freqs_cis: torch.Tensor
    float32_buffers = ("freqs_cis",)

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.mask_padding = cfg.text_mask_padding
        self.text_embed = nn.Embedding(cfg.text_num_embeds + 1, cfg.text_dim)
        self.register_buffer("freqs_cis", self.position_table(), persistent=False)
        self.text_blocks = nn.Sequential(
            *[ConvNeXtV2Block(cfg.text_dim, cfg.text_dim * 2) for _ in range(cfg.conv_layers)]
        )

    def position_table(self) -> torch.Tensor:
        """The float32 position table: computed, never in a checkpoint. On the CPU whatever the default
        device: a model built on the meta device (loading.load_dit) needs it real, and it is small."""
        with torch.device("cpu"):
            return sinusoidal_table(self.text_embed.embedding_dim, self.max_positions)

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
        x = (x + self.freqs_cis[:n] * valid[..., None]).to(x.dtype)  # the float32 table, rounded once
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

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None) -> torch.Tensor:  # (B, N, D)
        """padding: (B, 1, N) True on padding frames, or None."""
        h = x.transpose(1, 2)
        if padding is None:
            h = self.conv1d(h)
        else:  # padding frames stay zero so they cannot leak into a shorter item of the batch
            h = h.masked_fill(padding, 0.0)
            for layer in self.conv1d:
                h = layer(h)
                if isinstance(layer, nn.Conv1d):
                    h = h.masked_fill(padding, 0.0)
        return h.transpose(1, 2)


class InputEmbedding(nn.Module):
    """[noisy mel, reference mel, text] -> D, plus the convolutional position embedding."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.proj = nn.Linear(cfg.mel_dim * 2 + cfg.text_dim, cfg.dim)
        self.conv_pos_embed = ConvPositionEmbedding(cfg.dim)

    def context(
        self, cond: torch.Tensor, text_cond: torch.Tensor, text_null: torch.Tensor | None
    ) -> torch.Tensor:
        """What the input layer reads besides the noisy mel, once per chunk: (R, N, mel + T) in the layer's
        dtype, [reference mel, text] per row; with a null text the unconditional rows follow, [0, null text]
        (upstream's dropped audio and text). cond: (B, N, mel); text_*: (B, N, T)."""
        dtype = self.proj.weight.dtype
        rows = torch.cat((cond.to(dtype), text_cond.to(dtype)), dim=-1)  # (B, N, mel + T)
        if text_null is None:
            return rows
        null = torch.cat((torch.zeros_like(cond, dtype=dtype), text_null.to(dtype)), dim=-1)
        return torch.cat((rows, null), dim=0)

    def forward(self, x: torch.Tensor, context: torch.Tensor, padding: torch.Tensor | None) -> torch.Tensor:
        """x: (B, N, mel) noisy mel, shared by the R // B halves; context: (R, N, mel + T) from `context`;
        padding: (R, 1, N) True on padding frames, or None. One pass over every row: (R, N, D)."""
        b, n, _ = x.shape
        halves = context.view(-1, b, n, context.shape[-1])  # (R / B, B, N, mel + T)
        x = x.to(self.proj.weight.dtype)[None].expand(halves.shape[0], -1, -1, -1)  # no copy
        h = self.proj(torch.cat((x, halves), dim=-1).flatten(0, 1))  # one copy into (R, N, 2 mel + T)
        return self.conv_pos_embed(h, padding) + h


@dataclass(frozen=True)
class Rope:
    """RoPE tables for positions 0..N-1, float32: cos = [cos a_0, cos a_0, cos a_1, cos a_1, ...] and
    sin = [-sin a_0, sin a_0, -sin a_1, sin a_1, ...], each (N, dh), a_i = position * inv_freq[i];
    and, outside torch.compile, the same rotations as complex numbers cos a_i + j sin a_i (N, dh / 2),
    which `apply_rope` uses then instead (see it for why)."""

    cos: torch.Tensor
    sin: torch.Tensor
    rotation: torch.Tensor | None

    def first(self, n: int) -> Rope:
        """The tables of the first n positions (views)."""
        return Rope(self.cos[:n], self.sin[:n], None if self.rotation is None else self.rotation[:n])


class RotaryEmbedding(Float32Buffers):
    """GPT-J style RoPE (adjacent pairs rotate together), base 10000; `inv_freq` is saved in checkpoints.

    Float32 whatever the model's dtype; complex-valued eagerly (one multiply), real-valued (cos/sin tables)
    under torch.compile, for which Inductor generates no complex code.
    """

    inv_freq: torch.Tensor
    float32_buffers = ("inv_freq",)

    def __init__(self, dim_head: int) -> None:
        super().__init__()
        with torch.device("cpu"):  # small, and loaded over from a checkpoint (on the meta device too)
            inv_freq = 1.0 / (10000 ** (torch.arange(0, dim_head, 2).float() / dim_head))
        self.register_buffer("inv_freq", inv_freq)
        self._table: Rope | None = None
        self._outgrown: list[Rope] = []
        """Every table the current one replaced, kept allocated: a CUDA graph recorded with one reads it by
        address, holding no reference, and would read freed (reused) memory if it were dropped."""

    def buffers_moved(self) -> None:
        self._table, self._outgrown = None, []  # a cast or move is a new model: no graph was made of it yet

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._table, self._outgrown = None, []  # a checkpoint's frequencies replace the computed ones

    def forward(self, n: int) -> Rope:
        """The tables for n positions: computed for the next power of two of positions (at least 1024) and
        sliced after that (a position's angles do not depend on the length), so a sampler step computes
        none of it; a longer length grows the table, keeping the old one (see `_outgrown`)."""
        if compiling():  # a compiled graph computes it in-line: no Python-side state
            return self._compute(n)
        if self._table is None or self._table.cos.shape[0] < n:
            if self._table is not None:
                self._outgrown.append(self._table)
            self._table = self._compute(max(1024, 1 << (n - 1).bit_length()))
        return self._table.first(n)

    def _compute(self, n: int) -> Rope:
        angles = torch.arange(n, device=self.inv_freq.device).float()[:, None] * self.inv_freq[None, :]
        cos, sin = angles.cos(), angles.sin()
        return Rope(
            cos.repeat_interleave(2, dim=-1),
            torch.stack((-sin, sin), dim=-1).flatten(-2),
            None if compiling() else torch.complex(cos, sin),
        )


def apply_rope(x: torch.Tensor, rope: Rope) -> torch.Tensor:
    """Rotate (x[2i], x[2i+1]) by each position's angle, in float32; returns x's dtype, contiguous.

    x: (..., N, H, dh), any strides (the q and k parts of the fused projection, together: one call for
    both). out[2i] = x[2i] cos - x[2i+1] sin, out[2i+1] = x[2i+1] cos + x[2i] sin: upstream's
    x*cos + rotate_half(x)*sin. Where the tables carry complex rotations (eager), one complex multiply
    computes the same products in one pass, reading the pairs in place (on a CPU ~3x faster than the real
    form's swap, multiply and multiply-add; on a GPU one kernel instead of three, plus the two casts of
    half precision). The real form, with the sign folded into the sin table, is what torch.compile runs.
    """
    n, dh = x.shape[-3], x.shape[-1]
    if rope.rotation is not None:
        pairs = torch.view_as_complex((x if x.dtype == torch.float32 else x.float()).unflatten(-1, (-1, 2)))
        rotated = torch.empty(pairs.shape, dtype=pairs.dtype, device=x.device)  # contiguous whatever x is
        torch.mul(pairs, rope.rotation.view(n, 1, dh // 2), out=rotated)
        return torch.view_as_real(rotated).flatten(-2).to(x.dtype)
    swapped = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)  # (x1, x0, x3, x2, ...)
    cos, sin = rope.cos.view(n, 1, dh), rope.sin.view(n, 1, dh)
    return torch.addcmul(x.float() * cos, swapped, sin).to(x.dtype)


@dataclass(frozen=True)
class AttentionMask:
    """A padded batch's frame mask in the forms the layers use, built once per chunk (or forward pass).

    bias: (R, 1, 1, N) additive, 0 for real frames and -inf for padding, in the attention's dtype (what
    SDPA would otherwise convert a boolean mask to, in every layer); padding: (R, N, 1) and
    frames_padding: (R, 1, N), True on padding (the convolutions' layout).
    """

    bias: torch.Tensor
    padding: torch.Tensor
    frames_padding: torch.Tensor

    @classmethod
    def build(cls, valid: torch.Tensor, dtype: torch.dtype) -> AttentionMask:
        """valid: (R, N) bool, True on real frames."""
        padding = ~valid
        bias = torch.zeros(valid.shape, dtype=dtype, device=valid.device).masked_fill(padding, float("-inf"))
        return cls(bias[:, None, None, :], padding[..., None], padding[:, None, :])


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
        with torch.no_grad():
            weight = torch.cat([self.to_q.weight, self.to_k.weight, self.to_v.weight])
            bias = torch.cat([self.to_q.bias, self.to_k.bias, self.to_v.bias])
        # Built on the meta device and given the joined weights: no random initialization to overwrite.
        with NoInit():
            fused = nn.Linear(weight.shape[1], weight.shape[0], device="meta", dtype=weight.dtype)
        fused.weight = nn.Parameter(weight, requires_grad=False)
        fused.bias = nn.Parameter(bias, requires_grad=False)
        self.to_qkv = fused
        del self.to_q, self.to_k, self.to_v

    @property
    def dtype(self) -> torch.dtype:
        """The precision the projections and the attention itself run in (float32 with int8 projections,
        which read and write float32: quantize.py)."""
        out = self.to_out[0]
        return out.weight.dtype if isinstance(out, nn.Linear) else torch.float32

    def _rotate(self, qk: torch.Tensor, rope: Rope) -> torch.Tensor:
        """qk: (B, N, 2, H, dh), the q and k parts of the projection; returns them rotated, (2, B, N, H, dh)
        contiguous (so that q and k are each contiguous: on a CPU attention measured faster so)."""
        qk = qk.permute(2, 0, 1, 3, 4)  # a view: `apply_rope` reads any strides
        if self.rope_heads is None:
            return apply_rope(qk, rope)
        r = self.rope_heads  # v0: the first head(s) only
        return torch.cat((apply_rope(qk[..., :r, :], rope), qk[..., r:, :]), dim=-2)

    def forward(self, x: torch.Tensor, rope: Rope, mask: AttentionMask | None) -> torch.Tensor:
        """x: (B, N, D) in `self.dtype`; returns (B, N, D) in `self.dtype`, zero on padding frames."""
        b, n, _ = x.shape
        if self.to_qkv is not None:
            qkv = self.to_qkv(x).view(b, n, 3, self.heads, -1)  # (B, N, 3, H, dh)
        else:  # the layout before `fuse_qkv`
            qkv = torch.stack([proj(x) for proj in (self.to_q, self.to_k, self.to_v)], dim=2)
            qkv = qkv.view(b, n, 3, self.heads, -1)
        q, k = self._rotate(qkv[:, :, :2], rope)  # each (B, N, H, dh)
        v = qkv[:, :, 2]
        # Padding frames of a batched request are hidden as keys, so a batched item equals its single run.
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            attn_mask=None if mask is None else mask.bias,
        )  # (B, H, N, dh)
        out = self.to_out[0](out.transpose(1, 2).reshape(b, n, -1))
        return out if mask is None else out.masked_fill(mask.padding, 0.0)


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
    """Time-conditioned LayerNorm: one Linear gives the rows of the layer's modulation (for a block: shift,
    scale, gate for the attention, then for the MLP; for the output: scale, shift), upstream's order."""

    def __init__(self, dim: int, chunks: int, scale_rows: slice) -> None:
        super().__init__()
        self.chunks = chunks
        self.scale_rows = scale_rows
        self.linear = nn.Linear(dim, dim * chunks)

    def modulation(self, t_act: torch.Tensor) -> torch.Tensor:
        """t_act: SiLU of the time embedding (S, D), shared by every layer; returns (S, chunks, D), with
        LayerNorm's multiplier 1 + scale in the scale rows (added once, here, not in every step)."""
        rows = self.linear(t_act).unflatten(-1, (self.chunks, -1))
        rows[:, self.scale_rows] += 1
        return rows


BLOCK_ROWS = 6
"""Rows of a block's modulation: shift, 1 + scale, gate of the attention, then of the MLP."""


def _modulate(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """LayerNorm(x) * scale + shift, in `dtype` (the next matrix multiply's); scale holds 1 + upstream's scale.

    scale, shift: (D,) when the whole batch shares one flow time (the sampler's case): then they are
    LayerNorm's own affine weight and bias, one fused pass, measured ~7x faster on a CPU than the norm
    followed by a multiply-add over the broadcast modulation (1.0 against 7.0 ms at 2 x 600 frames);
    or (R, 1, D), a time per row.
    """
    width = x.shape[-1]
    if scale.ndim == 1:
        return F.layer_norm(x, (width,), scale, shift, eps=1e-6).to(dtype)
    normed = F.layer_norm(x, (width,), eps=1e-6)
    return torch.addcmul(shift, normed, scale, out=torch.empty(x.shape, dtype=dtype, device=x.device))


class DiTBlock(nn.Module):
    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.attn_norm = AdaLayerNorm(cfg.dim, BLOCK_ROWS, slice(1, None, 3))
        self.attn = Attention(cfg)
        self.ff = FeedForward(cfg.dim, cfg.ff_mult)

    def forward(
        self,
        x: torch.Tensor,
        modulation: torch.Tensor,
        rope: Rope,
        mask: AttentionMask | None,
    ) -> torch.Tensor:
        """x: (R, N, D) the residual stream, in its own dtype (float32 in mixed precision); the attention
        and the MLP run in theirs, and their outputs are added back in the stream's. modulation: this
        block's rows of `DiT.modulation`, (6, D) for one time, or (6, R, 1, D) a time per row."""
        shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = modulation.unbind(0)
        dtype = self.attn.dtype
        x = torch.addcmul(x, gate_a, self.attn(_modulate(x, scale_a, shift_a, dtype), rope, mask))
        return torch.addcmul(x, gate_f, self.ff(_modulate(x, scale_f, shift_f, dtype)))


class DiT(nn.Module):
    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.time_embed = TimestepEmbedding(cfg.dim)
        self.text_embed = TextEmbedding(cfg)
        self.input_embed = InputEmbedding(cfg)
        self.rotary_embed = RotaryEmbedding(cfg.dim_head)
        self.transformer_blocks = nn.ModuleList([DiTBlock(cfg) for _ in range(cfg.depth)])
        self.norm_out = AdaLayerNorm(cfg.dim, 2, slice(0, 1))
        self.proj_out = nn.Linear(cfg.dim, cfg.mel_dim)

    def fuse_projections(self) -> DiT:
        """Inference layout: fused attention projections. Call after loading the checkpoint."""
        for block in self.transformer_blocks:
            assert isinstance(block, DiTBlock)
            block.attn.fuse_qkv()
        return self

    def to_precision(self, dtype: torch.dtype, mixed: bool = True) -> DiT:
        """Cast a float32 model for inference in `dtype`.

        mixed=False: every weight in `dtype` (upstream's half precision), the residual stream too.
        mixed=True: only the matrix multiplies of the per-step layers run in `dtype` (the attention
        projections and the attention itself, the MLPs, the input projection and its convolutions); the
        residual stream, the norms and their time modulation, the time embedding, the output projection and
        the text encoder (run once per chunk) stay in float32, as autocast would keep them. RoPE and the
        position tables are float32 either way. Call on the float32 model: casting back up cannot restore
        rounded weights.
        """
        if not mixed or dtype == torch.float32:
            return self.to(dtype=dtype)
        self.input_embed.to(dtype=dtype)
        for block in self.transformer_blocks:
            assert isinstance(block, DiTBlock)
            block.attn.to(dtype=dtype)
            block.ff.to(dtype=dtype)
        return self

    @property
    def input_dtype(self) -> torch.dtype:
        """The input layer's precision: what the sampler casts the per-chunk inputs to, once."""
        return self.input_embed.proj.weight.dtype

    @property
    def stream_dtype(self) -> torch.dtype:
        """The residual stream's precision: the time modulation's (float32 in mixed precision)."""
        return self.norm_out.linear.weight.dtype

    def embed_text(self, ids: torch.Tensor, seq_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(conditional, null) text features, each (B, N, T); constant across sampler steps."""
        return self.text_embed(ids, seq_lens, drop_text=False), self.text_embed(ids, seq_lens, drop_text=True)

    def context(self, cond: torch.Tensor, text: tuple[torch.Tensor, torch.Tensor | None]) -> torch.Tensor:
        """What every step's input layer reads besides the noisy mel: (R, N, mel + T), see
        `InputEmbedding.context`. cond: (B, N, mel) reference mel, zero past it; text: `embed_text`'s pair,
        the null one None when unguided."""
        return self.input_embed.context(cond, *text)

    def modulation(self, t: torch.Tensor) -> torch.Tensor:
        """Every layer's time modulation at the flow times t (S,): (S, 6 L + 2, D) in the stream's dtype,
        rows 6 l .. 6 l + 5 block l's (`BLOCK_ROWS`), the last two the output norm's (1 + scale, shift).

        A step's modulation depends on its time only, and a chunk's time grid is fixed: the sampler
        computes it for every step of the chunk at once (S rows through each layer's linear map: 23 matrix
        multiplies per chunk instead of 23 per step)."""
        t_act = F.silu(self.time_embed(t))  # (S, D): every layer's modulation starts from it
        layers = [cast(DiTBlock, block).attn_norm for block in self.transformer_blocks] + [self.norm_out]
        return torch.cat([norm.modulation(t_act) for norm in layers], dim=1)

    def attention_mask(self, valid: torch.Tensor, rows: int) -> AttentionMask:
        """The mask of a padded batch, valid (B, N) True on real frames, for its R = `rows` rows (each half
        the same items), in the attention's dtype."""
        attn = cast(DiTBlock, self.transformer_blocks[0]).attn
        return AttentionMask.build(valid.repeat(rows // valid.shape[0], 1), attn.dtype)

    def flow(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        modulation: torch.Tensor,
        mask: AttentionMask | None,
    ) -> torch.Tensor:
        """One sampler step's forward pass: the predicted flow (R, N, mel) in the stream's dtype.

        x: (B, N, mel) noisy mel, float32 whatever the model's precision; context: (R, N, mel + T) from
        `context`; modulation: one row of `modulation`, (6 L + 2, D), or (6 L + 2, R, 1, D) a time per row;
        mask: from `attention_mask`, None when nothing is padded (then SDPA may pick its fastest kernel)."""
        h = self.input_embed(x, context, None if mask is None else mask.frames_padding)  # (R, N, D)
        h = h.to(self.stream_dtype)
        rope = self.rotary_embed(h.shape[1])
        for i, block in enumerate(self.transformer_blocks):
            h = block(h, modulation[BLOCK_ROWS * i : BLOCK_ROWS * (i + 1)], rope, mask)
        scale, shift = modulation[-2:].unbind(0)
        return self.proj_out(_modulate(h, scale, shift, self.proj_out.weight.dtype))

    def forward(
        self,
        x: torch.Tensor,
        cond: torch.Tensor,
        text: tuple[torch.Tensor, torch.Tensor | None],
        t: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the flow in one call, computing what the sampler computes once per chunk (`context`,
        `modulation`, `attention_mask`) and then `flow`. x, cond: (B, N, mel); t: (B,) flow times, or (1,)
        shared by the whole batch (the sampler's case, and the faster one: see `_modulate`); mask: (B, N)
        bool, True on real frames, or None when nothing is padded. Inputs may be float32 whatever the
        model's precision. With a null text, returns (2B, N, mel): the conditional half, then the
        unconditional half (no reference audio, no text), in one pass. The output is in the stream's dtype."""
        context = self.context(cond, text)
        rows = context.shape[0]
        modulation = self.modulation(t)  # (1 or B, 6 L + 2, D)
        if t.shape[0] == 1:
            modulation = modulation[0]
        else:  # a time per row: (6 L + 2, R, 1, D)
            modulation = modulation.repeat(rows // t.shape[0], 1, 1).transpose(0, 1)[:, :, None, :]
        attn_mask = None if mask is None else self.attention_mask(mask, rows)
        return self.flow(x, context, modulation, attn_mask)
