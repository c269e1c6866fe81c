"""PneumoniaMNIST benchmark: medlearn's pipeline beside the MedMNIST paper's plain training loop.

Both train on the given train split (3,882 images), select on the official val split (524)
and are scored on the official test split (624) with the same metric code and bootstrap CIs.
The reference loop follows the MedMNIST v2 protocol (ResNet-18 with the 28-px stem, Adam
lr 1e-3, batch 128, cross-entropy, no augmentation, best epoch by val AUROC, argmax for
accuracy) and gets the same wall-clock budget as medlearn's fit.

Prints one JSON object. Usage (from the repository root)::

    MEDLEARN_DATA_DIR=../shared/data .venv/bin/python benchmarks/imaging_classification.py \
        [--minutes 10] [--config examples/imaging/pneumoniamnist.yaml] [--out runs/bench]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def matmul_peak_gflops(threads: int, n: int = 2048, repeats: int = 10) -> float:
    """Measured fp32 matmul throughput on this machine (the roofline to compare against)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9


def reference_loop(npz_path: Path, budget_s: float, seed: int, threads: int) -> dict:
    """The MedMNIST paper's protocol as a plain PyTorch loop (MONAI's ResNet-18, 28-px stem)."""
    from monai.networks.nets import ResNet

    from medlearn.evaluation import evaluate_predictions
    from medlearn.evaluation.metrics import auroc

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    z = np.load(npz_path)

    def tensors(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(z[f"{split}_images"].astype(np.float32) / 255.0)[:, None]
        x = (x - 0.5) / 0.5  # the paper's Normalize(mean=.5, std=.5)
        return x, torch.from_numpy(z[f"{split}_labels"].reshape(-1).astype(np.int64))

    (xtr, ytr), (xva, yva), (xte, yte) = tensors("train"), tensors("val"), tensors("test")
    net = ResNet(
        block="basic",
        layers=[2, 2, 2, 2],
        block_inplanes=[64, 128, 256, 512],
        spatial_dims=2,
        n_input_channels=1,
        num_classes=2,
        conv1_t_size=3,
        conv1_t_stride=1,
        no_max_pool=True,
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    @torch.no_grad()
    def proba(x: torch.Tensor) -> np.ndarray:
        net.eval()
        out = torch.cat([torch.softmax(net(x[i : i + 256]), 1) for i in range(0, len(x), 256)])
        return out.numpy()

    best_auc, best_state, epochs, seen = -1.0, None, 0, 0
    t0 = time.perf_counter()
    train_seconds = 0.0
    while time.perf_counter() - t0 < budget_s:
        net.train()
        perm = torch.randperm(len(xtr))
        t_epoch = time.perf_counter()
        for i in range(0, len(perm), 128):
            if time.perf_counter() - t0 >= budget_s:
                break
            idx = perm[i : i + 128]
            opt.zero_grad()
            loss_fn(net(xtr[idx]), ytr[idx]).backward()
            opt.step()
            seen += len(idx)
        train_seconds += time.perf_counter() - t_epoch
        epochs += 1
        val_auc = auroc(yva.numpy(), proba(xva)[:, 1])
        if val_auc > best_auc:
            best_auc = val_auc
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
    fit_seconds = time.perf_counter() - t0
    if best_state is not None:
        net.load_state_dict(best_state)
    p = proba(xte)
    metrics = evaluate_predictions(
        yte.numpy(),
        p,
        task="binary",
        metrics=["auroc", "accuracy"],
        threshold=0.5,
        bootstrap=1000,
        seed=seed,
    )
    return {
        "name": "reference: ResNet-18 (28) plain loop, MedMNIST protocol",
        "epochs": epochs,
        "fit_seconds": round(fit_seconds, 1),
        "train_images_per_second": round(seen / max(train_seconds, 1e-9), 1),
        "best_val_auroc": round(best_auc, 4),
        "test": metrics,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per side")
    parser.add_argument("--config", default="examples/imaging/pneumoniamnist.yaml")
    parser.add_argument("--out", default=None, help="run directory (default: a temp dir)")
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()

    from medlearn import catalog
    from medlearn.config import load_config
    from medlearn.pipeline import train
    from medlearn.training import configure_threads

    threads = configure_threads()
    peak = matmul_peak_gflops(threads)
    cfg = load_config(args.config, overrides=[f"training.max_minutes={args.minutes}"])
    cfg.training.progress = False
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="medlearn-bench-"))
    result = train(cfg, out=out, echo=lambda s: print(s, file=sys.stderr))
    doc = result.metrics
    ours = {
        "name": f"medlearn: {cfg.model.name} {cfg.model.params} x{cfg.training.ensemble}",
        "config": args.config,
        "epochs": doc["training"]["epochs"],
        "fit_seconds": doc["timing"]["fit_seconds"],
        "train_images_per_second": doc["timing"]["train_samples_per_second"],
        "achieved_train_gflops": round(doc["training"].get("achieved_gflops", float("nan")), 2),
        "test": {k: doc["metrics"]["test"][k] for k in ("auroc", "accuracy", "auprc", "ece")},
        "threshold": doc["threshold"],
        "temperature": doc["calibration"]["temperature"],
        "run_dir": str(out),
    }
    report = {
        "benchmark": "imaging_classification",
        "dataset": "pneumoniamnist (train 3882 as given, official val 524 / test 624)",
        "seed": cfg.training.seed,
        "split": "given",
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": threads,
            "matmul_peak_gflops": round(peak, 1),
        },
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
        "medlearn": ours,
        "targets": {"test_auroc": 0.96, "test_accuracy": 0.88, "train_minutes": 10},
    }
    report["medlearn"]["fraction_of_matmul_peak"] = round(ours["achieved_train_gflops"] / peak, 3)
    if not args.skip_reference:
        npz = catalog.resolve("pneumoniamnist")
        ref = reference_loop(npz, budget_s=doc["timing"]["fit_seconds"], seed=0, threads=threads)
        report["reference"] = ref
        report["ratio"] = {
            "test_auroc": round(ours["test"]["auroc"]["value"] / ref["test"]["auroc"]["value"], 4),
            "test_accuracy": round(
                ours["test"]["accuracy"]["value"] / ref["test"]["accuracy"]["value"], 4
            ),
            "train_images_per_second": round(
                ours["train_images_per_second"] / ref["train_images_per_second"], 2
            ),
        }
    report["meets_target"] = (
        ours["test"]["auroc"]["value"] >= 0.96
        and ours["test"]["accuracy"]["value"] >= 0.88
        and ours["fit_seconds"] <= 600
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
