"""The one rule for which pretrained tensors a network takes over (``model.init_from``)."""

from __future__ import annotations

import torch
from torch import nn

from medlearn.training._transfer import matching_layers


def _net(n_in: int, n_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8 + n_in, n_out))


def test_layers_are_taken_whole_or_not_at_all():
    source = _net(0, 3).state_dict()
    # the last layer's input grew (weight 3x10 vs 3x8) but its bias kept its shape (3)
    target = _net(2, 3)
    got = matching_layers(target.state_dict(), source)
    assert set(got) == {
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
    }
    assert torch.equal(got["0.weight"], source["0.weight"])
    target.load_state_dict(got, strict=False)  # loads as returned
    # the same shapes everywhere: everything is taken, except what is excluded
    same = matching_layers(_net(0, 3).state_dict(), source, exclude=("2.bias",))
    assert set(same) == set(source) - {"2.weight", "2.bias"}


def test_missing_tensors_keep_their_layer_fresh():
    source = {k: v for k, v in _net(0, 3).state_dict().items() if k != "1.running_var"}
    got = matching_layers(_net(0, 3).state_dict(), source)
    assert not any(k.startswith("1.") for k in got) and "2.weight" in got
