"""The audit log is the same whichever entry point acts: every audited action, performed from the
admin, the management API and the command line, is recorded once with the same subject and
details (only the actor differs).

One table (`STEPS`) lists every action with how each entry point performs it. Each entry point
runs the whole table, in order, on a database of its own set up alike, so that ids and counts
agree; values that are random (GUIDs, key and token prefixes) are compared by their shape.
Where an entry point does not offer an action, the step is done through the service without an
actor (so that the next steps find the same state) and must record nothing.

The table cannot rot: it must name every action `audit.service.ACTIONS` knows (and `record`
refuses any other), and docs/admin.md must list the same actions with the same entry points.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient
from typer.testing import CliRunner

from contacthub.audit import service as audit
from contacthub.cli.main import app
from contacthub.email import service as email
from contacthub.groups import service as groups
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent, Contact
from contacthub.storage.types import utcnow
from contacthub.suppressions import service as suppressions
from contacthub.users import service as users
from tests.admin.conftest import sign_in
from tests.cli.conftest import Cli, cli_on
from tests.email.smtp_server import SmtpServer, smtp_server
from tests.email.ui_support import smtp_settings, wait_for_run

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = ("admin", "api", "cli")
DOCUMENTED_NAMES = {"admin": "admin", "api": "API", "cli": "CLI"}
ADA = "ada@example.com"
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "another long enough password"
GRACE = "grace@example.com"
ANNA = "anna@example.com"
BOB = "bob@example.com"
ORIGIN = "https://shop.example.com"
HTML = (
    '<p>Hello {{ first_name | "there" }}, see <a href="https://shop.example.com/">the shop</a></p>'
)
CSV = "email,first_name\nbob@example.com,Bob\nanna@example.com,\nnot-an-address,\n"
ANY_GUID = "<guid>"
ANY_PREFIX = "<prefix>"
EXPIRY = "2099-01-01 00:00:00+00:00"  # 2099-01-01 as every entry point takes it, stored in UTC

# Audited actions this table does not perform, and where they are tested instead.
ELSEWHERE = {
    # Admin-only, recorded by the sign-in flow in users/service.py.
    "user.signed_in": "tests/admin/test_sign_in.py",
    "user.locked": "tests/admin/test_sign_in.py",
    # CLI-only, and slow to build: tests/test_demo.py.
    "demo.created": "tests/test_demo.py",
    # Recorded by events/deliveries.py, tested in tests/events/test_deliveries.py; their admin,
    # API and CLI entry points come with the webhook endpoints' (move them to STEPS then).
    "webhook.retried": "tests/events/test_deliveries.py",
    "webhook.replayed": "tests/events/test_deliveries.py",
}


@dataclass
class Entry:
    """One entry point, on a database of its own: how steps act through it."""

    name: str
    database: Database
    cli: Cli
    tmp_path: Path
    client: TestClient | None = None
    csrf: str = ""
    headers: dict[str, str] | None = None

    @property
    def actor(self) -> str:
        return audit.CLI_ACTOR if self.name == "cli" else ADA

    def form(self, path: str, **data: str) -> None:
        """Post an admin form; it must be accepted."""
        assert self.client is not None
        answer = self.client.post(
            path, data={**data, "csrf_token": self.csrf}, follow_redirects=False
        )
        assert answer.status_code in (200, 303), f"POST {path}: {answer.status_code}"

    def upload(self, path: str, name: str, content: str) -> None:
        assert self.client is not None
        answer = self.client.post(
            path,
            data={"csrf_token": self.csrf},
            files={"file": (name, content.encode(), "text/csv")},
            follow_redirects=False,
        )
        assert answer.status_code == 200, f"POST {path}: {answer.status_code}"

    def call(self, method: str, path: str, body: Any = None, **options: Any) -> Any:
        """Call the management API; it must succeed."""
        assert self.client is not None
        assert self.headers is not None
        headers = {**self.headers, **options.pop("headers", {})}
        answer = self.client.request(method, path, json=body, headers=headers, **options)
        assert answer.status_code < 300, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None

    def run(self, *args: str, stdin: str | None = None) -> None:
        """Run a `contacthub` command; it must succeed."""
        result = CliRunner().invoke(app, list(args), env=self.cli.env, input=stdin)
        assert result.exit_code == 0, f"contacthub {' '.join(args)}: {result.output}"

    def file(self, name: str, content: str) -> str:
        path = self.tmp_path / name
        path.write_text(content, encoding="utf-8")
        return str(path)

    def contact_of(self, address: str) -> str:
        with self.database.read() as session:
            return str(session.scalars(select(Contact.guid).where(Contact.email == address)).one())

    def issue_guid(self) -> str:
        with self.database.read() as session:
            [issue] = email.list_issues(session, "Weekly")
            return str(issue.guid)

    def wait_for_sending(self) -> None:
        assert self.client is not None
        wait_for_run(self.client, self.issue_guid())


Do = Callable[[Entry], None]


@dataclass(frozen=True)
class Step:
    """One audited action: what it must record, and how each entry point performs it."""

    action: str
    subject: str
    details: dict[str, Any] | None
    admin: Do | None
    api: Do | None
    cli: Do | None
    # For an entry point that does not offer the action: the same change, through the service,
    # without an actor.
    direct: Do | None = None
    # State the step needs that no earlier step makes, made through the service without an
    # actor before the step (it must record nothing).
    setup: Do | None = None


def _unsubscribe_bob(entry: Entry) -> None:
    with entry.database.write() as session:
        email.unsubscribe(session, email.get_subscriber(session, "Weekly", BOB))


def _send_from_admin(entry: Entry) -> None:
    entry.form(f"/admin/issues/{entry.issue_guid()}/send")
    entry.wait_for_sending()


def _send_from_api(entry: Entry) -> None:
    entry.call("POST", f"/api/issues/{entry.issue_guid()}/send", {})
    entry.wait_for_sending()


FIRST_NAME_ANNA = {"field": "first_name", "op": "equals", "value": "Anna"}
FIRST_NAME_ANNA_OR_BOB = {"field": "first_name", "op": "in", "value": ["Anna", "Bob"]}


def _create_group(entry: Entry) -> None:
    with entry.database.write() as session:
        groups.create_group(session, "Readers", conditions=FIRST_NAME_ANNA)


def _update_group(entry: Entry) -> None:
    with entry.database.write() as session:
        groups.update_group(
            session, "Readers", new_name="First names", conditions=FIRST_NAME_ANNA_OR_BOB
        )


def _rebuild_group(entry: Entry) -> None:
    with entry.database.write() as session:
        groups.rebuild_group(session, "First names")


def _export_group(entry: Entry) -> None:
    with entry.database.read() as session:
        list(groups.iter_members(session, "First names"))


SUMMER = "Summer news"


def _draft_issue(entry: Entry) -> None:
    with entry.database.write() as session:
        email.create_issue(session, "Weekly", SUMMER, HTML)


def _draft_guid(entry: Entry) -> str:
    with entry.database.read() as session:
        [draft] = [i for i in email.list_issues(session, "Weekly") if i.subject == SUMMER]
        return str(draft.guid)


def _export_engagement_from_api(entry: Entry) -> None:
    assert entry.client is not None
    assert entry.headers is not None
    path = f"/api/issues/{entry.issue_guid()}/engagement/people?format=csv"
    answer = entry.client.get(path, headers=entry.headers)
    assert answer.status_code == 200, answer.text
    assert len(answer.text.splitlines()) == 1  # the header: nobody opened yet


NEXT_YEAR = utcnow().year + 1
SCHEDULED_AT = f"{NEXT_YEAR}-12-24T08:00:00+00:00"
MISSED_AT = datetime(2026, 1, 1, 8, tzinfo=UTC)


def _miss_the_schedule(entry: Entry) -> None:
    """The draft was scheduled, and the hub was down at its time."""
    with entry.database.write() as session:
        issue = email.get_issue(session, _draft_guid(entry))
        issue.status, issue.scheduled_at, issue.scheduled_by = "schedule_missed", MISSED_AT, ADA


def _confirm_from_admin(entry: Entry) -> None:
    entry.form(f"/admin/issues/{_draft_guid(entry)}/schedule/confirm")
    assert entry.client is not None
    wait_for_run(entry.client, _draft_guid(entry))


def _confirm_from_api(entry: Entry) -> None:
    entry.call("POST", f"/api/issues/{_draft_guid(entry)}/schedule/confirm")
    assert entry.client is not None
    wait_for_run(entry.client, _draft_guid(entry))


def _export_group_from_api(entry: Entry) -> None:
    assert entry.client is not None
    assert entry.headers is not None
    answer = entry.client.get("/api/groups/First names/members?format=csv", headers=entry.headers)
    assert answer.status_code == 200, answer.text
    assert len(answer.text.splitlines()) == 3  # the header and two members


def _create_static_group(entry: Entry) -> None:
    with entry.database.write() as session:
        groups.create_group(session, "VIP", kind="static")


def _add_to_group(entry: Entry) -> None:
    with entry.database.write() as session:
        groups.add_members(session, "VIP", [ANNA, BOB, "nobody@example.com"])


def _remove_from_group(entry: Entry) -> None:
    with entry.database.write() as session:
        groups.remove_members(session, "VIP", [BOB])


def _delete_group(entry: Entry) -> None:
    with entry.database.write() as session:
        groups.delete_group(session, "VIP")


def _export_list_from_api(entry: Entry) -> None:
    assert entry.client is not None
    assert entry.headers is not None
    answer = entry.client.get(
        "/api/contacts",
        params={"q": "anna", "newsletter": "Weekly", "format": "csv"},
        headers=entry.headers,
    )
    assert answer.status_code == 200, answer.text


BLOCKED = "blocked@example.com"
BOUNCED = "bounced@example.com"
EVIDENCE = "Asked by phone not to be mailed"


def _bounce(entry: Entry) -> None:
    with entry.database.write() as session:
        suppressions.suppress(
            session, BOUNCED, reason="hard_bounce", source="smtp", evidence="5.1.1 No such user"
        )


def _export_suppressions_from_api(entry: Entry) -> None:
    assert entry.client is not None
    assert entry.headers is not None
    answer = entry.client.get(
        "/api/suppressions", params={"search": "blocked", "format": "csv"}, headers=entry.headers
    )
    assert answer.status_code == 200, answer.text
    assert len(answer.text.splitlines()) == 2  # the header and the one suppression


STEPS: list[Step] = [
    Step(
        "user.created",
        GRACE,
        None,
        admin=lambda e: e.form("/admin/users", email=GRACE, name="Grace", password=PASSWORD),
        api=lambda e: e.call(
            "POST", "/api/users", {"email": GRACE, "name": "Grace", "password": PASSWORD}
        ),
        cli=lambda e: e.run(
            "user", "create", GRACE, "--name", "Grace", "--password-stdin", stdin=PASSWORD + "\n"
        ),
    ),
    Step(
        "user.password_set",
        GRACE,
        None,
        admin=lambda e: e.form("/admin/users/2/password", password=NEW_PASSWORD),
        api=lambda e: e.call("PATCH", "/api/users/2", {"password": NEW_PASSWORD}),
        cli=lambda e: e.run(
            "user", "set-password", GRACE, "--password-stdin", stdin=NEW_PASSWORD + "\n"
        ),
    ),
    Step(
        "user.disabled",
        GRACE,
        None,
        admin=lambda e: e.form("/admin/users/2/disable"),
        api=lambda e: e.call("PATCH", "/api/users/2", {"enabled": False}),
        cli=lambda e: e.run("user", "disable", GRACE),
    ),
    Step(
        "user.enabled",
        GRACE,
        None,
        admin=lambda e: e.form("/admin/users/2/enable"),
        api=lambda e: e.call("PATCH", "/api/users/2", {"enabled": True}),
        cli=lambda e: e.run("user", "enable", GRACE),
    ),
    Step(
        "token.created",
        ANY_PREFIX,
        {"id": 2, "user": ADA, "name": "deploy", "expires_at": EXPIRY},
        admin=lambda e: e.form("/admin/tokens", token_name="deploy", expires_at="2099-01-01"),
        api=lambda e: e.call(
            "POST", "/api/tokens", {"name": "deploy", "expires_at": "2099-01-01T00:00:00Z"}
        ),
        cli=lambda e: e.run(
            "token", "create", "--user", ADA, "--name", "deploy", "--expires", "2099-01-01"
        ),
    ),
    Step(
        "token.revoked",
        ANY_PREFIX,
        {"id": 2, "user": ADA},
        admin=lambda e: e.form("/admin/tokens/2/revoke"),
        api=lambda e: e.call("POST", "/api/tokens/2/revoke"),
        cli=lambda e: e.run("token", "revoke", "2"),
    ),
    Step(
        "consent.created",
        "Marketing",
        {"language": "en"},
        admin=lambda e: e.form(
            "/admin/consents/new",
            code_name="Marketing",
            display_name="Marketing emails",
            language="en",
            short_text="<p>Emails</p>",
            full_text="<p>We send emails.</p>",
        ),
        api=lambda e: e.call(
            "POST",
            "/api/consents",
            {
                "code_name": "Marketing",
                "display_name": "Marketing emails",
                "language": "en",
                "short_text": "<p>Emails</p>",
                "full_text": "<p>We send emails.</p>",
            },
        ),
        cli=lambda e: e.run(
            "consent",
            "create",
            "Marketing",
            "--display-name",
            "Marketing emails",
            "--language",
            "en",
            "--short-text",
            "<p>Emails</p>",
            "--full-text",
            "<p>We send emails.</p>",
        ),
    ),
    Step(
        "consent.text_set",
        "Marketing",
        {"language": "de", "revision": 2},
        # The code name spelled in another case: the record names the consent as it is stored.
        admin=lambda e: e.form(
            "/admin/consents/marketing/texts",
            language="de",
            short_text="<p>E-Mails</p>",
            full_text="<p>Wir senden E-Mails.</p>",
        ),
        api=lambda e: e.call(
            "PUT",
            "/api/consents/marketing/texts/de",
            {"short_text": "<p>E-Mails</p>", "full_text": "<p>Wir senden E-Mails.</p>"},
        ),
        cli=lambda e: e.run(
            "consent",
            "set-text",
            "marketing",
            "--language",
            "de",
            "--short-text",
            "<p>E-Mails</p>",
            "--full-text",
            "<p>Wir senden E-Mails.</p>",
        ),
    ),
    Step(
        "consent.default_language_set",
        "Marketing",
        {"language": "de"},
        admin=lambda e: e.form("/admin/consents/Marketing/default-language", default_language="de"),
        api=lambda e: e.call("PATCH", "/api/consents/Marketing", {"default_language": "de"}),
        cli=lambda e: e.run("consent", "set-default-language", "Marketing", "de"),
    ),
    Step(
        "channel.created",
        "Web shop",
        {"guid": ANY_GUID, "required_consent": "Marketing"},
        admin=lambda e: e.form(
            "/admin/channels/new", name="Web shop", required_consent="Marketing"
        ),
        api=lambda e: e.call(
            "POST", "/api/channels", {"name": "Web shop", "required_consent": "Marketing"}
        ),
        cli=lambda e: e.run("channel", "create", "Web shop", "--require-consent", "Marketing"),
    ),
    Step(
        "channel.consent_gate_set",
        "Web shop",
        {"required_consent": None},
        admin=lambda e: e.form("/admin/channels/1/consent-gate", required_consent=""),
        api=lambda e: e.call("PATCH", "/api/channels/Web shop", {"required_consent": None}),
        cli=lambda e: e.run("channel", "set-consent-gate", "Web shop"),
    ),
    Step(
        "key.created",
        ANY_PREFIX,
        {
            "id": 1,
            "channel": "Web shop",
            "name": "site",
            "access": "tracking",
            "expires_at": EXPIRY,
        },
        admin=lambda e: e.form(
            "/admin/channels/1/keys", name="site", access="tracking", expires_at="2099-01-01"
        ),
        api=lambda e: e.call(
            "POST",
            "/api/channels/Web shop/keys",
            {"name": "site", "access": "tracking", "expires_at": "2099-01-01T00:00:00Z"},
        ),
        cli=lambda e: e.run(
            "apikey",
            "create",
            "--channel",
            "Web shop",
            "--access",
            "tracking",
            "--name",
            "site",
            "--expires",
            "2099-01-01",
        ),
    ),
    Step(
        "key.disabled",
        ANY_PREFIX,
        {"id": 1, "channel": "Web shop"},
        admin=lambda e: e.form("/admin/keys/1/disable"),
        api=lambda e: e.call("POST", "/api/keys/1/disable"),
        cli=lambda e: e.run("apikey", "disable", "1"),
    ),
    Step(
        "key.enabled",
        ANY_PREFIX,
        {"id": 1, "channel": "Web shop"},
        admin=lambda e: e.form("/admin/keys/1/enable"),
        api=lambda e: e.call("POST", "/api/keys/1/enable"),
        cli=lambda e: e.run("apikey", "enable", "1"),
    ),
    Step(
        "key.revoked",
        ANY_PREFIX,
        {"id": 1, "channel": "Web shop"},
        admin=lambda e: e.form("/admin/keys/1/revoke"),
        api=lambda e: e.call("POST", "/api/keys/1/revoke"),
        cli=lambda e: e.run("apikey", "revoke", "1"),
    ),
    Step(
        "cors.origin_added",
        ORIGIN,
        {"id": 1},
        admin=lambda e: e.form("/admin/cors", origin=ORIGIN),
        api=lambda e: e.call("POST", "/api/cors-origins", {"origin": ORIGIN}),
        cli=lambda e: e.run("cors", "add", ORIGIN),
    ),
    Step(
        "cors.origin_removed",
        ORIGIN,
        {"id": 1},
        admin=lambda e: e.form("/admin/cors/1/remove"),
        api=lambda e: e.call("DELETE", "/api/cors-origins/1"),
        cli=lambda e: e.run("cors", "remove", ORIGIN),
    ),
    Step(
        "activity_type.created",
        "webinar",
        {"display_name": "Webinar", "enabled": True},
        admin=lambda e: e.form(
            "/admin/activity-types", code_name="webinar", display_name="Webinar"
        ),
        api=lambda e: e.call(
            "POST", "/api/activity-types", {"code_name": "webinar", "display_name": "Webinar"}
        ),
        cli=lambda e: e.run("activity-type", "create", "webinar", "--display-name", "Webinar"),
    ),
    Step(
        "activity_type.disabled",
        "webinar",
        None,
        admin=lambda e: e.form("/admin/activity-types/webinar/disable"),
        api=lambda e: e.call("POST", "/api/activity-types/webinar/disable"),
        cli=lambda e: e.run("activity-type", "disable", "webinar"),
    ),
    Step(
        "activity_type.enabled",
        "webinar",
        None,
        admin=lambda e: e.form("/admin/activity-types/webinar/enable"),
        api=lambda e: e.call("POST", "/api/activity-types/webinar/enable"),
        cli=lambda e: e.run("activity-type", "enable", "webinar"),
    ),
    Step(
        "newsletter.created",
        "Weekly",
        {"guid": ANY_GUID, "sender": "news@example.com"},
        admin=lambda e: e.form(
            "/admin/newsletters/new",
            name="Weekly",
            sender_name="The Team",
            sender_email="news@example.com",
            base_url="https://news.example.com",
        ),
        api=lambda e: e.call(
            "POST",
            "/api/newsletters",
            {
                "name": "Weekly",
                "sender_name": "The Team",
                "sender_email": "news@example.com",
                "base_url": "https://news.example.com",
            },
        ),
        cli=lambda e: e.run(
            "newsletter",
            "create",
            "Weekly",
            "--sender-name",
            "The Team",
            "--sender-email",
            "news@example.com",
            "--base-url",
            "https://news.example.com",
        ),
    ),
    Step(
        "newsletter.updated",
        "Weekly",
        {"double_opt_in": False, "consent": "Marketing", "tracking_consent": "Marketing"},
        admin=lambda e: e.form(
            "/admin/newsletters/Weekly/settings",
            double_opt_in="no",
            consent="Marketing",
            tracking_consent="Marketing",
        ),
        api=lambda e: e.call(
            "PATCH",
            "/api/newsletters/Weekly",
            {"consent": "Marketing", "tracking_consent": "Marketing"},
        ),
        cli=lambda e: e.run(
            "newsletter",
            "update",
            "Weekly",
            "--consent",
            "Marketing",
            "--tracking-consent",
            "Marketing",
        ),
    ),
    Step(
        "subscriber.added",
        ANNA,
        {"newsletter": "Weekly"},
        admin=lambda e: e.form(
            "/admin/newsletters/Weekly/subscribers", email=ANNA, first_name="Anna"
        ),
        api=lambda e: e.call(
            "POST", "/api/newsletters/Weekly/subscribers", {"email": ANNA, "first_name": "Anna"}
        ),
        cli=lambda e: e.run(
            "subscriber", "add", ANNA, "--newsletter", "Weekly", "--first-name", "Anna"
        ),
    ),
    Step(
        "subscriber.imported",
        "Weekly",
        {
            "newsletter": "Weekly",
            "rows": 3,
            "added": 1,
            "already_subscribed": 1,
            "unsubscribed_not_added": 0,
            "bad_rows": 1,
        },
        admin=lambda e: e.upload("/admin/newsletters/Weekly/import", "people.csv", CSV),
        api=lambda e: e.call(
            "POST",
            "/api/newsletters/Weekly/subscribers/import",
            content=CSV,
            headers={"Content-Type": "text/csv"},
        ),
        cli=lambda e: e.run(
            "subscriber", "import", e.file("people.csv", CSV), "--newsletter", "Weekly"
        ),
    ),
    Step(
        "issue.created",
        ANY_GUID,
        {"newsletter": "Weekly", "subject": "Spring news"},
        admin=lambda e: e.form(
            "/admin/issues/new", newsletter="Weekly", subject="Spring news", html_body=HTML
        ),
        api=lambda e: e.call(
            "POST",
            "/api/issues",
            {"newsletter": "Weekly", "subject": "Spring news", "html_body": HTML},
        ),
        cli=lambda e: e.run(
            "issue",
            "create",
            "--newsletter",
            "Weekly",
            "--subject",
            "Spring news",
            "--html-file",
            e.file("issue.html", HTML),
        ),
    ),
    Step(
        "issue.send_started",
        ANY_GUID,
        {"newsletter": "Weekly", "subject": "Spring news"},
        admin=_send_from_admin,
        api=_send_from_api,
        cli=lambda e: e.run("issue", "send", e.issue_guid()),
    ),
    Step(
        "issue.engagement_exported",
        ANY_GUID,
        {"people": 0, "include_machines": False},
        admin=lambda e: e.form(f"/admin/issues/{e.issue_guid()}/engagement/export"),
        api=_export_engagement_from_api,
        cli=lambda e: e.run("issue", "engagement", e.issue_guid(), "--csv"),
    ),
    Step(
        "subscriber.unsubscribed",
        BOB,
        {"newsletter": "Weekly"},
        admin=lambda e: e.form("/admin/newsletters/Weekly/unsubscribe", email=BOB),
        api=lambda e: e.call("POST", f"/api/newsletters/Weekly/subscribers/{BOB}/unsubscribe"),
        cli=None,
        direct=_unsubscribe_bob,
    ),
    # Contact groups. h-admin-groups fills in admin= (`direct` stays, for an entry point that
    # lacks the action); docs/admin.md already lists all three.
    Step(
        "group.created",
        "Readers",
        {"guid": ANY_GUID, "kind": "dynamic", "members": 1},
        admin=lambda e: e.form(
            "/admin/groups/new",
            name="Readers",
            kind="dynamic",
            conditions=json.dumps(FIRST_NAME_ANNA),
        ),
        direct=_create_group,
        api=lambda e: e.call(
            "POST", "/api/groups", {"name": "Readers", "conditions": FIRST_NAME_ANNA}
        ),
        cli=lambda e: e.run(
            "group",
            "create",
            "Readers",
            "--conditions-file",
            e.file("anna.json", json.dumps(FIRST_NAME_ANNA)),
        ),
    ),
    Step(
        "group.updated",
        "First names",
        {"changed": ["conditions", "name"], "old_name": "Readers", "entered": 1, "left": 0},
        admin=lambda e: e.form(
            "/admin/groups/Readers/edit",
            name="First names",
            description="",
            conditions=json.dumps(FIRST_NAME_ANNA_OR_BOB),
        ),
        direct=_update_group,
        api=lambda e: e.call(
            "PATCH",
            "/api/groups/Readers",
            {"name": "First names", "conditions": FIRST_NAME_ANNA_OR_BOB},
        ),
        cli=lambda e: e.run(
            "group",
            "update",
            "Readers",
            "--name",
            "First names",
            "--conditions-file",
            e.file("anna-or-bob.json", json.dumps(FIRST_NAME_ANNA_OR_BOB)),
        ),
    ),
    Step(
        "group.rebuilt",
        "First names",
        {"entered": 0, "left": 0, "members": 2},
        admin=lambda e: e.form("/admin/groups/First%20names/rebuild"),
        direct=_rebuild_group,
        api=lambda e: e.call("POST", "/api/groups/First names/rebuild"),
        cli=lambda e: e.run("group", "rebuild", "First names"),
    ),
    Step(
        "group.exported",
        "First names",
        {"members": 2},
        admin=lambda e: e.form("/admin/groups/First%20names/export"),
        direct=_export_group,
        api=_export_group_from_api,
        cli=lambda e: e.run("group", "members", "First names", "--csv"),
    ),
    Step(
        "issue.group_set",
        ANY_GUID,
        {"group": "First names"},
        setup=_draft_issue,
        admin=lambda e: e.form(f"/admin/issues/{_draft_guid(e)}/group", group="First names"),
        api=lambda e: e.call("PATCH", f"/api/issues/{_draft_guid(e)}", {"group": "First names"}),
        cli=lambda e: e.run("issue", "set-group", _draft_guid(e), "First names"),
    ),
    # Scheduled sends and test sends (email/schedule.py, email/testsend.py), on the draft.
    Step(
        "issue.scheduled",
        ANY_GUID,
        {"at": SCHEDULED_AT},
        # The admin's field is in the browser's time zone (Paris: UTC+1 in December).
        admin=lambda e: e.form(
            f"/admin/issues/{_draft_guid(e)}/schedule",
            at=f"{NEXT_YEAR}-12-24T09:00",
            timezone="Europe/Paris",
        ),
        api=lambda e: e.call(
            "POST",
            f"/api/issues/{_draft_guid(e)}/schedule",
            {"at": f"{NEXT_YEAR}-12-24T09:00:00+01:00"},
        ),
        cli=lambda e: e.run("issue", "schedule", _draft_guid(e), "--at", SCHEDULED_AT),
    ),
    Step(
        "issue.schedule_cancelled",
        ANY_GUID,
        {"at": SCHEDULED_AT},
        admin=lambda e: e.form(f"/admin/issues/{_draft_guid(e)}/schedule/cancel"),
        api=lambda e: e.call("DELETE", f"/api/issues/{_draft_guid(e)}/schedule"),
        cli=lambda e: e.run("issue", "unschedule", _draft_guid(e)),
    ),
    Step(
        "issue.test_sent",
        ANY_GUID,
        {"to": [ANNA]},
        admin=lambda e: e.form(f"/admin/issues/{_draft_guid(e)}/test", to=ANNA),
        api=lambda e: e.call("POST", f"/api/issues/{_draft_guid(e)}/test", {"to": [ANNA]}),
        cli=lambda e: e.run("issue", "test-send", _draft_guid(e), "--to", ANNA),
    ),
    Step(
        "issue.schedule_confirmed",
        ANY_GUID,
        {"at": MISSED_AT.isoformat()},
        setup=_miss_the_schedule,
        admin=_confirm_from_admin,
        api=_confirm_from_api,
        cli=lambda e: e.run("issue", "confirm-schedule", _draft_guid(e)),
    ),
    Step(
        "group.members_added",
        "VIP",
        {"added": 2, "already_members": 0, "unknown": 1},
        setup=_create_static_group,
        admin=lambda e: e.form(
            "/admin/groups/VIP/members", contacts=f"{ANNA}\n{BOB}\nnobody@example.com"
        ),
        direct=_add_to_group,
        api=lambda e: e.call(
            "POST", "/api/groups/VIP/members", {"contacts": [ANNA, BOB, "nobody@example.com"]}
        ),
        cli=lambda e: e.run("group", "add", "VIP", ANNA, BOB, "nobody@example.com"),
    ),
    Step(
        "group.members_removed",
        "VIP",
        {"removed": 1, "not_members": 0, "unknown": 0},
        admin=lambda e: e.form("/admin/groups/VIP/members/remove", contacts=BOB),
        direct=_remove_from_group,
        api=lambda e: e.call("DELETE", "/api/groups/VIP/members", {"contacts": [BOB]}),
        cli=lambda e: e.run("group", "remove", "VIP", BOB),
    ),
    Step(
        "group.deleted",
        "VIP",
        {"guid": ANY_GUID, "members": 1},
        admin=lambda e: e.form("/admin/groups/VIP/delete"),
        direct=_delete_group,
        api=lambda e: e.call("DELETE", "/api/groups/VIP"),
        cli=lambda e: e.run("group", "delete", "VIP"),
    ),
    # The suppression list (h-suppress). Lifting lifts an automatic suppression, made by the
    # setup, so that its details (reason, source) are the same from every entry point.
    Step(
        "suppression.added",
        BLOCKED,
        {"reason": "manual", "evidence": EVIDENCE},
        admin=lambda e: e.form("/admin/suppressions", email=BLOCKED, evidence=EVIDENCE),
        api=lambda e: e.call("POST", "/api/suppressions", {"email": BLOCKED, "evidence": EVIDENCE}),
        cli=lambda e: e.run("suppression", "add", BLOCKED, "--evidence", EVIDENCE),
    ),
    Step(
        "suppression.lifted",
        BOUNCED,
        {"reason": "hard_bounce", "source": "smtp"},
        setup=_bounce,
        admin=lambda e: e.form("/admin/suppressions/lift", email=BOUNCED),
        api=lambda e: e.call("DELETE", f"/api/suppressions/{BOUNCED}"),
        cli=lambda e: e.run("suppression", "remove", BOUNCED),
    ),
    Step(
        "suppression.list_exported",
        "",
        {"suppressions": 1, "search": "blocked"},
        admin=lambda e: e.form("/admin/suppressions/export", q="blocked", reason=""),
        api=_export_suppressions_from_api,
        cli=lambda e: e.run("suppression", "list", "--search", "blocked", "--csv"),
    ),
    Step(
        "contact.exported",
        ANY_GUID,
        None,
        admin=lambda e: e.form(f"/admin/contacts/{e.contact_of(ANNA)}/export"),
        api=lambda e: e.call("GET", f"/api/contacts/{e.contact_of(ANNA)}/export"),
        cli=lambda e: e.run(
            "contact", "export", e.contact_of(ANNA), "--output", str(e.tmp_path / "anna.json")
        ),
    ),
    Step(
        "contact.list_exported",
        "",
        {"contacts": 1, "newsletter": "Weekly", "q": "anna"},
        admin=lambda e: e.form("/admin/contacts/export", q="anna", newsletter="Weekly"),
        api=_export_list_from_api,
        cli=lambda e: e.run("contact", "list", "anna", "--newsletter", "Weekly", "--csv"),
    ),
    Step(
        "contact.erased",
        ANY_GUID,
        None,
        admin=lambda e: e.form(
            f"/admin/contacts/{e.contact_of(ANNA)}/erase", confirm=e.contact_of(ANNA)
        ),
        api=lambda e: e.call("DELETE", f"/api/contacts/{e.contact_of(ANNA)}"),
        cli=lambda e: e.run("contact", "erase", e.contact_of(ANNA), "--yes"),
    ),
]

GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PREFIX = re.compile(r"ch[kt]_[A-Za-z0-9_-]{8}")


def _shape(value: Any) -> Any:
    """Random values (GUIDs, key and token prefixes) replaced by their shape."""
    if isinstance(value, str):
        if GUID.fullmatch(value):
            return ANY_GUID
        return ANY_PREFIX if PREFIX.fullmatch(value) else value
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    return value


def _events_after(database: Database, after_id: int) -> list[tuple[str, str, str, Any]]:
    with database.read() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.id > after_id).order_by(AuditEvent.id)
        ).all()
        return [
            (
                e.actor,
                e.action,
                _shape(e.subject),
                _shape(json.loads(e.details)) if e.details else None,
            )
            for e in events
        ]


def _last_event_id(database: Database) -> int:
    with database.read() as session:
        return session.scalar(select(func.max(AuditEvent.id))) or 0


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def settings(database_url: str, smtp: SmtpServer) -> Settings:
    return smtp_settings(database_url, smtp.port)


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_every_action_is_recorded_once_with_the_same_details(
    entry_point: str,
    database: Database,
    database_url: str,
    smtp: SmtpServer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    with database.write() as session:
        ada = users.create_user(session, ADA, PASSWORD, "Ada")
        token = users.create_token(session, ada, "tests").plaintext  # token 1, in every run
    cli = cli_on(
        database_url,
        tmp_path,
        COLUMNS="200",
        CONTACTHUB_SMTP_PORT=str(smtp.port),
        CONTACTHUB_SECRET_KEY="test-secret",
    )
    entry = Entry(entry_point, database, cli, tmp_path)
    if entry_point != "cli":
        entry.client = request.getfixturevalue("client")
        entry.headers = {"Authorization": f"Bearer {token}"}
        if entry_point == "admin":
            entry.csrf = sign_in(entry.client, ADA, PASSWORD)

    problems = []
    for step in STEPS:
        if step.setup is not None:
            step.setup(entry)
        before = _last_event_id(database)
        perform = getattr(step, entry_point)
        if perform is None:
            assert step.direct is not None, f"{step.action}: no way to do it without {entry_point}"
            step.direct(entry)
            expected = []
        else:
            perform(entry)
            expected = [(entry.actor, step.action, step.subject, step.details)]
        recorded = _events_after(database, before)
        if recorded != expected:
            problems.append(f"{step.action}: expected {expected}, recorded {recorded}")
    assert not problems, "\n".join(problems)


def test_the_table_has_every_action() -> None:
    performed = [step.action for step in STEPS]
    assert len(performed) == len(set(performed)), "an action is in the table twice"
    assert set(performed) | set(ELSEWHERE) == audit.ACTIONS
    assert not set(performed) & set(ELSEWHERE)


def documented_actions() -> dict[str, set[str]]:
    """action -> entry points, from the table of docs/admin.md's "Audit log" section."""
    text = (ROOT / "docs" / "admin.md").read_text(encoding="utf-8")
    section = text.split("\n## Audit log\n", 1)[1].split("\n## ", 1)[0]
    actions: dict[str, set[str]] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        for action in re.findall(r"`([a-z_]+\.[a-z_]+)`", cells[0]):
            assert action not in actions, f"{action} is listed twice"
            actions[action] = {name.strip() for name in cells[-1].split(",")}
    return actions


def test_the_docs_list_every_action_and_who_offers_it() -> None:
    documented = documented_actions()
    assert set(documented) == audit.ACTIONS
    for step in STEPS:
        offered = {DOCUMENTED_NAMES[e] for e in ENTRY_POINTS if getattr(step, e) is not None}
        assert documented[step.action] == offered, step.action


def _records_audit_events(path: Path) -> bool:
    """Whether a module calls `audit.record` or imports `record` from the audit service."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "record"
            and isinstance(node.value, ast.Name)
            and node.value.id == "audit"
        ):
            return True
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "contacthub.audit.service"
            and any(alias.name == "record" for alias in node.names)
        ):
            return True
    return False


def test_entry_points_leave_recording_to_the_services() -> None:
    handlers = [
        path
        for area in ("admin", "api", "cli")
        for path in sorted((ROOT / "contacthub" / area).glob("*.py"))
    ]
    assert handlers
    assert [str(p.relative_to(ROOT)) for p in handlers if _records_audit_events(p)] == []


def test_an_unknown_action_is_refused(database: Database) -> None:
    with database.write() as session, pytest.raises(ValueError, match="Unknown audit action"):
        audit.record(session, "cli", "channel.deleted", "Web shop")
