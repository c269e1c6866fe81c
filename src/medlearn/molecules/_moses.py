"""MOSES metrics of generated molecules (Polykovskiy et al. 2020, *Front. Pharmacol.*).

Written from the paper's definitions, following the reference implementation's conventions
where the paper leaves a choice:

* **validity** — share of generated strings RDKit parses into a non-empty molecule.
* **unique@k** — among the first ``k`` *valid* molecules, the share of distinct canonical
  SMILES (all valid ones when fewer than ``k``).
* **novelty** — share of the distinct valid molecules that are not in the training set.
* **IntDiv_p** — ``1 - (mean over all pairs (i, j) of T(i, j)^p)^(1/p)`` over the valid
  molecules, ``T`` the Tanimoto similarity of Morgan fingerprints (radius 2, 1024 bits); the
  mean runs over all ``|G|²`` ordered pairs, self-pairs included, as in the paper.
* **SNN** — mean over valid generated molecules of the Tanimoto similarity to the nearest
  neighbour in the reference (test) set.
* **Frag** — cosine similarity of the BRICS-fragment count vectors of generated and
  reference molecules.
* **Scaf** — cosine similarity of the Bemis–Murcko scaffold count vectors; as in MOSES,
  scaffolds with fewer than ``min_rings`` (2) rings are left out.
* **Wasserstein** — 1-D Wasserstein distances (``scipy.stats.wasserstein_distance``) between
  generated and reference values of logP (Crippen), QED, SA score (Ertl & Schuffenhauer,
  ``rdkit.Contrib.SA_Score``) and molecular weight.

Tanimoto similarities are computed as one matrix product of 0/1 fingerprints in chunks, so
10,000 × 10,000 pairs take seconds.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "GenerationMetrics",
    "PROPERTIES",
    "compute_metrics",
    "cosine_similarity_counts",
    "fraction_unique",
    "fraction_valid",
    "fragment_counts",
    "fragment_similarity",
    "internal_diversity",
    "morgan_fingerprints",
    "novelty",
    "property_values",
    "scaffold_counts",
    "scaffold_similarity",
    "snn",
    "tanimoto_matrix",
    "tanimoto_to",
    "to_mols",
    "valid_canonical",
]

#: properties compared by Wasserstein distance, in report order
PROPERTIES: tuple[str, ...] = ("logp", "qed", "sa", "weight")
_CHUNK = 2048


# --- molecules ------------------------------------------------------------------------------------


def to_mols(smiles: Iterable[str | None]) -> list[Any]:
    """RDKit molecules (``None`` for empty, invalid or atom-less strings)."""
    from rdkit import Chem, rdBase

    out = []
    with rdBase.BlockLogs():
        for s in smiles:
            mol = Chem.MolFromSmiles(s) if s else None
            out.append(mol if mol is not None and mol.GetNumAtoms() > 0 else None)
    return out


def valid_canonical(smiles: Iterable[str | None]) -> list[str]:
    """Canonical SMILES of the valid molecules, in order (duplicates kept)."""
    from rdkit import Chem

    return [Chem.MolToSmiles(m) for m in to_mols(smiles) if m is not None]


def fraction_valid(smiles: Sequence[str | None]) -> float:
    """Share of ``smiles`` that are valid molecules (0 for an empty list)."""
    if not smiles:
        return 0.0
    return sum(m is not None for m in to_mols(smiles)) / len(smiles)


def fraction_unique(canonical: Sequence[str], k: int | None = None) -> float:
    """Share of distinct molecules among the first ``k`` valid canonical SMILES.

    Args:
        canonical: valid canonical SMILES (see :func:`valid_canonical`).
        k: how many to look at (all when ``None`` or when fewer are given).
    """
    head = list(canonical)[:k] if k else list(canonical)
    return len(set(head)) / len(head) if head else 0.0


def novelty(canonical: Sequence[str], train: Iterable[str]) -> float:
    """Share of the distinct valid molecules that are not in ``train`` (canonical SMILES)."""
    distinct = set(canonical)
    if not distinct:
        return 0.0
    return len(distinct - set(train)) / len(distinct)


# --- fingerprints and similarity ------------------------------------------------------------------


def morgan_fingerprints(mols: Sequence[Any], *, radius: int = 2, n_bits: int = 1024) -> np.ndarray:
    """0/1 Morgan fingerprints ``(N, n_bits)`` as ``float32`` (all zeros for ``None``)."""
    from rdkit.Chem import rdFingerprintGenerator

    gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    out = np.zeros((len(mols), n_bits), dtype=np.float32)
    for i, mol in enumerate(mols):
        if mol is not None:
            out[i] = gen.GetFingerprintAsNumPy(mol)
    return out


def tanimoto_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Tanimoto similarities ``(len(a), len(b))`` of 0/1 fingerprints; two empty
    fingerprints count as identical (1.0), as in MOSES."""
    inter = a @ b.T
    union = a.sum(1, keepdims=True) + b.sum(1)[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = inter / union
    sim[union == 0] = 1.0
    return sim


def _row_stats(a: np.ndarray, b: np.ndarray, p: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``a``: the max similarity to ``b`` and the mean of similarity**p."""
    best = np.empty(len(a), dtype=np.float64)
    mean_p = np.empty(len(a), dtype=np.float64)
    for s in range(0, len(a), _CHUNK):
        sim = tanimoto_matrix(a[s : s + _CHUNK], b)
        best[s : s + _CHUNK] = sim.max(axis=1)
        mean_p[s : s + _CHUNK] = (sim.astype(np.float64) ** p).mean(axis=1)
    return best, mean_p


def internal_diversity(mols: Sequence[Any], *, p: int = 1, n_bits: int = 1024) -> float:
    """IntDiv_p of valid molecules (see the module docstring); 0 for an empty list."""
    mols = [m for m in mols if m is not None]
    if not mols:
        return 0.0
    fps = morgan_fingerprints(mols, n_bits=n_bits)
    _, mean_p = _row_stats(fps, fps, p)
    return float(1.0 - mean_p.mean() ** (1.0 / p))


def snn(mols: Sequence[Any], reference: Sequence[Any], *, n_bits: int = 1024) -> float:
    """Mean similarity of each valid molecule to its nearest neighbour in ``reference``."""
    a = morgan_fingerprints([m for m in mols if m is not None], n_bits=n_bits)
    b = morgan_fingerprints([m for m in reference if m is not None], n_bits=n_bits)
    if not len(a) or not len(b):
        return float("nan")
    best, _ = _row_stats(a, b)
    return float(best.mean())


def tanimoto_to(
    candidates: Sequence[str | None], targets: Sequence[str], *, n_bits: int = 2048
) -> np.ndarray:
    """Similarity of ``candidates[i]`` to ``targets[i]`` (0 for an invalid candidate)."""
    if len(candidates) != len(targets):
        raise ValueError(
            f"tanimoto_to got {len(candidates)} candidates for {len(targets)} targets."
        )
    a = morgan_fingerprints(to_mols(candidates), n_bits=n_bits)
    b = morgan_fingerprints(to_mols(targets), n_bits=n_bits)
    inter = (a * b).sum(1)
    union = a.sum(1) + b.sum(1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return sim.astype(np.float64)


# --- fragments and scaffolds ----------------------------------------------------------------------


def fragment_counts(mols: Sequence[Any]) -> Counter[str]:
    """Counts of BRICS fragments (SMILES with dummy atoms) over ``mols``."""
    from rdkit import Chem
    from rdkit.Chem import BRICS

    counts: Counter[str] = Counter()
    for mol in mols:
        if mol is None:
            continue
        pieces = Chem.MolToSmiles(BRICS.BreakBRICSBonds(mol)).split(".")
        counts.update(pieces)
    return counts


def _n_rings(mol: Any) -> int:
    return int(mol.GetRingInfo().NumRings())


def scaffold_counts(mols: Sequence[Any], *, min_rings: int = 2) -> Counter[str]:
    """Counts of Bemis–Murcko scaffolds with at least ``min_rings`` rings."""
    from rdkit import Chem
    from rdkit.Chem.Scaffolds import MurckoScaffold

    counts: Counter[str] = Counter()
    for mol in mols:
        if mol is None:
            continue
        try:
            scaffold = MurckoScaffold.GetScaffoldForMol(mol)
        except (ValueError, RuntimeError):
            continue
        smiles = Chem.MolToSmiles(scaffold)
        if smiles and _n_rings(scaffold) >= min_rings:
            counts[smiles] += 1
    return counts


def cosine_similarity_counts(a: Counter[str], b: Counter[str]) -> float:
    """Cosine similarity of two count vectors over the union of their keys (NaN if either
    is empty)."""
    keys = sorted(set(a) | set(b))
    if not a or not b:
        return float("nan")
    va = np.array([a.get(k, 0) for k in keys], dtype=np.float64)
    vb = np.array([b.get(k, 0) for k in keys], dtype=np.float64)
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))


def fragment_similarity(mols: Sequence[Any], reference: Sequence[Any]) -> float:
    """Frag: cosine similarity of BRICS-fragment counts."""
    return cosine_similarity_counts(fragment_counts(mols), fragment_counts(reference))


def scaffold_similarity(
    mols: Sequence[Any], reference: Sequence[Any], *, min_rings: int = 2
) -> float:
    """Scaf: cosine similarity of Bemis–Murcko scaffold counts."""
    return cosine_similarity_counts(
        scaffold_counts(mols, min_rings=min_rings), scaffold_counts(reference, min_rings=min_rings)
    )


# --- properties -----------------------------------------------------------------------------------


def _sascorer() -> Any:
    from rdkit import RDConfig

    path = os.path.join(RDConfig.RDContribDir, "SA_Score")
    if path not in sys.path:
        sys.path.append(path)
    import sascorer  # type: ignore[import-not-found]

    return sascorer


def _property(mol: Any, name: str) -> float:
    from rdkit.Chem import QED, Crippen, Descriptors

    if name == "logp":
        return float(Crippen.MolLogP(mol))
    if name == "qed":
        return float(QED.qed(mol))
    if name == "sa":
        return float(_sascorer().calculateScore(mol))
    if name == "weight":
        return float(Descriptors.MolWt(mol))
    raise ValueError(f"Unknown property {name!r}; one of {', '.join(PROPERTIES)}.")


def property_values(molecules: Sequence[Any], name: str) -> np.ndarray:
    """``name`` (``logp``, ``qed``, ``sa``, ``weight``) of each molecule (SMILES or RDKit
    molecules); NaN for invalid ones.

    Raises:
        ValueError: for an unknown property name.
    """
    if name not in PROPERTIES:
        raise ValueError(f"Unknown property {name!r}; one of {', '.join(PROPERTIES)}.")
    mols = to_mols(molecules) if molecules and isinstance(_first(molecules), str) else molecules
    out = np.full(len(mols), np.nan)
    for i, mol in enumerate(mols):
        if mol is None:
            continue
        try:
            out[i] = _property(mol, name)
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue
    return out


def _first(items: Sequence[Any]) -> Any:
    return next((x for x in items if x is not None), None)


# --- everything at once ---------------------------------------------------------------------------


@dataclass
class GenerationMetrics:
    """What :func:`compute_metrics` returns.

    Attributes:
        values: metric name → value (``None`` when undefined, e.g. no valid molecule).
        per_item: per-molecule values whose mean is a metric, for bootstrap CIs:
            ``validity`` (one 0/1 per sample), ``novelty`` (per distinct valid molecule),
            ``snn`` and ``int_div`` (per valid molecule: nearest-neighbour similarity and
            ``1 -`` mean similarity to the others).
        counts: ``n_samples``, ``n_valid``, ``n_unique``, ``n_reference``.
        properties: ``{"generated" | "reference": {property: values}}`` of valid molecules.
    """

    values: dict[str, float | None]
    per_item: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    properties: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def _clean(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def compute_metrics(
    generated: Sequence[str | None],
    *,
    train: Iterable[str] | None = None,
    reference: Sequence[str] | None = None,
    ks: Sequence[int] = (1000, 10_000),
    n_bits: int = 1024,
) -> GenerationMetrics:
    """All MOSES metrics of ``generated`` against ``train`` (novelty) and ``reference``
    (the test set: SNN, Frag, Scaf, Wasserstein distances).

    Args:
        generated: sampled SMILES, ``None`` / ``""`` for failed samples (count as invalid).
        train: canonical training SMILES (novelty is ``None`` without them).
        reference: the test molecules' SMILES (those metrics are ``None`` without them).
        ks: the ``k`` of each ``uniqueness_<k>`` (``1000`` → ``uniqueness_1k``).
        n_bits: Morgan fingerprint size.

    Returns:
        A :class:`GenerationMetrics`.
    """
    from rdkit import Chem
    from scipy.stats import wasserstein_distance

    mols_all = to_mols(generated)
    valid_flags = np.array([m is not None for m in mols_all], dtype=np.float64)
    mols = [m for m in mols_all if m is not None]
    canonical = [Chem.MolToSmiles(m) for m in mols]
    values: dict[str, float | None] = {
        "validity": float(valid_flags.mean()) if len(valid_flags) else None
    }
    for k in ks:
        label = f"{k // 1000}k" if k % 1000 == 0 else str(k)
        values[f"uniqueness_{label}"] = fraction_unique(canonical, k) if canonical else None
    per_item: dict[str, np.ndarray] = {"validity": valid_flags}
    distinct = sorted(set(canonical))
    if train is not None and distinct:
        train_set = set(train)
        novel = np.array([s not in train_set for s in distinct], dtype=np.float64)
        values["novelty"] = float(novel.mean())
        per_item["novelty"] = novel
    else:
        values["novelty"] = None
    fps = morgan_fingerprints(mols, n_bits=n_bits)
    if len(fps):
        _, mean1 = _row_stats(fps, fps, 1)
        _, mean2 = _row_stats(fps, fps, 2)
        values["int_div"] = float(1.0 - mean1.mean())
        values["int_div2"] = float(1.0 - np.sqrt(mean2.mean()))
        per_item["int_div"] = 1.0 - mean1
    else:
        values["int_div"] = values["int_div2"] = None
    props: dict[str, dict[str, np.ndarray]] = {}
    ref_mols = [m for m in to_mols(reference or []) if m is not None]
    if ref_mols and mols:
        nn_sim, _ = _row_stats(fps, morgan_fingerprints(ref_mols, n_bits=n_bits))
        values["snn"] = float(nn_sim.mean())
        per_item["snn"] = nn_sim
        values["frag_sim"] = _clean(fragment_similarity(mols, ref_mols))
        values["scaf_sim"] = _clean(scaffold_similarity(mols, ref_mols))
        props = {"generated": {}, "reference": {}}
        for name in PROPERTIES:
            g = property_values(mols, name)
            r = property_values(ref_mols, name)
            props["generated"][name], props["reference"][name] = g, r
            g, r = g[np.isfinite(g)], r[np.isfinite(r)]
            values[f"wasserstein_{name}"] = (
                float(wasserstein_distance(g, r)) if len(g) and len(r) else None
            )
    else:
        for name in ("snn", "frag_sim", "scaf_sim", *(f"wasserstein_{p}" for p in PROPERTIES)):
            values[name] = None
    return GenerationMetrics(
        values=values,
        per_item=per_item,
        counts={
            "n_samples": len(generated),
            "n_valid": len(mols),
            "n_unique": len(distinct),
            "n_reference": len(ref_mols),
        },
        properties=props,
    )
