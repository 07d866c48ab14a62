"""Retention through the admin page, the management API and the CLI, on both databases: the
same policies, and a failing run visible in each (red in the admin page and the dashboard,
`failing` in the API, exit status 1 of the CLI)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import update
from starlette.testclient import TestClient

from contacthub.audit import service as audit
from contacthub.retention import job
from contacthub.storage import leases
from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent
from contacthub.users import service as users
from tests.admin.conftest import EMAIL, PASSWORD, sign_in
from tests.cli.conftest import cli_on
from tests.retention.support import audit_log_undeletable

FAILING = 'id="retention-failing"'


def _token(database: Database) -> dict[str, str]:
    with database.write() as session:
        user = users.create_user(session, "api@example.com", "a long enough password")
        return {"Authorization": f"Bearer {users.create_token(session, user, 't').plaintext}"}


def _admin(client: TestClient, database: Database) -> str:
    with database.write() as session:
        users.create_user(session, EMAIL, PASSWORD, "Ada Admin")
    return sign_in(client)


def _old_audit_entry(database: Database) -> None:
    with database.write() as session:
        audit.record(session, "tests", "user.created", "old@example.com")
        session.flush()
        session.execute(
            update(AuditEvent)
            .where(AuditEvent.subject == "old@example.com")
            .values(created_at=datetime(2020, 1, 1, tzinfo=UTC))
        )


def test_the_admin_page_sets_removes_and_runs(client: TestClient, database: Database) -> None:
    assert client.get("/admin/retention", follow_redirects=False).status_code == 303
    csrf = _admin(client, database)
    page = client.get("/admin/retention")
    assert page.status_code == 200
    assert "No policy: every kind of data is kept forever." in page.text
    nav = '<a href="/admin/retention" class="active" aria-current="page">Retention</a>'
    assert nav in page.text

    refused = client.post("/admin/retention", data={"kind": "activities", "days": "7"})
    assert refused.status_code == 403  # no CSRF token
    bad = client.post(
        "/admin/retention", data={"kind": "activities", "days": "0", "csrf_token": csrf}
    )
    assert bad.status_code == 400
    assert "The period is a whole number of days, from 1 to 36,500" in bad.text
    assert 'value="0"' in bad.text  # what was typed stays

    for activity_type, days in (("click", "7"), ("", "400")):
        done = client.post(
            "/admin/retention",
            data={
                "kind": "activities",
                "activity_type": activity_type,
                "days": days,
                "csrf_token": csrf,
            },
        )
        assert done.status_code == 200
    assert "activities: kept 400 days." in done.text
    assert "<code>click</code>" in done.text
    removed = client.post(
        "/admin/retention/remove",
        data={"kind": "activities", "activity_type": "click", "csrf_token": csrf},
    )
    assert "activities:click: kept forever from now on." in removed.text
    assert "<code>click</code>" not in removed.text

    ran = client.post("/admin/retention/run", data={"csrf_token": csrf})
    assert "Retention run 1 deleted 0 rows." in ran.text
    assert FAILING not in ran.text
    with database.read() as session:
        assert [run.actor for run in job.last_runs(session)] == [EMAIL]


def test_a_failing_run_is_shown_by_every_entry_point(
    client: TestClient, database: Database, database_url: str, tmp_path: Path
) -> None:
    _old_audit_entry(database)  # the first entry: ids follow time
    csrf = _admin(client, database)
    headers = _token(database)
    cli = cli_on(database_url, tmp_path)
    cli.ok("retention", "set", "audit_log", "30")
    with audit_log_undeletable(database):
        # The admin's "Run now": the page and the dashboard turn red.
        client.post("/admin/retention/run", data={"csrf_token": csrf})
        page = client.get("/admin/retention").text
        assert FAILING in page
        assert "audit entries are kept by a trigger" in page
        assert FAILING in client.get("/admin/").text
        # The API answers the failed run, and says so in GET.
        answer = client.post("/api/retention/run", headers=headers)
        assert answer.status_code == 200
        assert "kept by a trigger" in answer.json()["error"]
        listed = client.get("/api/retention", headers=headers).json()
        assert listed["failing"] is True
        assert [r["actor"] for r in listed["runs"]] == ["api@example.com", EMAIL]
        # The CLI exits 1, with the error.
        error = cli.fails("retention", "run")
        assert "retention run 3 failed" in error
        assert "kept by a trigger" in error
        assert "(retention_failed)" in error
        assert "The latest retention run failed." in cli.ok("retention", "runs")
        as_json = cli("retention", "run", "--json")
        assert as_json.exit_code == 1
        assert as_json.stdout == ""  # a pipe never takes the error for a result
        assert json.loads(as_json.stderr)["code"] == "retention_failed"
    # The next run succeeds: nothing is red any more.
    run = json.loads(cli.ok("retention", "run", "--json"))
    assert run["error"] is None
    assert run["deleted"] == {"audit_log": 1}
    assert client.get("/api/retention", headers=headers).json()["failing"] is False
    assert FAILING not in client.get("/admin/").text
    assert FAILING not in client.get("/admin/retention").text
    assert len(cli.json("retention", "runs")) == 5
    assert "The latest retention run failed." not in cli.ok("retention", "runs")


def test_the_api(client: TestClient, database: Database) -> None:
    headers = _token(database)
    assert client.get("/api/retention").status_code == 401
    assert client.get("/api/retention", headers=headers).json() == {
        "policies": [],
        "runs": [],
        "failing": False,
    }
    put = client.put("/api/retention/policies/audit_log", json={"days": 365}, headers=headers)
    assert put.status_code == 200, put.text
    assert put.json()["days"] == 365
    assert put.json()["updated_by"] == "api@example.com"
    typed = client.put(
        "/api/retention/policies/activities/pagevisit", json={"days": 90}, headers=headers
    )
    assert typed.json()["activity_type"] == "pagevisit"
    for path, body, code in (
        ("/api/retention/policies/logs", {"days": 30}, "invalid_kind"),
        ("/api/retention/policies/activities", {"days": 0}, "invalid_days"),
        ("/api/retention/policies/outbox", {"days": 40_000}, "invalid_days"),
    ):
        answer = client.put(path, json=body, headers=headers)
        assert answer.status_code == 400, path
        assert answer.json()["code"] == code
    assert (
        client.put(
            "/api/retention/policies/outbox", json={"days": "30"}, headers=headers
        ).status_code
        == 400
    )
    missing = client.delete("/api/retention/policies/email_hits", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "policy_not_found"
    gone = client.delete("/api/retention/policies/activities/pagevisit", headers=headers)
    assert gone.status_code == 204
    listed = client.get("/api/retention", headers=headers).json()
    assert [(p["kind"], p["activity_type"], p["days"]) for p in listed["policies"]] == [
        ("audit_log", "", 365)
    ]
    run = client.post("/api/retention/run", headers=headers)
    assert run.status_code == 200
    assert run.json()["error"] is None
    assert run.json()["deleted"] == {"audit_log": 0}
    with database.write() as session:
        assert leases.take(session, job.LEASE, 60, holder="another process")
    busy = client.post("/api/retention/run", headers=headers)
    assert busy.status_code == 409
    assert busy.json()["code"] == "retention_running"


def test_the_cli(database_url: str, tmp_path: Path, database: Database) -> None:
    cli = cli_on(database_url, tmp_path, COLUMNS="200")
    assert "No retention policies." in cli.ok("retention", "list")
    cli.ok("retention", "set", "activities", "30")
    record = cli.json("retention", "set", "activities", "7", "--type", "click")
    assert (record["kind"], record["activity_type"], record["days"]) == ("activities", "click", 7)
    assert "Unknown kind of data 'logs'" in cli.fails("retention", "set", "logs", "30")
    assert "(invalid_days)" in cli.fails("retention", "set", "outbox", "0")
    listed = cli.json("retention", "list")
    assert [(p["activity_type"], p["days"]) for p in listed] == [("", 30), ("click", 7)]
    cli.ok("retention", "remove", "activities", "--type", "click")
    assert "(policy_not_found)" in cli.fails("retention", "remove", "activities", "--type", "x")
    table = cli.ok("retention", "list")
    assert "activities" in table
    assert "click" not in table
    run = cli.json("retention", "run")
    assert run["actor"] == "cli"
    assert run["deleted"] == {"activities": 0}
    assert [r["id"] for r in cli.json("retention", "runs")] == [run["id"]]
