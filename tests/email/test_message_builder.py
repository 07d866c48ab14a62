"""`MessageBuilder` makes, as bytes, the message `build_message` makes as an `EmailMessage`.

Every case builds one copy both ways, for recipients and issues chosen to take each path of the
builder (plain headers written directly, headers folded or RFC 2047-encoded by the email package,
7bit, 8bit, quoted-printable and base64 bodies, non-ASCII addresses) and checks that the two parse
to the same message: the same headers in the same order, the same parts with the same transfer
encodings, the same decoded bodies and links. No server is involved: sending the bytes is
`test_sender.py`'s business.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy

import pytest

from contacthub.email.compose import (
    IssueTemplate,
    PreparedIssue,
    Recipient,
    RenderedEmail,
    TrackedLink,
    Tracking,
    extract_links,
)
from contacthub.email.hashing import LinkSigner
from contacthub.email.sender import MessageBuilder, OutgoingMessage, build_message
from contacthub.email.sending import delivery_headers

SIGNER = LinkSigner(["builder-secret"])
WHEN = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
PARAGRAPH = (
    '<p style="font-family:Arial,sans-serif;font-size:14px">Spring is here, {{ first_name }}. '
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.</p>\n"
)
HTML = (
    "<html><head><title>News</title></head><body>\n"
    '<h1>Hello {{ first_name | "there" }} {{ last_name }}!</h1>\n'
    + PARAGRAPH
    * 3
    + '<a href="https://shop.example.com/spring?utm_source=news">Spring</a>\n'
    '<a href="https://shop.example.com/account?who={{ email }}&n={{ first_name }}">Account</a>\n'
    '<p><a href="https://www.example.com/contact">Contact</a> = .50 € only</p>\n'
    ".a line starting with a dot\n.\n"
    + "x" * 1200  # one line longer than SMTP's 998: quoted-printable
    + "\n</body></html>"
)
RECIPIENTS = [
    Recipient("ann@example.com", "Ann", "Lee"),
    Recipient("bob+news@example.com"),
    Recipient("jurgen@example.com", "Jürgen", "Größe"),
    Recipient("obrien@example.com", "Seán", "O'Brien, Jr."),
    Recipient("quote@example.com", 'Ann "the" Lee', "Dr. Who"),
    Recipient("long@example.com", "Maximiliana-" + "Alexandra" * 9, "Wolfeschlegelsteinhausen"),
    Recipient("breaks@example.com", "Ann\r\nBcc: eve@example.com", "Lee\t"),
    Recipient("encoded@example.com", "=?utf-8?q?Ann?=", None),
    Recipient("  spaced@example.com ", "  Ann   Marie ", ""),
    Recipient("jose@exämple.com", "José", None),  # needs SMTPUTF8
]


def parse(data: bytes) -> EmailMessage:
    return BytesParser(policy=default_policy).parsebytes(data)


def headers(message: EmailMessage) -> list[tuple[str, str]]:
    """Name and decoded value of each header, in order; the random boundary left out."""
    return [(k, str(v)) for k, v in message.items() if k != "Content-Type"]


def hrefs(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="([^"]*)"', html)


def assert_same_message(old: EmailMessage, new: OutgoingMessage) -> None:
    """The same message, parsed: headers, envelope, parts, encodings, bodies, links."""
    before, after = parse(old.as_bytes()), parse(new.as_bytes())
    assert headers(after) == headers(before)
    assert after.get_content_type() == before.get_content_type() == "multipart/alternative"
    assert new.from_addr == before["From"].addresses[0].addr_spec
    assert list(new.to_addrs) == [address.addr_spec for address in before["To"].addresses]
    old_parts = list(before.iter_parts())
    new_parts = list(after.iter_parts())
    assert [p.get_content_type() for p in new_parts] == ["text/plain", "text/html"]
    assert [p.get_content_type() for p in new_parts] == [p.get_content_type() for p in old_parts]
    for old_part, new_part in zip(old_parts, new_parts, strict=True):
        assert new_part["Content-Transfer-Encoding"] == old_part["Content-Transfer-Encoding"]
        assert new_part.get_content_charset() == old_part.get_content_charset() == "utf-8"
        assert new_part.get_content() == old_part.get_content()
        assert not new_part.defects
    html = new_parts[1].get_content()
    assert hrefs(html) == hrefs(old_parts[1].get_content())
    assert not after.defects


def assert_valid_lines(data: bytes) -> None:
    """CRLF line ends only, and no line over SMTP's 998 octets (RFC 5321 4.5.3.1.6)."""
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert b"\r" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 998


def prepared(html: str = HTML, subject: str = 'News for {{ first_name | "you" }}') -> PreparedIssue:
    links = [TrackedLink(uuid.uuid4(), target) for target in extract_links(html)]
    links.append(TrackedLink(uuid.uuid4(), "https://trap.example.com/", hidden=True))
    issue = IssueTemplate(uuid.uuid4(), subject, html)
    return PreparedIssue(
        issue, links, "https://news.example.com", unsubscribe_mailto="leave@example.com"
    )


