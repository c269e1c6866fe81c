"""End-to-end serving fixtures: one tiny trained imaging bundle shared by the whole session."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="session")
def serving_bundle(png_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 16-px two-class CNN bundle (1 epoch; a few seconds) used by every serving e2e test."""
    from medlearn.cli import main

    work = tmp_path_factory.mktemp("serving-e2e-bundle")
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
                "training": {"epochs": 1, "batch_size": 16, "progress": False, "seed": 3},
                "evaluation": {"bootstrap": 10, "gallery": 0},
            }
        )
    )
    assert main(["train", str(runfile), "--out", str(work / "run")]) == 0
    return work / "run" / "bundle"
