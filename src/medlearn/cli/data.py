"""``medlearn data list | info NAME | fetch NAME | check PATH``.

Errors are raised as :class:`~medlearn.errors.MedlearnError` subclasses; the root app prints
them as one line plus a hint (exit 2). ``check`` exits 1 when it finds bad items.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from medlearn.errors import DataValidationError
from medlearn.registry import DATASETS, READERS

__all__ = ["app"]

# Own consoles: importing medlearn.cli._app from here would be circular (it imports us).
_out = Console()
_err = Console(stderr=True)

app = typer.Typer(
    help=(
        "Named datasets and data checks: `list` the catalog, `info NAME`, `fetch NAME` "
        "(download + verify), `check PATH` (report every unusable item)."
    ),
    no_args_is_help=True,
)


def _dataset_names(incomplete: str = "") -> list[str]:
    return [n for n in DATASETS.list() if n.startswith(incomplete)]


def _reader_names(incomplete: str = "") -> list[str]:
    return [n for n in READERS.list() if n.startswith(incomplete)]


def _where(path: Path | None) -> str:
    from medlearn import catalog

    if path is None:
        return "no"
    local = catalog.data_dir()
    if local is not None and path.is_relative_to(local):
        return f"yes ({catalog.DATA_ENV})"
    return "yes (cache)"


def _short(names: list[str], limit: int = 4) -> str:
    shown = " | ".join(names[:limit])  # class names may contain commas
    return f"{len(names)}: {shown}" + (" | ..." if len(names) > limit else "")


@app.command("list")
def list_cmd(
    domain: str | None = typer.Option(None, "--domain", help="Only this domain, e.g. imaging."),
) -> None:
    """List catalog datasets and whether each is available locally (no checksum run)."""
    from medlearn import catalog

    where = {"domain": domain} if domain else {}
    table = Table(title="medlearn datasets")
    for column in ("name", "domain", "task", "classes", "local"):
        table.add_column(column, overflow="fold")
    for name in DATASETS.list(**where):
        spec = catalog.get_spec(name)
        table.add_row(
            name, spec.domain, spec.task, _short(list(spec.classes)), _where(catalog.locate(name))
        )
    _out.print(table)
    if catalog.data_dir() is None:
        _out.print(
            f"{catalog.DATA_ENV} is not set; datasets are looked for in {catalog.cache_dir()}.",
            highlight=False,
        )


@app.command("info")
def info_cmd(
    name: str = typer.Argument(
        ..., help="A catalog name (`medlearn data list`).", autocompletion=_dataset_names
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the fields as one JSON object."),
    no_verify: bool = typer.Option(
        False, "--no-verify", help="Do not hash the local file (faster for large files)."
    ),
) -> None:
    """Show every field of a dataset's spec and where (and whether) it is available."""
    from medlearn import catalog

    fields = catalog.info(name, verify=not no_verify)
    if as_json:
        typer.echo(json.dumps(fields, indent=2))
        return
    table = Table(title=f"dataset {name}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in fields.items():
        if isinstance(value, dict):
            text = "; ".join(
                f"{k}: {', '.join(v) if isinstance(v, list) else v}" for k, v in value.items()
            )
        elif isinstance(value, list):
            text = (
                "\n".join(str(v) for v in value)
                if key == "looked_in"
                else ", ".join(str(v) for v in value)
            )
        else:
            text = "" if value is None else str(value)
        table.add_row(key, text)
    _out.print(table)


@app.command("fetch")
def fetch_cmd(
    name: str = typer.Argument(
        ..., help="A catalog name (`medlearn data list`).", autocompletion=_dataset_names
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Locate or download a dataset and verify its checksum; prints the file's path."""
    from medlearn import catalog

    path = catalog.fetch(name, progress=not quiet)
    _out.print(f"{name}: {path} (checksum verified)", highlight=False)


def _class_counts(data: Any) -> tuple[list[str], dict[str, Counter[str]]]:
    """Rows (class names) and per-split counters of records."""
    classes = list(data.classes or [])
    split_of: dict[str, str] = {}
    for split, ids in (data.given_split or {}).items():
        split_of.update(dict.fromkeys(ids, split))
    counts: dict[str, Counter[str]] = {}
    for rec in data.records:
        split = split_of.get(rec["id"], "all")
        target = rec["target"]
        if target is None:
            names = ["(unlabeled)"]
        elif isinstance(target, (list, tuple)):  # multi-label indicators
            names = [classes[i] for i, v in enumerate(target) if v and i < len(classes)]
        elif isinstance(target, int) and 0 <= target < len(classes):
            names = [classes[target]]
        else:
            names = [str(target)]
        counts.setdefault(split, Counter()).update(names)
    rows = list(classes) + sorted({n for c in counts.values() for n in c} - set(classes))
    return rows, counts


@app.command("check")
def check_cmd(
    path: Path = typer.Argument(
        ..., help="A dataset file or folder (.npz, CSV manifest, class folders) or a catalog name."
    ),
    reader: str = typer.Option(
        "imaging", "--reader", help="The domain reader to use.", autocompletion=_reader_names
    ),
    classes: str | None = typer.Option(
        None, "--classes", help="Comma-separated class names in label order, e.g. normal,pneumonia."
    ),
) -> None:
    """Read a dataset with its domain reader, load every file it names, and report
    counts per class and every bad item. Exit code 1 if anything is unusable."""
    options: dict[str, Any] = {}
    if classes:
        options["classes"] = [c.strip() for c in classes.split(",") if c.strip()]
    try:
        if not path.exists() and str(path) in DATASETS:
            from medlearn import catalog

            reader = catalog.get_spec(str(path)).reader
            data = catalog.load(str(path), download=False, **options)
        else:
            data = READERS.get(reader)(path, **options)
    except DataValidationError as exc:
        _err.print(f"[bold red]bad:[/] {exc.message}", highlight=False, soft_wrap=True)
        if exc.hint:
            _err.print(f"[yellow]hint:[/] {exc.hint}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None

    rows, counts = _class_counts(data)
    splits = list(counts)
    _out.print(f"{path}: {len(data.records)} records", highlight=False, soft_wrap=True)
    table = Table()
    table.add_column("class")
    for split in splits:
        table.add_column(split, justify="right")
    for name in rows:
        table.add_row(name, *(str(counts[s].get(name, 0)) for s in splits))
    _out.print(table)

    ignored = list(data.info.get("ignored_files", []))
    if ignored:
        _out.print(
            f"{len(ignored)} files ignored (not an image type): "
            + ", ".join(ignored[:20])
            + (f", ... and {len(ignored) - 20} more" if len(ignored) > 20 else ""),
            highlight=False,
            soft_wrap=True,
        )

    checker = READERS.meta(reader).get("check_inputs")
    file_records = [r for r in data.records if isinstance(r["input"], (str, os.PathLike))]
    bad: list[tuple[str, str]] = []
    if checker is not None and file_records:
        load_options = dict(data.info.get("load_options", {}))
        for rec in file_records:
            _, failures = checker([rec["input"]], **load_options)
            bad.extend((rec["id"], f.message) for f in failures)
        _out.print(f"loaded {len(file_records) - len(bad)} of {len(file_records)} files")
    for _, message in bad:  # each message names its file
        _err.print(f"[bold red]bad:[/] {message}", highlight=False, soft_wrap=True)
    if bad:
        _err.print(f"{len(bad)} bad items.", highlight=False)
        raise typer.Exit(1)
    _out.print("ok: no bad items.")
