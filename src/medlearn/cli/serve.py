"""``medlearn serve [--host H] [--port P] [--db URL]`` — run the decision-support service."""

from __future__ import annotations

import typer

from medlearn.cli._app import app, console_err
from medlearn.cli._db import DB_HELP


@app.command("serve")
def serve_cmd(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    dev_no_auth: bool = typer.Option(
        False,
        "--dev-no-auth",
        help="DEVELOPMENT ONLY: turn API-key authentication off (warns loudly).",
    ),
    max_request_mb: float = typer.Option(20.0, "--max-request-mb", help="Largest request body."),
    max_image_side: int = typer.Option(4096, "--max-image-side", help="Largest image side (px)."),
    batch_max: int = typer.Option(64, "--batch-max", help="Most records per micro-batch."),
    batch_wait_ms: float = typer.Option(
        2.0,
        "--batch-wait-ms",
        help="How long an idle model waits for more requests before predicting (requests "
        "that queued during a batch go next at once).",
    ),
    threads: int = typer.Option(0, "--threads", help="torch threads (0: all cores)."),
    model_process: bool = typer.Option(
        True,
        "--model-process/--no-model-process",
        help="Decode, check and predict each model's micro-batches in a child process of its "
        "own (that work does not share Python's interpreter lock with the web server).",
    ),
    model_processes: int = typer.Option(
        1,
        "--model-processes",
        min=1,
        help="Child processes per model with --model-process: while one answers a batch the "
        "next batch goes to another (more cores for prediction, more memory).",
    ),
    pin_cpus: bool = typer.Option(
        False,
        "--pin-cpus/--no-pin-cpus",
        help="Give model processes cores of their own (the last CPUs) and the web server the "
        "others. For a machine that does nothing but serve.",
    ),
) -> None:
    """Serve registered models: prediction API, FHIR, CDS Hooks, web page, /metrics.

    Models come from the registry (`medlearn registry push` / `promote`); API keys from
    `medlearn keys create`. Access logs are off (URLs may carry FHIR patient references).
    """
    import uvicorn

    from medlearn.serving import ServeSettings, create_app
    from medlearn.serving.store import default_db_url

    if threads > 0:
        import torch

        torch.set_num_threads(threads)
    if dev_no_auth:
        console_err.print(
            "[bold red]WARNING: authentication is OFF (--dev-no-auth). Anyone who can reach "
            f"{host}:{port} can predict, read the audit log and change the registry. "
            "Never use this with patient data.[/]"
        )
    settings = ServeSettings(
        db_url=db or default_db_url(),
        auth=not dev_no_auth,
        max_request_bytes=int(max_request_mb * 1024 * 1024),
        max_image_side=max_image_side,
        batch_max=batch_max,
        batch_wait_ms=batch_wait_ms,
        tune_process=True,
        model_process=model_process,
        model_processes=model_processes,
        pin_cpus=pin_cpus,
    )
    uvicorn.run(create_app(settings), host=host, port=port, access_log=False, log_level="warning")
