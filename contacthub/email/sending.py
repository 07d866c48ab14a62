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
   before sending"; un-skipped if they come back before the issue is sent to them).
   Deliveries to suppressed addresses (suppressions/service.py) are made `skipped` with
   "suppressed: <reason>" in the same INSERT … SELECT, or skipped when the address was
   suppressed since (and un-skipped when the suppression was lifted before it went out);
2. then, chunk by chunk: claims the next deliveries (pending, or deferred whose next try is
   due) by marking them `sending` and commits; the claim's UPDATE re-checks the suppression list,
   so an address suppressed mid-run gets nothing. With a send-rate limit (email/ratelimit.py)
   the same short transaction takes a token per claimed delivery, and the run sleeps when the
   bucket is empty. Then it renders and sends each copy with no transaction open (SMTP is slow;
   on SQLite an open write transaction would block every other writer), and records each
   result, `sent` (with the time the server accepted it), `deferred` (a temporary failure: SMTP
   4xx, a timeout, a dropped connection) or `failed` (a permanent one), and commits;
3. marks the issue `sent` once no delivery is left to send: while deferred ones wait for their
   next try the issue stays `sending`.

Temporary failures. A deferred delivery is tried again after `retry_delay × 2^(attempts − 1)`
seconds, ±20 % jitter (so that a server's many deferrals do not all come back at once), by the
next run or by the hub's retry job (`retry_due`), up to `max_attempts` tries; then it is
`failed` with the last reason. The report lists the deferred recipients with their next try.

Every copy names its delivery: `X-Contacthub-Delivery: <id>-<tag>` and the metadata headers of
the providers whose webhooks echo them (`delivery_headers`), and, with a bounce domain, the
envelope sender is the delivery's VERP address `bounces+<id>-<tag>@<bounce domain>`
(bounces/verp.py), so that a bounce or a provider's event finds its delivery.

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

import json
import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from contacthub.audit import service as audit
from contacthub.bounces import verp
from contacthub.email import compose, ratelimit, repository, service
from contacthub.email.hashing import LinkSigner
from contacthub.email.ratelimit import RateLimiter
from contacthub.email.repository import (
    DEFERRED,
    FAILED,
    PENDING,
    SENDING,
    SENT,
    ClaimedDelivery,
)
from contacthub.email.sender import (
    Mailer,
    MailerUnavailable,
    MessageBuilder,
    OutgoingMessage,
    SendError,
    SmtpMailer,
)
from contacthub.events import changes
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import Delivery, EmailIssue, Newsletter
from contacthub.storage.types import utcnow

DEFAULT_CHUNK_SIZE = 100
MAX_REPORTED_FAILURES = 10_000
RETRY_JITTER = 0.2  # a deferred delivery's delay is stretched or shrunk by up to 20 %

Progress = Callable[[int, int], None]
"""Called with (messages handled in this run, messages this run has to handle)."""


@dataclass(frozen=True, slots=True)
class SendPolicy:
    """How a run retries temporary failures and which envelope its copies carry.

    The settings' values (`policy_of`): `send_max_attempts`, `send_retry_delay`,
    `bounce_domain`.
    """

    max_attempts: int = 5
    retry_delay: float = 60.0
    bounce_domain: str | None = None

    def next_attempt_at(
        self, attempts: int, now: datetime, jitter: Callable[[], float] = random.random
    ) -> datetime:
        """When a delivery deferred after its `attempts`-th try is tried again."""
        delay = self.retry_delay * 2 ** max(0, attempts - 1)
        delay *= 1 + RETRY_JITTER * (2 * jitter() - 1)
        return now + timedelta(seconds=delay)


def policy_of(settings: Settings) -> SendPolicy:
    """The send policy the settings describe."""
    return SendPolicy(
        max_attempts=settings.send_max_attempts,
        retry_delay=settings.send_retry_delay,
        bounce_domain=settings.bounce_domain or None,
    )


def delivery_headers(token: str) -> dict[str, str]:
    """The headers that tie a copy to its delivery (`token`: `verp.delivery_token`).

    Ours, and the metadata headers of the providers whose webhooks echo them back: Amazon SES
    (message tags), SendGrid (unique arguments), Postmark (metadata), Mailgun (variables).
    """
    return {
        verp.HEADER: token,
        "X-SES-MESSAGE-TAGS": f"contacthub_delivery={token}",
        "X-SMTPAPI": json.dumps({"unique_args": {"contacthub_delivery": token}}),
        "X-PM-Metadata-contacthub-delivery": token,
        "X-Mailgun-Variables": json.dumps({"contacthub_delivery": token}),
    }


@dataclass(frozen=True, slots=True)
class Failure:
    """A recipient whose copy did not go out in this run, and why."""

    email: str
    status: str  # deferred (tried again at `next_attempt_at`) or failed
    reason: str
    next_attempt_at: datetime | None = None


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
    # Deliveries this run skipped because their address is suppressed, per suppression reason
    # (hard_bounce, complaint, soft_bounces, manual).
    skipped_suppressed: int = 0
    suppressed_reasons: dict[str, int] = field(default_factory=dict)
    # The group the issue is sent to (None: every subscriber); `skipped_left_group` counts the
    # deliveries this run skipped because their contact left it, `not_members` the subscribed
    # subscribers left out because they are not members (and have not had the issue).
    group: str | None = None
    skipped_left_group: int = 0
    not_members: int = 0
    in_doubt: int = 0
    # Deferred deliveries of the issue after the run (this run's and earlier ones), and the
    # earliest next try among them: the hub's retry job (or the next run) sends them then.
    waiting_deferred: int = 0
    next_attempt_at: datetime | None = None
    rate_limit_wait: float = 0.0  # seconds this run waited for the send-rate limit
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
            "skipped_suppressed": self.skipped_suppressed,
            "suppressed_reasons": dict(self.suppressed_reasons),
            "group": self.group,
            "skipped_left_group": self.skipped_left_group,
            "not_members": self.not_members,
            "in_doubt": self.in_doubt,
            "waiting_deferred": self.waiting_deferred,
            "next_attempt_at": _iso(self.next_attempt_at),
            "rate_limit_wait": round(self.rate_limit_wait, 3),
            "stopped": self.stopped,
            "failures": [
                {
                    "email": f.email,
                    "status": f.status,
                    "reason": f.reason,
                    "next_attempt_at": _iso(f.next_attempt_at),
                }
                for f in self.failures
            ],
            "totals": dict(self.totals),
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@dataclass(frozen=True, slots=True)
class _Outcome:
    delivery_id: int
    status: str  # sent, deferred or failed
    reason: str | None = None
    next_attempt_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class _Sender:
    domain: str  # of the sender's address: the Message-IDs' right-hand side
    builder: MessageBuilder  # the issue's copies (From included), without an EmailMessage each


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


def rate_limiter_of(database: Database, settings: Settings) -> RateLimiter | None:
    """The send-rate limiter of the settings' SMTP server (None: no limit set)."""
    return ratelimit.limiter_for(
        database, settings.send_rate_limit, settings.smtp_host, settings.smtp_port
    )


def send_with_settings(
    database: Database,
    settings: Settings,
    issue_guid: str,
    *,
    signer: LinkSigner,
    progress: Progress | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    retry_in_doubt: bool = False,
    actor: str | None = None,
) -> SendReport:
    """`send_issue` through the settings' SMTP server, with their retry policy, bounce domain
    and send-rate limit: what the CLI, the admin, the API and the hub's jobs run."""
    with smtp_mailer(settings) as mailer:
        return send_issue(
            database,
            issue_guid,
            mailer,
            signer=signer,
            policy=policy_of(settings),
            rate_limiter=rate_limiter_of(database, settings),
            progress=progress,
            chunk_size=chunk_size,
            retry_in_doubt=retry_in_doubt,
            actor=actor,
        )


def send_issue(
    database: Database,
    issue_guid: str,
    mailer: Mailer,
    *,
    signer: LinkSigner,
    policy: SendPolicy = SendPolicy(),
    rate_limiter: RateLimiter | None = None,
    progress: Progress | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    retry_in_doubt: bool = False,
    actor: str | None = None,
) -> SendReport:
    """Send the issue to every subscriber who has not had it yet (see the module docstring)."""
    max_attempts = policy.max_attempts
    with database.write() as session:
        issue = repository.lock_issue(session, service.get_issue(session, issue_guid).id)
        service.refuse_if_group_deleted(issue)
        report = SendReport(issue_guid=str(issue.guid))
        prepared, sender = _prepare(session, issue)
        if retry_in_doubt:
            repository.reset_in_doubt(session, issue.id)
        report.group = service.group_name_of(session, issue)
        suppressed_before = repository.suppressed_counts(session, issue.id)
        report.new_deliveries = repository.create_missing_deliveries(session, issue)
        repository.unskip_returned(session, issue)
        report.skipped_unsubscribed = repository.skip_unsubscribed_deliveries(session, issue.id)
        repository.skip_suppressed_deliveries(session, issue.id)
        report.skipped_left_group = repository.skip_non_member_deliveries(session, issue)
        repository.fail_exhausted(session, issue.id, max_attempts)
        report.not_members = repository.left_out_count(session, issue)
        report.to_send = repository.sendable_count(session, issue.id, max_attempts, utcnow())
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
        ids, claimed, wait = _claim_chunk(
            database, issue_id, after_id, chunk_size, max_attempts, rate_limiter
        )
        if wait and rate_limiter is not None:
            report.rate_limit_wait += wait
            rate_limiter.sleep(wait)
            continue
        if not ids:
            break
        after_id = ids[-1]
        _send_chunk(database, claimed, prepared, sender, mailer, signer, report, policy, progress)

    _finish(database, issue_id, report, suppressed_before)
    return report


def _claim_chunk(
    database: Database,
    issue_id: int,
    after_id: int,
    chunk_size: int,
    max_attempts: int,
    rate_limiter: RateLimiter | None,
) -> tuple[list[int], list[ClaimedDelivery], float]:
    """Claim the next chunk in one short transaction: (its delivery ids, the deliveries this
    run got, seconds to wait for the send-rate limit when it gave no token)."""
    with database.write() as session:
        now = utcnow()
        ids = repository.next_sendable_ids(
            session,
            issue_id,
            after_id=after_id,
            limit=chunk_size,
            max_attempts=max_attempts,
            now=now,
        )
        wait = 0.0
        if ids and rate_limiter is not None:
            # A token per message, taken in the claim's own transaction (no extra commit).
            grant = rate_limiter.take(session, len(ids))
            ids, wait = ids[: grant.taken], grant.wait
        return ids, repository.claim_deliveries(session, ids, max_attempts, now), wait


def _finish(
    database: Database, issue_id: int, report: SendReport, suppressed_before: dict[str, int]
) -> None:
    """Mark the issue sent when nothing is left to send; complete the report."""
    with database.write() as session:
        issue = repository.lock_issue(session, issue_id)
        # Addresses suppressed during the run were not claimed: say why they got nothing.
        repository.skip_suppressed_deliveries(session, issue_id)
        counts = repository.delivery_counts(session, issue_id)
        if counts[PENDING] == counts[DEFERRED] == counts[SENDING] == 0:
            issue.status = "sent"
            issue.sent_at = issue.sent_at or utcnow()
        report.status = issue.status
        report.in_doubt = counts[SENDING]
        report.totals = counts
        suppressed_after = repository.suppressed_counts(session, issue_id)
        report.waiting_deferred, report.next_attempt_at = repository.next_deferred(
            session, issue_id
        )
    # This run's suppressed skips: the issue's, less those it had before the run.
    report.suppressed_reasons = {
        reason: count - suppressed_before.get(reason, 0)
        for reason, count in sorted(suppressed_after.items())
        if count > suppressed_before.get(reason, 0)
    }
    report.skipped_suppressed = sum(report.suppressed_reasons.values())


def _send_chunk(
    database: Database,
    claimed: Sequence[ClaimedDelivery],
    prepared: compose.PreparedIssue,
    sender: _Sender,
    mailer: Mailer,
    signer: LinkSigner,
    report: SendReport,
    policy: SendPolicy,
    progress: Progress | None,
) -> None:
    """Send the claimed deliveries, then record what happened, whatever stopped the loop.

    A message whose SMTP exchange was cut short by something unexpected (a crash, Ctrl-C) stays
    `sending`, in doubt; the ones not yet tried are given back.
    """
    outcomes: list[_Outcome] = []
    started = 0

    def build(recipient: ClaimedDelivery) -> OutgoingMessage | ValueError:
        token = verp.delivery_token(signer, recipient.delivery_id)
        try:
            return _message(prepared, sender, recipient, signer, token)
        except ValueError as error:  # an address no message can carry
            return error

    # The next copy is built in a thread while this one is with the SMTP server: building is
    # pure Python and runs while the main thread waits on the socket (which releases the GIL),
    # so the server's work and ours overlap instead of adding up.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="build") as builder:
        upcoming = builder.submit(build, claimed[0]) if claimed else None
        try:
            for index, recipient in enumerate(claimed):
                assert upcoming is not None
                message = upcoming.result()
                if index + 1 < len(claimed):
                    upcoming = builder.submit(build, claimed[index + 1])
                started += 1
                envelope_from = (
                    verp.return_path(signer, recipient.delivery_id, policy.bounce_domain)
                    if policy.bounce_domain
                    else None
                )
                try:
                    if isinstance(message, ValueError):
                        raise message
                    mailer.send(message, envelope_from=envelope_from)
                except MailerUnavailable as error:
                    started -= 1  # not tried: the server was not there
                    report.stopped = error.reason
                    break
                except SendError as error:
                    outcome = _failed(recipient, error, policy)
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


def _failed(recipient: ClaimedDelivery, error: SendError, policy: SendPolicy) -> _Outcome:
    """A permanent failure, or the last try: failed; else deferred until its next try."""
    if error.permanent or recipient.attempts >= policy.max_attempts:
        return _Outcome(recipient.delivery_id, FAILED, error.reason)
    next_try = policy.next_attempt_at(recipient.attempts, utcnow())
    return _Outcome(recipient.delivery_id, DEFERRED, error.reason, next_try)


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
    builder = MessageBuilder(newsletter.sender_name, newsletter.sender_email)
    return prepared, _Sender(domain, builder)


def _message(
    prepared: compose.PreparedIssue,
    sender: _Sender,
    recipient: ClaimedDelivery,
    signer: LinkSigner,
    token: str,
) -> OutgoingMessage:
    who = compose.Recipient(recipient.email, recipient.first_name, recipient.last_name)
    tracking = compose.Tracking.PERSONAL if recipient.tracked else compose.Tracking.AGGREGATE
    rendered = prepared.render(who, signer, tracking)
    # One Message-ID per delivery, the same if it is ever sent again (see the module docstring).
    message_id = f"<{prepared.issue.guid}.{recipient.delivery_id}@{sender.domain}>"
    return sender.builder.build(
        rendered, who, message_id=message_id, extra_headers=delivery_headers(token)
    )


def _count(report: SendReport, outcome: _Outcome, recipient: ClaimedDelivery) -> None:
    if outcome.status == SENT:
        report.sent += 1
        return
    if outcome.status == DEFERRED:
        report.deferred += 1
    else:
        report.failed += 1
    if len(report.failures) < MAX_REPORTED_FAILURES:
        report.failures.append(
            Failure(recipient.email, outcome.status, outcome.reason or "", outcome.next_attempt_at)
        )


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
                "next_attempt_at": o.next_attempt_at,
            }
            for o in outcomes
            if o.status == status
        ]
        if rows:
            session.execute(update(Delivery), rows)
    sent = [o.delivery_id for o in outcomes if o.status == SENT]
    changes.emails_sent(session, sent, now)  # no query unless an endpoint wants email.sent


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
