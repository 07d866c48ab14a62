"""Sending an email issue to its newsletter's subscribers: resumable, never twice.

A run:
1. creates a pending delivery for every subscribed subscriber who has none yet (so a send run
   after new subscriptions reaches the newcomers, and only them), marks the deliveries of
   subscribers who unsubscribed meanwhile `skipped` (and un-skips those who came back), and
   moves the issue from `draft` to `sending`. An issue sent to a contact group goes only to the
   subscribers whose contact is a member of the group when the run starts: the intersection is
   part of the same INSERT … SELECT (`group_members`, kept live by groups/membership.py), and
   is taken again by every later run, so a contact who joined the group (and subscribed) since
   gets it, and the unsent deliveries of those who left it are `skipped` ("left the group
   before sending"; un-skipped if they come back before the issue is sent to them);
2. then, chunk by chunk: claims the next deliveries (pending, or deferred with attempts left) by
   marking them `sending` and commits; renders and sends each copy with no transaction open
   (SMTP is slow; on SQLite an open write transaction would block every other writer); records
   each result, `sent` (with the time the server accepted it), `deferred` (a temporary failure,
   tried again by the next run, up to `max_attempts`) or `failed` (a permanent one), and commits;
3. marks the issue `sent` once no delivery is left to send.

At most once. A delivery is marked `sent` only after the SMTP server accepted the message, in a
commit after the SMTP exchange. If the process dies between the two, the deliveries of that
chunk stay `sending`: "in doubt", perhaps delivered, perhaps not. They are never sent again on
their own, so nobody gets an email twice; the report counts them, and the operator may choose
at-least-once for them with `retry_in_doubt` (`contacthub issue send --retry-in-doubt`). The copy
sent again carries the same Message-ID, which lets mail systems that de-duplicate (Gmail does)
show it once. The same claim makes two runs at once safe: each delivery is claimed by one run.

If the SMTP server cannot be reached or refuses our login (`MailerUnavailable`), the run stops
and puts the deliveries it had claimed but not sent back, attempts uncounted: run it again later.

A run started by someone (`actor`) is recorded in the audit log as `issue.send_started`, in the
unit of work of step 1, which moves the issue to `sending`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from contacthub.audit import service as audit
from contacthub.email import compose, repository, service
from contacthub.email.hashing import LinkSigner
from contacthub.email.repository import DEFERRED, FAILED, PENDING, SENDING, SENT, ClaimedDelivery
from contacthub.email.sender import (
    Mailer,
    MailerUnavailable,
    SendError,
    SmtpMailer,
    build_message,
)
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import Delivery, EmailIssue, Newsletter
from contacthub.storage.types import utcnow

DEFAULT_CHUNK_SIZE = 100
MAX_ATTEMPTS = 3
MAX_REPORTED_FAILURES = 10_000

Progress = Callable[[int, int], None]
"""Called with (messages handled in this run, messages this run has to handle)."""


@dataclass(frozen=True, slots=True)
class Failure:
    """A recipient whose copy did not go out in this run, and why."""

    email: str
    status: str  # deferred (tried again by the next run) or failed
    reason: str


@dataclass(slots=True)
class SendReport:
    """What a send run did, and where the issue stands after it."""

    issue_guid: str
    status: str = "sending"
    to_send: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    new_deliveries: int = 0
    skipped_unsubscribed: int = 0
    # The group the issue is sent to (None: every subscriber); `skipped_left_group` counts the
    # deliveries this run skipped because their contact left it, `not_members` the subscribed
    # subscribers left out because they are not members (and have not had the issue).
    group: str | None = None
    skipped_left_group: int = 0
    not_members: int = 0
    in_doubt: int = 0
    stopped: str | None = None
    failures: list[Failure] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The report as plain data, for JSON."""
        return {
            "issue": self.issue_guid,
            "status": self.status,
            "to_send": self.to_send,
            "sent": self.sent,
            "deferred": self.deferred,
            "failed": self.failed,
            "new_deliveries": self.new_deliveries,
            "skipped_unsubscribed": self.skipped_unsubscribed,
            "group": self.group,
            "skipped_left_group": self.skipped_left_group,
            "not_members": self.not_members,
            "in_doubt": self.in_doubt,
            "stopped": self.stopped,
            "failures": [
                {"email": f.email, "status": f.status, "reason": f.reason} for f in self.failures
            ],
            "totals": dict(self.totals),
        }


