"""What the segmentation fit spends outside training steps: cached preprocessing, validation
every N epochs, channels-last memory format, epoch-level logging (tiny seeded data)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from medlearn.errors import ConfigError
from medlearn.registry import MODELS


def _tiny_net(dims: int = 2) -> torch.nn.Module:
    torch.manual_seed(0)
    return MODELS.get("unet")(
        spatial_dims=dims, in_channels=1, out_channels=2, **MODELS.meta("unet")["tiny"]
    )


def _learner(**options):
    from medlearn.imaging.segmentation.learner import SegmentationLearner

    return SegmentationLearner(
        model="unet",
        classes=options.pop("classes", ["background", "fg"]),
        spatial_dims=options.pop("spatial_dims", 2),
        in_channels=1,
        model_params=MODELS.meta("unet")["tiny"],
        options=options,
    )


def _records(n: int = 3, size: int = 16):
    from medlearn.data import make_record

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        image = rng.normal(50, 10, (1, size, size)).astype(np.float32)
        mask = (rng.random((size, size)) > 0.7).astype(np.int64)
        out.append(make_record(f"c{i}", image, mask, meta={}))
    return out


# --- cached preprocessing --------------------------------------------------------------------


def test_cases_are_preprocessed_once_and_handed_out_uncopied(monkeypatch):
    ln = _learner()
    calls = []
    original = ln.preprocessor_.image
    monkeypatch.setattr(
        ln.preprocessor_, "image", lambda im, meta: calls.append(1) or original(im, meta)
    )
    records = _records()
    cache = ln._cached(records, "training")
    assert len(calls) == 3  # once per case, when the cache is built
    first = cache[0]
    for _ in range(4):
        assert cache[0]["image"] is first["image"]
    assert len(calls) == 3
    x = first["image"]
    assert x.dtype == np.float32 and abs(float(x.mean())) < 1e-4  # z-scored
    assert first["label"].dtype == np.int16


def test_disk_cache_is_keyed_by_the_preprocessing_settings(tmp_path):
    records = _records(2)
    for intensity in ("zscore", "none"):
        ln = _learner(cache_dir=str(tmp_path), intensity=intensity)
        cache = ln._cached(records, "training")
        expected = records[0]["input"] if intensity == "none" else None
        if expected is not None:
            assert np.allclose(cache[0]["image"], expected)
        else:
            assert abs(float(cache[0]["image"].mean())) < 1e-4
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert len(folders) == 2 and all(f.startswith("prep-") for f in folders)


# --- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"val_every": 0}, "val_every"),
        ({"val_every": "2"}, "val_every"),
        ({"val_every": True}, "val_every"),
        ({"val_every": 1.5}, "val_every"),
        ({"channels_last": "yes"}, "channels_last"),
        ({"channels_last": 1}, "channels_last"),
    ],
)
def test_bad_overhead_options_are_config_errors(options, match):
    with pytest.raises(ConfigError, match=match):
        _learner(**options)


def test_overhead_option_defaults():
    ln = _learner()
    assert (ln.val_every, ln.channels_last) == (1, "auto")
    ln = _learner(val_every=3, channels_last=False)
    assert (ln.val_every, ln.channels_last) == (3, False)


@pytest.mark.parametrize(
    ("dims", "value", "expected"),
    [
        (2, "auto", torch.channels_last),
        (3, "auto", torch.channels_last_3d),
        (2, False, torch.contiguous_format),
        (3, True, torch.channels_last_3d),
    ],
)
def test_memory_format_choice(dims, value, expected):
    from medlearn.imaging.segmentation.learner import memory_format

    assert memory_format(dims, value) == expected


# --- channels-last ---------------------------------------------------------------------------


def test_channels_last_module_computes_the_same_logits_and_gradients():
    from medlearn.imaging.segmentation.learner import SegmentationModule
    from medlearn.imaging.segmentation.models import make_loss

    kw = {"num_classes": 2, "lr": 1e-3}
    plain = SegmentationModule(_tiny_net(), make_loss("dice_ce"), **kw)
    fast = SegmentationModule(
        _tiny_net(), make_loss("dice_ce"), memory_format=torch.channels_last, **kw
    )
    conv = next(p for p in fast.net.parameters() if p.ndim == 4 and p.shape[1] > 1)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    x = torch.randn(2, 1, 16, 16)
    y = (x > 0).long()
    out = {}
    for name, module in (("plain", plain), ("fast", fast)):
        logits = module(x)
        module.loss_fn(logits, y).backward()
        grads = [p.grad.clone() for p in module.net.parameters()]
        out[name] = (logits.detach(), grads)
    assert torch.allclose(out["plain"][0], out["fast"][0], atol=1e-5)
    for a, b in zip(out["plain"][1], out["fast"][1], strict=True):
        assert torch.allclose(a, b, atol=1e-4)


# --- validation: pooled Dice, every N epochs -------------------------------------------------


def _logged(module):
    seen: dict[str, float] = {}
    module.log = lambda name, value, **_kw: seen.__setitem__(name, float(value))
    return seen


@pytest.mark.parametrize("k", [2, 3])
def test_validation_dice_and_loss_match_a_direct_computation(k):
    from medlearn.imaging.segmentation.learner import SegmentationModule
    from medlearn.imaging.segmentation.models import make_loss

    g = torch.Generator().manual_seed(k)
    module = SegmentationModule(torch.nn.Identity(), make_loss("dice_ce"), num_classes=k, lr=1e-3)
    batches = []
    for n in (2, 3):
        logits = torch.randn(n, k, 8, 8, generator=g)
        logits[:, 1, 0, 0] = logits[:, 0, 0, 0]  # a tie: arg-max picks class 0
        batches.append((logits, torch.randint(0, k, (n, 1, 8, 8), generator=g)))
    seen = _logged(module)
    module.on_validation_epoch_start()
    for i, b in enumerate(batches):
        module.validation_step(b, i)
    module.on_validation_epoch_end()
    pred = torch.cat([b[0].argmax(1) for b in batches])
    truth = torch.cat([b[1][:, 0] for b in batches])
    dices = []
    for c in range(1, k):
        p, t = pred == c, truth == c
        dices.append(2 * (p & t).sum().item() / (p.sum() + t.sum()).item())
    assert seen["val_dice"] == pytest.approx(np.mean(dices))
    losses = [module.loss_fn(x, y).item() * len(x) for x, y in batches]
    assert seen["val_loss"] == pytest.approx(sum(losses) / 5, rel=1e-6)
    module.on_validation_epoch_start()  # the sums restart with each validation
    module.validation_step(batches[0], 0)
    module.on_validation_epoch_end()
    losses0 = module.loss_fn(*batches[0]).item()
    assert seen["val_loss"] == pytest.approx(losses0, rel=1e-6)


class _StopAt(Callback):
    """Tells the trainer to stop after batch ``batch`` of epoch ``epoch`` (as its timer
    does when the time budget is spent)."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.at = (epoch, batch)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if (trainer.current_epoch, batch_idx) == self.at:
            trainer.should_stop = True


