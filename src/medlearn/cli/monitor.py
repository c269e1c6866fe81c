"""``medlearn monitor report [--db URL]`` — input drift and shadow comparisons per model."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import typer

from medlearn.cli._db import DB_HELP, open_db

__all__ = ["app"]

app = typer.Typer(help="Monitoring: drift and shadow reports.", no_args_is_help=True)


@app.command("report")
def report_cmd(
    name: str | None = typer.Option(None, "--name", help="Only this model."),
    since_hours: float | None = typer.Option(None, "--since-hours", help="Recent data only."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """PSI and KS per input feature against the training reference; shadow agreement."""
    from medlearn.serving.monitor import drift_report, shadow_report
    from medlearn.serving.store import ModelRegistry

    engine = open_db(db)
    registry = ModelRegistry(engine)

    @lru_cache(maxsize=64)
    def reference(model: str, version: str) -> dict[str, Any] | None:
        info = registry.get(model, version)
        root = Path(info.bundle_path)
        manifest = json.loads((root / "bundle.json").read_text())
        ref = manifest.get("drift_reference")
        return json.loads((root / ref).read_text()) if ref and (root / ref).is_file() else None

    doc = {
        "drift": drift_report(engine, reference, name=name, since_hours=since_hours),
        "shadow": shadow_report(engine, name=name),
    }
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    if not doc["drift"]:
        typer.echo("no drift data yet (the server stores counts after every 200 inputs)")
    for d in doc["drift"]:
        typer.echo(f"{d['model']} {d['version']}: {d['inputs']} inputs")
        for feat, s in d["features"].items():
            flag = "MAJOR SHIFT" if s["psi"] > 0.25 else ("shift" if s["psi"] > 0.1 else "stable")
            typer.echo(f"  {feat:<24} PSI {s['psi']:.4f}  KS {s['ks']:.4f}  {flag}")
    for s in doc["shadow"]:
        agree = "n/a" if s["agreement"] is None else f"{s['agreement']:.3f}"
        typer.echo(
            f"shadow {s['model']}: candidate {s['candidate']} vs {s['version']}: "
            f"{s['n']} inputs, agreement {agree}, max |Δp| {s['max_abs_diff']:.4f}"
        )
