"""`/api/consents`: consents, their texts per language, and their revisions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from sqlalchemy.orm import Session

from contacthub.api.routing import CODE_NAME, LANGUAGE, ApiCall, ApiRouter
from contacthub.consents import service as consents
from contacthub.errors import NotFound
from contacthub.identifiers import whole_number

router = ApiRouter("Consents")


class ConsentTextOut(msgspec.Struct):
    language: str
    short_text: str
    full_text: str


class ConsentRevisionOut(msgspec.Struct):
    number: int
    created_at: datetime
    languages: list[str]


class ConsentRevisionTextsOut(msgspec.Struct):
    number: int
    texts: list[ConsentTextOut]


class ConsentOut(msgspec.Struct):
    code_name: str
    display_name: str
    default_language: str
    revision: int
    languages: list[str]
    agreed_contacts: int
    created_at: datetime


class ConsentDetailOut(ConsentOut):
    texts: list[ConsentTextOut]
    revisions: list[ConsentRevisionOut]


class ConsentIn(msgspec.Struct, forbid_unknown_fields=True):
    code_name: Annotated[str, CODE_NAME]
    language: Annotated[str, LANGUAGE]
    short_text: str
    full_text: str
    display_name: str | None = None


class ConsentTextIn(msgspec.Struct, forbid_unknown_fields=True):
    short_text: str
    full_text: str


class ConsentChange(msgspec.Struct, forbid_unknown_fields=True):
    default_language: Annotated[str, LANGUAGE] | None = None


def consent_out(summary: consents.ConsentSummary) -> ConsentOut:
    return ConsentOut(
        summary.code_name,
        summary.display_name,
        summary.default_language,
        summary.revision,
        summary.languages,
        summary.agreed_contacts,
        summary.created_at,
    )


def _texts_out(texts: list[consents.ConsentTexts]) -> list[ConsentTextOut]:
    return [ConsentTextOut(t.language, t.short_text, t.full_text) for t in texts]


def detail_out(session: Session, code_name: str) -> ConsentDetailOut:
    found = consents.detail(session, code_name)
    return ConsentDetailOut(
        **msgspec.structs.asdict(consent_out(found.summary)),
        texts=_texts_out(found.texts),
        revisions=[
            ConsentRevisionOut(r.number, r.created_at, r.languages) for r in found.revisions
        ],
    )


@router.get("/api/consents", response=list[ConsentOut])
async def list_consents(call: ApiCall) -> list[ConsentOut]:
    """List the consents, with current revision, languages and agreed contacts.

    `agreed_contacts` counts the contacts whose latest event for the consent is an agreement.
    """
    return await call.hub.read(lambda s: [consent_out(c) for c in consents.summaries(s)])


@router.post("/api/consents", body=ConsentIn, response=ConsentDetailOut, status=201)
async def create_consent(call: ApiCall, body: ConsentIn) -> ConsentDetailOut:
    """Create a consent with its first texts; their language becomes the default."""

    def work(session: Session) -> ConsentDetailOut:
        consent = consents.create_consent(
            session,
            body.code_name,
            language=body.language,
            short_text=body.short_text,
            full_text=body.full_text,
            display_name=body.display_name,
            actor=call.actor,
        )
        return detail_out(session, consent.code_name)

    return await call.hub.write(work)


@router.get("/api/consents/{code}", response=ConsentDetailOut)
async def get_consent(call: ApiCall) -> ConsentDetailOut:
    """One consent: its current texts per language (default first) and its revisions."""
    return await call.hub.read(lambda s: detail_out(s, call.path("code")))


@router.get("/api/consents/{code}/revisions/{number}", response=ConsentRevisionTextsOut)
async def get_consent_revision(call: ApiCall) -> ConsentRevisionTextsOut:
    """The texts of one revision: what contacts who agreed to it were shown."""
    text = call.path("number")
    number = whole_number(text)
    if number is None:
        raise NotFound(f"No revision {text!r}.", code="unknown_revision")
    texts = await call.hub.read(lambda s: consents.revision_texts(s, call.path("code"), number))
    return ConsentRevisionTextsOut(number, _texts_out(texts))


@router.put("/api/consents/{code}/texts/{language}", body=ConsentTextIn, response=ConsentDetailOut)
async def set_consent_text(call: ApiCall, body: ConsentTextIn) -> ConsentDetailOut:
    """Add or change one language's texts: makes a new revision.

    The other languages are copied into the new revision. Texts identical to the current ones
    make no new revision, so repeating the request changes nothing. Contacts who agreed to an
    earlier revision keep that revision.
    """

    def work(session: Session) -> ConsentDetailOut:
        code_name, language = call.path("code"), call.path("language")
        consents.set_text(
            session,
            code_name,
            language=language,
            short_text=body.short_text,
            full_text=body.full_text,
            actor=call.actor,
        )
        return detail_out(session, code_name)

    return await call.hub.write(work)


@router.patch("/api/consents/{code}", body=ConsentChange, response=ConsentDetailOut)
async def change_consent(call: ApiCall, body: ConsentChange) -> ConsentDetailOut:
    """Change a consent's default language (a language it has texts in)."""

    def work(session: Session) -> ConsentDetailOut:
        code_name = call.path("code")
        if body.default_language is not None:
            consents.set_default_language(
                session, code_name, body.default_language, actor=call.actor
            )
        return detail_out(session, code_name)

    return await call.hub.write(work)