def _fit(tmp_path, *, val_every: int, epochs: int, callbacks=()):
    from medlearn.imaging.segmentation.learner import SegmentationModule
    from medlearn.imaging.segmentation.models import make_loss
    from medlearn.training import fit_module

    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 1, 16, 16, generator=g)
    ds = torch.utils.data.TensorDataset(x, (x > 0).long())
    val = torch.utils.data.TensorDataset(x[:4], (x[:4] > 0).long())
    module = SegmentationModule(
        _tiny_net(),
        make_loss("dice_ce"),
        num_classes=2,
        lr=0.01,
        max_epochs=epochs,
        val_every=val_every,
        memory_format=torch.channels_last,
    )
    return fit_module(
        module,
        ds,
        val,
        batch_size=4,
        max_epochs=epochs,
        ckpt_dir=tmp_path,
        monitor="val_dice",
        mode="max",
        progress=False,
        num_threads=1,
        callbacks=list(callbacks),
    )


def test_val_every_validates_every_nth_epoch_and_the_last(tmp_path):
    out = _fit(tmp_path, val_every=2, epochs=5)
    validated = [r["epoch"] for r in out.history if "val_dice" in r]
    assert validated == [1, 3, 4]
    assert all("train_loss" in r for r in out.history) and len(out.history) == 5
    assert all("val_loss" in r for r in out.history if r["epoch"] in validated)
    assert out.best_score == pytest.approx(
        max(r["val_dice"] for r in out.history if r["epoch"] in validated)
    )
    assert out.epochs_completed == 5 and out.best_path is not None


def test_val_every_validates_an_epoch_cut_short_by_a_stop(tmp_path):
    out = _fit(tmp_path, val_every=2, epochs=10, callbacks=[_StopAt(epoch=2, batch=1)])
    assert out.stopped_by == "max_epochs"  # a callback stopped it, not the time limit
    assert [r["epoch"] for r in out.history if "val_dice" in r] == [1, 2]
    assert out.global_step == 2 * 4 + 2
    ckpt = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == out.global_step  # last.ckpt holds the final weights


def test_every_epoch_is_validated_by_default(tmp_path):
    out = _fit(tmp_path, val_every=1, epochs=3)
    assert [r["epoch"] for r in out.history if "val_dice" in r] == [0, 1, 2]


# --- through the learner: bundle weights stay in the standard layout -----------------------


def test_bundle_weights_are_contiguous_and_reload_channels_last(tmp_path):
    from medlearn.imaging.segmentation.learner import SegmentationLearner

    ln = _learner(patch_size=[16, 16], val_every=2)
    ln.epochs, ln.batch_size, ln.num_threads, ln.progress = 2, 4, 1, False
    records = _records(4)
    report = ln.fit(records[:3], records[3:], work_dir=tmp_path / "work", resume=False)
    assert report.extra["memory_format"] == "channels_last" and report.extra["val_every"] == 2
    manifest = ln.save(tmp_path / "bundle")
    state = torch.load(tmp_path / "bundle" / "weights" / "net.pt", weights_only=True)
    assert all(v.is_contiguous() for v in state.values())
    again = SegmentationLearner.load(tmp_path / "bundle", manifest)
    conv = next(p for p in again.net_.parameters() if p.ndim == 4 and p.shape[1] > 1)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    a, b = ln.predict_proba(records[0]), again.predict_proba(records[0])
    assert np.allclose(a, b, atol=1e-5)
    settings = json.loads((tmp_path / "bundle" / "preprocessing.json").read_text())
    assert settings["options"]["val_every"] == 2
