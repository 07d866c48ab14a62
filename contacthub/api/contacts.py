"""`/api/contacts`: search contacts, read one with its consents, timeline and email engagement,
export everything stored about it, erase it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.orm import Session
from starlette.responses import Response, StreamingResponse

from contacthub.api.routing import ApiCall, ApiRouter, QueryParam
from contacthub.contacts import export, privacy, profile
from contacthub.contacts.search import (
    DEFAULT_LIMIT,
    FILTER_NAMES,
    MAX_FILTER_DAYS,
    MAX_LIMIT,
    SORTS,
    ContactSummary,
    contact_count,
    parse_filter,
    search_contacts,
)
from contacthub.csv_export import MEDIA_TYPE, attachment
from contacthub.identifiers import MAX_BIG_ID

router = ApiRouter("Contacts")


class ContactSummaryOut(msgspec.Struct):
    guid: str
    email: str | None
    first_name: str | None
    last_name: str | None
    company_name: str | None
    created_at: datetime
    job_title: str | None
    city: str | None
    country: str | None
    last_activity_at: datetime | None


class ContactListOut(msgspec.Struct):
    contacts: list[ContactSummaryOut]
    total: int
    next_after: str | None


class ConsentEventOut(msgspec.Struct):
    agreed: bool
    revision: int
    channel: str | None
    at: datetime


class ConsentStateOut(msgspec.Struct):
    consent: str
    display_name: str
    agreed: bool | None
    agreed_revision: int | None
    current_revision: int
    history: list[ConsentEventOut]


class SubscriptionOut(msgspec.Struct):
    newsletter: str
    email: str
    status: str
    subscribed_at: datetime
    unsubscribed_at: datetime | None


class IssueEngagementOut(msgspec.Struct):
    issue: str
    subject: str
    newsletter: str
    delivery_status: str | None
    sent_at: datetime | None
    human_opens: int
    machine_opens: int
    human_clicks: int
    machine_clicks: int
    first_open_at: datetime | None


class ContactOut(msgspec.Struct):
    guid: str
    created_at: datetime
    updated_at: datetime
    fields: dict[str, str | None]
    consents: list[ConsentStateOut]
    subscriptions: list[SubscriptionOut]
    email_issues: list[IssueEngagementOut]


class ActivityOut(msgspec.Struct):
    id: int
    type: str
    title: str
    value: str | None
    url: str | None
    referrer: str | None
    channel: str | None
    created_at: datetime


class ActivityPageOut(msgspec.Struct):
    activities: list[ActivityOut]
    next_before: int | None


class ErasedOut(msgspec.Struct):
    erased: str
    activities: int
    consent_agreements: int
    subscriptions: int
    deliveries: int
    email_opens: int
    email_clicks: int


def summary_out(contact: ContactSummary) -> ContactSummaryOut:
    return ContactSummaryOut(
        str(contact.guid),
        contact.email,
        contact.first_name,
        contact.last_name,
        contact.company_name,
        contact.created_at,
        contact.job_title,
        contact.city,
        contact.country,
        contact.last_activity_at,
    )


def contact_out(
    fields: profile.ContactFields,
    consents: list[profile.ConsentState],
    engagement: profile.EmailEngagement,
) -> ContactOut:
    return ContactOut(
        str(fields.guid),
        fields.created_at,
        fields.updated_at,
        profile.wire_fields(fields),
        [
            ConsentStateOut(
                c.code_name,
                c.display_name,
                c.agreed,
                c.agreed_revision,
                c.current_revision,
                [ConsentEventOut(e.agreed, e.revision, e.channel, e.at) for e in c.history],
            )
            for c in consents
        ],
        [
            SubscriptionOut(s.newsletter, s.email, s.status, s.subscribed_at, s.unsubscribed_at)
            for s in engagement.subscriptions
        ],
        [
            IssueEngagementOut(
                str(i.guid),
                i.subject,
                i.newsletter,
                i.delivery_status,
                i.sent_at,
                i.human_opens,
                i.machine_opens,
                i.human_clicks,
                i.machine_clicks,
                i.first_open_at,
            )
            for i in engagement.issues
        ],
    )


def activity_out(item: profile.TimelineItem) -> ActivityOut:
    return ActivityOut(
        item.id,
        item.type,
        item.title,
        item.value,
        item.url,
        item.referrer,
        item.channel,
        item.created_at,
    )


@router.get(
    "/api/contacts",
    response=ContactListOut,
    raw_response="text/csv",
    query=(
        QueryParam("q", "A GUID (exact), the start of an email address, or part of a name."),
        QueryParam("group", "Only members of the group with this name."),
        QueryParam("consent", "Only contacts who agree now to the consent with this code name."),
        QueryParam(
            "newsletter", "Only subscribers of the newsletter with this name (not unsubscribed)."
        ),
        QueryParam("country", "Only contacts of this country: ISO 3166-1 alpha-3, e.g. CZE."),
        QueryParam(
            "active_within",
            f"Only contacts with an activity in the last N days (1 to {MAX_FILTER_DAYS}).",
            "integer",
            minimum=1,
            maximum=MAX_FILTER_DAYS,
        ),
        QueryParam(
            "inactive_for",
            f"Only contacts with no activity in the last N days (1 to {MAX_FILTER_DAYS}).",
            "integer",
            minimum=1,
            maximum=MAX_FILTER_DAYS,
        ),
        QueryParam(
            "sort", f"One of {', '.join(SORTS)}; default -created (newest first).", enum=SORTS
        ),
        QueryParam("after", "The next_after cursor of the previous page (same q and sort)."),
        QueryParam(
            "limit",
            f"Contacts per page, 1 to {MAX_LIMIT}.",
            "integer",
            minimum=1,
            maximum=MAX_LIMIT,
        ),
        QueryParam(
            "format",
            "`csv` for every matching contact as CSV (streamed; `after` and `limit` do not "
            "apply; recorded as `contact.list_exported`), `json` (default) for a page. "
            "`Accept: text/csv` asks for CSV too.",
            enum=("json", "csv"),
        ),
    ),
)
async def list_contacts(call: ApiCall) -> ContactListOut | Response:
    """Search and filter contacts, sorted, a page at a time; or all of them as CSV.

    Case is ignored. The filters (`group`, `consent`, `newsletter`, `country`,
    `active_within`, `inactive_for`) combine with each other and with `q`: a contact must meet
    all of them; an unknown group, consent or newsletter is a 400 naming the parameter.
    `total` counts every contact that matches. Pass `next_after` back as `after` (with the same
    `q`, filters and `sort`) for the next page; it is null on the last page.
    """
    q = call.query("q")
    sort = call.query("sort")
    filters = parse_filter(**{name: call.query(name) for name in FILTER_NAMES})
    if call.wants_csv():
        started = await call.hub.write(
            lambda s: export.start_list_export(s, q, sort, filters, actor=call.actor)
        )
        return StreamingResponse(
            export.stream(call.hub.read, started),
            media_type=MEDIA_TYPE,
            headers=attachment(started.filename),
        )
    after = call.query("after") or None
    limit = call.query_int("limit", DEFAULT_LIMIT, maximum=MAX_LIMIT)

    def work(session: Session) -> ContactListOut:
        page = search_contacts(session, q, sort, after, limit, filters=filters)
        return ContactListOut(
            [summary_out(c) for c in page.contacts],
            contact_count(session, q, filters=filters),
            page.next_after,
        )

    return await call.hub.read(work)


@router.get("/api/contacts/{guid}", response=ContactOut)
async def get_contact(call: ApiCall) -> ContactOut:
    """A contact: fields, consents with their agree/revoke history, and email engagement.

    Its activities are at `/api/contacts/{guid}/activities`.
    """
    guid = call.path("guid")

    def work(session: Session) -> ContactOut:
        contact = profile.find_contact(session, guid)
        return contact_out(
            profile.contact_fields(contact),
            profile.consent_states(session, contact.id),
            profile.email_engagement(session, contact.id),
        )

    return await call.hub.read(work)


@router.get(
    "/api/contacts/{guid}/activities",
    response=ActivityPageOut,
    query=(
        QueryParam(
            "before",
            "The next_before cursor of the previous page.",
            "integer",
            minimum=0,
            maximum=MAX_BIG_ID,
        ),
        QueryParam(
            "limit",
            f"Activities per page, 1 to {profile.MAX_TIMELINE_PAGE}.",
            "integer",
            minimum=1,
            maximum=profile.MAX_TIMELINE_PAGE,
        ),
    ),
)
async def contact_activities(call: ApiCall) -> ActivityPageOut:
    """A contact's activities on every channel, email opens and clicks included, newest first.

    `channel` is the channel's name, `Email` for opens and clicks. Pass `next_before` back as
    `before` for older activities; it is null on the last page.
    """
    guid = call.path("guid")
    before = profile.check_before(call.query("before"))
    limit = call.query_int("limit", profile.TIMELINE_PAGE, maximum=profile.MAX_TIMELINE_PAGE)

    def work(session: Session) -> ActivityPageOut:
        contact = profile.find_contact(session, guid)
        page = profile.timeline(session, contact.id, before=before, limit=limit)
        return ActivityPageOut([activity_out(i) for i in page.items], page.next_before)

    return await call.hub.read(work)


@router.get("/api/contacts/{guid}/export", response=dict[str, Any])
async def export_contact(call: ApiCall) -> dict[str, Any]:
    """Everything stored about a contact, for a data subject's access request.

    Fields, consent agreements (with the revision of the texts), every activity, newsletter
    subscriptions, deliveries, opens and clicks. Recorded in the audit log (`contact.exported`).
    """
    guid = call.path("guid")
    return await call.hub.write(lambda s: privacy.export_contact(s, guid, call.actor))


@router.delete("/api/contacts/{guid}", response=ErasedOut)
async def erase_contact(call: ApiCall) -> ErasedOut:
    """Erase a contact and everything stored about it, for good.

    Deletes its activities (and their counts in the dashboard), consent agreements,
    subscriptions, deliveries, opens and clicks. Recorded in the audit log (`contact.erased`)
    with the GUID only. Afterwards the tracking API answers 404 `unknown_contact` for the GUID.
    """
    guid = call.path("guid")
    erasure = await call.hub.write(lambda s: privacy.erase_contact(s, guid, call.actor))
    return ErasedOut(**erasure.as_dict())
