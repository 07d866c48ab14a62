"""Double opt-in: public subscriptions, the confirmation email, one-click confirmation, expiry.

A subscription through the public form or API (`/subscribe/{newsletter guid}`, see
`endpoints`) of a double opt-in newsletter leaves the subscriber `unconfirmed` (never mailed:
sending takes `subscribed` only) and sends one short email with the newsletter's consent (its
short text, current revision, in the subscriber's language or the consent's default) and a signed
link. Following the link confirms at once: the subscriber becomes `subscribed` with
`confirmed_at`, and a `ConsentAgreement` of the newsletter's consent records the revision the
email showed, the time, the IP address, the user agent and evidence (JSON) — legal proof.

Rules:
- The link carries the newsletter GUID, the address, the revision and language shown and the
  time the email was sent, all bound by an HMAC (`LinkSigner.sign_parts`, purpose `confirm`).
  It works until the subscription would have expired (`unconfirmed_subscriber_hours`).
- A confirmation email goes to an address at most once per `RESEND_AFTER` per newsletter:
  subscribing again sooner changes nothing and sends nothing (nobody can flood an inbox
  through the form). The slot is taken in the same transaction as the subscription, before
  sending, so two requests at once send one email; a failed send frees it again.
- Answers are the same whether the address was new, unconfirmed, subscribed or suppressed: the
  public form does not tell strangers who is subscribed.
- Without double opt-in the public form subscribes at once (an unsubscribed address too: the
  person asks for it).
- Unconfirmed subscribers expire after `unconfirmed_subscriber_hours` (the hub's job calls
  `expire_unconfirmed`): deleted, or back to `unsubscribed` if they had unsubscribed before
  (their unsubscribe stays in the issue statistics).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from html import escape
from typing import Any
from urllib.parse import quote

from sqlalchemy import Result, delete, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from contacthub.consents import repository as consent_repository
from contacthub.email import compose, repository, sending, service
from contacthub.email.hashing import LinkSigner, Purpose, canonical_guid
from contacthub.email.repository import SUBSCRIBED, UNCONFIRMED, UNSUBSCRIBED
from contacthub.email.sender import Mailer, SendError, build_message
from contacthub.errors import Conflict, HubError, InvalidInput, NotFound, Unavailable
from contacthub.events import changes
from contacthub.groups.queue import enqueue_contacts
from contacthub.identifiers import guid_or_none
from contacthub.settings import Settings
from contacthub.storage.database import Database
from contacthub.storage.models import (
    Consent,
    ConsentAgreement,
    ConsentRevision,
    ConsentText,
    Newsletter,
    Subscriber,
)
from contacthub.storage.types import utcnow
from contacthub.suppressions import service as suppressions

CONFIRM_PATH = "/subscribe/confirm"
RESEND_AFTER = timedelta(minutes=15)
MAX_LANGUAGE = 20


class ConfirmationGone(HubError):
    """The confirmation link is older than the subscription may stay unconfirmed."""

    status_code = 410


# -- what the consent says ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShownConsent:
    """The consent text a person is shown: revision, language and short text (HTML)."""

    code_name: str
    revision_id: int  # names the consent too: the link stays right if the newsletter's changes
    revision: int
    language: str
    short_text: str


def _pick_text(texts: dict[str, ConsentText], wanted: list[str], default: str) -> ConsentText:
    by_language = {language.lower(): text for language, text in texts.items()}
    for language in [*wanted, default]:
        language = language.lower()
        for candidate in (language, language.split("-")[0]):
            if candidate in by_language:
                return by_language[candidate]
    return next(iter(by_language.values()))


def shown_consent(session: Session, newsletter: Newsletter, languages: list[str]) -> ShownConsent:
    """The current revision's short text in the first of `languages` it has, else the
    consent's default language (a tag like `de-AT` also matches a text in `de`)."""
    if newsletter.consent_id is None:
        raise InvalidInput(
            f"The newsletter {newsletter.name!r} has no consent: double opt-in needs one.",
            code="consent_required",
        )
    consent = session.get_one(Consent, newsletter.consent_id)
    revision = consent_repository.current_revision(session, consent.id)
    texts = consent_repository.texts_of(session, revision.id) if revision is not None else {}
    if revision is None or not texts:
        raise NotFound(f"Consent {consent.code_name!r} has no text.", code="unknown_consent")
    text = _pick_text(texts, languages, consent.default_language)
    return ShownConsent(
        consent.code_name, revision.id, revision.number, text.language, text.short_text
    )


