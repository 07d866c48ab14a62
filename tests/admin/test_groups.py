"""Group pages: list, new and edit (the condition JSON the builder posts, the count button),
the live count endpoint, a group's page (members, export, rebuild, add and remove), delete,
and the groups on the contact page."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub.contacts import service as contacts
from contacthub.email import service as email
from contacthub.groups import service as groups
from contacthub.storage.database import Database
from contacthub.storage.models import ContactGroup
from tests import factories
from tests.admin.conftest import EMAIL
from tests.admin.reading import audit_actions, field_error
from tests.groups.support import FORMULA_GROUP, assert_formula_safe, formula_member

ANNAS = {"field": "first_name", "op": "equals", "value": "Anna"}
EXAMPLE_ADDRESSES = {"field": "email", "op": "ends_with", "value": "@example.com"}


@pytest.fixture
def people(database: Database) -> dict[str, str]:
    """Three contacts: Anna and Bob at example.com, Carl elsewhere (GUIDs by first name)."""
    with database.write() as session:
        made = {
            name: contacts.create_contact(session, first_name=name, email=address)
            for name, address in (
                ("Anna", "anna@example.com"),
                ("Bob", "bob@example.com"),
                ("Carl", "carl@example.org"),
            )
        }
        session.flush()
        return {name: str(contact.guid) for name, contact in made.items()}


def post(admin: TestClient, path: str, **data: Any) -> Any:
    form = {**data, "csrf_token": admin.csrf}  # type: ignore[attr-defined]
    return admin.post(path, data=form, follow_redirects=False)


def create(admin: TestClient, name: str, conditions: object = ANNAS, **data: Any) -> Any:
    text = conditions if isinstance(conditions, str) else json.dumps(conditions)
    values = {"name": name, "kind": "dynamic", "description": "", "conditions": text, **data}
    return post(admin, "/admin/groups/new", **values)


def group_of(database: Database, name: str) -> ContactGroup | None:
    with database.read() as session:
        found = session.scalar(select(ContactGroup).where(ContactGroup.name == name))
        if found is not None:
            session.expunge(found)
        return found


def member_names(database: Database, name: str) -> set[str]:
    with database.read() as session:
        page = groups.members_page(session, name, cursor=None, limit=100)
        return {member.contact.first_name or "" for member in page.members}


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_signed_out_the_pages_ask_to_sign_in(
    client: TestClient, database: Database, people: dict[str, str]
) -> None:
    with database.write() as session:
        group = groups.create_group(session, "Annas", conditions=ANNAS)
        guid = str(group.guid)
    for path in ("", "/new", f"/{guid}", f"/{guid}/edit", f"/{guid}/delete"):
        answer = client.get(f"/admin/groups{path}", follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/admin/sign-in?next=")
    for path in ("/new", "/preview", f"/{guid}/delete", f"/{guid}/export", f"/{guid}/rebuild"):
        answer = client.post(
            f"/admin/groups{path}", data={"name": "Other", "kind": "static"}, follow_redirects=False
        )
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/admin/sign-in")
    assert group_of(database, "Other") is None
    assert group_of(database, "Annas") is not None


def test_empty_list_and_navigation(admin: TestClient) -> None:
    page = admin.get("/admin/groups")
    assert page.status_code == 200
    assert "No groups yet" in page.text
    assert 'href="/admin/groups/new"' in page.text
    assert 'href="/admin/groups" class="active"' in page.text


def test_the_new_form_carries_the_builder_and_its_choices(
    admin: TestClient, database: Database
) -> None:
    factories.consent(database, "Newsletter")
    factories.activity_type(database, "webinar", "Webinar")
    page = admin.get("/admin/groups/new")
    assert page.status_code == 200
    # The JSON fallback, the script, and the builder's choices as data (not run: CSP allows it).
    assert '<textarea id="f-conditions" name="conditions"' in page.text
    assert '<script src="/admin/static/groups.js" defer></script>' in page.text
    match = re.search(
        r'<script type="application/json" id="builder-data">(.*?)</script>', page.text, re.S
    )
    assert match
    data = json.loads(match.group(1))
    assert data["preview"] == "/admin/groups/preview"
    options = data["options"]
    assert ["Newsletter", "Newsletter", 1] in options["consents"]
    assert ["webinar", "Webinar"] in options["activity_types"]
    assert ["pagevisit", "Page visit"] in options["activity_types"]
    assert ["DEU", "Germany"] in options["countries"]
    assert ["CA", "California"] in options["states"]
    assert ["first_name", "First name"] in options["text_fields"]
    assert "<script>" not in page.text
    assert " style=" not in page.text


def test_create_a_dynamic_group(
    admin: TestClient, database: Database, people: dict[str, str]
) -> None:
    answer = create(admin, "Annas", description="Everyone called Anna")
    group = group_of(database, "Annas")
    assert group is not None
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/admin/groups/{group.guid}"
    assert member_names(database, "Annas") == {"Anna"}
    assert ("admin@example.com", "group.created", "Annas") in audit_actions(database)

    page = admin.get(answer.headers["location"])
    assert page.status_code == 200
    assert "Group Annas created." in page.text
    assert "anna@example.com" in page.text
    assert "bob@example.com" not in page.text
    assert "Everyone called Anna" in page.text
    listed = admin.get("/admin/groups")
    assert f'href="/admin/groups/{group.guid}">Annas</a>' in listed.text


def test_create_a_static_group_ignores_conditions(admin: TestClient, database: Database) -> None:
    answer = create(admin, "VIP", conditions="not even JSON", kind="static")
    assert answer.status_code == 303
    group = group_of(database, "VIP")
    assert group is not None
    assert group.kind == "static"
    assert group.conditions is None


def test_a_bad_condition_is_shown_with_its_path_and_nothing_is_saved(
    admin: TestClient, database: Database
) -> None:
    answer = create(admin, "Readers", {"all": [ANNAS, {"consent": "Nope", "state": "agreed"}]})
    assert answer.status_code == 400
    assert group_of(database, "Readers") is None
    message = re.search(
        r'<div class="form-error" role="alert" id="e-conditions">(.*?)</div>', answer.text, re.S
    )
    assert message, answer.text
    assert "conditions.all[1]" in message.group(1)
    # The builder is told where the fault is, and the form keeps what was typed.
    assert '"error_path": "conditions.all[1]' in answer.text
    assert 'value="Readers"' in answer.text
    assert "&#34;Nope&#34;" in answer.text or "&quot;Nope&quot;" in answer.text


def test_json_that_does_not_read_is_refused(admin: TestClient, database: Database) -> None:
    answer = create(admin, "Readers", '{"all": [')
    assert answer.status_code == 400
    assert "not valid JSON" in answer.text
    assert group_of(database, "Readers") is None


def test_a_name_is_required(admin: TestClient, database: Database) -> None:
    answer = create(admin, "")
    assert answer.status_code == 400
    assert field_error(answer.text, "name")
    with database.read() as session:
        assert groups.list_groups(session) == []


def test_the_count_button_counts_without_saving(
    admin: TestClient, database: Database, people: dict[str, str]
) -> None:
    answer = create(admin, "Example", EXAMPLE_ADDRESSES, action="count")
    assert answer.status_code == 200
    assert "2 contacts match now." in text_of(answer.text)
    assert group_of(database, "Example") is None


def test_the_preview_endpoint_answers_the_count_as_json(
    admin: TestClient, people: dict[str, str]
) -> None:
    answer = post(admin, "/admin/groups/preview", conditions=json.dumps(EXAMPLE_ADDRESSES))
    assert answer.status_code == 200
    assert answer.json() == {"count": 2}
    answer = post(admin, "/admin/groups/preview", conditions=json.dumps({"all": []}))
    assert answer.json() == {"count": 3}
    assert answer.headers["content-security-policy"].startswith("default-src 'self'")


def test_the_preview_endpoint_names_the_fault(admin: TestClient) -> None:
    bad = {"any": [ANNAS, {"activity": "pagevisit", "at_least": 0}]}
    answer = post(admin, "/admin/groups/preview", conditions=json.dumps(bad))
    assert answer.status_code == 400
    body = answer.json()
    assert body["path"].startswith("conditions.any[1]")
    assert body["error"]
    answer = post(admin, "/admin/groups/preview", conditions="{")
    assert answer.status_code == 400
    assert answer.json()["path"] == "conditions"


def test_forms_without_the_csrf_token_are_refused(
    admin: TestClient, database: Database, people: dict[str, str]
) -> None:
    form = {"name": "Annas", "kind": "dynamic", "conditions": json.dumps(ANNAS)}
    answer = admin.post("/admin/groups/new", data=form, follow_redirects=False)
    assert answer.status_code == 403
    answer = admin.post(
        "/admin/groups/new", data={**form, "csrf_token": "forged"}, follow_redirects=False
    )
    assert answer.status_code == 403
    assert group_of(database, "Annas") is None
    answer = admin.post("/admin/groups/preview", data={"conditions": "{}"})
    assert answer.status_code == 403
    # From another site, even with the token.
    answer = admin.post(
        "/admin/groups/preview",
        data={"conditions": "{}", "csrf_token": admin.csrf},  # type: ignore[attr-defined]
        headers={"Origin": "https://evil.example.net"},
    )
    assert answer.status_code == 403


def test_edit_renames_and_changes_the_conditions(
    admin: TestClient, database: Database, people: dict[str, str]
) -> None:
    with database.write() as session:
        group = groups.create_group(session, "Annas", conditions=ANNAS)
        path = f"/admin/groups/{group.guid}"
    form = admin.get(f"{path}/edit")
    assert form.status_code == 200
    assert "&#34;Anna&#34;" in form.text or "&quot;Anna&quot;" in form.text
    answer = post(
        admin,
        f"{path}/edit",
        name="Example people",
        description="At example.com",
        conditions=json.dumps(EXAMPLE_ADDRESSES),
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == path
    assert group_of(database, "Annas") is None
    assert member_names(database, "Example people") == {"Anna", "Bob"}
    assert ("admin@example.com", "group.updated", "Example people") in audit_actions(database)


def test_edit_shows_group_references_by_name(admin: TestClient, database: Database) -> None:
    with database.write() as session:
        groups.create_group(session, "Annas", conditions=ANNAS)
        outer = groups.create_group(session, "Not Annas", conditions={"not": {"group": "Annas"}})
        path = f"/admin/groups/{outer.guid}"
    form = admin.get(f"{path}/edit")
    assert "&#34;group&#34;: &#34;Annas&#34;" in form.text
    # Saved unchanged: nothing recomputed, the name is the only change.
    answer = post(
        admin,
        f"{path}/edit",
        name="Others",
        description="",
        conditions=json.dumps({"not": {"group": "Annas"}}),
    )
    assert answer.status_code == 303
    assert group_of(database, "Others") is not None


def test_edit_refuses_a_bad_condition_and_keeps_the_group(
    admin: TestClient, database: Database, people: dict[str, str]
) -> None:
    with database.write() as session:
        group = groups.create_group(session, "Annas", conditions=ANNAS)
        path = f"/admin/groups/{group.guid}"
    bad = {"field": "first_name", "op": "before", "value": "2024-01-01"}
    answer = post(admin, f"{path}/edit", name="Annas", conditions=json.dumps(bad))
    assert answer.status_code == 400
    assert 'id="e-conditions"' in answer.text
    assert member_names(database, "Annas") == {"Anna"}
    stored = group_of(database, "Annas")
    assert stored is not None
    assert "Anna" in (stored.conditions or "")


def test_a_group_cannot_name_itself(admin: TestClient, database: Database) -> None:
    with database.write() as session:
        group = groups.create_group(session, "Loop", conditions=ANNAS)
        path = f"/admin/groups/{group.guid}"
    answer = post(admin, f"{path}/edit", name="Loop", conditions=json.dumps({"group": "Loop"}))
    assert 400 <= answer.status_code < 500
    assert 'id="e-conditions"' in answer.text


def test_members_are_paged(admin: TestClient, database: Database) -> None:
    with database.write() as session:
        for number in range(53):
            contacts.create_contact(session, first_name="Anna", email=f"anna{number}@example.com")
        group = groups.create_group(session, "Annas", conditions=ANNAS)
        path = f"/admin/groups/{group.guid}"
    first = admin.get(path)
    assert first.text.count("/admin/contacts/") == 50
    next_url = re.search(r'<a class="button secondary" href="([^"]+)">Next →</a>', first.text)
    assert next_url, "no link to the next page"
    second = admin.get(next_url.group(1).replace("&amp;", "&"))
    assert second.status_code == 200
    assert second.text.count("/admin/contacts/") == 3
    assert "← First" in second.text


def test_export_downloads_the_members_and_is_audited(
    admin: TestClient, database: Database, people: dict[str, str]
) -> None:
    with database.write() as session:
        group = groups.create_group(session, "Example", conditions=EXAMPLE_ADDRESSES)
        path = f"/admin/groups/{group.guid}"
    assert admin.get(f"{path}/export").status_code == 405
    answer = post(admin, f"{path}/export")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert {row["email"] for row in rows} == {"anna@example.com", "bob@example.com"}
    assert {row["guid"] for row in rows} == {people["Anna"], people["Bob"]}
    assert ("admin@example.com", "group.exported", "Example") in audit_actions(database)


def test_rebuild(admin: TestClient, database: Database, people: dict[str, str]) -> None:
    with database.write() as session:
        group = groups.create_group(session, "Annas", conditions=ANNAS)
        path = f"/admin/groups/{group.guid}"
    page = admin.get(path)
    assert f'action="{path}/rebuild"' in page.text
    answer = post(admin, f"{path}/rebuild")
    assert answer.status_code == 303
    assert "Rebuilt" in admin.get(path).text
    assert ("admin@example.com", "group.rebuilt", "Annas") in audit_actions(database)


def test_static_group_members_added_and_removed(
    admin: TestClient, database: Database, people: dict[str, str]
) -> None:
    with database.write() as session:
        group = groups.create_group(session, "VIP", kind="static")
        path = f"/admin/groups/{group.guid}"
    answer = post(admin, f"{path}/members", contacts=f"anna@example.com\n{people['Bob']}")
    assert answer.status_code == 303
    assert member_names(database, "VIP") == {"Anna", "Bob"}
    assert "2 contacts added." in admin.get(path).text

    # Unknown ones are listed; the others are added.
    answer = post(admin, f"{path}/members", contacts="carl@example.org, nobody@example.com")
    assert answer.status_code == 200
    assert "nobody@example.com" in answer.text
    assert member_names(database, "VIP") == {"Anna", "Bob", "Carl"}

    # The row's button removes one member.
    answer = post(admin, f"{path}/members/remove", contacts=people["Bob"])
    assert answer.status_code == 303
    assert member_names(database, "VIP") == {"Anna", "Carl"}
    actions = [action for _, action, _ in audit_actions(database)]
    assert actions.count("group.members_added") == 2
    assert actions.count("group.members_removed") == 1

    answer = post(admin, f"{path}/members", contacts="  ")
    assert answer.status_code == 400
    assert field_error(answer.text, "contacts")


def test_static_group_members_from_a_csv_file(
    admin: TestClient, database: Database, people: dict[str, str]
) -> None:
    with database.write() as session:
        group = groups.create_group(session, "VIP", kind="static")
        path = f"/admin/groups/{group.guid}"
    content = "name,email\nAnna,anna@example.com\nBob,bob@example.com\nNo one,x@example.net\n"
    answer = admin.post(
        f"{path}/import",
        data={"csrf_token": admin.csrf},  # type: ignore[attr-defined]
        files={"file": ("vip.csv", content.encode(), "text/csv")},
        follow_redirects=False,
    )
    assert answer.status_code == 200
    assert "x@example.net" in answer.text
    assert member_names(database, "VIP") == {"Anna", "Bob"}

    answer = admin.post(
        f"{path}/import",
        data={"csrf_token": admin.csrf},  # type: ignore[attr-defined]
        files={"file": ("guids.csv", people["Carl"].encode(), "text/csv")},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert member_names(database, "VIP") == {"Anna", "Bob", "Carl"}

    answer = admin.post(
        f"{path}/import",
        data={"csrf_token": admin.csrf},  # type: ignore[attr-defined]
        files={"file": ("latin1.csv", "email\nzoë@example.com\n".encode("latin-1"), "text/csv")},
        follow_redirects=False,
    )
    assert answer.status_code == 400
    assert "not UTF-8" in (field_error(answer.text, "file") or "")
    answer = post(admin, f"{path}/import")
    assert answer.status_code == 400
    assert field_error(answer.text, "file") == "Choose a CSV file."


def test_members_cannot_be_added_to_a_dynamic_group(
    admin: TestClient, database: Database, people: dict[str, str]
) -> None:
    with database.write() as session:
        group = groups.create_group(session, "Annas", conditions=ANNAS)
        path = f"/admin/groups/{group.guid}"
    page = admin.get(path)
    assert f'action="{path}/members"' not in page.text
    answer = post(admin, f"{path}/members", contacts="bob@example.com")
    assert answer.status_code == 400
    assert '<div class="form-error" role="alert">' in answer.text
    assert member_names(database, "Annas") == {"Anna"}


def test_delete_asks_first_then_deletes(
    admin: TestClient, database: Database, people: dict[str, str]
) -> None:
    with database.write() as session:
        group = groups.create_group(session, "Annas", conditions=ANNAS)
        path = f"/admin/groups/{group.guid}"
    page = admin.get(f"{path}/delete")
    assert page.status_code == 200
    assert "1 member" in page.text
    answer = post(admin, f"{path}/delete")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/groups"
    assert group_of(database, "Annas") is None
    assert ("admin@example.com", "group.deleted", "Annas") in audit_actions(database)
    assert admin.get(path).status_code == 404


def test_delete_is_refused_while_another_group_uses_it(
    admin: TestClient, database: Database
) -> None:
    with database.write() as session:
        used = groups.create_group(session, "Annas", conditions=ANNAS)
        groups.create_group(session, "Not Annas", conditions={"not": {"group": "Annas"}})
        path = f"/admin/groups/{used.guid}"
    answer = post(admin, f"{path}/delete")
    assert answer.status_code == 409
    assert "Not Annas" in text_of(answer.text)
    assert group_of(database, "Annas") is not None


def test_a_group_is_found_by_name_too(admin: TestClient, database: Database) -> None:
    with database.write() as session:
        groups.create_group(session, "VIP", kind="static")
    assert admin.get("/admin/groups/VIP").status_code == 200
    assert admin.get("/admin/groups/Nobody").status_code == 404


def test_the_contact_page_shows_groups_and_their_history(
    admin: TestClient, database: Database, people: dict[str, str]
) -> None:
    with database.write() as session:
        annas = groups.create_group(session, "Annas", conditions=ANNAS)
        vip = groups.create_group(session, "VIP", kind="static")
        guid = str(annas.guid)
    vip_path = f"/admin/groups/{vip.guid}"
    post(admin, f"{vip_path}/members", contacts="anna@example.com")
    post(admin, f"{vip_path}/members/remove", contacts="anna@example.com")

    page = admin.get(f"/admin/contacts/{people['Anna']}")
    assert page.status_code == 200
    section = page.text[page.text.index('id="groups"') : page.text.index('id="timeline"')]
    assert f'<a href="/admin/groups/{guid}">Annas</a>' in section
    # The history: entered Annas (conditions), entered and left VIP (by hand), latest first.
    rows = re.findall(r"<tr>(.*?)</tr>", section, re.S)
    changes = [text_of(row) for row in rows[1:]]
    assert len(changes) == 3
    assert "VIP" in changes[0]
    assert "left" in changes[0]
    assert EMAIL in changes[0]
    assert "VIP" in changes[1]
    assert "entered" in changes[1]
    assert "Annas" in changes[2]
    assert "entered" in changes[2]

    other = admin.get(f"/admin/contacts/{people['Carl']}")
    assert "Not a member of any group." in other.text


def test_too_many_contacts_at_once_are_refused(admin: TestClient, database: Database) -> None:
    with database.write() as session:
        group = groups.create_group(session, "VIP", kind="static")
        path = f"/admin/groups/{group.guid}"
    many = "\n".join(f"person{number}@example.com" for number in range(groups.MAX_ITEMS + 1))
    answer = post(admin, f"{path}/members", contacts=many)
    assert answer.status_code == 413
    assert "At most 10,000 contacts" in (field_error(answer.text, "contacts") or "")


def test_the_builder_data_cannot_be_broken_out_of(admin: TestClient, database: Database) -> None:
    hostile = "</script><script>alert(1)</script>"
    with database.write() as session:
        email.create_newsletter(
            session, "Weekly", "The Team", "news@example.com", "https://news.example.com"
        )
        email.create_issue(session, "Weekly", hostile, "<p>Hi</p>")
    page = admin.get("/admin/groups/new")
    assert hostile not in page.text
    match = re.search(
        r'<script type="application/json" id="builder-data">(.*?)</script>', page.text, re.S
    )
    assert match
    [(_, subject)] = json.loads(match.group(1))["options"]["issues"]["Weekly"]
    assert subject == hostile


def test_a_groups_page_says_its_conditions_in_words(
    admin: TestClient, database: Database, people: dict[str, str]
) -> None:
    factories.consent(database, "Newsletter")
    tree = {
        "all": [
            {"consent": "Newsletter", "state": "agreed", "revision": 1},
            {
                "any": [
                    {
                        "activity": "pagevisit",
                        "url_contains": "/pricing",
                        "at_least": 2,
                        "within_days": 30,
                    },
                    {"not": {"field": "country", "op": "in", "value": ["DEU", "FRA"]}},
                    {"group": "Annas"},
                ]
            },
        ]
    }
    with database.write() as session:
        groups.create_group(session, "Annas", conditions=ANNAS)
        group = groups.create_group(session, "Readers", conditions=tree)
        everyone = groups.create_group(session, "Everyone", conditions={"all": []})
    page = text_of(admin.get(f"/admin/groups/{group.guid}").text)
    for words in (
        "All of these:",
        "Consent Newsletter: agreed to revision 1",
        "Any of these:",
        "Activity pagevisit, URL contains “/pricing”, at least 2 times, in the last 30 days",
        "Not this: Country is one of “DEU”, “FRA”",
        "Member of the group Annas",
    ):
        assert words in page, words
    assert "Every contact (no conditions)" in text_of(
        admin.get(f"/admin/groups/{everyone.guid}").text
    )


def test_export_is_formula_safe(admin: TestClient, database: Database) -> None:
    formula_member(database)
    with database.read() as session:
        path = f"/admin/groups/{groups.get_group(session, FORMULA_GROUP).guid}"
    answer = post(admin, f"{path}/export")
    assert answer.status_code == 200
    assert_formula_safe(answer.text)
