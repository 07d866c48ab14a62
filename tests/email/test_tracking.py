"""The tracking domain: the email writer's batch function and the signed-link use cases, on
SQLite and PostgreSQL; and the request helpers they rely on."""

from __future__ import annotations

import uuid

import pytest

from contacthub.channels.service import hash_key
from contacthub.email import tracking
from contacthub.email.hashing import LinkSigner, Purpose
from contacthub.email.machine import HitKind
from contacthub.email.pages import TrackingParams, client_ip, is_one_click, parse_networks
from contacthub.errors import Forbidden, InvalidInput, NotFound
from contacthub.storage.database import Database
from contacthub.storage.types import utcnow
from tests import factories
from tests.email.tracking_support import (
    ANNA,
    BLOG,
    BOB,
    SALE,
    SentIssue,
    logged,
    sent_issue,
    subscriber_status,
)

SIGNER = LinkSigner(["test-secret"])
BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile"


@pytest.fixture
def sent(database: Database) -> SentIssue:
    return sent_issue(database)


def job(
    kind: HitKind,
    guid: str,
    email: str = ANNA,
    *,
    hash: str | None = None,
    user_agent: str = BROWSER,
    key_hash: str | None = None,
) -> tracking.HitJob:
    purpose = Purpose.OPEN if kind is HitKind.OPEN else Purpose.CLICK
    signed = SIGNER.sign(purpose, guid, email) if hash is None else hash
    visitor = tracking.Visitor(user_agent, "198.51.100.7", "GET", utcnow())
    return tracking.hit_job(kind, guid, email, signed, visitor, key_hash)


def run(database: Database, jobs: list[tracking.HitJob]) -> list[tracking.HitOutcome]:
    with database.write() as session:
        return tracking.process_hits(session, SIGNER, jobs)


def test_a_mixed_batch_answers_each_hit_in_order(database: Database, sent: SentIssue) -> None:
    unknown = "1eb1cb43-8820-4eda-866b-140c62ed7f69"
    outcomes = run(
        database,
        [
            job(HitKind.OPEN, sent.guid),
            job(HitKind.CLICK, sent.links[SALE]),
            job(HitKind.OPEN, unknown),
            job(HitKind.CLICK, unknown),
            job(HitKind.OPEN, sent.guid, BOB, hash="0" * 64),
            job(HitKind.CLICK, sent.links[SALE], BOB, hash="0" * 64),
            job(HitKind.OPEN, sent.guid, "nobody@example.com"),
            job(HitKind.CLICK, sent.links[BLOG], BOB),
        ],
    )
    assert [o.logged for o in outcomes] == [True, True, False, False, False, False, False, True]
    assert outcomes[1].target_url == "https://shop.example.com/spring?name=Anna"
    assert isinstance(outcomes[2].error, NotFound)
    assert outcomes[2].error.code == "unknown_issue"
    assert isinstance(outcomes[3].error, NotFound)
    assert outcomes[3].error.code == "unknown_link"
    assert outcomes[4].reason == outcomes[5].reason == "invalid_hash"
    assert outcomes[5].target_url == "https://shop.example.com/spring?name="
    assert outcomes[6].reason == "unknown_subscriber"
    assert outcomes[7].target_url == BLOG
    stored = logged(database)
    assert len(stored.opens) == 1
    assert len(stored.clicks) == 2


def test_a_large_batch_is_stored_whole(database: Database, sent: SentIssue) -> None:
    # 150 rows of each table: every chunk size of the multi-row INSERTs, several times.
    outcomes = run(
        database,
        [job(HitKind.OPEN, sent.guid) for _ in range(150)]
        + [job(HitKind.CLICK, sent.links[BLOG]) for _ in range(150)],
    )
    assert all(outcome.logged for outcome in outcomes)
    stored = logged(database)
    assert len(stored.opens) == len(stored.clicks) == 150
    assert len(stored.activities) == 1 + 150  # the first open, and every click


def test_one_open_activity_per_reader_even_within_a_batch(
    database: Database, sent: SentIssue
) -> None:
    run(database, [job(HitKind.OPEN, sent.guid) for _ in range(3)])
    run(database, [job(HitKind.OPEN, sent.guid)])
    stored = logged(database)
    assert len(stored.opens) == 4
    assert [a[1] for a in stored.activities] == ["emailopen"]
    assert stored.activities[0][0] == sent.contact_ids[ANNA]


