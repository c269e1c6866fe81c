"""The Lightning module that trains a segmentation network on patches (imported on first use:
Lightning takes seconds to import)."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningModule
from torch import nn

from medlearn.imaging.segmentation.learner import budget_lr_factor, in_layout
from medlearn.training.precision import forward_in

__all__ = ["SegmentationModule"]


class SegmentationModule(LightningModule):
    """Patch-wise segmentation training with a MONAI loss; logs ``val_dice`` (foreground
    Dice pooled over validation patches), ``val_loss`` and ``train_loss`` once per epoch
    (accumulated as tensors, no per-step logging).

    Args:
        net: maps ``(B, C, *P)`` to logits ``(B, K, *P)``; converted to ``memory_format``.
        loss: a loss on logits and labels ``(B, 1, *P)``.
        num_classes: K.
        lr, weight_decay: Adam(W) settings.
        max_epochs: for the schedules.
        lr_schedule: ``cosine`` (per epoch over ``max_epochs``) or ``budget`` (per step, see
            :func:`budget_lr_factor`; progress is the larger of the share of steps and the
            share of the trainer's ``max_time`` used).
        warmup: warm-up share for ``budget``.
        val_every: validate every ``val_every`` epochs and on the final one (the last of
            ``max_epochs``, or the one in which the trainer was told to stop, e.g. by its
            time limit).
        memory_format: of the network's weights and its inputs (see :func:`memory_format`).
        ema: decay of an exponential moving average of the weights (0: none). It is updated
            after every optimiser step with the warmed-up decay ``min(ema, (1 + n) / (10 + n))``
            (``n`` earlier updates), validates in place of the trained weights and is saved in
            checkpoints (:attr:`ema_net`); buffers (norm statistics) are copied.
        precision: ``"32"`` or ``"bf16"`` (the network's forward under bfloat16 autocast,
            its logits returned as float32, so the loss is computed in float32).
    """

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        *,
        num_classes: int,
        lr: float,
        weight_decay: float = 0.0,
        max_epochs: int = 1,
        lr_schedule: str = "cosine",
        warmup: float = 0.05,
        val_every: int = 1,
        memory_format: torch.memory_format = torch.contiguous_format,
        ema: float = 0.0,
        precision: str = "32",
    ) -> None:
        super().__init__()
        self.precision = precision
        self.net = in_layout(net, memory_format)
        self.ema = float(ema)
        #: The averaged weights (``None`` without ``ema``); a submodule, so checkpoints hold it.
        self.ema_net: nn.Module | None = None
        if self.ema > 0:
            self.ema_net = copy.deepcopy(self.net).requires_grad_(False)
            self.register_buffer("ema_updates", torch.zeros((), dtype=torch.int64))
        self.loss_fn = loss
        self.num_classes = num_classes
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.lr_schedule = lr_schedule
        self.warmup = warmup
        self.val_every = int(val_every)
        self.memory_format = memory_format
        # Running sums (tensors: no per-step synchronisation or logging calls).
        self._train_loss = torch.zeros(2, dtype=torch.float64)  # sum of loss x n, n
        self._val_loss = torch.zeros(2, dtype=torch.float64)
        self._confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def _logits(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return forward_in(self.precision, net, x.contiguous(memory_format=self.memory_format))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._logits(self.net, x)

    def _evaluate(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the weights that are validated: the averaged ones under ``ema``."""
        return self._logits(self.net if self.ema_net is None else self.ema_net, x)

    @torch.no_grad()
    def update_ema(self) -> None:
        """Move the averaged weights towards the trained ones (after an optimiser step)."""
        if self.ema_net is None:
            return
        n = int(self.ema_updates)
        decay = min(self.ema, (1.0 + n) / (10.0 + n))
        averaged = list(self.ema_net.parameters())
        trained = list(self.net.parameters())
        torch._foreach_lerp_(averaged, trained, 1.0 - decay)
        for avg, cur in zip(self.ema_net.buffers(), self.net.buffers(), strict=True):
            avg.copy_(cur)
        self.ema_updates += 1

    def final_state(self) -> dict[str, torch.Tensor]:
        """The network weights a fit hands on: the averaged ones under ``ema``."""
        return (self.net if self.ema_net is None else self.ema_net).state_dict()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self._train_loss[0] += loss.detach().double() * len(x)
        self._train_loss[1] += len(x)
        return loss

    def on_train_epoch_start(self) -> None:
        self._train_loss.zero_()
        trainer = self._trainer
        if trainer is not None and self.val_every > 1:
            epoch, last = trainer.current_epoch, trainer.current_epoch + 1 >= self.max_epochs
            self._validate_this_epoch(last or (epoch + 1) % self.val_every == 0)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # Runs after the optimiser step and the callbacks' hooks (Lightning's Timer included),
        # before the trainer decides whether to validate: a run told to stop validates its
        # final epoch.
        self.update_ema()
        trainer = self._trainer
        if trainer is not None and self.val_every > 1 and trainer.should_stop:
            self._validate_this_epoch(True)

    def _validate_this_epoch(self, validate: bool) -> None:
        """Let the trainer validate after this epoch, or not (Lightning validates when
        ``(epoch + 1) % check_val_every_n_epoch == 0``)."""
        trainer = self.trainer
        trainer.check_val_every_n_epoch = 1 if validate else trainer.current_epoch + 2

    def on_train_epoch_end(self) -> None:
        total, n = self._train_loss.tolist()
        if n > 0:
            self.log("train_loss", total / n)

    def on_validation_epoch_start(self) -> None:
        self._val_loss.zero_()
        self._confusion.zero_()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        logits = self._evaluate(x)
        loss = self.loss_fn(logits, y)
        self._val_loss[0] += loss.double() * len(x)
        self._val_loss[1] += len(x)
        k = self.num_classes
        # arg-max (ties to the lower class); in two classes one comparison does it
        pred = (logits[:, 1] > logits[:, 0]).long() if k == 2 else logits.argmax(1)
        pairs = y[:, 0].reshape(-1).long() * k + pred.reshape(-1)
        self._confusion += torch.bincount(pairs, minlength=k * k).reshape(k, k)

    def on_validation_epoch_end(self) -> None:
        total, n = self._val_loss.tolist()
        if n > 0:
            self.log("val_loss", total / n)
        conf = self._confusion.double()
        inter, sums = conf.diagonal()[1:], (conf.sum(0) + conf.sum(1))[1:]  # truth x pred
        fg = sums > 0
        dices = (2 * inter[fg] / sums[fg]).tolist()
        value = float(np.mean(dices)) if dices else 0.0
        self.log("val_dice", value, prog_bar=True)

    def budget_progress(self) -> float:
        """Share of the training budget used: the larger of steps done / all steps and, under
        a time limit, time elapsed / ``max_time`` (0 when not attached to a trainer)."""
        from lightning.pytorch.callbacks import Timer

        trainer = self._trainer
        if trainer is None:
            return 0.0
        total = trainer.num_training_batches * max(1, self.max_epochs)
        progress = trainer.global_step / total if math.isfinite(total) and total > 0 else 0.0
        for cb in trainer.callbacks:
            if isinstance(cb, Timer):
                elapsed, left = cb.time_elapsed(), cb.time_remaining()
                if left is not None and elapsed + left > 0:
                    progress = max(progress, elapsed / (elapsed + left))
        return progress

    def configure_optimizers(self):
        params = list(self.net.parameters())
        # the fused kernel: the same update in one pass over the weights (CPU and CUDA)
        fused = bool(params) and all(p.device.type in ("cpu", "cuda") for p in params)
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay, fused=fused)
        if self.lr_schedule == "budget":
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda _step: budget_lr_factor(self.budget_progress(), self.warmup)
            )
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.max_epochs))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
