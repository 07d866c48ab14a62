"""Queries for consents, their revisions and texts, and agreements."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from contacthub.storage.models import Consent, ConsentAgreement, ConsentRevision, ConsentText


def consent_by_code(session: Session, code_name: str) -> Consent | None:
    """The consent with this code name, compared case-insensitively (as activity types)."""
    return session.scalar(select(Consent).where(func.lower(Consent.code_name) == code_name.lower()))


def all_consents(session: Session) -> Sequence[Consent]:
    return session.scalars(select(Consent).order_by(Consent.code_name)).all()


def current_revision(session: Session, consent_id: int) -> ConsentRevision | None:
    return session.scalar(
        select(ConsentRevision)
        .where(ConsentRevision.consent_id == consent_id)
        .order_by(ConsentRevision.number.desc())
        .limit(1)
    )


def current_revisions(session: Session) -> dict[int, ConsentRevision]:
    """Consent id -> its newest revision, for every consent at once."""
    newest = (
        select(ConsentRevision.consent_id, func.max(ConsentRevision.number).label("number"))
        .group_by(ConsentRevision.consent_id)
        .subquery()
    )
    revisions = session.scalars(
        select(ConsentRevision).join(
            newest,
            (newest.c.consent_id == ConsentRevision.consent_id)
            & (newest.c.number == ConsentRevision.number),
        )
    )
    return {revision.consent_id: revision for revision in revisions}


def revisions_of(session: Session, consent_id: int) -> Sequence[ConsentRevision]:
    """A consent's revisions, newest first."""
    return session.scalars(
        select(ConsentRevision)
        .where(ConsentRevision.consent_id == consent_id)
        .order_by(ConsentRevision.number.desc())
    ).all()


def revision_by_number(session: Session, consent_id: int, number: int) -> ConsentRevision | None:
    return session.scalar(
        select(ConsentRevision).where(
            ConsentRevision.consent_id == consent_id, ConsentRevision.number == number
        )
    )


def texts_of(session: Session, revision_id: int) -> dict[str, ConsentText]:
    texts = session.scalars(select(ConsentText).where(ConsentText.revision_id == revision_id))
    return {text.language: text for text in texts}


def languages_of(session: Session, revision_ids: Iterable[int]) -> dict[int, list[str]]:
    """Revision id -> the languages it has a text in, sorted; in one query."""
    ids = set(revision_ids)
    if not ids:
        return {}
    languages: dict[int, list[str]] = {revision_id: [] for revision_id in ids}
    rows = session.execute(
        select(ConsentText.revision_id, ConsentText.language)
        .where(ConsentText.revision_id.in_(ids))
        .order_by(ConsentText.language)
    )
    for revision_id, language in rows:
        languages[revision_id].append(language)
    return languages


def agreed_counts(session: Session, consent_id: int | None = None) -> dict[int, int]:
    """Consent id -> how many contacts agree now (their latest event for it is an agreement).

    One pass over the (contact_id, consent_id, id) index finds each contact's latest event per
    consent; only those that are agreements are counted.
    """
    latest = select(func.max(ConsentAgreement.id).label("id")).group_by(
        ConsentAgreement.contact_id, ConsentAgreement.consent_id
    )
    if consent_id is not None:
        latest = latest.where(ConsentAgreement.consent_id == consent_id)
    newest = latest.subquery()
    rows = session.execute(
        select(ConsentAgreement.consent_id, func.count())
        .join(newest, newest.c.id == ConsentAgreement.id)
        .where(ConsentAgreement.agreed.is_(True))
        .group_by(ConsentAgreement.consent_id)
    )
    return dict(rows.all())


def latest_agreements(
    session: Session, consent_id: int, contact_ids: Iterable[int]
) -> dict[int, bool]:
    """Contact id -> whether its latest event for the consent is an agreement."""
    ids = set(contact_ids)
    if not ids:
        return {}
    latest = (
        select(func.max(ConsentAgreement.id))
        .where(ConsentAgreement.consent_id == consent_id, ConsentAgreement.contact_id.in_(ids))
        .group_by(ConsentAgreement.contact_id)
    )
    rows = session.execute(
        select(ConsentAgreement.contact_id, ConsentAgreement.agreed).where(
            ConsentAgreement.id.in_(latest)
        )
    )
    return dict(rows.all())


def agreement_history(session: Session, contact_id: int) -> Sequence[ConsentAgreement]:
    return session.scalars(
        select(ConsentAgreement)
        .where(ConsentAgreement.contact_id == contact_id)
        .order_by(ConsentAgreement.id)
    ).all()
