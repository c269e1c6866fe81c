"""Training one molecule network: masked losses, learning-rate schedules, validation scores,
batches and the epoch loop with early stopping, checkpoints and resume (used by
:class:`medlearn.molecules._learner.MoleculeLearner`)."""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import logging
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from medlearn._io import atomic_write_bytes
from medlearn.errors import CheckpointError

if TYPE_CHECKING:
    import torch

    from medlearn.molecules._learner import MoleculeLearner
    from medlearn.molecules._models import MoleculeNet


log = logging.getLogger(__name__)

_PREDICT_CHUNK = 512  # molecules per forward pass at inference
_EPS = 1e-7

Scheduler = Literal["noam", "cosine", "constant"]


# --- losses, metrics and schedules ---------------------------------------------------------------


def masked_loss(
    out: torch.Tensor,
    y: torch.Tensor,
    *,
    classification: bool,
    pos_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean loss over the labelled entries of ``y`` (NaN = missing label, ignored).

    Args:
        out: ``(B, T)`` logits (classification) or standardised predictions (regression).
        y: ``(B, T)`` 0/1 labels or standardised targets, NaN where missing.
        classification: BCE-with-logits, else squared error.
        pos_weight: ``(T,)`` weight of positive labels (class weights), or ``None``.

    Returns:
        A scalar; 0 (with a gradient) when no entry is labelled.
    """
    import torch
    import torch.nn.functional as F

    mask = ~torch.isnan(y)
    y0 = torch.where(mask, y, torch.zeros_like(y))
    if classification:
        per = F.binary_cross_entropy_with_logits(out, y0, pos_weight=pos_weight, reduction="none")
    else:
        per = (out - y0) ** 2
    per = per * mask
    return per.sum() / mask.sum().clamp_min(1)


def _rmse(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean over targets of each target's RMSE on its labelled rows."""
    vals = []
    for t in range(y.shape[1]):
        ok = ~np.isnan(y[:, t])
        if ok.any():
            vals.append(float(np.sqrt(np.mean((y[ok, t] - pred[ok, t]) ** 2))))
    return float(np.mean(vals)) if vals else float("nan")


def _mean_auroc(y: np.ndarray, score: np.ndarray) -> float:
    """Mean over targets of ROC-AUC on labelled rows (targets with one class skipped)."""
    from sklearn.metrics import roc_auc_score

    vals = []
    for t in range(y.shape[1]):
        ok = ~np.isnan(y[:, t])
        if ok.any() and len(np.unique(y[ok, t])) == 2:
            vals.append(float(roc_auc_score(y[ok, t], score[ok, t])))
    return float(np.mean(vals)) if vals else float("nan")


def lr_at(
    step: int,
    *,
    kind: Scheduler,
    lr: float,
    steps_per_epoch: int,
    epochs: int,
    warmup_epochs: float = 2.0,
) -> float:
    """The learning rate at optimiser step ``step``.

    ``noam`` (Chemprop's): linear warm-up from ``lr / 10`` to ``lr`` over ``warmup_epochs``,
    then exponential decay reaching ``lr / 10`` at the last step. ``cosine``: the same
    warm-up, then cosine decay to ``lr / 100``. ``constant``: ``lr``.
    """
    if kind == "constant":
        return lr
    warm = max(1, int(round(warmup_epochs * steps_per_epoch)))
    total = max(warm + 1, epochs * steps_per_epoch)
    start = lr / 10.0
    if step < warm:
        return start + (lr - start) * step / warm
    progress = min(1.0, (step - warm) / (total - warm))
    if kind == "noam":
        return lr * (0.1**progress)
    final = lr / 100.0
    return final + 0.5 * (lr - final) * (1.0 + math.cos(math.pi * progress))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return np.log(p / (1.0 - p))


# --- data held during a fit ----------------------------------------------------------------------


@dataclass
class _Split:
    """Featurised molecules of one split."""

    smiles: list[str]
    graphs: list[Any]
    extra: np.ndarray | None  # (N, D) raw descriptors
    y: np.ndarray  # (N, T) targets in their units, NaN = missing

    def batch(self, idx: Sequence[int] | np.ndarray) -> Any:
        from medlearn.molecules._featurize import collate

        idx = np.asarray(idx, dtype=np.int64)
        extra = None if self.extra is None else self.extra[idx]
        return collate([self.graphs[i] for i in idx], extra)


def _chunks(n: int, size: int) -> list[np.ndarray]:
    """``range(n)`` in chunks of ``size``; a last chunk of one joins the previous chunk
    (batch norm cannot train on a batch of one)."""
    idx = np.arange(n)
    out = [idx[s : s + size] for s in range(0, n, size)]
    if len(out) > 1 and len(out[-1]) == 1:
        out[-2] = np.concatenate([out[-2], out.pop()])
    return out


# --- training one network ------------------------------------------------------------------------


def _member_seed(seed: int, k: int) -> int:
    from medlearn.training._seed import derive_seed

    return derive_seed(seed, 1000 + k)


def _featurizer_version() -> str:
    from medlearn.molecules._featurize import FEATURIZER_VERSION

    return FEATURIZER_VERSION


def _optimizer(learner: MoleculeLearner, params: Any) -> Any:
    import torch

    if learner.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=learner.lr, momentum=0.9, weight_decay=learner.weight_decay
        )
    cls = torch.optim.AdamW if learner.optimizer == "adamw" else torch.optim.Adam
    # the fused kernel updates every tensor in one pass (CPU and GPU), same arithmetic
    return cls(params, lr=learner.lr, weight_decay=learner.weight_decay, fused=True)


