"""``medlearn models list [PATTERN]``, ``medlearn models show NAME`` and ``medlearn metrics
list``."""

from __future__ import annotations

import inspect
import re

import typer
from rich.table import Table

from medlearn.cli._app import app, console
from medlearn.registry import METRICS, MODELS

models_app = typer.Typer(help="Registered models.", no_args_is_help=True)
metrics_app = typer.Typer(help="Registered metrics.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(metrics_app, name="metrics")


@models_app.command("list")
def models_list(
    pattern: str = typer.Argument("*", help="Glob pattern, e.g. 'res*'."),
    domain: str | None = typer.Option(None, "--domain", help="Only this domain, e.g. imaging."),
) -> None:
    """List registered models with their domain, tasks and description."""
    where = {"domain": domain} if domain else {}
    table = Table(title="medlearn models")
    for col in ("name", "domain", "tasks", "description"):
        table.add_column(col)
    for name in MODELS.list(pattern, **where):
        meta = MODELS.meta(name)
        table.add_row(
            name,
            str(meta.get("domain", "")),
            ", ".join(meta.get("tasks", ())),
            str(meta.get("description", "")),
        )
    console.print(table)


@models_app.command("show")
def models_show(
    name: str = typer.Argument(..., help="A registered model, e.g. fp_kernel_ridge."),
) -> None:
    """Show a model's domain, tasks and every parameter of `model.params` with its default."""
    entry = MODELS.entry(name)  # an unknown name: a clear error with close matches
    meta = entry.meta
    console.print(
        f"[bold]{name}[/bold] ({meta.get('domain', '')}; tasks: "
        f"{', '.join(meta.get('tasks', ())) or 'any'})"
    )
    if meta.get("description"):
        console.print(str(meta["description"]))
    table = Table(title=f"model.params of {name}")
    for col in ("parameter", "default", "meaning"):
        table.add_column(col)
    docs = param_docs(entry.obj)
    fixed = reserved_params(meta)
    for param in model_params(entry.obj):
        if param.name in fixed:
            continue
        default = "required" if param.default is inspect.Parameter.empty else repr(param.default)
        table.add_row(param.name, default, docs.get(param.name, ""))
    console.print(table)
    if fixed:
        console.print(f"Set by medlearn from the data and run file: {', '.join(fixed)}.")


def reserved_params(meta: dict[str, object]) -> tuple[str, ...]:
    """The parameters a model's learner passes itself (refused in ``model.params``)."""
    learner, domain = meta.get("learner"), meta.get("domain")
    if learner == "tabular":
        from medlearn.clinical._tabular_models import RESERVED
    elif learner == "timeseries":
        from medlearn.clinical._ts_models import RESERVED
    elif learner == "segmentation":
        from medlearn.imaging.segmentation.models import RESERVED
    elif learner == "molecules":
        from medlearn.molecules._models import RESERVED
    elif domain == "imaging":
        from medlearn.imaging.models import RESERVED_PARAMS as RESERVED
    else:
        return ()
    return tuple(RESERVED)


def model_params(obj: object) -> list[inspect.Parameter]:
    """The keyword parameters a run file may set in ``model.params`` (``**kwargs`` left out)."""
    try:
        params = inspect.signature(obj).parameters.values()  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return []
    skip = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    return [p for p in params if p.kind not in skip and p.name != "self"]


_ARG_LINE = re.compile(r"^(\s+)([A-Za-z_][\w]*(?:\s*,\s*[A-Za-z_][\w]*)*)\s*:\s*(.*)$")


def param_docs(obj: object) -> dict[str, str]:
    """Parameter → its text in the Google-style ``Args:`` section of ``obj``'s docstring
    (``a, b: text`` documents both)."""
    doc = inspect.getdoc(obj) or ""
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Args:")
    except StopIteration:
        return {}
    out: dict[str, str] = {}
    names: list[str] = []
    indent = None
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if depth == 0:  # the next section (Returns:, Raises:, ...)
            break
        m = _ARG_LINE.match(line)
        if m and (indent is None or len(m.group(1)) == indent):
            indent = len(m.group(1))
            names = [n.strip() for n in m.group(2).split(",")]
            for n in names:
                out[n] = m.group(3).strip()
        elif names:  # a continuation line
            for n in names:
                out[n] = f"{out[n]} {line.strip()}".strip()
    return out


@metrics_app.command("list")
def metrics_list() -> None:
    """List registered metrics."""
    table = Table(title="medlearn metrics")
    for col in ("name", "higher is better", "needs", "tasks"):
        table.add_column(col)
    for name in METRICS.list():
        meta = METRICS.meta(name)
        table.add_row(
            name,
            str(meta.get("higher_is_better")),
            str(meta.get("needs", "")),
            ", ".join(meta.get("tasks", ())),
        )
    console.print(table)
