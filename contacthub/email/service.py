"""Newsletters, subscribers and email issues: the rules, and the use cases built on them.

Subscribing:
- An address is validated and stored lower-cased; each subscriber is linked to a contact: the
  oldest contact with that address, or a new contact with the address and the names given.
  Names given fill the contact's empty name fields; they never overwrite names it has.
- Adding an address that is already subscribed is a Conflict. Adding an address that has
  unsubscribed subscribes it again: an operator adding someone by hand acts on their request.
  A CSV import never does that (see `importer`): a list must not undo an unsubscribe.
  `unsubscribed_at` and `unsubscribed_issue_id` keep the last unsubscribe (statistics of the
  issue whose link was used do not change); `status` alone says whether mail goes out.
- Double opt-in newsletters: an operator's add (admin, API, CLI) with `confirmed=False` leaves
  the subscriber `unconfirmed`, and the caller sends the confirmation email
  (`subscriptions.optin`); with `confirmed=True` the operator vouches for the person's consent
  and the address is subscribed at once. Without double opt-in `confirmed` changes nothing.

Changes made by people are recorded in the audit log, in the caller's unit of work, when the
caller names an `actor` (every entry point does: a user's address, or `cli`). An unsubscribe
link used by the subscriber is not an operator's action and is not audited.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from contacthub.audit import service as audit
from contacthub.consents import repository as consent_repository
from contacthub.contacts import service as contacts
from contacthub.email import compose, repository
from contacthub.email.repository import SUBSCRIBED, SUBSCRIBER_STATES, UNCONFIRMED, UNSUBSCRIBED
from contacthub.errors import Conflict, InvalidInput, NotFound, with_article
from contacthub.events import changes
from contacthub.groups import repository as group_repository
from contacthub.groups.queue import enqueue_contacts
from contacthub.identifiers import base_url, parse_guid
from contacthub.storage.models import (
    Consent,
    Contact,
    ContactGroup,
    EmailIssue,
    IssueLink,
    Newsletter,
    Subscriber,
)
from contacthub.storage.types import utcnow

MAX_EMAIL = 254
MAX_PERSON_NAME = 100
MAX_SUBJECT = 500


# -- validation ----------------------------------------------------------------------------------


def normalise_email(text: str, what: str = "email", *, field: str | None = None) -> str:
    """A valid address, lower-cased (the form subscribers are stored and compared in)."""
    text = text.strip()
    if not text:
        raise InvalidInput(f"The {what} address is missing.", code="invalid_email", field=field)
    try:
        normalised = validate_email(text, check_deliverability=False).normalized.lower()
    except EmailNotValidError as error:
        raise InvalidInput(
            f"{text!r} is not a valid {what} address: {error}", code="invalid_email", field=field
        ) from None
    if len(normalised) > MAX_EMAIL:
        raise InvalidInput(
            f"{with_article(what)} address has at most {MAX_EMAIL} characters.",
            code="invalid_email",
            field=field,
        )
    return normalised


def clean_person_name(text: str | None, what: str, *, field: str | None = None) -> str | None:
    """A first or last name: trimmed, at most 100 characters, on one line; empty is None."""
    if text is None:
        return None
    text = text.strip()
    if not text:
        return None
    if len(text) > MAX_PERSON_NAME:
        raise InvalidInput(
            f"{with_article(what)} has at most {MAX_PERSON_NAME} characters ({len(text)} given).",
            code="invalid_name",
            field=field,
        )
    _refuse_control_characters(text, what, field)
    return text


def _one_line(text: str, what: str, limit: int, field: str | None = None) -> str:
    text = text.strip()
    if not text or len(text) > limit:
        raise InvalidInput(
            f"{with_article(what)} has 1 to {limit} characters.", code="invalid_input", field=field
        )
    _refuse_control_characters(text, what, field)
    return text


def _refuse_control_characters(text: str, what: str, field: str | None = None) -> None:
    # These values end up in mail headers: a line break there would inject headers.
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise InvalidInput(
            f"{with_article(what)} may not contain line breaks or control characters.",
            code="invalid_input",
            field=field,
        )


def clean_base_url(text: str, *, field: str | None = None) -> str:
    """An absolute http(s) URL without query or fragment, stored without a trailing slash."""
    return base_url(text, "base URL", code="invalid_base_url", field=field)


# -- newsletters ---------------------------------------------------------------------------------


def create_newsletter(
    session: Session,
    name: str,
    sender_name: str,
    sender_email: str,
    base_url: str,
    *,
    double_opt_in: bool = False,
    consent: str | None = None,
    tracking_consent: str | None = None,
    actor: str | None = None,
) -> Newsletter:
    """Create a newsletter. `base_url` is the public site its tracking links point at;
    `double_opt_in`, `consent` and `tracking_consent` as in `update_newsletter`.

    Errors name the field at fault: `name`, `sender_name`, `sender_email`, `base_url`,
    `consent`, `tracking_consent` or `double_opt_in`.
    """
    name = _one_line(name, "newsletter name", 100, "name")
    if repository.newsletter_by_name(session, name) is not None:
        raise Conflict(
            f"A newsletter named {name!r} already exists.", code="newsletter_exists", field="name"
        )
    newsletter = Newsletter(
        guid=uuid.uuid4(),
        name=name,
        sender_name=_one_line(sender_name, "sender name", 200, "sender_name"),
        sender_email=_sender_email(sender_email),
        base_url=clean_base_url(base_url, field="base_url"),
        double_opt_in=double_opt_in,
        consent_id=_consent_id(session, consent, "consent") if consent else None,
        tracking_consent_id=(
            _consent_id(session, tracking_consent, "tracking_consent") if tracking_consent else None
        ),
    )
    _refuse_double_opt_in_without_consent(newsletter)
    session.add(newsletter)
    session.flush()
    if actor is not None:
        details: dict[str, object] = {
            "guid": str(newsletter.guid),
            "sender": newsletter.sender_email,
        }
        if double_opt_in or consent or tracking_consent:
            details.update(newsletter_settings(session, newsletter))
        audit.record(session, actor, "newsletter.created", newsletter.name, details)
    return newsletter


def update_newsletter(
    session: Session,
    name: str,
    *,
    double_opt_in: bool | None = None,
    consent: str | None = None,
    tracking_consent: str | None = None,
    actor: str | None,
) -> Newsletter:
    """Change a newsletter's subscription settings; None leaves a setting as it is.

    - `double_opt_in`: public subscriptions wait for the confirmation link (subscriptions/).
    - `consent`: the code name of the newsletter's consent; a confirmation is stored as an
      agreement to its current revision. "" removes it. A double opt-in newsletter needs one.
    - `tracking_consent`: the code name of the consent that per-person tracking needs
      (consent-gated tracking); "" removes it.

    Recorded as `newsletter.updated` with the settings after the change.
    """
    newsletter = get_newsletter(session, name)
    if double_opt_in is not None:
        newsletter.double_opt_in = double_opt_in
    if consent is not None:
        newsletter.consent_id = _consent_id(session, consent, "consent") if consent else None
    if tracking_consent is not None:
        newsletter.tracking_consent_id = (
            _consent_id(session, tracking_consent, "tracking_consent") if tracking_consent else None
        )
    _refuse_double_opt_in_without_consent(newsletter)
    session.flush()
    if actor is not None:
        audit.record(
            session,
            actor,
            "newsletter.updated",
            newsletter.name,
            newsletter_settings(session, newsletter),
        )
    return newsletter


def newsletter_settings(session: Session, newsletter: Newsletter) -> dict[str, object]:
    """The subscription settings as shown everywhere: consents by code name (or None)."""
    return {
        "double_opt_in": newsletter.double_opt_in,
        "consent": _consent_code(session, newsletter.consent_id),
        "tracking_consent": _consent_code(session, newsletter.tracking_consent_id),
    }


def _consent_code(session: Session, consent_id: int | None) -> str | None:
    return None if consent_id is None else session.get_one(Consent, consent_id).code_name


def _consent_id(session: Session, code_name: str, field: str) -> int:
    consent = consent_repository.consent_by_code(session, code_name.strip())
    if consent is None:
        raise NotFound(
            f"No consent with code name {code_name.strip()!r}.", code="unknown_consent", field=field
        )
    return consent.id


def _refuse_double_opt_in_without_consent(newsletter: Newsletter) -> None:
    # The confirmation is the legal evidence of consent: it must say which consent it proves.
    if newsletter.double_opt_in and newsletter.consent_id is None:
        raise InvalidInput(
            "A double opt-in newsletter needs a consent: the confirmation is stored as an"
            " agreement to it. Choose the newsletter's consent too.",
            code="consent_required",
            field="consent",
        )


def _sender_email(text: str) -> str:
    # The sender keeps its local part's case (it is ours, shown in every From header).
    try:
        return validate_email(text.strip(), check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise InvalidInput(
            f"{text!r} is not a valid sender address: {error}",
            code="invalid_email",
            field="sender_email",
        ) from None


def get_newsletter(session: Session, name: str, *, field: str | None = None) -> Newsletter:
    """The newsletter with this name, or NotFound."""
    newsletter = repository.newsletter_by_name(session, name)
    if newsletter is None:
        raise NotFound(f"No newsletter named {name!r}.", code="unknown_newsletter", field=field)
    return newsletter


def list_newsletters(session: Session) -> Sequence[Newsletter]:
    """Every newsletter, by name."""
    return repository.all_newsletters(session)


# -- subscribers ---------------------------------------------------------------------------------


def add_subscriber(
    session: Session,
    newsletter_name: str,
    email: str,
    first_name: str | None = None,
    last_name: str | None = None,
    *,
    confirmed: bool = True,
    actor: str | None = None,
) -> Subscriber:
    """Subscribe an address (linked to its contact); re-subscribes an unsubscribed one.

    On a double opt-in newsletter with `confirmed=False` the subscriber is left `unconfirmed`
    (the caller sends the confirmation email: `subscriptions.optin.add_unconfirmed`).
    Errors name the field at fault: `email`, `first_name` or `last_name`. Two adds of a new
    address at once answer as if one came after the other (see `_subscribe_new_once`).
    """
    newsletter = get_newsletter(session, newsletter_name)
    address = normalise_email(email, "subscriber", field="email")
    first = clean_person_name(first_name, "first name", field="first_name")
    last = clean_person_name(last_name, "last name", field="last_name")
    status = SUBSCRIBED if confirmed or not newsletter.double_opt_in else UNCONFIRMED
    existing = repository.subscriber_by_email(session, newsletter.id, address)
    if existing is None:
        subscriber, created = _subscribe_new_once(session, newsletter, address, first, last, status)
        if not created:
            existing = subscriber  # added by another transaction meanwhile: as if it came first
    if existing is not None:
        if existing.status == SUBSCRIBED:
            raise Conflict(
                f"{address} is already subscribed to {newsletter.name!r}.",
                code="already_subscribed",
                field="email",
            )
        existing.status = status
        existing.first_name = first or existing.first_name
        existing.last_name = last or existing.last_name
        session.flush()
        subscriber = existing
    if status == SUBSCRIBED and newsletter.double_opt_in:
        subscriber.confirmed_at = utcnow()  # vouched for by the operator (audited below)
    enqueue_contacts(session, [subscriber.contact_id])  # for groups on subscriptions
    if actor is not None:
        details: dict[str, object] = {"newsletter": newsletter.name}
        if newsletter.double_opt_in:
            details["confirmed"] = status == SUBSCRIBED
        audit.record(session, actor, "subscriber.added", subscriber.email, details)
    return subscriber


def _subscribe_new_once(
    session: Session,
    newsletter: Newsletter,
    address: str,
    first_name: str | None,
    last_name: str | None,
    status: str,
) -> tuple[Subscriber, bool]:
    """Add the subscriber (and its contact when it has none) in a savepoint; (the subscriber,
    True when this transaction added it).

    Two transactions adding one new address at once both find no subscriber; on PostgreSQL the
    second insert waits for the first to commit and then breaks the unique (newsletter, email)
    rule. Its savepoint is rolled back (the contact it made too) and the row the first one
    committed is returned with False, so that the caller goes on as if it had come second,
    instead of a 500. (On SQLite write transactions run one at a time: the second finds the
    row at once.)
    """
    try:
        with session.begin_nested():
            contact = repository.oldest_contacts_with_emails(session, [address]).get(address)
            added = subscribe_new(
                session, newsletter, address, first_name, last_name, contact, status
            )
        return added, True
    except IntegrityError:
        existing = repository.subscriber_by_email(session, newsletter.id, address)
        if existing is None:
            raise  # another rule was broken: not a race with a subscription
        return existing, False


def subscribe_new(
    session: Session,
    newsletter: Newsletter,
    address: str,
    first_name: str | None,
    last_name: str | None,
    contact: Contact | None,
    status: str = SUBSCRIBED,
) -> Subscriber:
    """Add a subscriber for a validated address not yet known to the newsletter.

    `contact` is the oldest contact with the address, if any; otherwise one is created.
    """
    if contact is None:
        contact = contacts.create_contact(
            session, email=address, first_name=first_name, last_name=last_name
        )
    else:
        before = changes.fields_of(contact, ("first_name", "last_name"))
        contact.first_name = contact.first_name or first_name
        contact.last_name = contact.last_name or last_name
        changes.contact_updated(session, contact, before, source="subscription")
    subscriber = Subscriber(
        newsletter_id=newsletter.id,
        contact_id=contact.id,
        email=address,
        first_name=first_name or contact.first_name,
        last_name=last_name or contact.last_name,
        status=status,
    )
    session.add(subscriber)
    session.flush()
    return subscriber


def get_subscriber(session: Session, newsletter_name: str, email: str) -> Subscriber:
    """The newsletter's subscriber with this address (any status), or NotFound."""
    newsletter = get_newsletter(session, newsletter_name)
    address = normalise_email(email, "subscriber")
    subscriber = repository.subscriber_by_email(session, newsletter.id, address)
    if subscriber is None:
        raise NotFound(
            f"{address} is not a subscriber of {newsletter.name!r}.", code="unknown_subscriber"
        )
    return subscriber


