"""The regression task handler: metrics with CIs, pooled scoring, predict rows, report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medlearn.config import validate_config
from medlearn.data import make_record
from medlearn.registry import TASKS
from medlearn.tasks import RunContext
from medlearn.training import FitReport


class _Linear:
    """A fitted stand-in learner: predicts 2 * x."""

    def predict_logits(self, records, *, tta=False):
        return np.array([[2.0 * r["input"]["x"]] for r in records])


def _records(n: int, offset: int = 0):
    rng = np.random.default_rng(offset)
    out = []
    for i in range(n):
        x = float(rng.normal())
        out.append(make_record(f"r{offset + i}", {"x": x}, 2.0 * x + 0.1 * float(rng.normal())))
    return out


def _cfg():
    return validate_config(
        {
            "task": "regression",
            "data": {"path": "x.csv", "target": "y"},
            "model": {"name": "random_forest"},
            "evaluation": {"metrics": ["rmse", "auroc", "r2"], "bootstrap": 200},
        }
    )


def test_run_scores_val_and_test_with_cis(tmp_path: Path) -> None:
    handler = TASKS.get("regression")()
    parts = {"train": _records(5), "val": _records(30, 100), "test": _records(40, 200)}
    ctx = RunContext(
        cfg=_cfg(),
        data=None,
        parts=parts,
        learner=_Linear(),
        fit=FitReport(0.0, [1], ["x"]),
        run_dir=tmp_path,
        echo=lambda s: None,
    )
    out = handler.run(ctx)
    assert set(out.metrics) == {"test", "val"}
    assert list(out.metrics["test"]) == ["rmse", "r2"]  # auroc does not apply and is dropped
    y = np.array([r["target"] for r in parts["test"]])
    pred = np.array([2.0 * r["input"]["x"] for r in parts["test"]])
    rmse = float(np.sqrt(np.mean((y - pred) ** 2)))
    assert abs(out.metrics["test"]["rmse"]["value"] - rmse) < 1e-5
    lo, hi = out.metrics["test"]["rmse"]["ci95"]
    assert lo <= rmse <= hi
    assert out.metrics["test"]["r2"]["value"] > 0.95
    frame = out.predictions
    assert set(frame["split"]) == {"val", "test"}
    pooled = handler.score(frame[frame["split"] == "test"], _cfg())
    assert pooled["rmse"]["value"] == out.metrics["test"]["rmse"]["value"]
    sections = handler.report_sections(tmp_path, {}, frame, _cfg(), {})
    assert (
        sections.sections[0][0] == "scatter" and "data:image/png;base64" in sections.sections[0][2]
    )


def test_predict_rows() -> None:
    handler = TASKS.get("regression")()
    rows = handler.predict(_Linear(), {"name": "m"}, _records(3))
    assert [set(r) for r in rows] == [{"input", "prediction", "model"}] * 3
    assert rows[0]["prediction"] == round(2.0 * _records(3)[0]["input"]["x"], 6)
    assert isinstance(pd.DataFrame(rows), pd.DataFrame)
