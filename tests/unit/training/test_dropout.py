"""FastDropout: the mask's statistics, scaling, gradient, determinism and modes."""

from __future__ import annotations

import pytest
import torch

from medlearn.training.dropout import FastDropout, keep_mask, quantised_p


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_mask_drop_rate_scale_and_every_lane(p: float) -> None:
    torch.manual_seed(0)
    m = keep_mask((1000, 1000), p)
    q = quantised_p(p)
    assert abs(q - p) <= 2**-16
    assert m.unique().numel() == 2
    assert m.min() == 0.0 and m.max() == pytest.approx(1.0 / (1.0 - q), rel=1e-6)
    dropped = (m == 0).float()
    assert abs(dropped.mean().item() - q) < 0.003
    assert abs(m.mean().item() - 1.0) < 0.01  # inverted dropout keeps the expectation
    # each random word feeds four neighbouring elements: every position in the group of
    # four must drop at the same rate (an unmasked sign bit would make one of them never drop)
    lanes = dropped.flatten().view(-1, 4).mean(dim=0)
    assert torch.all((lanes - q).abs() < 0.005), lanes


def test_mask_shapes_odd_sizes_and_dtype() -> None:
    m = keep_mask((3, 5, 7), 0.5, dtype=torch.float64)
    assert m.shape == (3, 5, 7) and m.dtype == torch.float64
    assert keep_mask((0, 4), 0.3).shape == (0, 4)


def test_gradient_is_the_mask_and_seed_repeats() -> None:
    x = torch.randn(64, 300, requires_grad=True)
    drop = FastDropout(0.3)
    torch.manual_seed(7)
    y = drop(x)
    y.sum().backward()
    mask = torch.where(x.detach() != 0, y.detach() / x.detach(), torch.zeros(()))
    torch.testing.assert_close(x.grad, mask)
    torch.manual_seed(7)
    torch.testing.assert_close(drop(x.detach()), y.detach())
    assert not torch.equal(drop(x.detach()), y.detach())  # the next call draws a new mask


def test_eval_and_zero_p_are_identity_and_bad_p_fails() -> None:
    x = torch.randn(10, 10)
    assert FastDropout(0.0)(x) is x
    assert FastDropout(0.5).eval()(x) is x
    assert torch.equal(FastDropout(0.0).train()(x), x)
    assert "p=0.25" in repr(FastDropout(0.25))
    for bad in (-0.1, 1.0, 2):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            FastDropout(bad)


def test_molecule_networks_use_it() -> None:
    from medlearn.molecules._models import build_network, dmpnn

    net = build_network(dmpnn(hidden=16, depth=2, ffn_hidden=16, dropout=0.3), n_tasks=2)
    kinds = {type(m) for m in net.modules()}
    assert FastDropout in kinds and torch.nn.Dropout not in kinds