def _pos_weight(learner: MoleculeLearner, y: np.ndarray) -> Any:
    import torch

    if not learner.classification or learner.class_weights != "balanced":
        return None
    pos = np.nansum(y == 1, axis=0).astype(float)
    neg = np.nansum(y == 0, axis=0).astype(float)
    return torch.as_tensor(np.where(pos > 0, neg / np.maximum(pos, 1), 1.0), dtype=torch.float32)


def _improved(score: float, best: float | None, *, higher: bool) -> bool:
    """Whether ``score`` beats ``best``. An undefined best (none yet, or NaN, e.g. ROC-AUC
    on a validation split with one class) is replaced by any newer score; a NaN score never
    beats a defined best."""
    if best is None or not np.isfinite(best):
        return True
    if not np.isfinite(score):
        return False
    return score > best if higher else score < best


def _save_ckpt(path: Path, state: dict[str, Any]) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def _load_ckpt(path: Path) -> dict[str, Any]:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for corrupt files
        raise CheckpointError(
            f"{path}: cannot read the checkpoint ({type(exc).__name__}).",
            hint="Delete it to start this member afresh, or drop --resume.",
        ) from None


#: glibc ``mallopt`` parameters: ``M_TRIM_THRESHOLD``, ``M_MMAP_THRESHOLD``.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: While a network trains: freed memory below 256 MiB at the heap top is kept, and blocks
#: up to 32 MiB (glibc's own largest dynamic threshold) come from the heap, not from mmap.
_KEEP = {_M_TRIM_THRESHOLD: 256 << 20, _M_MMAP_THRESHOLD: 32 << 20}
#: glibc's documented defaults, set again afterwards.
_GLIBC_DEFAULTS = {_M_TRIM_THRESHOLD: 128 << 10, _M_MMAP_THRESHOLD: 128 << 10}


