"""Consents: texts per language in revisions, and contacts' agree/revoke history.

Every change of any text makes a new revision holding the full set of texts, so that an
agreement can always show exactly what the contact agreed to.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pycountry
from sqlalchemy.orm import Session

from contacthub.audit import service as audit
from contacthub.consents import repository
from contacthub.contacts import service as contacts
from contacthub.errors import Conflict, InvalidInput, NotFound
from contacthub.events import changes
from contacthub.groups.queue import enqueue_contacts
from contacthub.identifiers import CODE_NAME, check_code_name
from contacthub.storage.models import Consent, ConsentAgreement, ConsentRevision, ConsentText

MAX_LANGUAGE_LENGTH = 20
LANGUAGE = re.compile(rf"[A-Za-z0-9_\-]{{1,{MAX_LANGUAGE_LENGTH}}}")
VARIANT = re.compile(r"[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}")
MAX_DISPLAY_NAME_LENGTH = 200
# Consent texts are HTML written by people; a generous bound that no real text reaches.
MAX_TEXT_LENGTH = 100_000


@dataclass(frozen=True, slots=True)
class ConsentTexts:
    """The texts shown for a consent in one language, and where they came from."""

    language: str
    revision: int
    short_text: str
    full_text: str


@dataclass(frozen=True, slots=True)
class TextChange:
    """What `set_text` did: the consent's current revision, and whether it is a new one."""

    revision: ConsentRevision
    changed: bool


@dataclass(frozen=True, slots=True)
class RevisionSummary:
    """One revision of a consent's texts, without the texts."""

    number: int
    created_at: datetime
    languages: list[str]


@dataclass(frozen=True, slots=True)
class ConsentSummary:
    """A consent as its list shows it."""

    code_name: str
    display_name: str
    default_language: str
    created_at: datetime
    revision: int
    languages: list[str]
    agreed_contacts: int


@dataclass(frozen=True, slots=True)
class ConsentDetail:
    """A consent with its current texts (default language first) and its revision history."""

    summary: ConsentSummary
    texts: list[ConsentTexts]
    revisions: list[RevisionSummary]


def _check_language_name(language: str, field: str = "language") -> str:
    language = language.strip()
    # Culture codes (en, en-US, sr-Latn-RS): no spaces, controls or NULs (PostgreSQL refuses
    # those), and safe in a URL path such as PUT /api/consents/{code}/texts/{language}.
    if not LANGUAGE.fullmatch(language):
        raise InvalidInput(
            "A language name has 1 to 20 letters, digits, '-' or '_', e.g. en or en-US.",
            code="invalid_language",
            field=field,
        )
    return language


def _check_language(language: str, field: str = "language") -> str:
    """A new text's language: a culture code as .NET and BCP 47 write it, kept as typed.

    An ISO 639 language (two letters, or three where it has no two-letter code), then optionally
    an ISO 15924 script, an ISO 3166 region (or a three-digit UN M.49 one, e.g. es-419) and
    variants: en, en-US, zh-Hans, sr-Latn-RS, ca-ES-valencia. `-` or `_` between them. A word
    such as `english` would be a text nobody's languageName ever finds.
    """
    language = _check_language_name(language, field)
    if not _is_culture_code(language):
        raise InvalidInput(
            f"{language!r} is not a language code: use an ISO 639 code, optionally with a script "
            "and a region, e.g. en, en-US or sr-Latn-RS.",
            code="invalid_language",
            field=field,
        )
    return language


def _is_culture_code(language: str) -> bool:
    first, *rest = re.split(r"[-_]", language)
    if not (first.isascii() and first.isalpha() and len(first) in (2, 3)):
        return False
    if pycountry.languages.get(**{"alpha_2" if len(first) == 2 else "alpha_3": first}) is None:
        return False
    if rest and len(rest[0]) == 4 and rest[0].isalpha():
        if pycountry.scripts.get(alpha_4=rest[0]) is None:
            return False
        rest = rest[1:]
    if rest and ((len(rest[0]) == 2 and rest[0].isalpha()) or len(rest[0]) == 3):
        region = rest[0]
        if not (region.isdigit() or pycountry.countries.get(alpha_2=region) is not None):
            return False
        rest = rest[1:]
    return all(VARIANT.fullmatch(variant) for variant in rest)


def _check_code_name(code_name: str) -> str:
    try:
        return check_code_name(code_name, "consent")
    except InvalidInput as error:
        # The shared check knows no form; here the code name is always the `code_name` field.
        error.field = "code_name"
        raise


def _check_display_name(display_name: str | None, code_name: str) -> str:
    name = (display_name or "").strip() or code_name
    if len(name) > MAX_DISPLAY_NAME_LENGTH:
        raise InvalidInput(
            f"A display name has at most {MAX_DISPLAY_NAME_LENGTH} characters.",
            code="invalid_name",
            field="display_name",
        )
    return name


def _check_texts(short_text: str, full_text: str) -> None:
    for field, label, text in (
        ("short_text", "short text", short_text),
        ("full_text", "full text", full_text),
    ):
        if not text.strip():
            raise InvalidInput(f"The {label} is required.", code="invalid_text", field=field)
        if len(text) > MAX_TEXT_LENGTH:
            raise InvalidInput(
                f"The {label} has at most {MAX_TEXT_LENGTH:,} characters.",
                code="invalid_text",
                field=field,
            )


