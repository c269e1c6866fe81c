"""Dropout that is fast on CPUs.

PyTorch's CPU dropout draws one Bernoulli variate per element and its backward multiplies the
gradient by a boolean mask, which takes a slow mixed-type path. On the 2-core machines we
target, a dropout over a 2,400 × 300 tensor of bond states took 18.5 ms, 60 times a ReLU over
the same tensor; in the Tox21 D-MPNN with dropout 0.3 the forward calls alone were a quarter
of the training time.

:class:`FastDropout` draws the keep-mask from 64-bit random words, each split into four 15-bit
integers (one generator call per four elements), compares them with a threshold and keeps the
mask as floats with the ``1 / (1 - p)`` scale folded in, so that backward is one multiply of
two float tensors. The drop probability is rounded to a multiple of 2⁻¹⁵ (0.3 becomes
0.300018) and kept values are scaled by the inverse of the rounded keep probability. Random
numbers come from PyTorch's default generator (or the one given), so ``torch.manual_seed``
makes masks repeatable. On other devices the module calls PyTorch's own dropout.

Example:
    >>> import torch
    >>> drop = FastDropout(0.25)
    >>> y = drop(torch.ones(4, 1000))
    >>> sorted({round(v, 4) for v in y.unique().tolist()})
    [0.0, 1.3333]
    >>> drop.eval()(torch.ones(3)).tolist()
    [1.0, 1.0, 1.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FastDropout", "keep_mask", "quantised_p"]

_BITS = 15
_LEVELS = 1 << _BITS


def _check_p(p: float) -> float:
    p = float(p)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1); got {p}")
    return p


def _threshold(p: float) -> int:
    """Lanes below this (of ``_LEVELS``) are dropped."""
    return round(_check_p(p) * _LEVELS)


def quantised_p(p: float) -> float:
    """The drop probability :func:`keep_mask` actually uses for ``p``."""
    return _threshold(p) / _LEVELS


def keep_mask(
    shape: Sequence[int],
    p: float,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A dropout mask: each element is 0 with probability ``q = quantised_p(p)``, else ``1/(1-q)``.

    Args:
        shape: mask shape.
        p: drop probability in [0, 1).
        dtype: mask dtype (the activations').
        device: where to make it.
        generator: random generator (default: PyTorch's global one).
    """
    threshold = _threshold(p)
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device)
    # random_() without bounds fills [0, 2**63): the top bit of every word is 0, so the
    # four 16-bit lanes are cut to their low 15 bits, which are uniform in all of them.
    words.random_(generator=generator)
    lanes = words.view(torch.int16)[:n].view(tuple(shape)) & (_LEVELS - 1)
    return (lanes >= threshold).to(dtype).mul_(_LEVELS / (_LEVELS - threshold))


class FastDropout(nn.Module):
    """Drop-in for :class:`torch.nn.Dropout` (inverted dropout), fast on CPU.

    Args:
        p: drop probability in [0, 1).
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = _check_p(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu" or not x.is_floating_point():
            return F.dropout(x, self.p, True)
        return x * keep_mask(x.shape, self.p, dtype=x.dtype, device=x.device)

    def extra_repr(self) -> str:
        return f"p={self.p}"
