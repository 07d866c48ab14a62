"""`contacthub retention …`: how long each kind of data is kept, and the retention job."""

from __future__ import annotations

from typing import Any

import typer

from contacthub.audit.service import CLI_ACTOR
from contacthub.cli.output import (
    JsonOption,
    console,
    database_errors,
    emit,
    fail,
    load_settings,
    open_database,
    report_error,
    unit_of_work,
)
from contacthub.errors import HubError
from contacthub.retention import job, policies
from contacthub.storage.models import RetentionPolicy, RetentionRun

retention_app = typer.Typer(
    help="Retention: how long each kind of data is kept (docs/configuration.md)."
)
KINDS_HELP = ", ".join(policies.KINDS)
TypeOption = typer.Option(
    "",
    "--type",
    help="Activities only: the activity type (none: every type without a period of its own).",
)


def policy_record(policy: RetentionPolicy) -> dict[str, Any]:
    return {
        "kind": policy.kind,
        "activity_type": policy.activity_type,
        "days": policy.days,
        "updated_at": policy.updated_at,
        "updated_by": policy.updated_by,
    }


def run_record(run: RetentionRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "started_at": run.started_at,
        "seconds": job.seconds_taken(run),
        "deleted": job.deleted_counts(run),
        "error": run.error,
        "actor": run.actor,
    }


@retention_app.command("list")
def retention_list(as_json: bool = JsonOption) -> None:
    """List the retention policies (a kind without one is kept forever)."""
    with unit_of_work(write=False) as session:
        rows = [policy_record(p) for p in policies.list_policies(session)]
        failing = job.is_failing(session)
    if as_json:
        emit(rows, True)
        return
    emit(rows, False, "Retention policies")
    if failing:
        console.print("[red]The last retention run failed:[/red] see `contacthub retention runs`.")


@retention_app.command("set")
def retention_set(
    kind: str = typer.Argument(..., help=f"The kind of data: {KINDS_HELP}."),
    days: int = typer.Argument(..., help="Days the data is kept."),
    activity_type: str = TypeOption,
    as_json: bool = JsonOption,
) -> None:
    """Keep a kind of data for DAYS days (replaces its period); older data is deleted."""
    with unit_of_work() as session:
        record = policy_record(
            policies.set_policy(session, kind, days, activity_type=activity_type, actor=CLI_ACTOR)
        )
    emit(record, as_json, "Retention policy set")


@retention_app.command("remove")
def retention_remove(
    kind: str = typer.Argument(..., help=f"The kind of data: {KINDS_HELP}."),
    activity_type: str = TypeOption,
    as_json: bool = JsonOption,
) -> None:
    """Remove a kind's policy: it is kept forever from now on."""
    with unit_of_work() as session:
        record = policy_record(
            policies.remove_policy(session, kind, activity_type=activity_type, actor=CLI_ACTOR)
        )
    emit(record, as_json, "Retention policy removed")


@retention_app.command("run")
def retention_run(as_json: bool = JsonOption) -> None:
    """Run the retention job now; exit status 1 when the run fails (its error is recorded)."""
    settings = load_settings()
    database = open_database(settings)
    try:
        with database_errors(settings.database_url):
            run = job.run(database, settings, CLI_ACTOR)
    except HubError as error:
        fail(error)
    finally:
        database.dispose()
    if run.error is not None:
        # Only the error: with --json, standard output holds a result or nothing.
        report_error(f"retention run {run.id} failed: {run.error}", code="retention_failed")
    emit(run_record(run), as_json, f"Retention run {run.id}")


@retention_app.command("runs")
def retention_runs(
    limit: int = typer.Option(job.RUNS_SHOWN, help="Runs listed, newest first (1 to 100)."),
    as_json: bool = JsonOption,
) -> None:
    """The latest runs of the retention job, newest first, with what each deleted and its
    error (`contacthub retention run` exits 1 when its run fails)."""
    with unit_of_work(write=False) as session:
        runs = job.last_runs(session, min(max(limit, 1), 100))
        failing = job.is_failing(session)
        rows = [run_record(run) for run in runs]
    emit(rows, as_json, "Retention runs")
    if failing and not as_json:
        console.print("[red]The latest retention run failed.[/red]")
