"""The public email handlers the hub serves (gateway set-up), on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import update
from starlette.testclient import TestClient

from contacthub.app import create_app
from contacthub.email import compose
from contacthub.email.compose import BROWSER_VIEW_PATH, CLICK_PATH, OPEN_PATH, UNSUBSCRIBE_PATH
from contacthub.email.hashing import LinkSigner, Purpose
from contacthub.email.pages import PIXEL_GIF
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import Delivery
from contacthub.storage.types import utcnow
from tests.email.tracking_support import (
    ANNA,
    BLOG,
    BOB,
    CAROL,
    HTML,
    SALE,
    SUBJECT,
    SentIssue,
    link_id,
    logged,
    params,
    sent_issue,
    subscriber_status,
    url,
)

SIGNER = LinkSigner(["test-secret"])
BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36"
)
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
HEADERS = {"User-Agent": BROWSER}


@pytest.fixture
def sent(database: Database) -> SentIssue:
    return sent_issue(database)


def pixel(client: TestClient, query: str, **headers: str) -> None:
    """GET the pixel and check it is the GIF, never cached, whatever the query."""
    answer = client.get(f"{OPEN_PATH}?{query}", headers={**HEADERS, **headers})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/gif"
    assert answer.content == PIXEL_GIF
    assert "no-store" in answer.headers["cache-control"]
    assert answer.headers["pragma"] == "no-cache"
    assert answer.headers["expires"] == "Thu, 01 Jan 1970 00:00:00 GMT"


def open_query(sent: SentIssue, email: str = ANNA, signer: LinkSigner = SIGNER) -> str:
    return url("", params(signer, Purpose.OPEN, sent.guid, email))[1:]


def click(client: TestClient, guid: str, email: str = ANNA, **headers: str) -> str:
    """Follow a signed link of the issue; answers the 303's Location."""
    answer = client.get(
        url(CLICK_PATH, params(SIGNER, Purpose.CLICK, guid, email)),
        headers={**HEADERS, **headers},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert "no-store" in answer.headers["cache-control"]
    return answer.headers["location"]


# -- the open pixel ------------------------------------------------------------------------------


def test_the_gif_is_a_transparent_one_by_one_image() -> None:
    assert PIXEL_GIF[:6] == b"GIF89a"
    assert PIXEL_GIF[6:10] == b"\x01\x00\x01\x00"  # width 1, height 1
    # The graphic control extension's flags: transparent colour on.
    extension = PIXEL_GIF.index(b"!\xf9\x04")
    assert PIXEL_GIF[extension + 3] & 1 == 1
    assert PIXEL_GIF.endswith(b";")


def test_an_open_is_logged_as_human_and_as_an_activity(
    client: TestClient, database: Database, sent: SentIssue
) -> None:
    pixel(client, open_query(sent))
    stored = logged(database)
    assert stored.opens == [(sent.subscriber_ids[ANNA], False, None)]
    assert stored.activities == [
        (sent.contact_ids[ANNA], "emailopen", f"Opened email '{SUBJECT}'", None)
    ]


def test_reopening_logs_each_open_but_one_activity(
    client: TestClient, database: Database, sent: SentIssue
) -> None:
    for _ in range(3):
        pixel(client, open_query(sent))
    stored = logged(database)
    assert len(stored.opens) == 3
    assert len(stored.activities) == 1


@pytest.mark.parametrize(
    "spelling",
    [
        "issueguid={guid}&recipient={email}&hash={hash}",
        "issueGuid={guid}&Recipient={email}&Hash={hash}",
        "ISSUEGUID={guid}&EMAIL={email}&HASH={hash}",  # the vendor's handler reads `email`
        "issueguid={{{guid}}}&email={email}&hash={hash}",  # the GUID in braces
        "issueguid={guid}&recipient={upper}&hash={hash}",  # the address in another case
    ],
)
def test_parameter_names_match_in_any_case_and_alias(
    client: TestClient, database: Database, sent: SentIssue, spelling: str
) -> None:
    signed = params(SIGNER, Purpose.OPEN, sent.guid, ANNA)
    query = spelling.format(guid=sent.guid, email=ANNA, upper=ANNA.upper(), hash=signed["hash"])
    pixel(client, query)
    assert len(logged(database).opens) == 1


@pytest.mark.parametrize(
    "query",
    [
        "",
        "issueguid=&recipient=&hash=",
        "issueguid={guid}&recipient={email}",  # no hash
        "issueguid={guid}&recipient={email}&hash=",
        "issueguid={guid}&recipient={email}&hash={wrong}",
        "issueguid={guid}&recipient={email}&hash=not-hex-%00-%C3%A9",
        "issueguid={guid}&recipient=bob%40example.com&hash={hash}",  # Anna's hash, Bob's address
        "issueguid=not-a-guid&recipient={email}&hash={hash}",
        "issueguid={other}&recipient={email}&hash={other_hash}",  # unknown issue, valid hash
        "issueguid={guid}&recipient=nobody%40example.com&hash={nobody_hash}",  # not subscribed
        "issueguid={guid}&issueguid={guid}&recipient=%ff%fe&hash={hash}",
    ],
)
def test_bad_opens_answer_the_pixel_and_log_nothing(
    client: TestClient, database: Database, sent: SentIssue, query: str
) -> None:
    other = "1eb1cb43-8820-4eda-866b-140c62ed7f69"
    values = {
        "guid": sent.guid,
        "email": ANNA,
        "hash": SIGNER.sign(Purpose.OPEN, sent.guid, ANNA),
        "wrong": SIGNER.sign(Purpose.CLICK, sent.guid, ANNA),  # right inputs, wrong purpose
        "other": other,
        "other_hash": SIGNER.sign(Purpose.OPEN, other, ANNA),
        "nobody_hash": SIGNER.sign(Purpose.OPEN, sent.guid, "nobody@example.com"),
    }
    pixel(client, query.format(**values))
    stored = logged(database)
    assert stored.opens == []
    assert stored.activities == []


def test_the_pixel_is_answered_when_logging_fails(
    client: TestClient, database: Database, sent: SentIssue
) -> None:
    hub = client.app.state.hub  # type: ignore[attr-defined]
    client.portal.call(hub.email_writer.stop)  # type: ignore[union-attr] # refuses from now on
    pixel(client, open_query(sent))
    assert logged(database).opens == []


def test_the_pixel_answers_post_with_405_not_500(client: TestClient, sent: SentIssue) -> None:
    assert client.post(f"{OPEN_PATH}?{open_query(sent)}").status_code == 405


def test_gmail_image_proxy_is_a_machine_open_without_activity(
    client: TestClient, database: Database, sent: SentIssue
) -> None:
    pixel(client, open_query(sent), **{"User-Agent": GMAIL_PROXY})
    stored = logged(database)
    assert stored.opens == [(sent.subscriber_ids[ANNA], True, "Gmail image proxy")]
    assert stored.activities == []


def test_a_head_request_on_the_pixel_is_a_machine_open(
    client: TestClient, database: Database, sent: SentIssue
) -> None:
    answer = client.head(f"{OPEN_PATH}?{open_query(sent)}", headers=HEADERS)
    assert answer.status_code == 200
    assert logged(database).opens == [(sent.subscriber_ids[ANNA], True, "HEAD request")]


def test_an_unsubscribed_reader_still_opens(
    client: TestClient, database: Database, sent: SentIssue
) -> None:
    answer = client.post(
        url(UNSUBSCRIBE_PATH, params(SIGNER, Purpose.UNSUBSCRIBE, sent.guid, BOB)),
        data={"List-Unsubscribe": "One-Click"},
    )
    assert answer.status_code == 200
    pixel(client, open_query(sent, BOB))
    assert len(logged(database).opens) == 1


# -- the click redirect --------------------------------------------------------------------------


def test_a_click_redirects_to_the_personalised_target_and_is_logged(
    client: TestClient, database: Database, sent: SentIssue
) -> None:
    location = click(client, sent.links[SALE])
    assert location == "https://shop.example.com/spring?name=Anna"
    stored = logged(database)
    assert stored.clicks == [
        (link_id(database, sent.links[SALE]), sent.subscriber_ids[ANNA], False, None)
    ]
    assert stored.activities == [
        (
            sent.contact_ids[ANNA],
            "emailclick",
            f"Clicked link in email '{SUBJECT}'",
            "https://shop.example.com/spring?name=Anna",
        )
    ]


def test_a_subscriber_without_a_first_name_gets_it_empty(
    client: TestClient, sent: SentIssue
) -> None:
    assert click(client, sent.links[SALE], BOB) == "https://shop.example.com/spring?name="


@pytest.mark.parametrize(
    "query",
    [
        "linkguid={guid}&email={email}",
        "linkguid={guid}&email={email}&hash={wrong}",
        "linkguid={guid}&email=bob%40example.com&hash={hash}",
        "linkguid={guid}&hash={hash}",
        # Whatever else the request carries, it goes to the link's own target.
        "linkguid={guid}&email={email}&hash={wrong}&url=https://evil.example&target=https://evil.example",
    ],
)
def test_a_bad_hash_logs_nothing_but_still_redirects_to_the_links_own_target(
    client: TestClient, database: Database, sent: SentIssue, query: str
) -> None:
    values = {
        "guid": sent.links[SALE],
        "email": ANNA,
        "hash": SIGNER.sign(Purpose.CLICK, sent.links[SALE], ANNA),
        "wrong": SIGNER.sign(Purpose.OPEN, sent.links[SALE], ANNA),
    }
    answer = client.get(
        f"{CLICK_PATH}?{query.format(**values)}", headers=HEADERS, follow_redirects=False
    )
    assert answer.status_code == 303
    # No subscriber is proven: the placeholders stay empty, Anna's name does not leak.
    assert answer.headers["location"] == "https://shop.example.com/spring?name="
    assert logged(database) == logged(database).__class__([], [], [])


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("linkguid=c9fe0cee-7066-4017-b31c-6e98c0cf4bb3&email={email}&hash={hash}", 404),
        ("linkguid=not-a-guid&email={email}&hash={hash}", 400),
        ("email={email}&hash={hash}", 400),
        ("", 400),
    ],
)
def test_unknown_and_malformed_links_get_clear_pages(
    client: TestClient, database: Database, sent: SentIssue, query: str, status: int
) -> None:
    values = {"email": ANNA, "hash": SIGNER.sign(Purpose.CLICK, sent.links[SALE], ANNA)}
    answer = client.get(f"{CLICK_PATH}?{query.format(**values)}", follow_redirects=False)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/html")
    assert "location" not in answer.headers
    assert logged(database).clicks == []


