"""Test data for the bounce tests: issues sent to subscribers, as a send run leaves them.

The newsletter, subscribers and issues go through the hub's services; the deliveries are
written directly (status sent), like tests/email/tracking_support.py does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from contacthub.bounces import verp
from contacthub.email import service
from contacthub.email.hashing import LinkSigner
from contacthub.storage.database import Database
from contacthub.storage.models import Delivery
from contacthub.storage.types import utcnow

NEWSLETTER = "Weekly"
SENDER = "news@example.com"
BOUNCE_DOMAIN = "bounces.example.com"
SIGNER = LinkSigner(["test-secret"])  # the `settings` fixture's secret_key


@dataclass
class SentIssue:
    """One issue sent to some addresses: its guid and each address's delivery id."""

    guid: str
    deliveries: dict[str, int] = field(default_factory=dict)

    def message_id(self, email: str) -> str:
        """The Message-ID the copy to `email` went out with (email/sending.py)."""
        return f"<{self.guid}.{self.deliveries[email]}@example.com>"

    def token(self, email: str) -> str:
        return verp.delivery_token(SIGNER, self.deliveries[email])

    def return_path(self, email: str) -> str:
        return verp.return_path(SIGNER, self.deliveries[email], BOUNCE_DOMAIN)


def sent_issues(db: Database, emails: list[str], *, issues: int = 1) -> list[SentIssue]:
    """`issues` issues of one newsletter, each sent to every address of `emails`."""
    sent: list[SentIssue] = []
    with db.write() as session:
        service.create_newsletter(session, NEWSLETTER, "The Team", SENDER, "https://example.com")
        subscribers = [service.add_subscriber(session, NEWSLETTER, email) for email in emails]
        for number in range(issues):
            issue = service.create_issue(session, NEWSLETTER, f"Issue {number}", "<p>Hi</p>")
            issue.status = "sent"
            deliveries = [
                Delivery(
                    issue_id=issue.id,
                    subscriber_id=subscriber.id,
                    email=subscriber.email,
                    status="sent",
                    attempts=1,
                    sent_at=utcnow(),
                )
                for subscriber in subscribers
            ]
            session.add_all(deliveries)
            session.flush()
            sent.append(SentIssue(str(issue.guid), {d.email: d.id for d in deliveries}))
    return sent
