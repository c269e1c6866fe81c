"""The molecule-generator learner: vocabulary on train, a fit loop, sampling, latent optimisation.

:class:`MoleculeGenerator` (``LEARNERS["molecule_generator"]``) implements
:class:`medlearn.training.Learner` for the generators of
:mod:`medlearn.molecules._generate_models` (``selfies_vae``, ``smiles_vae``, ``char_rnn``).
Generation is a task kind with its own fit loop (DESIGN.md): a plain torch loop with KL
annealing, validation loss per epoch, early stopping, a wall-clock budget and crash-safe
``checkpoints/last.pt`` for ``--resume``.

Beyond the protocol it offers :meth:`~MoleculeGenerator.sample` (batched; canonical SMILES,
``None`` for an invalid molecule), :meth:`~MoleculeGenerator.encode` /
:meth:`~MoleculeGenerator.reconstruct` / :meth:`~MoleculeGenerator.nll`, and
:meth:`~MoleculeGenerator.optimize`: property-guided optimisation in the VAE's latent space
(gradient ascent on a small property predictor fitted on latent codes, every few steps decoded
and scored with RDKit under a Tanimoto-similarity constraint).
"""

from __future__ import annotations

import gzip
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlearn._io import atomic_write_bytes, atomic_write_json
from medlearn.errors import CheckpointError, ConfigError, DataValidationError, NotFittedError
from medlearn.molecules import _generate_models  # noqa: F401  (registers the models)
from medlearn.molecules._generate_models import build_generator
from medlearn.molecules._vocab import (
    BOS,
    EOS,
    PAD,
    UNK,
    Vocabulary,
    from_tokens,
    is_constrained,
    to_tokens,
)
from medlearn.registry import LEARNERS, MODELS
from medlearn.training import BadInput, Explanation, FitReport

if TYPE_CHECKING:
    from medlearn.config import RunConfig
    from medlearn.data import LoadedData, Record

__all__ = ["MoleculeGenerator", "OBJECTIVES"]

log = logging.getLogger(__name__)

_CLIP = 5.0
_EVAL_BATCH = 512
_PREDICTOR_MOLECULES = 2000
_DECODE_EVERY = 5
_STATE_FILE = "generator.json"
_WEIGHTS_FILE = "weights/generator.pt"
_TRAIN_FILE = "train_smiles.txt.gz"

#: properties :meth:`MoleculeGenerator.optimize` can maximise
OBJECTIVES: tuple[str, ...] = ("qed", "logp")


def _bucketed_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, *, bucket: int = 50
) -> list[np.ndarray]:
    """Shuffled batches of molecules of similar length (less padding, same randomness).

    The rows are shuffled, cut into chunks of ``bucket`` batches, each chunk sorted by
    length and cut into batches; the batches are then shuffled.
    """
    perm = rng.permutation(len(lengths))
    batches: list[np.ndarray] = []
    step = batch_size * bucket
    for s in range(0, len(perm), step):
        chunk = perm[s : s + step]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[b : b + batch_size] for b in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def _objective_values(smiles: Sequence[str | None], objective: str) -> np.ndarray:
    """The objective of each molecule (NaN for ``None`` / invalid)."""
    from medlearn.molecules._moses import property_values

    name = {"qed": "qed", "logp": "logp"}[objective]
    return property_values(smiles, name)


