"""The segmentation learner: patch training through the shared trainer, sliding-window
inference, bundles.

Options come from ``data.options`` (the reader's own keys are listed in
:data:`~medlearn.imaging.segmentation.readers.READER_OPTIONS`):

==================  =====================================================================
``patch_size``      training patch / inference window (default: image size, at most 256
                    in 2-D and 96 in 3-D, a multiple of 16)
``loss``            ``dice``, ``dice_ce`` (default) or ``dice_focal`` (MONAI losses)
``intensity``       ``zscore`` (per image, MR style; default), ``ct`` (window, then [0, 1]),
                    ``dataset`` (mean/SD fitted on the training images), ``none``
``window``          CT window ``[low, high]`` in HU (default ``[-1000, 1000]``)
``spacing``         resample to this spacing before training and inference
``samples_per_image`` patches per image per epoch (default 4)
``fg_fraction``     share of patches centred on a foreground voxel (default 0.5)
``overlap``         sliding-window overlap (default 0.5), Gaussian blending
``tta``             test-time augmentation at inference: ``false`` (default), ``flip`` (or
                    ``true``: every single-axis flip) or ``dihedral`` (2-D: the 8 rotations and
                    reflections)
``threshold``       binary models: foreground where its probability is at least this
                    (default: arg-max); ``auto`` chooses it on the validation split (best Dice)
``lr_schedule``     ``cosine`` (per epoch over ``training.epochs``; default) or ``budget``
                    (per step: linear warm-up, then cosine to zero over the training budget,
                    ``training.epochs`` or ``training.max_minutes``, whichever ends first)
``warmup``          share of the budget spent warming up for ``lr_schedule: budget`` (0.05)
``intensity_jitter`` training-patch intensity augmentation ``s``: scale by U(1-s, 1+s), shift
                    by U(-s, s) (default 0)
``elastic``         random elastic deformation of training patches (Ronneberger et al.
                    2015; 2-D and 3-D): a magnitude in voxels (the standard deviation of
                    the displacements of a coarse control grid, interpolated over the
                    patch; image bilinear, labels nearest) or ``{magnitude, grid, prob}``
                    (defaults 10, 3 control points per axis, probability 0.5); off by
                    default
``ema``             exponential moving average of the weights with this decay (0 = off,
                    the default; e.g. 0.99), warmed up as ``min(ema, (1 + n) / (10 + n))``
                    after ``n`` steps; validated and saved in place of the trained weights
``min_lesion_voxels`` drop predicted components smaller than this (default 0); ``auto``
                    chooses it on the validation split (best lesion F1)
``lesion_iou``      IoU for a predicted lesion to count as a detection (default 0.1)
``surface_tolerance`` surface-Dice tolerance in mm (default 1.0)
``cache_dir``       cache preprocessed cases on disk (MONAI PersistentDataset); default in
                    memory (MONAI CacheDataset)
``val_every``       validate (and write ``last.ckpt``/``best.ckpt``) every N epochs, and
                    always on the final one, whether ended by ``training.epochs``, the time
                    budget or early stopping (default 1); ``patience`` counts validations
``channels_last``   channels-last memory format for the network and its inputs: ``auto``
                    (default: on, in 2-D and 3-D; oneDNN's CPU convolutions run faster in
                    it, and instance norms are swapped for channels-last twins), ``true``
                    or ``false``; the numbers computed are the same up to rounding
``precision``       ``32`` (default), ``bf16`` or ``auto``: ``bf16`` trains in bfloat16
                    mixed precision (the network's forward and backward in bfloat16 under
                    ``torch.autocast``; weights, loss and optimiser in float32), which makes a
                    training step 1.5-1.8x faster on CPUs with native bfloat16 (AVX512-BF16,
                    AMX) and is slower where bfloat16 is emulated; ``auto`` picks ``bf16``
                    only where the hardware has it (:mod:`medlearn.training.precision`).
                    Validation runs in the same precision; inference stays float32
``train_on_val``    ``true``: train on the train and val images together and keep the
                    weights of the final epoch (nothing is validated during the fit, so no
                    ``val_dice``, ``best.ckpt`` or early stopping; use it with
                    ``lr_schedule: budget``). The val split's metrics are then scores on
                    training images; ``threshold: auto``, ``min_lesion_voxels: auto`` and
                    ``training.patience``, which use val, are refused. Default ``false``
==================  =====================================================================
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medlearn._io import atomic_write_json
from medlearn._lazy import lazy_attributes
from medlearn.errors import CheckpointError, ConfigError, DataValidationError, NotFittedError
from medlearn.imaging.norms import use_channels_last_norms
from medlearn.imaging.segmentation._augment import _FixedPatches, _PatchDataset, elastic_settings
from medlearn.registry import LEARNERS, MODELS
from medlearn.training import BadInput, FitReport
from medlearn.training.precision import resolve_precision

if TYPE_CHECKING:
    from medlearn.config import RunConfig
    from medlearn.data import LoadedData, Record

__all__ = [
    "LEARNER_OPTIONS",
    "SegPreprocessor",
    "SegmentationLearner",
    "budget_lr_factor",
    "in_layout",
    "memory_format",
    "remove_small_components",
]

LEARNER_OPTIONS = (
    "cache_dir",
    "channels_last",
    "elastic",
    "ema",
    "fg_fraction",
    "intensity",
    "intensity_jitter",
    "lesion_iou",
    "loss",
    "lr_schedule",
    "min_lesion_voxels",
    "overlap",
    "patch_size",
    "precision",
    "samples_per_image",
    "spacing",
    "surface_tolerance",
    "sw_batch_size",
    "threshold",
    "train_on_val",
    "tta",
    "val_every",
    "warmup",
    "window",
)

#: ``tta`` modes: ``none``, ``flip`` (each single-axis flip) and ``dihedral`` (2-D only).
TTA_MODES = ("none", "flip", "dihedral")
#: ``lr_schedule`` values.
LR_SCHEDULES = ("cosine", "budget")


# --- preprocessing -------------------------------------------------------------------------------


@dataclass
class SegPreprocessor:
    """Resampling and intensity normalisation (fitted on training images only).

    Attributes:
        intensity: ``zscore``, ``ct``, ``dataset`` or ``none``.
        window: CT window (HU) for ``ct``.
        spacing: target spacing, or ``None`` to keep each image's grid.
        mean, std: per-channel statistics for ``dataset``.
    """

    intensity: str = "zscore"
    window: list[float] = field(default_factory=lambda: [-1000.0, 1000.0])
    spacing: list[float] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None

    def fit(self, images: Sequence[np.ndarray]) -> SegPreprocessor:
        """Fit ``dataset`` statistics on training images ``(C, *spatial)``."""
        if self.intensity == "dataset":
            c = images[0].shape[0]
            s = np.zeros(c)
            s2 = np.zeros(c)
            n = 0
            for im in images:
                flat = im.reshape(c, -1).astype(np.float64)
                s += flat.sum(1)
                s2 += (flat**2).sum(1)
                n += flat.shape[1]
            mean = s / n
            self.mean = mean.tolist()
            self.std = np.sqrt(np.maximum(s2 / n - mean**2, 1e-12)).tolist()
        return self

    def image(self, image: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
        """Resample (linear) and normalise one image."""
        from medlearn.imaging.segmentation.readers import ct_window, resample_to_spacing, zscore

        x = image.astype(np.float32)
        if self.spacing is not None and meta.get("spacing"):
            x = resample_to_spacing(x, meta["spacing"], self.spacing, order=1)
        if self.intensity == "zscore":
            return zscore(x)
        if self.intensity == "ct":
            return ct_window(x, self.window)
        if self.intensity == "dataset":
            assert self.mean is not None and self.std is not None
            m = np.asarray(self.mean, np.float32).reshape(-1, *([1] * (x.ndim - 1)))
            s = np.asarray(self.std, np.float32).reshape(-1, *([1] * (x.ndim - 1)))
            return (x - m) / np.maximum(s, 1e-6)
        return x

    def mask(self, mask: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
        """Resample (nearest) one label map."""
        from medlearn.imaging.segmentation.readers import resample_to_spacing

        if self.spacing is not None and meta.get("spacing"):
            return resample_to_spacing(mask, meta["spacing"], self.spacing, order=0)
        return mask


# --- training (patch datasets and their augmentation live in ``_augment``) ----------------------


def budget_lr_factor(progress: float, warmup: float) -> float:
    """The ``lr_schedule: budget`` multiplier of the peak learning rate.

    Args:
        progress: share of the training budget used, in [0, 1] (clipped).
        warmup: share spent warming up linearly from 0.1x to 1x, in [0, 1).

    Returns:
        The factor: the warm-up ramp, then a cosine from 1 down to 0 at ``progress = 1``.
    """
    p = min(1.0, max(0.0, progress))
    if warmup > 0 and p < warmup:
        return 0.1 + 0.9 * p / warmup
    rest = (p - warmup) / max(1e-12, 1.0 - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * rest))


def memory_format(spatial_dims: int, channels_last: bool | str = "auto") -> torch.memory_format:
    """The memory format for a network on ``spatial_dims``-D images.

    Args:
        spatial_dims: 2 or 3.
        channels_last: ``True``, ``False`` or ``"auto"`` (channels-last, in 2-D and 3-D:
            oneDNN's convolutions, pooling and arg-max over channels run faster on CPU in
            it. Earlier versions chose it in 2-D only; with instance norms that no longer
            copy to the default layout (:func:`in_layout`), a 3-D training step of
            BasicUNet or DynUNet with instance norms is about 2x faster channels-last
            (``benchmarks/segmentation.py --only steps``), and no network measured was
            slower).

    Returns:
        ``torch.channels_last`` (2-D) / ``torch.channels_last_3d`` (3-D), or
        ``torch.contiguous_format``.
    """
    on = True if channels_last == "auto" else bool(channels_last)
    if not on:
        return torch.contiguous_format
    return torch.channels_last if spatial_dims == 2 else torch.channels_last_3d


def in_layout(net: nn.Module, fmt: torch.memory_format) -> nn.Module:
    """``net`` with its weights in ``fmt``; in a channels-last format its instance norms are
    also swapped for twins that do not copy to the default layout and back
    (:func:`medlearn.imaging.norms.use_channels_last_norms`; same numbers, same
    ``state_dict``)."""
    net = net.to(memory_format=fmt)
    if fmt != torch.contiguous_format:
        use_channels_last_norms(net)
    return net


# --- the learner ----------------------------------------------------------------------------------


def remove_small_components(labels: np.ndarray, min_voxels: int) -> np.ndarray:
    """Set foreground components (all classes > 0 together) under ``min_voxels`` to 0."""
    if min_voxels <= 0 or not (labels > 0).any():
        return labels
    from medlearn.imaging.segmentation.metrics import instances_from_mask

    inst = instances_from_mask(labels > 0)
    sizes = np.bincount(inst.ravel())
    small = np.flatnonzero(sizes < min_voxels)
    small = small[small > 0]
    if small.size:
        labels = labels.copy()
        labels[np.isin(inst, small)] = 0
    return labels


def _number(opts: dict[str, Any], key: str, default: float, *, low: float, high: float) -> float:
    value = opts.get(key, default)
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = float("nan")
    if not (low <= out <= high) or isinstance(value, bool):
        raise ConfigError(
            f"data.options.{key} must be a number in [{low:g}, {high:g}]. Got {value!r}.",
            hint=f"For example {key}: {default:g}.",
        )
    return out


def _positive_int(opts: dict[str, Any], key: str, default: int) -> int:
    value = opts.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"data.options.{key} must be a positive integer. Got {value!r}.",
            hint=f"For example {key}: {default}.",
        )
    return value


def _channels_last(value: Any) -> bool | str:
    if value == "auto" or isinstance(value, bool):
        return value
    raise ConfigError(
        f"data.options.channels_last must be auto, true or false. Got {value!r}.",
        hint="Leave it out (auto: channels-last for 2-D and 3-D images).",
    )


def _train_on_val(value: Any, options: dict[str, Any], patience: int | None) -> bool:
    """The ``train_on_val`` option: a bool that excludes choices made on the val split."""
    if not isinstance(value, bool):
        raise ConfigError(
            f"data.options.train_on_val must be true or false. Got {value!r}.",
            hint="train_on_val: true trains on train + val and keeps the final weights.",
        )
    if not value:
        return False
    chosen_on_val = [k for k in ("threshold", "min_lesion_voxels") if options.get(k) == "auto"]
    if patience is not None:
        chosen_on_val.append("training.patience")
    if chosen_on_val:
        raise ConfigError(
            "data.options.train_on_val: true trains on the val images, so nothing can be "
            f"chosen or early-stopped on them; the run file also sets {', '.join(chosen_on_val)}.",
            hint="Give fixed values (e.g. threshold: 0.5) or drop train_on_val.",
        )
    return True


def _ema_decay(value: Any) -> float:
    """The ``ema`` option: 0 (off) or a decay in [0.5, 1)."""
    try:
        decay = float(value)
    except (TypeError, ValueError):
        decay = float("nan")
    if isinstance(value, bool) or not (decay == 0.0 or 0.5 <= decay < 1.0):
        raise ConfigError(
            f"data.options.ema must be 0 (off) or a weight-averaging decay in [0.5, 1). "
            f"Got {value!r}.",
            hint="For example ema: 0.99 (averages over about the last 100 steps).",
        )
    return decay


def _tta_mode(value: Any, spatial_dims: int) -> str:
    """Normalise a ``tta`` option: ``False``/``None`` → ``none``, ``True`` → ``flip``."""
    mode = {None: "none", False: "none", True: "flip"}.get(value, value)
    if mode not in TTA_MODES:
        raise ConfigError(
            f"data.options.tta {value!r} is unknown.",
            hint="Use false, flip (or true) or dihedral (2-D).",
        )
    if mode == "dihedral" and spatial_dims != 2:
        raise ConfigError(
            f"data.options.tta: dihedral is for 2-D images; these are {spatial_dims}-D.",
            hint="Use tta: flip.",
        )
    return str(mode)


class SegmentationLearner:
    """2-D/3-D semantic segmentation with a registered MONAI network.

    Args:
        model: registry name (``unet``, ``basic_unet``, ``segresnet``, ``dynunet``).
        classes: class names, index = label (``background`` first).
        spatial_dims: 2 or 3.
        in_channels: image channels.
        model_params: the network's params.
        options: learner options (see the module docstring).
        epochs, batch_size, lr, weight_decay, seed, deterministic, max_minutes, patience,
        num_threads, progress: training settings (:class:`medlearn.config.TrainingConfig`).
    """

    domain = "imaging"

    def __init__(
        self,
        *,
        model: str,
        classes: Sequence[str],
        spatial_dims: int,
        in_channels: int,
        model_params: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        epochs: int = 20,
        batch_size: int = 4,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        seed: int = 0,
        deterministic: bool = True,
        max_minutes: float | None = None,
        patience: int | None = None,
        num_threads: int | None = None,
        progress: bool = True,
    ) -> None:
        from medlearn.imaging.segmentation.models import LOSSES

        self.model = model
        self.classes = [str(c) for c in classes]
        self.spatial_dims = int(spatial_dims)
        self.in_channels = int(in_channels)
        self.model_params = dict(model_params or {})
        opts = dict(options or {})
        unknown = set(opts) - set(LEARNER_OPTIONS)
        if unknown:
            raise ConfigError(f"Unknown segmentation options: {', '.join(sorted(unknown))}.")
        self.options = opts
        self.loss = str(opts.get("loss", "dice_ce"))
        if self.loss not in LOSSES:
            raise ConfigError(
                f"data.options.loss {self.loss!r} is not a segmentation loss.",
                hint=f"Use one of: {', '.join(LOSSES)}.",
            )
        intensity = str(opts.get("intensity", "zscore"))
        if intensity not in ("zscore", "ct", "dataset", "none"):
            raise ConfigError(
                f"data.options.intensity {intensity!r} is unknown.",
                hint="Use zscore (MR), ct (with window), dataset or none.",
            )
        self.patch_size: list[int] | None = (
            [int(v) for v in opts["patch_size"]] if opts.get("patch_size") else None
        )
        if self.patch_size is not None and len(self.patch_size) != self.spatial_dims:
            raise ConfigError(
                f"data.options.patch_size has {len(self.patch_size)} values for "
                f"{self.spatial_dims}-D images."
            )
        self.samples_per_image = int(opts.get("samples_per_image", 4))
        self.fg_fraction = float(opts.get("fg_fraction", 0.5))
        self.overlap = float(opts.get("overlap", 0.5))
        self.sw_batch_size = int(opts.get("sw_batch_size", 4))
        self.tta = _tta_mode(opts.get("tta", False), self.spatial_dims)
        self.intensity_jitter = _number(opts, "intensity_jitter", 0.0, low=0.0, high=1.0)
        self.lr_schedule = str(opts.get("lr_schedule", "cosine"))
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"data.options.lr_schedule {self.lr_schedule!r} is unknown.",
                hint=f"Use one of: {', '.join(LR_SCHEDULES)}.",
            )
        self.warmup = _number(opts, "warmup", 0.05, low=0.0, high=0.5)
        self.val_every = _positive_int(opts, "val_every", 1)
        self.channels_last: bool | str = _channels_last(opts.get("channels_last", "auto"))
        self.ema = _ema_decay(opts.get("ema", 0.0))
        resolve_precision(opts.get("precision", "32"), field="data.options.precision")
        self.precision = str(opts.get("precision", "32"))
        self.elastic = elastic_settings(opts.get("elastic"))
        thr = opts.get("threshold")
        if thr is not None and len(self.classes) != 2:
            raise ConfigError(
                f"data.options.threshold needs a binary model; this one has "
                f"{len(self.classes)} classes.",
                hint="Remove threshold (multi-class maps use arg-max).",
            )
        #: ``None``: arg-max; ``"auto"``: chosen on validation data by the task handler.
        self.threshold: float | str | None = thr
        if thr is not None and thr != "auto":
            self.threshold = _number(opts, "threshold", 0.5, low=0.0, high=1.0)
        mlv = opts.get("min_lesion_voxels", 0)
        #: ``None`` means "choose on validation data" (``auto``), done by the task handler.
        self.min_lesion_voxels: int | None = None if mlv == "auto" else int(mlv)
        self.lesion_iou = float(opts.get("lesion_iou", 0.1))
        self.surface_tolerance = float(opts.get("surface_tolerance", 1.0))
        self.cache_dir = opts.get("cache_dir")
        spacing = opts.get("spacing")
        self.preprocessor_ = SegPreprocessor(
            intensity=intensity,
            window=[float(v) for v in opts.get("window", [-1000.0, 1000.0])],
            spacing=[float(v) for v in spacing] if spacing else None,
        )
        self.train_on_val = _train_on_val(opts.get("train_on_val", False), opts, patience)
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed
        self.deterministic = deterministic
        self.max_minutes = max_minutes
        self.patience = patience
        self.num_threads = num_threads
        self.progress = progress
        self.net_: nn.Module | None = None

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: RunConfig, data: LoadedData) -> SegmentationLearner:
        """Build from a run file and the loaded data (classes, dims, channels)."""
        from medlearn.config import check_params
        from medlearn.imaging.segmentation.models import RESERVED
        from medlearn.imaging.segmentation.readers import READER_OPTIONS

        if cfg.task != "segmentation":
            raise ConfigError(
                f"Model {cfg.model.name!r} is a segmentation network; the run file says task "
                f"{cfg.task!r}.",
                hint="Set task: segmentation.",
            )
        check_params(
            MODELS.get(cfg.model.name),
            cfg.model.params,
            what=f"model {cfg.model.name!r}",
            reserved=RESERVED,
        )
        options = {k: v for k, v in cfg.data.options.items() if k not in READER_OPTIONS}
        unknown = set(options) - set(LEARNER_OPTIONS)
        if unknown:
            raise ConfigError(
                f"Unknown data.options for segmentation: {', '.join(sorted(unknown))}.",
                hint="Accepted: " + ", ".join(sorted(LEARNER_OPTIONS + READER_OPTIONS)) + ".",
            )
        t = cfg.training
        return cls(
            model=cfg.model.name,
            classes=data.classes or ["background", "foreground"],
            spatial_dims=int(data.info.get("spatial_dims", data.records[0]["input"].ndim - 1)),
            in_channels=int(data.info.get("channels", data.records[0]["input"].shape[0])),
            model_params=cfg.model.params,
            options=options,
            epochs=t.epochs,
            batch_size=t.batch_size,
            lr=t.lr,
            weight_decay=t.weight_decay,
            seed=t.seed,
            deterministic=t.deterministic,
            max_minutes=t.max_minutes,
            patience=t.patience,
            num_threads=t.num_threads,
            progress=t.progress,
        )

    def _new_net(self) -> nn.Module:
        return MODELS.get(self.model)(
            spatial_dims=self.spatial_dims,
            in_channels=self.in_channels,
            out_channels=len(self.classes),
            **self.model_params,
        )

    # -- data -----------------------------------------------------------------------------------
    def _check_record(self, rec: Record, what: str) -> None:
        x = rec["input"]
        if not isinstance(x, np.ndarray) or x.ndim != self.spatial_dims + 1:
            raise DataValidationError(
                f"{what} case {rec['id']}: expected a {self.spatial_dims}-D image "
                f"(channels first); got shape {getattr(x, 'shape', None)}.",
            )
        if x.shape[0] != self.in_channels:
            raise DataValidationError(
                f"{what} case {rec['id']}: {x.shape[0]} channel(s); the model expects "
                f"{self.in_channels}."
            )

    def _cached(self, records: Sequence[Record], what: str) -> Any:
        """Preprocessed cases, each a dict of ``image`` ``(C, *spatial)`` float32 and
        ``label`` ``(*spatial)`` int16, computed once (in memory, or on disk under
        ``cache_dir/prep-<hash of the preprocessing settings>``) and handed out uncopied:
        readers must not modify them."""
        from monai.data import CacheDataset, PersistentDataset
        from monai.transforms import Lambda

        bad = []
        for r in records:
            try:
                self._check_record(r, what)
            except DataValidationError as exc:
                bad.append(exc.message)
            if r["target"] is None:
                bad.append(f"{what} case {r['id']}: no mask")
        if bad:
            raise DataValidationError(
                f"{len(bad)} {what} case(s) cannot be used: " + "; ".join(bad[:10]) + "."
            )
        items = [{"image": r["input"], "label": r["target"], "meta": r["meta"]} for r in records]
        pre = self.preprocessor_

        def prep(d: dict[str, Any]) -> dict[str, Any]:
            return {
                "image": pre.image(d["image"], d["meta"]),
                "label": pre.mask(np.asarray(d["label"]), d["meta"]).astype(np.int16),
            }

        # A MONAI Transform (not a bare function, which MONAI treats as random and re-runs
        # at every access), so the datasets cache its output.
        transform = Lambda(func=prep)
        if self.cache_dir:
            key = json.dumps(asdict(pre), sort_keys=True).encode()
            folder = Path(self.cache_dir) / f"prep-{hashlib.sha256(key).hexdigest()[:16]}"
            return PersistentDataset(items, transform=transform, cache_dir=str(folder))
        return CacheDataset(
            items,
            transform=transform,
            cache_rate=1.0,
            num_workers=0,
            progress=False,
            copy_cache=False,
        )

    def _default_patch(self, shapes: Sequence[Sequence[int]]) -> list[int]:
        cap = 256 if self.spatial_dims == 2 else 96
        out = []
        for d in range(self.spatial_dims):
            size = min(cap, max(s[d] for s in shapes))
            out.append(max(16, int(math.ceil(size / 16) * 16) if size < 16 else (size // 16) * 16))
        return out

    # -- fit ------------------------------------------------------------------------------------
    def fit(
        self, train: Sequence[Record], val: Sequence[Record], *, work_dir: Path, resume: bool
    ) -> FitReport:
        """Train on random patches of ``train``; select the epoch by ``val_dice`` on fixed
        patches of ``val`` (with ``train_on_val``: train on ``train`` and ``val`` together and
        keep the final epoch's weights)."""
        from medlearn.imaging.segmentation.models import make_loss

        work_dir = Path(work_dir)
        if self.train_on_val:
            train, val = [*train, *val], []
        if not train:
            raise DataValidationError("No training cases.")
        for r in train:
            self._check_record(r, "training")
        self.preprocessor_.fit([r["input"] for r in train])
        train_cache = self._cached(train, "training")
        shapes = [train_cache[i]["label"].shape for i in range(len(train_cache))]
        if self.patch_size is None:
            self.patch_size = self._default_patch(shapes)
        train_ds = _PatchDataset(
            train_cache,
            self.patch_size,
            per_image=self.samples_per_image,
            fg_fraction=self.fg_fraction,
            augment=True,
            intensity_jitter=self.intensity_jitter,
            elastic=self.elastic,
        )
        val_ds = None
        if val:
            val_src = _PatchDataset(
                self._cached(val, "validation"),
                self.patch_size,
                per_image=max(1, min(self.samples_per_image, 4)),
                fg_fraction=self.fg_fraction,
                augment=False,
            )
            val_ds = _FixedPatches(val_src, self.seed + 17)
        torch.manual_seed(self.seed)
        net = self._new_net()
        precision = resolve_precision(self.precision, field="data.options.precision")
        from medlearn.imaging.segmentation._module import SegmentationModule
        from medlearn.training import fit_module

        module = SegmentationModule(
            net,
            make_loss(self.loss),
            num_classes=len(self.classes),
            lr=self.lr,
            weight_decay=self.weight_decay,
            max_epochs=self.epochs,
            lr_schedule=self.lr_schedule,
            warmup=self.warmup,
            val_every=self.val_every,
            memory_format=memory_format(self.spatial_dims, self.channels_last),
            ema=self.ema,
            precision=precision,
        )
        t0 = time.perf_counter()
        outcome = fit_module(
            module,
            train_ds,
            val_ds,
            batch_size=self.batch_size,
            max_epochs=self.epochs,
            ckpt_dir=work_dir / "checkpoints",
            monitor="val_dice",
            mode="max",
            patience=self.patience,
            max_minutes=self.max_minutes,
            seed=self.seed,
            deterministic=self.deterministic,
            resume=resume,
            progress=self.progress,
            num_threads=self.num_threads,
        )
        seconds = time.perf_counter() - t0
        if module.ema_net is not None:
            net.load_state_dict(module.final_state())
        net.eval()
        self.net_ = net
        return FitReport(
            fit_seconds=seconds,
            epochs=[outcome.epochs_completed],
            stopped_by=[outcome.stopped_by],
            history=[{"member": 0, **h} for h in outcome.history],
            samples_per_second=outcome.samples_seen / max(seconds, 1e-9),
            extra={
                "patch_size": list(self.patch_size),
                "best_val_dice": outcome.best_score,
                "loss": self.loss,
                "lr_schedule": self.lr_schedule,
                "val_every": self.val_every,
                "memory_format": str(module.memory_format).removeprefix("torch."),
                "ema": self.ema,
                "precision": precision,
                "elastic": asdict(self.elastic) if self.elastic is not None else None,
                "train_on_val": self.train_on_val,
            },
        )

    # -- inference ------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if self.net_ is None or self.patch_size is None:
            raise NotFittedError(
                "This SegmentationLearner is not fitted yet. Call fit(...) or load(...) first."
            )

    def _tta(self, tta: bool | str | None) -> str:
        """The TTA mode for a call: ``None`` → the learner's own; ``True`` → the learner's
        own, or ``flip`` when it has none; ``False`` → none."""
        if tta is None:
            return self.tta
        if tta is True:
            return self.tta if self.tta != "none" else "flip"
        return _tta_mode(tta, self.spatial_dims)

    def predict_proba(self, record: Record, *, tta: bool | str | None = None) -> np.ndarray:
        """Class probabilities ``(K, *spatial)`` of one case on its original grid.

        Args:
            record: the case.
            tta: ``None`` (the ``tta`` option), ``True`` (that option, else ``flip``),
                ``False``, or a mode from :data:`TTA_MODES`.
        """
        from medlearn.imaging.segmentation.inference import predict_volume

        self._check_fitted()
        assert self.net_ is not None and self.patch_size is not None
        self._check_record(record, "input")
        meta = record.get("meta") or {}
        x = torch.from_numpy(np.ascontiguousarray(self.preprocessor_.image(record["input"], meta)))
        prob = predict_volume(
            self.net_,
            x,
            roi_size=self.patch_size,
            overlap=self.overlap,
            sw_batch_size=self.sw_batch_size,
            tta=self._tta(tta),
        )
        shape = tuple(record["input"].shape[1:])
        if tuple(prob.shape[1:]) != shape:
            mode = "bilinear" if self.spatial_dims == 2 else "trilinear"
            prob = F.interpolate(prob[None], size=shape, mode=mode, align_corners=False)[0]
        return prob.numpy()

    def labels_from_proba(self, prob: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """Label map of probabilities ``(K, *spatial)``: foreground where its probability is
        at least ``threshold`` (default: the fitted ``threshold``; binary models), else
        arg-max."""
        thr = self.threshold if threshold is None else threshold
        if isinstance(thr, float) and prob.shape[0] == 2:
            return (prob[1] >= thr).astype(np.int16)
        return prob.argmax(0).astype(np.int16)

    def predict_masks(
        self,
        records: Sequence[Record],
        *,
        tta: bool | str | None = None,
        min_voxels: int | None = None,
    ) -> list[np.ndarray]:
        """Label maps (see :meth:`labels_from_proba`; components under ``min_voxels`` —
        default ``min_lesion_voxels`` — removed) on each case's original grid."""
        keep = self.min_lesion_voxels if min_voxels is None else min_voxels
        out = []
        for rec in records:
            labels = self.labels_from_proba(self.predict_proba(rec, tta=tta))
            out.append(remove_small_components(labels, keep or 0))
        return out

    def set_threshold(self, value: float) -> None:
        """Fix the foreground probability threshold (e.g. chosen on validation data); saved
        in bundles."""
        self.threshold = float(value)
        self.options["threshold"] = float(value)

    def set_min_lesion_voxels(self, value: int) -> None:
        """Fix the post-processing size (e.g. chosen on validation data); saved in bundles."""
        self.min_lesion_voxels = int(value)
        self.options["min_lesion_voxels"] = int(value)

    def predict_logits(self, records: Sequence[Record], *, tta: bool | str = False) -> np.ndarray:
        """Per-case log of the voxel-mean class probabilities ``(N, K)`` (a summary; use
        :meth:`predict_masks` for segmentations)."""
        rows = [
            self.predict_proba(r, tta=tta).reshape(len(self.classes), -1).mean(1) for r in records
        ]
        return (
            np.log(np.clip(np.stack(rows), 1e-12, None))
            if rows
            else np.empty((0, len(self.classes)))
        )

    def explain(self, records: Sequence[Record], targets: Sequence[int]) -> list[Any]:
        """Segmentations explain themselves through their overlays; nothing more here."""
        return []

    def read_inputs(self, sources: Sequence[str]) -> tuple[list[Record], list[BadInput]]:
        """Images (PNG/TIFF/NIfTI files, DICOM series folders) → records; every bad one kept
        as a :class:`BadInput`."""
        from medlearn.data import make_record
        from medlearn.imaging.segmentation.readers import load_volume

        records, bad = [], []
        for src in sources:
            try:
                image, meta = load_volume(src)
                rec = make_record(str(src), image, None, meta=meta)
                self._check_record(rec, "input")
            except DataValidationError as exc:
                bad.append(BadInput(str(src), exc.message))
                continue
            except OSError as exc:
                bad.append(BadInput(str(src), f"{Path(src).name}: cannot be read ({exc.strerror})"))
                continue
            records.append(rec)
        return records, bad

    # -- persistence ----------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """The JSON settings needed to rebuild this learner."""
        return {
            "spatial_dims": self.spatial_dims,
            "in_channels": self.in_channels,
            "patch_size": self.patch_size,
            "options": self.options,
            "preprocessing": asdict(self.preprocessor_),
        }

    def save(self, directory: Path) -> dict[str, Any]:
        """Write weights (tensors only) and settings; return manifest fields."""
        self._check_fitted()
        assert self.net_ is not None
        directory = Path(directory)
        (directory / "weights").mkdir(parents=True, exist_ok=True)
        tmp = directory / "weights" / "net.pt.tmp"
        state = self.net_.state_dict()  # saved in the standard (contiguous) layout
        torch.save({k: v.detach().cpu().contiguous() for k, v in state.items()}, tmp)
        tmp.replace(directory / "weights" / "net.pt")
        atomic_write_json(directory / "preprocessing.json", self.settings())
        return {
            "domain": self.domain,
            "learner": "segmentation",
            "reader": "segmentation",
            "model": {"name": self.model, "params": self.model_params},
            "classes": self.classes,
            "weights": ["weights/net.pt"],
            "preprocessing": "preprocessing.json",
            "input": {
                "kind": "image",
                "spatial_dims": self.spatial_dims,
                "channels": self.in_channels,
                "formats": ["nifti", "dicom series", "png", "tiff"],
            },
        }

    @classmethod
    def load(cls, directory: Path, manifest: dict[str, Any]) -> SegmentationLearner:
        """Rebuild from a verified bundle (``torch.load(weights_only=True)``; no code runs)."""
        directory = Path(directory)
        try:
            s = json.loads((directory / manifest["preprocessing"]).read_text())
            obj = cls(
                model=manifest["model"]["name"],
                model_params=manifest["model"].get("params"),
                classes=manifest["classes"],
                spatial_dims=s["spatial_dims"],
                in_channels=s["in_channels"],
                options=s["options"],
            )
            obj.patch_size = [int(v) for v in s["patch_size"]]
            obj.preprocessor_ = SegPreprocessor(**s["preprocessing"])
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise CheckpointError(
                f"{directory}: the bundle manifest or preprocessing file is incomplete ({exc}).",
                hint="Re-export the bundle with this medlearn version.",
            ) from None
        net = obj._new_net()
        state = torch.load(
            directory / manifest["weights"][0], map_location="cpu", weights_only=True
        )
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{directory}: weights do not fit model {obj.model!r} ({str(exc)[:200]}).",
                hint="The bundle was written by another model definition; retrain.",
            ) from None
        net.eval()
        obj.net_ = in_layout(net, memory_format(obj.spatial_dims, obj.channels_last))
        return obj


LEARNERS.add("segmentation", SegmentationLearner)


# SegmentationModule subclasses Lightning's LightningModule, which takes seconds to import: it is
# imported on first use, and this name keeps working
__getattr__ = lazy_attributes(
    __name__, {"SegmentationModule": "medlearn.imaging.segmentation._module"}
)
