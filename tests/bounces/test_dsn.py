"""Reading bounce messages: real-world-looking DSNs, plain bounces, ARF reports, bad input."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contacthub.bounces import dsn, verp
from contacthub.bounces.dsn import MALFORMED, NOT_A_BOUNCE, ParsedBounce, parse_bounce
from tests.bounces.support import SIGNER

FIXTURES = Path(__file__).parent / "fixtures"
DELIVERY = 4242
GUID = "0c7e1f52-8d1e-4f4b-9a55-6b1d2f3c4e5a"
MESSAGE_ID = f"<{GUID}.{DELIVERY}@example.com>"
ANNA = "anna@example.org"


def fixture(name: str, delivery: int = DELIVERY) -> bytes:
    """A fixture with the placeholders filled in: a valid token for `delivery`."""
    text = (FIXTURES / name).read_text()
    text = text.replace("@@TOKEN@@", verp.delivery_token(SIGNER, delivery))
    text = text.replace("@@GUID@@", GUID).replace("@@ID@@", str(delivery))
    return text.replace("\n", "\r\n").encode()


def parse(raw: bytes, envelope: tuple[str, ...] = ()) -> ParsedBounce:
    return parse_bounce(raw, source="imap", signer=SIGNER, envelope_recipients=envelope)


def test_a_postfix_dsn_is_a_hard_bounce_of_the_verp_delivery() -> None:
    parsed = parse(fixture("postfix_hard.eml"))
    assert parsed.rejection is None
    (event,) = parsed.events
    assert event.kind == "hard_bounce"
    assert event.source == "imap"
    assert event.delivery_id == DELIVERY
    assert event.email == ANNA
    assert event.status_code == "5.1.1"
    assert event.diagnostic is not None
    assert event.diagnostic.startswith("550 5.1.1 <anna@example.org>: Recipient address rejected")
    assert event.event_id == "<20261207011502.3F1A22C0421@mail.example.com>"
    assert event.message_id is None  # a fallback, read only when no VERP address is there
    assert event.occurred_at == datetime(2026, 12, 7, 1, 15, 1, tzinfo=UTC)


def test_a_failed_dsn_with_a_4xx_status_is_a_soft_bounce() -> None:
    (event,) = parse(fixture("gmail_expired.eml")).events
    assert (event.kind, event.status_code, event.delivery_id) == ("soft_bounce", "4.4.7", DELIVERY)
    assert event.occurred_at == datetime(2026, 12, 7, 9, 20, 11, tzinfo=UTC)


def test_a_delay_warning_is_not_a_bounce() -> None:
    parsed = parse(fixture("postfix_delayed.eml"))
    assert parsed.events == ()
    assert parsed.rejection == NOT_A_BOUNCE
    assert "delayed" in parsed.detail


@pytest.mark.parametrize(
    ("name", "kind", "status"),
    [
        ("exim_plain.eml", "hard_bounce", "5.1.1"),
        ("exchange_plain.eml", "hard_bounce", "5.1.1"),
        # "permanent fatal errors" says the header line, but the server said 452 4.2.2.
        ("mailbox_full_plain.eml", "soft_bounce", "4.2.2"),
    ],
)
def test_plain_text_bounces_name_the_address_and_the_code(
    name: str, kind: str, status: str
) -> None:
    parsed = parse(fixture(name))
    assert parsed.rejection is None, parsed.detail
    (event,) = parsed.events
    assert (event.kind, event.email, event.status_code) == (kind, ANNA, status)
    assert event.delivery_id == DELIVERY
    assert event.diagnostic is not None
    assert status in event.diagnostic


def test_qmail_without_verp_falls_back_to_the_original_message_id() -> None:
    (event,) = parse(fixture("qmail_plain.eml")).events
    assert (event.kind, event.email, event.status_code) == ("hard_bounce", ANNA, "5.1.1")
    assert event.delivery_id is None
    assert event.message_id == MESSAGE_ID


def test_the_token_in_the_returned_headers_names_the_delivery_without_verp() -> None:
    raw = fixture("exim_plain.eml").replace(b"bounces+", b"news+")
    (event,) = parse(raw).events
    assert event.delivery_id == DELIVERY


@pytest.mark.parametrize("name", ["postfix_hard.eml", "gmail_expired.eml", "arf_abuse.eml"])
def test_without_verp_the_returned_original_names_the_delivery(name: str) -> None:
    raw = fixture(name).replace(b"bounces+", b"news+")
    (event,) = parse(raw).events
    assert event.delivery_id == DELIVERY  # its X-Contacthub-Delivery token
    assert event.message_id == MESSAGE_ID
    without_token = raw.replace(b"X-Contacthub-Delivery:", b"X-Other:")
    (event,) = parse(without_token).events
    assert event.delivery_id is None
    assert event.message_id == MESSAGE_ID
    assert event.email == ANNA


def test_the_envelope_recipient_comes_first() -> None:
    other = verp.return_path(SIGNER, 77, "bounces.example.com")
    (event,) = parse(fixture("postfix_hard.eml"), envelope=(other,)).events
    assert event.delivery_id == 77


def test_a_forged_verp_token_names_no_delivery() -> None:
    forged = fixture("qmail_plain.eml").replace(
        b"To: news@example.com", f"To: bounces+{DELIVERY}-0123456789abcdef@x.org".encode()
    )
    (event,) = parse(forged).events
    assert event.delivery_id is None


def test_an_arf_abuse_report_is_a_complaint() -> None:
    (event,) = parse(fixture("arf_abuse.eml")).events
    assert event.kind == "complaint"
    assert (event.email, event.delivery_id) == (ANNA, DELIVERY)
    assert event.event_id == "<arf-20261207-0001@feedback.hotmail.example>"
    assert event.diagnostic == "feedback-type abuse from SomeGenerator/1.0"


def test_an_arf_not_spam_report_is_not_a_complaint() -> None:
    raw = fixture("arf_abuse.eml").replace(b"Feedback-Type: abuse", b"Feedback-Type: not-spam")
    assert parse(raw).rejection == NOT_A_BOUNCE


def test_an_auto_reply_is_not_a_bounce() -> None:
    parsed = parse(fixture("vacation.eml"))
    assert parsed.rejection == NOT_A_BOUNCE
    assert "ooo-1@example.org" in parsed.detail


def test_several_recipients_give_one_event_each_with_distinct_ids() -> None:
    raw = fixture("postfix_hard.eml").replace(
        b"\r\n--3F1A22C0421.1796606102/mail.example.com\r\nContent-Description: Undelivered",
        b"\r\nFinal-Recipient: rfc822; bob@example.org\r\nAction: failed\r\nStatus: 4.2.2\r\n"
        b"\r\n--3F1A22C0421.1796606102/mail.example.com\r\nContent-Description: Undelivered",
    )
    events = parse(raw).events
    assert [(e.email, e.kind) for e in events] == [
        (ANNA, "hard_bounce"),
        ("bob@example.org", "soft_bounce"),
    ]
    assert len({e.event_id for e in events}) == 2


def test_a_dsn_without_a_message_id_is_identified_by_its_content() -> None:
    raw = fixture("postfix_hard.eml").replace(b"Message-Id:", b"X-Old-Id:")
    first, again = parse(raw).events[0], parse(raw).events[0]
    assert first.event_id.startswith("sha256:")
    assert first.event_id == again.event_id


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", MALFORMED),
        (b"   \r\n", MALFORMED),
        (b"just some words without any header\r\n", MALFORMED),
        (
            b"From: MAILER-DAEMON@x.org\r\nSubject: Undelivered Mail\r\n"
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: text/plain\r\n\r\nsorry\r\n--b--\r\n",
            MALFORMED,
        ),
        (
            b"From: MAILER-DAEMON@x.org\r\nSubject: Undelivered Mail\r\n"
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n"
            b"--b--\r\n",
            MALFORMED,
        ),
        (b"From: MAILER-DAEMON@x.org\r\nSubject: failure notice\r\n\r\nno address\r\n", MALFORMED),
        (b"From: friend@x.org\r\nSubject: hello\r\n\r\nHow are you?\r\n", NOT_A_BOUNCE),
    ],
)
def test_bad_input_gets_a_clear_rejection(raw: bytes, reason: str) -> None:
    parsed = parse(raw)
    assert parsed.events == ()
    assert parsed.rejection == reason
    assert parsed.detail


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    parsed = parse(raw)
    assert (parsed.rejection is None) == bool(parsed.events)


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(sorted(p.name for p in FIXTURES.glob("*.eml"))),
    cut=st.integers(min_value=0, max_value=4000),
    noise=st.binary(max_size=40),
)
def test_truncated_or_corrupted_reports_never_raise(name: str, cut: int, noise: bytes) -> None:
    raw = fixture(name)
    parsed = parse(raw[:cut] + noise + raw[cut + len(noise) :])
    assert (parsed.rejection is None) == bool(parsed.events)
    for event in parsed.events:
        assert event.kind in ("hard_bounce", "soft_bounce", "complaint", "delivered")
        assert event.delivery_id in (None, DELIVERY)


def test_a_plain_bounce_with_the_original_attached_reads_only_the_notice() -> None:
    # Older Exchange and Notes servers: text/plain notice + message/rfc822, no delivery-status.
    token = verp.delivery_token(SIGNER, DELIVERY)
    raw = (
        "From: postmaster@corp.example.org\r\n"
        f"To: bounces+{token}@bounces.example.com\r\n"
        "Subject: Delivery Status Notification (Failure)\r\n"
        "Message-ID: <ndr-7@corp.example.org>\r\n"
        'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
        "--m\r\nContent-Type: text/plain\r\n\r\n"
        "Your message did not reach some or all of the intended recipients.\r\n"
        "The following recipient(s) cannot be reached:\r\n\r\n"
        "      anna@example.org on 07/12/2026 01:18\r\n"
        "            452 4.2.2 Mailbox over quota\r\n"
        "--m\r\nContent-Type: message/rfc822\r\n\r\n"
        "From: news@example.com\r\nTo: bob@example.org\r\nSubject: Spring news\r\n\r\n"
        "Write to carol@example.org; 550 5.1.1 is just text here.\r\n"
        "--m--\r\n"
    ).encode()
    (event,) = parse(raw).events
    assert (event.email, event.kind, event.status_code) == (ANNA, "soft_bounce", "4.2.2")
    assert event.delivery_id == DELIVERY


# -- the parser's shortcut (dsn.read_message) gives the standard library's message ------------

MULTIPART = (
    "From: MAILER-DAEMON@mx.example.org\n"
    "Subject: Undelivered\n"
    'Content-Type: multipart/report; report-type=delivery-status; boundary="{b}"\n'
    "\n"
    "preamble\n"
    "{body}"
)
EDGE_CASES = {
    "plain": "--b1\nContent-Type: text/plain\n\nhello\n--b1--\nepilogue\n",
    "delimiter-like word": "--b1\n\n--b1x is not a delimiter\n--b1 \t\n\nsecond\n--b1-- \n",
    "after the closing": "--b1\n\none\n--b1--\n--b1\n\nnot a part\n--b1--\n",
    "no closing": "--b1\n\nnever closed\n",
    "nested, same boundary": (
        '--b1\nContent-Type: multipart/mixed; boundary="b1"\n\n--b1\n\ninner\n--b1--\n--b1--\n'
    ),
    "nested, own boundary": (
        '--b1\nContent-Type: multipart/alternative; boundary="b2"\n\n'
        "--b2\n\ntext\n--b2\nContent-Type: text/html\n\n<p>html</p>\n--b2--\n"
        "--b1\nContent-Type: message/rfc822\n\nSubject: original\n\nbody\n--b1--\n"
    ),
}


def _flattened(message: email.message.Message) -> bytes | str:
    try:
        return message.as_bytes()
    except UnicodeEncodeError:
        # The standard library cannot write back some corrupted headers it read (a byte it
        # decoded as U+FFFD); its text form still shows the whole message.
        return message.as_string()


def _same_as_stdlib(raw: bytes) -> None:
    mine = dsn.read_message(raw)
    theirs = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert _flattened(mine) == _flattened(theirs)
    assert [(p.get_content_type(), p.items()) for p in mine.walk()] == [
        (p.get_content_type(), p.items()) for p in theirs.walk()
    ]
    assert (mine.preamble, mine.epilogue) == (theirs.preamble, theirs.epilogue)


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.eml")))
def test_the_parser_shortcut_reads_every_fixture_as_the_standard_library_does(name: str) -> None:
    _same_as_stdlib(fixture(name))
    _same_as_stdlib(fixture(name).replace(b"\r\n", b"\n"))


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
@pytest.mark.parametrize("line_end", ["\n", "\r\n", "\r"])
def test_the_parser_shortcut_reads_odd_multiparts_as_the_standard_library_does(
    case: str, line_end: str
) -> None:
    text = MULTIPART.format(b="b1", body=EDGE_CASES[case])
    _same_as_stdlib(text.replace("\n", line_end).encode())


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(sorted(p.name for p in FIXTURES.glob("*.eml"))),
    cut=st.integers(min_value=0, max_value=4000),
    noise=st.binary(max_size=40),
)
def test_the_parser_shortcut_reads_corrupted_reports_as_the_standard_library_does(
    name: str, cut: int, noise: bytes
) -> None:
    raw = fixture(name)
    _same_as_stdlib(raw[:cut] + noise + raw[cut + len(noise) :])


def test_the_parser_shortcut_reads_a_content_type_with_non_ascii_bytes() -> None:
    # Found by the property test above: the stand-in header could not be encoded (a 500 before).
    raw = (
        b'Content-Type: multipart/rep\xffort; boundary="abc"\r\n\r\n'
        b"--abc\r\nContent-Type: text/plain\r\n\r\nhi\r\n--abc--\r\n"
    )
    _same_as_stdlib(raw)
