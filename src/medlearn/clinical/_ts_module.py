"""The Lightning module that trains the time-series networks (imported on first use: Lightning
takes seconds to import)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule

from medlearn.clinical._ts_models import TimeSeriesNet, cox_partial_likelihood

__all__ = ["TimeSeriesModule"]


class TimeSeriesModule(LightningModule):
    """Lightning task: weighted cross-entropy on mortality + auxiliary LOS and Cox losses.

    A batch is a dict of tensors: the inputs, ``y`` (class index), ``los`` (log1p days, NaN
    when unknown), ``surv_time`` and ``surv_event``. Logs ``train_loss``, ``val_loss`` (the
    mortality cross-entropy) and ``val_auroc``.
    """

    def __init__(
        self,
        net: TimeSeriesNet,
        *,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        class_weights: torch.Tensor | None = None,
        aux_weights: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.lr = lr
        self.weight_decay = weight_decay
        self.aux_weights = dict(aux_weights or {})
        self.register_buffer("class_weights", class_weights)
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.net(batch)

    def _losses(self, out, batch) -> dict[str, torch.Tensor]:
        losses = {
            "mortality": F.cross_entropy(out["logits"], batch["y"], weight=self.class_weights)
        }
        if self.aux_weights.get("los", 0) > 0 and "los" in batch:
            known = torch.isfinite(batch["los"])
            if known.any():
                losses["los"] = F.mse_loss(out["los"][known], batch["los"][known])
        if self.aux_weights.get("survival", 0) > 0 and "surv_time" in batch:
            losses["survival"] = cox_partial_likelihood(
                out["risk"], batch["surv_time"], batch["surv_event"]
            )
        return losses

    def training_step(self, batch, batch_idx: int):
        losses = self._losses(self(batch), batch)
        total = losses["mortality"] + sum(
            self.aux_weights.get(k, 0.0) * v for k, v in losses.items() if k != "mortality"
        )
        n = len(batch["y"])
        self.log("train_loss", total, on_step=False, on_epoch=True, batch_size=n)
        return total

    def validation_step(self, batch, batch_idx: int):
        out = self(batch)
        loss = F.cross_entropy(out["logits"], batch["y"])
        self.log("val_loss", loss, on_epoch=True, batch_size=len(batch["y"]))
        self._val.append((out["logits"].detach(), batch["y"].detach()))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        from medlearn.registry import METRICS

        logits = torch.cat([o for o, _ in self._val])
        y = torch.cat([t for _, t in self._val]).numpy()
        self._val.clear()
        score = torch.softmax(logits.float(), dim=1)[:, 1].numpy()
        try:
            value = float(METRICS.get("auroc")(y, score))
        except ValueError:
            value = float("nan")
        self.log("val_auroc", value if np.isfinite(value) else 0.0)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
