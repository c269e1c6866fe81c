"""One trainer for every torch model: :func:`fit_module`, a thin layer over Lightning.

What it adds to ``lightning.pytorch.Trainer``:

- **Reproducible under a seed, across resumes.** The training order comes from a
  :class:`SeededSampler` whose permutation depends only on ``(seed, epoch)``; every RNG is
  re-seeded from ``(seed, epoch)`` at each epoch start and from ``(seed, epoch, batch)`` at
  each training batch, so dropout and augmentation depend only on where training is. A run
  killed and resumed from ``last.ckpt`` ends with the same weights as an uninterrupted one.
- **Crash-safe checkpoints** ``last.ckpt`` (every epoch) and ``best.ckpt`` (best ``monitor``),
  written to a temporary file, fsynced and renamed (:class:`AtomicCheckpointIO`), holding only
  tensors and plain containers so they load with ``torch.load(weights_only=True)``; they are
  always loaded that way.
- **Sensible defaults**: threads from the machine, early stopping, a time budget, no logger
  files, Lightning's info chatter silenced, and the per-epoch metrics returned as ``history``.
"""

from __future__ import annotations

import contextlib
import enum
import io
import logging
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path, PurePath
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    ModelCheckpoint,
    Timer,
    TQDMProgressBar,
)
from lightning.pytorch.loggers.logger import Logger
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from medlearn._io import atomic_write_bytes
from medlearn.errors import CheckpointError, ConfigError
from medlearn.training._seed import derive_seed, reseed, seed_everything
from medlearn.training._threads import configure_threads

__all__ = ["AtomicCheckpointIO", "FitOutcome", "SeededSampler", "fit_module"]

StoppedBy = Literal["max_epochs", "early_stopping", "max_time"]

#: Counters mixed into derived seeds, so the streams never coincide.
_BATCH_STREAM, _EPOCH_STREAM, _ORDER_STREAM = 0, 1, 2

#: Lightning warnings that are expected with fit_module's choices and say nothing useful.
_NOISE = (
    r".*does not have many workers.*",  # num_workers=0 on purpose: data is in memory
    r".*Checkpoint directory .* exists and is not empty.*",
    r".*is smaller than the logging interval.*",
    r".*`max_epochs` was not set.*",
    r".*isinstance\(treespec, LeafSpec\).*",  # Lightning 2.6 internals on torch >= 2.10
)


@dataclass
class FitOutcome:
    """What :func:`fit_module` returns.

    Attributes:
        best_path: ``best.ckpt`` (best ``monitor``), or ``None`` without a validation set.
        last_path: ``last.ckpt``, written at the end of every epoch.
        best_score: the best value of ``monitor``, or ``None`` without a validation set.
        epochs_completed: epochs trained in total (resumed ones included).
        global_step: optimizer steps in total (resumed ones included).
        fit_seconds: wall time of this call.
        stopped_by: ``"max_epochs"``, ``"early_stopping"`` or ``"max_time"``.
        history: one dict per epoch: ``epoch`` and every metric the module logged with
            ``on_epoch=True`` (Lightning's ``_epoch`` suffix removed). An epoch ended by a crash
            and resumed may lack its training metrics; its validation metrics are kept.
        samples_seen: training samples processed by this call (for throughput).
    """

    best_path: Path | None
    last_path: Path
    best_score: float | None
    epochs_completed: int
    global_step: int
    fit_seconds: float
    stopped_by: StoppedBy
    history: list[dict[str, float]] = field(default_factory=list)
    samples_seen: int = 0


# --- data ------------------------------------------------------------------------------------


class SeededSampler(Sampler[int]):
    """Random order that depends only on ``(seed, epoch)``, not on the process's RNG history.

    Lightning calls :meth:`set_epoch` before every epoch (also after resuming), so a resumed run
    sees the same order as an uninterrupted one.

    Args:
        num_samples: the dataset's length.
        seed: base seed.
        shuffle: ``False`` gives ``0 .. num_samples - 1`` in order.

    Example:
        >>> s = SeededSampler(5, seed=0); s.set_epoch(1)
        >>> sorted(s) == list(range(5))
        True
    """

    def __init__(self, num_samples: int, *, seed: int = 0, shuffle: bool = True) -> None:
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the permutation of ``epoch``."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.num_samples))
        g = torch.Generator()
        g.manual_seed(derive_seed(self.seed, _ORDER_STREAM, self.epoch))
        return iter(torch.randperm(self.num_samples, generator=g).tolist())

    def __len__(self) -> int:
        return self.num_samples


