"""Training throughput of every registered imaging model, and augmentation cost (throwaway).

Usage:
    .venv/bin/python benchmarks/_model_speed.py [--threads 2] [--steps 3] [--repeats 2]
        [--models medcnn,resnet18] [--channels-last]

For each model: parameters and training images/second (batch 128 of 28x28x1, Adam, cross
entropy, default params), the best of ``--repeats`` timed runs of ``--steps`` steps after one
warm-up step (the best, because other processes on a shared machine only ever slow it down).
Then milliseconds per batch of 128 for each augmentation preset. Prints a table, then one JSON
object.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import monai
import torch
from torch import nn

import medlearn.imaging.models as models
import medlearn.imaging.transforms  # noqa: F401  (registers the presets)
from medlearn.registry import MODELS, TRANSFORMS


def train_speed(
    name: str, *, steps: int, repeats: int, batch: int, size: int, channels_last: bool
) -> float:
    torch.manual_seed(0)
    model = models.create_model(name, in_channels=1, num_classes=2, image_size=size).train()
    x = torch.randn(batch, 1, size, size)
    y = torch.randint(0, 2, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    step()  # warm-up
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        best = max(best, batch * steps / (time.perf_counter() - start))
    return best


def augment_ms(name: str, *, batch: int, size: int, calls: int = 50, repeats: int = 5) -> float:
    augment = TRANSFORMS.get(name)().set_random_state(0)
    x = torch.rand(batch, 1, size, size)
    for _ in range(3):
        augment(x)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            augment(x)
        best = min(best, (time.perf_counter() - start) / calls * 1000)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--models", default=",".join(MODELS.list(domain="imaging")))
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    for name in args.models.split(","):
        model = models.create_model(name, in_channels=1, num_classes=2, image_size=args.size)
        params = sum(p.numel() for p in model.parameters())
        speed = train_speed(
            name,
            steps=args.steps,
            repeats=args.repeats,
            batch=args.batch,
            size=args.size,
            channels_last=args.channels_last,
        )
        rows.append(
            {"model": name, "params_m": round(params / 1e6, 3), "train_img_s": round(speed)}
        )
        print(f"{name:<12} {params / 1e6:7.2f} M params  {speed:8.0f} train img/s", flush=True)

    augments = []
    for name in TRANSFORMS.list(domain="imaging"):
        ms = augment_ms(name, batch=args.batch, size=args.size)
        augments.append({"preset": name, "ms_per_batch": round(ms, 2)})
        print(f"augment {name:<8} {ms:6.2f} ms per batch of {args.batch}", flush=True)

    print(
        json.dumps(
            {
                "benchmark": "model_speed",
                "batch": args.batch,
                "image": [1, args.size, args.size],
                "threads": args.threads,
                "channels_last": args.channels_last,
                "models": rows,
                "augment": augments,
                "machine": platform.processor() or platform.machine(),
                "versions": {"torch": torch.__version__, "monai": monai.__version__},
            }
        )
    )


if __name__ == "__main__":
    main()
