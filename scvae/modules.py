"""VQGAN-layout encoder and decoder (Esser et al. 2021; SC-VAE paper, Table 4).

Encoder: conv in; d x [ResBlocks, Downsample]; ResBlocks at the last level; ResBlock,
non-local attention, ResBlock; GroupNorm, Swish, conv to n channels. The decoder mirrors it.
Channel width at level i is base_channels * channel_mult[i]; len(channel_mult) = d + 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def group_norm(channels: int) -> nn.GroupNorm:
    # 32 groups as in VQGAN when the width allows it; narrow test models fall back to fewer.
    return nn.GroupNorm(math.gcd(32, channels), channels, eps=1e-6, affine=True)


class ResBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.shortcut(x) + h


class AttnBlock(nn.Module):
    """Single-head non-local self-attention over all spatial positions."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)).squeeze(1)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Asymmetric pad as in VQGAN so that H -> H/2 exactly for even H.
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _mid_block(channels: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(ResBlock(channels, channels, dropout), AttnBlock(channels), ResBlock(channels, channels, dropout))


class Encoder(nn.Module):
    def __init__(self, in_channels: int, base_channels: int, channel_mult: tuple[int, ...], num_res_blocks: int,
                 out_channels: int, attn_levels: tuple[int, ...] = (), dropout: float = 0.0):
        super().__init__()
        widths = [base_channels * m for m in channel_mult]
        self.conv_in = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        blocks: list[nn.Module] = []
        ch = widths[0]
        for level, width in enumerate(widths):
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(ch, width, dropout))
                ch = width
                if level in attn_levels:
                    blocks.append(AttnBlock(ch))
            if level != len(widths) - 1:
                blocks.append(Downsample(ch))
        self.down = nn.Sequential(*blocks)
        self.mid = _mid_block(ch, dropout)
        self.norm_out = group_norm(ch)
        self.conv_out = nn.Conv2d(ch, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, bfloat16_levels: int = 0) -> torch.Tensor:
        """x [B, C, H, W] -> features [B, n, H/f, W/f].

        bfloat16_levels: the first N resolution levels (their blocks and the downsampling that ends
        each) run under bfloat16 autocast, the rest in the input's precision. The finest levels
        hold most of the encoder's FLOPs and the least of its rounding: with the first three in
        bfloat16 the shipped model's codes stay within about 0.4% (relative L2) of float32,
        against about 2% with the whole encoder in bfloat16."""
        if bfloat16_levels <= 0:
            return self.conv_out(F.silu(self.norm_out(self.mid(self.down(self.conv_in(x))))))
        layers = list(self.down)
        split, levels = len(layers), 0
        for i, layer in enumerate(layers):
            levels += isinstance(layer, Downsample)
            if levels == bfloat16_levels:
                split = i + 1
                break
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            h = self.conv_in(x)
            for layer in layers[:split]:
                h = layer(h)
        h = h.to(x.dtype)
        for layer in layers[split:]:
            h = layer(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    def __init__(self, out_channels: int, base_channels: int, channel_mult: tuple[int, ...], num_res_blocks: int,
                 in_channels: int, attn_levels: tuple[int, ...] = (), dropout: float = 0.0):
        super().__init__()
        widths = [base_channels * m for m in channel_mult]
        ch = widths[-1]
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        self.mid = _mid_block(ch, dropout)
        blocks: list[nn.Module] = []
        for level in reversed(range(len(widths))):
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(ch, widths[level], dropout))
                ch = widths[level]
                if level in attn_levels:
                    blocks.append(AttnBlock(ch))
            if level != 0:
                blocks.append(Upsample(ch))
        self.up = nn.Sequential(*blocks)
        self.norm_out = group_norm(ch)
        self.conv_out = nn.Conv2d(ch, out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.up(self.mid(self.conv_in(z)))
        return self.conv_out(F.silu(self.norm_out(h)))