def _glibc() -> Any:
    """The process's C library when it is glibc (``mallopt`` and ``malloc_trim``), else
    ``None`` (other platforms, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - present in glibc only
        libc.mallopt, libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


@contextlib.contextmanager
def keep_freed_memory() -> Iterator[None]:
    """Let glibc's allocator keep the memory of freed tensors while a network trains.

    Every training step frees and reallocates the same few megabytes of activations and
    gradients. With glibc's defaults these blocks are often returned to the kernel (mmap,
    heap trimming) and faulted in, zero-filled, on the next step: about a thousand page
    faults per step, a few percent of the fit time. Inside this context they are reused;
    afterwards glibc's default thresholds are set again and the heap is trimmed. Computed
    values are unaffected. A no-op where the C library is not glibc.
    """
    libc = _glibc()
    if libc is None:
        yield
        return
    for param, value in _KEEP.items():
        libc.mallopt(param, value)
    try:
        yield
    finally:
        for param, value in _GLIBC_DEFAULTS.items():
            libc.mallopt(param, value)
        libc.malloc_trim(0)


def _progress_bar(enabled: bool, total: int, desc: str) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)


#: architecture keys that do not change how a network trains (the blend is fitted afterwards)
_NOT_TRAINING = ("blend", "blend_spec", "blend_specs", "blend_refit")


def _signatures(arch: dict[str, Any], n: int, tasks: list[str]) -> list[str]:
    """What a member's checkpoint must match to be resumed: the network's architecture
    without its blend, the number of training molecules and the targets; then the form that
    checkpoints written before list blends carry (the whole architecture of a run without a
    blend, as it was then)."""

    def dump(a: dict[str, Any]) -> str:
        return json.dumps({"arch": a, "n": n, "tasks": tasks}, sort_keys=True)

    out = [dump({k: v for k, v in arch.items() if k not in _NOT_TRAINING})]
    if not arch.get("blend_specs"):
        out.append(dump({k: v for k, v in arch.items() if k != "blend_specs"}))
    return out


def checkpointed_seconds(work_dir: Path, members: int) -> float:
    """Training seconds the members' last checkpoints under ``work_dir`` record (the sum of
    their epochs' times); 0 for members without one. A resumed fit counts them as spent."""
    total = 0.0
    for k in range(members):
        last = Path(work_dir) / "checkpoints" / f"member_{k}" / "last.ckpt"
        if last.is_file():
            history = _load_ckpt(last).get("history") or []
            total += sum(float(e.get("seconds", 0.0)) for e in history)
    return total


