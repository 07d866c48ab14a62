"""`contacthub serve`, `contacthub migrate` and `contacthub proxy`."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import typer
import uvicorn
from rich.markup import escape
from uvicorn.config import LOGGING_CONFIG

from contacthub.cli.output import console, database_errors, errors, fail, load_settings
from contacthub.errors import HubError
from contacthub.serving import uvicorn_options
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.migrate import upgrade
from contacthub.users import service as users


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging set-up, with contacthub's own loggers printed the same way."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["contacthub"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


def migrate() -> None:
    """Apply the schema migrations to the configured database."""
    settings = load_settings()
    with database_errors(settings.database_url):
        upgrade(settings.database_url)
    console.print("[green]Database is up to date.[/green]")


def serve(
    host: str | None = typer.Option(None, help="Address to bind (default: setting `host`)."),
    port: int | None = typer.Option(None, help="Port to listen on (default: setting `port`)."),
    workers: int = typer.Option(1, min=1, help="Worker processes."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Apply migrations, then serve the hub."""
    from contacthub.app import build_hub

    settings = load_settings()
    # Wire the hub once here, so that a configuration it refuses stops this command with a
    # message: with --workers, uvicorn would restart each failing worker forever.
    try:
        build_hub(settings).database.dispose()
    except (RuntimeError, HubError) as error:
        errors.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(1) from None
    with database_errors(settings.database_url):
        upgrade(settings.database_url)
        first_user_missing = not _has_users(settings)
    settings = settings.model_copy(
        update={"host": host or settings.host, "port": port or settings.port}
    )
    _print_where_to_go(settings, first_user_missing)
    uvicorn.run(
        "contacthub.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        loop="uvloop",
        log_level=log_level,
        log_config=log_config(log_level),
        access_log=False,
        # Let in-flight requests finish and the writer drain its queue on shutdown.
        timeout_graceful_shutdown=30,
        # The httptools protocol with the request limits; the trusted proxies (none by
        # default: then no header changes the scheme or the client's address).
        **uvicorn_options(settings),
    )


def _has_users(settings: Settings) -> bool:
    database = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        with database.read() as session:
            return bool(users.list_users(session))
    finally:
        database.dispose()


def _this_command() -> str:
    """`contacthub` as this command was started (e.g. `.venv/bin/contacthub`), to copy."""
    started = Path(sys.argv[0] if sys.argv else "")
    if started.name != "contacthub":
        return "contacthub"
    if started.is_absolute() and started.is_relative_to(Path.cwd()):
        return str(started.relative_to(Path.cwd()))
    return str(started)


def _print_where_to_go(settings: Settings, first_user_missing: bool) -> None:
    console.print(f"contacthub: the admin is at [bold]{escape(settings.site_url)}/admin/[/bold]")
    if first_user_missing:
        console.print(
            "No admin user yet; create the first one (it asks for a password):\n"
            f'  {escape(_this_command())} user create you@example.com --name "Your Name"',
            soft_wrap=True,
        )


def proxy(
    hub: str = typer.Option(..., help="Base URL of the hub, e.g. https://hub.example.com."),
    api_key: str = typer.Option(
        ..., envvar="CONTACTHUB_PROXY_API_KEY", help="Tracking API key to add to requests."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(8001, help="Port to listen on."),
) -> None:
    """Run the backend proxy that adds the API key, so it stays off public pages."""
    from contacthub.tracking.proxy import create_proxy_app

    try:
        app = create_proxy_app(hub, api_key)
    except HubError as error:
        fail(error)
    uvicorn.run(app, host=host, port=port, access_log=False)


def facade(
    hub: str = typer.Option(..., help="Base URL of the hub, e.g. https://hub.example.com."),
    api_key: str = typer.Option(
        ..., envvar="CONTACTHUB_FACADE_API_KEY", help="API key with access `email`."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(8002, help="Port to listen on."),
    trusted_proxy: list[str] | None = typer.Option(  # noqa: B008 - Typer reads it, once
        None, help="Address or CIDR range of a proxy whose X-Forwarded-For is believed; repeatable."
    ),
) -> None:
    """Run the website-side email facade: the tracking handlers, forwarding to the hub."""
    from contacthub.email.facade import create_facade_app

    try:
        app = create_facade_app(hub, api_key, trusted_proxies=trusted_proxy or ())
    except HubError as error:
        fail(error)
    except ValueError as error:
        errors.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(1) from None
    uvicorn.run(app, host=host, port=port, access_log=False, proxy_headers=False)