def unsubscribe(
    session: Session,
    subscriber: Subscriber,
    issue: EmailIssue | None = None,
    *,
    actor: str | None = None,
    source: str | None = None,
) -> Subscriber:
    """Unsubscribe; `issue` is the one whose link was used (for its statistics). Idempotent:
    unsubscribing an unsubscribed address changes nothing and records nothing. `source` (for
    the `email.unsubscribed` event): `operator` when an actor is given, else `link` unless
    said."""
    if subscriber.status != UNSUBSCRIBED:
        subscriber.status = UNSUBSCRIBED
        subscriber.unsubscribed_at = utcnow()
        subscriber.unsubscribed_issue_id = issue.id if issue is not None else None
        session.flush()
        enqueue_contacts(session, [subscriber.contact_id])  # for groups on subscriptions
        how = source or ("operator" if actor is not None else "link")
        changes.email_unsubscribed(session, subscriber, issue, source=how)
        if actor is not None:
            newsletter = session.get_one(Newsletter, subscriber.newsletter_id)
            audit.record(
                session,
                actor,
                "subscriber.unsubscribed",
                subscriber.email,
                {"newsletter": newsletter.name},
            )
    return subscriber


def list_subscribers(
    session: Session, newsletter_name: str, *, status: str | None = None
) -> Sequence[Subscriber]:
    """The newsletter's subscribers in the order they were added, optionally of one status."""
    if status is not None and status not in SUBSCRIBER_STATES:
        raise InvalidInput(
            f"A subscriber status is {SUBSCRIBED!r}, {UNSUBSCRIBED!r} or {UNCONFIRMED!r}.",
            code="invalid_status",
        )
    newsletter = get_newsletter(session, newsletter_name)
    return repository.subscribers_of(session, newsletter.id, status=status)