def shown_revision(
    session: Session, revision_id: int, language: str
) -> tuple[ConsentRevision, ConsentText]:
    """The consent revision a link names (by id) and its text in `language`."""
    revision = session.get(ConsentRevision, revision_id)
    text = consent_repository.texts_of(session, revision.id).get(language) if revision else None
    if revision is None or text is None:
        raise NotFound("The consent text of this link no longer exists.", code="unknown_consent")
    return revision, text


def accepted_languages(header: str | None, explicit: str | None = None) -> list[str]:
    """Languages to show the consent in: an explicit choice first, then Accept-Language."""
    found = [explicit.strip()[:MAX_LANGUAGE]] if explicit and explicit.strip() else []
    for part in (header or "").split(",")[:10]:
        tag = part.split(";")[0].strip()
        if tag and tag != "*":
            found.append(tag[:MAX_LANGUAGE])
    return found


# -- the confirmation link ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfirmLink:
    """What a confirmation link names, as given (checked by `confirm`)."""

    newsletter: str | None
    email: str | None
    revision: str | None
    language: str | None
    sent: str | None
    hash: str | None

    def parts(self) -> list[str]:
        return [self.email or "", self.revision or "", self.language or "", self.sent or ""]


def confirm_url(
    signer: LinkSigner, newsletter: Newsletter, email: str, shown: ShownConsent, sent: int
) -> str:
    """The signed one-click link of a confirmation email."""
    parts = [email, str(shown.revision_id), shown.language, str(sent)]
    digest = signer.sign_parts(Purpose.CONFIRM, newsletter.guid, *parts)
    return (
        f"{compose.normalize_base_url(newsletter.base_url)}{CONFIRM_PATH}"
        f"?newsletter={canonical_guid(newsletter.guid)}&email={quote(email, safe='@')}"
        f"&revision={shown.revision_id}&language={quote(shown.language)}&sent={sent}&hash={digest}"
    )


# -- subscribing --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Confirmation:
    """A confirmation email to send after the commit that took its slot."""

    subscriber_id: int
    message: EmailMessage


@dataclass(frozen=True, slots=True)
class Subscription:
    """What a subscription request did. `status`: `subscribed`, or `pending_confirmation`
    (double opt-in; also when no email went out: the answer must not tell why)."""

    newsletter: str
    email: str
    status: str
    confirmation: Confirmation | None = None


def public_newsletter(session: Session, guid: str) -> Newsletter:
    """The newsletter a public subscription URL names by GUID, or NotFound."""
    key = guid_or_none(guid.strip())
    found = (
        session.scalar(select(Newsletter).where(Newsletter.guid == key))
        if key is not None
        else None
    )
    if found is None:
        raise NotFound("No newsletter at this address.", code="unknown_newsletter")
    return found


