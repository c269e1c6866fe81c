"""Domain-specialised task handlers and list targets (pipeline foundation for molecules)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medlearn.config import validate_config
from medlearn.errors import ConfigError
from medlearn.registry import TASKS
from medlearn.tasks import handler_for, handler_key


def test_handler_key_prefers_a_registered_specialisation() -> None:
    assert handler_key("regression", "molecules") == "molecules:regression"
    assert type(handler_for("regression", "molecules")).__name__ == "MoleculeRegressionTask"


def test_handler_key_falls_back_to_the_shared_handler() -> None:
    assert "imaging:binary" not in TASKS.list()
    assert handler_key("binary", "imaging") == "binary"
    assert handler_key("binary", None) == "binary"
    assert type(handler_for("binary", "imaging")).__name__ == "ClassificationTask"


def test_a_target_list_is_refused_by_a_single_target_reader(tmp_path: Path) -> None:
    from medlearn.pipeline import train

    table = tmp_path / "t.csv"
    table.write_text("a,b,y\n1,2,0\n2,3,1\n")
    cfg = validate_config(
        {
            "task": "binary",
            "data": {"path": str(table), "target": ["y", "b"]},
            "model": {"name": "logistic_regression"},
        }
    )
    with pytest.raises(ConfigError, match="reader takes a single target"):
        train(cfg, out=tmp_path / "run", echo=lambda _m: None)