# -- issues --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssueSummary:
    """An issue with its newsletter's name and its tracked links."""

    issue: EmailIssue
    newsletter_name: str
    links: Sequence[IssueLink]
    group_name: str | None = None
    # The name of the issue's group if it was deleted (the issue may not be sent again).
    deleted_group: str | None = None


def create_issue(
    session: Session,
    newsletter_name: str,
    subject: str,
    html_body: str,
    text_body: str | None = None,
    *,
    group: str | None = None,
    actor: str | None = None,
) -> EmailIssue:
    """Create a draft issue and a tracked link (with its GUID) for every link of its HTML.

    Links are numbered from 0 in document order, each distinct target once (see
    `compose.extract_links`); the hidden honeypot link that only machines follow comes last.
    `group` (a contact group's name) sends the issue only to the subscribers who are members
    of that group (see `email.sending`); None sends it to every subscriber.
    Errors name the field at fault: `newsletter`, `subject`, `html_body` or `group`.
    """
    newsletter = get_newsletter(session, newsletter_name, field="newsletter")
    target = _target_group(session, group)
    subject = _one_line(subject, "subject", MAX_SUBJECT, "subject")
    if not html_body.strip():
        raise InvalidInput("The HTML body is empty.", code="invalid_body", field="html_body")
    if text_body is not None and not text_body.strip():
        text_body = None
    issue = EmailIssue(
        guid=uuid.uuid4(),
        newsletter_id=newsletter.id,
        subject=subject,
        html_body=html_body,
        text_body=text_body,
        status="draft",
        group_id=target.id if target is not None else None,
        group_name=target.name if target is not None else None,
    )
    session.add(issue)
    session.flush()
    targets = compose.extract_links(html_body)
    session.add_all(
        IssueLink(issue_id=issue.id, position=position, target_url=target)
        for position, target in enumerate(targets)
    )
    # The honeypot: an invisible link (compose renders hidden links that way) that no human
    # can click, so whatever follows it is a machine. It leads to the newsletter's site.
    session.add(
        IssueLink(
            issue_id=issue.id,
            position=len(targets),
            target_url=f"{newsletter.base_url}/",
            hidden=True,
        )
    )
    session.flush()
    if actor is not None:
        details = {"newsletter": newsletter.name, "subject": issue.subject}
        if target is not None:
            details["group"] = target.name
        audit.record(session, actor, "issue.created", str(issue.guid), details)
    return issue