def subscribe(
    session: Session,
    newsletter: Newsletter,
    email: str,
    first_name: str | None,
    last_name: str | None,
    *,
    signer: LinkSigner,
    languages: list[str],
) -> Subscription:
    """A public subscription (form or JSON API): the rules of the module docstring."""
    address = service.normalise_email(email, "subscriber", field="email")
    first = service.clean_person_name(first_name, "first name", field="first_name")
    last = service.clean_person_name(last_name, "last name", field="last_name")
    existing = repository.subscriber_by_email(session, newsletter.id, address)
    if not newsletter.double_opt_in:
        if existing is None or existing.status != SUBSCRIBED:
            try:
                service.add_subscriber(session, newsletter.name, address, first, last)
            except Conflict as error:
                # Subscribed by a request at the same moment: the answer of one after it.
                if error.code != "already_subscribed":
                    raise
        return Subscription(newsletter.name, address, SUBSCRIBED)
    pending = Subscription(newsletter.name, address, "pending_confirmation")
    if existing is not None and existing.status == SUBSCRIBED:
        return pending
    if suppressions.is_suppressed(session, address):
        return pending  # never mailed, not even a confirmation; nothing stored
    if existing is None or existing.status == UNSUBSCRIBED:
        service.add_subscriber(session, newsletter.name, address, first, last, confirmed=False)
    subscriber = repository.subscriber_by_email(session, newsletter.id, address)
    assert subscriber is not None
    assert subscriber.status == UNCONFIRMED
    confirmation = claim_confirmation(session, newsletter, subscriber, signer, languages)
    return Subscription(newsletter.name, address, pending.status, confirmation)


def claim_confirmation(
    session: Session,
    newsletter: Newsletter,
    subscriber: Subscriber,
    signer: LinkSigner,
    languages: list[str],
) -> Confirmation | None:
    """Take the subscriber's confirmation slot and build the email; None within
    `RESEND_AFTER` of the last one (a conditional UPDATE: two requests at once send one), or
    when the address is suppressed (it is never mailed)."""
    if suppressions.is_suppressed(session, subscriber.email):
        return None
    now = utcnow().replace(microsecond=0)
    result = session.execute(
        update(Subscriber)
        .where(
            Subscriber.id == subscriber.id,
            (Subscriber.confirmation_sent_at.is_(None))
            | (Subscriber.confirmation_sent_at <= now - RESEND_AFTER),
        )
        .values(confirmation_sent_at=now)
        .execution_options(synchronize_session=False)
    )
    if not _changed(result):
        return None
    set_committed_value(subscriber, "confirmation_sent_at", now)  # what the UPDATE wrote
    shown = shown_consent(session, newsletter, languages)
    url = confirm_url(signer, newsletter, subscriber.email, shown, int(now.timestamp()))
    return Confirmation(subscriber.id, confirmation_message(newsletter, subscriber, shown, url))


def confirmation_message(
    newsletter: Newsletter, subscriber: Subscriber, shown: ShownConsent, url: str
) -> EmailMessage:
    """The short confirmation email: the consent's short text and the one-click link."""
    name = newsletter.name
    greeting = f"Hello {subscriber.first_name}," if subscriber.first_name else "Hello,"
    consent_text = compose.html_to_text(shown.short_text).strip()
    text = (
        f"{greeting}\n\nplease confirm your subscription to {name}:\n\n{url}\n\n"
        f"By confirming you agree to:\n{consent_text}\n\n"
        "If you did not ask for this, ignore this email: you will not be subscribed.\n"
    )
    html = (
        f"<html><body><p>{escape(greeting)}</p>"
        f"<p>please confirm your subscription to <strong>{escape(name)}</strong>:</p>"
        f'<p><a href="{escape(url)}">Confirm my subscription</a></p>'
        f"<p>By confirming you agree to:</p><blockquote>{shown.short_text}</blockquote>"
        "<p>If you did not ask for this, ignore this email: you will not be subscribed.</p>"
        "</body></html>"
    )
    rendered = compose.RenderedEmail(subject=f"Please confirm: {name}", html=html, text=text)
    recipient = compose.Recipient(subscriber.email, subscriber.first_name, subscriber.last_name)
    return build_message(rendered, newsletter.sender_name, newsletter.sender_email, recipient)