@dataclass(frozen=True, slots=True)
class _Outcome:
    delivery_id: int
    status: str  # sent, deferred or failed
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class _Sender:
    name: str
    email: str
    domain: str


def smtp_mailer(settings: Settings) -> SmtpMailer:
    """The SMTP mailer the configuration describes."""
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    return SmtpMailer(
        settings.smtp_host,
        settings.smtp_port,
        tls=settings.smtp_tls,
        username=settings.smtp_username,
        password=password,
        timeout=settings.smtp_timeout,
    )


def send_issue(
    database: Database,
    issue_guid: str,
    mailer: Mailer,
    *,
    signer: LinkSigner,
    progress: Progress | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    max_attempts: int = MAX_ATTEMPTS,
    retry_in_doubt: bool = False,
    actor: str | None = None,
) -> SendReport:
    """Send the issue to every subscriber who has not had it yet (see the module docstring)."""
    with database.write() as session:
        issue = repository.lock_issue(session, service.get_issue(session, issue_guid).id)
        service.refuse_if_group_deleted(issue)
        report = SendReport(issue_guid=str(issue.guid))
        prepared, sender = _prepare(session, issue)
        if retry_in_doubt:
            repository.reset_in_doubt(session, issue.id)
        report.group = service.group_name_of(session, issue)
        report.new_deliveries = repository.create_missing_deliveries(session, issue)
        repository.unskip_returned(session, issue)
        report.skipped_unsubscribed = repository.skip_unsubscribed_deliveries(session, issue.id)
        report.skipped_left_group = repository.skip_non_member_deliveries(session, issue)
        report.not_members = repository.left_out_count(session, issue)
        report.to_send = repository.sendable_count(session, issue.id, max_attempts)
        issue.status = "sending"
        issue_id = issue.id
        if actor is not None:
            newsletter = session.get_one(Newsletter, issue.newsletter_id)
            details = {"newsletter": newsletter.name, "subject": issue.subject}
            if report.group is not None:
                details["group"] = report.group
            if retry_in_doubt:
                details["retry_in_doubt"] = "yes"
            audit.record(session, actor, "issue.send_started", str(issue.guid), details)

    after_id = 0
    while report.stopped is None:
        with database.write() as session:
            ids = repository.next_sendable_ids(
                session, issue_id, after_id=after_id, limit=chunk_size, max_attempts=max_attempts
            )
            claimed = repository.claim_deliveries(session, ids, max_attempts)
        if not ids:
            break
        after_id = ids[-1]
        _send_chunk(
            database, claimed, prepared, sender, mailer, signer, report, max_attempts, progress
        )

    with database.write() as session:
        issue = repository.lock_issue(session, issue_id)
        counts = repository.delivery_counts(session, issue_id)
        left = repository.sendable_count(session, issue_id, max_attempts)
        if left == 0 and counts[SENDING] == 0:
            issue.status = "sent"
            issue.sent_at = issue.sent_at or utcnow()
        report.status = issue.status
        report.in_doubt = counts[SENDING]
        report.totals = counts
    return report