def set_issue_group(
    session: Session, issue: EmailIssue, group: str | None, *, actor: str | None = None
) -> EmailIssue:
    """Send a draft issue only to the members of `group` (a group's name), or with None to
    every subscriber. Once sending has started the audience is fixed: Conflict
    (`issue_not_draft`)."""
    # Locked, so that a send run starting meanwhile (which locks it too) sees one or the other.
    issue = repository.lock_issue(session, issue.id)
    if issue.status != "draft":
        raise Conflict(
            "Only a draft issue may change its group: this one's sending has started.",
            code="issue_not_draft",
            field="group",
        )
    target = _target_group(session, group)
    issue.group_id = target.id if target is not None else None
    issue.group_name = target.name if target is not None else None
    session.flush()
    if actor is not None:
        audit.record(
            session,
            actor,
            "issue.group_set",
            str(issue.guid),
            {"group": target.name if target is not None else None},
        )
    return issue


def _target_group(session: Session, name: str | None) -> ContactGroup | None:
    """The group an issue is sent to, by name; None for every subscriber."""
    if name is None:
        return None
    # The groups repository, not groups.service.get_group: that module imports this one.
    found = group_repository.group_by_name(session, name.strip())
    if found is None:
        raise NotFound(f"No group named {name.strip()!r}.", code="unknown_group", field="group")
    return found


