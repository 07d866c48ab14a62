"""Logging activities: the batch function the group-commit writer runs for POST /activities.

Everything that needs the database is decided here, inside the one transaction that stores the
batch, so that a key revoked, a contact erased or a type disabled a moment ago is honoured:
the key and its channel, the contact, the consent gate, the custom types, data input. Each
request of the batch succeeds or fails alone; a request that fails as a whole stores nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from contacthub.activities import repository
from contacthub.activities.repository import ActivityRow
from contacthub.activities.rules import (
    DATA_INPUT,
    MAX_TITLE_LENGTH,
    ActivityInput,
    ActivityRejection,
)
from contacthub.channels import repository as channel_repository
from contacthub.channels.service import Principal, check_key
from contacthub.consents import repository as consent_repository
from contacthub.contacts.service import apply_data_input
from contacthub.errors import Forbidden, HubError, NotFound
from contacthub.events import outbox
from contacthub.storage.models import ActivityType, Contact

ACCEPTED: dict[str, Any] = {"status": 202}


@dataclass(frozen=True, slots=True)
class IngestJob:
    """One POST /activities request, checked as far as possible without the database."""

    key_hash: str
    channel_guid: uuid.UUID
    contact_guid: uuid.UUID
    activities: Sequence[ActivityInput | ActivityRejection]
    received_at: datetime

    @property
    def custom_type_names(self) -> set[str]:
        return {a.type for a in self.activities if isinstance(a, ActivityInput) and a.is_custom}


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """Either the request failed as a whole (`error`), or one result per activity."""

    error: HubError | None = None
    results: Sequence[dict[str, Any]] = ()


@dataclass(slots=True)
class _BatchContext:
    """What the batch looked up once for all its requests."""

    keys: dict[str, channel_repository.KeyRecord]
    contact_ids: dict[uuid.UUID, int]
    types: dict[str, ActivityType]
    agreed: dict[tuple[int, int], bool]


def process_batch(session: Session, jobs: Sequence[IngestJob]) -> list[IngestOutcome]:
    """Store the activities of a batch of requests; answer one outcome per request."""
    context = _look_up(session, jobs)
    rows: list[ActivityRow] = []
    outcomes = []
    for job in jobs:
        try:
            principal, contact_id = _admit(job, context)
        except HubError as error:
            outcomes.append(IngestOutcome(error=error))
            continue
        results = _log_all(session, job, principal.channel_id, contact_id, context, rows)
        outcomes.append(IngestOutcome(results=results))
    repository.insert_activities(session, rows)
    outbox.emit_activities(session, rows)
    return outcomes


def _look_up(session: Session, jobs: Sequence[IngestJob]) -> _BatchContext:
    keys = channel_repository.keys_by_hash(session, {job.key_hash for job in jobs})
    contact_ids = repository.contact_ids_by_guid(session, {job.contact_guid for job in jobs})
    types: dict[str, ActivityType] = {}
    if any(job.custom_type_names for job in jobs):
        types = {t.code_name.lower(): t for t in repository.all_types(session)}
    agreed: dict[tuple[int, int], bool] = {}
    gated: dict[int, set[int]] = {}
    for job in jobs:
        key = keys.get(job.key_hash)
        contact_id = contact_ids.get(job.contact_guid)
        if key is not None and key.required_consent_id is not None and contact_id is not None:
            gated.setdefault(key.required_consent_id, set()).add(contact_id)
    for consent_id, ids in gated.items():
        for contact_id, is_agreed in consent_repository.latest_agreements(
            session, consent_id, ids
        ).items():
            agreed[(consent_id, contact_id)] = is_agreed
    return _BatchContext(keys, contact_ids, types, agreed)


def _admit(job: IngestJob, context: _BatchContext) -> tuple[Principal, int]:
    principal = check_key(context.keys.get(job.key_hash), job.key_hash, "tracking")
    if str(job.channel_guid) != principal.channel_guid:
        raise Forbidden(
            "channel is not the tracking identifier of the API key's channel.",
            code="channel_mismatch",
        )
    contact_id = context.contact_ids.get(job.contact_guid)
    if contact_id is None:
        raise NotFound(f"No contact with GUID {job.contact_guid}.", code="unknown_contact")
    consent_id = principal.required_consent_id
    if consent_id is not None and not context.agreed.get((consent_id, contact_id), False):
        raise Forbidden(
            "This channel logs activities only of contacts who agreed to its required consent.",
            code="consent_required",
        )
    return principal, contact_id


def _log_all(
    session: Session,
    job: IngestJob,
    channel_id: int,
    contact_id: int,
    context: _BatchContext,
    rows: list[ActivityRow],
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for activity in job.activities:
        if (
            isinstance(activity, ActivityInput)
            and not activity.contact_fields
            and not activity.is_custom
        ):
            # The common case, kept short: a built-in type with nothing to look up or update.
            rows.append(
                ActivityRow(
                    contact_id,
                    channel_id,
                    activity.type,
                    activity.title()[:MAX_TITLE_LENGTH],
                    activity.value,
                    activity.url,
                    activity.referrer,
                    job.received_at,
                )
            )
            results.append(ACCEPTED)
        else:
            results.append(_log(session, job, channel_id, contact_id, activity, context, rows))
    return results


def _log(
    session: Session,
    job: IngestJob,
    channel_id: int,
    contact_id: int,
    activity: ActivityInput | ActivityRejection,
    context: _BatchContext,
    rows: list[ActivityRow],
) -> dict[str, Any]:
    if isinstance(activity, ActivityRejection):
        return activity.as_result()
    display_name = None
    if activity.is_custom:
        activity_type = context.types.get(activity.type)
        if activity_type is None:
            return ActivityRejection(
                400, f"Unknown activity type {activity.type!r}.", "unknown_activity_type"
            ).as_result()
        if not activity_type.enabled:
            return ActivityRejection(
                400, f"Activity type {activity.type!r} is disabled.", "activity_type_disabled"
            ).as_result()
        display_name = activity_type.display_name
        type_name = activity_type.code_name
    else:
        type_name = activity.type
    result = ACCEPTED
    if activity.type == DATA_INPUT and activity.contact_fields:
        contact = session.get_one(Contact, contact_id)
        target = apply_data_input(session, contact, activity.contact_fields)
        if target.id != contact_id:
            # The data belongs to another contact (its email differs): tell the client which.
            contact_id = target.id
            result = {"status": 202, "contact": str(target.guid)}
    rows.append(
        ActivityRow(
            contact_id,
            channel_id,
            type_name,
            activity.title(display_name)[:MAX_TITLE_LENGTH],
            activity.value,
            activity.url,
            activity.referrer,
            job.received_at,
        )
    )
    return result
