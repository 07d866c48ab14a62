"""The dashboard page scoped to a group: the group select, the figures, a bad group."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from contacthub.storage.database import Database
from tests.admin.reading import field_error
from tests.contacts.filters_support import audience


def tile(page: str, label: str) -> str:
    match = re.search(rf'<div class="label">{label}</div>\s*<div class="value">([^<]*)</div>', page)
    assert match, label
    return match.group(1)


def test_the_group_select_scopes_the_figures(admin: TestClient, database: Database) -> None:
    audience(database)
    everyone = admin.get("/admin/")
    assert everyone.status_code == 200
    assert '<option value="VIP"' in everyone.text
    assert (tile(everyone.text, "Contacts"), tile(everyone.text, "Activities")) == ("4", "3")
    scoped = admin.get("/admin/", params={"group": "VIP"})
    assert scoped.status_code == 200
    assert re.search(r'<option value="VIP"\s+selected>', scoped.text)
    # Ada and Cy are members; Ada has 2 activities in the last 30 days, Cy none.
    assert (tile(scoped.text, "Contacts"), tile(scoped.text, "Activities")) == ("2", "2")
    assert "members of the group" in scoped.text
    # The range presets keep the group.
    assert "group=VIP" in scoped.text.split('aria-label="Ranges"')[1].split("</nav>")[0]


def test_an_unknown_group_is_named_next_to_the_select(
    admin: TestClient, database: Database
) -> None:
    audience(database)
    page = admin.get("/admin/", params={"group": "Gone"})
    assert page.status_code == 400
    assert field_error(page.text, "group") == "No group named 'Gone'."
    assert tile(page.text, "Contacts") == "4"  # the whole audience meanwhile
