"""Tiny models and data for testing the trainer and anything built on it.

Like Lightning's ``BoringModel``: shipped with the package so domain and layer tests can train
something real in a second.

Example:
    >>> from medlearn.training import fit_module
    >>> from medlearn.training.testing import BoringClassifier, make_blobs_dataset
    >>> train, val = make_blobs_dataset(256, seed=0), make_blobs_dataset(64, seed=1)
    >>> out = fit_module(BoringClassifier(), train, val, batch_size=32, max_epochs=5,
    ...                  ckpt_dir="/tmp/boring", progress=False)
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

__all__ = ["BoringClassifier", "make_blobs_dataset"]


def make_blobs_dataset(
    n: int,
    seed: int,
    *,
    n_features: int = 8,
    n_classes: int = 2,
    spread: float = 1.0,
    centers_seed: int = 0,
) -> TensorDataset:
    """Gaussian blobs around fixed class centres: ``TensorDataset(x, y)``.

    The centres depend only on ``centers_seed``, so datasets drawn with different ``seed``
    (train, val, test) share them. With the defaults the classes are nearly separable.

    Args:
        n: number of samples; classes are balanced (``i % n_classes``, then shuffled).
        seed: seed of the samples.
        n_features: feature dimension ``F``.
        n_classes: number of classes ``C``.
        spread: standard deviation of the samples around their centre.
        centers_seed: seed of the class centres.

    Returns:
        ``x`` float32 ``(n, F)``, ``y`` int64 ``(n,)`` in ``[0, C)``.
    """
    centres = torch.randn(
        n_classes, n_features, generator=torch.Generator().manual_seed(centers_seed)
    )
    centres = 2.0 * centres
    g = torch.Generator().manual_seed(seed)
    y = (torch.arange(n) % n_classes)[torch.randperm(n, generator=g)]
    x = centres[y] + spread * torch.randn(n, n_features, generator=g)
    return TensorDataset(x.float(), y.long())


class BoringClassifier(pl.LightningModule):
    """A small MLP with dropout for ``(x, y)`` batches from :func:`make_blobs_dataset`.

    Logs ``train_loss`` (per epoch), ``val_loss`` and ``val_acc``. ``predict_step`` returns
    class probabilities ``(B, C)``.

    Args:
        in_features: input dimension ``F``.
        num_classes: number of classes ``C``.
        hidden: hidden units.
        dropout: dropout probability (makes training depend on the RNG, on purpose).
        lr: Adam learning rate; ``0`` gives a plateau (for early-stopping tests).
    """

    def __init__(
        self,
        in_features: int = 8,
        num_classes: int = 2,
        *,
        hidden: int = 32,
        dropout: float = 0.2,
        lr: float = 1e-2,
    ) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, C)`` of inputs ``(B, F)``."""
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y), batch_size=len(y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), batch_size=len(y))

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        return torch.softmax(self(x), dim=1)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)
