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


def texts_of(session: Session, revision_id: int) -> dict[str, ConsentText]:
    texts = session.scalars(select(ConsentText).where(ConsentText.revision_id == revision_id))
    return {text.language: text for text in texts}


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
