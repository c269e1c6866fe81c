"""fit_module: trains, checkpoints atomically and safely, stops, and resumes exactly."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from medlearn.errors import CheckpointError, ConfigError
from medlearn.training import AtomicCheckpointIO, FitOutcome, SeededSampler, fit_module
from medlearn.training.testing import BoringClassifier, make_blobs_dataset

SCRIPT = Path(__file__).with_name("_train_script.py")


def _load_script():
    spec = importlib.util.spec_from_file_location("_train_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def blobs():
    return make_blobs_dataset(256, seed=0), make_blobs_dataset(128, seed=1)


def fit(tmp_path: Path, blobs, *, seed: int = 0, lr: float = 1e-2, **kwargs) -> tuple:
    torch.manual_seed(seed)
    module = BoringClassifier(lr=lr)
    kwargs = {"batch_size": 32, "max_epochs": 4, "progress": False, "seed": seed, **kwargs}
    outcome = fit_module(module, *blobs, ckpt_dir=tmp_path / "ckpt", **kwargs)
    return module, outcome


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_trains_to_high_accuracy_with_loadable_checkpoints(tmp_path, blobs, capfd) -> None:
    module, out = fit(tmp_path, blobs, monitor="val_acc", mode="max")
    assert isinstance(out, FitOutcome)
    assert out.best_score is not None and out.best_score > 0.9
    assert out.history[-1]["val_acc"] > 0.9
    assert (out.stopped_by, out.epochs_completed, out.global_step) == ("max_epochs", 4, 32)
    assert out.samples_seen == 4 * 256
    assert [h["epoch"] for h in out.history] == [0, 1, 2, 3]
    assert {"train_loss", "val_loss", "val_acc"} <= set(out.history[0])
    assert out.best_path == tmp_path / "ckpt" / "best.ckpt"
    for path in (out.best_path, out.last_path):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        assert "state_dict" in ckpt
    best = torch.load(out.best_path, weights_only=True)
    assert same_weights(module.state_dict(), best["state_dict"])  # best weights are loaded
    last = torch.load(out.last_path, weights_only=True)
    assert (last["epoch"], last["global_step"]) == (3, 32)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["best.ckpt", "last.ckpt"]
    err = capfd.readouterr().err
    assert "GPU available" not in err and "LOCAL_RANK" not in err  # Lightning's chatter is off


def test_same_seed_same_weights_other_seed_other_weights(tmp_path, blobs) -> None:
    a, _ = fit(tmp_path / "a", blobs, max_epochs=2)
    b, _ = fit(tmp_path / "b", blobs, max_epochs=2)
    c, _ = fit(tmp_path / "c", blobs, max_epochs=2, seed=1)
    assert same_weights(a.state_dict(), b.state_dict())
    assert not same_weights(a.state_dict(), c.state_dict())


def test_early_stopping_on_a_plateau(tmp_path, blobs) -> None:
    _, out = fit(tmp_path, blobs, lr=0.0, max_epochs=30, patience=2)
    assert out.stopped_by == "early_stopping"
    assert out.epochs_completed == 3  # epoch 0 sets the best, 1 and 2 do not improve


def test_max_minutes_stops_with_max_time(tmp_path, blobs) -> None:
    t0 = time.perf_counter()
    _, out = fit(tmp_path, blobs, max_epochs=100_000, max_minutes=0.01)
    assert out.stopped_by == "max_time"
    assert out.epochs_completed < 100_000
    assert time.perf_counter() - t0 < 30


def test_without_validation_keeps_last_weights(tmp_path, blobs) -> None:
    module, out = fit(tmp_path, (blobs[0], None), max_epochs=2)
    assert out.best_path is None and out.best_score is None
    assert out.history and "train_loss" in out.history[-1]
    last = torch.load(out.last_path, weights_only=True)
    assert same_weights(module.state_dict(), last["state_dict"])


def test_unknown_monitor_fails_before_training(tmp_path, blobs) -> None:
    with pytest.raises(ConfigError, match="monitors 'val_auroc'.*val_acc, val_loss"):
        fit(tmp_path, blobs, monitor="val_auroc")
    assert not (tmp_path / "ckpt" / "last.ckpt").exists()


def test_resume_of_an_early_stopped_run_does_not_train_again(tmp_path, blobs) -> None:
    first, out1 = fit(tmp_path, blobs, lr=0.0, max_epochs=30, patience=2)
    again, out2 = fit(tmp_path, blobs, lr=0.0, max_epochs=30, patience=2, resume=True)
    assert (out2.stopped_by, out2.samples_seen) == ("early_stopping", 0)
    assert out2.epochs_completed == out1.epochs_completed
    assert out2.best_score == out1.best_score and len(out2.history) == len(out1.history)
    assert same_weights(first.state_dict(), again.state_dict())


def test_resume_from_another_model_set_up_is_refused_with_a_clear_error(tmp_path, blobs) -> None:
    fit(tmp_path, blobs, max_epochs=1)

    class WithExtraWeights(BoringClassifier):  # e.g. an averaged copy switched on later
        def __init__(self, lr: float) -> None:
            super().__init__(lr=lr)
            self.register_buffer("ema_updates", torch.zeros((), dtype=torch.int64))

    with pytest.raises(CheckpointError) as err:
        fit_module(
            WithExtraWeights(lr=1e-2),
            *blobs,
            ckpt_dir=tmp_path / "ckpt",
            batch_size=32,
            max_epochs=2,
            progress=False,
            resume=True,
        )
    text = str(err.value) + (err.value.hint or "")
    assert "last.ckpt" in text and "ema_updates" in text and "without --resume" in text


def test_resume_without_checkpoint_starts_fresh_and_fresh_run_clears_old(tmp_path, blobs) -> None:
    _, out = fit(tmp_path, blobs, max_epochs=1, resume=True)
    assert out.epochs_completed == 1
    _, out = fit(tmp_path, blobs, max_epochs=2, resume=False)
    assert out.epochs_completed == 2 and out.samples_seen == 2 * 256


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path) -> None:
    """Kill a training process mid-run and resume: the weights are bit-identical to a run
    that was never interrupted (resumed here, after other training changed every RNG)."""
    script = _load_script()
    ckpt_dir = tmp_path / "killed"
    log = (tmp_path / "killed.log").open("w")
    cmd = [sys.executable, str(SCRIPT), str(ckpt_dir), "--epochs", "6", "--sleep", "0.1"]
    victim = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        # the uninterrupted reference, while the other process starts
        ref_module, ref = script.train(tmp_path / "ref", epochs=6, resume=False)
        last = ckpt_dir / "last.ckpt"
        deadline = time.monotonic() + 120
        epoch = -1
        while epoch < 2:
            assert victim.poll() is None, "training finished before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint of epoch 2 in time"
            if last.exists():
                epoch = torch.load(last, map_location="cpu", weights_only=True)["epoch"]
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=30) == -signal.SIGKILL
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
        log.close()
    killed_at = torch.load(last, map_location="cpu", weights_only=True)
    assert 2 <= killed_at["epoch"] < 5

    torch.manual_seed(12345)  # process history must not matter
    module, out = script.train(ckpt_dir, epochs=6, resume=True)
    assert (out.epochs_completed, out.global_step) == (6, ref.global_step)
    assert 0 < out.samples_seen < 6 * 256  # it continued rather than starting over
    assert same_weights(module.state_dict(), ref_module.state_dict())
    resumed_last = torch.load(last, weights_only=True)["state_dict"]
    ref_last = torch.load(tmp_path / "ref" / "last.ckpt", weights_only=True)["state_dict"]
    assert same_weights(resumed_last, ref_last)
    assert [h["epoch"] for h in out.history] == list(range(6))
    assert [h["val_loss"] for h in out.history] == [h["val_loss"] for h in ref.history]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, "'batch_size'"),
        ({"max_epochs": 0}, "'max_epochs'"),
        ({"mode": "maximum"}, "'mode'"),
        ({"patience": 0}, "'patience'"),
        ({"max_minutes": -1.0}, "'max_minutes'"),
        ({"seed": -1}, "'seed'"),
        ({"num_threads": 0}, "'num_threads'"),
        ({"drop_last": True, "batch_size": 1000}, "drop_last"),
    ],
)
def test_bad_arguments_raise_config_error(tmp_path, blobs, kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        fit(tmp_path, blobs, **kwargs)


def test_patience_without_validation_and_empty_training_set(tmp_path, blobs) -> None:
    with pytest.raises(ConfigError, match="needs a validation set"):
        fit(tmp_path, (blobs[0], None), patience=2)
    empty = torch.utils.data.TensorDataset(torch.zeros(0, 8), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ConfigError, match="empty"):
        fit(tmp_path, (empty, blobs[1]))


# --- pieces --------------------------------------------------------------------------------


def test_seeded_sampler_depends_only_on_seed_and_epoch() -> None:
    def order(seed: int, epoch: int) -> list[int]:
        s = SeededSampler(50, seed=seed)
        s.set_epoch(epoch)
        torch.manual_seed(np.random.randint(1000))  # global RNG state must not matter
        return list(s)

    assert order(0, 3) == order(0, 3)
    assert sorted(order(0, 3)) == list(range(50))
    assert order(0, 3) != order(0, 4) and order(0, 3) != order(1, 3)
    assert list(SeededSampler(5, shuffle=False)) == [0, 1, 2, 3, 4] and len(SeededSampler(5)) == 5


def test_atomic_checkpoint_io_keeps_the_old_file_when_a_write_fails(tmp_path, monkeypatch) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "epoch": 1}, path)

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "epoch": 2}, path)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temp file left
    assert io.load_checkpoint(path)["epoch"] == 1


def test_checkpoints_hold_only_what_weights_only_loading_reads(tmp_path) -> None:
    class Hparam:
        pass

    io = AtomicCheckpointIO()
    path = tmp_path / "x.ckpt"
    ckpt = {
        "state_dict": {"w": torch.ones(2)},
        "extra": {"n": np.int64(3), "a": np.arange(3), "p": tmp_path},
        "hyper_parameters": {"obj": Hparam(), "lr": 0.1},
    }
    io.save_checkpoint(ckpt, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded["extra"]["n"] == 3 and torch.equal(loaded["extra"]["a"], torch.arange(3))
    assert loaded["extra"]["p"] == str(tmp_path) and loaded["hyper_parameters"]["lr"] == 0.1
    assert "Hparam" in loaded["hyper_parameters"]["obj"]
    with pytest.raises(CheckpointError, match="'extra.obj' holds a Hparam"):
        io.save_checkpoint({"extra": {"obj": Hparam()}}, path)