def test_a_machine_open_is_no_activity_and_does_not_hide_the_human_one(
    database: Database, sent: SentIssue
) -> None:
    run(database, [job(HitKind.OPEN, sent.guid, user_agent="YahooMailProxy; https://help")])
    assert logged(database).activities == []
    run(database, [job(HitKind.OPEN, sent.guid)])
    assert [a[1] for a in logged(database).activities] == ["emailopen"]


def test_addresses_match_whatever_their_case(database: Database, sent: SentIssue) -> None:
    (outcome,) = run(database, [job(HitKind.OPEN, sent.guid, "  Anna@EXAMPLE.com ")])
    assert outcome.logged
    assert logged(database).opens[0][0] == sent.subscriber_ids[ANNA]


def test_malformed_guids_are_refused_before_the_batch() -> None:
    visitor = tracking.Visitor(None, None, "GET", utcnow())
    with pytest.raises(InvalidInput) as missing:
        tracking.hit_job(HitKind.OPEN, None, ANNA, "x", visitor)
    assert missing.value.code == "missing_issueguid"
    with pytest.raises(InvalidInput) as malformed:
        tracking.hit_job(HitKind.CLICK, "c9fe0cee-zzzz", ANNA, "x", visitor)
    assert malformed.value.code == "invalid_linkguid"
    braces = tracking.hit_job(
        HitKind.OPEN, "{1EB1CB43-8820-4EDA-866B-140C62ED7F69}", "", None, visitor
    )
    assert braces.guid == uuid.UUID("1eb1cb43-8820-4eda-866b-140c62ed7f69")


def test_the_batch_checks_the_api_key(database: Database, sent: SentIssue) -> None:
    email = factories.tracking_channel(database, "Site", access="email").key
    tracking_key = factories.tracking_channel(database, "App", access="tracking").key
    outcomes = run(
        database,
        [
            job(HitKind.OPEN, sent.guid, key_hash=hash_key(email)),
            job(HitKind.OPEN, sent.guid, key_hash=hash_key(tracking_key)),
            job(HitKind.OPEN, sent.guid, key_hash=hash_key("chk_unknown")),
        ],
    )
    assert outcomes[0].logged
    assert isinstance(outcomes[1].error, Forbidden)
    assert outcomes[2].error is not None
    assert outcomes[2].error.status_code == 401
    assert len(logged(database).opens) == 1


def test_a_click_on_a_link_of_another_newsletters_reader_logs_nothing(
    database: Database, sent: SentIssue
) -> None:
    from contacthub.email import service

    with database.write() as session:
        service.create_newsletter(session, "Other", "T", "t@example.com", "https://o.example")
        service.add_subscriber(session, "Other", "olga@example.com")
    (outcome,) = run(database, [job(HitKind.CLICK, sent.links[BLOG], "olga@example.com")])
    assert outcome.reason == "unknown_subscriber"
    assert logged(database).clicks == []


# -- browser views and unsubscribes --------------------------------------------------------------


def link(sent: SentIssue, purpose: Purpose, email: str = ANNA) -> tracking.SignedLink:
    return tracking.SignedLink(sent.guid, email, SIGNER.sign(purpose, sent.guid, email))


def test_unsubscribing_is_idempotent_and_remembers_the_issue(
    database: Database, sent: SentIssue
) -> None:
    with database.read() as session:
        asked = tracking.subscription(session, SIGNER, link(sent, Purpose.UNSUBSCRIBE))
    assert asked == tracking.Subscription(ANNA, "Weekly", unsubscribed=False)
    for _ in range(2):
        with database.write() as session:
            done = tracking.unsubscribe(session, SIGNER, link(sent, Purpose.UNSUBSCRIBE))
        assert done.unsubscribed
    status, issue_id = subscriber_status(database, ANNA)
    assert status == "unsubscribed"
    assert issue_id is not None


