"""Newsletters, subscribers and issues through the services, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from contacthub.contacts import service as contacts
from contacthub.email import repository, service
from contacthub.errors import Conflict, InvalidInput, NotFound
from contacthub.storage.database import Database
from contacthub.storage.models import Contact, IssueLink, Subscriber
from tests.races import overlapping

NEWS = "Weekly"


@pytest.fixture
def newsletter(database: Database) -> str:
    with database.write() as session:
        service.create_newsletter(
            session, NEWS, "The Team", "news@example.com", "https://www.example.com/"
        )
    return NEWS


def test_newsletter_is_created_with_a_clean_base_url(database: Database) -> None:
    with database.write() as session:
        created = service.create_newsletter(
            session, " Weekly ", "The Team", "Team@Example.COM", "https://www.example.com/site/"
        )
    with database.read() as session:
        found = service.get_newsletter(session, "Weekly")
        assert [n.name for n in service.list_newsletters(session)] == ["Weekly"]
        assert found.guid == created.guid
        assert found.base_url == "https://www.example.com/site"
        assert found.sender_email == "Team@example.com"  # the domain is normalised


@pytest.mark.parametrize(
    "base_url",
    [
        "www.example.com",
        "ftp://example.com",
        "https://",
        "/relative/path",
        "https://example.com/?a=1",
        "https://example.com/#top",
        "https://user:pw@example.com",
        "https://exa mple.com",
    ],
)
def test_newsletter_refuses_a_base_url_that_is_not_absolute_http(
    database: Database, base_url: str
) -> None:
    with database.write() as session, pytest.raises(InvalidInput) as error:
        service.create_newsletter(session, NEWS, "Team", "news@example.com", base_url)
    assert error.value.code == "invalid_base_url"


@pytest.mark.parametrize(
    ("name", "sender_name", "sender_email", "code"),
    [
        ("", "Team", "news@example.com", "invalid_input"),
        ("x" * 101, "Team", "news@example.com", "invalid_input"),
        (NEWS, "Team\r\nBcc: victim@example.com", "news@example.com", "invalid_input"),
        (NEWS, "Team", "not-an-address", "invalid_email"),
    ],
)
def test_newsletter_refuses_bad_fields(
    database: Database, name: str, sender_name: str, sender_email: str, code: str
) -> None:
    with database.write() as session, pytest.raises(InvalidInput) as error:
        service.create_newsletter(session, name, sender_name, sender_email, "https://e.com")
    assert error.value.code == code


def test_newsletter_names_are_unique(database: Database, newsletter: str) -> None:
    with database.write() as session, pytest.raises(Conflict):
        service.create_newsletter(session, NEWS, "Other", "o@example.com", "https://e.com")


def test_unknown_newsletter_is_not_found(database: Database) -> None:
    with database.write() as session, pytest.raises(NotFound) as error:
        service.add_subscriber(session, "Nope", "a@example.com")
    assert error.value.code == "unknown_newsletter"


def test_subscriber_gets_a_new_contact_with_address_and_names(
    database: Database, newsletter: str
) -> None:
    with database.write() as session:
        subscriber = service.add_subscriber(
            session, NEWS, "  Jane.Doe@Example.COM ", first_name=" Jane ", last_name="Doe"
        )
    with database.read() as session:
        contact = session.get_one(Contact, subscriber.contact_id)
        assert (contact.email, contact.first_name, contact.last_name) == (
            "jane.doe@example.com",
            "Jane",
            "Doe",
        )
    assert subscriber.email == "jane.doe@example.com"
    assert (subscriber.first_name, subscriber.last_name) == ("Jane", "Doe")
    assert subscriber.status == "subscribed"


def test_subscriber_is_linked_to_the_oldest_contact_with_the_address(
    database: Database, newsletter: str
) -> None:
    with database.write() as session:
        oldest = contacts.create_contact(session, email="Jane@Example.com", first_name="Janet")
        contacts.create_contact(session, email="jane@example.com")
    with database.write() as session:
        subscriber = service.add_subscriber(session, NEWS, "JANE@example.com", last_name="Doe")
    with database.read() as session:
        contact = session.get_one(Contact, subscriber.contact_id)
        contact_count = session.scalar(select(func.count()).select_from(Contact))
        # Names given fill the contact's empty fields and never overwrite the ones it has.
        assert (contact.first_name, contact.last_name) == ("Janet", "Doe")
        assert contact.id == oldest.id
    assert contact_count == 2  # no third contact
    assert (subscriber.first_name, subscriber.last_name) == ("Janet", "Doe")


def test_subscribing_twice_is_a_conflict(database: Database, newsletter: str) -> None:
    with database.write() as session:
        service.add_subscriber(session, NEWS, "jane@example.com")
    with database.write() as session, pytest.raises(Conflict) as error:
        service.add_subscriber(session, NEWS, "JANE@example.com")
    assert error.value.code == "already_subscribed"


def test_two_adds_of_a_new_address_at_once_answer_as_one_after_the_other(
    database: Database, newsletter: str
) -> None:
    def add(session: Session) -> str:
        return service.add_subscriber(session, NEWS, "new@example.com", "New", actor="ada").status

    first, second = overlapping(database, add)

    assert first.value == "subscribed"
    # Not a 500 (IntegrityError): the answer of a second add after the first one.
    assert isinstance(second.error, Conflict), second.error
    assert second.error.code == "already_subscribed"
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 1
        # The second's contact went with its savepoint.
        assert session.scalar(select(func.count()).select_from(Contact)) == 1


def test_an_unsubscribed_address_can_be_subscribed_again(
    database: Database, newsletter: str
) -> None:
    with database.write() as session:
        first = service.add_subscriber(session, NEWS, "jane@example.com", first_name="Jane")
        service.unsubscribe(session, first)
    with database.read() as session:
        gone = service.get_subscriber(session, NEWS, "jane@example.com")
        assert gone.status == "unsubscribed"
        assert gone.unsubscribed_at is not None
    with database.write() as session:
        again = service.add_subscriber(session, NEWS, "jane@example.com", last_name="Doe")
    assert again.id == first.id
    assert again.status == "subscribed"
    assert (again.first_name, again.last_name) == ("Jane", "Doe")
    with database.read() as session:
        subscribed = service.list_subscribers(session, NEWS, status="subscribed")
        assert [s.email for s in subscribed] == ["jane@example.com"]


@pytest.mark.parametrize(
    ("email", "first_name", "reason"),
    [
        ("not-an-address", None, "invalid_email"),
        ("", None, "invalid_email"),
        ("a" * 250 + "@example.com", None, "invalid_email"),
        ("jane@example.com", "J" * 101, "invalid_name"),
        ("jane@example.com", "Jane\nBcc: x@example.com", "invalid_input"),
    ],
)
def test_bad_subscriber_input_is_refused(
    database: Database, newsletter: str, email: str, first_name: str | None, reason: str
) -> None:
    with database.write() as session, pytest.raises(InvalidInput) as error:
        service.add_subscriber(session, NEWS, email, first_name=first_name)
    assert error.value.code == reason
    with database.read() as session:
        assert service.list_subscribers(session, NEWS) == []


def test_same_address_may_subscribe_to_two_newsletters_with_one_contact(
    database: Database, newsletter: str
) -> None:
    with database.write() as session:
        service.create_newsletter(session, "Offers", "Shop", "shop@example.com", "https://e.com")
        one = service.add_subscriber(session, NEWS, "jane@example.com")
        two = service.add_subscriber(session, "Offers", "jane@example.com")
    assert one.id != two.id
    assert one.contact_id == two.contact_id


HTML = """<html><body>
<p>Hello {{ first_name }},</p>
<a href="https://shop.example.com/a?x=1&amp;y=2">A</a>
<a href="mailto:team@example.com">write</a>
<a href='https://shop.example.com/b'>B</a>
<a href="https://shop.example.com/a?x=1&amp;y=2">A again</a>
</body></html>"""


def test_issue_gets_a_tracked_link_per_link_in_document_order(
    database: Database, newsletter: str
) -> None:
    with database.write() as session:
        issue = service.create_issue(session, NEWS, "Hello", HTML, "Hello {{ first_name }}")
    with database.read() as session:
        found = service.get_issue(session, str(issue.guid).upper())
        links = [
            (link.position, link.target_url, link.hidden, link.guid)
            for link in repository.links_of(session, found.id)
        ]
        assert found.status == "draft"
        assert found.subject == "Hello"
        assert found.text_body == "Hello {{ first_name }}"
    # Each distinct http(s) target once, in document order; then the hidden honeypot.
    assert [link[:3] for link in links] == [
        (0, "https://shop.example.com/a?x=1&y=2", False),
        (1, "https://shop.example.com/b", False),
        (2, "https://www.example.com/", True),
    ]
    assert len({link[3] for link in links}) == 3


@pytest.mark.parametrize(
    ("subject", "html"),
    [("", "<p>x</p>"), ("S" * 501, "<p>x</p>"), ("A\r\nBcc: x@e.com", "<p>x</p>"), ("S", " ")],
)
def test_issue_refuses_bad_subject_or_body(
    database: Database, newsletter: str, subject: str, html: str
) -> None:
    with database.write() as session, pytest.raises(InvalidInput):
        service.create_issue(session, NEWS, subject, html)
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(IssueLink)) == 0


@pytest.mark.parametrize("guid", ["nope", "1eb1cb43-8820-4eda-866b-140c62ed7f69"])
def test_unknown_or_malformed_issue_guid(database: Database, guid: str) -> None:
    with database.read() as session, pytest.raises((InvalidInput, NotFound)):
        service.get_issue(session, guid)