def test_a_valid_hash_of_an_address_no_longer_subscribed_logs_nothing(
    client: TestClient, database: Database, sent: SentIssue
) -> None:
    location = click(client, sent.links[BLOG], "gone@example.com")
    assert location == BLOG
    assert logged(database).clicks == []


def test_repeated_clicks_are_each_logged(
    client: TestClient, database: Database, sent: SentIssue
) -> None:
    click(client, sent.links[BLOG])
    click(client, sent.links[BLOG])
    stored = logged(database)
    assert len(stored.clicks) == 2
    assert len(stored.activities) == 2


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"User-Agent": "Mozilla/5.0 (compatible; Mimecast URL protect)"}, "Mimecast"),
        ({"User-Agent": "python-requests/2.31"}, "bot user agent"),
        ({"User-Agent": ""}, "no user agent"),
    ],
)
def test_scanners_clicks_are_machine_clicks(
    client: TestClient,
    database: Database,
    sent: SentIssue,
    headers: dict[str, str],
    reason: str,
) -> None:
    assert click(client, sent.links[BLOG], **headers) == BLOG
    (stored,) = logged(database).clicks
    assert stored[2] is True
    assert stored[3] is not None
    assert reason in stored[3]
    assert logged(database).activities == []


def test_a_head_request_on_a_link_is_a_machine_click(
    client: TestClient, database: Database, sent: SentIssue
) -> None:
    answer = client.head(
        url(CLICK_PATH, params(SIGNER, Purpose.CLICK, sent.links[BLOG], ANNA)),
        headers=HEADERS,
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert logged(database).clicks[0][2:] == (True, "HEAD request")


def test_the_honeypot_link_is_a_machine_click(
    client: TestClient, database: Database, sent: SentIssue
) -> None:
    click(client, sent.honeypot)
    assert logged(database).clicks[0][2:] == (True, "honeypot link")


def test_a_click_seconds_after_delivery_is_a_machine_click(database: Database) -> None:
    sent = sent_issue(database, sent_at=utcnow() - timedelta(seconds=2))
    settings = Settings(database_url=str(database.url), secret_key="test-secret")  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as client:
        click(client, sent.links[BLOG])
    ((_, _, is_machine, reason),) = logged(database).clicks
    assert is_machine is True
    assert reason is not None
    assert "of delivery" in reason


def test_a_click_by_a_subscriber_without_delivery_is_human(
    client: TestClient, database: Database, sent: SentIssue
) -> None:
    # Carol never got the issue (legacy emails have no delivery here either): no timing rule.
    click(client, sent.links[BLOG], CAROL)
    assert logged(database).clicks[0][1:] == (sent.subscriber_ids[CAROL], False, None)


# -- aggregate clicks (copies of readers who did not agree to tracking) ---------------------------


def aggregate_click(client: TestClient, guid: str, extra: str = "", **headers: str) -> str:
    """Follow an aggregate link (link GUID alone); answers the 303's Location."""
    answer = client.get(
        f"{CLICK_PATH}?linkguid={guid}{extra}",
        headers={**HEADERS, **headers},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert "no-store" in answer.headers["cache-control"]
    return answer.headers["location"]


@pytest.mark.parametrize("extra", ["", "&email=&hash=", "&EMAIL=&Hash="])
def test_an_aggregate_click_is_counted_for_its_link_alone(
    client: TestClient, database: Database, sent: SentIssue, extra: str
) -> None:
    assert aggregate_click(client, sent.links[BLOG], extra) == BLOG
    stored = logged(database)
    assert stored.clicks == [(link_id(database, sent.links[BLOG]), None, False, None)]
    assert stored.activities == []  # it proves nobody: no contact's timeline gets it


def test_an_aggregate_click_goes_to_the_links_own_target_whatever_the_request_says(
    client: TestClient, database: Database, sent: SentIssue
) -> None:
    evil = "&url=https://evil.example&target=https://evil.example&redirect=//evil.example"
    # The target's placeholders stay empty: nobody is named.
    location = aggregate_click(client, sent.links[SALE], evil)
    assert location == "https://shop.example.com/spring?name="
    assert len(logged(database).clicks) == 1


def test_aggregate_clicks_are_classified_like_any_other(
    client: TestClient, database: Database, sent: SentIssue
) -> None:
    aggregate_click(client, sent.honeypot)
    head = client.head(f"{CLICK_PATH}?linkguid={sent.links[BLOG]}", follow_redirects=False)
    assert head.status_code == 303
    clicks = logged(database).clicks
    assert [(subscriber, machine) for _, subscriber, machine, _ in clicks] == [
        (None, True),
        (None, True),
    ]
    assert [reason for *_, reason in clicks] == ["honeypot link", "HEAD request"]


def test_an_aggregate_click_on_an_unknown_link_is_a_404(
    client: TestClient, database: Database, sent: SentIssue
) -> None:
    answer = client.get(
        f"{CLICK_PATH}?linkguid=c9fe0cee-7066-4017-b31c-6e98c0cf4bb3", follow_redirects=False
    )
    assert answer.status_code == 404
    assert "location" not in answer.headers
    assert logged(database).clicks == []


def test_view_in_browser_of_an_untracked_copy_stays_untracked(
    client: TestClient, database: Database, sent: SentIssue
) -> None:
    with database.write() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.subscriber_id == sent.subscriber_ids[ANNA])
            .values(tracked=False)
        )
    answer = client.get(
        url(BROWSER_VIEW_PATH, params(SIGNER, Purpose.BROWSER_VIEW, sent.guid, ANNA))
    )
    assert answer.status_code == 200
    expected = compose.render_for_recipient(
        compose.IssueTemplate(uuid.UUID(sent.guid), SUBJECT, HTML),
        sent.tracked,
        compose.Recipient(ANNA, "Anna", "Smith"),
        base_url="https://www.example.com",
        signer=SIGNER,
        tracking=compose.Tracking.AGGREGATE,
    )
    assert answer.text == expected.html
    assert OPEN_PATH not in answer.text
    assert f'{CLICK_PATH}?linkguid={sent.links[BLOG]}"' in answer.text


