"""The activity types page: built-in types, custom types, create, enable, disable."""

from __future__ import annotations

import re
from typing import Any

from starlette.testclient import TestClient

from contacthub.activities import service as activity_types
from contacthub.storage.database import Database
from tests import factories
from tests.admin.conftest import EMAIL
from tests.admin.reading import audit_actions, field_error

PAGE = "/admin/activity-types"


def create(admin: TestClient, code_name: str, display_name: str) -> Any:
    data = {"code_name": code_name, "display_name": display_name, "csrf_token": admin.csrf}  # type: ignore[attr-defined]
    return admin.post(PAGE, data=data, follow_redirects=False)


def post(admin: TestClient, path: str) -> Any:
    return admin.post(path, data={"csrf_token": admin.csrf}, follow_redirects=False)  # type: ignore[attr-defined]


def row_of(page: str, code: str) -> str:
    match = re.search(rf"<tr>\s*<td><code>{re.escape(code)}</code></td>.*?</tr>", page, re.S)
    assert match, f"no row for {code}"
    return match.group(0)


def enabled_in_store(database: Database, code: str) -> bool:
    with database.read() as session:
        return activity_types.get_type(session, code).enabled


def test_signed_out_the_page_asks_to_sign_in(client: TestClient, database: Database) -> None:
    answer = client.get(PAGE, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/sign-in?next=%2Fadmin%2Factivity-types"
    factories.activity_type(database, "quiz", "Quiz")
    answer = client.post(f"{PAGE}/quiz/disable", follow_redirects=False)
    assert answer.headers["location"].startswith("/admin/sign-in")
    assert enabled_in_store(database, "quiz")


def test_built_in_types_are_listed_read_only(admin: TestClient) -> None:
    page = admin.get(PAGE)
    assert page.status_code == 200
    for code, name in [
        ("pagevisit", "Page visit"),
        ("click", "Click"),
        ("datainput", "Data input"),
        ("emailopen", "Email open"),
        ("emailclick", "Email click"),
    ]:
        row = row_of(page.text, code)
        assert name in row
        assert "always on" in row
        assert "<form" not in row
    assert "No custom types yet." in page.text


def test_create_a_custom_type(admin: TestClient, database: Database) -> None:
    answer = create(admin, "quizanswer", "Quiz answer")
    assert answer.status_code == 303
    assert answer.headers["location"] == PAGE
    page = admin.get(PAGE).text
    assert "Activity type quizanswer created" in page
    row = row_of(page, "quizanswer")
    assert "Quiz answer" in row
    assert "enabled" in row
    assert f'action="{PAGE}/quizanswer/disable"' in row
    assert enabled_in_store(database, "quizanswer")
    assert (EMAIL, "activity_type.created", "quizanswer") in audit_actions(database)


def test_create_errors_show_next_to_their_fields(admin: TestClient, database: Database) -> None:
    factories.activity_type(database, "quiz", "Quiz")
    cases = [
        ("has space", "Name", "code_name", "code name has 1 to 100"),
        ("", "Name", "code_name", "code name has 1 to 100"),
        ("Click", "Name", "code_name", "'Click' is a built-in activity type."),
        ("QUIZ", "Name", "code_name", "An activity type 'QUIZ' already exists."),
        ("poll", "", "display_name", "A display name has 1 to 200 characters."),
        ("poll", "x" * 201, "display_name", "A display name has 1 to 200 characters."),
    ]
    for code, name, field, message in cases:
        answer = create(admin, code, name)
        assert answer.status_code == 400, code
        assert message in (field_error(answer.text, field) or ""), (code, name)
        assert f'value="{code}"' in answer.text  # what was typed comes back
    with database.read() as session:
        assert [t.code_name for t in activity_types.list_types(session)] == ["quiz"]


def test_disable_and_enable(admin: TestClient, database: Database) -> None:
    factories.activity_type(database, "quiz", "Quiz")
    answer = post(admin, f"{PAGE}/quiz/disable")
    assert answer.status_code == 303
    assert not enabled_in_store(database, "quiz")
    page = admin.get(PAGE).text
    assert "quiz is disabled" in page
    row = row_of(page, "quiz")
    assert "badge-danger" in row
    assert f'action="{PAGE}/quiz/enable"' in row
    assert post(admin, f"{PAGE}/quiz/enable").status_code == 303
    assert enabled_in_store(database, "quiz")
    actions = [a[1] for a in audit_actions(database)]
    assert actions[-2:] == ["activity_type.disabled", "activity_type.enabled"]


def test_built_in_and_unknown_types_cannot_be_switched(admin: TestClient) -> None:
    refused = post(admin, f"{PAGE}/pagevisit/disable")
    assert refused.status_code == 409
    assert "always enabled" in refused.text
    missing = post(admin, f"{PAGE}/nope/enable")
    assert missing.status_code == 404
    assert "No activity type &#39;nope&#39;." in missing.text


def test_hostile_names_are_escaped(admin: TestClient, database: Database) -> None:
    factories.activity_type(database, "xss", '<script>alert("x")</script>')
    page = admin.get(PAGE).text
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    refused = create(admin, "<b>bad</b>", "<i>name</i>")
    assert "<b>bad</b>" not in refused.text
    assert 'value="&lt;b&gt;bad&lt;/b&gt;"' in refused.text
