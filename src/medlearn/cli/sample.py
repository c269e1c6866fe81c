"""``medlearn sample BUNDLE -n N [--seed S] [--temperature T] [--out FILE.csv]``."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from medlearn.cli._app import app, console_err


@app.command("sample")
def sample_cmd(
    bundle: Path = typer.Argument(
        ..., help="A generation bundle directory, or a run directory holding bundle/."
    ),
    n: int = typer.Option(..., "-n", "--num-samples", min=1, help="How many molecules to sample."),
    seed: int = typer.Option(0, "--seed", min=0, help="Sampling seed (same seed, same molecules)."),
    temperature: float = typer.Option(
        1.0, "--temperature", min=0.0, help="Softmax temperature (> 0; lower: less diverse)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Write a CSV (smiles, valid) here instead of printing SMILES."
    ),
) -> None:
    """Sample molecules from a trained generator (task: generation).

    Prints one canonical SMILES per valid molecule (or writes every sample to --out as CSV)
    and a one-line summary on stderr: validity, uniqueness and novelty (against the training
    molecules stored in the bundle).
    """
    from medlearn._io import atomic_write_text
    from medlearn.errors import ConfigError
    from medlearn.molecules._moses import fraction_unique, novelty
    from medlearn.pipeline import load_learner

    if temperature <= 0:
        raise ConfigError(
            f"--temperature must be > 0. Got {temperature}.",
            hint="Use 1.0 for the model's distribution, lower (e.g. 0.7) for safer molecules.",
        )
    learner, manifest = load_learner(bundle)
    if manifest.get("task") != "generation" or not hasattr(learner, "sample"):
        raise ConfigError(
            f"{bundle} holds a {manifest.get('task')!r} model ({manifest['model']['name']}); "
            "`medlearn sample` needs a generation bundle.",
            hint="Use `medlearn predict` for this bundle, or train with task: generation.",
        )
    t0 = time.perf_counter()
    samples = learner.sample(n, seed=seed, temperature=temperature)
    seconds = time.perf_counter() - t0
    valid = [s for s in samples if s]
    if out is not None:
        import pandas as pd

        frame = pd.DataFrame(
            {"smiles": [s or "" for s in samples], "valid": [bool(s) for s in samples]}
        )
        atomic_write_text(out, frame.to_csv(index=False))
    else:
        for s in valid:
            typer.echo(s)
    summary = (
        f"sampled {n} in {seconds:.1f}s ({n / max(seconds, 1e-9):.0f}/s): "
        f"validity {len(valid) / n:.3f}, unique {fraction_unique(valid):.3f}"
    )
    train = getattr(learner, "train_smiles_", None)
    if train and valid:
        summary += f", novelty {novelty(valid, train):.3f}"
    if out is not None:
        summary += f"; wrote {out}"
    console_err.print(summary, highlight=False, soft_wrap=True)
