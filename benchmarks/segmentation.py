"""Segmentation benchmark: prints one JSON document.

(a) ISBI-2012 membranes: medlearn (pipeline, ``examples/imaging/isbi_membranes.yaml``) vs a
    plain MONAI reference loop (same network, same DiceCE loss, full 512x512 images, Adam) on
    the same 6 held-out test images; medlearn's budget is 0.65x the reference's wall clock
    (its measured fit time, set-up and validation included, must be <= 0.7x).
    Targets: foreground Dice >= reference + 0.01 at <= 0.7x its wall time. The example trains
    with ``precision: auto`` (bfloat16 mixed precision on CPUs with native bfloat16); the
    reference stays a plain float32 loop unless ``--ref-precision bf16`` adds autocast to it.
(b) 3-D phantom lesions (``examples/imaging/phantom3d_lesions.yaml``): lesion sensitivity >= 0.95
    at <= 0.5 false positives per volume on the test cases.
(c) Sliding-window inference throughput on a 3-D volume: medlearn's ``predict_volume`` vs
    calling MONAI's ``sliding_window_inference`` directly (overhead ratio <= 1.1).
(d) ``--only steps`` (not in the default run): seconds per training step (forward, DiceCE,
    backward, fused AdamW) of registered networks in three layouts: the default one,
    channels-last as PyTorch does it, and channels-last as medlearn trains (instance norms
    swapped for :mod:`medlearn.imaging.norms`' twins). No target; it shows which layout the
    ``channels_last: auto`` default should pick.

Usage (from the repository root, MEDLEARN_DATA_DIR set)::

    python benchmarks/segmentation.py [--ref-seconds 240] [--threads 2]
        [--only isbi|phantom|throughput|steps] [--skip-isbi] [--skip-phantom]
        [--ref-precision 32|bf16]           # bf16: the reference loop under torch.autocast
        [--set data.options.tta=flip ...]   # extra overrides of medlearn's ISBI run file
        # e.g. --set data.options.channels_last=false --set data.options.val_every=1: the
        # fit-overhead options off, to compare epochs per budget with the example's defaults

``--set`` changes medlearn's training (for trying variants); the reference loop keeps its
own optimiser, batch and full images, but builds the same network from ``model.*``, so a
``model.*`` override changes both sides.

Timings on a shared CPU are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
#: The reference loop's batch (full 512x512 images); fixed, whatever the example's batch size.
REF_BATCH = 4


def _isbi(
    ref_seconds: float,
    threads: int,
    overrides: list[str] | None = None,
    ref_precision: str = "32",
) -> dict:
    from monai.losses import DiceCELoss

    from medlearn.config import load_config
    from medlearn.imaging.segmentation.metrics import case_metrics
    from medlearn.imaging.segmentation.task import score_frame
    from medlearn.pipeline import load_data, train
    from medlearn.registry import MODELS

    # Lightning's timer stops at a batch boundary and fit time includes set-up and the last
    # validation, so medlearn is given 0.65x the reference's budget to land at <= 0.7x its
    # wall time (the check below uses the measured fit time).
    budget = 0.65 * ref_seconds
    cfg = load_config(
        ROOT / "examples/imaging/isbi_membranes.yaml",
        [
            f"training.max_minutes={budget / 60:.4f}",
            "training.epochs=1000",
            "training.progress=false",
            f"training.num_threads={threads}",
            *(overrides or []),
        ],
    )
    out = Path(tempfile.mkdtemp(prefix="seg-bench-isbi-"))
    t0 = time.perf_counter()
    res = train(cfg, out=out, echo=lambda _l: None)
    ours_wall = time.perf_counter() - t0
    ours = res.metrics
    splits = json.loads((out / "splits.json").read_text())

    # -- the plain MONAI reference loop -------------------------------------------------------
    data = load_data(cfg)
    by_id = data.by_id()
    train_ids = splits["train"] + splits["val"]
    test_ids = splits["test"]

    def norm(x: np.ndarray) -> np.ndarray:
        return (x - x.mean()) / (x.std() + 1e-6)

    xs = torch.from_numpy(np.stack([norm(by_id[i]["input"]) for i in train_ids])).float()
    ys = torch.from_numpy(np.stack([by_id[i]["target"] for i in train_ids]))[:, None].long()
    torch.manual_seed(0)
    net = MODELS.get(cfg.model.name)(
        spatial_dims=2, in_channels=1, out_channels=2, **cfg.model.params
    )
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    steps = 0
    net.train()
    while time.perf_counter() - t0 < ref_seconds:
        idx = torch.randint(0, len(xs), (REF_BATCH,), generator=g)
        xb, yb = xs[idx], ys[idx]
        if torch.rand((), generator=g) < 0.5:
            xb, yb = xb.flip(-1), yb.flip(-1)
        opt.zero_grad()
        if ref_precision == "bf16":  # the same autocast a hand-written loop would add
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = net(xb)
            loss = loss_fn(logits.float(), yb)
        else:
            loss = loss_fn(net(xb), yb)
        loss.backward()
        opt.step()
        steps += 1
    ref_fit = time.perf_counter() - t0
    net.eval()
    rows = []
    with torch.no_grad():
        for i in test_ids:
            rec = by_id[i]
            x = torch.from_numpy(norm(rec["input"]))[None].float()
            pred = net(x).argmax(1)[0].numpy()
            row, _ = case_metrics(pred, rec["target"], num_classes=2, lesions=False)
            rows.append({"id": i, "patient_id": rec["patient_id"], **row})
    import pandas as pd

    ref_metrics = score_frame(pd.DataFrame(rows), ["dice", "iou", "hd95"], bootstrap=1000)
    test = ours["metrics"]["test"]
    ours_fit = ours["timing"]["fit_seconds"]
    return {
        "dataset": "isbi2012_membranes (foreground = membrane)",
        "n_test": len(test_ids),
        "medlearn": {
            "dice": test["dice"],
            "hd95": test["hd95"],
            "iou": test["iou"],
            "fit_seconds": ours_fit,
            "wall_seconds_incl_eval_report": round(ours_wall, 1),
            "epochs": ours["training"]["epochs"],
            "val_every": ours["training"].get("val_every"),
            "memory_format": ours["training"].get("memory_format"),
            "precision": ours["training"].get("precision"),
            "predict_seconds_val_test": ours["timing"].get("predict_seconds"),
            "postprocessing": ours.get("postprocessing"),
            "overrides": overrides or [],
        },
        "monai_reference": {
            **ref_metrics,
            "fit_seconds": round(ref_fit, 1),
            "steps": steps,
            "setup": "full 512x512 images, batch 4, Adam 1e-3, random h-flip, same network/loss",
            "precision": ref_precision,
        },
        "dice_gain": round(test["dice"]["value"] - ref_metrics["dice"]["value"], 4),
        "time_ratio": round(ours_fit / ref_fit, 3),
        "target": "dice >= reference + 0.01 at <= 0.7x its wall time",
        "met": bool(
            test["dice"]["value"] >= ref_metrics["dice"]["value"] + 0.01
            and ours_fit <= 0.7 * ref_fit
        ),
    }


def _phantom(threads: int) -> dict:
    from medlearn.config import load_config
    from medlearn.pipeline import train

    cfg = load_config(
        ROOT / "examples/imaging/phantom3d_lesions.yaml",
        [
            f"data.path={ROOT / 'examples/imaging/phantom3d_lesions.json'}",
            "training.progress=false",
            f"training.num_threads={threads}",
        ],
    )
    out = Path(tempfile.mkdtemp(prefix="seg-bench-phantom-"))
    res = train(cfg, out=out, echo=lambda _l: None)
    test = res.metrics["metrics"]["test"]
    sens = test["lesion_sensitivity"]["value"]
    fp = test["lesion_fp_per_volume"]["value"]
    import pandas as pd

    frame = pd.read_parquet(out / "predictions.parquet")
    part = frame[frame["split"] == "test"]
    return {
        "dataset": "phantom3d_lesions (32 cases, 64^3, seed 0; split 16/4/12)",
        "postprocessing": res.metrics.get("postprocessing"),
        "n_test": int(len(part)),
        "true_lesions": int(part["true_lesions"].sum()),
        "pred_lesions": int(part["pred_lesions"].sum()),
        "lesion_sensitivity": test["lesion_sensitivity"],
        "lesion_fp_per_volume": test["lesion_fp_per_volume"],
        "lesion_f1": test["lesion_f1"],
        "dice": test["dice"],
        "fit_seconds": res.metrics["timing"]["fit_seconds"],
        "target": "lesion_sensitivity >= 0.95 at <= 0.5 FP/volume",
        "met": bool(sens is not None and sens >= 0.95 and fp is not None and fp <= 0.5),
    }


def _throughput(threads: int) -> dict:
    from monai.inferers import sliding_window_inference

    from medlearn.imaging.segmentation.inference import predict_volume
    from medlearn.registry import MODELS

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = MODELS.get("unet")(
        spatial_dims=3, in_channels=1, out_channels=2, channels=(8, 16, 32), strides=(2, 2)
    ).eval()
    vol = torch.randn(1, 1, 128, 128, 96)
    roi = (64, 64, 64)
    kw = {"overlap": 0.25, "mode": "gaussian", "sw_batch_size": 4}

    def direct():
        with torch.no_grad():
            return sliding_window_inference(
                vol, roi, kw["sw_batch_size"], net, overlap=0.25, mode="gaussian"
            )

    def ours():
        return predict_volume(net, vol[0], roi_size=roi, **kw)

    direct()
    ours()
    t_direct, t_ours = [], []
    for _ in range(5):  # interleaved, so CPU contention hits both alike
        t0 = time.perf_counter()
        direct()
        t_direct.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ours()
        t_ours.append(time.perf_counter() - t0)
    n = vol[0, 0].numel()
    d, o = float(np.median(t_direct)), float(np.median(t_ours))
    return {
        "volume": list(vol.shape[2:]),
        "roi": list(roi),
        "overlap": 0.25,
        "monai_direct_voxels_per_s": round(n / d),
        "medlearn_voxels_per_s": round(n / o),
        "overhead_ratio": round(o / d, 3),
        "overhead_ratio_best_of_5": round(min(t_ours) / min(t_direct), 3),
        "note": "medlearn time includes the softmax over classes; medians of 5 interleaved runs",
        "target": "overhead ratio <= 1.1",
        "met": o / d <= 1.1,
    }


#: (label, network, params, spatial dims, batch, patch side) for ``--only steps``.
STEP_CASES = (
    ("isbi example", "basic_unet", {"features": [16, 16, 32, 64, 128, 16]}, 2, 2, 256),
    (
        "same, instance norm",
        "basic_unet",
        {"features": [16, 16, 32, 64, 128, 16], "norm": "instance"},
        2,
        2,
        256,
    ),
    ("dynunet 2-D", "dynunet", {"filters": [16, 32, 64, 128]}, 2, 2, 256),
    (
        "phantom example",
        "unet",
        {"channels": [8, 16, 32, 64], "strides": [2, 2, 2], "num_res_units": 0},
        3,
        8,
        32,
    ),
    (
        "basic_unet 3-D, instance norm",
        "basic_unet",
        {"features": [8, 8, 16, 32, 64, 8], "norm": "instance"},
        3,
        2,
        64,
    ),
    ("dynunet 3-D", "dynunet", {"filters": [8, 16, 32, 64]}, 3, 2, 64),
)


def _steps(threads: int, repeats: int = 5, per_repeat: int = 4) -> list[dict]:
    """Seconds per training step of each :data:`STEP_CASES` network in three layouts,
    interleaved (median over ``repeats`` rounds of ``per_repeat`` steps each)."""
    from medlearn.imaging.segmentation.learner import in_layout
    from medlearn.imaging.segmentation.models import make_loss
    from medlearn.registry import MODELS

    torch.set_num_threads(threads)
    rows = []
    for label, name, params, dims, batch, side in STEP_CASES:
        cl = torch.channels_last if dims == 2 else torch.channels_last_3d
        g = torch.Generator().manual_seed(0)
        x = torch.randn((batch, 1) + (side,) * dims, generator=g)
        y = (torch.rand((batch, 1) + (side,) * dims, generator=g) > 0.7).long()
        runs = {}
        for layout in ("default", "channels_last_stock", "channels_last_medlearn"):
            torch.manual_seed(0)
            net = MODELS.get(name)(spatial_dims=dims, in_channels=1, out_channels=2, **params)
            if layout == "channels_last_stock":
                net = net.to(memory_format=cl)
            elif layout == "channels_last_medlearn":
                net = in_layout(net, cl)
            fmt = torch.contiguous_format if layout == "default" else cl
            opt = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=True)
            runs[layout] = (net, opt, x.contiguous(memory_format=fmt))
        loss_fn = make_loss("dice_ce")

        for args in runs.values():  # warm-up (oneDNN primitive caches)
            _train_step(*args, loss_fn, y)
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(repeats):
            for layout, args in runs.items():
                t0 = time.perf_counter()
                for _ in range(per_repeat):
                    _train_step(*args, loss_fn, y)
                times[layout].append((time.perf_counter() - t0) / per_repeat)
        med = {k: round(float(np.median(v)), 4) for k, v in times.items()}
        rows.append(
            {
                "case": label,
                "model": name,
                "params": params,
                "input": [batch, 1] + [side] * dims,
                "seconds_per_step": med,
                "medlearn_speedup_vs_default": round(
                    med["default"] / med["channels_last_medlearn"], 2
                ),
                "medlearn_speedup_vs_stock_channels_last": round(
                    med["channels_last_stock"] / med["channels_last_medlearn"], 2
                ),
            }
        )
        _log_step(rows[-1])
    return rows


def _train_step(net, opt, xb, loss_fn, yb) -> None:
    opt.zero_grad(set_to_none=True)
    loss_fn(net(xb), yb).backward()
    opt.step()


def _log_step(row: dict) -> None:
    print(f"[steps] {row['case']}: {row['seconds_per_step']}", file=sys.stderr, flush=True)


def main() -> None:
    """Run the benchmark parts and print their JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref-seconds", type=float, default=240.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-isbi", action="store_true")
    ap.add_argument("--skip-phantom", action="store_true")
    ap.add_argument(
        "--only", choices=("isbi", "phantom", "throughput", "steps"), help="run just this part"
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override of medlearn's ISBI run file (repeatable); the reference is unchanged",
    )
    ap.add_argument(
        "--ref-precision",
        choices=("32", "bf16"),
        default="32",
        help="the reference loop's precision: 32 (plain, the target's reference) or bf16 "
        "(the loop with torch.autocast added, to see how much of a gain bfloat16 explains)",
    )
    args = ap.parse_args()
    os.environ.setdefault("MEDLEARN_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    torch.set_num_threads(args.threads)
    out: dict = {"threads": args.threads, "device": "cpu", "note": "shared CPU; timings noisy"}
    if args.only == "steps":
        out["training_steps"] = _steps(args.threads)
    if args.only in (None, "throughput"):
        out["sliding_window"] = _throughput(args.threads)
    if args.only == "phantom" or (args.only is None and not args.skip_phantom):
        out["phantom3d_lesions"] = _phantom(args.threads)
    if args.only == "isbi" or (args.only is None and not args.skip_isbi):
        out["isbi_membranes"] = _isbi(args.ref_seconds, args.threads, args.set, args.ref_precision)
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