def _send_chunk(
    database: Database,
    claimed: Sequence[ClaimedDelivery],
    prepared: compose.PreparedIssue,
    sender: _Sender,
    mailer: Mailer,
    signer: LinkSigner,
    report: SendReport,
    max_attempts: int,
    progress: Progress | None,
) -> None:
    """Send the claimed deliveries, then record what happened, whatever stopped the loop.

    A message whose SMTP exchange was cut short by something unexpected (a crash, Ctrl-C) stays
    `sending`, in doubt; the ones not yet tried are given back.
    """
    outcomes: list[_Outcome] = []
    started = 0
    try:
        for recipient in claimed:
            started += 1
            try:
                mailer.send(_message(prepared, sender, recipient, signer))
            except MailerUnavailable as error:
                started -= 1  # not tried: the server was not there
                report.stopped = error.reason
                break
            except SendError as error:
                give_up = error.permanent or recipient.attempts >= max_attempts
                status = FAILED if give_up else DEFERRED
                outcome = _Outcome(recipient.delivery_id, status, error.reason)
            except ValueError as error:  # an address no message can carry
                outcome = _Outcome(recipient.delivery_id, FAILED, str(error))
            else:
                outcome = _Outcome(recipient.delivery_id, SENT)
            outcomes.append(outcome)
            _count(report, outcome, recipient)
            if progress is not None:
                progress(report.sent + report.deferred + report.failed, report.to_send)
    finally:
        with database.write() as session:
            _record(session, outcomes)
            _release(session, claimed[started:])


def _prepare(session: Session, issue: EmailIssue) -> tuple[compose.PreparedIssue, _Sender]:
    """The issue parsed once for all its recipients, and who sends it."""
    newsletter = session.get_one(Newsletter, issue.newsletter_id)
    links = [
        compose.TrackedLink(link.guid, link.target_url, link.hidden)
        for link in repository.links_of(session, issue.id)
    ]
    template = compose.IssueTemplate(issue.guid, issue.subject, issue.html_body, issue.text_body)
    prepared = compose.PreparedIssue(template, links, newsletter.base_url)
    domain = newsletter.sender_email.rpartition("@")[2]
    return prepared, _Sender(newsletter.sender_name, newsletter.sender_email, domain)


def _message(
    prepared: compose.PreparedIssue, sender: _Sender, recipient: ClaimedDelivery, signer: LinkSigner
) -> EmailMessage:
    who = compose.Recipient(recipient.email, recipient.first_name, recipient.last_name)
    tracking = compose.Tracking.PERSONAL if recipient.tracked else compose.Tracking.AGGREGATE
    rendered = prepared.render(who, signer, tracking)
    # One Message-ID per delivery, the same if it is ever sent again (see the module docstring).
    message_id = f"<{prepared.issue.guid}.{recipient.delivery_id}@{sender.domain}>"
    return build_message(rendered, sender.name, sender.email, who, message_id=message_id)


def _count(report: SendReport, outcome: _Outcome, recipient: ClaimedDelivery) -> None:
    if outcome.status == SENT:
        report.sent += 1
        return
    if outcome.status == DEFERRED:
        report.deferred += 1
    else:
        report.failed += 1
    if len(report.failures) < MAX_REPORTED_FAILURES:
        report.failures.append(Failure(recipient.email, outcome.status, outcome.reason or ""))


def _record(session: Session, outcomes: Sequence[_Outcome]) -> None:
    """Store a chunk's results: one executemany per state, not one statement per delivery."""
    now = utcnow()
    for status in (SENT, DEFERRED, FAILED):
        rows = [
            {
                "id": o.delivery_id,
                "status": status,
                "error": o.reason,
                "sent_at": now if status == SENT else None,
            }
            for o in outcomes
            if o.status == status
        ]
        if rows:
            session.execute(update(Delivery), rows)


def _release(session: Session, unsent: Sequence[ClaimedDelivery]) -> None:
    """Give back deliveries claimed but not tried, their attempt uncounted."""
    rows = [
        {
            "id": r.delivery_id,
            "status": PENDING if r.attempts <= 1 else DEFERRED,
            "attempts": r.attempts - 1,
        }
        for r in unsent
    ]
    if rows:
        session.execute(update(Delivery), rows)
