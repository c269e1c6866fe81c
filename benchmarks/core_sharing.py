"""How much does work on one CPU slow a model's forward pass on the other? Prints JSON.

The serving benchmark (``benchmarks/serving.py --pin-cpus``) runs the model process alone on
the last CPU and the web server (with the load generator) on the others, and compares it
with the same model called in-process while the other CPUs are idle. On a VM whose virtual
CPUs are hyperthreads of one physical core, or otherwise share its execution units, the
model then gets slower per image merely because the web server is busy next to it.

This measures that directly: the 28-px ``simple_cnn`` of ``examples/imaging/pneumoniamnist.yaml``
(width 32, depth 4, eval mode, inference mode, channels-last, 1 thread, batch 32) runs on the
last CPU for ``--seconds`` at a time while the first CPU is

- ``idle``;
- ``python``: a pure-Python integer loop (what a busy event loop mostly is: it fits in the
  L1 cache, so it competes only for the core's execution units, not memory);
- ``matmul``: a 256 × 256 float32 matrix product in a loop (1 thread).

The three conditions are interleaved for ``--rounds`` rounds (this VM's speed drifts within
minutes) and reported as images per second, with medians and the ratio of each busy
condition to ``idle`` in the same round.

Usage::

    python benchmarks/core_sharing.py [--rounds 8] [--seconds 1.5]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from typing import Any

import torch

CONDITIONS = ("idle", "python", "matmul")


def _neighbour(kind: str, cpu: int, stop: Any) -> None:
    os.sched_setaffinity(0, {cpu})
    torch.set_num_threads(1)
    if kind == "python":
        while not stop.is_set():
            total = 0
            for i in range(100_000):
                total += i
    else:
        a = torch.randn(256, 256)
        while not stop.is_set():
            a @ a


def _throughput(net: torch.nn.Module, x: torch.Tensor, seconds: float) -> float:
    with torch.inference_mode():
        for _ in range(5):
            net(x)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            net(x)
            n += 1
        return n * len(x) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=1.5)
    args = ap.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("needs at least 2 CPUs")
    model_cpu, other_cpu = cpus[-1], cpus[0]
    os.sched_setaffinity(0, {model_cpu})
    torch.set_num_threads(1)

    from medlearn.registry import MODELS

    torch.manual_seed(0)
    net = MODELS.get("simple_cnn")(in_channels=1, num_classes=2, image_size=28, width=32, depth=4)
    net = net.eval().to(memory_format=torch.channels_last)
    x = torch.rand(32, 1, 28, 28).contiguous(memory_format=torch.channels_last)

    ctx = mp.get_context("spawn")
    rates: dict[str, list[float]] = {c: [] for c in CONDITIONS}
    for r in range(args.rounds):
        for cond in CONDITIONS:
            stop, proc = ctx.Event(), None
            if cond != "idle":
                proc = ctx.Process(target=_neighbour, args=(cond, other_cpu, stop))
                proc.start()
                time.sleep(0.3)  # let it start spinning
            rates[cond].append(round(_throughput(net, x, args.seconds), 1))
            stop.set()
            if proc is not None:
                proc.join()
        print(
            f"[core-sharing] round {r + 1}: {[rates[c][-1] for c in CONDITIONS]}", file=sys.stderr
        )
    ratios = {
        c: [round(b / a, 3) for a, b in zip(rates["idle"], rates[c], strict=True)]
        for c in CONDITIONS[1:]
    }
    return {
        "model": "simple_cnn width 32 depth 4, 28 px, batch 32, 1 thread, channels-last",
        "model_cpu": model_cpu,
        "other_cpu": other_cpu,
        "images_per_s": rates,
        "median_images_per_s": {c: round(statistics.median(v), 1) for c, v in rates.items()},
        "ratio_to_idle_same_round": ratios,
        "median_ratio_to_idle": {c: round(statistics.median(v), 3) for c, v in ratios.items()},
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
