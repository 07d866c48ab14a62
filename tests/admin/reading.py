"""Helpers for reading admin pages in tests."""

from __future__ import annotations

import html
import re

import httpx2
from sqlalchemy import select

from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent


def field_error(page: str, field: str) -> str | None:
    """The message shown next to a form field, unescaped; None when it shows none."""
    match = re.search(rf'<div class="error" id="e-{re.escape(field)}">(.*?)</div>', page, re.S)
    return html.unescape(match.group(1)) if match else None


def audit_actions(database: Database) -> list[tuple[str, str, str]]:
    """(actor, action, subject) of every audit event, oldest first."""
    with database.read() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id))
        return [(e.actor, e.action, e.subject) for e in events]


def cookie(response: httpx2.Response, name: str) -> tuple[str, set[str]]:
    """A cookie the response sets: its value and its attributes' names (lower case)."""
    for header in response.headers.get_list("set-cookie"):
        first, *attributes = (part.strip() for part in header.split(";"))
        key, _, value = first.partition("=")
        if key == name:
            return value, {a.partition("=")[0].lower() for a in attributes}
    raise AssertionError(f"no {name} cookie in {response.headers.get_list('set-cookie')}")