# -- view in browser -----------------------------------------------------------------------------

# As strict as the admin preview's (tests/browser/test_browser_view.py shows what it lets an
# issue do), except that a clicked link with target="_blank" opens an ordinary tab.
BROWSER_VIEW_POLICY = (
    "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline' https: http:; "
    "font-src https: http: data:; script-src 'none'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'; "
    "sandbox allow-popups allow-popups-to-escape-sandbox"
)


def test_view_in_browser_answers_the_copy_the_recipient_got(
    client: TestClient, database: Database, sent: SentIssue
) -> None:
    answer = client.get(
        url(BROWSER_VIEW_PATH, params(SIGNER, Purpose.BROWSER_VIEW, sent.guid, ANNA))
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert "no-store" in answer.headers["cache-control"]
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["content-security-policy"] == BROWSER_VIEW_POLICY
    assert answer.headers["x-frame-options"] == "DENY"
    expected = compose.render_for_recipient(
        compose.IssueTemplate(uuid.UUID(sent.guid), SUBJECT, HTML),
        sent.tracked,
        compose.Recipient(ANNA, "Anna", "Smith"),
        base_url="https://www.example.com",
        signer=SIGNER,
    )
    assert answer.text == expected.html
    assert "Hello Anna" in answer.text
    assert logged(database).opens == []  # the page logs nothing itself


def test_view_in_browser_accepts_recipient_email(client: TestClient, sent: SentIssue) -> None:
    signed = params(SIGNER, Purpose.BROWSER_VIEW, sent.guid, ANNA)
    query = f"issueGuid={sent.guid}&recipientEmail={ANNA}&hash={signed['hash']}"
    assert client.get(f"{BROWSER_VIEW_PATH}?{query}").status_code == 200


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("issueguid={guid}&email={email}&hash={wrong}", 403),
        ("issueguid={guid}&email={email}", 403),
        ("issueguid={guid}&email=bob%40example.com&hash={hash}", 403),
        ("issueguid={other}&email={email}&hash={other_hash}", 404),
        ("issueguid={guid}&email=nobody%40example.com&hash={nobody_hash}", 404),
        ("issueguid=1234&email={email}&hash={hash}", 400),
        ("email={email}&hash={hash}", 400),
    ],
)
def test_view_in_browser_refuses_bad_links(
    client: TestClient, sent: SentIssue, query: str, status: int
) -> None:
    other = "1eb1cb43-8820-4eda-866b-140c62ed7f69"
    values = {
        "guid": sent.guid,
        "email": ANNA,
        "hash": SIGNER.sign(Purpose.BROWSER_VIEW, sent.guid, ANNA),
        "wrong": SIGNER.sign(Purpose.OPEN, sent.guid, ANNA),
        "other": other,
        "other_hash": SIGNER.sign(Purpose.BROWSER_VIEW, other, ANNA),
        "nobody_hash": SIGNER.sign(Purpose.BROWSER_VIEW, sent.guid, "nobody@example.com"),
    }
    answer = client.get(f"{BROWSER_VIEW_PATH}?{query.format(**values)}")
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/html")
    assert "Anna" not in answer.text


