"""The activity log page: filters, paging, errors next to fields, hostile data escaped."""

from __future__ import annotations

import html
import re
from datetime import timedelta

from starlette.testclient import TestClient

from contacthub.contacts import service as contacts
from contacthub.storage.database import Database
from contacthub.storage.models import Activity
from tests import factories
from tests.activities.support import T0, insert, minutes, new_channel, new_contact, row
from tests.admin.reading import field_error

PAGE = "/admin/activities"


def rows_of(page: str) -> int:
    """How many activities the table shows."""
    body = re.search(r'<table class="activity-log">.*?<tbody>(.*?)</tbody>', page, re.S)
    return 0 if body is None else body.group(1).count("<tr>")


def link(page: str, label: str) -> str | None:
    """The href of the link with this text, unescaped."""
    match = re.search(rf'<a [^>]*href="([^"]*)"[^>]*>{re.escape(label)}</a>', page)
    return html.unescape(match.group(1)) if match else None


def test_signed_out_goes_to_sign_in(client: TestClient) -> None:
    answer = client.get(PAGE + "?type=click", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/admin/sign-in?next=")


def test_shows_every_column(admin: TestClient, database: Database) -> None:
    channel_id, _ = new_channel(database, "Web shop")
    contact_id, guid = new_contact(database)
    insert(
        database,
        [
            row(
                contact_id,
                minutes(1),
                channel_id=channel_id,
                value="Pricing",
                url="https://example.com/pricing?plan=pro",
                referrer="https://search.example/?q=hub",
            ),
            row(contact_id, minutes(2), type="emailopen", value="News", url=None, title="Opened"),
        ],
    )
    page = admin.get(PAGE)
    assert page.status_code == 200
    text = page.text
    assert rows_of(text) == 2
    assert "2025-03-01 00:01 UTC" in text
    assert "Web shop" in text
    assert f'href="/admin/contacts/{guid}"' in text
    assert "Page visit &#39;Pricing&#39;" in text
    assert 'href="https://example.com/pricing?plan=pro"' in text
    assert 'href="https://search.example/?q=hub"' in text
    assert ">emailopen<" in text
    assert '<span class="muted">Email</span>' in text  # no channel
    # The newest page has no newer page, and with two activities no older one.
    assert link(text, "← Newer") is None
    assert link(text, "Older →") is None


def test_hostile_values_are_escaped_and_only_web_urls_are_links(
    admin: TestClient, database: Database
) -> None:
    channel_id, _ = new_channel(database, "<img src=x onerror=alert(1)> channel")
    contact_id, _ = new_contact(database)
    insert(
        database,
        [
            row(
                contact_id,
                minutes(1),
                channel_id=channel_id,
                value="<script>alert(1)</script>",
                title="Clicked '<script>alert(1)</script>'",
                type="click",
                url="javascript:alert(document.cookie)",
                referrer=' JavaScript:alert(1)" onmouseover="alert(2)',
            ),
            row(contact_id, minutes(2), url="data:text/html,<script>alert(1)</script>"),
            row(contact_id, minutes(3), url='https://ok.example/"><script>x</script>'),
        ],
    )
    text = admin.get(PAGE).text
    assert "<script>alert" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<img src=x" not in text
    assert "&lt;img src=x onerror=alert(1)&gt; channel" in text
    hrefs = re.findall(r'href="([^"]*)"', text)
    assert not [h for h in hrefs if "javascript" in h.lower() or h.lower().startswith("data:")]
    assert 'onmouseover="alert' not in text
    # A web URL stays a link, with its quotes escaped inside the attribute.
    assert 'href="https://ok.example/&#34;&gt;&lt;script&gt;x&lt;/script&gt;"' in text
    # The others are shown as text, in full in the tooltip.
    assert 'title="javascript:alert(document.cookie)"' in text


def test_contacts_by_name_or_address_and_urls_path_first(
    admin: TestClient, database: Database
) -> None:
    with database.write() as session:
        named = contacts.create_contact(session, first_name="Ada", last_name="<b>Lovelace</b>")
        addressed = contacts.create_contact(session, email="only@example.com")
        anonymous = contacts.create_contact(session)
    insert(
        database,
        [
            row(named.id, minutes(1), url="https://shop.example.com/pricing?plan=pro#faq"),
            row(addressed.id, minutes(2), url="northwind://app/c/sale"),
            row(anonymous.id, minutes(3), url="https://shop.example.com"),
        ],
    )
    text = admin.get(PAGE).text
    cells = re.findall(r'<td class="contact">(.*?)</td>', text)
    names = [html.unescape(re.sub(r"<[^>]+>", "", cell)) for cell in cells]
    # Newest first: the GUID's start when nothing else is known, else the address, the name.
    assert names == [str(anonymous.guid)[:8] + "…", "only@example.com", "Ada <b>Lovelace</b>"]
    assert "<b>Lovelace" not in text
    # Every cell links to the contact and names its GUID in the tooltip.
    for cell, contact in zip(cells, (anonymous, addressed, named), strict=True):
        assert f'href="/admin/contacts/{contact.guid}"' in cell
        assert str(contact.guid) in re.search(r'title="([^"]*)"', cell).group(1)  # type: ignore[union-attr]
    paths = re.findall(r'<span class="url-path">(.*?)</span>', text)
    sites = re.findall(r'<span class="url-site">(.*?)</span>', text)
    assert paths == ["/", "/c/sale", "/pricing?plan=pro#faq"]
    assert sites == ["shop.example.com", "northwind://app", "shop.example.com"]
    assert 'title="https://shop.example.com/pricing?plan=pro#faq"' in text


def test_filters(admin: TestClient, database: Database) -> None:
    web_id, _ = new_channel(database, "Web")
    app_id, _ = new_channel(database, "App")
    factories.activity_type(database, "Download", "Downloaded a file")
    alice_id, alice = new_contact(database)
    bob_id, _ = new_contact(database)
    insert(
        database,
        [
            row(alice_id, minutes(1), channel_id=web_id, url="https://a.example/pricing"),
            row(bob_id, minutes(2), channel_id=app_id, type="click", value="Buy", url=None),
            row(bob_id, T0 + timedelta(days=2), channel_id=None, type="emailclick"),
            row(alice_id, minutes(3), channel_id=app_id, type="Download", value="x.pdf"),
        ],
    )
    counts = {
        f"channel={web_id}": 1,
        f"channel={app_id}": 2,
        "channel=email": 1,
        "type=click": 1,
        "type=Download": 1,
        f"contact={alice}": 2,
        "url=PRICING": 1,
        "start=2025-03-02": 1,
        "end=2025-03-01": 3,
        f"channel={app_id}&contact={alice}": 1,
    }
    for query, expected in counts.items():
        page = admin.get(f"{PAGE}?{query}")
        assert page.status_code == 200, (query, page.text)
        assert rows_of(page.text) == expected, query
    # The form offers every channel and type, and keeps the chosen ones selected.
    page = admin.get(f"{PAGE}?channel={app_id}&type=Download").text
    assert f'<option value="{app_id}" selected>App</option>' in page
    assert '<option value="email" >Email (no channel)</option>' in page
    assert '<option value="Download" selected>Downloaded a file</option>' in page
    assert '<option value="emailopen" >Email open</option>' in page
    nothing = admin.get(f"{PAGE}?type=datainput").text
    assert "No activity matches these filters." in nothing


def test_bad_filters_are_shown_next_to_their_field(admin: TestClient, database: Database) -> None:
    new_channel(database, "Web")
    cases = {
        "contact=12345": "contact",
        f"contact={'0' * 8}-0000-0000-0000-{'0' * 12}": "contact",
        "start=2025-02-30": "start",
        "end=soon": "end",
        "start=2025-03-02&end=2025-03-01": "end",
        "channel=Nope": "channel",
        "type=%3Cscript%3E": "type",
    }
    for query, field in cases.items():
        page = admin.get(f"{PAGE}?{query}")
        assert page.status_code == 400, query
        assert field_error(page.text, field), (query, field)
        assert "Correct the filters above" in page.text
    # The value typed is shown back, escaped.
    page = admin.get(f"{PAGE}?contact=%3Cscript%3Ealert(1)%3C/script%3E")
    assert page.status_code == 400
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in page.text
    assert "<script>alert" not in page.text
    # Every malformed field says so at once.
    page = admin.get(f"{PAGE}?contact=x&start=2025-02-30&url={'u' * 2_001}")
    assert page.status_code == 400
    assert [field_error(page.text, f) is not None for f in ("contact", "start", "url")] == [
        True,
        True,
        True,
    ]
    # NUL is refused before any filter is read, as on every admin page.
    nul = admin.get(f"{PAGE}?url=%00")
    assert nul.status_code == 400
    assert "url must not contain NUL characters." in nul.text
    bad_cursor = admin.get(f"{PAGE}?before=abc")
    assert bad_cursor.status_code == 400
    assert 'class="form-error"' in bad_cursor.text


def test_paging_older_and_newer(admin: TestClient, database: Database) -> None:
    contact_id, _ = new_contact(database)
    ids = insert(database, [row(contact_id, minutes(i), type="click") for i in range(120)])
    first = admin.get(f"{PAGE}?type=click").text
    assert rows_of(first) == 50
    older = link(first, "Older →")
    assert older == f"?type=click&before={ids[70]}"

    second = admin.get(PAGE + older).text
    assert rows_of(second) == 50
    assert f"before={ids[20]}" in (link(second, "Older →") or "")
    third = admin.get(PAGE + (link(second, "Older →") or "")).text
    assert rows_of(third) == 20
    assert link(third, "Older →") is None

    newer = link(third, "← Newer")
    assert newer == f"?type=click&after={ids[19]}"
    back = admin.get(PAGE + newer).text
    assert rows_of(back) == 50
    assert link(back, "Older →") == older.replace(str(ids[70]), str(ids[20]))


def test_a_fruitless_search_offers_to_continue(admin: TestClient, database: Database) -> None:
    contact_id, _ = new_contact(database)
    insert(database, [row(contact_id, minutes(0), type="click", value="Rare")])
    # Ids far above it, as a busy hub would have: the search stops at the scan limit.
    with database.write() as session:
        for offset in (250_000, 250_001):
            session.add(
                Activity(
                    id=offset,
                    contact_id=contact_id,
                    channel_id=None,
                    type="pagevisit",
                    title="Page visit",
                    url="https://example.com/",
                    created_at=minutes(offset),
                )
            )
    page = admin.get(f"{PAGE}?type=click").text
    assert rows_of(page) == 0
    assert "Searched back to" in page
    assert "No activity matches" not in page
    more = link(page, "Continue searching")
    assert more == f"?type=click&before={250_002 - 200_000}"
    found = admin.get(PAGE + more).text
    assert rows_of(found) == 1
    assert "Rare" in found
    assert "Searched back to" not in found
