"""Building blocks shared by the torch policy models (training and export only).

Everything here exports to ONNX with plain operators (no fused attention kernels, no
data-dependent control flow), so the exported graphs match eager torch closely.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """``(B,)`` float times -> ``(B, dim)`` sin/cos features."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


def group_count(channels: int, preferred: int = 8) -> int:
    g = min(preferred, channels)
    while channels % g:
        g -= 1
    return g


class ResidualBlock2d(nn.Module):
    """Two 3x3 convolutions with GroupNorm and a skip connection."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(group_count(channels), channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(group_count(channels), channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return F.relu(x + y)


class SpatialSoftmax(nn.Module):
    """Feature map -> expected (x, y) image coordinates of ``keypoints`` learned heat maps."""

    def __init__(self, channels: int, keypoints: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, keypoints, 1)
        self.keypoints = keypoints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        heat = self.proj(x)
        b, k, h, w = heat.shape
        ys = torch.linspace(-1.0, 1.0, h, device=x.device)
        xs = torch.linspace(-1.0, 1.0, w, device=x.device)
        grid_y = ys[:, None].expand(h, w).reshape(1, 1, h * w)
        grid_x = xs[None, :].expand(h, w).reshape(1, 1, h * w)
        attn = torch.softmax(heat.reshape(b, k, h * w), dim=-1)
        return torch.cat([(attn * grid_x).sum(-1), (attn * grid_y).sum(-1)], dim=-1)


class ImageEncoder(nn.Module):
    """Small ResNet-style encoder trained from scratch: per stage a strided 3x3 convolution
    (stride 2 unless ``strides`` says 1) and one residual block, then spatial-softmax keypoints
    and a linear projection. The keypoints are expectations over the last feature map, so its
    resolution bounds how finely they can place an object: a stride-1 last stage doubles it.

    With ``film_dim`` the feature maps of every stage are scaled and shifted by a vector (FiLM):
    the policies pass the instruction's features, so the keypoints can follow the object the
    instruction names instead of every object the policy might be asked about (concatenating
    the instruction after pooling leaves that selection to the action head, which then drifts
    between the objects)."""

    def __init__(
        self,
        channels: tuple[int, ...] = (32, 64, 128),
        keypoints: int = 32,
        out_dim: int = 64,
        film_dim: int = 0,
        strides: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        strides = (2,) * len(channels) if strides is None else tuple(strides)
        if len(strides) != len(channels) or any(s not in (1, 2) for s in strides):
            raise ValueError(f"strides must be one 1 or 2 per stage ({len(channels)} stages), got {strides}")
        self.stages = nn.ModuleList()
        c_in = 3
        for c_out, stride in zip(channels, strides):
            self.stages.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                    nn.GroupNorm(group_count(c_out), c_out),
                    nn.ReLU(),
                    ResidualBlock2d(c_out),
                )
            )
            c_in = c_out
        self.films = nn.ModuleList()
        if film_dim:
            for c in channels:
                film = nn.Linear(film_dim, 2 * c)
                # Zero start: the encoder begins as the unconditioned one and learns the modulation.
                nn.init.zeros_(film.weight)
                nn.init.zeros_(film.bias)
                self.films.append(film)
        self.pool = SpatialSoftmax(channels[-1], keypoints)
        self.out = nn.Linear(2 * keypoints, out_dim)
        self.out_dim = out_dim

    def forward(self, images: torch.Tensor, film: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, 3, H, W)`` (and ``film (N, film_dim)`` when built with one) -> ``(N, out_dim)``."""
        if bool(self.films) != (film is not None):
            raise ValueError("pass film exactly when the encoder was built with film_dim")
        x = images
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if film is not None:
                scale, bias = self.films[i](film)[:, :, None, None].chunk(2, dim=1)
                x = x * (1 + scale) + bias
        return self.out(self.pool(x))


def mlp_head(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """A one-hidden-layer MLP (auxiliary prediction heads on a policy's features)."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.Mish(), nn.Linear(hidden, out_dim))


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Training augmentation: shift each ``(N, C, H, W)`` image by up to ``pad`` pixels
    (edge-replicated), one shift per image."""
    if pad <= 0:
        return images
    n, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None]).to(images.device)
    cols = (dx[:, None] + torch.arange(w)[None]).to(images.device)
    idx_n = torch.arange(n, device=images.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


class Attention(nn.Module):
    """Multi-head attention written with matmul/softmax, so it exports as plain ONNX ops."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        m = context.shape[1]
        h = self.heads
        q = self.q(x).reshape(b, n, h, d // h).transpose(1, 2)
        k, v = self.kv(context).reshape(b, m, 2, h, d // h).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-1, -2) * (1.0 / math.sqrt(d // h)), dim=-1)
        return self.out((weights @ v).transpose(1, 2).reshape(b, n, d))


class TransformerBlock(nn.Module):
    """Pre-norm block: self-attention, optional cross-attention to a context, MLP."""

    def __init__(self, dim: int, heads: int, cross: bool = False, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.cross = Attention(dim, heads) if cross else None
        self.norm_cross = nn.LayerNorm(dim) if cross else None
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.attn(y, y)
        if self.cross is not None and self.norm_cross is not None:
            assert context is not None
            x = x + self.cross(self.norm_cross(x), context)
        return x + self.mlp(self.norm2(x))