def group_name_of(session: Session, issue: EmailIssue) -> str | None:
    """The name of the group the issue is sent to, or None (every subscriber, or its group was
    deleted: see `deleted_group_of`)."""
    if issue.group_id is None:
        return None
    return session.get_one(ContactGroup, issue.group_id).name


def deleted_group_of(issue: EmailIssue) -> str | None:
    """The name of the group the issue was sent to if that group has since been deleted."""
    return issue.group_name if issue.group_id is None else None


def refuse_if_group_deleted(issue: EmailIssue) -> None:
    """Conflict (`group_deleted`) for an issue whose group is gone: sending it again would
    reach every subscriber rather than the group's members."""
    lost = deleted_group_of(issue)
    if lost is not None:
        raise Conflict(
            f"This issue was sent to the group {lost!r}, which has since been deleted: it"
            " cannot be sent again (it would go to every subscriber). Create a new issue"
            " instead.",
            code="group_deleted",
        )


def get_issue(session: Session, guid: str | uuid.UUID) -> EmailIssue:
    """The issue with this GUID, or NotFound."""
    key = guid if isinstance(guid, uuid.UUID) else parse_guid(guid.strip(), "Issue")
    issue = repository.issue_by_guid(session, key)
    if issue is None:
        raise NotFound(f"No email issue with GUID {key}.", code="unknown_issue")
    return issue


def describe_issue(session: Session, issue: EmailIssue) -> IssueSummary:
    """The issue with its newsletter's name and links."""
    newsletter = session.get_one(Newsletter, issue.newsletter_id)
    return IssueSummary(
        issue,
        newsletter.name,
        repository.links_of(session, issue.id),
        group_name_of(session, issue),
        deleted_group_of(issue),
    )


def list_issues(session: Session, newsletter_name: str) -> Sequence[EmailIssue]:
    """The newsletter's issues, newest first."""
    newsletter = get_newsletter(session, newsletter_name)
    return repository.issues_of(session, newsletter.id)
