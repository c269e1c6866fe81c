"""Prediction runs copies of the members with batch norms folded, in channels-last layout.

Covered: ``fold_batch_norms`` folds every conv → batch-norm pair of ``simple_cnn`` and its
output equals the unfolded network's; ``ImageClassifier._logits_tensor`` gives the
probabilities of the plain (NCHW, unfolded) members within float rounding, with and without
flip TTA and across batch chunks; the copies are made once per set of members and rebuilt
when the members change; the members themselves (state dict, layout) are untouched, so
saving, loading and Grad-CAM see the trained network.
"""

from __future__ import annotations

import copy
import io

import pytest
import torch

from medlearn.imaging.models import fold_batch_norms
from medlearn.imaging.tasks import ImageClassifier, ImagePreprocessor

pytest.importorskip("monai")


def _classifier(seed: int = 0) -> ImageClassifier:
    clf = ImageClassifier(model="simple_cnn", classes=["normal", "pneumonia"])
    clf.preprocessor_ = ImagePreprocessor(
        in_channels=1, image_size=28, mean=[0.5], std=[0.25], load_options={}
    )
    torch.manual_seed(seed)
    nets = []
    for _ in range(2):  # a two-member ensemble
        net = clf._new_net()
        for m in net.modules():  # non-trivial batch-norm statistics
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
        nets.append(net.eval())
    clf.nets_ = nets
    return clf


@pytest.mark.parametrize("tta", [False, True])
def test_channels_last_prediction_equals_the_plain_layout(tta: bool) -> None:
    clf = _classifier()
    plain = [copy.deepcopy(n) for n in clf.nets_]
    x = torch.randn(37, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    got = clf._logits_tensor(x, tta=tta, batch_size=16)  # three chunks
    fast = clf._inference_[2]
    assert len(fast) == 2 and all(f is not n for f, n in zip(fast, clf.nets_, strict=True))
    conv = next(m for m in fast[0].modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast[0].modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in clf.nets_[0].modules())

    ref = _classifier()
    ref.nets_ = plain
    with torch.no_grad():
        from medlearn.imaging.transforms import tta_average, tta_views

        probs = []
        for net in plain:
            if tta:
                probs.append(tta_average(net, x, tta_views(x)).exp())
            else:
                probs.append(torch.softmax(net(x), dim=1))
        want = torch.stack(probs).mean(0).clamp_min(1e-12).log()
    assert got.shape == (37, 2)
    assert torch.allclose(got.exp(), want.exp(), atol=1e-5)
    assert (got.argmax(1) == want.argmax(1)).all()


def test_converted_members_save_and_load_unchanged() -> None:
    clf = _classifier(seed=2)
    before = {k: v.clone() for k, v in clf.nets_[0].state_dict().items()}
    x = torch.randn(5, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    first = clf._logits_tensor(x, tta=False)
    copies = clf._inference_[2]
    again = clf._logits_tensor(x, tta=False)  # the same copies: the same answer
    assert torch.equal(first, again) and clf._inference_[2] is copies
    clf.nets_ = clf.nets_[:1]  # other members: new copies
    clf._logits_tensor(x, tta=False)
    assert len(clf._inference_[2]) == 1 and clf._inference_[2][0] is not copies[0]
    after = clf.nets_[0].state_dict()
    assert list(after) == list(before)
    for k, v in before.items():
        assert after[k].shape == v.shape and torch.equal(after[k], v)
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in after.items()}, buf)
    buf.seek(0)
    fresh = clf._new_net()
    fresh.load_state_dict(torch.load(buf, map_location="cpu", weights_only=True))
    fresh.eval()
    with torch.no_grad():
        from_saved = torch.softmax(fresh(x), dim=1)
        member0 = torch.softmax(clf.nets_[0](x), 1)
    assert torch.allclose(from_saved, member0, atol=1e-5)


def test_fold_batch_norms_folds_every_pair_and_keeps_the_output() -> None:
    clf = _classifier(seed=4)
    net = copy.deepcopy(clf.nets_[0])
    seq = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.ReLU()
    ).eval()
    seq[1].running_mean.uniform_(-1, 1)
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        want, want_seq = net(x), seq(x)
        assert fold_batch_norms(net) == 4  # the four conv blocks of simple_cnn
        assert fold_batch_norms(seq) == 1
        assert torch.allclose(net(x), want, atol=1e-5)
        assert torch.allclose(seq(x), want_seq, atol=1e-5)
    assert isinstance(seq[1], torch.nn.Identity)
    training = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.BatchNorm2d(3)).train()
    assert fold_batch_norms(training) == 0  # batch statistics are not constants
