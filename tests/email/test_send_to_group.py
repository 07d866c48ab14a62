"""Issues sent to a contact group, through a real SMTP server, on SQLite and PostgreSQL.

Only the newsletter's subscribed subscribers whose contact is a member of the group get the
issue; membership is read when each run starts, so a later run reaches newcomers and skips the
unsent deliveries of those who left. The service, the management API and the CLI all offer it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub.consents import service as consents
from contacthub.contacts import service as contacts
from contacthub.email import overview, service
from contacthub.errors import Conflict, NotFound
from contacthub.groups import membership
from contacthub.groups import service as groups
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent, Contact
from contacthub.users import service as users
from tests import factories
from tests.cli.conftest import Cli, cli_on
from tests.email.smtp_server import SmtpServer, smtp_server
from tests.email.test_sending import (
    HTML,
    NEWS,
    SUBJECT,
    add,
    deliveries,
    make_deferred_due,
    make_issue,
    send,
)
from tests.email.ui_support import smtp_settings, wait_for_run

ANNA = "anna@example.com"  # member, subscribed
BOB = "bob@example.com"  # member, unsubscribed
CARL = "carl@example.com"  # subscribed, not a member
DORA = "dora@example.com"  # member, never subscribed
ERIN = "erin@example.com"  # joins later
VIP = "VIP"
ACTOR = "ada@example.com"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def settings(database_url: str, smtp: SmtpServer) -> Settings:
    """The hub's settings, sending through the loopback SMTP server."""
    return smtp_settings(database_url, smtp.port)


# -- groups ---------------------------------------------------------------------------------------
# Static groups, through the groups service: sending only reads their `group_members` rows.


def make_group(database: Database, name: str, *members: str) -> None:
    with database.write() as session:
        groups.create_group(session, name, kind="static")
    if members:
        join(database, name, *members)


def join(database: Database, name: str, *emails: str) -> None:
    with database.write() as session:
        known = set(session.scalars(select(Contact.email).where(Contact.email.in_(emails))))
        for email in emails:
            if email not in known:  # a contact who never subscribed
                contacts.create_contact(session, email=email)
        report = groups.add_members(session, name, emails)
        assert report.added == len(emails), report


def leave(database: Database, name: str, *emails: str) -> None:
    with database.write() as session:
        assert groups.remove_members(session, name, emails).removed == len(emails)


def vip_issue(database: Database) -> str:
    """Weekly with Anna, Bob (unsubscribed) and Carl; VIP = Anna, Bob, Dora; a draft for VIP."""
    issue = make_issue(database, (ANNA, "Anna"), (BOB, "Bob"), (CARL, "Carl"))
    with database.write() as session:
        service.unsubscribe(session, service.get_subscriber(session, NEWS, BOB))
    make_group(database, VIP, ANNA, BOB, DORA)
    with database.write() as session:
        service.set_issue_group(session, service.get_issue(session, issue), VIP)
    return issue


# -- the send -------------------------------------------------------------------------------------