def send_confirmation(database: Database, mailer: Mailer, confirmation: Confirmation) -> bool:
    """Send the email (no transaction open); on failure free the slot again and answer False."""
    try:
        mailer.send(confirmation.message)
        return True
    except SendError:
        with database.write() as session:
            session.execute(
                update(Subscriber)
                .where(Subscriber.id == confirmation.subscriber_id)
                .values(confirmation_sent_at=None)
            )
        return False


def add_subscriber(
    session: Session,
    newsletter_name: str,
    email: str,
    first_name: str | None = None,
    last_name: str | None = None,
    *,
    confirmed: bool,
    signer: LinkSigner,
    actor: str | None,
) -> tuple[Subscriber, Confirmation | None]:
    """An operator's add (admin, API, CLI): `email.service.add_subscriber`, and on a double
    opt-in newsletter without `confirmed` the confirmation email to send after the commit."""
    subscriber = service.add_subscriber(
        session, newsletter_name, email, first_name, last_name, confirmed=confirmed, actor=actor
    )
    if subscriber.status != UNCONFIRMED:
        return subscriber, None
    newsletter = session.get_one(Newsletter, subscriber.newsletter_id)
    return subscriber, claim_confirmation(session, newsletter, subscriber, signer, [])


def send_now(database: Database, settings: Settings, confirmation: Confirmation) -> bool:
    """Send a confirmation through the configured SMTP server (see `send_confirmation`).

    It counts against the server's send-rate limit like any copy of an issue: it waits for its
    token (a short wait; a confirmation is one message)."""
    limiter = sending.rate_limiter_of(database, settings)
    if limiter is not None:
        limiter.acquire(1)
    with sending.smtp_mailer(settings) as mailer:
        return send_confirmation(database, mailer, confirmation)


def not_sent() -> Unavailable:
    """The error when the SMTP server did not take a confirmation email."""
    return Unavailable(
        "The confirmation email could not be sent just now (the SMTP server did not take it):"
        " please try again later.",
        code="confirmation_not_sent",
    )


# -- confirming ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Visitor:
    """Who followed the link: stored with the agreement as evidence."""

    ip: str | None
    user_agent: str | None
    method: str


@dataclass(frozen=True, slots=True)
class Confirmed:
    """The outcome of a confirmation link: `already` when it had been confirmed before."""

    newsletter: str
    email: str
    already: bool


def checked_link(
    session: Session, signer: LinkSigner, link: ConfirmLink, hours: float
) -> tuple[Newsletter, Subscriber, int]:
    """The newsletter, subscriber and revision a valid, unexpired link names; else an error."""
    if not signer.verify_parts(Purpose.CONFIRM, link.newsletter, link.parts(), link.hash):
        raise InvalidInput(
            "This confirmation link is not valid: copy the whole link from the email.",
            code="invalid_link",
        )
    # Valid hash: every part is as the hub wrote it.
    assert link.newsletter
    assert link.email
    assert link.revision
    assert link.sent
    sent = datetime.fromtimestamp(int(link.sent), UTC)
    if utcnow() - sent > timedelta(hours=hours):
        raise ConfirmationGone(
            "This confirmation link has expired: subscribe again to get a new one.",
            code="confirmation_expired",
        )
    newsletter = public_newsletter(session, link.newsletter)
    subscriber = repository.subscriber_by_email(session, newsletter.id, link.email)
    if subscriber is None:
        raise ConfirmationGone(
            "This subscription request has expired: subscribe again to get a new link.",
            code="confirmation_expired",
        )
    return newsletter, subscriber, int(link.revision)


def pending(session: Session, signer: LinkSigner, link: ConfirmLink, hours: float) -> Confirmed:
    """Whom a link names, changing nothing (the page shown to a suspected link scanner)."""
    newsletter, subscriber, _ = checked_link(session, signer, link, hours)
    return Confirmed(newsletter.name, subscriber.email, subscriber.status == SUBSCRIBED)


