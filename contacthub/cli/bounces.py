"""`contacthub bounces poll` and `contacthub bounces serve`: taking in bounces and complaints."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import typer

from contacthub.bounces import imap
from contacthub.bounces.listener import listener
from contacthub.cli.output import (
    JsonOption,
    console,
    database_errors,
    emit,
    fail,
    load_settings,
    open_database,
    report_error,
)
from contacthub.email import signing
from contacthub.errors import HubError

bounces_app = typer.Typer(
    help="Bounces and complaints: read the bounce mailbox, or receive them by SMTP."
)


@bounces_app.command("poll")
def poll(as_json: bool = JsonOption) -> None:
    """Read the bounce mailbox once (settings bounce_imap_*): record what its unseen messages
    report, then move them to the processed folder or delete them."""
    settings = load_settings()
    database = open_database(settings)
    try:
        with database_errors(settings.database_url):
            report = imap.poll(database, settings, signing.link_signer(settings))
    except HubError as error:
        fail(error)
    finally:
        database.dispose()
    emit(report.as_dict(), as_json, "Bounce mailbox")


@bounces_app.command("serve")
def serve(
    host: str | None = typer.Option(
        None, help="Address to bind (default: setting `bounce_smtp_host`)."
    ),
    port: int | None = typer.Option(
        None, min=1, max=65535, help="Port to listen on (default: setting `bounce_smtp_port`)."
    ),
) -> None:
    """Receive bounces and complaints for the bounce domain by SMTP until stopped (Ctrl-C or
    SIGTERM); each is recorded before it is acknowledged."""
    settings = load_settings()
    database = open_database(settings)
    stopping = threading.Event()

    def stop(_signal: int, _frame: FrameType | None) -> None:
        stopping.set()

    try:
        server = listener(database, settings, signing.link_signer(settings), host=host, port=port)
        where = f"{server.hostname}:{server.port}"
        try:
            server.start()
        except (OSError, RuntimeError) as error:
            report_error(f"Cannot listen on {where}: {error}", code="listen_failed")
        console.print(
            f"Receiving bounces for [bold]{settings.bounce_domain}[/bold] on {where} "
            "(Ctrl-C to stop)."
        )
        previous = {
            number: signal.signal(number, stop) for number in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            stopping.wait()
        finally:
            # A message being recorded is answered before the server closes.
            server.stop()
            for number, handler in previous.items():
                signal.signal(number, handler)
        console.print("Stopped.")
    except HubError as error:
        fail(error)
    finally:
        database.dispose()