def create_consent(
    session: Session,
    code_name: str,
    *,
    language: str,
    short_text: str,
    full_text: str,
    display_name: str | None = None,
    actor: str | None = None,
) -> Consent:
    """Create a consent with its first text; that language becomes its default.

    Changes are recorded in the audit log when the caller names an `actor` (every entry point
    does: a user's address, or `cli`); test factories pass none.
    """
    _check_code_name(code_name)
    name = _check_display_name(display_name, code_name)
    language = _check_language(language)
    _check_texts(short_text, full_text)
    if repository.consent_by_code(session, code_name) is not None:
        raise Conflict(
            f"A consent {code_name!r} already exists.", code="consent_exists", field="code_name"
        )
    consent = Consent(code_name=code_name, display_name=name, default_language=language)
    session.add(consent)
    session.flush()
    _new_revision(session, consent, {consent.default_language: (short_text, full_text)})
    if actor is not None:
        audit.record(
            session,
            actor,
            "consent.created",
            consent.code_name,
            {"language": consent.default_language},
        )
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
    session: Session,
    code_name: str,
    *,
    language: str,
    short_text: str,
    full_text: str,
    actor: str | None = None,
) -> TextChange:
    """Add or change one language's text: a new revision with the other languages kept.

    Texts identical to the current ones make no new revision (saving twice, or a repeated
    PUT, changes nothing). A language already present keeps its spelling (`EN` changes `en`).
    """
    consent = get_consent(session, code_name)
    language = _check_language(language)
    _check_texts(short_text, full_text)
    current = _current_revision(session, consent)
    existing = repository.texts_of(session, current.id)
    same = next((text for name, text in existing.items() if name.lower() == language.lower()), None)
    if same is not None:
        if (same.short_text, same.full_text) == (short_text, full_text):
            return TextChange(current, changed=False)
        language = same.language
    texts = {
        text.language: (text.short_text, text.full_text)
        for text in existing.values()
        if text.language != language
    }
    texts[language] = (short_text, full_text)
    revision = _new_revision(session, consent, texts)
    if actor is not None:
        audit.record(
            session,
            actor,
            "consent.text_set",
            consent.code_name,
            {"language": language, "revision": revision.number},
        )
    return TextChange(revision, changed=True)


def set_default_language(
    session: Session, code_name: str, language: str, *, actor: str | None = None
) -> Consent:
    """Make a language that has a text the consent's default."""
    consent = get_consent(session, code_name)
    # Only the shape: the texts the consent has are the authority on what may be chosen.
    language = _check_language_name(language, "default_language")
    texts = repository.texts_of(session, _current_revision(session, consent).id)
    match = next((name for name in texts if name.lower() == language.lower()), None)
    if match is None:
        raise InvalidInput(
            f"The consent has no {language!r} text yet.",
            code="unknown_language",
            field="default_language",
        )
    consent.default_language = match
    session.flush()
    if actor is not None:
        audit.record(
            session,
            actor,
            "consent.default_language_set",
            consent.code_name,
            {"language": consent.default_language},
        )
    return consent


def summaries(session: Session) -> list[ConsentSummary]:
    """Every consent with its current revision, languages and agreed contacts, by code name."""
    consents = repository.all_consents(session)
    revisions = repository.current_revisions(session)
    languages = repository.languages_of(session, (r.id for r in revisions.values()))
    agreed = repository.agreed_counts(session)
    return [
        _summary(consent, revisions.get(consent.id), languages, agreed.get(consent.id, 0))
        for consent in consents
    ]


def detail(session: Session, code_name: str) -> ConsentDetail:
    """One consent with its current texts and every revision (newest first)."""
    consent = get_consent(session, code_name)
    revisions = repository.revisions_of(session, consent.id)
    languages = repository.languages_of(session, (r.id for r in revisions))
    agreed = repository.agreed_counts(session, consent.id).get(consent.id, 0)
    current = revisions[0] if revisions else None
    return ConsentDetail(
        summary=_summary(consent, current, languages, agreed),
        texts=revision_texts(session, code_name, current.number) if current else [],
        revisions=[
            RevisionSummary(r.number, r.created_at, languages.get(r.id, [])) for r in revisions
        ],
    )


def revision_texts(session: Session, code_name: str, number: int) -> list[ConsentTexts]:
    """The texts of one revision, the consent's default language first."""
    consent = get_consent(session, code_name)
    revision = repository.revision_by_number(session, consent.id, number)
    if revision is None:
        raise NotFound(
            f"Consent {consent.code_name!r} has no revision {number}.", code="unknown_revision"
        )
    default = consent.default_language.lower()
    texts = sorted(
        repository.texts_of(session, revision.id).values(),
        key=lambda text: (text.language.lower() != default, text.language.lower()),
    )
    return [
        ConsentTexts(text.language, revision.number, text.short_text, text.full_text)
        for text in texts
    ]


def _summary(
    consent: Consent,
    revision: ConsentRevision | None,
    languages: dict[int, list[str]],
    agreed: int,
) -> ConsentSummary:
    return ConsentSummary(
        code_name=consent.code_name,
        display_name=consent.display_name,
        default_language=consent.default_language,
        created_at=consent.created_at,
        revision=revision.number if revision else 0,
        languages=languages.get(revision.id, []) if revision else [],
        agreed_contacts=agreed,
    )


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
    # Held, so that an erasure committing meanwhile makes this a 404, not a broken foreign key.
    contact = contacts.get_contact(session, contact_guid, hold=True)
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
    enqueue_contacts(session, [contact.id])  # its dynamic groups may answer differently now
    changes.consent_recorded(
        session,
        contact.id,
        consent.id,
        agreement.revision_id,
        agreed=agree,
        channel_id=channel_id,
        source="tracking",
    )
    return agreement


def is_agreed(session: Session, contact_guid: str, code_name: str) -> bool:
    """Whether the contact's latest event for the consent is an agreement."""
    contact = contacts.get_contact(session, contact_guid)
    consent = get_consent(session, code_name)
    return repository.latest_agreements(session, consent.id, [contact.id]).get(contact.id, False)
