"""The ``medlearn`` command line: one module per verb, errors as one line plus a hint."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return (and, as a console script, exit with) the exit code.

    Exit codes: 0 success; 1 a batch job finished with some bad items; 2 an error (one line
    plus a hint on stderr; ``-v`` adds the traceback).
    """
    from medlearn.cli._app import app, console_err
    from medlearn.errors import MedlearnError

    args = list(sys.argv[1:] if argv is None else argv)
    verbose = any(a in ("-v", "--verbose") for a in args)
    args = [a for a in args if a not in ("-v", "--verbose")]
    if args[:1] == ["train"] and any(a in ("--help", "-h") for a in args):
        _expand_train_help(app)
    try:
        app(args=args, prog_name="medlearn", standalone_mode=True)
    except SystemExit as exc:  # typer exits on success, usage errors (2) and typer.Exit
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 2)
    except MedlearnError as exc:
        if verbose:
            console_err.print_exception()
        console_err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        if exc.hint:
            console_err.print(f"[yellow]hint:[/] {exc.hint}", highlight=False)
        return 2
    except KeyboardInterrupt:
        console_err.print("interrupted; resume training with --resume --out RUN_DIR")
        return 130
    return 0


def _expand_train_help(app: object) -> None:
    """List every model and dataset in ``medlearn train --help``.

    Listing them imports every domain plugin (torch, Lightning, MONAI, lifelines ...), which
    takes seconds, so the full text is put in only when help is asked for.
    """
    from medlearn.cli.train import full_help

    for info in getattr(app, "registered_commands", []):
        if info.name == "train":
            info.help = full_help()


def _entry() -> None:  # console-script entry point
    sys.exit(main())