def confirm(
    session: Session, signer: LinkSigner, link: ConfirmLink, visitor: Visitor, *, hours: float
) -> Confirmed:
    """Confirm the subscription a link names; store the agreement (see the module docstring).

    Idempotent: a subscribed address stays as it is. A link older than the address's last
    unsubscribe does not subscribe it again (409 `unsubscribed_since`).
    """
    newsletter, subscriber, revision_id = checked_link(session, signer, link, hours)
    subscriber = session.scalars(
        select(Subscriber).where(Subscriber.id == subscriber.id).with_for_update()
    ).one()
    if subscriber.status == SUBSCRIBED:
        return Confirmed(newsletter.name, subscriber.email, True)
    sent = datetime.fromtimestamp(int(link.sent or 0), UTC)
    if subscriber.status == UNSUBSCRIBED and (
        subscriber.unsubscribed_at is None or subscriber.unsubscribed_at >= sent
    ):
        raise InvalidInput(
            "This address unsubscribed after this link was sent: subscribe again.",
            code="unsubscribed_since",
        )
    revision, text = shown_revision(session, revision_id, link.language or "")
    now = utcnow()
    evidence = {
        "method": "double_opt_in",
        "newsletter": newsletter.name,
        "newsletter_guid": str(newsletter.guid),
        "email": subscriber.email,
        "consent": session.get_one(Consent, revision.consent_id).code_name,
        "revision": revision.number,
        "language": text.language,
        "short_text": text.short_text,
        "requested_at": subscriber.created_at.isoformat(),
        "confirmation_sent_at": sent.isoformat(),
        "confirmed_at": now.isoformat(),
        "http_method": visitor.method,
    }
    agreement = ConsentAgreement(
        contact_id=subscriber.contact_id,
        consent_id=revision.consent_id,
        revision_id=revision.id,
        agreed=True,
        ip=visitor.ip,
        user_agent=(visitor.user_agent or "")[:500] or None,
        evidence=json.dumps(evidence, ensure_ascii=False),
        created_at=now,
    )
    session.add(agreement)
    session.flush()
    changes.consent_recorded(
        session,
        subscriber.contact_id,
        revision.consent_id,
        revision.id,
        agreed=True,
        source="double_opt_in",
    )
    subscriber.status = SUBSCRIBED
    subscriber.confirmed_at = now
    subscriber.confirmation_agreement_id = agreement.id
    session.flush()
    enqueue_contacts(session, [subscriber.contact_id])  # subscription and consent changed
    return Confirmed(newsletter.name, subscriber.email, False)


# -- expiry -------------------------------------------------------------------------------------


def expire_unconfirmed(session: Session, hours: float) -> int:
    """Remove subscriptions left unconfirmed for longer than `hours`; answers how many.

    Those that had unsubscribed before go back to `unsubscribed` (their history stays); the
    others are deleted. Their contacts stay (they may hold other data).
    """
    cutoff = utcnow() - timedelta(hours=hours)
    stale = (
        (Subscriber.status == UNCONFIRMED)
        & (Subscriber.created_at < cutoff)
        & ((Subscriber.confirmation_sent_at.is_(None)) | (Subscriber.confirmation_sent_at < cutoff))
    )
    contact_ids = list(session.scalars(select(Subscriber.contact_id).where(stale)))
    reverted = _changed(
        session.execute(
            update(Subscriber)
            .where(stale, Subscriber.unsubscribed_at.is_not(None))
            .values(status=UNSUBSCRIBED)
            .execution_options(synchronize_session=False)
        )
    )
    deleted = _changed(
        session.execute(
            delete(Subscriber).where(stale).execution_options(synchronize_session=False)
        )
    )
    if contact_ids:
        enqueue_contacts(session, contact_ids)
    return reverted + deleted


def _changed(result: Result[Any]) -> int:
    return max(int(getattr(result, "rowcount", 0) or 0), 0)


def expire_job(database: Database, hours: float) -> int:
    """One run of the hub's expiry job, in its own unit of work."""
    with database.write() as session:
        return expire_unconfirmed(session, hours)
