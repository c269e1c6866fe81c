"""The Lightning module that trains the tabular MLP (imported on first use: Lightning takes
seconds to import)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import nn

__all__ = ["TabularMLPModule"]


class TabularMLPModule(LightningModule):
    """Lightning task for :class:`TabularMLP`: cross-entropy (weighted) or MSE.

    Logs ``train_loss``, ``val_loss`` and ``val_<monitor>`` (AUROC for classification when
    the monitor is a registered metric; regression monitors ``val_loss``).
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        task: str,
        lr: float,
        weight_decay: float = 0.0,
        class_weights: torch.Tensor | None = None,
        monitor: str = "loss",
    ) -> None:
        super().__init__()
        self.net = net
        self.task = task
        self.lr = lr
        self.weight_decay = weight_decay
        self.monitor = monitor
        self.register_buffer("class_weights", class_weights)
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.task == "regression":
            return F.mse_loss(out[:, 0], y.float())
        return F.cross_entropy(out, y.long(), weight=self.class_weights)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        loss = self._loss(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        out = self(x)
        self.log("val_loss", self._loss(out, y), on_epoch=True, batch_size=len(y))
        self._val.append((out.detach(), y.detach()))

    def on_validation_epoch_end(self) -> None:
        if not self._val or self.monitor == "loss" or self.task == "regression":
            self._val.clear()
            return
        import math

        from medlearn.registry import METRICS

        out = torch.cat([o for o, _ in self._val])
        y = torch.cat([t for _, t in self._val]).numpy()
        self._val.clear()
        proba = torch.softmax(out.float(), dim=1).numpy()
        meta = METRICS.meta(self.monitor)
        score = proba.argmax(1) if meta.get("needs") == "label" else proba
        if meta.get("needs") != "label" and proba.shape[1] == 2:
            score = proba[:, 1]
        try:
            value = float(METRICS.get(self.monitor)(y, score))
        except ValueError:
            value = float("nan")
        if not math.isfinite(value):
            value = 0.0 if meta.get("higher_is_better", True) else float("inf")
        self.log(f"val_{self.monitor}", value)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
