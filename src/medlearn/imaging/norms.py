"""Instance normalisation that stays in channels-last memory.

``torch.nn.InstanceNorm2d``/``3d`` compute their statistics by viewing the input as one batch
of ``N * C`` channels, which needs the ``(N, C, *spatial)`` layout: on a channels-last tensor
every call copies the input to that layout, and autograd copies the gradient back. On CPU that
made a 2-D BasicUNet with instance norms train slower in channels-last than in the default
layout, although its convolutions run faster in channels-last (benchmarks in
docs/benchmarks.md, segmentation section).

:class:`ChannelsLastInstanceNorm2d`/``3d`` give the same numbers without the copies: instance
normalisation of one sample is batch normalisation of a batch of one (statistics per channel
over the spatial axes), so each sample goes through ATen's own batch-norm kernels, which read
and write channels-last memory directly. Inputs in any other layout take the stock
``F.instance_norm`` path. :func:`use_channels_last_norms` swaps them into a network in place;
the parameters and ``state_dict`` keys are unchanged, so checkpoints and bundles load either
way.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

__all__ = [
    "ChannelsLastInstanceNorm2d",
    "ChannelsLastInstanceNorm3d",
    "instance_norm_channels_last",
    "use_channels_last_norms",
]

_aten = torch.ops.aten


def _layout(x: torch.Tensor) -> torch.memory_format | None:
    """``x``'s channels-last format if it is stored that way (and not also plain-contiguous,
    as happens when channels or every spatial size is 1), else ``None``."""
    fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(x.dim())
    if fmt is None or x.is_contiguous() or not x.is_contiguous(memory_format=fmt):
        return None
    return fmt


class _ChannelsLastInstanceNorm(torch.autograd.Function):
    """Per-sample ATen batch norm (training statistics, no running buffers) on a
    channels-last ``(N, C, *spatial)`` tensor; the output is channels-last too."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor | None,
        bias: torch.Tensor | None,
        eps: float,
    ) -> torch.Tensor:
        n, c = x.shape[:2]
        y = torch.empty_like(x)  # preserve_format: channels-last like x
        mean = x.new_empty((n, c))
        invstd = x.new_empty((n, c))
        for i in range(n):
            _aten.native_batch_norm.out(
                x[i : i + 1],
                weight,
                bias,
                None,
                None,
                True,
                0.0,
                eps,
                out=y[i : i + 1],
                save_mean=mean[i],
                save_invstd=invstd[i],
            )
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.eps = eps
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        x, weight, mean, invstd = ctx.saved_tensors
        fmt = _layout(x)
        grad = grad.contiguous(memory_format=fmt) if fmt is not None else grad.contiguous()
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        need_w = need_w and weight is not None
        need_b = need_b and ctx.has_bias
        dx = torch.empty_like(x) if need_x else None
        dw = db = None
        for i in range(x.shape[0]):
            gx, gw, gb = _aten.native_batch_norm_backward(
                grad[i : i + 1],
                x[i : i + 1],
                weight,
                None,
                None,
                mean[i],
                invstd[i],
                True,
                ctx.eps,
                [need_x, need_w, need_b],
            )
            if dx is not None:
                dx[i : i + 1].copy_(gx)
            if need_w:
                dw = gw if dw is None else dw.add_(gw)
            if need_b:
                db = gb if db is None else db.add_(gb)
        return dx, dw, db, None


def instance_norm_channels_last(
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Instance normalisation of ``x`` (``(N, C, H, W)`` or ``(N, C, D, H, W)``) with optional
    per-channel affine ``weight``/``bias``: equal to ``F.instance_norm`` up to rounding.
    Channels-last inputs are normalised in place of layout (and the result is channels-last);
    anything else goes to ``F.instance_norm``."""
    if _layout(x) is None:
        return F.instance_norm(x, weight=weight, bias=bias, eps=eps)
    return _ChannelsLastInstanceNorm.apply(x, weight, bias, eps)


class _ChannelsLastInstanceNormMixin:
    """``forward`` for a stock ``InstanceNorm{2,3}d`` without running statistics."""

    weight: torch.Tensor | None
    bias: torch.Tensor | None
    eps: float

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _layout(x) is None:  # the stock path (also checks the shape)
            return super().forward(x)  # type: ignore[misc]
        return _ChannelsLastInstanceNorm.apply(x, self.weight, self.bias, self.eps)


class ChannelsLastInstanceNorm2d(_ChannelsLastInstanceNormMixin, nn.InstanceNorm2d):
    """``nn.InstanceNorm2d`` (without ``track_running_stats``) that keeps channels-last
    inputs channels-last; same parameters, same ``state_dict``."""


class ChannelsLastInstanceNorm3d(_ChannelsLastInstanceNormMixin, nn.InstanceNorm3d):
    """``nn.InstanceNorm3d`` (without ``track_running_stats``) that keeps channels-last
    inputs channels-last; same parameters, same ``state_dict``."""


_SWAPS: dict[type[nn.Module], type[nn.Module]] = {
    nn.InstanceNorm2d: ChannelsLastInstanceNorm2d,
    nn.InstanceNorm3d: ChannelsLastInstanceNorm3d,
}


def use_channels_last_norms(net: nn.Module) -> int:
    """Replace every stock ``nn.InstanceNorm2d``/``3d`` in ``net`` that has no running
    statistics by its channels-last twin, in place, keeping its parameters (the same tensor
    objects, so an optimiser built before still updates them). Returns how many were
    replaced. Norms with ``track_running_stats`` and subclasses are left alone."""
    swapped = 0
    for module in net.modules():
        for name, child in list(module._modules.items()):
            twin = _SWAPS.get(type(child)) if child is not None else None
            if twin is None or child.track_running_stats:  # type: ignore[union-attr]
                continue
            new = twin.__new__(twin)
            new.__dict__.update(child.__dict__)  # parameters, buffers, flags: shared as is
            module._modules[name] = new
            swapped += 1
    return swapped
