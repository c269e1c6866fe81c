"""Serving fixtures: one tiny trained imaging bundle per session, a migrated SQLite database."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml


def train_tiny_bundle(png_dataset: Path, work: Path, *, seed: int = 3) -> Path:
    """Train the 16-px two-class CNN of tests/e2e/test_cli_pipeline.py in a few seconds."""
    from medlearn.cli import main

    runfile = work / "run.yaml"
    runfile.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "task": "binary",
                "data": {
                    "path": str(png_dataset),
                    "split": {"method": "stratified", "fractions": [0.5, 0.25, 0.25], "seed": 1},
                },
                "model": {"name": "simple_cnn", "params": {"width": 8}},
                "training": {
                    "epochs": 2,
                    "batch_size": 16,
                    "lr": 0.01,
                    "progress": False,
                    "seed": seed,
                },
                "evaluation": {"bootstrap": 20, "gallery": 0},
            }
        )
    )
    out = work / "run"
    assert main(["train", str(runfile), "--out", str(out)]) == 0
    return out / "bundle"


@pytest.fixture(scope="session")
def tiny_bundle(png_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_bundle(png_dataset, tmp_path_factory.mktemp("serving-bundle"))


@pytest.fixture(scope="session")
def tiny_bundle_b(png_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second version (another seed) for shadow and rollback tests."""
    return train_tiny_bundle(png_dataset, tmp_path_factory.mktemp("serving-bundle-b"), seed=5)


@pytest.fixture()
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'serving.db'}"


def write_risk_table(path: Path, n: int = 90, seed: int = 0) -> Path:
    """A seeded synthetic risk table: risk rises with age and smoker; chol is noise."""
    rng = np.random.default_rng(seed)
    lines = ["age,chol,smoker,y"]
    for _ in range(n):
        age = rng.normal(55, 10)
        smoker = "yes" if rng.random() < 0.4 else "no"
        logit = 0.15 * (age - 55) + (1.5 if smoker == "yes" else -0.7)
        y = int(rng.random() < 1 / (1 + np.exp(-logit)))
        lines.append(f"{age:.1f},{rng.normal(200, 30):.0f},{smoker},{y}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_tabular_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A logistic-regression bundle on a synthetic table (trains in about a second)."""
    from medlearn.cli import main

    work = tmp_path_factory.mktemp("serving-tabular")
    table = write_risk_table(work / "risk.csv")
    runfile = work / "run.yaml"
    runfile.write_text(
        yaml.safe_dump(
            {
                "name": "risk",
                "task": "binary",
                "data": {
                    "path": str(table),
                    "target": "y",
                    "split": {"method": "stratified", "fractions": [0.6, 0.2, 0.2], "seed": 0},
                },
                "model": {"name": "logistic_regression", "params": {"C": 1.0}},
                "training": {"seed": 0, "progress": False},
                "evaluation": {"bootstrap": 20, "gallery": 0},
            }
        )
    )
    assert main(["train", str(runfile), "--out", str(work / "run")]) == 0
    return work / "run" / "bundle"