@pytest.mark.parametrize(
    ("signed", "error", "code"),
    [
        (tracking.SignedLink(None, ANNA, "x"), InvalidInput, "missing_issueguid"),
        (tracking.SignedLink("zz", ANNA, "x"), InvalidInput, "invalid_issueguid"),
        (
            tracking.SignedLink("1eb1cb43-8820-4eda-866b-140c62ed7f69", ANNA, None),
            Forbidden,
            "invalid_hash",
        ),
        (
            tracking.SignedLink("1eb1cb43-8820-4eda-866b-140c62ed7f69", "", "x"),
            Forbidden,
            "invalid_hash",
        ),
    ],
)
def test_bad_signed_links_are_refused(
    database: Database, signed: tracking.SignedLink, error: type[Exception], code: str
) -> None:
    with database.write() as session, pytest.raises(error) as raised:
        tracking.unsubscribe(session, SIGNER, signed)
    assert getattr(raised.value, "code", None) == code


def test_a_browser_view_needs_its_own_purpose(database: Database, sent: SentIssue) -> None:
    with database.read() as session:
        assert "Hello Anna" in tracking.browser_view(
            session, SIGNER, link(sent, Purpose.BROWSER_VIEW)
        )
        with pytest.raises(Forbidden):
            tracking.browser_view(session, SIGNER, link(sent, Purpose.UNSUBSCRIBE))


# -- request helpers -----------------------------------------------------------------------------


def test_tracking_params_match_names_in_any_case_first_wins() -> None:
    params = TrackingParams(b"IssueGUID=a&issueguid=b&Recipient=x%2By%40example.com&HASH=h")
    assert params.guid(Purpose.OPEN) == "a"
    assert params.email(Purpose.OPEN) == "x+y@example.com"
    assert params.hash == "h"
    # A `+` that was not percent-encoded reads as a space; an address has none: it was a `+`.
    assert TrackingParams(b"email=x+y@example.com").email(Purpose.CLICK) == "x+y@example.com"
    assert TrackingParams(b"recipientEmail=a@b.c").email(Purpose.BROWSER_VIEW) == "a@b.c"
    assert TrackingParams(b"recipientEmail=a@b.c").email(Purpose.CLICK) is None
    assert TrackingParams(b"").values == {"": ""}
    assert TrackingParams(b"email=%ff%fe").email(Purpose.CLICK) == "\ufffd\ufffd"


def test_x_forwarded_for_is_read_only_from_trusted_proxies() -> None:
    trusted = parse_networks(["10.0.0.0/8", "2001:db8::1"])
    assert client_ip("203.0.113.9", "17.1.2.3", trusted) == "203.0.113.9"
    assert client_ip("10.1.1.1", "17.1.2.3", trusted) == "17.1.2.3"
    # Read from the right: the client could have forged anything to the left.
    assert client_ip("10.1.1.1", "6.6.6.6, 17.1.2.3, 10.2.2.2", trusted) == "17.1.2.3"
    assert client_ip("2001:db8::1", "17.1.2.3", trusted) == "17.1.2.3"
    assert client_ip("10.1.1.1", "not-an-ip", trusted) == "10.1.1.1"
    assert client_ip("10.1.1.1", None, trusted) == "10.1.1.1"
    assert client_ip("10.1.1.1", "17.1.2.3", ()) == "10.1.1.1"
    with pytest.raises(ValueError, match="does not appear"):
        parse_networks(["10.0.0.0/33"])


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b"List-Unsubscribe=One-Click", "application/x-www-form-urlencoded", True),
        (b"List-Unsubscribe=One-Click", "", True),
        (b"a=1&List-Unsubscribe=One-Click", "application/x-www-form-urlencoded", True),
        (b"List-Unsubscribe=One-Click-Later", "application/x-www-form-urlencoded", False),
        (b"list-unsubscribe=one-click", "application/x-www-form-urlencoded", False),
        (b"", "application/x-www-form-urlencoded", False),
        (
            b'--b\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
            b"One-Click\r\n--b--\r\n",
            "multipart/form-data; boundary=b",
            True,
        ),
        (
            b'--b\r\nContent-Disposition: form-data; name="Other"\r\n\r\nOne-Click\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
            False,
        ),
        (b"garbage", "multipart/form-data; boundary=b", False),
    ],
)
def test_one_click_bodies(body: bytes, content_type: str, expected: bool) -> None:
    assert is_one_click(body, content_type) is expected
