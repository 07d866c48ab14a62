"""`contacthub serve` for real: a new database, two worker processes, a client, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import psycopg
import pytest
from sqlalchemy import inspect, text

from contacthub.storage.database import Database
from tests.cli.conftest import cli_on, head_revision
from tests.conftest import POSTGRES_ADMIN_URL
from tests.servers import contacthub_command, free_port, start_hub

pytestmark = pytest.mark.slow


@contextmanager
def empty_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped at the end."""
    name = f"contacthub_serve_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    try:
        yield f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database nobody has migrated: a SQLite file that does not exist yet, or an empty one."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'new.db'}"
        return
    request.getfixturevalue("postgres_template")  # skips (or fails under CI) without a server
    with empty_postgres_database() as url:
        yield url


def tables_and_revision(database_url: str) -> tuple[set[str], str | None]:
    database = Database(database_url)
    try:
        with database.read() as session:
            tables = set(inspect(session.connection()).get_table_names())
            revision = None
            if "alembic_version" in tables:
                revision = session.scalar(text("SELECT version_num FROM alembic_version"))
            return tables, revision
    finally:
        database.dispose()


def test_serve_migrates_serves_and_stops_on_sigterm(
    empty_database_url: str, tmp_path: Path
) -> None:
    assert tables_and_revision(empty_database_url) == (set(), None)

    server = start_hub(empty_database_url, tmp_path / "serve.log", workers=2)
    try:
        tables, revision = tables_and_revision(empty_database_url)
        assert revision == head_revision(), "migrations were not applied on start"
        assert {"channels", "api_keys", "contacts", "activities"} <= tables

        # Set the hub up from the command line while it runs, as a user would.
        cli = cli_on(empty_database_url, tmp_path)
        channel = cli.json("channel", "create", "Web")["guid"]
        key = cli.json("apikey", "create", "--channel", "Web", "--access", "tracking")["key"]
        headers = {"Authorization": f"Bearer {key}"}

        with httpx2.Client(base_url=server.base_url, timeout=10.0) as client:
            # Several requests, so that both worker processes are likely to answer some.
            contacts = []
            for _ in range(6):
                answer = client.post("/Kentico.Tracking/contacts", headers=headers)
                assert answer.status_code == 200, answer.text
                contacts.append(answer.json()["contact"])
            logged = client.post(
                "/Kentico.Tracking/activities",
                headers=headers,
                json={
                    "channel": channel,
                    "contact": contacts[0],
                    "activities": [{"type": "pagevisit", "url": "https://example.com/"}],
                },
            )
            assert logged.status_code == 207
            assert logged.json() == {"results": [{"status": 202}]}
    finally:
        exit_code = server.stop()

    assert exit_code == 0, server.log_tail()
    database = Database(empty_database_url)
    try:
        with database.read() as session:
            stored = set(session.scalars(text("SELECT guid FROM contacts")))
            activities = session.scalar(text("SELECT count(*) FROM activities"))
    finally:
        database.dispose()
    assert {str(uuid.UUID(str(guid))) for guid in stored} == set(contacts)
    assert activities == 1


def test_serve_refuses_the_default_secret_on_postgresql(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    request.getfixturevalue("postgres_template")  # skips (or fails under CI) without a server
    with empty_postgres_database() as url:
        refuses_the_default_secret(url, tmp_path)


def refuses_the_default_secret(empty_database_url: str, tmp_path: Path) -> None:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("CONTACTHUB_")
    }
    environment["CONTACTHUB_DATABASE_URL"] = empty_database_url
    environment["CONTACTHUB_CONFIG"] = str(tmp_path / "absent.toml")
    # With --workers, a worker that fails to start is restarted forever: serve must check first.
    process = subprocess.Popen(
        [str(contacthub_command()), "serve", "--port", str(free_port()), "--workers", "2"],
        env=environment,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the workers too
        process.communicate()
        raise
    assert process.returncode == 1, stderr
    assert "CONTACTHUB_SECRET_KEY" in stderr
    assert "Traceback" not in stderr
    assert tables_and_revision(empty_database_url) == (set(), None)
