"""The Lightning module that trains an image classifier (imported on first use: Lightning takes
seconds to import)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import nn

from medlearn.registry import METRICS
from medlearn.training.precision import forward_in

__all__ = ["ClassificationModule"]


class ClassificationModule(LightningModule):
    """Cross-entropy classification of images with augmentation and a monitored val metric.

    Args:
        net: maps ``(B, C, H, W)`` to logits ``(B, K)``.
        num_classes: K.
        lr, weight_decay, optimizer, scheduler: optimisation settings.
        class_weights: per-class loss weights ``(K,)`` or ``None``.
        label_smoothing: cross-entropy label smoothing.
        augment: a callable on ``(B, C, H, W)`` batches with ``set_random_state`` (or None).
        monitor: metric name logged as ``val_<monitor>`` each epoch.
        backbone_params, freeze_backbone_epochs: train only the head for the first epochs.
        seed: base seed for the augmentation RNG (re-seeded from the global step).
        precision: ``"32"`` or ``"bf16"`` (the network's forward under bfloat16 autocast, its
            logits returned as float32, so the loss and the validation metric are float32).
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        num_classes: int,
        lr: float,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        scheduler: str = "none",
        max_epochs: int = 1,
        class_weights: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
        augment: Any = None,
        monitor: str = "auroc",
        backbone_params: Sequence[nn.Parameter] = (),
        freeze_backbone_epochs: int = 0,
        seed: int = 0,
        precision: str = "32",
    ) -> None:
        super().__init__()
        self.net = net
        self.precision = precision
        self.num_classes = num_classes
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer_name = optimizer
        self.scheduler_name = scheduler
        self.max_epochs = max_epochs
        self.register_buffer(
            "class_weights", class_weights if class_weights is not None else torch.ones(num_classes)
        )
        self.label_smoothing = label_smoothing
        self.augment = augment
        self.monitor = monitor
        self._backbone = list(backbone_params)
        self.freeze_backbone_epochs = freeze_backbone_epochs
        self.seed = seed
        self._val_logits: list[torch.Tensor] = []
        self._val_targets: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return forward_in(self.precision, self.net, x)

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            logits, y, weight=self.class_weights, label_smoothing=self.label_smoothing
        )

    def on_train_epoch_start(self) -> None:
        frozen = self.current_epoch < self.freeze_backbone_epochs
        for p in self._backbone:
            p.requires_grad_(not frozen)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        if self.augment is not None:
            self.augment.set_random_state(self.seed * 1_000_003 + self.global_step)
            x = self.augment(x)
        loss = self._loss(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        logits = self(x)
        self.log("val_loss", self._loss(logits, y), on_epoch=True, batch_size=len(y))
        self._val_logits.append(logits.detach())
        self._val_targets.append(y.detach())

    def on_validation_epoch_end(self) -> None:
        if not self._val_logits:
            return
        logits = torch.cat(self._val_logits)
        y = torch.cat(self._val_targets).numpy()
        self._val_logits.clear()
        self._val_targets.clear()
        if self.monitor == "loss":
            return
        proba = torch.softmax(logits.float(), dim=1).numpy()
        meta = METRICS.meta(self.monitor)
        if meta.get("needs") == "label":
            score = proba.argmax(axis=1)
        else:
            score = proba[:, 1] if self.num_classes == 2 else proba
        value = METRICS.get(self.monitor)(y, score)
        if not math.isfinite(value):
            value = 0.0 if meta.get("higher_is_better", True) else float("inf")
        self.log(f"val_{self.monitor}", float(value), prog_bar=True)

    def configure_optimizers(self):
        params = list(self.net.parameters())
        if self.optimizer_name == "sgd":
            opt = torch.optim.SGD(
                params, lr=self.lr, momentum=0.9, nesterov=True, weight_decay=self.weight_decay
            )
        elif self.optimizer_name == "adamw":
            opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        else:
            opt = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        if self.scheduler_name == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.max_epochs))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        if self.scheduler_name == "onecycle":
            steps = int(self.trainer.estimated_stepping_batches)
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=steps)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        return opt
