"""Consents: texts per language in revisions, and contacts' agree/revoke history.

Every change of any text makes a new revision holding the full set of texts, so that an
agreement can always show exactly what the contact agreed to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from contacthub.consents import repository
from contacthub.contacts import service as contacts
from contacthub.errors import Conflict, InvalidInput, NotFound
from contacthub.identifiers import CODE_NAME, check_code_name
from contacthub.storage.models import Consent, ConsentAgreement, ConsentRevision, ConsentText

MAX_LANGUAGE_LENGTH = 20


@dataclass(frozen=True, slots=True)
class ConsentTexts:
    """The texts shown for a consent in one language, and where they came from."""

    language: str
    revision: int
    short_text: str
    full_text: str


def _check_language(language: str) -> str:
    language = language.strip()
    if not language or len(language) > MAX_LANGUAGE_LENGTH:
        raise InvalidInput(
            "A language name has 1 to 20 characters, e.g. en or en-US.", code="invalid_language"
        )
    return language


def create_consent(
    session: Session,
    code_name: str,
    *,
    language: str,
    short_text: str,
    full_text: str,
    display_name: str | None = None,
) -> Consent:
    """Create a consent with its first text; that language becomes its default."""
    check_code_name(code_name, "consent")
    if repository.consent_by_code(session, code_name) is not None:
        raise Conflict(f"A consent {code_name!r} already exists.", code="consent_exists")
    consent = Consent(
        code_name=code_name,
        display_name=display_name or code_name,
        default_language=_check_language(language),
    )
    session.add(consent)
    session.flush()
    _new_revision(session, consent, {consent.default_language: (short_text, full_text)})
    return consent


def get_consent(session: Session, code_name: str) -> Consent:
    """The consent with this code name, or NotFound."""
    # A name no consent can have (e.g. with NUL, which PostgreSQL refuses) is simply unknown.
    known = CODE_NAME.fullmatch(code_name)
    consent = repository.consent_by_code(session, code_name) if known else None
    if consent is None:
        raise NotFound(f"No consent with code name {code_name!r}.", code="unknown_consent")
    return consent


def list_consents(session: Session) -> Sequence[Consent]:
    """Every consent, by code name."""
    return repository.all_consents(session)


def set_text(
    session: Session, code_name: str, *, language: str, short_text: str, full_text: str
) -> ConsentRevision:
    """Add or change one language's text: a new revision with the other languages kept."""
    consent = get_consent(session, code_name)
    language = _check_language(language)
    current = _current_revision(session, consent)
    texts = {
        text.language: (text.short_text, text.full_text)
        for text in repository.texts_of(session, current.id).values()
        if text.language.lower() != language.lower()
    }
    texts[language] = (short_text, full_text)
    return _new_revision(session, consent, texts)


def set_default_language(session: Session, code_name: str, language: str) -> Consent:
    """Make a language that has a text the consent's default."""
    consent = get_consent(session, code_name)
    texts = repository.texts_of(session, _current_revision(session, consent).id)
    match = next((name for name in texts if name.lower() == language.lower()), None)
    if match is None:
        raise InvalidInput(f"The consent has no {language!r} text yet.", code="unknown_language")
    consent.default_language = match
    session.flush()
    return consent


def _current_revision(session: Session, consent: Consent) -> ConsentRevision:
    revision = repository.current_revision(session, consent.id)
    if revision is None:  # every consent is created with a revision
        raise NotFound(f"Consent {consent.code_name!r} has no text.", code="unknown_consent")
    return revision


def _new_revision(
    session: Session, consent: Consent, texts: dict[str, tuple[str, str]]
) -> ConsentRevision:
    current = repository.current_revision(session, consent.id)
    revision = ConsentRevision(consent_id=consent.id, number=(current.number + 1) if current else 1)
    session.add(revision)
    session.flush()
    for language, (short_text, full_text) in texts.items():
        session.add(
            ConsentText(
                revision_id=revision.id,
                language=language,
                short_text=short_text,
                full_text=full_text,
            )
        )
    session.flush()
    return revision


def get_texts(session: Session, code_name: str, language: str | None) -> ConsentTexts:
    """The consent's current texts in `language`, or in its default language if it has none."""
    consent = get_consent(session, code_name)
    revision = _current_revision(session, consent)
    texts = {name.lower(): text for name, text in repository.texts_of(session, revision.id).items()}
    text = texts.get((language or "").lower()) or texts.get(consent.default_language.lower())
    if text is None:
        raise NotFound(f"Consent {code_name!r} has no text.", code="unknown_consent")
    return ConsentTexts(text.language, revision.number, text.short_text, text.full_text)


def record_agreement(
    session: Session,
    contact_guid: str,
    code_name: str,
    *,
    agree: bool,
    channel_id: int | None = None,
) -> ConsentAgreement:
    """Record that a contact agreed to (or revoked) the consent's current revision."""
    contact = contacts.get_contact(session, contact_guid)
    consent = get_consent(session, code_name)
    agreement = ConsentAgreement(
        contact_id=contact.id,
        consent_id=consent.id,
        revision_id=_current_revision(session, consent).id,
        agreed=agree,
        channel_id=channel_id,
    )
    session.add(agreement)
    session.flush()
    return agreement


def is_agreed(session: Session, contact_guid: str, code_name: str) -> bool:
    """Whether the contact's latest event for the consent is an agreement."""
    contact = contacts.get_contact(session, contact_guid)
    consent = get_consent(session, code_name)
    return repository.latest_agreements(session, consent.id, [contact.id]).get(contact.id, False)
