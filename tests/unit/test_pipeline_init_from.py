"""`model.init_from` and `training.freeze_backbone_epochs` are honoured where a learner
supports them and refused everywhere else (never silently ignored)."""

from __future__ import annotations

import pytest

from medlearn.config import validate_config
from medlearn.errors import ConfigError
from medlearn.pipeline import train


@pytest.mark.parametrize(
    ("model", "task"),
    [
        ("mlp", "binary"),
        ("gru", "binary"),
        ("unet", "segmentation"),
        ("deepsurv", "survival"),
        ("selfies_vae", "generation"),
    ],
)
def test_learners_without_init_from_refuse_it_before_reading_data(model, task, tmp_path):
    cfg = validate_config(
        {
            "task": task,
            "data": {"path": str(tmp_path / "never_read.csv"), "target": "y"},
            "model": {"name": model, "init_from": str(tmp_path / "some_run")},
        }
    )
    with pytest.raises(ConfigError, match=rf"model.init_from is not supported by model '{model}'"):
        train(cfg, out=tmp_path / "run", echo=lambda _m: None)
    assert not (tmp_path / "run" / "metrics.json").exists()

    frozen = cfg.model_copy(
        update={
            "model": cfg.model.model_copy(update={"init_from": None}),
            "training": cfg.training.model_copy(update={"freeze_backbone_epochs": 3}),
        }
    )
    with pytest.raises(ConfigError, match="training.freeze_backbone_epochs is not supported"):
        train(frozen, out=tmp_path / "run2", echo=lambda _m: None)


@pytest.mark.parametrize("model", ["simple_cnn", "dmpnn"])
def test_learners_with_init_from_accept_it(model, tmp_path):
    from medlearn.pipeline import _check_transfer, _learner_of
    from medlearn.registry import LEARNERS

    (tmp_path / "some_run" / "bundle").mkdir(parents=True)
    (tmp_path / "some_run" / "bundle" / "bundle.json").write_text("{}")  # found, not read

    cfg = validate_config(
        {
            "data": {"path": str(tmp_path / "x.csv")},
            "model": {"name": model, "init_from": str(tmp_path / "some_run")},
            "training": {"freeze_backbone_epochs": 2},
        }
    )
    _check_transfer(cfg, LEARNERS.get(_learner_of(cfg)))  # no error


def test_a_missing_init_from_is_named_before_any_data_is_read(tmp_path):
    from medlearn.errors import DataNotFoundError

    cfg = validate_config(
        {
            "task": "regression",
            "data": {"path": str(tmp_path / "never_read.csv"), "target": "y"},
            "model": {"name": "dmpnn", "init_from": str(tmp_path / "no_such_run")},
        }
    )
    with pytest.raises(DataNotFoundError, match=r"^model.init_from: No model bundle at") as err:
        train(cfg, out=tmp_path / "run", echo=lambda _m: None)
    assert "pretrain_descriptors.yaml" in (err.value.hint or "")