class MoleculeGenerator:
    """A registered molecule generator trained on canonical SMILES records.

    Args:
        model: a registry name (``selfies_vae``, ``smiles_vae``, ``char_rnn``).
        model_params: keyword arguments of the model factory (sizes; ``n_samples`` and the
            other evaluation settings are used by the generation task).
        seed: seed of initialisation, batching and sampling.
        epochs, batch_size, lr, weight_decay, patience, max_minutes, num_threads, progress:
            training settings (:class:`medlearn.config.TrainingConfig`); ``patience`` stops
            after that many epochs without a lower validation loss (``None``: never).
    """

    domain = "molecules"
    image_explanations = False

    def __init__(
        self,
        *,
        model: str,
        model_params: dict[str, Any] | None = None,
        seed: int = 0,
        epochs: int = 20,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        patience: int | None = None,
        max_minutes: float | None = None,
        num_threads: int | None = None,
        progress: bool = False,
    ) -> None:
        self.model = model
        self.model_params = dict(model_params or {})
        self.seed = int(seed)
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.patience = patience
        self.max_minutes = max_minutes
        self.num_threads = num_threads
        self.progress = progress
        self.classes: list[str] = []
        self.arch_: dict[str, Any] | None = None
        self.vocab_: Vocabulary | None = None
        self.net_: Any = None
        self.train_smiles_: list[str] = []

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: RunConfig, data: LoadedData) -> MoleculeGenerator:
        """Build an unfitted generator from the run file (``task: generation``)."""
        from medlearn.config import check_params

        meta = MODELS.meta(cfg.model.name)
        if meta.get("learner") != "molecule_generator":
            raise ConfigError(f"Model {cfg.model.name!r} is not a molecule generator.")
        if cfg.task != "generation":
            raise ConfigError(
                f"Model {cfg.model.name!r} generates molecules; it does not support task "
                f"{cfg.task!r}.",
                hint="Set task: generation (see examples/molecules/generate_vae.yaml).",
            )
        check_params(MODELS.get(cfg.model.name), cfg.model.params, what=f"model {cfg.model.name!r}")
        t = cfg.training
        obj = cls(
            model=cfg.model.name,
            model_params=cfg.model.params,
            seed=t.seed,
            epochs=t.epochs,
            batch_size=t.batch_size,
            lr=t.lr,
            weight_decay=t.weight_decay,
            patience=t.patience,
            max_minutes=t.max_minutes,
            num_threads=t.num_threads,
            progress=t.progress,
        )
        obj.arch_ = MODELS.get(obj.model)(**obj.model_params)  # validates the params now
        return obj

    @property
    def arch(self) -> dict[str, Any]:
        """The architecture dict of the model factory (built on first use)."""
        if self.arch_ is None:
            self.arch_ = MODELS.get(self.model)(**self.model_params)
        return self.arch_

    @property
    def is_vae(self) -> bool:
        """Whether the model has a latent space (VAEs) or not (language models)."""
        return self.arch["kind"] == "vae"

    @property
    def evaluation(self) -> dict[str, Any]:
        """The evaluation settings of the model params (``n_samples``, ``temperature`` ...)."""
        return dict(self.arch["evaluation"])

    # -- data -----------------------------------------------------------------------------------
    def _tokenize(self, smiles: Sequence[str]) -> tuple[list[list[str] | None], dict[str, int]]:
        """Tokens per molecule (``None`` when unusable) and counts of what was skipped."""
        rep = self.arch["representation"]
        max_len = self.arch["max_len"]
        out: list[list[str] | None] = []
        skipped = {"unencodable": 0, "too_long": 0, "unconstrained_atoms": 0}
        for s in smiles:
            tokens = to_tokens(str(s), rep) if s else None
            if tokens is None:
                skipped["unencodable"] += 1
            elif len(tokens) > max_len:
                skipped["too_long"] += 1
                tokens = None
            elif rep == "selfies" and not all(is_constrained(t) for t in tokens):
                skipped["unconstrained_atoms"] += 1
                tokens = None
            out.append(tokens)
        return out, skipped

    def _arrays(self, token_lists: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Padded ids ``(N, max_len)`` and lengths ``(N,)`` of token lists."""
        assert self.vocab_ is not None
        max_len = self.arch["max_len"]
        ids = np.full((len(token_lists), max_len), PAD, dtype=np.int64)
        lengths = np.zeros(len(token_lists), dtype=np.int64)
        for i, tokens in enumerate(token_lists):
            enc = self.vocab_.encode(tokens)[:max_len]
            ids[i, : len(enc)] = enc
            lengths[i] = len(enc)
        return ids, lengths

    def _batch(
        self,
        ids: np.ndarray,
        lengths: np.ndarray,
        rows: np.ndarray,
        *,
        word_dropout: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> tuple[dict[str, Any], np.ndarray]:
        """Tensors of ``rows`` sorted by length (longest first) and that order."""
        import torch

        order = rows[np.argsort(-lengths[rows], kind="stable")]
        lens = lengths[order]
        t = int(lens.max())
        tokens = ids[order, :t]
        n = len(order)
        dec_in = np.full((n, t + 1), PAD, dtype=np.int64)
        dec_out = np.full((n, t + 1), PAD, dtype=np.int64)
        dec_in[:, 0] = BOS
        dec_in[:, 1:] = tokens
        dec_out[:, :t] = tokens
        dec_out[np.arange(n), lens] = EOS
        if word_dropout > 0 and rng is not None:
            drop = rng.random(dec_in.shape) < word_dropout
            drop[:, 0] = False
            dec_in[drop & (dec_in != PAD)] = UNK
        batch = {
            "tokens": torch.from_numpy(np.ascontiguousarray(tokens)),
            "lengths": torch.from_numpy(lens),
            "dec_in": torch.from_numpy(dec_in),
            "dec_out": torch.from_numpy(dec_out),
        }
        return batch, order

    # -- fit ------------------------------------------------------------------------------------
    def fit(
        self, train: Sequence[Record], val: Sequence[Record], *, work_dir: Path, resume: bool
    ) -> FitReport:
        """Build the vocabulary on ``train``, then train with early stopping on ``val``.

        Raises:
            DataValidationError: if no training molecule can be tokenised.
        """
        import torch

        from medlearn.training import configure_threads, seed_everything

        t0 = time.perf_counter()
        threads = configure_threads(self.num_threads)
        seed_everything(self.seed)
        smiles = [str(r["input"]) for r in train if r.get("input")]
        self.train_smiles_ = sorted(set(smiles))
        tok_train, skipped = self._tokenize(smiles)
        kept = [t for t in tok_train if t is not None]
        if not kept:
            raise DataValidationError(
                f"None of the {len(smiles)} training molecules could be tokenised "
                f"({skipped['too_long']} longer than max_len, {skipped['unencodable']} "
                f"not encodable, {skipped['unconstrained_atoms']} with atoms outside SELFIES' "
                "valence table).",
                hint="Raise model.params.max_len or check the SMILES column.",
            )
        self.vocab_ = Vocabulary.build(kept, self.arch["representation"])
        ids, lengths = self._arrays(kept)
        tok_val, _ = self._tokenize([str(r["input"]) for r in val if r.get("input")])
        val_kept = [t for t in tok_val if t is not None]
        val_ids, val_len = self._arrays(val_kept) if val_kept else (None, None)
        prep_s = time.perf_counter() - t0

        torch.manual_seed(self.seed)
        self.net_ = build_generator(self.arch, len(self.vocab_))
        opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        ckpt = Path(work_dir) / "checkpoints" / "last.pt"
        state = {"epoch": 0, "step": 0, "history": [], "best": None, "best_loss": float("inf")}
        if resume and ckpt.is_file():
            state = self._load_checkpoint(ckpt, opt)
        history: list[dict[str, Any]] = list(state["history"])
        best_state, best_loss = state["best"], float(state["best_loss"])
        step, epoch = int(state["step"]), int(state["epoch"])
        budget = None if self.max_minutes is None else self.max_minutes * 60.0
        stopped, bad_epochs, seen = "max_epochs", 0, 0
        t_train = time.perf_counter()
        while epoch < self.epochs:
            rng = np.random.default_rng([self.seed, epoch])
            self.net_.train()
            sums = {"loss": 0.0, "recon": 0.0, "kl": 0.0}
            n_batches, out_of_time = 0, False
            for rows in _bucketed_batches(lengths, self.batch_size, rng):
                if budget is not None and time.perf_counter() - t0 > budget:
                    out_of_time = True
                    break
                batch, _ = self._batch(
                    ids, lengths, rows, word_dropout=self.arch["word_dropout"], rng=rng
                )
                out = self.net_.loss(batch, beta=self._beta(step))
                opt.zero_grad(set_to_none=True)
                out["loss"].backward()
                torch.nn.utils.clip_grad_norm_(self.net_.parameters(), _CLIP)
                opt.step()
                step += 1
                n_batches += 1
                seen += len(batch["lengths"])
                for k in sums:
                    sums[k] += float(out[k].detach())
            if n_batches == 0:
                stopped = "max_time"
                break
            epoch += 1
            row: dict[str, Any] = {
                "member": 0,
                "epoch": epoch,
                "step": step,
                "beta": round(self._beta(step), 4),
                "partial": out_of_time,
                **{f"train_{k}": round(v / n_batches, 4) for k, v in sums.items()},
            }
            if val_ids is not None:
                val_stats = self._loss_on(val_ids, val_len)
                row.update({f"val_{k}": round(v, 4) for k, v in val_stats.items()})
                current = val_stats["loss"]
            else:
                current = row["train_loss"]
            row["seconds"] = round(time.perf_counter() - t0, 1)
            history.append(row)
            self._echo(row)
            if current < best_loss - 1e-4:
                best_loss, bad_epochs = current, 0
                best_state = {k: v.detach().clone() for k, v in self.net_.state_dict().items()}
            else:
                bad_epochs += 1
            self._save_checkpoint(ckpt, opt, epoch, step, history, best_state, best_loss)
            if out_of_time:
                stopped = "max_time"
                break
            if self.patience is not None and bad_epochs >= self.patience:
                stopped = "early_stopping"
                break
        if best_state is not None:
            self.net_.load_state_dict(best_state)
        self.net_.eval()
        seconds = time.perf_counter() - t0
        return FitReport(
            fit_seconds=seconds,
            epochs=[epoch],
            stopped_by=[stopped],
            history=history,
            samples_per_second=seen / max(time.perf_counter() - t_train, 1e-9),
            extra={
                "representation": self.arch["representation"],
                "vocab_size": len(self.vocab_),
                "n_train_molecules": len(kept),
                "n_skipped_too_long": skipped["too_long"],
                "n_skipped_unencodable": skipped["unencodable"],
                "n_skipped_unconstrained_atoms": skipped["unconstrained_atoms"],
                "n_val_molecules": len(val_kept),
                "best_val_loss": None if best_loss == float("inf") else round(best_loss, 4),
                "prepare_seconds": round(prep_s, 2),
                "threads": threads,
            },
        )

    def _beta(self, step: int) -> float:
        weight = float(self.arch["kl_weight"])
        anneal = int(self.arch["kl_anneal_steps"])
        return weight if anneal <= 0 else weight * min(1.0, step / anneal)

    def _echo(self, row: dict[str, Any]) -> None:
        line = (
            f"epoch {row['epoch']}: train_loss {row['train_loss']:.3f}"
            + (f", val_loss {row['val_loss']:.3f}" if "val_loss" in row else "")
            + (f", val_kl {row['val_kl']:.2f}" if self.is_vae and "val_kl" in row else "")
            + f" ({row['seconds']:.0f}s)"
        )
        log.info(line)
        if self.progress:
            print(line, file=sys.stderr, flush=True)

    def _loss_on(self, ids: np.ndarray, lengths: np.ndarray) -> dict[str, float]:
        """Mean per-molecule loss (``β = 1``: the negative ELBO for VAEs) on held-out ids."""
        import torch

        sums = {"loss": 0.0, "recon": 0.0, "kl": 0.0}
        self.net_.eval()
        gen = torch.random.fork_rng()
        with gen, torch.no_grad():
            torch.manual_seed(self.seed)
            for b in range(0, len(ids), _EVAL_BATCH):
                rows = np.arange(b, min(b + _EVAL_BATCH, len(ids)))
                batch, _ = self._batch(ids, lengths, rows)
                out = self.net_.loss(batch, beta=1.0)
                for k in sums:
                    sums[k] += float(out[k]) * len(rows)
        self.net_.train()
        return {k: v / max(len(ids), 1) for k, v in sums.items()}

    def _save_checkpoint(
        self,
        path: Path,
        opt: Any,
        epoch: int,
        step: int,
        history: list[dict[str, Any]],
        best: dict[str, Any] | None,
        best_loss: float,
    ) -> None:
        import torch

        assert self.vocab_ is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "model": self.net_.state_dict(),
            "optimizer": opt.state_dict(),
            "epoch": epoch,
            "step": step,
            "history_json": json.dumps(history),
            "best": best,
            "best_loss": best_loss,
            "vocab": list(self.vocab_.tokens),
        }
        tmp = path.with_suffix(".pt.tmp")
        torch.save(payload, tmp)
        tmp.replace(path)

    def _load_checkpoint(self, path: Path, opt: Any) -> dict[str, Any]:
        import torch

        assert self.vocab_ is not None
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if list(payload.get("vocab", [])) != list(self.vocab_.tokens):
            raise CheckpointError(
                f"{path}: the checkpoint's vocabulary differs from the training data's.",
                hint="Resume only with the same run file and data; or drop --resume.",
            )
        self.net_.load_state_dict(payload["model"])
        opt.load_state_dict(payload["optimizer"])
        return {
            "epoch": int(payload["epoch"]),
            "step": int(payload["step"]),
            "history": json.loads(payload["history_json"]),
            "best": payload["best"],
            "best_loss": float(payload["best_loss"]),
        }

    # -- sampling -------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if self.net_ is None or self.vocab_ is None:
            raise NotFittedError(
                "This MoleculeGenerator is not fitted yet. Call fit(...) or "
                "MoleculeGenerator.load(...) before sampling."
            )

    def _to_smiles(self, token_ids: Any) -> list[str | None]:
        assert self.vocab_ is not None
        rep = self.vocab_.representation
        return [from_tokens(self.vocab_.decode(row), rep) for row in token_ids.tolist()]

    def sample(
        self,
        n: int,
        *,
        seed: int = 0,
        temperature: float = 1.0,
        batch_size: int = 1000,
    ) -> list[str | None]:
        """Sample ``n`` molecules.

        Args:
            n: how many.
            seed: seed of the latent codes and token draws (same seed and batch size, same
                molecules).
            temperature: softmax temperature (lower: more likely, less diverse molecules).
            batch_size: molecules decoded at once.

        Returns:
            ``n`` canonical SMILES, ``None`` where the sample is not a valid molecule.
        """
        import torch

        self._check_fitted()
        if n < 0 or temperature <= 0 or batch_size < 1:
            raise ConfigError(
                f"sample needs n >= 0, temperature > 0 and batch_size >= 1. Got n={n}, "
                f"temperature={temperature}, batch_size={batch_size}."
            )
        gen = torch.Generator().manual_seed(int(seed))
        out: list[str | None] = []
        self.net_.eval()
        kwargs = {
            "max_len": self.arch["max_len"] + 1,
            "temperature": temperature,
            "generator": gen,
            "start": self._start_mask(),
        }
        for b in range(0, n, batch_size):
            m = min(batch_size, n - b)
            if self.is_vae:
                z = torch.randn(m, self.net_.latent_dim, generator=gen)
                ids = self.net_.generate(z, **kwargs)
            else:
                ids = self.net_.generate(m, **kwargs)
            out.extend(self._to_smiles(ids))
        return out

    def _start_mask(self) -> Any:
        import torch

        assert self.vocab_ is not None
        return torch.tensor(self.vocab_.start_mask(), dtype=torch.bool)

    def _require_vae(self, what: str) -> None:
        if not self.is_vae:
            raise ConfigError(
                f"{what} needs a latent space; {self.model} is a language model without one.",
                hint="Use selfies_vae or smiles_vae.",
            )

    def _encodable(self, smiles: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """ids, lengths and the positions of ``smiles`` that could be tokenised."""
        tokens, _ = self._tokenize(smiles)
        ok = np.array([t is not None for t in tokens], dtype=bool)
        ids, lengths = self._arrays([t for t in tokens if t is not None])
        return ids, lengths, np.flatnonzero(ok)

    def encode(self, smiles: Sequence[str]) -> np.ndarray:
        """Posterior means ``μ`` ``(N, latent_dim)``; NaN rows for unencodable molecules."""
        import torch

        self._check_fitted()
        self._require_vae("encode")
        out = np.full((len(smiles), self.net_.latent_dim), np.nan, dtype=np.float32)
        ids, lengths, where = self._encodable(smiles)
        with torch.no_grad():
            for b in range(0, len(where), _EVAL_BATCH):
                rows = np.arange(b, min(b + _EVAL_BATCH, len(where)))
                batch, order = self._batch(ids, lengths, rows)
                mu, _ = self.net_.encode(batch["tokens"], batch["lengths"])
                out[where[order]] = mu.numpy()
        return out

    def decode(self, z: np.ndarray, *, temperature: float = 0.0, seed: int = 0) -> list[str | None]:
        """Molecules of latent codes ``(N, latent_dim)``; ``temperature=0`` decodes greedily."""
        import torch

        self._check_fitted()
        self._require_vae("decode")
        gen = torch.Generator().manual_seed(int(seed))
        zt = torch.as_tensor(np.asarray(z, dtype=np.float32))
        out: list[str | None] = []
        for b in range(0, len(zt), _EVAL_BATCH):
            ids = self.net_.generate(
                zt[b : b + _EVAL_BATCH],
                max_len=self.arch["max_len"] + 1,
                temperature=temperature,
                generator=gen,
                start=self._start_mask(),
            )
            out.extend(self._to_smiles(ids))
        return out

    def reconstruct(self, smiles: Sequence[str]) -> list[str | None]:
        """Greedy decoding of each molecule's ``μ`` (``None`` for unencodable ones)."""
        z = self.encode(smiles)
        ok = ~np.isnan(z).any(axis=1)
        decoded = self.decode(z[ok]) if ok.any() else []
        it = iter(decoded)
        return [next(it) if k else None for k in ok]

    def nll(self, smiles: Sequence[str]) -> np.ndarray:
        """Per-molecule negative log-likelihood in nats (VAEs: the negative ELBO with
        ``z = μ``); NaN for molecules the vocabulary cannot encode."""
        import torch

        self._check_fitted()
        out = np.full(len(smiles), np.nan)
        ids, lengths, where = self._encodable(smiles)
        with torch.no_grad():
            for b in range(0, len(where), _EVAL_BATCH):
                rows = np.arange(b, min(b + _EVAL_BATCH, len(where)))
                batch, order = self._batch(ids, lengths, rows)
                res = self.net_.loss(batch, beta=1.0, sample_z=False)
                out[where[order]] = res["nll"].numpy()
        return out

    # -- latent-space optimisation -----------------------------------------------------------------
    def optimize(
        self,
        objective: str = "qed",
        *,
        starts: Sequence[str] | None = None,
        reference: Sequence[str] | None = None,
        n_start: int = 50,
        steps: int = 40,
        step_size: float = 0.1,
        similarity_min: float = 0.4,
        samples_per_decode: int = 4,
        seed: int = 0,
    ) -> dict[str, Any]:
        """Improve ``objective`` of start molecules by gradient ascent in latent space.

        A small MLP is fitted to predict the objective from the latent codes ``μ`` of
        ``reference`` molecules; each start's code then climbs the predictor's gradient
        (``steps`` normalised steps of ``step_size``). Every few steps the code is decoded
        (greedily and ``samples_per_decode`` times at temperature 0.7), the candidates are
        scored with RDKit, and the best one whose Tanimoto similarity (Morgan radius 2,
        2048 bits) to the start is at least ``similarity_min`` is kept.

        Args:
            objective: ``"qed"`` or ``"logp"``.
            starts: start molecules (default: the model's own samples).
            reference: molecules to fit the predictor on (default: ``starts`` plus samples).
            n_start: how many starts are used (drawn under ``seed`` if more are given).
            steps: gradient steps per start.
            step_size: length of one step in latent units.
            similarity_min: the similarity constraint.
            samples_per_decode: stochastic decodings per check, besides the greedy one.
            seed: seed of everything random.

        Returns:
            ``{"objective", "similarity_min", "predictor": {"n", "r"}, "results": [...]}``;
            one result per start: ``start``, ``start_value``, ``smiles``, ``value``,
            ``similarity``, ``improvement`` (``smiles`` ``None`` when no candidate met the
            constraint).
        """
        import torch

        from medlearn.molecules._moses import tanimoto_to

        self._check_fitted()
        self._require_vae("optimize")
        if objective not in OBJECTIVES:
            raise ConfigError(
                f"The 'objective' parameter of optimize must be one of {', '.join(OBJECTIVES)}. "
                f"Got {objective!r}."
            )
        rng = np.random.default_rng(seed)
        pool = [s for s in (starts or []) if s] or [
            s for s in self.sample(max(n_start * 4, 64), seed=seed) if s
        ]
        if len(pool) > n_start:
            pool = [pool[i] for i in sorted(rng.choice(len(pool), n_start, replace=False))]
        z0 = self.encode(pool)
        keep = ~np.isnan(z0).any(axis=1)
        pool, z0 = [p for p, k in zip(pool, keep, strict=True) if k], z0[keep]
        start_values = _objective_values(pool, objective)
        predictor, fit_info = self._fit_predictor(reference, objective, seed=seed)

        best = [{"smiles": None, "value": -np.inf, "similarity": None} for _ in range(len(pool))]
        z = torch.as_tensor(z0, dtype=torch.float32)
        for t in range(1, steps + 1):
            z = z.detach().requires_grad_(True)
            grad = torch.autograd.grad(predictor(z).sum(), z)[0]
            norm = grad.norm(dim=1, keepdim=True).clamp_min(1e-8)
            z = (z + step_size * grad / norm).detach()
            if t % _DECODE_EVERY and t not in (1, steps):
                continue
            candidates = [self.decode(z.numpy())]
            for k in range(samples_per_decode):
                candidates.append(
                    self.decode(z.numpy(), temperature=0.7, seed=seed * 1000 + t * 10 + k)
                )
            for cand in candidates:
                values = _objective_values(cand, objective)
                sims = tanimoto_to(cand, pool)
                for i, (smi, v, s) in enumerate(zip(cand, values, sims, strict=True)):
                    if smi is None or smi == pool[i] or not np.isfinite(v):
                        continue
                    if s >= similarity_min and v > best[i]["value"]:
                        best[i] = {"smiles": smi, "value": float(v), "similarity": float(s)}
        results = []
        for i, start in enumerate(pool):
            b = best[i]
            found = b["smiles"] is not None
            results.append(
                {
                    "start": start,
                    "start_value": round(float(start_values[i]), 6),
                    "smiles": b["smiles"],
                    "value": round(b["value"], 6) if found else None,
                    "similarity": round(b["similarity"], 6) if found else None,
                    "improvement": round(b["value"] - float(start_values[i]), 6) if found else None,
                }
            )
        return {
            "objective": objective,
            "similarity_min": similarity_min,
            "steps": steps,
            "step_size": step_size,
            "predictor": fit_info,
            "results": results,
        }

    def _fit_predictor(
        self, reference: Sequence[str] | None, objective: str, *, seed: int
    ) -> tuple[Any, dict[str, Any]]:
        """An MLP ``latent → objective`` fitted on reference molecules' ``μ``."""
        import torch
        from torch import nn

        rng = np.random.default_rng(seed + 1)
        ref = [s for s in (reference or []) if s]
        if len(ref) < 64:
            ref = ref + [s for s in self.sample(500, seed=seed + 2) if s]
        if len(ref) > _PREDICTOR_MOLECULES:
            ref = [ref[i] for i in rng.choice(len(ref), _PREDICTOR_MOLECULES, replace=False)]
        z = self.encode(ref)
        y = _objective_values(ref, objective)
        ok = ~np.isnan(z).any(axis=1) & np.isfinite(y)
        z, y = z[ok], y[ok]
        mean, std = float(y.mean()), float(y.std() + 1e-8)
        n_fit = max(int(0.8 * len(y)), 1)
        perm = rng.permutation(len(y))
        fit_rows, held = perm[:n_fit], perm[n_fit:]
        torch.manual_seed(seed)
        latent = z.shape[1]
        net = nn.Sequential(nn.Linear(latent, 128), nn.Tanh(), nn.Linear(128, 1))
        opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
        zt = torch.as_tensor(z, dtype=torch.float32)
        yt = torch.as_tensor((y - mean) / std, dtype=torch.float32)
        for _ in range(300):
            opt.zero_grad()
            loss = nn.functional.mse_loss(net(zt[fit_rows]).squeeze(1), yt[fit_rows])
            loss.backward()
            opt.step()
        net.eval()
        r = None
        if len(held) > 2:
            with torch.no_grad():
                pred = net(zt[held]).squeeze(1).numpy()
            if np.std(pred) > 0 and np.std(y[held]) > 0:
                r = round(float(np.corrcoef(pred, yt[held].numpy())[0, 1]), 4)
        for p in net.parameters():
            p.requires_grad_(False)
        return (lambda code: net(code).squeeze(1)), {"n": int(len(y)), "r_heldout": r}

    # -- protocol methods that do not apply ----------------------------------------------------
    def predict_logits(self, records: Sequence[Record], *, tta: bool = False) -> np.ndarray:
        """Not defined for generators.

        Raises:
            ConfigError: always.
        """
        raise ConfigError(
            "Generation models sample; they have no logits to predict.",
            hint="Use `medlearn sample BUNDLE -n N`, or `medlearn predict` for reconstructions.",
        )

    def explain(self, records: Sequence[Record], targets: Sequence[int]) -> list[Explanation]:
        """Not defined for generators.

        Raises:
            ConfigError: always.
        """
        raise ConfigError(
            "Generation models sample; there is no prediction to explain.",
            hint="Use `medlearn sample BUNDLE -n N`.",
        )

    def read_inputs(self, sources: Sequence[str]) -> tuple[list[Record], list[BadInput]]:
        """SMILES strings or ``.smi`` / ``.csv`` files → records (for reconstruction and
        likelihoods); every unusable molecule becomes a :class:`BadInput`."""
        from medlearn.molecules._data import read_smiles_inputs

        records, bad = read_smiles_inputs(list(sources))
        return records, [BadInput(b.source if b.row is None else b.id, b.describe()) for b in bad]

    # -- persistence ------------------------------------------------------------------------------
    def save(self, directory: Path) -> dict[str, Any]:
        """Write ``weights/generator.pt``, ``generator.json`` and ``train_smiles.txt.gz``
        (for novelty); return the manifest fields."""
        import torch

        self._check_fitted()
        assert self.vocab_ is not None
        directory = Path(directory)
        (directory / "weights").mkdir(parents=True, exist_ok=True)
        path = directory / _WEIGHTS_FILE
        tmp = path.with_suffix(".pt.tmp")
        torch.save({k: v.detach().cpu() for k, v in self.net_.state_dict().items()}, tmp)
        tmp.replace(path)
        atomic_write_json(
            directory / _STATE_FILE,
            {"arch": self.arch, "vocab": self.vocab_.to_dict(), "seed": self.seed},
        )
        text = "\n".join(self.train_smiles_).encode("utf-8")
        atomic_write_bytes(directory / _TRAIN_FILE, gzip.compress(text, mtime=0))
        return {
            "domain": self.domain,
            "learner": "molecule_generator",
            "reader": "molecules",
            "model": {"name": self.model, "params": self.model_params},
            "classes": [],
            "files_generator": {
                "state": _STATE_FILE,
                "weights": _WEIGHTS_FILE,
                "train_smiles": _TRAIN_FILE,
            },
            "input": {"kind": "smiles", "formats": ["smiles", "smi", "csv"]},
            "generation": {
                "representation": self.arch["representation"],
                "kind": self.arch["kind"],
                "vocab_size": len(self.vocab_),
            },
        }

    @classmethod
    def load(cls, directory: Path, manifest: dict[str, Any]) -> MoleculeGenerator:
        """Rebuild from a verified bundle (JSON and ``torch.load(weights_only=True)``).

        Raises:
            CheckpointError: a file is missing or does not fit the network.
        """
        import torch

        directory = Path(directory)
        try:
            files = manifest["files_generator"]
            state = json.loads((directory / files["state"]).read_text())
            model = manifest["model"]
            obj = cls(model=model["name"], model_params=model.get("params"), seed=state["seed"])
            obj.arch_ = dict(state["arch"])
            obj.vocab_ = Vocabulary.from_dict(state["vocab"])
            weights = torch.load(
                directory / files["weights"], map_location="cpu", weights_only=True
            )
            train_file = directory / files.get("train_smiles", _TRAIN_FILE)
            if train_file.is_file():
                obj.train_smiles_ = gzip.decompress(train_file.read_bytes()).decode().split("\n")
        except (KeyError, TypeError, OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(
                f"{directory}: the generator bundle is incomplete ({type(exc).__name__}).",
                hint="Re-export the bundle with this medlearn version.",
            ) from None
        net = build_generator(obj.arch_, len(obj.vocab_))
        try:
            net.load_state_dict(weights)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{directory}: weights do not fit the {obj.model} network ({str(exc)[:200]}).",
                hint="Retrain; the bundle was written by another model definition.",
            ) from None
        net.eval()
        obj.net_ = net
        return obj


LEARNERS.add("molecule_generator", MoleculeGenerator)