def test_only_the_subscribed_members_of_the_group_receive_it(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    issue = vip_issue(database)

    report = send(database, settings, issue, smtp.port)

    assert smtp.recipients() == [ANNA]
    [message] = smtp.messages_to(ANNA)
    assert message["Subject"] == "News for Anna"
    assert deliveries(database, issue) == {ANNA: ("sent", 1, None, True)}
    assert (report.status, report.group, report.sent, report.new_deliveries) == (
        "sent",
        VIP,
        1,
        1,
    )
    # Carl is subscribed but not in VIP; Bob is in VIP but unsubscribed (not counted here).
    assert report.not_members == 1
    assert report.as_dict()["group"] == VIP
    assert report.as_dict()["not_members"] == 1


def test_a_later_run_reaches_newcomers_and_skips_those_who_left_the_group(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    issue = make_issue(database, (ANNA, "Anna"), (BOB, "Bob"), (CARL, "Carl"))
    make_group(database, VIP, ANNA, BOB)
    with database.write() as session:
        service.set_issue_group(session, service.get_issue(session, issue), VIP)
    smtp.refuse[BOB] = "451 4.3.0 Try again later"  # Bob's copy waits for the next run

    first = send(database, settings, issue, smtp.port)
    assert (first.sent, first.deferred, first.not_members) == (1, 1, 1)

    # Before the next run: Bob leaves the group, Erin subscribes and joins it, Carl joins it.
    del smtp.refuse[BOB]
    leave(database, VIP, BOB)
    add(database, ERIN, "Erin")
    join(database, VIP, ERIN, CARL)

    second = send(database, settings, issue, smtp.port)

    assert sorted(smtp.recipients()) == [ANNA, CARL, ERIN]
    assert (second.new_deliveries, second.sent, second.skipped_left_group) == (2, 2, 1)
    assert second.not_members == 1  # Bob, left out now that he is not a member
    assert deliveries(database, issue)[BOB] == (
        "skipped",
        1,
        "left the group before sending",
        False,
    )
    assert second.status == "sent"

    # Bob comes back before anyone sends it again: the next run sends him his copy.
    join(database, VIP, BOB)
    third = send(database, settings, issue, smtp.port)
    assert (third.sent, third.skipped_left_group, third.new_deliveries) == (1, 0, 0)
    assert len(smtp.messages_to(BOB)) == 1
    assert sorted(smtp.recipients()) == sorted([ANNA, BOB, CARL, ERIN])


def test_a_member_who_unsubscribes_is_skipped_as_unsubscribed(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    issue = make_issue(database, (ANNA, "Anna"), (CARL, "Carl"))
    make_group(database, VIP, ANNA, CARL)
    with database.write() as session:
        service.set_issue_group(session, service.get_issue(session, issue), VIP)
    smtp.refuse[CARL] = "451 4.3.0 Try again later"
    send(database, settings, issue, smtp.port)
    with database.write() as session:
        service.unsubscribe(session, service.get_subscriber(session, NEWS, CARL))
    del smtp.refuse[CARL]

    report = send(database, settings, issue, smtp.port)

    assert (report.skipped_unsubscribed, report.skipped_left_group, report.sent) == (1, 0, 0)
    assert deliveries(database, issue)[CARL][0:3] == ("skipped", 1, "unsubscribed before sending")
    assert smtp.recipients() == [ANNA]


def test_an_empty_group_sends_nothing_and_says_why(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    issue = make_issue(database, (ANNA, "Anna"), (CARL, "Carl"))
    make_group(database, VIP)
    with database.write() as session:
        service.set_issue_group(session, service.get_issue(session, issue), VIP)

    report = send(database, settings, issue, smtp.port)

    assert smtp.recipients() == []
    assert (report.to_send, report.not_members, report.status) == (0, 2, "sent")


def test_an_issue_for_every_subscriber_reports_no_group(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    issue = make_issue(database, (ANNA, "Anna"), (CARL, "Carl"))
    make_group(database, VIP, ANNA)  # exists, but the issue does not target it

    report = send(database, settings, issue, smtp.port)

    assert sorted(smtp.recipients()) == [ANNA, CARL]
    assert (report.group, report.not_members, report.skipped_left_group) == (None, 0, 0)


# -- choosing the group ---------------------------------------------------------------------------


def test_the_group_is_chosen_at_creation_and_changed_on_a_draft_only(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    make_issue(database, (ANNA, "Anna"))
    make_group(database, VIP, ANNA)
    with database.write() as session:
        issue = service.create_issue(session, NEWS, SUBJECT, HTML, group=VIP, actor=ACTOR)
        assert service.describe_issue(session, issue).group_name == VIP
        guid = str(issue.guid)
    with database.write() as session:
        issue = service.set_issue_group(
            session, service.get_issue(session, guid), None, actor=ACTOR
        )
        assert issue.group_id is None
        service.set_issue_group(session, issue, f"  {VIP} ", actor=ACTOR)
    with database.read() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.subject == guid).order_by(AuditEvent.id)
        ).all()
        assert [(e.action, json.loads(e.details or "{}")) for e in events] == [
            ("issue.created", {"newsletter": NEWS, "subject": SUBJECT, "group": VIP}),
            ("issue.group_set", {"group": None}),
            ("issue.group_set", {"group": VIP}),
        ]

    with database.write() as session, pytest.raises(NotFound) as unknown:
        service.set_issue_group(session, service.get_issue(session, guid), "Nobody")
    assert (unknown.value.code, unknown.value.field) == ("unknown_group", "group")
    with database.write() as session, pytest.raises(NotFound) as unknown:
        service.create_issue(session, NEWS, SUBJECT, HTML, group="Nobody")
    assert (unknown.value.code, unknown.value.field) == ("unknown_group", "group")

    send(database, settings, guid, smtp.port)
    with database.write() as session, pytest.raises(Conflict) as refused:
        service.set_issue_group(session, service.get_issue(session, guid), None, actor=ACTOR)
    assert refused.value.code == "issue_not_draft"
    with database.read() as session:
        assert service.group_name_of(session, service.get_issue(session, guid)) == VIP


# -- the management API ---------------------------------------------------------------------------


@pytest.fixture
def api_headers(database: Database) -> dict[str, str]:
    with database.write() as session:
        user = users.create_user(session, ACTOR, "a long enough password")
        token = users.create_token(session, user, "tests").plaintext
    return {"Authorization": f"Bearer {token}"}


def test_the_api_creates_changes_and_sends_an_issue_for_a_group(
    client: TestClient,
    api_headers: dict[str, str],
    database: Database,
    smtp: SmtpServer,
) -> None:
    vip_issue(database)  # the newsletter, its subscribers and the group
    body = {"newsletter": NEWS, "subject": SUBJECT, "html_body": HTML, "group": VIP}
    created = client.post("/api/issues", json=body, headers=api_headers)
    assert created.status_code == 201, created.text
    issue = created.json()
    assert (issue["group"], issue["subscribed"], issue["audience"], issue["not_members"]) == (
        VIP,
        2,
        1,
        1,
    )
    path = f"/api/issues/{issue['guid']}"

    answer = client.patch(path, json={"group": None}, headers=api_headers)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["group"], answer.json()["audience"]) == (None, 2)
    answer = client.patch(path, json={"group": "Nobody"}, headers=api_headers)
    assert (answer.status_code, answer.json()["code"], answer.json()["field"]) == (
        404,
        "unknown_group",
        "group",
    )
    answer = client.patch(path, json={}, headers=api_headers)
    assert answer.status_code == 400, answer.text
    answer = client.patch(path, json={"group": VIP}, headers=api_headers)
    assert answer.json()["group"] == VIP

    assert client.post(f"{path}/send", json={}, headers=api_headers).status_code == 202
    wait_for_run(client, issue["guid"])
    sent = client.get(path, headers=api_headers).json()
    assert smtp.recipients() == [ANNA]
    assert (sent["status"], sent["deliveries"]["sent"], sent["group"]) == ("sent", 1, VIP)
    assert (sent["last_run"]["sent"], sent["last_run"]["not_members"]) == (1, 1)
    answer = client.patch(path, json={"group": None}, headers=api_headers)
    assert (answer.status_code, answer.json()["code"]) == (409, "issue_not_draft")

    body["group"] = "Nobody"
    answer = client.post("/api/issues", json=body, headers=api_headers)
    assert (answer.status_code, answer.json()["code"]) == (404, "unknown_group")


def sent_then_group_deleted(database: Database, settings: Settings, port: int) -> str:
    """A VIP issue sent to Anna, VIP deleted since, and Erin subscribed since."""
    issue = vip_issue(database)
    assert send(database, settings, issue, port).status == "sent"
    with database.write() as session:
        groups.delete_group(session, VIP)
    add(database, ERIN, "Erin")
    return issue


def test_the_api_refuses_to_send_an_issue_whose_group_was_deleted(
    client: TestClient,
    api_headers: dict[str, str],
    database: Database,
    settings: Settings,
    smtp: SmtpServer,
) -> None:
    issue = sent_then_group_deleted(database, settings, smtp.port)
    path = f"/api/issues/{issue}"

    answer = client.post(f"{path}/send", json={}, headers=api_headers)

    assert (answer.status_code, answer.json()["code"]) == (409, "group_deleted"), answer.text
    assert "'VIP'" in answer.json()["error"]
    shown = client.get(path, headers=api_headers).json()
    assert (shown["group"], shown["group_deleted"]) == (VIP, True)
    assert smtp.recipients() == [ANNA]


# -- the command line -----------------------------------------------------------------------------


def sending_cli(database_url: str, tmp_path: Path, smtp: SmtpServer) -> Cli:
    """The command line, sending through the loopback SMTP server."""
    return cli_on(
        database_url,
        tmp_path,
        COLUMNS="200",
        CONTACTHUB_SMTP_PORT=str(smtp.port),
        CONTACTHUB_SECRET_KEY="test-secret",
    )


def test_the_cli_creates_changes_and_sends_an_issue_for_a_group(
    database: Database, database_url: str, smtp: SmtpServer, tmp_path: Path
) -> None:
    vip_issue(database)
    cli = sending_cli(database_url, tmp_path, smtp)
    html = tmp_path / "issue.html"
    html.write_text(HTML, encoding="utf-8")
    args = ("issue", "create", "--newsletter", NEWS, "--subject", "Hi", "--html-file", str(html))

    created = cli.json(*args, "--group", VIP)
    assert created["group"] == VIP
    guid = created["guid"]
    assert cli.json("issue", "set-group", guid)["group"] is None
    assert cli.json("issue", "set-group", guid, VIP)["group"] == VIP
    assert "No group named 'Nobody'" in cli.fails("issue", "set-group", guid, "Nobody")
    assert "No group named 'Nobody'" in cli.fails(*args, "--group", "Nobody")

    report = cli.json("issue", "send", guid)
    assert (report["group"], report["sent"], report["not_members"]) == (VIP, 1, 1)
    assert smtp.recipients() == [ANNA]
    shown = cli.ok("issue", "list", "--newsletter", NEWS)
    assert VIP in shown
    assert "Only a draft issue may change its group" in cli.fails("issue", "set-group", guid)


def test_the_cli_refuses_to_send_an_issue_whose_group_was_deleted(
    database: Database, settings: Settings, database_url: str, smtp: SmtpServer, tmp_path: Path
) -> None:
    issue = sent_then_group_deleted(database, settings, smtp.port)
    cli = sending_cli(database_url, tmp_path, smtp)

    refused = cli.fails("issue", "send", issue)

    assert "'VIP'" in refused
    assert "deleted" in refused
    assert smtp.recipients() == [ANNA]
    [listed] = cli.json("issue", "list", "--newsletter", NEWS)
    assert (listed["group"], listed["group_deleted"]) == (VIP, True)


# -- deleting the group ---------------------------------------------------------------------------


def test_a_group_is_not_deleted_while_an_issue_not_sent_yet_targets_it(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    issue = make_issue(database, (ANNA, "Anna"), (CARL, "Carl"))
    make_group(database, VIP, ANNA, CARL)
    with database.write() as session:
        service.set_issue_group(session, service.get_issue(session, issue), VIP)

    def refused() -> Conflict:
        with database.write() as session, pytest.raises(Conflict) as error:
            groups.delete_group(session, VIP)
        assert error.value.code == "group_in_use"
        assert issue in error.value.message
        return error.value

    assert "(draft," in refused().message
    smtp.refuse[CARL] = "451 4.3.0 Try again later"  # the issue stays `sending`
    send(database, settings, issue, smtp.port)
    assert "(sending," in refused().message

    del smtp.refuse[CARL]
    make_deferred_due(database, issue)
    assert send(database, settings, issue, smtp.port).status == "sent"
    with database.write() as session:
        groups.delete_group(session, VIP)
    with database.read() as session:
        found = service.get_issue(session, issue)
        assert (found.group_id, service.group_name_of(session, found)) == (None, None)
        # The issue knows it lost its group, and says which.
        assert service.deleted_group_of(found) == VIP
        assert service.describe_issue(session, found).deleted_group == VIP
        assert overview.send_progress(session, found).deleted_group == VIP


def test_an_issue_whose_group_was_deleted_is_never_sent_again(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    issue = vip_issue(database)
    with database.write() as session:  # renamed after it was chosen: the last name is kept
        groups.update_group(session, VIP, new_name="Gold")
    assert send(database, settings, issue, smtp.port).status == "sent"
    with database.write() as session:
        groups.delete_group(session, "Gold")
    add(database, ERIN, "Erin")  # a new subscriber, not in any group

    with pytest.raises(Conflict) as error:
        send(database, settings, issue, smtp.port)

    assert error.value.code == "group_deleted"
    assert "'Gold'" in error.value.message
    assert smtp.recipients() == [ANNA]  # nobody else: not Carl, not Erin
    assert set(deliveries(database, issue)) == {ANNA}


def test_the_preview_shows_the_issue_as_a_member_receives_it(database: Database) -> None:
    issue = make_issue(database, (CARL, "Carl"), (ANNA, "Anna"))
    make_group(database, VIP, ANNA)
    with database.write() as session:
        found = service.get_issue(session, issue)
        assert overview.preview_issue(session, found).recipient.email == CARL
        service.set_issue_group(session, found, VIP)
        assert overview.preview_issue(session, found).recipient.email == ANNA


# -- a dynamic group as the send's gate -----------------------------------------------------------


def agree(database: Database, email: str, *, agree: bool = True) -> None:
    with database.write() as session:
        guid = session.scalars(select(Contact.guid).where(Contact.email == email)).one()
        consents.record_agreement(session, str(guid), "OffersConsent", agree=agree)


def test_a_dynamic_group_gates_the_send_as_the_live_job_keeps_it(
    database: Database, settings: Settings, smtp: SmtpServer
) -> None:
    """Agreed to the offers consent: the group follows agreements through the live job, and
    each run sends to whoever passes the gate when it starts."""
    issue = make_issue(database, (ANNA, "Anna"), (CARL, "Carl"))
    factories.consent(database, "OffersConsent")
    agree(database, ANNA)
    with database.write() as session:
        groups.create_group(
            session, "Offers", conditions={"consent": "OffersConsent", "state": "agreed"}
        )
        service.set_issue_group(session, service.get_issue(session, issue), "Offers")

    first = send(database, settings, issue, smtp.port)
    assert (smtp.recipients(), first.group, first.not_members) == ([ANNA], "Offers", 1)

    agree(database, CARL)
    assert send(database, settings, issue, smtp.port).sent == 0  # the job has not run yet
    membership.refresh(database)
    second = send(database, settings, issue, smtp.port)
    assert (second.sent, second.not_members) == (1, 0)
    assert smtp.recipients() == [ANNA, CARL]
