"""Logging activities: the batch function the group-commit writer runs for POST /activities.

Everything that needs the database is decided here, inside the one transaction that stores the
batch, so that a key revoked, a contact erased or a type disabled a moment ago is honoured:
the key and its channel, the contact, the consent gate, the custom types, data input. Each
request of the batch succeeds or fails alone; a request that fails as a whole stores nothing.

Idempotency (contacthub/idempotency.py) is decided here too, in the same transaction: an
Idempotency-Key is claimed once the API key is known (a replay answers the stored response),
and every `messageId` of the batch is claimed in one statement before anything is logged, so
that a retried activity is answered as the first time and stores nothing, not even its
contact fields.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import msgspec
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
from contacthub.errors import Conflict, Forbidden, HubError, NotFound
from contacthub.events import outbox
from contacthub.idempotency import (
    REUSED,
    KeyClaim,
    KeyReused,
    MessageKey,
    StoredAnswer,
    claim_key,
    claim_message_ids,
    finish_key,
    release_key,
    remember_results,
)
from contacthub.storage.models import ActivityType, Contact

ACCEPTED: dict[str, Any] = {"status": 202}
DEFAULT_DEDUPE = timedelta(days=7)
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class IngestJob:
    """One POST /activities request, checked as far as possible without the database."""

    key_hash: str
    channel_guid: uuid.UUID
    contact_guid: uuid.UUID
    activities: Sequence[ActivityInput | ActivityRejection]
    received_at: datetime
    # The request's Idempotency-Key, and how long ids are remembered (`ingest_dedupe_days`).
    idempotency: KeyClaim | None = None
    dedupe: timedelta = DEFAULT_DEDUPE

    @property
    def custom_type_names(self) -> set[str]:
        return {a.type for a in self.activities if isinstance(a, ActivityInput) and a.is_custom}


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """The request failed as a whole (`error`), or was a replay of an Idempotency-Key
    (`replay`: the stored answer), or one result per activity."""

    error: HubError | None = None
    results: Sequence[dict[str, Any]] = ()
    replay: StoredAnswer | None = None


@dataclass(slots=True)
class _BatchContext:
    """What the batch looked up once for all its requests."""

    keys: dict[str, channel_repository.KeyRecord]
    contact_ids: dict[uuid.UUID, int]
    types: dict[str, ActivityType]
    agreed: dict[tuple[int, int], bool]


@dataclass(slots=True)
class _Admitted:
    """A request that may log: whose, on which channel, and its activities prepared."""

    index: int
    job: IngestJob
    channel_id: int
    contact_id: int
    # Per activity: its rejection result, or the activity with its type's stored spelling
    # and display name (custom types).
    prepared: list[dict[str, Any] | tuple[ActivityInput, str, str | None]] = field(
        default_factory=list
    )


def process_batch(session: Session, jobs: Sequence[IngestJob]) -> list[IngestOutcome]:
    """Store the activities of a batch of requests; answer one outcome per request."""
    context = _look_up(session, jobs)
    outcomes: list[IngestOutcome | None] = [None] * len(jobs)
    admitted: list[_Admitted] = []
    # Each Idempotency-Key met in the batch: its stored answer, or None if claimed here.
    keys_in_batch: dict[tuple[int, str, str], StoredAnswer | None] = {}
    for index, job in enumerate(jobs):
        claimed = False
        channel_id = 0
        try:
            principal = _principal(job, context)
            channel_id = principal.channel_id
            if job.idempotency is not None:
                claim = job.idempotency
                seen = (channel_id, claim.scope, claim.key)
                if seen in keys_in_batch:
                    stored = keys_in_batch[seen]
                    if stored is None:
                        raise _in_use()  # the first has not committed yet
                    if stored.request_hash != claim.request_hash:
                        raise KeyReused(REUSED)
                    outcomes[index] = IngestOutcome(replay=stored)
                    continue
                stored = claim_key(session, channel_id, claim, job.received_at, job.dedupe)
                keys_in_batch[seen] = stored
                if stored is not None:
                    outcomes[index] = IngestOutcome(replay=stored)
                    continue
                claimed = True
            contact_id = _admit(job, principal, context)
        except HubError as error:
            if claimed and job.idempotency is not None:
                release_key(session, channel_id, job.idempotency)
            outcomes[index] = IngestOutcome(error=error)
            continue
        admitted.append(_prepare(index, job, channel_id, contact_id, context))
    rows: list[ActivityRow] = []
    retries = claim_message_ids(
        session,
        [
            (a.channel_id, item[0].message_id)
            for a in admitted
            for item in a.prepared
            if isinstance(item, tuple) and item[0].message_id is not None
        ],
        max((job.received_at for job in jobs), default=datetime.min),
        min((job.dedupe for job in jobs), default=DEFAULT_DEDUPE),
    )
    answered: dict[MessageKey, dict[str, Any]] = {}
    to_remember: dict[MessageKey, dict[str, Any]] = {}
    for request in admitted:
        results = _log_all(session, request, rows, retries, answered, to_remember)
        outcomes[request.index] = IngestOutcome(results=results)
        if request.job.idempotency is not None:
            body = _encoder.encode({"results": results})
            finish_key(session, request.channel_id, request.job.idempotency, 207, body)
    remember_results(session, to_remember)
    repository.insert_activities(session, rows)
    outbox.emit_activities(session, rows)
    answers = [outcome for outcome in outcomes if outcome is not None]
    assert len(answers) == len(jobs)
    return answers


def _in_use() -> HubError:
    return Conflict(
        "A request with this Idempotency-Key is still running; retry once it has finished.",
        code="idempotency_key_in_use",
    )


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


def _principal(job: IngestJob, context: _BatchContext) -> Principal:
    principal = check_key(context.keys.get(job.key_hash), job.key_hash, "tracking")
    if str(job.channel_guid) != principal.channel_guid:
        raise Forbidden(
            "channel is not the tracking identifier of the API key's channel.",
            code="channel_mismatch",
        )
    return principal


def _admit(job: IngestJob, principal: Principal, context: _BatchContext) -> int:
    contact_id = context.contact_ids.get(job.contact_guid)
    if contact_id is None:
        raise NotFound(f"No contact with GUID {job.contact_guid}.", code="unknown_contact")
    consent_id = principal.required_consent_id
    if consent_id is not None and not context.agreed.get((consent_id, contact_id), False):
        raise Forbidden(
            "This channel logs activities only of contacts who agreed to its required consent.",
            code="consent_required",
        )
    return contact_id


def _prepare(
    index: int, job: IngestJob, channel_id: int, contact_id: int, context: _BatchContext
) -> _Admitted:
    """Each activity refused alone, or ready to log: the checks that change nothing."""
    request = _Admitted(index, job, channel_id, contact_id)
    for activity in job.activities:
        if isinstance(activity, ActivityRejection):
            request.prepared.append(activity.as_result())
        elif not activity.is_custom:
            request.prepared.append((activity, activity.type, None))
        else:
            activity_type = context.types.get(activity.type)
            if activity_type is None:
                request.prepared.append(
                    ActivityRejection(
                        400, f"Unknown activity type {activity.type!r}.", "unknown_activity_type"
                    ).as_result()
                )
            elif not activity_type.enabled:
                request.prepared.append(
                    ActivityRejection(
                        400,
                        f"Activity type {activity.type!r} is disabled.",
                        "activity_type_disabled",
                    ).as_result()
                )
            else:
                request.prepared.append(
                    (activity, activity_type.code_name, activity_type.display_name)
                )
    return request


def _log_all(
    session: Session,
    request: _Admitted,
    rows: list[ActivityRow],
    retries: dict[MessageKey, dict[str, Any] | None],
    answered: dict[MessageKey, dict[str, Any]],
    to_remember: dict[MessageKey, dict[str, Any]],
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    job = request.job
    for item in request.prepared:
        if not isinstance(item, tuple):
            results.append(item)
            continue
        activity, type_name, display_name = item
        message_key = None
        if activity.message_id is not None:
            message_key = (request.channel_id, activity.message_id)
            if message_key in answered:
                # The same id twice in one batch: the second is a retry of the first.
                results.append(answered[message_key])
                continue
            if message_key in retries:
                stored = retries[message_key]
                results.append(ACCEPTED if stored is None else stored)
                continue
        if not activity.contact_fields and not activity.truncated and display_name is None:
            # The common case, kept short: a built-in type with nothing to look up or update.
            rows.append(
                ActivityRow(
                    request.contact_id,
                    request.channel_id,
                    type_name,
                    activity.title()[:MAX_TITLE_LENGTH],
                    activity.value,
                    activity.url,
                    activity.referrer,
                    job.received_at,
                )
            )
            result = ACCEPTED
        else:
            result = _log(session, request, activity, type_name, display_name, rows)
        results.append(result)
        if message_key is not None:
            answered[message_key] = result
            if result is not ACCEPTED:
                to_remember[message_key] = result
    return results


def _log(
    session: Session,
    request: _Admitted,
    activity: ActivityInput,
    type_name: str,
    display_name: str | None,
    rows: list[ActivityRow],
) -> dict[str, Any]:
    contact_id = request.contact_id
    result: dict[str, Any] = {"status": 202}
    if activity.type == DATA_INPUT and activity.contact_fields:
        contact = session.get_one(Contact, contact_id)
        target = apply_data_input(session, contact, activity.contact_fields)
        if target.id != contact_id:
            # The data belongs to another contact (its email differs): tell the client which.
            contact_id = target.id
            result["contact"] = str(target.guid)
    if activity.truncated:
        result["truncated"] = list(activity.truncated)
    rows.append(
        ActivityRow(
            contact_id,
            request.channel_id,
            type_name,
            activity.title(display_name)[:MAX_TITLE_LENGTH],
            activity.value,
            activity.url,
            activity.referrer,
            request.job.received_at,
        )
    )
    return ACCEPTED if result == ACCEPTED else result