def both(rendered: RenderedEmail, recipient: Recipient) -> tuple[EmailMessage, OutgoingMessage]:
    options = {
        "message_id": "<1eb1cb43-8820-4eda-866b-140c62ed7f69.42@example.com>",
        "date": WHEN,
        "extra_headers": delivery_headers("42-abcdef"),
    }
    old = build_message(rendered, "News Team", "news@example.com", recipient, **options)  # type: ignore[arg-type]
    builder = MessageBuilder("News Team", "news@example.com")
    return old, builder.build(rendered, recipient, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("tracking", [Tracking.PERSONAL, Tracking.AGGREGATE])
@pytest.mark.parametrize("recipient", RECIPIENTS, ids=lambda r: r.email.strip())
def test_the_same_message_as_build_message(recipient: Recipient, tracking: Tracking) -> None:
    rendered = prepared().render(recipient, SIGNER, tracking)
    old, new = both(rendered, recipient)
    assert_same_message(old, new)
    assert_valid_lines(new.as_bytes())
    assert new.smtputf8 is (not recipient.email.isascii())


@pytest.mark.parametrize(
    ("html", "encoding"),
    [
        ("<p>Hello Ann</p>\n" * 20, "7bit"),  # ASCII, lines up to 998
        ("<p>Grüße, Ann</p>\n" * 20, "8bit"),  # as the email package chooses today
        (
            "<p>" + "Grüße to all of our dear readers and friends " * 30 + "</p>",
            "quoted-printable",
        ),  # long, mostly ASCII
        ("<p>" + "Привет мир " * 120 + "</p>", "base64"),  # long lines, mostly not ASCII
    ],
)
def test_transfer_encodings_as_today(html: str, encoding: str) -> None:
    recipient = Recipient("ann@example.com", "Ann")
    old, new = both(RenderedEmail("Hi", html, html), recipient)
    assert_same_message(old, new)
    assert_valid_lines(new.as_bytes())
    for part in parse(new.as_bytes()).iter_parts():
        assert part["Content-Transfer-Encoding"] == encoding


@pytest.mark.parametrize(
    "subject",
    [
        "Plain and short",
        "A long subject that the email package folds over two lines, " * 3,
        "Grüße, {{ first_name }}",
        "Looks =?utf-8?q?encoded?= but is not",
        "Two  spaces and a trailing one ",
    ],
)
def test_subjects_as_today(subject: str) -> None:
    recipient = Recipient("ann@example.com", "Ann")
    old, new = both(prepared(subject=subject).render(recipient, SIGNER), recipient)
    assert_same_message(old, new)
    assert_valid_lines(new.as_bytes())


def test_many_copies_from_one_builder() -> None:
    """One builder for the whole issue (its caches filling and emptying) stays exact."""
    issue = prepared()
    builder = MessageBuilder("News Team", "news@example.com")
    for n in range(600):  # the line cache is emptied every ~250 copies
        recipient = Recipient(f"reader{n}@example.com", f"Reader{n}", "Bench")
        rendered = issue.render(recipient, SIGNER)
        old = build_message(
            rendered, "News Team", "news@example.com", recipient, message_id="<m@x>", date=WHEN
        )
        new = builder.build(rendered, recipient, message_id="<m@x>", date=WHEN)
        if n % 100 == 0:
            assert_same_message(old, new)
        else:  # the bytes themselves, but for the boundary, which is random
            boundary = re.compile(rb"={15}\d+==")
            expected = boundary.sub(b"B", old.as_bytes()).replace(
                b"MIME-Version: 1.0\r\n\r\n", b"\r\n"
            )
            assert boundary.sub(b"B", new.as_bytes()) == expected


def test_a_body_containing_the_boundary_gets_another() -> None:
    builder = MessageBuilder("News Team", "news@example.com")
    first = builder.build(
        RenderedEmail("Hi", "<p>hi</p>", "hi\n"), Recipient("a@example.com"), message_id="<m@x>"
    )
    boundary = parse(first.as_bytes()).get_boundary()
    assert boundary is not None
    text = f"quoting a message:\n--{boundary}\nend\n"
    second = builder.build(
        RenderedEmail("Hi", "<p>hi</p>", text), Recipient("a@example.com"), message_id="<m@x>"
    )
    parsed = parse(second.as_bytes())
    assert parsed.get_boundary() != boundary
    assert parsed.get_body(("plain",)).get_content().splitlines() == text.splitlines()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("sender", "recipient"),
    [("news@example.com", "two words@example.com"), ("not an address", "ann@example.com")],
)
def test_unusable_addresses_are_refused_per_copy(sender: str, recipient: str) -> None:
    builder = MessageBuilder("News", sender)  # a bad sender fails each copy, as build_message
    with pytest.raises(ValueError, match="unusable address"):
        builder.build(
            RenderedEmail("Hi", "<p>hi</p>", "hi\n"), Recipient(recipient), message_id="<m@x>"
        )
