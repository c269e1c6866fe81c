"""Image classification: preprocessing, the Lightning task and the :class:`ImageClassifier` learner.

The learner implements :class:`medlearn.training.Learner`: the pipeline builds it from a run
file, fits it (one or more ensemble members through the shared trainer), asks it for logits,
explanations and a bundle, and rebuilds it from that bundle for ``predict``.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medlearn._io import atomic_write_json
from medlearn._lazy import lazy_attributes
from medlearn.errors import CheckpointError, ConfigError, DataValidationError, NotFittedError
from medlearn.registry import LEARNERS, METRICS, MODELS, TRANSFORMS
from medlearn.training import BadInput, Explanation, FitReport
from medlearn.training.precision import resolve_precision

if TYPE_CHECKING:
    from medlearn.config import RunConfig
    from medlearn.data import LoadedData, Record

__all__ = ["ImageClassifier", "ImagePreprocessor"]

log = logging.getLogger(__name__)


# --- preprocessing ---------------------------------------------------------------------------


def _to_unit_float(arr: np.ndarray) -> np.ndarray:
    """Scale an image array to float32 in [0, 1] (uint8/uint16 by range; floats as given)."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    return arr.astype(np.float32, copy=False)


@dataclass
class ImagePreprocessor:
    """Image shape and intensity normalisation, fitted on training images only.

    Attributes:
        in_channels: channels the model expects.
        image_size: images are resized to ``image_size`` × ``image_size``.
        mean: per-channel mean of the training images (after scaling to [0, 1]).
        std: per-channel standard deviation of the training images.
        load_options: options passed to :func:`medlearn.imaging.readers.load_image`
            for file inputs (``window``, ``color``).
    """

    in_channels: int
    image_size: int
    mean: list[float]
    std: list[float]
    load_options: dict[str, Any]

    @classmethod
    def fit(
        cls, images: Sequence[np.ndarray], *, image_size: int | None, load_options: dict[str, Any]
    ) -> ImagePreprocessor:
        """Fit on training images ``(C, H, W)`` already scaled to [0, 1]."""
        if not images:
            raise DataValidationError("No training images to fit preprocessing on.")
        channels = {im.shape[0] for im in images}
        if len(channels) != 1:
            raise DataValidationError(
                f"Training images have mixed channel counts {sorted(channels)}.",
                hint="Set data.options.color to 'grayscale' or 'rgb' to convert them all.",
            )
        size = image_size or int(max(images[0].shape[1:]))
        stack = np.stack([im.reshape(im.shape[0], -1).mean(axis=1) for im in images])
        sq = np.stack([(im.reshape(im.shape[0], -1) ** 2).mean(axis=1) for im in images])
        mean = stack.mean(axis=0)
        std = np.sqrt(np.maximum(sq.mean(axis=0) - mean**2, 1e-12))
        return cls(
            in_channels=channels.pop(),
            image_size=size,
            mean=[float(m) for m in mean],
            std=[float(max(s, 1e-6)) for s in std],
            load_options=dict(load_options),
        )

    def check(self, image: np.ndarray, source: str) -> None:
        """Raise :class:`DataValidationError` if ``image`` cannot be fed to the model."""
        if image.ndim != 3:
            raise DataValidationError(
                f"{source}: expected a 2-D image (C, H, W); got {image.ndim - 1} spatial dims.",
                hint="Give one 2-D image per input.",
            )
        if image.shape[0] != self.in_channels:
            raise DataValidationError(
                f"{source}: image has {image.shape[0]} channel(s); the model expects "
                f"{self.in_channels}.",
                hint="Convert the image, or set data.options.color ('grayscale' or 'rgb') "
                "when training so inputs are converted.",
            )
        if image.size == 0 or not np.isfinite(image).all():
            raise DataValidationError(
                f"{source}: image is empty or holds NaN/inf values.",
                hint="Re-export the image; medlearn does not guess missing pixels.",
            )

    def transform(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Stack, resize and normalise images into a float tensor ``(N, C, S, S)``."""
        out = torch.empty(len(images), self.in_channels, self.image_size, self.image_size)
        mean = torch.tensor(self.mean).view(-1, 1, 1)
        std = torch.tensor(self.std).view(-1, 1, 1)
        for i, im in enumerate(images):
            t = torch.from_numpy(np.ascontiguousarray(_to_unit_float(im)))
            if t.shape[-2:] != (self.image_size, self.image_size):
                t = F.interpolate(
                    t[None],
                    size=(self.image_size, self.image_size),
                    mode="bilinear",
                    antialias=True,
                    align_corners=False,
                )[0]
            out[i] = (t - mean) / std
        return out

    def to_display(self, x: torch.Tensor) -> np.ndarray:
        """Undo normalisation of one ``(C, S, S)`` tensor → ``(S, S)`` or ``(S, S, 3)`` in [0,1]."""
        mean = torch.tensor(self.mean).view(-1, 1, 1)
        std = torch.tensor(self.std).view(-1, 1, 1)
        img = (x.detach().cpu() * std + mean).clamp(0, 1).numpy()
        return img[0] if img.shape[0] == 1 else np.moveaxis(img[:3], 0, -1)


# --- the Lightning task -----------------------------------------------------------------------


# --- the learner ------------------------------------------------------------------------------


def _load_record_images(
    records: Sequence[Record], load_options: dict[str, Any]
) -> tuple[list[np.ndarray], list[BadInput]]:
    """Materialise record inputs as ``(C, H, W)`` arrays, collecting every failure."""
    from medlearn.imaging.readers import load_image

    images: list[np.ndarray] = []
    bad: list[BadInput] = []
    for rec in records:
        inp = rec["input"]
        if isinstance(inp, np.ndarray):
            images.append(inp if inp.ndim == 3 else inp[None])
            continue
        try:
            images.append(load_image(inp, **load_options))
        except DataValidationError as exc:
            bad.append(BadInput(str(inp), exc.message))
    return images, bad


def _raise_bad(bad: Sequence[BadInput], what: str) -> None:
    shown = "; ".join(f"{b.message}" for b in bad[:10])
    more = f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""
    raise DataValidationError(
        f"{len(bad)} {what} image(s) could not be used: {shown}{more}.",
        hint="Fix or remove them; `medlearn data check PATH` lists every bad file.",
    )


class ImageClassifier:
    """2-D image classifier (binary or multiclass), optionally a deep ensemble.

    Args:
        model: registry name (``medlearn models list``).
        model_params: constructor params of that model.
        classes: class names (index = label).
        image_size: resize inputs to this size (default: the training images' size).
        load_options: reader options for file inputs (``window``, ``color``).
        augment: augmentation preset name and params, or ``None``.
        precision: training precision, ``32``, ``bf16`` or ``auto``
            (:mod:`medlearn.training.precision`; ``data.options.precision``); prediction
            stays float32.
        epochs, batch_size, lr, weight_decay, optimizer, scheduler, seed, deterministic,
        max_minutes, patience, monitor, class_weights, label_smoothing, ensemble,
        freeze_backbone_epochs, num_threads, progress: training settings
        (see :class:`medlearn.config.TrainingConfig`).
        init_from: a run directory or bundle whose weights initialise every member.
    """

    domain = "imaging"
    #: ``model.init_from`` (transfer learning from another run or bundle) is supported
    supports_init_from = True
    #: ``training.freeze_backbone_epochs`` is supported
    supports_freeze_backbone = True

    def __init__(
        self,
        *,
        model: str,
        classes: Sequence[str],
        model_params: dict[str, Any] | None = None,
        image_size: int | None = None,
        load_options: dict[str, Any] | None = None,
        augment: tuple[str, dict[str, Any]] | None = ("default", {}),
        epochs: int = 20,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        scheduler: str = "none",
        seed: int = 0,
        deterministic: bool = True,
        max_minutes: float | None = None,
        patience: int | None = None,
        monitor: str = "auroc",
        class_weights: str = "balanced",
        label_smoothing: float = 0.0,
        ensemble: int = 1,
        freeze_backbone_epochs: int = 0,
        num_threads: int | None = None,
        progress: bool = True,
        init_from: str | None = None,
        precision: str = "32",
    ) -> None:
        resolve_precision(precision, field="data.options.precision")
        self.precision = str(precision)
        self.model = model
        self.model_params = dict(model_params or {})
        self.classes = [str(c) for c in classes]
        self.image_size = image_size
        self.load_options = dict(load_options or {})
        self.augment = augment
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.seed = seed
        self.deterministic = deterministic
        self.max_minutes = max_minutes
        self.patience = patience
        self.monitor = monitor
        self.class_weights = class_weights
        self.label_smoothing = label_smoothing
        self.ensemble = ensemble
        self.freeze_backbone_epochs = freeze_backbone_epochs
        self.num_threads = num_threads
        self.progress = progress
        self.init_from = init_from
        self.nets_: list[nn.Module] | None = None
        #: (channels-last?, the members they were made from, prediction copies); see
        #: :meth:`_inference_nets`. Never saved.
        self._inference_: tuple[bool, list[nn.Module], list[nn.Module]] | None = None
        self.preprocessor_: ImagePreprocessor | None = None

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: RunConfig, data: LoadedData) -> ImageClassifier:
        """Build from a run file; ``data.classes`` gives the class names."""
        if cfg.task not in ("binary", "multiclass"):
            raise ConfigError(
                f"Image classification supports task 'binary' or 'multiclass'. Got {cfg.task!r}.",
                hint="Set task: binary (two classes) or task: multiclass.",
            )
        classes = data.classes or sorted({str(r["target"]) for r in data.records})
        if cfg.task == "binary" and len(classes) != 2:
            raise ConfigError(
                f"task: binary needs exactly 2 classes; the data has {len(classes)}.",
                hint="Use task: multiclass.",
            )
        options = dict(cfg.data.options)
        image_size = options.pop("size", None)
        load_options = {k: options.pop(k) for k in ("window", "color") if k in options}
        precision = options.pop("precision", "32")
        if options:
            raise ConfigError(
                f"Unknown data.options for imaging: {', '.join(sorted(options))}. "
                "Accepted: size, window, color, precision.",
            )
        t = cfg.training
        aug = (cfg.data.augment.name, dict(cfg.data.augment.params)) if cfg.data.augment else None
        if aug is not None:
            TRANSFORMS.get(aug[0])  # fail early with did-you-mean
        from medlearn.config import check_params

        # Validate the model name and params before any data is touched.
        check_params(
            MODELS.get(cfg.model.name),
            cfg.model.params,
            what=f"model {cfg.model.name!r}",
            reserved=("in_channels", "num_classes", "image_size"),
        )
        return cls(
            model=cfg.model.name,
            model_params=cfg.model.params,
            classes=classes,
            image_size=image_size,
            load_options=load_options,
            augment=aug,
            epochs=t.epochs,
            batch_size=t.batch_size,
            lr=t.lr,
            weight_decay=t.weight_decay,
            optimizer=t.optimizer,
            scheduler=t.scheduler,
            seed=t.seed,
            deterministic=t.deterministic,
            max_minutes=t.max_minutes,
            patience=t.patience,
            monitor=t.monitor,
            class_weights=t.class_weights,
            label_smoothing=t.label_smoothing,
            ensemble=t.ensemble,
            freeze_backbone_epochs=t.freeze_backbone_epochs,
            num_threads=t.num_threads,
            progress=t.progress,
            init_from=cfg.model.init_from,
            precision=precision,
        )

    def _new_net(self) -> nn.Module:
        from medlearn.imaging.models import create_model

        assert self.preprocessor_ is not None
        return create_model(
            self.model,
            in_channels=self.preprocessor_.in_channels,
            num_classes=len(self.classes),
            image_size=self.preprocessor_.image_size,
            **self.model_params,
        )

    def _tensors(self, records: Sequence[Record], what: str) -> tuple[torch.Tensor, torch.Tensor]:
        images, bad = _load_record_images(records, self.load_options)
        if bad:
            _raise_bad(bad, what)
        assert self.preprocessor_ is not None
        for rec, im in zip(records, images, strict=True):
            self.preprocessor_.check(_to_unit_float(im), f"{what} record {rec['id']}")
        x = self.preprocessor_.transform(images)
        y = torch.tensor([int(r["target"]) if r["target"] is not None else -1 for r in records])
        return x, y

    # -- fit --------------------------------------------------------------------------------
    def fit(
        self, train: Sequence[Record], val: Sequence[Record], *, work_dir: Path, resume: bool
    ) -> FitReport:
        """Fit ``ensemble`` members on ``train``, early-stopping and selecting on ``val``."""
        from medlearn.imaging.models import backbone_parameters

        work_dir = Path(work_dir)
        train_images, bad = _load_record_images(train, self.load_options)
        if bad:
            _raise_bad(bad, "training")
        self.preprocessor_ = ImagePreprocessor.fit(
            [_to_unit_float(im) for im in train_images],
            image_size=self.image_size,
            load_options=self.load_options,
        )
        x_train, y_train = self._tensors(train, "training")
        x_val, y_val = self._tensors(val, "validation")
        for name, y in (("training", y_train), ("validation", y_val)):
            out_of_range = int(((y < 0) | (y >= len(self.classes))).sum())
            if out_of_range:
                raise DataValidationError(
                    f"{out_of_range} {name} record(s) have a label outside "
                    f"0..{len(self.classes) - 1}.",
                    hint="Check data.target and the class list.",
                )
        counts = torch.bincount(y_train, minlength=len(self.classes)).float()
        weights = None
        if self.class_weights == "balanced":
            weights = counts.sum() / (len(self.classes) * counts.clamp(min=1))
        monitor_meta = METRICS.meta(self.monitor) if self.monitor != "loss" else {}
        mode = "max" if monitor_meta.get("higher_is_better", False) else "min"
        monitor_key = f"val_{self.monitor}"

        train_ds = torch.utils.data.TensorDataset(x_train, y_train)
        val_ds = torch.utils.data.TensorDataset(x_val, y_val)
        per_member = self.max_minutes / self.ensemble if self.max_minutes else None
        precision = resolve_precision(self.precision, field="data.options.precision")
        self.nets_ = []
        epochs, stopped, history = [], [], []
        t0 = time.perf_counter()
        samples = 0
        flops_per_sample = None
        for member in range(self.ensemble):
            seed = self.seed + member
            torch.manual_seed(seed)
            net = self._new_net()
            if self.init_from:
                _init_from_bundle(net, self.init_from)
            if flops_per_sample is None:
                flops_per_sample = _train_flops_per_sample(net, x_train[: min(16, len(x_train))])
            augment = None
            if self.augment is not None:
                augment = TRANSFORMS.get(self.augment[0])(**self.augment[1])
            from medlearn.imaging._cls_module import ClassificationModule
            from medlearn.training import fit_module

            module = ClassificationModule(
                net,
                num_classes=len(self.classes),
                lr=self.lr,
                weight_decay=self.weight_decay,
                optimizer=self.optimizer,
                scheduler=self.scheduler,
                max_epochs=self.epochs,
                class_weights=weights,
                label_smoothing=self.label_smoothing,
                augment=augment,
                monitor=self.monitor,
                backbone_params=backbone_parameters(net, self.model),
                freeze_backbone_epochs=self.freeze_backbone_epochs,
                seed=seed,
                precision=precision,
            )
            outcome = fit_module(
                module,
                train_ds,
                val_ds,
                batch_size=self.batch_size,
                max_epochs=self.epochs,
                ckpt_dir=work_dir
                / "checkpoints"
                / (f"member_{member}" if self.ensemble > 1 else ""),
                monitor=monitor_key if self.monitor != "loss" else "val_loss",
                mode=mode,
                patience=self.patience,
                max_minutes=per_member,
                seed=seed,
                deterministic=self.deterministic,
                resume=resume,
                progress=self.progress,
                num_threads=self.num_threads,
            )
            net.eval()
            for p in net.parameters():
                p.requires_grad_(True)
            self.nets_.append(net)
            epochs.append(outcome.epochs_completed)
            stopped.append(outcome.stopped_by)
            samples += outcome.samples_seen
            history.extend({"member": member, **h} for h in outcome.history)
        seconds = time.perf_counter() - t0
        extra: dict[str, Any] = {
            "class_counts": [int(c) for c in counts],
            "precision": precision,
        }
        if flops_per_sample:
            extra["train_gflop_per_sample"] = flops_per_sample / 1e9
            extra["achieved_gflops"] = flops_per_sample * samples / max(seconds, 1e-9) / 1e9
        return FitReport(
            fit_seconds=seconds,
            epochs=epochs,
            stopped_by=stopped,
            history=history,
            samples_per_second=samples / max(seconds, 1e-9),
            extra=extra,
        )

    # -- inference --------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if self.nets_ is None or self.preprocessor_ is None:
            raise NotFittedError(
                "This ImageClassifier is not fitted yet. Call fit(...) or "
                "ImageClassifier.load(...) before predicting."
            )

    def _inference_nets(self, x: torch.Tensor) -> list[nn.Module]:
        """Prediction copies of the members (:func:`~medlearn.imaging.models.inference_copy`),
        made once per set of members: batch norms folded into their convolutions and, for
        2-D inputs, channels-last layout, where a 28-px ``simple_cnn`` batch predicts about
        twice as fast on CPU. Values are unchanged up to float rounding; the members
        themselves (saved, explained, fine-tuned) are not touched."""
        from medlearn.imaging.models import inference_copy

        assert self.nets_ is not None
        channels_last = x.dim() == 4
        cached = self._inference_
        if (
            cached is not None
            and cached[0] == channels_last
            and len(cached[1]) == len(self.nets_)
            and all(a is b for a, b in zip(cached[1], self.nets_, strict=True))
        ):
            return cached[2]
        fast = [inference_copy(net, channels_last=channels_last) for net in self.nets_]
        self._inference_ = (channels_last, list(self.nets_), fast)
        return fast

    @torch.no_grad()
    def _logits_tensor(self, x: torch.Tensor, *, tta: bool, batch_size: int = 256) -> torch.Tensor:
        from medlearn.imaging.transforms import tta_average, tta_views

        assert self.nets_ is not None
        out = []
        nets = self._inference_nets(x)
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size]
            if x.dim() == 4:
                xb = xb.contiguous(memory_format=torch.channels_last)
            member_probs = []
            for net in nets:
                if tta:
                    member_probs.append(tta_average(net, xb, tta_views(xb)).exp())
                else:
                    member_probs.append(torch.softmax(net(xb), dim=1))
            out.append(torch.stack(member_probs).mean(0).clamp_min(1e-12).log())
        return torch.cat(out) if out else torch.empty(0, len(self.classes))

    def predict_logits(self, records: Sequence[Record], *, tta: bool = False) -> np.ndarray:
        """Log of the ensemble-mean probabilities ``(N, C)``, usable as logits."""
        self._check_fitted()
        x, _ = self._tensors(records, "input")
        return self._logits_tensor(x, tta=tta).numpy()

    def explain(self, records: Sequence[Record], targets: Sequence[int]) -> list[Explanation]:
        """Grad-CAM of the first ensemble member for each record's target class."""
        from medlearn.explain import gradcam

        self._check_fitted()
        assert self.nets_ is not None and self.preprocessor_ is not None
        x, _ = self._tensors(records, "input")
        layer = MODELS.meta(self.model)["cam_layer"]
        maps = gradcam(self.nets_[0], x, target_layer=layer, class_index=list(targets))
        return [
            Explanation(
                image=self.preprocessor_.to_display(x[i]),
                heatmap=maps[i],
                target=int(targets[i]),
                method="gradcam",
            )
            for i in range(len(records))
        ]

    def read_inputs(self, sources: Sequence[str]) -> tuple[list[Record], list[BadInput]]:
        """Load user image files (directories expand to their images), reporting bad ones."""
        from medlearn.data import make_record
        from medlearn.imaging.readers import check_inputs

        self._check_fitted()
        assert self.preprocessor_ is not None
        good, bad = check_inputs(list(sources), **self.preprocessor_.load_options)
        records = []
        for path, image in good:
            try:
                self.preprocessor_.check(image, path)
            except DataValidationError as exc:
                bad.append(BadInput(path, exc.message))
                continue
            records.append(make_record(path, image, None))
        return records, list(bad)

    def read_input_bytes(
        self, items: Sequence[tuple[str, bytes]]
    ) -> tuple[list[Record], list[BadInput]]:
        """:meth:`read_inputs` for PNG/JPEG/BMP/TIFF files in memory, as ``(name, bytes)``.

        Decodes and checks each image exactly as :meth:`read_inputs` does for the same file
        (record ids are the names, bad inputs come in the same order); DICOM and NIfTI
        content is reported as a bad input, so callers send those through
        :meth:`read_inputs`.
        """
        from medlearn.data import make_record
        from medlearn.errors import DataNotFoundError
        from medlearn.imaging._images import check_load_options, load_image_bytes

        self._check_fitted()
        assert self.preprocessor_ is not None
        options = check_load_options(self.preprocessor_.load_options)
        records, unreadable, unusable = [], [], []
        for name, data in items:
            try:
                image = load_image_bytes(data, name, **options)
            except (DataValidationError, DataNotFoundError) as exc:
                unreadable.append(BadInput(name, str(exc)))
                continue
            except (ConfigError, ImportError):
                raise
            except Exception as exc:  # noqa: BLE001 - a decoder bug must not stop the batch
                unreadable.append(
                    BadInput(name, f"{name}: unexpected {type(exc).__name__} while reading.")
                )
                continue
            try:
                self.preprocessor_.check(image, name)
            except DataValidationError as exc:
                unusable.append(BadInput(name, exc.message))
                continue
            records.append(make_record(name, image, None))
        return records, unreadable + unusable

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: Path) -> dict[str, Any]:
        """Write weights (tensors only) and preprocessing; return manifest fields."""
        self._check_fitted()
        assert self.nets_ is not None and self.preprocessor_ is not None
        directory = Path(directory)
        (directory / "weights").mkdir(parents=True, exist_ok=True)
        weights = []
        for i, net in enumerate(self.nets_):
            rel = f"weights/member_{i}.pt"
            tmp = directory / (rel + ".tmp")
            torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, tmp)
            tmp.replace(directory / rel)
            weights.append(rel)
        atomic_write_json(directory / "preprocessing.json", asdict(self.preprocessor_))
        return {
            "domain": self.domain,
            "learner": "imaging",
            "model": {"name": self.model, "params": self.model_params},
            "classes": self.classes,
            "weights": weights,
            "preprocessing": "preprocessing.json",
            "input": {
                "kind": "image",
                "channels": self.preprocessor_.in_channels,
                "size": self.preprocessor_.image_size,
                "formats": ["png", "jpeg", "tiff", "dicom", "nifti"],
            },
            "explain": {"method": "gradcam", "layer": MODELS.meta(self.model).get("cam_layer")},
        }

    @classmethod
    def load(cls, directory: Path, manifest: dict[str, Any]) -> ImageClassifier:
        """Rebuild from a verified bundle directory (tensors only; no code is executed)."""
        directory = Path(directory)
        try:
            pre = ImagePreprocessor(
                **json.loads((directory / manifest["preprocessing"]).read_text())
            )
            model = manifest["model"]
            obj = cls(
                model=model["name"], model_params=model.get("params"), classes=manifest["classes"]
            )
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise CheckpointError(
                f"{directory}: the bundle manifest or preprocessing file is incomplete ({exc}).",
                hint="Re-export the bundle with this medlearn version.",
            ) from None
        obj.preprocessor_ = pre
        nets = []
        for rel in manifest["weights"]:
            net = obj._new_net()
            state = torch.load(directory / rel, map_location="cpu", weights_only=True)
            try:
                net.load_state_dict(state)
            except RuntimeError as exc:
                raise CheckpointError(
                    f"{directory / rel}: weights do not fit model {model['name']!r} "
                    f"({str(exc)[:200]}).",
                    hint="The bundle was written by another model definition; retrain.",
                ) from None
            net.eval()
            nets.append(net)
        obj.nets_ = nets
        return obj


