from __future__ import annotations

from pathlib import Path

import pytest

from medlearn.config import apply_overrides, check_params, dump_config, load_config, validate_config
from medlearn.errors import ConfigError

MINIMAL = {"data": {"dataset": "pneumoniamnist"}, "model": {"name": "resnet18"}}


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "run.yaml"
    p.write_text(text)
    return p


def test_minimal_file_gets_defaults(tmp_path: Path) -> None:
    cfg = load_config(
        _write(tmp_path, "data: {dataset: pneumoniamnist}\nmodel: {name: resnet18}\n")
    )
    assert cfg.task == "binary"
    assert cfg.data.split.method == "given"
    assert cfg.training.seed == 0 and cfg.evaluation.bootstrap == 1000


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({**MINIMAL, "bogus": 1}, "unknown key 'bogus'"),
        ({**MINIMAL, "training": {"epochz": 3}}, "unknown key 'training.epochz'"),
        ({**MINIMAL, "training": {"epochs": 0}}, "'training.epochs'"),
        ({**MINIMAL, "training": {"optimizer": "adagrad"}}, "'training.optimizer'"),
        ({**MINIMAL, "task": "ranking"}, "'task'"),
        ({"model": {"name": "resnet18"}}, "missing key 'data'"),
        ({"data": {"target": "y"}, "model": {"name": "x"}}, "needs a 'dataset'"),
        ({**MINIMAL, "data": {"dataset": "p", "split": {"fractions": [0.5, 0.5, 0.5]}}}, "sum"),
    ],
)
def test_invalid_files_are_refused_with_the_key(raw: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(raw)
    assert needle in str(info.value)


def test_unknown_key_message_lists_allowed_keys() -> None:
    with pytest.raises(ConfigError) as info:
        validate_config({**MINIMAL, "training": {"lrate": 1}})
    assert "allowed here:" in str(info.value) and "lr" in str(info.value)


def test_overrides_parse_types(tmp_path: Path) -> None:
    path = _write(tmp_path, "data: {dataset: pneumoniamnist}\nmodel: {name: resnet18}\n")
    cfg = load_config(
        path,
        overrides=[
            "training.lr=1e-4",
            "training.epochs=3",
            "training.deterministic=false",
            "evaluation.metrics=[auroc, f1]",
            "model.params.width=32",
            "data.split.method=stratified",
        ],
    )
    assert cfg.training.lr == pytest.approx(1e-4)
    assert cfg.training.epochs == 3 and cfg.training.deterministic is False
    assert cfg.evaluation.metrics == ["auroc", "f1"]
    assert cfg.model.params == {"width": 32}
    assert cfg.data.split.method == "stratified"


@pytest.mark.parametrize("bad", ["training.lr", "=3"])
def test_malformed_overrides(bad: str) -> None:
    with pytest.raises(ConfigError):
        apply_overrides(dict(MINIMAL), [bad])


def test_override_of_unknown_key_fails_validation(tmp_path: Path) -> None:
    path = _write(tmp_path, "data: {dataset: pneumoniamnist}\nmodel: {name: resnet18}\n")
    with pytest.raises(ConfigError, match="training.nope"):
        load_config(path, overrides=["training.nope=1"])


def test_missing_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "data: [unclosed\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(_write(tmp_path, "- a\n- b\n"))


def test_dump_round_trip_keeps_values() -> None:
    import yaml

    cfg = validate_config({**MINIMAL, "training": {"lr": 0.01}})
    text = dump_config(cfg, {"git_sha": "abc"})
    raw = yaml.safe_load(text)
    assert raw.pop("_run") == {"git_sha": "abc"}
    assert validate_config(raw) == cfg


def test_check_params_lists_accepted() -> None:
    def build(*, in_channels: int, width: int = 8, depth: int = 2) -> None: ...

    check_params(build, {"width": 4}, what="model 'x'", reserved=("in_channels",))
    with pytest.raises(ConfigError) as info:
        check_params(build, {"widht": 4}, what="model 'x'", reserved=("in_channels",))
    assert "widht" in str(info.value) and "width, depth" in str(info.value)
    with pytest.raises(ConfigError):
        check_params(build, {"in_channels": 3}, what="model 'x'", reserved=("in_channels",))
