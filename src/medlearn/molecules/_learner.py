"""The molecule learner: graph networks and fingerprint baselines for property prediction.

:class:`MoleculeLearner` implements :class:`medlearn.training.Learner` for SMILES records
(``input`` = canonical SMILES; ``target`` = a float, a 0/1 label, or a list with NaN for
missing labels). One learner serves every model of :mod:`medlearn.molecules._models`:

- **graph networks** train with a plain torch loop (no Lightning: at this size its per-step
  overhead is a large share of the fit time): graphs are featurised once
  (:func:`medlearn.molecules._data.featurize`, cached), batches are stacked with
  :func:`~medlearn.molecules._featurize.collate`, Adam with Chemprop's warm-up + exponential
  decay ("noam") or a cosine schedule, masked multi-task losses (BCE-with-logits or MSE on
  standardised targets), early stopping on validation RMSE or mean ROC-AUC with the best
  epoch's weights restored, ``work_dir/checkpoints/member_<k>/last.ckpt`` every epoch
  (``resume`` continues from it).
- **fingerprint baselines** fit one scikit-learn model per target on its labelled rows.
- **blends** (``model.params.blend`` of a graph network): a fingerprint baseline is also fitted
  on the training molecules and averaged with the network(s), per target
  ``(1 - w) * network + w * baseline`` (of probabilities for classification), ``w`` chosen
  from 0, 0.1, ..., 1 by the validation loss. The two kinds of model err differently, which
  the average exploits.

``training.ensemble = M`` trains M members with different seeds (deep ensembles):
predictions are the member mean (of probabilities for classification) and
:meth:`MoleculeLearner.predict_with_uncertainty` also returns the member variance. A blend
weighs the networks ``(1 - w) / M`` each and the baseline ``w``; its variance is the weighted
variance of those members (with one network: ``w (1 - w) (network - baseline)^2``).

Explanations are per-atom attributions: integrated gradients on the atom features (summed
over the feature axis) for graph networks, fingerprint-bit occlusion mapped onto atoms
through the Morgan bit environments for fingerprint models; a blend's are the two, weighted
``1 - w`` and ``w``.

Saved bundles hold tensors (``torch.load(weights_only=True)``), skops files loaded against an
explicit list of trusted types, and JSON; nothing is pickled.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from medlearn._io import atomic_write_bytes, atomic_write_json
from medlearn.errors import CheckpointError, ConfigError, DataValidationError, NotFittedError
from medlearn.molecules._fit import (
    _PREDICT_CHUNK,
    Scheduler,
    _chunks,
    _featurizer_version,
    _logit,
    _mean_auroc,
    _member_seed,
    _rmse,
    _sigmoid,
    _Split,
    _train_member,
    checkpointed_seconds,
    keep_freed_memory,
    lr_at,
    masked_loss,
)
from medlearn.molecules._models import RESERVED, build_network, make_estimator
from medlearn.registry import LEARNERS, MODELS
from medlearn.training import BadInput, Explanation, FitReport

if TYPE_CHECKING:
    from medlearn.config import RunConfig
    from medlearn.data import LoadedData, Record
    from medlearn.molecules._models import MoleculeNet

__all__ = [
    "TRUSTED_TYPES",
    "MoleculeLearner",
    "descriptor_matrix",
    "fingerprint_matrix",
    "lr_at",
    "masked_loss",
]

log = logging.getLogger(__name__)

#: Every type a molecule bundle's skops files may contain; anything else is refused on load.
TRUSTED_TYPES: tuple[str, ...] = (
    "numpy.dtype",
    "numpy.ndarray",
    "numpy.random._generator.Generator",
    "numpy.random._mt19937.MT19937",
    "numpy.random._pcg64.PCG64",
    "numpy.random.mtrand.RandomState",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss._loss.CyHalfSquaredError",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn.compose._target.TransformedTargetRegressor",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.kernel_ridge.KernelRidge",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._label.LabelEncoder",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",
)

_IG_STEPS = 32  # integrated-gradients interpolation steps

#: ``training.scheduler`` of the run file → this learner's schedule.
_SCHEDULERS: dict[str, Scheduler] = {"none": "constant", "onecycle": "noam", "cosine": "cosine"}


# --- features ------------------------------------------------------------------------------------


def _mols(smiles: Sequence[str]) -> list[Any]:
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():
        mols = [Chem.MolFromSmiles(s) for s in smiles]
    bad = [i for i, m in enumerate(mols) if m is None]
    if bad:
        raise DataValidationError(
            f"{len(bad)} of {len(smiles)} molecules cannot be parsed (first at position "
            f"{bad[0] + 1}).",
            hint="Read molecules with the 'molecules' reader first; it reports bad rows.",
        )
    return mols


def _morgan_generator(radius: int, n_bits: int) -> Any:
    """The generator of :func:`medlearn.molecules._features.morgan_fingerprints` (no
    chirality), used for the bit environments of explanations."""
    from rdkit.Chem import rdFingerprintGenerator

    return rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)


def fingerprint_matrix(
    smiles: Sequence[str],
    *,
    kind: Literal["count", "bit"] = "count",
    radius: int = 2,
    n_bits: int = 2048,
) -> np.ndarray:
    """Morgan fingerprints ``(N, n_bits)`` float64 (counts, or 0/1 bits)."""
    from medlearn.molecules._features import morgan_fingerprints

    X = morgan_fingerprints(list(smiles), radius=radius, n_bits=n_bits, counts=kind == "count")
    return np.asarray(X, dtype=np.float64)


def descriptor_matrix(smiles: Sequence[str], names: Sequence[str] | None = None) -> np.ndarray:
    """RDKit 2D descriptors ``(N, D)`` float64, NaN where a descriptor fails; uncached rows
    are computed by as many processes as torch has threads (``training.num_threads``)."""
    import torch

    from medlearn.molecules._features import rdkit_descriptors

    X = rdkit_descriptors(list(smiles), names=names, workers=torch.get_num_threads())
    return np.asarray(X, dtype=np.float64)


#: buffers that belong to the fine-tuning data, never copied by ``model.init_from``
_NOT_TRANSFERRED = ("y_mean", "y_std")


def _copy_pretrained(net: MoleculeNet, state: dict[str, Any], source: str) -> dict[str, Any]:
    """Copy ``state``'s layers whose tensors' names and shapes all match ``net``'s (not the
    target scaler); every encoder tensor must match.

    Returns:
        ``{"source", "tensors", "of", "encoder"}``: what was copied.

    Raises:
        ConfigError: an encoder tensor is missing from ``state`` or has another shape.
    """
    from medlearn.training._transfer import matching_layers

    own = net.state_dict()
    matched = matching_layers(own, state, exclude=_NOT_TRANSFERRED)
    encoder = [k for k in own if k.startswith("encoder.")]
    unmatched = [k for k in encoder if k not in matched]
    if unmatched:
        k = unmatched[0]
        got = tuple(state[k].shape) if k in state else "absent"
        raise ConfigError(
            f"model.init_from {source!r}: {len(unmatched)} of the {len(encoder)} encoder "
            f"tensors do not match this model (first: {k!r}, shape {tuple(own[k].shape)} "
            f"here, {got} there).",
            hint="Use the pretrained run's encoder params (hidden, depth, aggregation, ...).",
        )
    net.load_state_dict(matched, strict=False)
    log.info("initialised %d of %d tensors from %s", len(matched), len(own), source)
    return {
        "source": source,
        "tensors": len(matched),
        "of": len(own),
        "encoder": len(encoder),
    }


def _graphs(smiles: Sequence[str]) -> list[Any]:
    from medlearn.molecules._data import featurize

    return featurize(list(smiles))


# --- the learner ---------------------------------------------------------------------------------


class MoleculeLearner:
    """Molecular property prediction: one registered model, one or several targets.

    Args:
        model: a registry name (``dmpnn``, ``gin``, ``gine``, ``attentivefp``,
            ``fp_random_forest``, ``fp_gradient_boosting``).
        task: ``binary`` (one 0/1 target, or several: trained as multi-task), ``multilabel``
            (several 0/1 targets) or ``regression`` (one or several continuous targets).
        targets: target names, in order.
        classes: ``["negative", "positive"]`` for one binary target, else ``None``.
        model_params: keyword arguments of the model factory.
        standardization: the reader's SMILES standardisation options (used by
            :meth:`read_inputs`).
        seed: seed of everything random; ensemble member ``k > 0`` derives its own.
        class_weights: ``"balanced"`` (positive labels weighted by negatives / positives per
            target) or ``"none"``.
        epochs, batch_size, lr, weight_decay, optimizer: optimisation (``lr`` is the peak).
        scheduler: ``noam`` (Chemprop's warm-up + exponential decay), ``cosine`` or
            ``constant``.
        warmup_epochs: warm-up length of ``noam`` and ``cosine``.
        patience: epochs without validation improvement before stopping (``None``: never;
            the best epoch's weights are restored either way).
        monitor: ``auto`` (RMSE for regression, mean ROC-AUC for classification) or
            ``loss`` (validation loss).
        max_minutes: wall-time budget of the whole fit (all members; each member trains at
            least one epoch).
        deterministic, num_threads, progress: as :class:`medlearn.config.TrainingConfig`.
        ensemble: members with different seeds (deep ensemble).
        init_from: a molecule run directory or bundle (graph network, same featuriser) whose
            member-0 weights initialise every member before training: each layer whose
            tensors' names and shapes all match is copied (the whole encoder must match), the
            target scaler is not. A descriptor-pretraining run
            (``data.options.descriptor_targets``) is the usual source.
        freeze_encoder_epochs: the first epochs train the head alone, the encoder's weights
            held (``training.freeze_backbone_epochs``); mostly useful with ``init_from``.
    """

    domain = "molecules"
    #: ``model.init_from`` (fine-tuning a pretrained network) is supported
    supports_init_from = True
    #: ``training.freeze_backbone_epochs`` (the encoder) is supported
    supports_freeze_backbone = True
    #: explanations are atom attributions drawn by the molecules handler, not images
    image_explanations = False

    def __init__(
        self,
        *,
        model: str,
        task: str = "regression",
        targets: Sequence[str] = ("target",),
        classes: Sequence[str] | None = None,
        model_params: dict[str, Any] | None = None,
        standardization: dict[str, Any] | None = None,
        seed: int = 0,
        class_weights: str = "none",
        epochs: int = 50,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        scheduler: Scheduler = "noam",
        warmup_epochs: float = 2.0,
        patience: int | None = None,
        monitor: Literal["auto", "loss"] = "auto",
        max_minutes: float | None = None,
        deterministic: bool = True,
        num_threads: int | None = None,
        progress: bool = False,
        ensemble: int = 1,
        init_from: str | None = None,
        freeze_encoder_epochs: int = 0,
    ) -> None:
        if task not in ("binary", "multilabel", "regression"):
            raise ConfigError(
                f"The 'task' parameter of MoleculeLearner must be binary, multilabel or "
                f"regression. Got {task!r}.",
                hint="Set task: regression for continuous targets, binary or multilabel for "
                "0/1 targets.",
            )
        if scheduler not in ("noam", "cosine", "constant"):
            raise ConfigError(
                f"The 'scheduler' parameter of MoleculeLearner must be noam, cosine or "
                f"constant. Got {scheduler!r}."
            )
        self.model = model
        self.task = task
        self.targets = [str(t) for t in targets]
        self.classes = [str(c) for c in classes] if classes else []
        self.model_params = dict(model_params or {})
        self.standardization = dict(standardization or {})
        self.seed = seed
        self.class_weights = class_weights
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.warmup_epochs = warmup_epochs
        self.patience = patience
        self.monitor = monitor
        self.max_minutes = max_minutes
        self.deterministic = deterministic
        self.num_threads = num_threads
        self.progress = progress
        self.ensemble = int(ensemble)
        self.init_from = init_from
        self.freeze_encoder_epochs = int(freeze_encoder_epochs)
        self.kind = str(MODELS.meta(model).get("kind", "torch"))
        self.arch_: dict[str, Any] | None = None
        self.nets_: list[MoleculeNet] = []
        self.estimators_: list[list[Any]] = []  # [member][target]: estimator or constant
        self.member_seeds_: list[int] = []
        self.descriptor_scaler_: Any = None  # a fitted DescriptorScaler when descriptors=True
        # model.params.blend: per baseline its spec and per-target estimators (or constants),
        # and the weights ``(B, T)`` of the baselines (the networks share the rest)
        self.blend_arch_: list[dict[str, Any]] = []
        self.blend_: list[list[Any]] = []
        self.blend_weights_: np.ndarray | None = None
        # blend_refit: the validation records' ids and every member's outputs on them from
        # before the refit (held out); not saved with the model
        self.heldout_: tuple[list[str], np.ndarray] | None = None

    # -- construction -----------------------------------------------------------------------
    @property
    def classification(self) -> bool:
        """Whether the targets are 0/1 labels."""
        return self.task != "regression"

    @property
    def n_tasks(self) -> int:
        return len(self.targets)

    @classmethod
    def from_config(cls, cfg: RunConfig, data: LoadedData) -> MoleculeLearner:
        """Build an unfitted learner from the run file and the reader's ``info``.

        Raises:
            ConfigError: the model is not a molecule model, does not support the task,
                gets unknown params, or the targets do not fit the task.
        """
        from medlearn.config import check_params

        meta = MODELS.meta(cfg.model.name)
        if meta.get("learner") != "molecules":
            raise ConfigError(f"Model {cfg.model.name!r} is not a molecule model.")
        if cfg.task not in meta.get("tasks", ()):
            raise ConfigError(
                f"Model {cfg.model.name!r} does not support task {cfg.task!r}.",
                hint=f"Tasks it supports: {', '.join(meta.get('tasks', ()))}.",
            )
        check_params(
            MODELS.get(cfg.model.name),
            cfg.model.params,
            what=f"model {cfg.model.name!r}",
            reserved=RESERVED,
        )
        if cfg.task != "regression":
            spec = MODELS.get(cfg.model.name)(**cfg.model.params)
            numeric = [b["name"] for b in spec.get("blend_specs") or [] if not _classifies(b)]
            if numeric:
                raise ConfigError(
                    f"model.params.blend: {', '.join(numeric)} predicts numbers and cannot "
                    f"blend with a {cfg.task} network.",
                    hint="Blend a classification network with fp_gradient_boosting or "
                    "fp_random_forest.",
                )
        info = data.info or {}
        targets = list(info.get("targets") or [])
        if not targets:
            raise ConfigError(
                "The molecule data names no target column; property prediction needs one.",
                hint="Set data.target to the target column(s) of the table.",
            )
        types = info.get("task_types") or []
        if isinstance(types, str):
            types = [types] * len(targets)
        continuous = [t for t, k in zip(targets, types, strict=False) if k == "regression"]
        if cfg.task in ("binary", "multilabel") and continuous:
            raise ConfigError(
                f"Task {cfg.task!r} needs 0/1 targets; {', '.join(map(repr, continuous))} "
                "hold other values.",
                hint="Set task: regression for continuous targets.",
            )
        if cfg.task == "multilabel" and len(targets) < 2:
            raise ConfigError(
                "Task 'multilabel' needs several 0/1 targets; the data has one.",
                hint="Use task: binary for a single 0/1 target.",
            )
        t = cfg.training
        return cls(
            model=cfg.model.name,
            task=cfg.task,
            targets=targets,
            classes=data.classes if cfg.task == "binary" and len(targets) == 1 else None,
            model_params=cfg.model.params,
            standardization=info.get("standardization"),
            seed=t.seed,
            class_weights=t.class_weights,
            epochs=t.epochs,
            batch_size=t.batch_size,
            lr=t.lr,
            weight_decay=t.weight_decay,
            optimizer=t.optimizer,
            scheduler=_SCHEDULERS[t.scheduler],
            patience=t.patience,
            monitor="loss" if t.monitor == "loss" else "auto",
            max_minutes=t.max_minutes,
            deterministic=t.deterministic,
            num_threads=t.num_threads,
            progress=t.progress,
            ensemble=t.ensemble,
            init_from=cfg.model.init_from,
            freeze_encoder_epochs=t.freeze_backbone_epochs,
        )

    def _spec(self) -> dict[str, Any]:
        return dict(MODELS.get(self.model)(**self.model_params))

    # -- targets ----------------------------------------------------------------------------
    def _target_matrix(self, records: Sequence[Record], what: str) -> np.ndarray:
        """Targets ``(N, T)`` float64 with NaN for missing labels.

        Raises:
            DataValidationError: a record has the wrong number of targets, or a
                classification label other than 0/1.
        """
        y = np.full((len(records), self.n_tasks), np.nan)
        for i, rec in enumerate(records):
            value = rec.get("target")
            if value is None:
                continue
            try:
                row = np.asarray(value, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                raise DataValidationError(
                    f"{what}: record {rec['id']} has a non-numeric target.",
                    hint="Targets must be numbers (NaN or empty for a missing label).",
                ) from None
            if row.shape[0] != self.n_tasks:
                raise DataValidationError(
                    f"{what}: record {rec['id']} has {row.shape[0]} target value(s); the "
                    f"model has {self.n_tasks} target(s).",
                    hint="Use data with the training data's target columns.",
                )
            y[i] = row
        if self.classification:
            bad = ~np.isnan(y) & ~np.isin(y, (0.0, 1.0))
            if bad.any():
                i = int(np.argwhere(bad)[0, 0])
                raise DataValidationError(
                    f"{what}: {int(bad.sum())} classification label(s) are not 0 or 1 (first "
                    f"in record {records[i]['id']}).",
                    hint="Set task: regression for continuous targets.",
                )
        return y

    def _split(
        self, records: Sequence[Record], what: str, *, labelled: bool, fit_scaler: bool = False
    ) -> _Split:
        """Featurise ``records``: graphs (graph networks), scaled descriptors (when the model
        uses them; ``fit_scaler`` fits the scaler on these records first) and targets."""
        smiles = [str(r["input"]) for r in records]
        y = (
            self._target_matrix(records, what)
            if labelled
            else np.full((len(records), self.n_tasks), np.nan)
        )
        graphs = _graphs(smiles) if self.kind == "torch" else []
        extra = None
        if self.arch_ is not None and self.arch_.get("descriptors"):
            from medlearn.molecules._features import DescriptorScaler, descriptor_names

            if fit_scaler:
                names = descriptor_names()
                raw = descriptor_matrix(smiles, names)
                self.descriptor_scaler_ = DescriptorScaler(names).fit(raw)
            elif self.descriptor_scaler_ is None:
                raise NotFittedError("The descriptor scaler is not fitted; call fit(...) first.")
            else:
                raw = descriptor_matrix(smiles, self.descriptor_scaler_.names)
            extra = self.descriptor_scaler_.transform(raw)
        return _Split(smiles=smiles, graphs=graphs, extra=extra, y=y)

    # -- fit --------------------------------------------------------------------------------
    def fit(
        self, train: Sequence[Record], val: Sequence[Record], *, work_dir: Path, resume: bool
    ) -> FitReport:
        """Fit on ``train`` (scalers included), early-stopping and selecting on ``val``.

        Raises:
            DataValidationError: no labelled training molecule, bad labels, or a target with
                no label in the training split.
        """
        from medlearn.training import configure_threads, seed_everything

        t0 = time.perf_counter()
        threads = configure_threads(self.num_threads)
        seed_everything(self.seed, deterministic=self.deterministic)
        spec = self._spec()
        blend = _blend_list(spec)
        if blend and not val:
            raise ConfigError(
                f"model.params.blend: {', '.join(blend)} chooses its weight on the validation "
                "split, and there is none.",
                hint="Give data.split a validation fraction (e.g. fractions: [0.8, 0.1, 0.1]) "
                "or set model.params.blend: none.",
            )
        if self.init_from and self.kind != "torch":
            raise ConfigError(
                f"model.init_from: {self.model!r} is a fingerprint baseline; only graph "
                "networks start from pretrained weights.",
                hint="Remove model.init_from, or use dmpnn, gin, gine or attentivefp.",
            )
        self.arch_ = spec
        self.descriptor_scaler_ = None
        self.blend_arch_, self.blend_, self.blend_weights_ = [], [], None
        self.heldout_ = None
        tf = time.perf_counter()
        tr = self._split(train, "training records", labelled=True, fit_scaler=True)
        va = self._split(val, "validation records", labelled=True) if val else None
        featurise_s = time.perf_counter() - tf
        keep = ~np.isnan(tr.y).all(axis=1)
        if not keep.any():
            raise DataValidationError(
                "training records have no target value; nothing to learn from.",
                hint="Check data.target and that the training split holds labelled rows.",
            )
        if not keep.all():
            idx = np.flatnonzero(keep)
            tr = _Split(
                [tr.smiles[i] for i in idx],
                [tr.graphs[i] for i in idx] if tr.graphs else [],
                None if tr.extra is None else tr.extra[idx],
                tr.y[idx],
            )
        empty = [n for n, c in zip(self.targets, (~np.isnan(tr.y)).sum(0), strict=True) if c == 0]
        if empty:
            raise DataValidationError(
                f"target(s) {', '.join(map(repr, empty))} have no label in the training split.",
                hint="Drop those targets from data.target or use a different split.",
            )
        if self.classification:
            for name, col in zip(self.targets, tr.y.T, strict=True):
                if len(np.unique(col[~np.isnan(col)])) < 2:
                    log.warning("target %r has a single class in the training split", name)
        seeds = [self.seed] + [_member_seed(self.seed, k) for k in range(1, max(1, self.ensemble))]
        self.member_seeds_ = seeds
        extra_info: dict[str, Any] = {
            "featurise_seconds": round(featurise_s, 3),
            "n_train": int(len(tr.y)),
            "n_val": int(len(va.y)) if va is not None else 0,
            "threads": threads,
            "ensemble": len(seeds),
            "labels_per_target": {
                n: int(c) for n, c in zip(self.targets, (~np.isnan(tr.y)).sum(0), strict=True)
            },
        }
        if self.descriptor_scaler_ is not None:
            extra_info["n_descriptors"] = len(self.descriptor_scaler_.names)
        if self.kind == "sklearn":
            report = self._fit_estimators(tr, va, seeds, threads)
        else:
            report = self._fit_networks(tr, va, seeds, Path(work_dir), resume, t0)
            if blend and va is not None:
                report.extra["blend"] = self._fit_blend(tr, va, threads)
                if spec.get("blend_refit"):
                    report.extra["blend"]["refit"] = self._refit_blend(tr, va, val, threads)
        report.fit_seconds = time.perf_counter() - t0 + report.extra.get("resumed_seconds", 0.0)
        report.samples_per_second = len(tr.y) * sum(report.epochs) / max(report.fit_seconds, 1e-9)
        report.extra.update(extra_info)
        return report

    # .. fingerprint baselines ..............................................................
    def _fp_features(
        self,
        smiles: Sequence[str],
        extra: np.ndarray | None,
        spec: dict[str, Any] | None = None,
    ) -> np.ndarray:
        """Fingerprints (plus scaled descriptors when ``spec`` asks) of a fingerprint spec:
        the model's own, or a blend's."""
        spec = spec if spec is not None else (self.arch_ or {})
        X = fingerprint_matrix(
            smiles, kind=spec["fingerprint"], radius=int(spec["radius"]), n_bits=int(spec["n_bits"])
        ).astype(np.float64)
        if spec.get("descriptors"):
            if extra is None:
                extra = self.descriptor_scaler_.transform(
                    descriptor_matrix(smiles, self.descriptor_scaler_.names)
                )
            X = np.concatenate([X, np.asarray(extra, dtype=np.float64)], axis=1)
        return X

    def _fit_estimators(
        self, tr: _Split, va: _Split | None, seeds: list[int], threads: int
    ) -> FitReport:
        X = self._fp_features(tr.smiles, tr.extra)
        self.estimators_ = []
        searched: dict[str, dict[str, float]] = {}
        for seed in seeds:
            member, search = self._fit_targets(self.arch_ or {}, X, tr.y, seed, threads)
            self.estimators_.append(member)
            searched = searched or search  # member 0's (each member searches with its seed)
        history: list[dict[str, Any]] = []
        best: dict[str, Any] = {"search": searched} if searched else {}
        if va is not None and len(va.y):
            pred = self._aggregate(self._raw_fp(self._fp_features(va.smiles, va.extra)))[0]
            name, score = self._val_score(va.y, pred)
            history.append({"member": 0, "epoch": 1, f"val_{name}": score})
            best[f"best_val_{name}"] = score
        return FitReport(
            fit_seconds=0.0,
            epochs=[1] * len(seeds),
            stopped_by=["converged"] * len(seeds),
            history=history,
            extra=best,
        )

    def _fit_targets(
        self, spec: dict[str, Any], X: np.ndarray, y: np.ndarray, seed: int, threads: int
    ) -> tuple[list[Any], dict[str, dict[str, float]]]:
        """One estimator per target on its labelled rows (a constant probability for a
        target with one class), on at most ``threads`` OpenMP threads: scikit-learn's
        gradient boosting has its own OpenMP runtime, which ``torch.set_num_threads`` does not
        reach, and would otherwise take every core.

        Returns:
            The estimators, and per target the parameters a searching estimator (the kernel
            ridge) chose with their cross-validated RMSE (empty for the others).
        """
        from threadpoolctl import threadpool_limits

        kind = "classification" if self.classification else "regression"
        cw = "balanced" if self.class_weights == "balanced" else None
        member: list[Any] = []
        search: dict[str, dict[str, float]] = {}
        for t in range(self.n_tasks):
            ok = ~np.isnan(y[:, t])
            yt = y[ok, t]
            if self.classification and len(np.unique(yt)) < 2:
                member.append(float(yt[0]))  # a constant probability
                continue
            limit = spec.get("params", {}).get("max_train")
            if limit is not None and int(ok.sum()) > int(limit):
                raise ConfigError(
                    f"{spec.get('name', self.model)}: target {self.targets[t]!r} has "
                    f"{int(ok.sum()):,} labelled training molecules; the kernel ridge takes at "
                    f"most max_train = {int(limit):,} (its kernel matrix grows with their "
                    "square).",
                    hint="Use fp_gradient_boosting or a graph network for a set this large, "
                    "or raise max_train if the memory allows (10,000 molecules: 0.8 GB).",
                )
            est = make_estimator(spec, task_type=kind, seed=seed, class_weight=cw, n_jobs=threads)
            with threadpool_limits(limits=threads, user_api="openmp"):
                est.fit(X[ok], yt.astype(np.int64) if self.classification else yt)
            if hasattr(est, "best_estimator_"):  # a k-fold search: keep the refitted best
                search[self.targets[t]] = {
                    "alpha": float(est.best_params_["regressor__alpha"]),
                    "gamma": float(est.best_params_["regressor__gamma"]),
                    "cv_rmse": round(float(-est.best_score_), 6),
                }
                est = est.best_estimator_
            member.append(est)
        return member, search

    def _targets_out(self, member: list[Any], X: np.ndarray) -> np.ndarray:
        """One fingerprint member's outputs ``(N, T)``: logits or target values."""
        out = np.zeros((len(X), self.n_tasks))
        for t, est in enumerate(member):
            if isinstance(est, float):
                out[:, t] = _logit(np.full(len(X), est)) if self.classification else est
            elif self.classification:
                proba = np.asarray(est.predict_proba(X), dtype=np.float64)
                classes = list(np.asarray(est.classes_).astype(int))
                p1 = proba[:, classes.index(1)] if 1 in classes else np.zeros(len(X))
                out[:, t] = _logit(p1)
            else:
                out[:, t] = np.asarray(est.predict(X), dtype=np.float64)
        return out

    def _raw_fp(self, X: np.ndarray) -> np.ndarray:
        """Per-member outputs ``(M, N, T)``: logits (classification) or target values."""
        return np.stack([self._targets_out(member, X) for member in self.estimators_])

    # .. blends ............................................................................
    def _fit_blend(self, tr: _Split, va: _Split, threads: int) -> dict[str, Any]:
        """Fit the architecture's blend baselines on the training molecules and choose each
        target's weights on ``va``.

        The weights of the network(s) and the ``B`` baselines lie on the grid of steps of 0.1
        that sum to 1 (:func:`_weight_grid`); each target takes the point with the smallest
        validation loss (ties: the most weight on the network). A target without validation
        labels keeps the network alone. Returns what ``metrics.json`` records.
        """
        specs = _blend_specs_of(self.arch_ or {})
        self.blend_arch_ = specs
        self.blend_, searches = [], {}
        for spec in specs:
            X = self._fp_features(tr.smiles, tr.extra, spec)
            member, search = self._fit_targets(spec, X, tr.y, self.seed, threads)
            self.blend_.append(member)
            if search:
                searches[spec["name"]] = search
        net = self._aggregate(np.stack([self._net_outputs(n, va) for n in self.nets_]))[0]
        bases = np.stack(
            [
                self._targets_out(m, self._fp_features(va.smiles, va.extra, spec))
                for spec, m in zip(specs, self.blend_, strict=True)
            ]
        )
        grid = _weight_grid(len(specs))
        weights = np.zeros((len(specs), self.n_tasks))
        for t in range(self.n_tasks):
            ok = ~np.isnan(va.y[:, t])
            if ok.any():
                members = np.concatenate([net[None, ok, t], bases[:, ok, t]])
                losses = _blend_losses(va.y[ok, t], members, grid, self.classification)
                weights[:, t] = grid[int(np.argmin(losses)), 1:]  # ties: the first point
        self.blend_weights_ = weights
        metric = "auroc" if self.classification else "rmse"
        mixed = self._mixture(net, bases, weights)
        names = [spec["name"] for spec in specs]
        if len(specs) == 1:  # the format of single-baseline blends, unchanged
            out: dict[str, Any] = {
                "model": names[0],
                "weights": {n: float(w) for n, w in zip(self.targets, weights[0], strict=True)},
                f"val_{metric}": {
                    "network": self._val_score(va.y, net)[1],
                    "baseline": self._val_score(va.y, bases[0])[1],
                    "blend": self._val_score(va.y, mixed)[1],
                },
            }
        else:
            out = {
                "model": names,
                "weights": {
                    n: {b: float(w) for b, w in zip(names, weights[:, t], strict=True)}
                    for t, n in enumerate(self.targets)
                },
                f"val_{metric}": {
                    "network": self._val_score(va.y, net)[1],
                    **{b: self._val_score(va.y, bases[i])[1] for i, b in enumerate(names)},
                    "blend": self._val_score(va.y, mixed)[1],
                },
            }
        if searches:
            out["search"] = searches
        return out

    def _refit_blend(
        self, tr: _Split, va: _Split, val: Sequence[Record], threads: int
    ) -> dict[str, Any]:
        """``blend_refit``: keep every member's validation outputs as they are now (the
        baselines fitted on the training molecules alone), then refit each baseline on the
        training and validation molecules together, the weights unchanged: the baseline's
        whole fit is run again on them, so the kernel ridge searches its ``(alpha, gamma)``
        anew by cross-validation over those molecules. A baseline with weight 0 for every
        target adds nothing to any output and is left as it is.

        The kept outputs are what :meth:`heldout_with_uncertainty` returns for the validation
        records, so validation metrics and the calibration fitted on them stay held out.
        Returns what ``metrics.json`` records under ``training.blend.refit``.
        """
        t0 = time.perf_counter()
        specs = self.blend_arch_
        held = [self._net_outputs(net, va) for net in self.nets_] + [
            self._targets_out(m, self._fp_features(va.smiles, va.extra, spec))
            for spec, m in zip(specs, self.blend_, strict=True)
        ]
        self.heldout_ = ([str(r["id"]) for r in val], np.stack(held))
        smiles = list(tr.smiles) + list(va.smiles)
        extra = None if tr.extra is None else np.concatenate([tr.extra, va.extra])
        y = np.concatenate([tr.y, va.y])
        searches, unused = {}, []
        for b, spec in enumerate(specs):
            if self.blend_weights_ is not None and not self.blend_weights_[b].any():
                unused.append(spec["name"])
                continue
            X = self._fp_features(smiles, extra, spec)
            self.blend_[b], search = self._fit_targets(spec, X, y, self.seed, threads)
            if search:
                searches[spec["name"]] = search
        out: dict[str, Any] = {
            "molecules": int((~np.isnan(y)).any(axis=1).sum()),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        if unused:
            out["not_refitted"] = unused  # weight 0 for every target
        if searches:
            out["search"] = searches
        return out

    def heldout_with_uncertainty(
        self, records: Sequence[Record]
    ) -> tuple[np.ndarray, np.ndarray | None] | None:
        """What :meth:`predict_with_uncertainty` returned for the validation records before a
        ``blend_refit`` put them into the baselines' training data; ``None`` for any other
        records, without a refit, and after save → load (the kept outputs are not saved)."""
        held = getattr(self, "heldout_", None)
        if held is None or [str(r["id"]) for r in records] != held[0]:
            return None
        pred, var = self._aggregate(held[1])
        return self._as_logits(pred), var

    def _mixture(self, net: np.ndarray, bases: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``(1 - Σ w_b) · net + Σ w_b · base_b`` per target (of probabilities, returned as
        logits, for classification); ``bases`` ``(B, N, T)``, ``weights`` ``(B, T)``."""
        if self.classification:
            p = (1.0 - weights.sum(0)) * _sigmoid(net) + (
                weights[:, None, :] * _sigmoid(bases)
            ).sum(0)
            return _logit(p)
        return (1.0 - weights.sum(0)) * net + (weights[:, None, :] * bases).sum(0)

    def _member_weights(self, n_members: int) -> np.ndarray | None:
        """``(M, T)`` weights of a blend's members (networks, then the baselines), else None."""
        if (
            self.blend_weights_ is None
            or not self.blend_
            or n_members != len(self.nets_) + len(self.blend_)
        ):
            return None
        w = self.blend_weights_
        nets = np.repeat((1.0 - w.sum(0, keepdims=True)) / len(self.nets_), len(self.nets_), 0)
        return np.concatenate([nets, w], axis=0)

    # .. graph networks ....................................................................
    def _new_net(self, n_extra: int) -> MoleculeNet:
        return build_network(self.arch_ or {}, n_tasks=self.n_tasks, n_extra=n_extra)

    def _fit_networks(
        self,
        tr: _Split,
        va: _Split | None,
        seeds: list[int],
        work_dir: Path,
        resume: bool,
        t0: float,
    ) -> FitReport:
        n_extra = 0 if tr.extra is None else tr.extra.shape[1]
        if self.classification:
            y_mean, y_std = np.zeros(self.n_tasks), np.ones(self.n_tasks)
        else:
            y_mean = np.nanmean(tr.y, axis=0)
            y_std = np.nanstd(tr.y, axis=0)
            y_std = np.where(y_std > 1e-8, y_std, 1.0)
        self.nets_ = []
        epochs, stopped, history = [], [], []
        best: list[float] = []
        pretrained = self._pretrained_state() if self.init_from else None
        copied: dict[str, Any] = {}
        budget = self.max_minutes * 60.0 if self.max_minutes else None
        # a resumed fit carries on the budget where it stopped: the epochs its checkpoints
        # record count as spent (and as fit time)
        spent = checkpointed_seconds(work_dir, len(seeds)) if resume else 0.0
        for k, seed in enumerate(seeds):
            deadline = None if budget is None else t0 - spent + budget * (k + 1) / len(seeds)
            net = self._new_net(n_extra)
            if pretrained is not None:
                copied = _copy_pretrained(net, pretrained, str(self.init_from))
            with keep_freed_memory():
                outcome = _train_member(
                    self,
                    net,
                    k=k,
                    seed=seed,
                    tr=tr,
                    va=va,
                    y_scaler=(y_mean, y_std),
                    ckpt_dir=work_dir / "checkpoints" / f"member_{k}",
                    resume=resume,
                    deadline=deadline,
                )
            self.nets_.append(net)
            epochs.append(outcome["epochs"])
            stopped.append(outcome["stopped_by"])
            history += outcome["history"]
            if outcome["best_score"] is not None:
                best.append(outcome["best_score"])
        name = self._monitor_name()
        extra: dict[str, Any] = {f"best_val_{name}": float(np.mean(best))} if best else {}
        if copied:
            extra["init_from"] = copied
        if spent:
            extra["resumed_seconds"] = round(spent, 3)
        return FitReport(
            fit_seconds=0.0, epochs=epochs, stopped_by=stopped, history=history, extra=extra
        )

    def _pretrained_state(self) -> dict[str, Any]:
        """Member 0's tensors of the ``init_from`` bundle, checked against this model.

        Raises:
            ConfigError: the encoders differ.
            CheckpointError: the source is not a molecule graph-network bundle, or was
                featurised by another featuriser version.
        """
        import torch

        from medlearn.bundle import read_manifest

        source = str(self.init_from)
        manifest = read_manifest(source)  # verifies every file's sha256
        directory = Path(manifest["_dir"])
        files = manifest.get("files_molecules") or {}
        if manifest.get("domain") != "molecules" or "state" not in files:
            raise CheckpointError(
                f"model.init_from {source!r} is a {manifest.get('domain')!r} bundle, not a "
                "molecule model.",
                hint="Point model.init_from at a molecule run (e.g. a descriptor-pretraining "
                "run) or its bundle/ folder.",
            )
        state = json.loads((directory / files["state"]).read_text())
        members = state.get("members") or []
        if not members or "file" not in members[0]:
            raise CheckpointError(
                f"model.init_from {source!r} holds fingerprint models, which have no network "
                "weights.",
                hint="Pretrain a graph network (dmpnn, gin, gine or attentivefp).",
            )
        if state.get("featurizer_version") != _featurizer_version():
            raise CheckpointError(
                f"model.init_from {source!r} was trained with featuriser "
                f"{state.get('featurizer_version')!r}; this medlearn featurises with "
                f"{_featurizer_version()!r}, so its atom features mean something else.",
                hint="Pretrain again with this medlearn version.",
            )
        theirs = (state.get("arch") or {}).get("encoder")
        ours = (self.arch_ or {}).get("encoder")
        if theirs != ours:
            raise ConfigError(
                f"model.init_from {source!r} is a {theirs!r} network; this model is {ours!r}.",
                hint=f"Fine-tune the same network family, or pretrain a {ours!r} model.",
            )
        return torch.load(directory / members[0]["file"], map_location="cpu", weights_only=True)

    def _monitor_name(self) -> str:
        if self.monitor == "loss":
            return "loss"
        return "auroc" if self.classification else "rmse"

    def _val_score(self, y: np.ndarray, pred: np.ndarray) -> tuple[str, float]:
        """The monitored validation metric of member-mean outputs ``pred`` ``(N, T)``."""
        if self.classification:
            return "auroc", _mean_auroc(y, pred)
        return "rmse", _rmse(y, pred)

    # -- inference --------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if self.arch_ is None or (not self.nets_ and not self.estimators_):
            raise NotFittedError(
                "This MoleculeLearner is not fitted yet. Call fit(...) or "
                "MoleculeLearner.load(...) before predicting."
            )

    def _net_outputs(self, net: MoleculeNet, data: _Split) -> np.ndarray:
        """``(N, T)``: target units (regression) or logits (classification)."""
        import torch

        net.eval()
        outs = []
        with torch.no_grad():
            for idx in _chunks(len(data.smiles), _PREDICT_CHUNK):
                outs.append(net.predict(data.batch(idx)).double().numpy())
        return np.concatenate(outs) if outs else np.zeros((0, self.n_tasks))

    def _raw(self, records: Sequence[Record]) -> np.ndarray:
        """Per-member outputs ``(M, N, T)``: logits (classification) or target values."""
        self._check_fitted()
        data = self._split(records, "input records", labelled=False)
        if self.estimators_:
            return self._raw_fp(self._fp_features(data.smiles, data.extra))
        outs = [self._net_outputs(net, data) for net in self.nets_]
        for spec, member in zip(self.blend_arch_, self.blend_, strict=True):
            outs.append(self._targets_out(member, self._fp_features(data.smiles, data.extra, spec)))
        return np.stack(outs)

    def _aggregate(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Member outputs ``(M, N, T)`` → (prediction ``(N, T)``, variance ``(N, T)`` or None).

        Classification: the prediction is the logit of the mean member probability (a
        single member's own logits), the variance that of member probabilities.
        Regression: the member mean and variance in target units. A blend's members are
        weighed by :meth:`_member_weights` (no variance when one member has all the weight).
        """
        weights = self._member_weights(raw.shape[0])
        if weights is not None:
            a = weights[:, None, :]
            x = _sigmoid(raw) if self.classification else raw
            mean = (a * x).sum(axis=0)
            var = (a * (x - mean) ** 2).sum(axis=0)
            if ((weights > 0).sum(axis=0) <= 1).all():
                var = None
            return (_logit(mean) if self.classification else mean), var
        if raw.shape[0] == 1:
            return raw[0], None
        if self.classification:
            p = _sigmoid(raw)
            return _logit(p.mean(axis=0)), p.var(axis=0)
        return raw.mean(axis=0), raw.var(axis=0)

    def _as_logits(self, pred: np.ndarray) -> np.ndarray:
        """One binary target → ``(N, 2)`` logits ``[0, z]``; otherwise ``(N, T)``."""
        if self.task == "binary" and self.n_tasks == 1:
            return np.concatenate([np.zeros_like(pred), pred], axis=1)
        return pred

    def predict_logits(self, records: Sequence[Record], *, tta: bool = False) -> np.ndarray:
        """Regression: predictions ``(N, T)`` in target units. One binary target: logits
        ``(N, 2)`` = ``[0, z]``. Several binary targets: logits ``(N, T)``. Ensembles give the
        member mean (of probabilities, as a logit, for classification)."""
        if not records:
            self._check_fitted()
            width = 2 if (self.task == "binary" and self.n_tasks == 1) else self.n_tasks
            return np.zeros((0, width))
        pred, _ = self._aggregate(self._raw(records))
        return self._as_logits(pred)

    def predict_with_uncertainty(
        self, records: Sequence[Record]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """What :meth:`predict_logits` returns, and the ensemble variance ``(N, T)`` (target
        units² for regression, of probabilities for classification); ``None`` for a single
        model."""
        if not records:
            return self.predict_logits(records), None
        pred, var = self._aggregate(self._raw(records))
        return self._as_logits(pred), var

    def predict(self, records: Sequence[Record]) -> np.ndarray:
        """Predictions ``(N, T)``: target units (regression) or probabilities."""
        if not records:
            self._check_fitted()
            return np.zeros((0, self.n_tasks))
        pred, _ = self._aggregate(self._raw(records))
        return _sigmoid(pred) if self.classification else pred

    # -- explanations -----------------------------------------------------------------------
    def explain(self, records: Sequence[Record], targets: Sequence[int]) -> list[Explanation]:
        """Per-atom attributions for target ``targets[i]`` (the task index).

        Graph networks: integrated gradients (zero baseline, 32 steps) on the atom features,
        summed over the feature axis, of the output in target units (regression) or of the
        log-odds (classification), averaged over ensemble members. Fingerprint models: each
        on-bit set to zero in turn, the change of the output shared equally among the atoms
        of that bit's Morgan environments. ``atoms`` follows the atom order of the record's
        canonical SMILES; positive values push the prediction up.
        """
        self._check_fitted()
        if not records:
            return []
        tasks = [int(t) for t in targets]
        bad = [t for t in tasks if not 0 <= t < self.n_tasks]
        if bad:
            raise ConfigError(
                f"explain: target {bad[0]} is not a task index (0..{self.n_tasks - 1})."
            )
        if self.nets_:
            atoms = self._integrated_gradients(records, tasks)
            method = "integrated_gradients"
            if self.blend_ and self.blend_weights_ is not None:
                w = self.blend_weights_
                atoms = [(1.0 - w[:, t].sum()) * a for t, a in zip(tasks, atoms, strict=True)]
                for b, (spec, member) in enumerate(zip(self.blend_arch_, self.blend_, strict=True)):
                    occ = self._fp_occlusion(records, tasks, spec, [member])
                    atoms = [a + w[b, t] * o for t, a, o in zip(tasks, atoms, occ, strict=True)]
                method = "integrated_gradients+fingerprint_occlusion"
        else:
            atoms = self._fp_occlusion(records, tasks)
            method = "fingerprint_occlusion"
        return [
            Explanation(target=t, method=method, atoms=a) for t, a in zip(tasks, atoms, strict=True)
        ]

    def _integrated_gradients(
        self, records: Sequence[Record], tasks: list[int], steps: int = _IG_STEPS
    ) -> list[np.ndarray]:
        """Per-atom integrated gradients (zero baseline, midpoint rule), member mean."""
        import torch

        data = self._split(records, "input records", labelled=False)
        out: list[np.ndarray] = []
        for idx in _chunks(len(records), 64):
            b = data.batch(idx)
            rows = torch.arange(len(idx))
            task_t = torch.as_tensor([tasks[i] for i in idx])
            total = torch.zeros_like(b.x)
            for net in self.nets_:
                net.eval()
                grads = torch.zeros_like(b.x)
                for s in range(steps):
                    x = (b.x * ((s + 0.5) / steps)).detach().requires_grad_(True)
                    with torch.enable_grad():
                        value = net.unscale(net(b, x))[rows, task_t]
                        (g,) = torch.autograd.grad(value.sum(), x)
                    grads += g
                total += grads * b.x / steps
            per_atom = (total / len(self.nets_)).sum(dim=1).double().numpy()
            batch = b.batch.numpy()
            out += [per_atom[batch == i] for i in range(len(idx))]
        return out

    def _fp_occlusion(
        self,
        records: Sequence[Record],
        tasks: list[int],
        spec: dict[str, Any] | None = None,
        members: list[list[Any]] | None = None,
    ) -> list[np.ndarray]:
        """Fingerprint-bit occlusion of a fingerprint model: the learner's own members, or
        a blend's baseline (``spec`` and ``members`` given)."""
        spec = spec if spec is not None else (self.arch_ or {})
        members = members if members is not None else self.estimators_
        smiles = [str(r["input"]) for r in records]
        X = self._fp_features(smiles, None, spec)
        gen = _morgan_generator(int(spec["radius"]), int(spec["n_bits"]))
        out = []
        for i, mol in enumerate(_mols(smiles)):
            info = _bit_environments(gen, mol)
            bits = sorted(b for b in info if X[i, b] != 0)
            variants = np.repeat(X[i : i + 1], len(bits) + 1, axis=0)
            for k, b in enumerate(bits, start=1):
                variants[k, b] = 0.0
            outs = np.stack([self._targets_out(m, variants) for m in members])
            raw = self._aggregate(outs)[0][:, tasks[i]]
            atoms = np.zeros(mol.GetNumAtoms())
            for k, b in enumerate(bits, start=1):
                envs = info[b]
                delta = (raw[0] - raw[k]) / len(envs)
                for env in envs:
                    atoms[list(env)] += delta / len(env)
            out.append(atoms)
        return out

    # -- user inputs ------------------------------------------------------------------------
    def read_inputs(self, sources: Sequence[str]) -> tuple[list[Record], list[BadInput]]:
        """SMILES strings or files of SMILES → records; every unusable molecule is a
        :class:`BadInput` with its source and row (the training data's standardisation)."""
        from medlearn.molecules._data import read_smiles_inputs

        opts = {k: v for k, v in self.standardization.items() if k in ("standardize", "fragments")}
        return read_smiles_inputs(list(sources), **opts)

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: Path) -> dict[str, Any]:
        """Write ``molecules.json`` and the members (``weights/member_<k>.pt`` tensors or
        ``member_<k>_target_<t>.skops``); return the manifest fields."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        members: list[dict[str, Any]] = []
        blend: dict[str, Any] | None = None
        blends: list[dict[str, Any]] = []
        if self.nets_:
            import torch

            for k, net in enumerate(self.nets_):
                buf = io.BytesIO()
                torch.save({n: v.detach().cpu() for n, v in net.state_dict().items()}, buf)
                rel = f"weights/member_{k}.pt"
                atomic_write_bytes(directory / rel, buf.getvalue())
                members.append({"seed": self.member_seeds_[k], "file": rel})
            if self.blend_ and self.blend_weights_ is not None:
                blends = [
                    {
                        "model": str(spec.get("name") or (self.arch_ or {}).get("blend")),
                        "arch": spec,
                        "weights": [float(w) for w in self.blend_weights_[b]],
                        "targets": _save_targets(
                            directory, member, "blend" if b == 0 else f"blend{b}"
                        ),
                    }
                    for b, (spec, member) in enumerate(
                        zip(self.blend_arch_, self.blend_, strict=True)
                    )
                ]
                # one baseline: the ``blend`` entry as before list blends; several: ``blends``
                blend = blends[0] if len(blends) == 1 else {"blends": blends}
        else:
            for k, member in enumerate(self.estimators_):
                entry = _save_targets(directory, member, f"member_{k}")
                members.append({"seed": self.member_seeds_[k], "targets": entry})
        state = {
            "model": self.model,
            "model_params": self.model_params,
            "task": self.task,
            "targets": self.targets,
            "classes": self.classes,
            "arch": self.arch_,
            "seed": self.seed,
            "standardization": self.standardization,
            "descriptor_scaler": (
                "descriptor_scaler.json" if self.descriptor_scaler_ is not None else None
            ),
            "featurizer_version": _featurizer_version(),
            "members": members,
            "blend": blends[0] if len(blends) == 1 else None,
            "blends": blends if len(blends) > 1 else None,
        }
        if self.descriptor_scaler_ is not None:
            atomic_write_json(
                directory / "descriptor_scaler.json", self.descriptor_scaler_.to_dict()
            )
        atomic_write_json(directory / "molecules.json", state)
        return {
            "domain": self.domain,
            "learner": "molecules",
            "reader": "molecules",
            "model": {"name": self.model, "params": self.model_params},
            "classes": self.classes,
            "targets": self.targets,
            "files_molecules": {"state": "molecules.json"},
            "input": {"kind": "smiles", "formats": ["smiles", "csv", "tsv", "parquet", "smi"]},
            "explain": {
                "method": (
                    "fingerprint_occlusion"
                    if not self.nets_
                    else "integrated_gradients+fingerprint_occlusion"
                    if blend
                    else "integrated_gradients"
                )
            },
            "ensemble": len(members),
        }

    @classmethod
    def load(cls, directory: Path, manifest: dict[str, Any]) -> MoleculeLearner:
        """Rebuild from a verified bundle: JSON, tensors with ``weights_only=True``, skops
        files with :data:`TRUSTED_TYPES` only.

        Raises:
            CheckpointError: a file is missing or malformed, holds untrusted types, or was
                written for another featuriser version.
        """
        directory = Path(directory)
        try:
            files = manifest["files_molecules"]
            state = json.loads((directory / files["state"]).read_text())
            obj = cls(
                model=state["model"],
                task=state["task"],
                targets=state["targets"],
                classes=state["classes"] or None,
                model_params=state["model_params"],
                standardization=state.get("standardization"),
                seed=int(state.get("seed", 0)),
            )
            obj.arch_ = dict(state["arch"])
            if state.get("descriptor_scaler"):
                from medlearn.molecules._features import DescriptorScaler

                obj.descriptor_scaler_ = DescriptorScaler.from_dict(
                    json.loads((directory / state["descriptor_scaler"]).read_text())
                )
            members = list(state["members"])
            obj.member_seeds_ = [int(m["seed"]) for m in members]
            blend = list(state.get("blends") or ([state["blend"]] if state.get("blend") else []))
            entries = []
            if blend:
                obj.blend_arch_ = [dict(b["arch"]) for b in blend]
                obj.blend_weights_ = np.asarray([b["weights"] for b in blend], dtype=np.float64)
                entries = [list(b["targets"]) for b in blend]
                shape = (len(blend), obj.n_tasks)
                if any(len(e) != obj.n_tasks for e in entries) or obj.blend_weights_.shape != shape:
                    raise ValueError("blend targets")
        except (KeyError, TypeError, ValueError, OSError) as exc:  # incl. JSON errors
            raise CheckpointError(
                f"{directory}: the molecules bundle is incomplete ({type(exc).__name__}).",
                hint="Re-export the bundle with this medlearn version.",
            ) from None
        if obj.kind == "torch":
            version = state.get("featurizer_version")
            if version != _featurizer_version():
                raise CheckpointError(
                    f"{directory}: the model was trained on graph features version "
                    f"{version!r}; this medlearn computes {_featurizer_version()!r}.",
                    hint="Retrain the model with this medlearn version.",
                )
            obj.nets_ = [obj._load_net(directory, m["file"]) for m in members]
            obj.blend_ = [_load_targets(directory, e) for e in entries]
        else:
            obj.estimators_ = [_load_targets(directory, m["targets"]) for m in members]
        return obj

    def _load_net(self, directory: Path, rel: str) -> MoleculeNet:
        import torch

        path = directory / rel
        if not path.is_file():
            raise CheckpointError(f"{path}: missing from the bundle.")
        weights = torch.load(path, map_location="cpu", weights_only=True)
        scaler = self.descriptor_scaler_
        net = self._new_net(len(scaler.names) if scaler is not None else 0)
        try:
            net.load_state_dict(weights)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{path}: weights do not fit the {self.model} network ({str(exc)[:200]}).",
                hint="Retrain; the bundle was written by another model definition.",
            ) from None
        net.eval()
        return net


# --- blends -------------------------------------------------------------------------------------


def _blend_list(spec: dict[str, Any]) -> list[str]:
    """The baseline names of an architecture's ``blend`` (``[]`` for none)."""
    blend = spec.get("blend", "none")
    if isinstance(blend, str):
        return [] if blend == "none" else [blend]
    return [str(b) for b in blend]


def _blend_specs_of(arch: dict[str, Any]) -> list[dict[str, Any]]:
    """An architecture's blend baseline specs, each with its ``name`` (architectures saved
    before list blends hold one ``blend_spec``)."""
    specs = arch.get("blend_specs")
    if specs is None:
        specs = [arch["blend_spec"]] if arch.get("blend_spec") else []
    names = _blend_list(arch)
    return [{**dict(s), "name": s.get("name") or n} for s, n in zip(specs, names, strict=True)]


def _classifies(spec: dict[str, Any]) -> bool:
    """Whether a fingerprint spec's estimator gives class probabilities."""
    return spec.get("estimator") != "kernel_ridge"


def _weight_grid(n_baselines: int, step: float = 0.1) -> np.ndarray:
    """Every ``(w_network, w_1, …, w_B)`` on the grid of ``step`` that sums to 1, ordered so
    that points with more weight on the network come first (``(K, B + 1)``)."""
    n = round(1.0 / step)
    points = [
        p
        for p in itertools.product(range(n + 1), repeat=n_baselines)
        if sum(p) <= n  # the baselines' shares; the network takes the rest
    ]
    points.sort(key=lambda p: (sum(p), [-x for x in p]))
    grid = np.array([[n - sum(p), *p] for p in points], dtype=np.float64) / n
    return grid


def _blend_losses(
    y: np.ndarray, members: np.ndarray, grid: np.ndarray, classification: bool
) -> np.ndarray:
    """Validation loss of one target at each grid point: squared error, or the log loss of
    the blended probability. ``members`` ``(K, N)``: the network, then the baselines."""
    if classification:
        p = np.clip(grid @ _sigmoid(members), 1e-7, 1.0 - 1e-7)
        return -np.mean(y * np.log(p) + (1.0 - y) * np.log(1.0 - p), axis=1)
    return np.mean((grid @ members - y) ** 2, axis=1)


# --- fingerprint bit environments and safe loading -----------------------------------------------


def _save_targets(directory: Path, member: list[Any], prefix: str) -> list[dict[str, Any]]:
    """Write one fingerprint member's per-target estimators as ``<prefix>_target_<t>.skops``
    (constants inline); return their manifest entries."""
    import skops.io as sio

    entry: list[dict[str, Any]] = []
    for t, est in enumerate(member):
        if isinstance(est, float):
            entry.append({"constant": est})
            continue
        rel = f"{prefix}_target_{t}.skops"
        atomic_write_bytes(directory / rel, sio.dumps(est))
        entry.append({"file": rel})
    return entry


def _load_targets(directory: Path, entries: Sequence[dict[str, Any]]) -> list[Any]:
    """What :func:`_save_targets` wrote, through :func:`_load_skops`."""
    return [
        float(e["constant"]) if "constant" in e else _load_skops(directory / e["file"])
        for e in entries
    ]


def _bit_environments(gen: Any, mol: Any) -> dict[int, list[set[int]]]:
    """Morgan bit → the atom sets of every environment that sets it."""
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    ao = rdFingerprintGenerator.AdditionalOutput()
    ao.AllocateBitInfoMap()
    gen.GetCountFingerprint(mol, additionalOutput=ao)
    out: dict[int, list[set[int]]] = {}
    for bit, occurrences in ao.GetBitInfoMap().items():
        envs = []
        for center, r in occurrences:
            atoms = {int(center)}
            if r > 0:
                for bond_idx in Chem.FindAtomEnvironmentOfRadiusN(mol, int(r), int(center)):
                    bond = mol.GetBondWithIdx(bond_idx)
                    atoms.update((bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()))
            envs.append(atoms)
        out[int(bit)] = envs
    return out


def _load_skops(path: Path) -> Any:
    """Load a skops file, refusing any type outside :data:`TRUSTED_TYPES`.

    Raises:
        CheckpointError: the file is missing, unreadable or holds untrusted types.
    """
    import zipfile

    import skops.io as sio

    if not path.is_file():
        raise CheckpointError(f"{path}: missing from the bundle.")
    data = path.read_bytes()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            schema = json.loads(z.read("schema.json"))
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:  # noqa: BLE001 - skops / zipfile raise several kinds
        raise CheckpointError(
            f"{path}: not a readable skops file ({type(exc).__name__})."
        ) from None
    present: set[str] = set(untrusted)
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__class__" in node and "__module__" in node:
                present.add(f"{node['__module__']}.{node['__class__']}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    refused = sorted(t for t in present if t not in TRUSTED_TYPES and not _basic_type(t))
    if refused:
        raise CheckpointError(
            f"{path}: refuses to load types outside medlearn's trusted list: "
            f"{', '.join(refused[:10])}.",
            hint="Only bundles written by medlearn's molecule learner can be loaded.",
        )
    return sio.loads(data, trusted=list(untrusted))


def _basic_type(name: str) -> bool:
    module, _, cls = name.rpartition(".")
    if module == "builtins":
        return cls in {
            "dict",
            "list",
            "tuple",
            "str",
            "int",
            "float",
            "bool",
            "NoneType",
            "slice",
            "set",
        }
    return module == "numpy" and cls.startswith(("float", "int", "uint", "bool"))


LEARNERS.add("molecules", MoleculeLearner)
