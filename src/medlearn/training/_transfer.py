"""Which pretrained tensors a network takes over (``model.init_from``), for every domain."""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Any

__all__ = ["matching_layers"]


def matching_layers(
    own: Mapping[str, Any], pretrained: Mapping[str, Any], *, exclude: Container[str] = ()
) -> dict[str, Any]:
    """The tensors of ``pretrained`` to load into a network whose state dict is ``own``.

    A layer (the tensors sharing a name prefix up to the last dot: ``head.0.weight`` and
    ``head.0.bias``) is taken whole or not at all: only when each of its tensors exists in
    ``pretrained`` with the same shape and none is in ``exclude``. So a bias never arrives
    without its weight, e.g. when a head's input grows.

    Returns:
        ``{name: tensor}`` from ``pretrained``, for ``load_state_dict(..., strict=False)``.
    """
    fits = {
        name
        for name, value in pretrained.items()
        if name in own and name not in exclude and tuple(own[name].shape) == tuple(value.shape)
    }
    layers: dict[str, list[str]] = {}
    for name in own:
        layers.setdefault(name.rpartition(".")[0], []).append(name)
    return {
        name: pretrained[name]
        for names in layers.values()
        if all(n in fits for n in names)
        for name in names
    }
