"""`contacthub consent …`."""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy.orm import Session

from contacthub.audit.service import CLI_ACTOR
from contacthub.cli.output import JsonOption, emit, unit_of_work
from contacthub.consents import repository, service
from contacthub.storage.models import Consent

consent_app = typer.Typer(help="Consents and their texts, per language, with revisions.")

LanguageOption = typer.Option(..., "--language", help="Language code name, e.g. en or en-US.")
ShortTextOption = typer.Option(..., "--short-text", help="Short text (HTML).")
FullTextOption = typer.Option(..., "--full-text", help="Full text (HTML).")


def consent_record(session: Session, consent: Consent) -> dict[str, Any]:
    revision = repository.current_revision(session, consent.id)
    languages = sorted(repository.texts_of(session, revision.id)) if revision else []
    return {
        "code_name": consent.code_name,
        "display_name": consent.display_name,
        "default_language": consent.default_language,
        "languages": languages,
        "revision": revision.number if revision else None,
    }


@consent_app.command("create")
def consent_create(
    code_name: str,
    language: str = LanguageOption,
    short_text: str = ShortTextOption,
    full_text: str = FullTextOption,
    display_name: str | None = typer.Option(None, help="Name shown to people."),
    as_json: bool = JsonOption,
) -> None:
    """Create a consent with its first text; that language becomes the default."""
    with unit_of_work() as session:
        consent = service.create_consent(
            session,
            code_name,
            language=language,
            short_text=short_text,
            full_text=full_text,
            display_name=display_name,
            actor=CLI_ACTOR,
        )
        record = consent_record(session, consent)
    emit(record, as_json, "Consent")


@consent_app.command("set-text")
def consent_set_text(
    code_name: str,
    language: str = LanguageOption,
    short_text: str = ShortTextOption,
    full_text: str = FullTextOption,
    as_json: bool = JsonOption,
) -> None:
    """Add a language or change a text: makes a new revision of the consent."""
    with unit_of_work() as session:
        service.set_text(
            session,
            code_name,
            language=language,
            short_text=short_text,
            full_text=full_text,
            actor=CLI_ACTOR,
        )
        record = consent_record(session, service.get_consent(session, code_name))
    emit(record, as_json, "Consent")


@consent_app.command("set-default-language")
def consent_set_default_language(code_name: str, language: str, as_json: bool = JsonOption) -> None:
    """Make a language that has a text the consent's default."""
    with unit_of_work() as session:
        consent = service.set_default_language(session, code_name, language, actor=CLI_ACTOR)
        record = consent_record(session, consent)
    emit(record, as_json, "Consent")


@consent_app.command("list")
def consent_list(as_json: bool = JsonOption) -> None:
    """List the consents."""
    with unit_of_work(write=False) as session:
        rows = [consent_record(session, c) for c in service.list_consents(session)]
    emit(rows, as_json, "Consents")