def _batch_len(batch: Any) -> int:
    """Number of samples in a batch: the first dimension of its first tensor or array."""
    if isinstance(batch, (torch.Tensor, np.ndarray)):
        return int(batch.shape[0]) if batch.ndim else 1
    if isinstance(batch, Mapping):
        batch = list(batch.values())
    if isinstance(batch, (list, tuple)):
        for item in batch:
            n = _batch_len(item)
            if n:
                return n
    return 0


# --- checkpoints -----------------------------------------------------------------------------

_SAFE_LEAVES = (
    torch.Tensor,
    int,
    float,
    bool,
    str,
    bytes,
    complex,
    type(None),
    torch.dtype,
    torch.device,
    torch.Size,
)


def _to_safe(obj: Any, where: str, *, lenient: bool) -> Any:
    """``obj`` with only what ``torch.load(weights_only=True)`` reads.

    Numpy values become tensors or Python numbers, paths strings, enums their values. Other
    objects become their ``repr`` when ``lenient`` (hyper-parameters, informational only) and
    raise :class:`CheckpointError` otherwise.
    """
    if isinstance(obj, _SAFE_LEAVES):
        return obj
    if isinstance(obj, Mapping):
        cls = OrderedDict if isinstance(obj, OrderedDict) else dict
        return cls(
            (_to_safe(k, where, lenient=lenient), _to_safe(v, f"{where}.{k}", lenient=lenient))
            for k, v in obj.items()
        )
    if isinstance(obj, (list, tuple, set)):
        items = [_to_safe(v, f"{where}[{i}]", lenient=lenient) for i, v in enumerate(obj)]
        if isinstance(obj, tuple):
            return tuple(items)
        return set(items) if isinstance(obj, set) else items
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return _to_safe(obj.value, where, lenient=lenient)
    if lenient:
        return repr(obj)
    raise CheckpointError(
        f"Checkpoint entry {where!r} holds a {type(obj).__name__}, which "
        "torch.load(weights_only=True) cannot read.",
        hint="Keep only tensors, numbers, strings and lists/dicts of them in checkpoints "
        "(convert other state in LightningModule.on_save_checkpoint).",
    )


