"""The preference page: every email's signed link to the address's subscriptions.

`/contacthub/preferences?issueguid=…&email=…&hash=…` (compose adds it to every copy, next to the
unsubscribe link; purpose `preferences`, so neither link opens the other's page). It lists the
newsletters the address is subscribed to (and those it left, to join again). A GET changes
nothing; a POST to the same URL, authenticated by the signed link alone (no session, so nothing
for another site to ride on), saves the choices or leaves everything.

Joining a newsletter again here is proven by the signed link (it reached this mailbox); on a
double opt-in newsletter it is stored like a confirmation: an agreement to the newsletter's
consent, current revision, with the IP address, user agent and evidence `preference_page`.
Leaving is `email.service.unsubscribe`, counted against the issue whose link was used for that
issue's own newsletter. The subscriber is not audited (as with the unsubscribe link).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from contacthub.consents import repository as consent_repository
from contacthub.email import service
from contacthub.email.hashing import LinkSigner, Purpose, normalize_email
from contacthub.email.repository import SUBSCRIBED, UNSUBSCRIBED
from contacthub.errors import Forbidden
from contacthub.events import changes
from contacthub.groups.queue import enqueue_contacts
from contacthub.identifiers import guid_or_none
from contacthub.storage.models import ConsentAgreement, EmailIssue, Newsletter, Subscriber
from contacthub.storage.types import utcnow
from contacthub.subscriptions.optin import Visitor


@dataclass(frozen=True, slots=True)
class PreferenceLink:
    """What a preference link names, as given (checked by `_check`)."""

    issue: str | None
    email: str | None
    hash: str | None


@dataclass(frozen=True, slots=True)
class Choice:
    """One newsletter on the page: `subscribed` or not (it was left)."""

    guid: uuid.UUID
    name: str
    subscribed: bool


@dataclass(frozen=True, slots=True)
class Preferences:
    """The address and its newsletters, by name."""

    email: str
    choices: list[Choice]


def _check(signer: LinkSigner, link: PreferenceLink) -> str:
    if not signer.verify(Purpose.PREFERENCES, link.issue, link.email, link.hash):
        raise Forbidden(
            "This link is not valid: use the link from one of our emails.", code="invalid_hash"
        )
    assert link.email is not None
    return normalize_email(link.email)


def _rows(session: Session, email: str) -> list[tuple[Subscriber, Newsletter]]:
    query = (
        select(Subscriber, Newsletter)
        .join(Newsletter, Newsletter.id == Subscriber.newsletter_id)
        .where(Subscriber.email == email, Subscriber.status.in_((SUBSCRIBED, UNSUBSCRIBED)))
        .order_by(Newsletter.name)
    )
    return [(subscriber, newsletter) for subscriber, newsletter in session.execute(query).all()]


def preferences(session: Session, signer: LinkSigner, link: PreferenceLink) -> Preferences:
    """The page's content; changes nothing."""
    email = _check(signer, link)
    return Preferences(
        email,
        [Choice(n.guid, n.name, s.status == SUBSCRIBED) for s, n in _rows(session, email)],
    )


def save(
    session: Session,
    signer: LinkSigner,
    link: PreferenceLink,
    keep: Collection[str],
    visitor: Visitor,
) -> Preferences:
    """Subscribe the address to the newsletters whose GUIDs are in `keep`, and to no other of
    those listed; an empty `keep` leaves everything."""
    email = _check(signer, link)
    wanted = {guid for guid in (guid_or_none(text) for text in keep) if guid is not None}
    issue_key = guid_or_none(link.issue)
    issue = (
        session.scalar(select(EmailIssue).where(EmailIssue.guid == issue_key))
        if issue_key is not None
        else None
    )
    for subscriber, newsletter in _rows(session, email):
        if subscriber.status == SUBSCRIBED and newsletter.guid not in wanted:
            # Counted against the issue whose link was used, if it is this newsletter's.
            own = issue if issue is not None and issue.newsletter_id == newsletter.id else None
            service.unsubscribe(session, subscriber, own, source="preferences")
        elif subscriber.status == UNSUBSCRIBED and newsletter.guid in wanted:
            _join_again(session, subscriber, newsletter, visitor)
    return preferences(session, signer, link)


def _join_again(
    session: Session, subscriber: Subscriber, newsletter: Newsletter, visitor: Visitor
) -> None:
    now = utcnow()
    subscriber.status = SUBSCRIBED
    if newsletter.double_opt_in and newsletter.consent_id is not None:
        revision = consent_repository.current_revision(session, newsletter.consent_id)
        if revision is not None:
            agreement = ConsentAgreement(
                contact_id=subscriber.contact_id,
                consent_id=newsletter.consent_id,
                revision_id=revision.id,
                agreed=True,
                ip=visitor.ip,
                user_agent=(visitor.user_agent or "")[:500] or None,
                evidence=json.dumps(
                    {
                        "method": "preference_page",
                        "newsletter": newsletter.name,
                        "newsletter_guid": str(newsletter.guid),
                        "email": subscriber.email,
                        "revision": revision.number,
                        "confirmed_at": now.isoformat(),
                    }
                ),
                created_at=now,
            )
            session.add(agreement)
            session.flush()
            changes.consent_recorded(
                session,
                subscriber.contact_id,
                newsletter.consent_id,
                revision.id,
                agreed=True,
                source="preferences",
            )
            subscriber.confirmation_agreement_id = agreement.id
        subscriber.confirmed_at = now
    session.flush()
    enqueue_contacts(session, [subscriber.contact_id])
