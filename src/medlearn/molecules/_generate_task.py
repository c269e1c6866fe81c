"""The ``generation`` task handler: sample, score with MOSES metrics, optimise, report.

After a generator is fitted, :class:`GenerationTask` (``TASKS["generation"]``):

1. samples ``n_samples`` molecules (model param, default 10,000) under the training seed and
   measures the throughput (molecules/s, ``metrics.json["generation"]``);
2. scores them with the MOSES metrics of :mod:`medlearn.molecules._moses` against the
   training split (novelty) and the test split (SNN, Frag, Scaf, Wasserstein distances), under
   ``metrics.test`` as ``{"value", "ci95"}``; bootstrap CIs (``evaluation.bootstrap``
   resamples of the sampled molecules) for the metrics that are means over molecules
   (``validity``, ``novelty``, ``snn``, ``int_div``, ``reconstruction``, ``nll``), ``null``
   for the others. VAEs add ``reconstruction`` (share of test molecules decoded back exactly
   from ``μ``) and every model ``nll`` (mean negative log-likelihood of test molecules, nats);
3. writes ``samples.csv`` (``smiles``, ``valid``) and ``generation_properties.json`` (logP,
   QED, SA and weight of generated and test molecules) into the run directory;
4. for VAEs, runs the latent-space QED optimisation (``optimize_starts`` test molecules,
   ``similarity_min``) and writes ``optimization.json``.

``predictions.parquet`` holds the sampled molecules: ``id`` (``sample<N>``), ``patient_id``,
``split`` = ``"sample"``, ``smiles`` (``""`` when invalid) and ``valid``. ``predict`` gives
each input molecule's likelihood (and, for VAEs, its reconstruction); ``evaluate`` samples
afresh and scores against the given molecules.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medlearn._io import atomic_write_json, atomic_write_text
from medlearn.data import Record
from medlearn.molecules._moses import PROPERTIES, GenerationMetrics, compute_metrics
from medlearn.registry import TASKS
from medlearn.tasks import ReportParts, RunContext, TaskOutcome

__all__ = ["GenerationTask", "bootstrap_mean_ci"]

SAMPLES_FILE = "samples.csv"
PROPERTIES_FILE = "generation_properties.json"
OPTIMIZATION_FILE = "optimization.json"
_RECON_MOLECULES = 1000
_NLL_MOLECULES = 2000
_GRID = 24
_BEST_SHOWN = 6
_PROPERTY_LABELS = {"logp": "logP", "qed": "QED", "sa": "SA score", "weight": "Mol. weight"}
#: metrics whose bootstrap CI is meaningful (means over molecules)
_WITH_CI = ("validity", "novelty", "snn", "int_div")


def bootstrap_mean_ci(values: np.ndarray, *, bootstrap: int, seed: int) -> list[float] | None:
    """Percentile 95% CI of the mean of ``values`` over ``bootstrap`` resamples (``None``
    for fewer than 2 values or ``bootstrap == 0``)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if bootstrap <= 0 or len(values) < 2:
        return None
    rng = np.random.default_rng(seed)
    means = np.empty(bootstrap)
    chunk = max(1, 2_000_000 // len(values))
    for s in range(0, bootstrap, chunk):
        k = min(chunk, bootstrap - s)
        idx = rng.integers(0, len(values), size=(k, len(values)))
        means[s : s + k] = values[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return [round(float(lo), 6), round(float(hi), 6)]


def _entry(value: float | None, ci: list[float] | None = None, **extra: Any) -> dict[str, Any]:
    v = None if value is None or not np.isfinite(value) else round(float(value), 6)
    return {"value": v, "ci95": ci, **extra}


def _metric_block(gm: GenerationMetrics, *, bootstrap: int, seed: int) -> dict[str, Any]:
    """``{name: {"value", "ci95"}}`` of a :class:`GenerationMetrics`."""
    out: dict[str, Any] = {}
    n_valid = gm.counts.get("n_valid", 0)
    for name, value in gm.values.items():
        ci = None
        if name in _WITH_CI and name in gm.per_item:
            ci = bootstrap_mean_ci(gm.per_item[name], bootstrap=bootstrap, seed=seed)
        extra = {"n": min(n_valid, _k_of(name))} if name.startswith("uniqueness_") else {}
        out[name] = _entry(value, ci, **extra)
    return out


def _k_of(name: str) -> int:
    label = name.removeprefix("uniqueness_")
    return int(label[:-1]) * 1000 if label.endswith("k") else int(label)


def _samples_frame(samples: Sequence[str | None]) -> pd.DataFrame:
    from medlearn.molecules._data import molecule_id

    ids = [f"sample{i + 1}" for i in range(len(samples))]
    return pd.DataFrame(
        {
            "id": ids,
            "patient_id": [molecule_id(s) if s else i for s, i in zip(samples, ids, strict=True)],
            "split": "sample",
            "smiles": [s or "" for s in samples],
            "valid": [s is not None for s in samples],
        }
    )


def _write_samples(directory: Path, frame: pd.DataFrame) -> None:
    atomic_write_text(directory / SAMPLES_FILE, frame[["smiles", "valid"]].to_csv(index=False))


def _write_properties(directory: Path, gm: GenerationMetrics) -> None:
    if not gm.properties:
        return
    doc = {
        side: {k: [round(float(x), 4) for x in v if np.isfinite(x)] for k, v in props.items()}
        for side, props in gm.properties.items()
    }
    atomic_write_json(directory / PROPERTIES_FILE, doc)


def _sample(learner: Any, n: int, temperature: float, seed: int) -> tuple[list[str | None], float]:
    t0 = time.perf_counter()
    samples = learner.sample(n, seed=seed, temperature=temperature)
    return samples, time.perf_counter() - t0


def _model_scores(
    learner: Any, reference: Sequence[str], *, bootstrap: int, seed: int
) -> dict[str, Any]:
    """``reconstruction`` (VAEs) and ``nll`` of reference molecules, with CIs."""
    out: dict[str, Any] = {}
    if not reference:
        return out
    rng = np.random.default_rng(seed)
    ref = list(reference)
    nll_ref = [ref[i] for i in rng.permutation(len(ref))[:_NLL_MOLECULES]]
    nll = learner.nll(nll_ref)
    nll = nll[np.isfinite(nll)]
    if len(nll):
        out["nll"] = _entry(
            float(nll.mean()), bootstrap_mean_ci(nll, bootstrap=bootstrap, seed=seed)
        )
    if learner.is_vae:
        rec_ref = nll_ref[:_RECON_MOLECULES]
        decoded = learner.reconstruct(rec_ref)
        same = np.array([d == s for d, s in zip(decoded, rec_ref, strict=True)], dtype=float)
        out["reconstruction"] = _entry(
            float(same.mean()), bootstrap_mean_ci(same, bootstrap=bootstrap, seed=seed)
        )
    return out


def _optimization_summary(result: dict[str, Any]) -> dict[str, Any]:
    rows = result["results"]
    found = [r for r in rows if r["smiles"] is not None]
    improved = [r for r in found if (r["improvement"] or 0) > 0]
    best = sorted(found, key=lambda r: -r["value"])[:_BEST_SHOWN]
    return {
        "objective": result["objective"],
        "similarity_min": result["similarity_min"],
        "n_starts": len(rows),
        "n_found": len(found),
        "n_improved": len(improved),
        "mean_improvement": round(float(np.mean([r["improvement"] for r in improved])), 6)
        if improved
        else None,
        "best_value": best[0]["value"] if best else None,
        "predictor": result.get("predictor"),
        "seconds": result.get("seconds"),
    }


@TASKS.register("generation")
class GenerationTask:
    """The handler for ``task: generation``."""

    # -- after fit ----------------------------------------------------------------------------
    def run(self, ctx: RunContext) -> TaskOutcome:
        cfg, parts, learner = ctx.cfg, ctx.parts, ctx.learner
        ev = learner.evaluation
        seed, bootstrap = cfg.training.seed, cfg.evaluation.bootstrap
        n, temperature = int(ev["n_samples"]), float(ev["temperature"])
        ctx.echo(f"[4/6] sampling {n} molecules (temperature {temperature:g})")
        samples, seconds = _sample(learner, n, temperature, seed)
        train = [str(r["input"]) for r in parts["train"]]
        ref_split = "test" if parts.get("test") else "val"
        reference = [str(r["input"]) for r in parts.get(ref_split) or []]
        optimise = bool(learner.is_vae and ev["optimize_starts"] > 0 and reference)
        extra = "; latent-space optimisation" if optimise else ""
        ctx.echo(f"[5/6] MOSES metrics against the {ref_split} split{extra}")
        gm = compute_metrics(samples, train=train, reference=reference)
        block = _metric_block(gm, bootstrap=bootstrap, seed=seed)
        block.update(_model_scores(learner, reference, bootstrap=bootstrap, seed=seed))
        frame = _samples_frame(samples)
        _write_samples(ctx.run_dir, frame)
        _write_properties(ctx.run_dir, gm)
        doc: dict[str, Any] = {
            "generation": {
                "n_samples": n,
                "temperature": temperature,
                "seed": seed,
                "reference_split": ref_split,
                "sample_seconds": round(seconds, 3),
                "molecules_per_second": round(n / max(seconds, 1e-9), 1),
                **gm.counts,
            }
        }
        if optimise:
            t0 = time.perf_counter()
            result = learner.optimize(
                "qed",
                starts=reference,
                reference=train,
                n_start=ev["optimize_starts"],
                steps=ev["optimize_steps"],
                similarity_min=ev["similarity_min"],
                seed=seed,
            )
            result["seconds"] = round(time.perf_counter() - t0, 2)
            result["start_split"] = ref_split
            atomic_write_json(ctx.run_dir / OPTIMIZATION_FILE, result)
            doc["optimization"] = _optimization_summary(result)
        metrics = {"test": block}
        return TaskOutcome(
            predictions=frame,
            metrics=metrics,
            doc=doc,
            manifest={"sampling": {"n_samples": n, "temperature": temperature}},
            predict_seconds=seconds,
        )

    def score(self, frame: pd.DataFrame, cfg: Any) -> dict[str, Any]:
        """Metrics that need no reference set (validity, uniqueness, diversity) of a table of
        samples."""
        samples = [s if v else None for s, v in zip(frame["smiles"], frame["valid"], strict=True)]
        gm = compute_metrics(samples)
        bootstrap = cfg.evaluation.bootstrap if cfg is not None else 1000
        seed = cfg.training.seed if cfg is not None else 0
        block = _metric_block(gm, bootstrap=bootstrap, seed=seed)
        return {k: v for k, v in block.items() if v["value"] is not None}

    # -- evaluate a bundle on new molecules ------------------------------------------------------
    def evaluate(
        self,
        learner: Any,
        manifest: dict[str, Any],
        cfg: Any,
        records: Sequence[Record],
        out_dir: Path,
    ) -> TaskOutcome:
        """Sample afresh and score against ``records`` (novelty against the bundle's training
        molecules)."""
        sampling = dict(manifest.get("sampling") or {})
        n = int(sampling.get("n_samples", learner.evaluation["n_samples"]))
        temperature = float(sampling.get("temperature", 1.0))
        seed = cfg.training.seed if cfg is not None else 0
        bootstrap = cfg.evaluation.bootstrap if cfg is not None else 1000
        samples, seconds = _sample(learner, n, temperature, seed)
        reference = [str(r["input"]) for r in records]
        gm = compute_metrics(samples, train=learner.train_smiles_ or None, reference=reference)
        block = _metric_block(gm, bootstrap=bootstrap, seed=seed)
        block.update(_model_scores(learner, reference, bootstrap=bootstrap, seed=seed))
        frame = _samples_frame(samples)
        _write_samples(Path(out_dir), frame)
        _write_properties(Path(out_dir), gm)
        doc = {
            "generation": {
                "n_samples": n,
                "temperature": temperature,
                "seed": seed,
                "reference_split": "given data",
                "sample_seconds": round(seconds, 3),
                "molecules_per_second": round(n / max(seconds, 1e-9), 1),
                **gm.counts,
            }
        }
        return TaskOutcome(
            predictions=frame, metrics={"test": block}, doc=doc, predict_seconds=seconds
        )

    # -- predict rows ------------------------------------------------------------------------------
    def predict(
        self,
        learner: Any,
        manifest: dict[str, Any],
        records: Sequence[Record],
        explain_dir: Path | None = None,
        output_dir: Path | None = None,
    ) -> list[dict[str, Any]]:
        """Per input molecule: its negative log-likelihood under the model (nats) and, for
        VAEs, its greedy reconstruction from ``μ`` and whether that matches."""
        smiles = [str(r["input"]) for r in records]
        nll = learner.nll(smiles)
        recon = learner.reconstruct(smiles) if learner.is_vae else None
        rows = []
        for i, rec in enumerate(records):
            row: dict[str, Any] = {
                "input": rec["id"],
                "smiles": smiles[i],
                "nll": None if not np.isfinite(nll[i]) else round(float(nll[i]), 4),
                "model": manifest.get("name"),
            }
            if not np.isfinite(nll[i]):
                row["note"] = "molecule cannot be written in the model's vocabulary"
            if recon is not None:
                row["reconstruction"] = recon[i]
                row["reconstructed"] = recon[i] == smiles[i]
            rows.append(row)
        return rows

    # -- report ----------------------------------------------------------------------------------
    def report_sections(
        self,
        run_dir: Path,
        doc: dict[str, Any],
        frame: pd.DataFrame,
        cfg: Any,
        manifest: dict[str, Any],
    ) -> ReportParts:
        sections: list[tuple[str, str, str]] = []
        gen = doc.get("generation") or {}
        if gen:
            sections.append(("generation", "Sampling", _sampling_html(gen)))
        grid = _samples_grid(frame)
        if grid:
            sections.append(("samples", "Sampled molecules", grid))
        props_path = Path(run_dir) / PROPERTIES_FILE
        if props_path.is_file():
            props = json.loads(props_path.read_text())
            where = html.escape(str(gen.get("reference_split", "test")))
            body = (
                f'<img alt="property distributions" src="{_histograms_png(props)}">'
                f"<p>Generated (valid) molecules vs the {where} split. Wasserstein distances "
                "are in the metrics table.</p>"
            )
            sections.append(("properties", "Property distributions", body))
        opt_path = Path(run_dir) / OPTIMIZATION_FILE
        if opt_path.is_file():
            sections.append(
                ("optimization", "Latent-space optimisation", _optimization_html(opt_path))
            )
        return ReportParts(sections=sections)


# --- report pieces --------------------------------------------------------------------------------


def _sampling_html(gen: dict[str, Any]) -> str:
    rows = [
        ("molecules sampled", gen.get("n_samples")),
        ("valid", gen.get("n_valid")),
        ("distinct valid", gen.get("n_unique")),
        ("temperature", gen.get("temperature")),
        ("seed", gen.get("seed")),
        ("sampling time (s)", gen.get("sample_seconds")),
        ("molecules per second", gen.get("molecules_per_second")),
        ("reference set", f"{gen.get('reference_split')} ({gen.get('n_reference')} molecules)"),
    ]
    body = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    return (
        f"<table>{body}</table><p>Metrics follow MOSES (Polykovskiy et al. 2020): validity, "
        "unique@k, novelty vs the training split, internal diversity, and similarity to the "
        "reference set (SNN, fragments, scaffolds, property Wasserstein distances).</p>"
    )


def _img(uri: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="{uri}" style="max-width:100%">'


def _draw(smiles: list[str], legends: list[str], per_row: int = 6) -> str:
    try:
        from medlearn.molecules._draw import draw_grid, to_data_uri

        svg = draw_grid(
            smiles, legends=legends, per_row=per_row, sub_size=(200, 170), on_invalid="blank"
        )
        return to_data_uri(svg)
    except ImportError:  # pragma: no cover - the drawer ships with the domain
        import base64
        import io

        from rdkit import Chem
        from rdkit.Chem import Draw

        mols = [Chem.MolFromSmiles(s) or Chem.Mol() for s in smiles]
        img = Draw.MolsToGridImage(mols, molsPerRow=per_row, legends=legends)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _samples_grid(frame: pd.DataFrame) -> str:
    from medlearn.molecules._moses import property_values

    if frame.empty or "smiles" not in frame:
        return ""
    sample = frame[(frame["split"] == "sample") & frame["valid"].astype(bool)]
    shown = list(dict.fromkeys(sample["smiles"].tolist()))[:_GRID]
    if not shown:
        return "<p>No valid molecule was sampled.</p>"
    qed = property_values(shown, "qed")
    legends = [f"QED {q:.2f}" for q in qed]
    return _img(_draw(shown, legends), "sampled molecules") + (
        f"<p>The first {len(shown)} distinct valid samples, in sampling order.</p>"
    )


def _histograms_png(props: dict[str, Any]) -> str:
    from medlearn.evaluation._figures import PALETTE, _new_figure, _png, _style

    fig = _new_figure(9.0, 5.2, left=0.55, bottom=0.5, hspace=0.45, wspace=0.28)
    axes = fig.subplots(2, 2).ravel()
    for ax, name in zip(axes, PROPERTIES, strict=True):
        g = np.asarray(props.get("generated", {}).get(name, []), dtype=float)
        r = np.asarray(props.get("reference", {}).get(name, []), dtype=float)
        both = np.concatenate([g, r]) if len(g) + len(r) else np.array([0.0, 1.0])
        lo, hi = np.percentile(both, [0.5, 99.5])
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 40)
        if len(r):
            ax.hist(r, bins=bins, density=True, alpha=0.45, color=PALETTE[0], label="test")
        if len(g):
            ax.hist(
                g,
                bins=bins,
                density=True,
                histtype="step",
                lw=1.6,
                color=PALETTE[1],
                label="generated",
            )
        ax.set_xlabel(_PROPERTY_LABELS[name])
        _style(ax)
    axes[0].legend(frameon=False, fontsize=8)
    return _png(fig)


def _optimization_html(path: Path) -> str:
    result = json.loads(path.read_text())
    rows = [r for r in result.get("results", []) if r.get("smiles") and r["improvement"] > 0]
    objective = str(result.get("objective", "qed")).upper()
    if not rows:
        return (
            f"<p>No molecule with a higher {objective} met the similarity constraint "
            f"(≥ {result.get('similarity_min')}) in {len(result.get('results', []))} starts.</p>"
        )
    best = sorted(rows, key=lambda r: -r["improvement"])[:_BEST_SHOWN]
    smiles, legends = [], []
    for r in best:
        smiles += [r["start"], r["smiles"]]
        legends += [
            f"start {objective} {r['start_value']:.2f}",
            f"{objective} {r['value']:.2f}, sim {r['similarity']:.2f}",
        ]
    improved = len(rows)
    pred = result.get("predictor") or {}
    note = (
        f"<p>Gradient ascent on a property predictor fitted on latent codes "
        f"(held-out correlation r = {pred.get('r_heldout')}), {result.get('steps')} steps; "
        f"candidates decoded and scored with RDKit, kept only with Tanimoto similarity ≥ "
        f"{result.get('similarity_min')} to the start. {improved} of "
        f"{len(result.get('results', []))} start molecules were improved. Each pair: start "
        "(left) → best found (right), largest improvements first.</p>"
    )
    return _img(_draw(smiles, legends, per_row=4), "optimised molecules") + note