def _safe_checkpoint(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in checkpoint.items():
        if key == "hparams_type":  # a class (OmegaConf containers); informational only
            continue
        lenient = key in ("hyper_parameters", "datamodule_hyper_parameters")
        out[key] = _to_safe(value, key, lenient=lenient)
    return out


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that never leaves a partial file and loads safely.

    Saving writes to a temporary file in the same directory, fsyncs it, renames it over the
    target (``os.replace``) and fsyncs the directory, so a crash or ``SIGKILL`` leaves either
    the old checkpoint or the new one. The content is reduced to tensors and plain containers
    first. Loading uses ``torch.load(weights_only=True)`` unless told otherwise.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not support storage_options.")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        safe = _safe_checkpoint(checkpoint)
        buffer = io.BytesIO()
        torch.save(safe, buffer)
        atomic_write_bytes(path, buffer.getvalue())

    def load_checkpoint(
        self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return super().load_checkpoint(
            path,
            map_location=map_location if map_location is not None else "cpu",
            weights_only=True if weights_only is None else weights_only,
        )


def _load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors have many types
        raise CheckpointError(
            f"Cannot read checkpoint {str(path)!r}: {type(exc).__name__}.",
            hint="Delete it to start again, or point to another checkpoint directory.",
        ) from exc


# --- callbacks and the history logger --------------------------------------------------------


class _HistoryLogger(Logger):
    """Collects epoch-level metrics into one row per epoch; writes no files."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[int, dict[str, float]] = {}
        self.in_train_step = False  # set by _Bookkeeping: step-level logs are not kept

    @property
    def name(self) -> str:
        return "medlearn"

    @property
    def version(self) -> str:
        return ""  # nothing to tell apart; keeps "v_num" out of the progress bar

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self.in_train_step or "epoch" not in metrics:
            return
        epoch = int(metrics["epoch"])
        row = self.rows.setdefault(epoch, {"epoch": epoch})
        for key, value in metrics.items():
            if key == "epoch" or key.endswith("_step"):
                continue
            row[key.removesuffix("_epoch")] = float(value)

    @property
    def history(self) -> list[dict[str, float]]:
        return [dict(self.rows[e]) for e in sorted(self.rows)]


class _Bookkeeping(Callback):
    """Re-seeds every RNG from the position in training; counts samples; keeps history.

    RNGs are re-seeded from ``(seed, epoch)`` when an epoch starts (before its first batches
    are loaded) and from ``(seed, epoch, batch)`` before every training batch. The history is
    saved in checkpoints so that it survives a resume.
    """

    def __init__(self, seed: int, history: _HistoryLogger) -> None:
        self.seed = seed
        self.history = history
        self.samples_seen = 0

    @property
    def state_key(self) -> str:
        return "medlearn.history"

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        reseed(derive_seed(self.seed, _EPOCH_STREAM, trainer.current_epoch))

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.history.in_train_step = True
        reseed(derive_seed(self.seed, _BATCH_STREAM, trainer.current_epoch, batch_idx))

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self.samples_seen += _batch_len(batch)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.history.in_train_step = False

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.history.in_train_step = False

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for row in state_dict.get("history", []):
            self.history.rows[int(row["epoch"])] = dict(row)


class _CheckMonitor(Callback):
    """Fails fast (in the sanity check) when the monitored metric is never logged."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        logged = trainer.callback_metrics
        if self.monitor not in logged:
            names = sorted(k for k in logged if not k.endswith("_step"))
            raise ConfigError(
                f"fit_module monitors {self.monitor!r}, but the module logs only "
                f"{', '.join(names) or '(nothing)'}.",
                hint=f"Log it in validation_step with self.log({self.monitor!r}, value), or "
                "pass monitor= one of the logged names.",
            )


# --- the trainer -----------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence Lightning's info logs and expected warnings; keep other warnings."""
    names = ("lightning.pytorch", "lightning.fabric", "lightning")
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for pattern in _NOISE:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _check_args(
    train_dataset: Any,
    val_dataset: Any,
    *,
    batch_size: int,
    max_epochs: int,
    mode: str,
    patience: int | None,
    max_minutes: float | None,
    drop_last: bool,
) -> None:
    def bad(name: str, rule: str, value: Any, hint: str | None = None) -> ConfigError:
        return ConfigError(
            f"The {name!r} parameter of fit_module must be {rule}. Got {value!r}.", hint=hint
        )

    def positive_int(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1

    if not positive_int(batch_size):
        raise bad("batch_size", "a positive integer", batch_size)
    if not positive_int(max_epochs):
        raise bad("max_epochs", "a positive integer", max_epochs)
    if mode not in ("min", "max"):
        raise bad("mode", "'min' or 'max'", mode)
    if patience is not None and not positive_int(patience):
        raise bad("patience", "a positive integer or None", patience)
    if max_minutes is not None and not (
        isinstance(max_minutes, (int, float)) and np.isfinite(max_minutes) and max_minutes > 0
    ):
        raise bad("max_minutes", "a positive number or None", max_minutes)
    for name, ds in (("train_dataset", train_dataset), ("val_dataset", val_dataset)):
        if ds is None:
            continue
        if isinstance(ds, IterableDataset) or not hasattr(ds, "__len__"):
            raise bad(name, "a map-style dataset (with __len__ and __getitem__)", type(ds).__name__)
    if len(train_dataset) == 0:
        raise ConfigError("The training dataset of fit_module is empty.")
    if drop_last and len(train_dataset) < batch_size:
        raise ConfigError(
            f"With drop_last=True and batch_size={batch_size}, a training set of "
            f"{len(train_dataset)} samples gives no batch.",
            hint="Lower batch_size or set drop_last=False.",
        )
    if patience is not None and val_dataset is None:
        raise ConfigError(
            "Early stopping (patience) needs a validation set. Got val_dataset=None.",
            hint="Pass val_dataset, or set patience=None.",
        )


def _early_stopped(ckpt: Mapping[str, Any]) -> bool:
    for key, state in (ckpt.get("callbacks") or {}).items():
        if str(key).startswith("EarlyStopping") and isinstance(state, Mapping):
            reason = state.get("stopping_reason", "not_stopped")
            if state.get("stopped_epoch", 0) > 0 or reason not in (None, "not_stopped"):
                return True
    return False


def _check_resumable(module: pl.LightningModule, checkpoint: dict[str, Any], path: Path) -> None:
    """Refuse to resume from a checkpoint whose weights are not this module's.

    Raises:
        CheckpointError: naming the checkpoint and the first missing / unexpected tensors.
    """
    state = checkpoint.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path}: the checkpoint holds no state_dict.",
            hint="Delete it, or train again without --resume.",
        )
    own = set(module.state_dict())
    missing, extra = sorted(own - set(state)), sorted(set(state) - own)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensor(s) of the model are not in it ({missing[0]}, ...)")
        if extra:
            parts.append(f"{len(extra)} tensor(s) in it are not in the model ({extra[0]}, ...)")
        raise CheckpointError(
            f"{path}: cannot resume, the checkpoint was written by a different model "
            f"set-up: {'; '.join(parts)}.",
            hint="Resume with the run file's original model and options (e.g. ema), or "
            "train again without --resume.",
        )


def fit_module(
    module: pl.LightningModule,
    train_dataset: Dataset,
    val_dataset: Dataset | None = None,
    *,
    batch_size: int,
    max_epochs: int,
    ckpt_dir: str | Path,
    monitor: str = "val_loss",
    mode: Literal["min", "max"] = "min",
    patience: int | None = None,
    max_minutes: float | None = None,
    seed: int = 0,
    deterministic: bool = True,
    resume: bool = False,
    progress: bool = True,
    num_threads: int | None = None,
    callbacks: Sequence[Callback] = (),
    collate_fn: Any = None,
    drop_last: bool = False,
) -> FitOutcome:
    """Train a ``LightningModule`` reproducibly, with crash-safe checkpoints and resume.

    Args:
        module: the model and its ``training_step`` / ``validation_step`` /
            ``configure_optimizers``; it logs ``monitor`` in validation. Trained in place; on
            return it holds the weights of ``best.ckpt`` (``last.ckpt`` without ``val_dataset``).
        train_dataset: a map-style dataset; read in a seeded random order (one process, no
            workers: data is in memory or cheap to load).
        val_dataset: a map-style dataset evaluated after every epoch, or ``None`` (then there
            is no ``best.ckpt`` and no early stopping). An empty one counts as ``None``.
        batch_size: samples per batch, for training and validation.
        max_epochs: upper bound on epochs (resumed ones included).
        ckpt_dir: directory of ``last.ckpt`` and ``best.ckpt``; created if missing.
        monitor: the logged validation metric that selects ``best.ckpt`` and early-stops.
        mode: whether ``monitor`` is better when ``"min"`` (a loss) or ``"max"`` (AUROC).
        patience: epochs without improvement of ``monitor`` before stopping; ``None`` never
            stops early.
        max_minutes: time budget of training (resumed time included); ``None`` for none.
        seed: seed of the data order, initial RNG state and the per-batch RNG streams.
        deterministic: use deterministic algorithms (warning where none exists).
        resume: continue from ``ckpt_dir/last.ckpt`` when it exists (else start fresh). A run
            that already stopped early is not trained further. Without ``resume`` any earlier
            ``last.ckpt`` / ``best.ckpt`` in ``ckpt_dir`` are deleted first.
        progress: show Lightning's progress bar.
        num_threads: torch CPU threads; ``None`` uses every CPU available
            (see :func:`~medlearn.training.configure_threads`).
        callbacks: extra Lightning callbacks.
        collate_fn: the DataLoaders' ``collate_fn`` (``None``: PyTorch's default).
        drop_last: drop the last incomplete training batch (e.g. for BatchNorm).

    Returns:
        A :class:`FitOutcome`.

    Raises:
        ConfigError: for invalid arguments, or a ``monitor`` the module never logs (raised
            by the sanity check, before training).
        CheckpointError: if ``last.ckpt`` cannot be read when resuming.

    Example:
        >>> from medlearn.training.testing import BoringClassifier, make_blobs_dataset
        >>> out = fit_module(BoringClassifier(), make_blobs_dataset(256, seed=0),
        ...                  make_blobs_dataset(64, seed=1), batch_size=32, max_epochs=3,
        ...                  ckpt_dir="/tmp/ckpt", progress=False)
        >>> out.stopped_by, out.epochs_completed
        ('max_epochs', 3)
    """
    if val_dataset is not None and hasattr(val_dataset, "__len__") and len(val_dataset) == 0:
        val_dataset = None
    _check_args(
        train_dataset,
        val_dataset,
        batch_size=batch_size,
        max_epochs=max_epochs,
        mode=mode,
        patience=patience,
        max_minutes=max_minutes,
        drop_last=drop_last,
    )
    t0 = time.perf_counter()
    configure_threads(num_threads)
    seed = seed_everything(seed, deterministic=deterministic)

    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    for stale in ckpt_dir.glob(".*.ckpt.*.tmp"):  # left by a crash mid-write
        stale.unlink(missing_ok=True)
    last_path, best_path = ckpt_dir / "last.ckpt", ckpt_dir / "best.ckpt"
    has_val = val_dataset is not None
    ckpt_path: Path | None = None
    if resume and last_path.exists():
        ckpt_path = last_path
        previous = _load_checkpoint(last_path)
        _check_resumable(module, previous, last_path)
        if _early_stopped(previous):
            return _finished_outcome(module, monitor, previous, last_path, best_path, has_val, t0)
        del previous
    elif not resume:
        last_path.unlink(missing_ok=True)
        best_path.unlink(missing_ok=True)

    train_loader = DataLoader(
        train_dataset,
        batch_size=batch_size,
        sampler=SeededSampler(len(train_dataset), seed=seed),
        num_workers=0,
        collate_fn=collate_fn,
        drop_last=drop_last,
    )
    val_loader = (
        DataLoader(val_dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn)
        if has_val
        else None
    )

    history = _HistoryLogger()
    book = _Bookkeeping(seed, history)
    all_callbacks: list[Callback] = [book]
    early: EarlyStopping | None = None
    if has_val:
        all_callbacks.append(_CheckMonitor(monitor))
        if patience is not None:
            early = EarlyStopping(
                monitor=monitor, mode=mode, patience=patience, check_on_train_epoch_end=False
            )
            all_callbacks.append(early)
        best_cb: ModelCheckpoint | None = ModelCheckpoint(
            dirpath=ckpt_dir,
            filename="best",
            monitor=monitor,
            mode=mode,
            save_top_k=1,
            save_on_train_epoch_end=False,
            auto_insert_metric_name=False,
            enable_version_counter=False,
        )
        all_callbacks.append(best_cb)
    else:
        best_cb = None
    # After best_cb (checkpoint callbacks keep their order), so last.ckpt holds its new state.
    last_cb = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="last",
        monitor=None,
        save_top_k=1,
        save_on_train_epoch_end=not has_val,
        enable_version_counter=False,
    )
    all_callbacks.append(last_cb)
    if progress:
        all_callbacks.append(TQDMProgressBar())
    all_callbacks.extend(callbacks)

    n_batches = len(train_loader)
    with _quiet():
        trainer = pl.Trainer(
            accelerator="auto",
            devices=1,
            max_epochs=max_epochs,
            max_time=timedelta(minutes=max_minutes) if max_minutes else None,
            callbacks=all_callbacks,
            logger=history,
            plugins=[AtomicCheckpointIO()],
            default_root_dir=ckpt_dir,
            deterministic="warn" if deterministic else False,
            benchmark=False,
            enable_progress_bar=progress,
            enable_model_summary=False,
            log_every_n_steps=max(1, min(50, n_batches)),
        )
        trainer.fit(
            module,
            train_dataloaders=train_loader,
            val_dataloaders=val_loader,
            ckpt_path=ckpt_path,
            weights_only=True,
        )

    if early is not None and early.stopped_epoch > 0:
        stopped_by: StoppedBy = "early_stopping"
    elif any(
        isinstance(cb, Timer) and (cb.time_remaining() or 0.0) <= 0 for cb in trainer.callbacks
    ):
        stopped_by = "max_time"
    else:
        stopped_by = "max_epochs"

    weights_from = best_path if has_val and best_path.exists() else last_path
    if weights_from.exists():
        module.load_state_dict(_load_checkpoint(weights_from)["state_dict"])
    score = best_cb.best_model_score if best_cb is not None else None
    return FitOutcome(
        best_path=best_path if has_val and best_path.exists() else None,
        last_path=last_path,
        best_score=None if score is None else float(score),
        epochs_completed=int(trainer.current_epoch),
        global_step=int(trainer.global_step),
        fit_seconds=time.perf_counter() - t0,
        stopped_by=stopped_by,
        history=history.history,
        samples_seen=book.samples_seen,
    )


def _finished_outcome(
    module: pl.LightningModule,
    monitor: str,
    last: Mapping[str, Any],
    last_path: Path,
    best_path: Path,
    has_val: bool,
    t0: float,
) -> FitOutcome:
    """The outcome of a run that already stopped early, without training it further."""
    weights_from = best_path if has_val and best_path.exists() else last_path
    state = last if weights_from == last_path else _load_checkpoint(weights_from)
    module.load_state_dict(state["state_dict"])
    callbacks = last.get("callbacks") or {}
    score = None
    for key, value in callbacks.items():
        if (
            str(key).startswith("ModelCheckpoint")
            and isinstance(value, Mapping)
            and value.get("monitor") == monitor
        ):
            raw = value.get("best_model_score")
            score = None if raw is None else float(raw)
    history = (callbacks.get("medlearn.history") or {}).get("history", [])
    return FitOutcome(
        best_path=best_path if has_val and best_path.exists() else None,
        last_path=last_path,
        best_score=score if has_val else None,
        epochs_completed=int(last.get("epoch", 0)) + 1,
        global_step=int(last.get("global_step", 0)),
        fit_seconds=time.perf_counter() - t0,
        stopped_by="early_stopping",
        history=[dict(r) for r in history],
        samples_seen=0,
    )
