"""Serving fixtures: one tiny trained imaging bundle per session, a migrated SQLite database."""

from __future__ import annotations

from pathlib import Path

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
