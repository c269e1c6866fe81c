"""The Lightning module that trains DeepSurv (imported on first use: Lightning takes seconds to
import)."""

from __future__ import annotations

import math

import torch
from lightning.pytorch import LightningModule
from torch import nn

from medlearn.clinical._survival_models import cox_partial_nll

__all__ = ["DeepSurvModule"]


class DeepSurvModule(LightningModule):
    """Lightning task of DeepSurv: Cox partial likelihood, validation loss and C-index.

    Validation scores the whole validation set at once (the partial likelihood depends on the
    risk set), logging ``val_loss`` and ``val_c_index``.
    """

    def __init__(
        self, net: nn.Module, *, lr: float, weight_decay: float, optimizer: str, max_epochs: int
    ) -> None:
        super().__init__()
        self.net = net
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer_name = optimizer
        self.max_epochs = max_epochs
        self._val: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int):
        x, t, e = batch
        loss = cox_partial_nll(self(x), t, e)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(t))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        x, t, e = batch
        self._val.append((self(x).detach(), t, e))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        f = torch.cat([v[0] for v in self._val])
        t = torch.cat([v[1] for v in self._val])
        e = torch.cat([v[2] for v in self._val])
        self._val.clear()
        self.log("val_loss", cox_partial_nll(f, t, e))
        from medlearn.evaluation.survival import c_index

        c = c_index(t.numpy(), e.numpy().astype(int), f.double().numpy())
        self.log("val_c_index", float(c) if math.isfinite(c) else 0.5, prog_bar=True)

    def configure_optimizers(self):
        params = self.net.parameters()
        if self.optimizer_name == "sgd":
            return torch.optim.SGD(
                params, lr=self.lr, momentum=0.9, nesterov=True, weight_decay=self.weight_decay
            )
        if self.optimizer_name == "adamw":
            return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
