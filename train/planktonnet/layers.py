"""PyTorch reference modules for every layer of models/FORMAT.md.

Tensor conventions:
- Maps are NCHW; flat features are [B, F].
- The views of one image are ADJACENT in the batch: row n*V + v holds view v
  of image n (B = N*V). A 1-view tensor is just [N, ...].
- View v = f*4 + r is T_v = R^r o F^f: flip first (torch.flip over W), then r
  quarter turns of torch.rot90 over (H, W).

The dihedral group D4 (C4 is its f = 0 half): T_a T_b = R^(ra + (fa ? -rb : rb)) F^(fa xor fb),
where "T_a T_b" applies T_b first. `d4_apply(d4_apply(x, b), a) == d4_apply(x, d4_mul(a, b))`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# --------------------------------------------------------------------------
# the group


def d4_mul(a: int, b: int) -> int:
    """Index of T_a o T_b (T_b applied first)."""
    fa, ra = divmod(a, 4)
    fb, rb = divmod(b, 4)
    r = ra - rb if fa else ra + rb
    return (fa ^ fb) * 4 + r % 4


def d4_inv(a: int) -> int:
    """Index of T_a^-1: (R^r F^f)^-1 = F^f R^-r = R^(f ? r : -r) F^f."""
    f, r = divmod(a, 4)
    return f * 4 + (r if f else -r) % 4


def d4_apply(x: torch.Tensor, v: int) -> torch.Tensor:
    """T_v applied to the last two dims (H, W) of x."""
    f, r = divmod(v, 4)
    if f:
        x = torch.flip(x, dims=[-1])
    if r:
        x = torch.rot90(x, r, dims=(-2, -1))
    return x


def rot90_export(x: torch.Tensor, r: int) -> torch.Tensor:
    """torch.rot90(x, r, dims=(-2, -1)) from flips and transposes, which ONNX
    exporters (torch 1.13's among them) can write: a quarter turn from H
    towards W is a transpose of (H, W) followed by a flip of the new H."""
    r %= 4
    if r == 0:
        return x
    if r == 2:
        return torch.flip(x, dims=[-2, -1])
    if r == 1:
        return torch.flip(x.transpose(-2, -1), dims=[-2])
    return torch.flip(x, dims=[-2]).transpose(-2, -1)


def d4_apply_export(x: torch.Tensor, v: int) -> torch.Tensor:
    """d4_apply with rot90_export (same values, exportable to ONNX)."""
    f, r = divmod(v, 4)
    if f:
        x = torch.flip(x, dims=[-1])
    return rot90_export(x, r)


def set_export_friendly(module: nn.Module, on: bool = True) -> nn.Module:
    """Switches every CyclicSlice and CyclicRoll under module to (or back
    from) their export-friendly forms: the same values through operations an
    ONNX exporter can write (no rot90, no in-place writes into a new tensor).
    Returns module."""
    for m in module.modules():
        if isinstance(m, (CyclicSlice, CyclicRoll)):
            m.export_friendly = on
    return module


def _split_views(x: torch.Tensor, views: int) -> torch.Tensor:
    """[N*V, ...] -> [N, V, ...]"""
    if x.shape[0] % views:
        raise ValueError("batch of %d rows is not a multiple of %d views" % (x.shape[0], views))
    return x.reshape(x.shape[0] // views, views, *x.shape[1:])


def _merge_views(x: torch.Tensor) -> torch.Tensor:
    """[N, V, ...] -> [N*V, ...]"""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


# --------------------------------------------------------------------------
# cyclic layers


class CyclicSlice(nn.Module):
    """[N, C, S, S] -> [N*V, C, S, S]: view v of image n is T_v(x[n]) at row n*V + v."""

    export_friendly = False  # set_export_friendly(): rot90_export instead of torch.rot90

    def __init__(self, views: int):
        super().__init__()
        self.views = views

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        apply = d4_apply_export if self.export_friendly else d4_apply
        return _merge_views(torch.stack([apply(x, v) for v in range(self.views)], dim=1))

    def extra_repr(self) -> str:
        return "views=%d" % self.views


class CyclicRoll(nn.Module):
    """Each view gets every view's features, brought into its own frame.

    Output view i = channel concat over s = 0..V-1 of T_s^-1(F_j), T_j = T_s o T_i.
    Spatial ([N*V, C, H, W] -> [N*V, V*C, H, W]) or flat ("dense roll",
    [N*V, F] -> [N*V, V*F], the same blocks without the spatial transform).
    """

    export_friendly = False  # set_export_friendly(): forward_export instead

    def __init__(self, views: int):
        super().__init__()
        self.views = views
        # perm[s][i] = j with T_j = T_s o T_i
        self.perm = [[d4_mul(s, i) for i in range(views)] for s in range(views)]

    def forward_export(self, x: torch.Tensor) -> torch.Tensor:
        """forward's values by concatenation (no in-place copies into
        torch.empty, no rot90): exportable to ONNX. Contiguous output."""
        V = self.views
        xv = _split_views(x, V)                       # [N, V, C, (H, W)]
        spatial = x.dim() == 4
        ts = [d4_apply_export(xv, d4_inv(s)) if spatial else xv for s in range(V)]
        views = [torch.cat([ts[s][:, self.perm[s][i]] for s in range(V)], dim=1)
                 for i in range(V)]                   # each [N, V*C, ...]
        return _merge_views(torch.stack(views, dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.export_friendly:
            return self.forward_export(x)
        V = self.views
        C = x.shape[1]
        xv = _split_views(x, V)                       # [N, V, C, (H, W)]
        spatial = x.dim() == 4
        # The output keeps the input's memory format (channels_last stays channels_last).
        fmt = (torch.channels_last if spatial and not x.is_contiguous()
               and x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format)
        out = torch.empty((x.shape[0], V * C) + tuple(x.shape[2:]), dtype=x.dtype, device=x.device,
                          memory_format=fmt)
        ov = out.view((xv.shape[0], V, V * C) + tuple(x.shape[2:]))   # [N, V(i), V(s)*C, ...]
        for s in range(V):
            t = d4_apply(xv, d4_inv(s)) if spatial else xv   # T_s^-1 of every view
            for i in range(V):
                ov[:, i, s * C:(s + 1) * C].copy_(t[:, self.perm[s][i]])   # view s o i
        return out

    def extra_repr(self) -> str:
        return "views=%d" % self.views


class CyclicPool(nn.Module):
    """[N*V, ...] -> [N, ...]: mean, rms (sqrt of the mean square) or max over the views."""

    RMS_EPS = 1e-30  # training only: keeps sqrt's gradient finite where every view is 0

    def __init__(self, views: int, mode: str = "mean"):
        super().__init__()
        if mode not in ("mean", "rms", "max"):
            raise ValueError("cyclic_pool mode must be mean, rms or max, got %r" % mode)
        self.views, self.mode = views, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xv = _split_views(x, self.views)
        if self.mode == "mean":
            return xv.mean(dim=1)
        if self.mode == "max":
            return xv.amax(dim=1)
        ms = (xv * xv).mean(dim=1)
        if self.training and ms.requires_grad:
            ms = ms.clamp_min(self.RMS_EPS)
        return torch.sqrt(ms)

    def extra_repr(self) -> str:
        return "views=%d, mode=%s" % (self.views, self.mode)


# --------------------------------------------------------------------------
# ordinary layers


class Conv(nn.Conv2d):
    """Convolution (PyTorch weight [filters, C, k, k]) with an optional fused leaky ReLU."""

    def __init__(self, in_channels: int, filters: int, kernel: int, stride: int = 1,
                 pad: int = 0, activation: str = "leaky_relu", slope: float = 0.01):
        super().__init__(in_channels, filters, kernel, stride=stride, padding=pad, bias=True)
        self.activation, self.slope = activation, slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:             # flat features are 1x1 maps
            x = x[:, :, None, None]
        y = super().forward(x)
        if self.activation != "leaky_relu":
            return y
        # y is our own fresh tensor: activate in place unless autograd needs the original
        return F.leaky_relu(y, self.slope, inplace=not y.requires_grad)

    def preactivation(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x[:, :, None, None]
        return super().forward(x)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", activation=%s, slope=%g" % (self.activation, self.slope)


class Dense(nn.Linear):
    """Fully connected on the input flattened in C, H, W order (PyTorch's flatten of NCHW)."""

    def __init__(self, in_features: int, units: int, activation: str = "none",
                 slope: float = 0.01):
        super().__init__(in_features, units, bias=True)
        self.activation, self.slope = activation, slope

    def preactivation(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.flatten(x, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.preactivation(x)
        return F.leaky_relu(y, self.slope) if self.activation == "leaky_relu" else y

    def extra_repr(self) -> str:
        return super().extra_repr() + ", activation=%s, slope=%g" % (self.activation, self.slope)


class LeakyReLU(nn.Module):
    """max(x, slope*x) for slope <= 1; slope 0 is ReLU."""

    def __init__(self, slope: float = 0.01):
        super().__init__()
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, self.slope)

    def extra_repr(self) -> str:
        return "slope=%g" % self.slope


class MaxPool(nn.Module):
    """size x size windows every `stride` pixels, no padding, floor: H' = (H - size) // stride + 1."""

    def __init__(self, size: int = 3, stride: int = 2):
        super().__init__()
        self.size, self.stride = size, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x[:, :, None, None]
        return F.max_pool2d(x, self.size, self.stride, padding=0, ceil_mode=False)

    def extra_repr(self) -> str:
        return "size=%d, stride=%d" % (self.size, self.stride)


class Maxout(nn.Module):
    """C -> C/pieces over the channel axis (dim 1): out[j] = max(in[j*p .. j*p + p - 1])."""

    def __init__(self, pieces: int = 2):
        super().__init__()
        self.pieces = pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if c % self.pieces:
            raise ValueError("maxout: %d channels are not divisible by %d pieces" % (c, self.pieces))
        return x.reshape(x.shape[0], c // self.pieces, self.pieces, *x.shape[2:]).amax(dim=2)

    def extra_repr(self) -> str:
        return "pieces=%d" % self.pieces


class GlobalAvgPool(nn.Module):
    """[B, C, H, W] -> [B, C] (flat input passes unchanged)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) if x.dim() == 4 else x


class Dropout(nn.Dropout):
    """Identity in eval mode; inverted dropout (scale 1/(1-rate)) in training."""


class Softmax(nn.Module):
    """Softmax over the classes (dim 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=1)