# -- unsubscribe ---------------------------------------------------------------------------------


def unsubscribe_url(sent: SentIssue, email: str = ANNA) -> str:
    return url(UNSUBSCRIBE_PATH, params(SIGNER, Purpose.UNSUBSCRIBE, sent.guid, email))


def test_the_unsubscribe_page_asks_and_changes_nothing(
    client: TestClient, database: Database, sent: SentIssue
) -> None:
    for _ in range(2):  # a scanner, then the person
        answer = client.get(unsubscribe_url(sent))
        assert answer.status_code == 200
        assert "Unsubscribe?" in answer.text
        assert ANNA in answer.text
        assert "Weekly" in answer.text
        assert '<form method="post">' in answer.text
        assert 'name="List-Unsubscribe" value="One-Click"' in answer.text
    assert client.head(unsubscribe_url(sent)).status_code == 200
    assert subscriber_status(database, ANNA) == ("subscribed", None)


def test_the_form_post_unsubscribes(
    client: TestClient, database: Database, sent: SentIssue
) -> None:
    answer = client.post(unsubscribe_url(sent), data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200
    assert "You are unsubscribed" in answer.text
    status, issue_id = subscriber_status(database, ANNA)
    assert status == "unsubscribed"
    assert issue_id is not None
    # Again: the same page, no change, no error.
    assert (
        client.post(unsubscribe_url(sent), data={"List-Unsubscribe": "One-Click"}).status_code
        == 200
    )
    assert "Already unsubscribed" in client.get(unsubscribe_url(sent)).text
    assert subscriber_status(database, BOB) == ("subscribed", None)


def test_the_rfc_8058_one_click_post_unsubscribes_without_a_session(
    client: TestClient, database: Database, sent: SentIssue
) -> None:
    # As a mailbox provider sends it: the body alone, no cookie, no page visited before.
    answer = client.post(
        unsubscribe_url(sent),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200
    assert subscriber_status(database, ANNA)[0] == "unsubscribed"


def test_a_multipart_one_click_post_unsubscribes(
    client: TestClient, database: Database, sent: SentIssue
) -> None:
    answer = client.post(unsubscribe_url(sent), files={"List-Unsubscribe": (None, "One-Click")})
    assert answer.status_code == 200
    assert subscriber_status(database, ANNA)[0] == "unsubscribed"


@pytest.mark.parametrize(
    "body", [b"", b"List-Unsubscribe=Yes", b"unsubscribe=1", b"List-Unsubscribe=One-Click" * 1000]
)
def test_a_post_without_one_click_changes_nothing(
    client: TestClient, database: Database, sent: SentIssue, body: bytes
) -> None:
    answer = client.post(
        unsubscribe_url(sent),
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code in (400, 413)
    assert subscriber_status(database, ANNA) == ("subscribed", None)


def test_unsubscribe_links_need_their_own_hash(
    client: TestClient, database: Database, sent: SentIssue
) -> None:
    # The pixel's hash is in every image proxy's log: it must not unsubscribe anyone.
    pixel_hash = SIGNER.sign(Purpose.OPEN, sent.guid, ANNA)
    query = f"issueguid={sent.guid}&email={ANNA}&hash={pixel_hash}"
    assert client.get(f"{UNSUBSCRIBE_PATH}?{query}").status_code == 403
    answer = client.post(f"{UNSUBSCRIBE_PATH}?{query}", data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 403
    assert client.get(f"{UNSUBSCRIBE_PATH}?issueguid=bad&email={ANNA}&hash=x").status_code == 400
    assert subscriber_status(database, ANNA) == ("subscribed", None)


def test_the_pages_escape_what_they_show(client: TestClient, database: Database) -> None:
    from contacthub.email import service

    with database.write() as session:
        service.create_newsletter(
            session, "<script>alert(1)</script>", "Team", "news@example.com", "https://x.example"
        )
        service.add_subscriber(session, "<script>alert(1)</script>", ANNA)
        issue = service.create_issue(session, "<script>alert(1)</script>", "S", "<p>Hi</p>")
        guid = str(issue.guid)
    answer = client.get(url(UNSUBSCRIBE_PATH, params(SIGNER, Purpose.UNSUBSCRIBE, guid, ANNA)))
    assert answer.status_code == 200
    assert "<script>" not in answer.text
    assert "&lt;script&gt;" in answer.text


# -- secrets -------------------------------------------------------------------------------------


def test_links_signed_by_the_legacy_vendor_hash_are_accepted(database: Database) -> None:
    sent = sent_issue(database)
    with database.write() as session:
        from contacthub.email import service

        service.add_subscriber(session, "Weekly", "john.doe@example.com", "John")
    settings = Settings(
        database_url=str(database.url),
        secret_key="test-secret",  # type: ignore[arg-type]
        legacy_hash_salts=["e68b9ad6-a461-4707-8e3e-ece73f03dd02"],  # type: ignore[list-item]
    )
    vendor_hash = "edb4242140313e73887d7d78d7f198095bea345363d998ba5725d908bcf83f12"
    with TestClient(create_app(settings)) as client:
        query = f"issueguid={sent.guid}&recipient=john.doe@example.com&hash={vendor_hash}"
        pixel(client, query)
        answer = client.get(
            f"{CLICK_PATH}?linkguid={sent.links[SALE]}&email=john.doe@example.com&hash={vendor_hash}",
            follow_redirects=False,
        )
        assert answer.headers["location"] == "https://shop.example.com/spring?name=John"
        link = f"issueguid={sent.guid}&email=john.doe@example.com&hash={vendor_hash}"
        assert client.get(f"{BROWSER_VIEW_PATH}?{link}").status_code == 200
        # Old emails carry the vendor's own unsubscribe links, never ours.
        assert client.get(f"{UNSUBSCRIBE_PATH}?{link}").status_code == 403
    stored = logged(database)
    assert len(stored.opens) == 1
    assert len(stored.clicks) == 1


def test_links_signed_before_a_secret_rotation_keep_working(database: Database) -> None:
    sent = sent_issue(database)
    settings = Settings(
        database_url=str(database.url),
        secret_key="the-new-secret",  # type: ignore[arg-type]
        previous_secret_keys=["test-secret"],  # type: ignore[list-item]
    )
    with TestClient(create_app(settings)) as client:
        pixel(client, open_query(sent))  # signed with the old secret
        pixel(client, open_query(sent, signer=LinkSigner(["the-new-secret"])))
        pixel(client, open_query(sent, signer=LinkSigner(["a-secret-never-used"])))
        location = click(client, sent.links[SALE])
        assert location == "https://shop.example.com/spring?name=Anna"
    stored = logged(database)
    assert len(stored.opens) == 2
    assert len(stored.clicks) == 1


def test_the_browser_view_of_a_rotated_link_is_signed_with_the_new_secret(
    database: Database,
) -> None:
    sent = sent_issue(database)
    settings = Settings(
        database_url=str(database.url),
        secret_key="the-new-secret",  # type: ignore[arg-type]
        previous_secret_keys=["test-secret"],  # type: ignore[list-item]
    )
    with TestClient(create_app(settings)) as client:
        page = client.get(
            url(BROWSER_VIEW_PATH, params(SIGNER, Purpose.BROWSER_VIEW, sent.guid, ANNA))
        )
    assert page.status_code == 200
    new = LinkSigner(["the-new-secret"])
    pixel_url = next(
        part.split('"')[0] for part in page.text.split('src="')[1:] if "Track.ashx" in part
    )
    query = parse_qs(urlsplit(pixel_url.replace("&amp;", "&")).query)
    assert query["hash"] == [new.sign(Purpose.OPEN, sent.guid, ANNA)]