def _train_member(
    learner: MoleculeLearner,
    net: MoleculeNet,
    *,
    k: int,
    seed: int,
    tr: _Split,
    va: _Split | None,
    y_scaler: tuple[np.ndarray, np.ndarray],
    ckpt_dir: Path,
    resume: bool,
    deadline: float | None,
) -> dict[str, Any]:
    """Train one network in place; its best epoch's weights are loaded at the end.

    Returns:
        ``{"epochs", "stopped_by", "history", "best_score"}``.
    """
    import torch

    from medlearn.training._seed import derive_seed

    torch.manual_seed(seed)
    net.set_target_scaler(*y_scaler)
    y_scaled = torch.as_tensor((tr.y - y_scaler[0]) / y_scaler[1], dtype=torch.float32)
    pos_weight = _pos_weight(learner, tr.y)
    opt = _optimizer(learner, net.parameters())
    n = len(tr.y)
    bs = max(1, min(learner.batch_size, n))
    steps_per_epoch = len(_chunks(n, bs))
    val_batches = [(va.batch(idx), idx) for idx in _chunks(len(va.y), _PREDICT_CHUNK)] if va else []
    has_val = bool(val_batches)
    name = learner._monitor_name()
    higher = name == "auroc"
    signatures = _signatures(learner.arch_ or {}, n, learner.targets)
    signature = signatures[0]

    ckpt_dir.mkdir(parents=True, exist_ok=True)
    last = ckpt_dir / "last.ckpt"
    st: dict[str, Any] = {
        "epoch": 0,
        "step": 0,
        "best_score": None,
        "best_epoch": 0,
        "bad_epochs": 0,
        "history": [],
        "finished": False,
        "stopped_by": "max_epochs",
        "best_state": None,
    }
    if resume and last.is_file():
        saved = _load_ckpt(last)
        if saved.get("signature") not in signatures:
            raise CheckpointError(
                f"{last}: the checkpoint belongs to another model or data.",
                hint="Drop --resume, or resume with the run file that wrote it.",
            )
        net.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        st.update({key: saved[key] for key in st})
    elif last.exists():
        last.unlink()

    bar = _progress_bar(learner.progress and not st["finished"], learner.epochs, f"member {k}")
    if bar is not None:
        bar.update(st["epoch"])
    while not st["finished"] and st["epoch"] < learner.epochs:
        if deadline is not None and st["epoch"] > 0 and time.perf_counter() > deadline:
            st["stopped_by"] = "max_time"
            break
        epoch = st["epoch"]
        t_ep = time.perf_counter()
        net.train()
        frozen = epoch < learner.freeze_encoder_epochs  # train the head alone at first
        for param in net.encoder.parameters():
            param.requires_grad_(not frozen)
        torch.manual_seed(derive_seed(seed, epoch, 1))  # dropout: resumable per epoch
        perm = np.random.default_rng(derive_seed(seed, epoch)).permutation(n)
        total, seen = 0.0, 0
        for idx in _chunks(n, bs):
            rows = perm[idx]
            lr = lr_at(
                st["step"],
                kind=learner.scheduler,
                lr=learner.lr,
                steps_per_epoch=steps_per_epoch,
                epochs=learner.epochs,
                warmup_epochs=learner.warmup_epochs,
            )
            for group in opt.param_groups:
                group["lr"] = lr
            out = net(tr.batch(rows))
            loss = masked_loss(
                out,
                y_scaled[torch.as_tensor(rows)],
                classification=learner.classification,
                pos_weight=pos_weight,
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            st["step"] += 1
            total += float(loss.detach()) * len(rows)
            seen += len(rows)
        entry: dict[str, Any] = {
            "member": k,
            "epoch": epoch + 1,
            "train_loss": total / max(seen, 1),
            "lr": lr,
        }
        if va is not None and has_val:
            net.eval()
            with torch.no_grad():
                outs = [net(b).double() for b, _ in val_batches]
            scaled = torch.cat(outs)
            y_va = torch.as_tensor((va.y - y_scaler[0]) / y_scaler[1], dtype=torch.float64)
            val_loss = float(
                masked_loss(scaled, y_va, classification=learner.classification, pos_weight=None)
            )
            pred = scaled.numpy()
            if not learner.classification:
                pred = pred * y_scaler[1] + y_scaler[0]
            _, metric = learner._val_score(va.y, pred)
            entry["val_loss"] = val_loss
            if name != "loss":
                entry[f"val_{name}"] = metric
            score = val_loss if name == "loss" else metric
            if _improved(score, st["best_score"], higher=higher):
                st["best_score"], st["best_epoch"], st["bad_epochs"] = score, epoch + 1, 0
                st["best_state"] = {n_: v.detach().clone() for n_, v in net.state_dict().items()}
            else:
                st["bad_epochs"] += 1
        entry["seconds"] = round(time.perf_counter() - t_ep, 4)
        st["history"].append(entry)
        st["epoch"] = epoch + 1
        if bar is not None:
            bar.update(1)
            shown = {
                key: f"{v:.4g}" for key, v in entry.items() if key.startswith(("val_", "train"))
            }
            bar.set_postfix(shown)
        if has_val and learner.patience and st["bad_epochs"] >= learner.patience:
            st["stopped_by"] = "early_stopping"
            st["finished"] = True
        elif st["epoch"] >= learner.epochs:
            st["finished"] = True
        _save_ckpt(
            last,
            {
                **st,
                "signature": signature,
                "model": net.state_dict(),
                "optimizer": opt.state_dict(),
            },
        )
    if bar is not None:
        bar.close()
    if st["best_state"] is not None:
        net.load_state_dict(st["best_state"])
    net.eval()
    best = st["best_score"]
    return {
        "epochs": int(st["epoch"]),
        "stopped_by": str(st["stopped_by"]),
        "history": list(st["history"]),
        "best_score": None if best is None else float(best),
    }