def _init_from_bundle(net: nn.Module, source: str) -> None:
    """Copy the layers whose tensors' names and shapes all match from a run directory or
    bundle's member 0 (:func:`~medlearn.training._transfer.matching_layers`)."""
    from medlearn.bundle import read_manifest
    from medlearn.training._transfer import matching_layers

    manifest = read_manifest(source)
    weights = Path(manifest["_dir"]) / manifest["weights"][0]
    state = torch.load(weights, map_location="cpu", weights_only=True)
    own = net.state_dict()
    matched = matching_layers(own, state)
    if not matched:
        raise CheckpointError(
            f"model.init_from {source!r}: no weights match this model's layers.",
            hint="Initialise from a run of the same model family.",
        )
    net.load_state_dict(matched, strict=False)
    log.info("initialised %d of %d tensors from %s", len(matched), len(own), source)


def _train_flops_per_sample(net: nn.Module, x: torch.Tensor) -> float | None:
    """FLOPs of one forward + backward pass per sample, counted by torch's FlopCounterMode."""
    if len(x) == 0:
        return None
    from torch.utils.flop_counter import FlopCounterMode

    probe = copy.deepcopy(net).train()  # a copy, so BatchNorm statistics stay untouched
    counter = FlopCounterMode(display=False)
    with counter:
        probe(x).sum().backward()
    return counter.get_total_flops() / len(x)


LEARNERS.add("imaging", ImageClassifier)


# ClassificationModule subclasses Lightning's LightningModule, which takes seconds to import: it is
# imported on first use, and this name keeps working
__getattr__ = lazy_attributes(__name__, {"ClassificationModule": "medlearn.imaging._cls_module"})
