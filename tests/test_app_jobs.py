"""The app's background jobs (live group membership, activity rollups) stop cleanly with it.

Stopping the app waits for a job's current run: its thread is never abandoned mid-query with a
connection checked out, which would return that connection to a pool already disposed, to be
closed only by the garbage collector ("psycopg.Connection deleted while still open": an
unraisable ResourceWarning, an error in this suite, at a random later test).
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub import app as app_module
from contacthub.app import create_app
from contacthub.groups import service as groups
from contacthub.settings import Settings
from contacthub.storage import leases
from contacthub.storage.database import Database
from contacthub.storage.models import JobLease
from contacthub.storage.types import utcnow

# Dynamic, so that every run of the live job evaluates it (queries, a lock) rather than
# returning after one look-up.
CONDITIONS = {"field": "country", "op": "equals", "value": "CZE"}


def test_stopping_the_app_waits_for_the_live_jobs_current_run(
    settings: Settings, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, finished = threading.Event(), threading.Event()
    real_refresh = app_module.membership.refresh

    def slow_refresh(database: Database, **options: Any) -> object:
        # A run that is still busy, a connection checked out, when the app is told to stop.
        with database.read() as session:
            session.connection()
            started.set()
            time.sleep(0.3)
        finished.set()
        return real_refresh(database, **options)

    monkeypatch.setattr(app_module.membership, "refresh", slow_refresh)
    settings = settings.model_copy(update={"group_refresh_interval": 0.01})
    with TestClient(create_app(settings)):
        assert started.wait(10)

    assert finished.is_set()


@pytest.mark.parametrize("round_", range(10))
def test_the_app_starts_and_stops_while_its_jobs_run(
    settings: Settings, database: Database, round_: int
) -> None:
    # The real jobs, as often as they can run: no connection may outlive the app.
    with database.write() as session:
        groups.create_group(session, "Czechs", kind="dynamic", conditions=CONDITIONS)
    settings = settings.model_copy(
        update={"group_refresh_interval": 0.001, "rollup_interval": 0.001}
    )
    with TestClient(create_app(settings)) as client:
        time.sleep(0.05 * (round_ % 4))
        assert client.get("/health").status_code == 200
    gc.collect()


def test_the_jobs_leases_are_taken_while_the_app_runs_and_given_up_when_it_stops(
    settings: Settings, database: Database
) -> None:
    # With several workers, one process at a time counts the rollups and evaluates the groups;
    # a stopping worker gives its leases up so that another takes over at its next run.
    with database.write() as session:
        groups.create_group(session, "Czechs", kind="dynamic", conditions=CONDITIONS)
    settings = settings.model_copy(update={"group_refresh_interval": 0.01, "rollup_interval": 0.01})

    def held() -> dict[str, bool]:
        # The two jobs' leases only: the webhook dispatcher may take its own meanwhile.
        jobs = (app_module.rollups.LEASE, app_module.membership.LEASE)
        with database.read() as session:
            return {
                lease.name: lease.holder == leases.PROCESS and lease.expires_at > utcnow()
                for lease in session.scalars(select(JobLease).where(JobLease.name.in_(jobs)))
            }

    with TestClient(create_app(settings)):
        deadline = time.monotonic() + 10
        while (now_held := held()) != {"rollups": True, "groups": True}:
            assert time.monotonic() < deadline, now_held
            time.sleep(0.01)

    assert held() == {"rollups": False, "groups": False}
