"""Helpers of the tracking API tests: calling the endpoints and reading what was stored."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import httpx2
from sqlalchemy import func, select
from starlette.testclient import TestClient

from contacthub.channels.service import hash_key
from contacthub.storage.database import Database
from contacthub.storage.models import (
    Activity,
    ApiKey,
    Base,
    ConsentAgreement,
    Contact,
)
from tests.factories import TrackingSetup

API = "/Kentico.Tracking"

# make_client(**settings_changes): a hub on the test's database with some settings changed.
MakeClient = Callable[..., TestClient]


def post_activities(
    client: TestClient,
    setup: TrackingSetup,
    contact: str,
    activities: Sequence[Any],
) -> httpx2.Response:
    """POST /activities as the seed spells the body."""
    body = {"channel": setup.channel_guid, "contact": contact, "activities": list(activities)}
    return client.post(f"{API}/activities", headers=setup.headers, json=body)


def results_of(response: httpx2.Response) -> list[dict[str, Any]]:
    """The per-activity results of a 207 answer."""
    assert response.status_code == 207, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def assert_error(response: httpx2.Response, status: int, code: str | None = None) -> str:
    """Check a 4xx answer: its status, a JSON body with `error` and `code`; answer the error."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error", "code"}, body
    assert isinstance(body["error"], str), body
    assert body["error"], body
    if code is not None:
        assert body["code"] == code, body
    error: str = body["error"]
    return error


def assert_rejected(result: dict[str, Any], status: int, code: str) -> str:
    """Check one activity's result in a 207 answer: refused alone, with a readable error."""
    assert result["status"] == status, result
    assert result["code"] == code, result
    assert isinstance(result["error"], str), result
    assert result["error"], result
    error: str = result["error"]
    return error


def activities_of(db: Database, contact_guid: str) -> list[Activity]:
    """The stored activities of a contact, oldest first."""
    with db.read() as session:
        rows = list(
            session.scalars(
                select(Activity)
                .join(Contact, Contact.id == Activity.contact_id)
                .where(Contact.guid == uuid.UUID(contact_guid))
                .order_by(Activity.id)
            )
        )
        session.expunge_all()  # keep them loaded after the read's rollback
        return rows


def titles_of(db: Database, contact_guid: str) -> list[str]:
    return [activity.title for activity in activities_of(db, contact_guid)]


def contact_row(db: Database, contact_guid: str) -> Contact:
    with db.read() as session:
        contact = session.scalar(select(Contact).where(Contact.guid == uuid.UUID(contact_guid)))
        assert contact is not None, f"no contact {contact_guid}"
        session.expunge_all()
        return contact


def agreements_of(db: Database, contact_guid: str) -> list[ConsentAgreement]:
    """A contact's agree/revoke events, oldest first."""
    with db.read() as session:
        rows = list(
            session.scalars(
                select(ConsentAgreement)
                .join(Contact, Contact.id == ConsentAgreement.contact_id)
                .where(Contact.guid == uuid.UUID(contact_guid))
                .order_by(ConsentAgreement.id)
            )
        )
        session.expunge_all()
        return rows


def count(db: Database, model: type[Base]) -> int:
    """How many rows a table holds."""
    with db.read() as session:
        total = session.scalar(select(func.count()).select_from(model))
        return int(total or 0)


def api_key_id(db: Database, plaintext: str) -> int:
    with db.read() as session:
        key_id = session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_key(plaintext)))
        assert key_id is not None
        return key_id
