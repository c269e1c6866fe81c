"""Training precision: float32, or bfloat16 mixed precision where the hardware has it.

bfloat16 keeps float32's exponent range, so, unlike float16, it needs no loss scaling: the
network's forward (and so its backward) runs in bfloat16 under :func:`torch.autocast` while the
weights, their gradients, the optimiser and the loss stay in float32. On CPUs with native
bfloat16 instructions (AVX512-BF16 or AMX) oneDNN's convolutions run in it; elsewhere bfloat16
is emulated and slower than float32, which is why ``auto`` checks the hardware.

Values of a ``precision`` setting (:data:`PRECISIONS`):

- ``"32"`` (or ``32``): float32 throughout;
- ``"bf16"``: bfloat16 mixed precision, whatever the hardware;
- ``"auto"``: ``bf16`` where the device runs it natively (:func:`native_bf16`), else ``32``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from medlearn.errors import ConfigError

__all__ = ["PRECISIONS", "autocast", "forward_in", "native_bf16", "resolve_precision"]

#: Accepted values of a ``precision`` setting.
PRECISIONS = ("32", "bf16", "auto")


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` computes in bfloat16 natively (CPU: AVX512-BF16 or AMX tiles;
    CUDA: compute capability 8.0 or later)."""
    kind = torch.device(device).type
    if kind == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if kind == "cpu":
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)
    return False


def resolve_precision(value: Any, device: str | torch.device | None = None, *, field: str) -> str:
    """The precision a run trains in, ``"32"`` or ``"bf16"``, from a setting's value.

    Args:
        value: ``32``, ``"32"``, ``"bf16"`` or ``"auto"`` (``None`` means ``"32"``).
        device: where the network trains (for ``auto``); default: where the shared trainer
            (:func:`medlearn.training.fit_module`, accelerator ``auto``) puts it, CUDA when
            there is one, else the CPU.
        field: the setting's name, for the error message.

    Raises:
        ConfigError: any other value.
    """
    text = "32" if value is None else str(value).strip().lower()
    if isinstance(value, bool) or text not in PRECISIONS:
        raise ConfigError(
            f"{field} must be one of {', '.join(PRECISIONS)}. Got {value!r}.",
            hint="auto trains in bfloat16 mixed precision where the CPU or GPU has native "
            "bfloat16 (AVX512-BF16, AMX, Ampere or later), else in float32.",
        )
    if text == "auto":
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return "bf16" if native_bf16(device) else "32"
    return text


@contextlib.contextmanager
def autocast(precision: str, device: str | torch.device = "cpu") -> Iterator[None]:
    """``torch.autocast`` to bfloat16 on ``device`` when ``precision`` is ``"bf16"``; a no-op
    for ``"32"``."""
    if precision != "bf16":
        yield
        return
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
        yield


def forward_in(precision: str, net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` computed in ``precision``; under ``"bf16"`` the output comes back as float32,
    so that losses and metrics on it are computed in float32."""
    if precision != "bf16":
        return net(x)
    with autocast(precision, x.device):
        out = net(x)
    return out.float()
