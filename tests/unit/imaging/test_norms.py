"""Channels-last instance norms: the same numbers and gradients as PyTorch's, no layout copy."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from medlearn.imaging.norms import (
    ChannelsLastInstanceNorm2d,
    ChannelsLastInstanceNorm3d,
    instance_norm_channels_last,
    use_channels_last_norms,
)

CASES = [
    (nn.InstanceNorm2d, (3, 5, 6, 7), torch.channels_last),
    (nn.InstanceNorm3d, (2, 4, 5, 6, 3), torch.channels_last_3d),
]


def _stock(cls: type[nn.Module], channels: int, affine: bool) -> nn.Module:
    torch.manual_seed(0)
    norm = cls(channels, affine=affine).double()
    if affine:
        with torch.no_grad():
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-1.0, 1.0)
    return norm


@pytest.mark.parametrize(("cls", "shape", "fmt"), CASES)
@pytest.mark.parametrize("affine", [True, False])
def test_values_and_gradients_equal_pytorch(cls, shape, fmt, affine):
    stock = _stock(cls, shape[1], affine)
    net = nn.Sequential(copy.deepcopy(stock))
    assert use_channels_last_norms(net) == 1
    g = torch.Generator().manual_seed(1)
    x = (3 * torch.randn(shape, generator=g, dtype=torch.double) + 2).contiguous(memory_format=fmt)
    x.requires_grad_(True)
    dy = torch.randn(shape, generator=g, dtype=torch.double)

    y = net(x)
    y.backward(dy)
    ours = [x.grad.clone()] + ([net[0].weight.grad, net[0].bias.grad] if affine else [])
    x.grad = None
    ref = stock(x)
    ref.backward(dy)
    theirs = [x.grad] + ([stock.weight.grad, stock.bias.grad] if affine else [])

    assert y.is_contiguous(memory_format=fmt)
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-12)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-11)


def test_gradcheck_through_the_channels_last_path():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.double)
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    w = torch.rand(3, generator=g, dtype=torch.double).add_(0.5).requires_grad_(True)
    b = torch.randn(3, generator=g, dtype=torch.double).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x, w, b: instance_norm_channels_last(x, w, b, 1e-5), (x, w, b)
    )


def test_other_layouts_take_the_stock_path():
    stock = _stock(nn.InstanceNorm2d, 4, True)
    twin = nn.Sequential(copy.deepcopy(stock))
    use_channels_last_norms(twin)
    x = torch.randn(2, 4, 6, 6, dtype=torch.double)  # default layout
    torch.testing.assert_close(twin(x), stock(x))
    assert twin(x).is_contiguous()
    # unbatched input, which only the stock module understands
    torch.testing.assert_close(twin(x[0]), stock(x[0]))


def test_swap_keeps_parameters_and_state_dict_and_skips_running_stats():
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.InstanceNorm2d(4, affine=True),
        nn.Sequential(nn.InstanceNorm3d(4), nn.InstanceNorm2d(4, track_running_stats=True)),
        nn.BatchNorm2d(4),
    )
    weight = net[1].weight
    keys = list(net.state_dict())
    opt = torch.optim.SGD(net.parameters(), lr=0.1)

    assert use_channels_last_norms(net) == 2
    assert isinstance(net[1], ChannelsLastInstanceNorm2d)
    assert isinstance(net[1], nn.InstanceNorm2d)  # still one for code that checks
    assert isinstance(net[2][0], ChannelsLastInstanceNorm3d)
    assert type(net[2][1]) is nn.InstanceNorm2d  # running statistics: left alone
    assert type(net[3]) is nn.BatchNorm2d
    assert net[1].weight is weight  # the optimiser built before still updates it
    assert list(net.state_dict()) == keys
    assert use_channels_last_norms(net) == 0  # already swapped

    x = torch.randn(2, 1, 8, 8).contiguous(memory_format=torch.channels_last)
    net[1](net[0](x)).sum().backward()
    before = weight.detach().clone()
    opt.step()
    assert not torch.equal(weight, before)


def test_segmentation_network_in_layout_matches_stock_network():
    from medlearn.imaging.segmentation.learner import in_layout
    from medlearn.imaging.segmentation.models import basic_unet

    def tiny() -> nn.Module:
        return basic_unet(
            spatial_dims=2,
            in_channels=1,
            out_channels=2,
            features=[4, 4, 8, 16, 32, 4],
            norm="instance",
        ).eval()

    torch.manual_seed(0)
    stock = tiny()
    fast = in_layout(copy.deepcopy(stock), torch.channels_last)
    assert sum(isinstance(m, ChannelsLastInstanceNorm2d) for m in fast.modules()) > 0
    # a state_dict saved from either loads into the other
    fresh = tiny()
    fresh.load_state_dict(fast.state_dict())
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = stock(x)
        ours = fast(x.contiguous(memory_format=torch.channels_last))
        again = fresh(x)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(again, ref)
    # the contiguous layout leaves the network's norms as they are
    plain = in_layout(copy.deepcopy(stock), torch.contiguous_format)
    assert not any(isinstance(m, ChannelsLastInstanceNorm2d) for m in plain.modules())
