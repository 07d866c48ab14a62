"""The admin's issue pages choose the group an issue is sent to: compose, change a draft's,
and refuse a change once sending has started (on SQLite and PostgreSQL)."""

from __future__ import annotations

import html
import re
from typing import Any

from starlette.testclient import TestClient

from contacthub.contacts import service as contacts
from contacthub.email import service
from contacthub.groups import service as groups
from contacthub.storage.database import Database
from tests.admin.conftest import EMAIL
from tests.admin.reading import audit_actions, field_error

HTML = '<p>Hello {{ first_name | "there" }}, <a href="https://shop.example.com/">shop</a></p>'
ANNA, CARL = "anna@example.com", "carl@example.com"


def post(admin: TestClient, path: str, **data: str) -> Any:
    return admin.post(path, data={**data, "csrf_token": admin.csrf}, follow_redirects=False)  # type: ignore[attr-defined]


def weekly_and_vip(database: Database) -> None:
    """Weekly with Anna and Carl; VIP holds Anna and Dora (who never subscribed)."""
    with database.write() as session:
        service.create_newsletter(
            session, "Weekly", "The Team", "news@example.com", "https://news.example.com"
        )
        service.add_subscriber(session, "Weekly", ANNA, first_name="Anna")
        service.add_subscriber(session, "Weekly", CARL, first_name="Carl")
        contacts.create_contact(session, email="dora@example.com")
        groups.create_group(session, "VIP", kind="static")
        groups.add_members(session, "VIP", [ANNA, "dora@example.com"])


def text_of(page: str) -> str:
    """The page's text, tags left out, on one line."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_compose_for_a_group_then_change_the_draft(admin: TestClient, database: Database) -> None:
    weekly_and_vip(database)
    form = admin.get("/admin/issues/new?newsletter=Weekly&group=VIP").text
    assert '<option value="">All subscribers</option>' in form
    assert '<option value="VIP" selected>VIP (2 contacts)</option>' in form

    answer = post(
        admin, "/admin/issues/new", newsletter="Weekly", group="VIP", subject="Hi", html_body=HTML
    )
    assert answer.status_code == 303, answer.text
    path = answer.headers["location"]
    guid = path.rsplit("/", 1)[1]
    page = text_of(admin.get(path).text)
    assert "Sent to Members of VIP" in page
    assert "Send to 1 member of VIP" in page
    assert "1 other subscribers are left out" in page

    assert post(admin, f"{path}/group", group="").status_code == 303
    page = text_of(admin.get(path).text)
    assert "Sent to All subscribers" in page
    assert "Send to 2 subscribers" in page
    assert post(admin, f"{path}/group", group="VIP").status_code == 303
    assert [a for a in audit_actions(database) if a[1].startswith("issue.")] == [
        (EMAIL, "issue.created", guid),
        (EMAIL, "issue.group_set", guid),
        (EMAIL, "issue.group_set", guid),
    ]

    unknown = post(admin, f"{path}/group", group="Nobody")
    assert unknown.status_code == 404
    assert "No group named &#39;Nobody&#39;" in unknown.text

    with database.write() as session:
        service.get_issue(session, guid).status = "sending"
    refused = post(admin, f"{path}/group", group="")
    assert refused.status_code == 409
    assert "Only a draft issue may change its group" in refused.text
    page = admin.get(path).text
    assert f'action="{path}/group"' not in page


def test_an_unknown_group_is_shown_next_to_the_field(admin: TestClient, database: Database) -> None:
    weekly_and_vip(database)
    answer = post(
        admin, "/admin/issues/new", newsletter="Weekly", group="Gone", subject="Hi", html_body=HTML
    )
    assert answer.status_code == 404
    assert field_error(answer.text, "group") == "No group named 'Gone'."
    with database.read() as session:
        assert service.list_issues(session, "Weekly") == []


def test_an_issue_whose_group_was_deleted_says_so_and_cannot_be_sent(
    admin: TestClient, database: Database
) -> None:
    weekly_and_vip(database)
    with database.write() as session:
        issue = service.create_issue(session, "Weekly", "Hi", HTML, group="VIP")
        issue.status = "sent"  # as a finished send leaves it: the group may be deleted now
        guid = str(issue.guid)
    with database.write() as session:
        groups.delete_group(session, "VIP")
    path = f"/admin/issues/{guid}"

    page = text_of(admin.get(path).text)
    assert "Sent to Members of group VIP (deleted)" in page
    assert "Sent to group VIP (deleted)" in page
    assert "Cannot be sent again" in page
    assert "Send to new subscribers" not in page

    refused = post(admin, f"{path}/send")
    assert refused.status_code == 409
    assert "the group &#39;VIP&#39;, which has since been deleted" in refused.text
