"""Test sends: an issue, in any state, to a few given addresses, to see it in real mail clients.

A test copy:
- has the subject prefixed `[Test] `;
- is rendered with `compose.Tracking.NONE`: no open pixel, every link straight to its target,
  so that opening and clicking it counts nothing anywhere;
- is personalised with the subscriber's names when the address is a subscriber of the issue's
  newsletter (whatever their status), else with the placeholders' empty values (or their
  fallbacks);
- is not a delivery: no row in `deliveries`, nothing in the statistics, no VERP return path;
- goes through the SMTP server of the settings (`sending.smtp_mailer`), one message per address,
  with the Message-ID `<{issue guid}.test.{random}@{sender domain}>`.

Each address gets its own result: a refusal by the server (e.g. `550 5.1.1 No such user`) is
reported for that address and the others still go. A server that cannot be reached, or that
refuses our login, is an error (503 `smtp_unavailable`) naming the server's answer. The audit log
records `issue.test_sent` with the addresses the server accepted and those it refused, once
the run is over (nothing is recorded when nothing could be sent at all).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from contacthub.audit import service as audit
from contacthub.email import compose, repository, service
from contacthub.email.hashing import LinkSigner
from contacthub.email.sender import Mailer, MailerUnavailable, SendError, build_message
from contacthub.errors import InvalidInput, Unavailable
from contacthub.storage.database import Database
from contacthub.storage.models import Newsletter, Subscriber

MAX_RECIPIENTS = 10
SUBJECT_PREFIX = "[Test] "


@dataclass(frozen=True, slots=True)
class TestRefusal:
    """An address the SMTP server refused, and its answer."""

    email: str
    reason: str


@dataclass(slots=True)
class TestSendReport:
    """Which addresses the server accepted the test copy for, and which it refused."""

    issue_guid: str
    subject: str
    sent: list[str] = field(default_factory=list)
    failed: list[TestRefusal] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The report as plain data, for JSON."""
        return {
            "issue": self.issue_guid,
            "subject": self.subject,
            "sent": list(self.sent),
            "failed": [{"email": f.email, "reason": f.reason} for f in self.failed],
        }


def clean_recipients(addresses: Sequence[str], *, field: str = "to") -> list[str]:
    """1 to 10 valid addresses, lower-cased, each once, in the order given."""
    cleaned: list[str] = []
    for address in addresses:
        normalised = service.normalise_email(address, "test recipient", field=field)
        if normalised not in cleaned:
            cleaned.append(normalised)
    if not 1 <= len(cleaned) <= MAX_RECIPIENTS:
        raise InvalidInput(
            f"A test send goes to 1 to {MAX_RECIPIENTS} addresses ({len(cleaned)} given).",
            code="invalid_recipients",
            field=field,
        )
    return cleaned


def send_test(
    database: Database,
    issue_guid: str,
    addresses: Sequence[str],
    mailer: Mailer,
    *,
    signer: LinkSigner,
    actor: str | None = None,
) -> TestSendReport:
    """Send a test copy of the issue to each address (see the module docstring)."""
    recipients = clean_recipients(addresses)
    with database.read() as session:
        issue = service.get_issue(session, issue_guid)
        newsletter = session.get_one(Newsletter, issue.newsletter_id)
        links = [
            compose.TrackedLink(link.guid, link.target_url, link.hidden)
            for link in repository.links_of(session, issue.id)
        ]
        template = compose.IssueTemplate(
            issue.guid, SUBJECT_PREFIX + issue.subject, issue.html_body, issue.text_body
        )
        known = {
            s.email: s
            for s in session.scalars(
                select(Subscriber).where(
                    Subscriber.newsletter_id == newsletter.id, Subscriber.email.in_(recipients)
                )
            )
        }
        people = [
            compose.Recipient(
                address,
                known[address].first_name if address in known else None,
                known[address].last_name if address in known else None,
            )
            for address in recipients
        ]
        sender_name, sender_email = newsletter.sender_name, newsletter.sender_email
        prepared = compose.PreparedIssue(template, links, newsletter.base_url)
        report = TestSendReport(str(issue.guid), issue.subject)

    domain = sender_email.rpartition("@")[2]
    for who in people:
        rendered = prepared.render(who, signer, tracking=compose.Tracking.NONE)
        message_id = f"<{report.issue_guid}.test.{secrets.token_hex(8)}@{domain}>"
        try:
            mailer.send(
                build_message(rendered, sender_name, sender_email, who, message_id=message_id)
            )
        except MailerUnavailable as error:
            if not report.sent and not report.failed:
                raise Unavailable(
                    f"The SMTP server could not take the test send: {error.reason}",
                    code="smtp_unavailable",
                ) from None
            # Part went out: report the rest as not sent, and record what did.
            report.failed += [
                TestRefusal(w.email, f"not sent: {error.reason}")
                for w in people[people.index(who) :]
            ]
            break
        except SendError as error:
            report.failed.append(TestRefusal(who.email, error.reason))
        except ValueError as error:  # an address no message can carry
            report.failed.append(TestRefusal(who.email, str(error)))
        else:
            report.sent.append(who.email)

    if actor is not None:
        with database.write() as session:
            details: dict[str, Any] = {"to": report.sent}
            if report.failed:
                details["failed"] = [f.email for f in report.failed]
            audit.record(session, actor, "issue.test_sent", report.issue_guid, details)
    return report
