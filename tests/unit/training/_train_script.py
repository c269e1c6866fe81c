"""Train BoringClassifier with fit_module in its own process (killed and resumed by tests).

Usage:
    python _train_script.py CKPT_DIR --epochs 6 [--sleep 0.1] [--resume] [--out weights.pt]

Prints the FitOutcome's counters as one JSON line; ``--out`` saves the final weights. Tests
also import :func:`train` to run the same training in their own process.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

from medlearn.training import fit_module
from medlearn.training.testing import BoringClassifier, make_blobs_dataset

SEED = 7


class Slow(Callback):
    """Sleeps after every training batch, so a test can kill the process mid-training."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        time.sleep(self.seconds)


def train(ckpt_dir: Path, *, epochs: int, resume: bool, sleep: float = 0.0):
    """The run every test compares: same data, model, seed and threads in every process."""
    torch.manual_seed(SEED)
    module = BoringClassifier(dropout=0.5)
    outcome = fit_module(
        module,
        make_blobs_dataset(256, seed=0, spread=2.0),
        make_blobs_dataset(64, seed=1, spread=2.0),
        batch_size=32,
        max_epochs=epochs,
        ckpt_dir=ckpt_dir,
        seed=SEED,
        resume=resume,
        progress=False,
        num_threads=1,
        callbacks=[Slow(sleep)] if sleep else (),
    )
    return module, outcome


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("ckpt_dir", type=Path)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    module, outcome = train(args.ckpt_dir, epochs=args.epochs, resume=args.resume, sleep=args.sleep)
    if args.out:
        torch.save(module.state_dict(), args.out)
    print(
        json.dumps(
            {
                "epochs_completed": outcome.epochs_completed,
                "global_step": outcome.global_step,
                "samples_seen": outcome.samples_seen,
                "stopped_by": outcome.stopped_by,
            }
        )
    )


if __name__ == "__main__":
    main()
