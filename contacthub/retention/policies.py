"""Retention policies: how many days each kind of data is kept.

A policy is a period in days for one kind of data (`KINDS`); data older than the period is
deleted by the retention job (`retention.job`). No policy: the kind is kept forever, which is
every kind's default. The kinds:

- `activities`, per activity type: a policy names the type (`pagevisit`, a custom type's code
  name, …) or none (`''`), which is the default of every type without a policy of its own.
  Only activities the dashboard's rollups have already counted are deleted, so the dashboard's
  totals stay right.
- `email_hits`: the hits on open pixels and tracked links (`email_opens`, `email_clicks`).
- `anonymous_contacts`: contacts nobody knows anything about (`ANONYMOUS_FIELDS` all empty: no
  email, no name, no other field), with no activity at all, no subscription to a newsletter, no
  consent agreement and no group membership, created and last changed before the period. Such
  a contact is what a tracking script leaves behind for a visitor who never came back.
- `audit_log`: the audit log's entries.
- `outbox`: webhook events already dispatched whose every delivery was delivered (and those
  deliveries). An event with a delivery still pending or dead is kept, whatever its age.

Changes are recorded in the audit log as `retention.policy_set` and `retention.policy_removed`
with the caller's `actor`.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from contacthub.audit import service as audit
from contacthub.errors import InvalidInput, NotFound
from contacthub.identifiers import check_code_name
from contacthub.storage.models import RetentionPolicy
from contacthub.storage.types import utcnow

ACTIVITIES = "activities"
EMAIL_HITS = "email_hits"
ANONYMOUS_CONTACTS = "anonymous_contacts"
AUDIT_LOG = "audit_log"
OUTBOX = "outbox"
KINDS = (ACTIVITIES, EMAIL_HITS, ANONYMOUS_CONTACTS, AUDIT_LOG, OUTBOX)
KIND_LABELS = {
    ACTIVITIES: "Activities",
    EMAIL_HITS: "Email opens and clicks",
    ANONYMOUS_CONTACTS: "Anonymous contacts without activity",
    AUDIT_LOG: "Audit log",
    OUTBOX: "Delivered webhook events",
}
# A day at least (a shorter period would race the rollups and the webhook dispatcher for
# nothing), a hundred years at most (longer is "forever": remove the policy instead).
MIN_DAYS = 1
MAX_DAYS = 36_500
ALL_TYPES = ""
# The contact fields that must all be empty (null or '') for a contact to be anonymous.
ANONYMOUS_FIELDS = (
    "email",
    "first_name",
    "middle_name",
    "last_name",
    "birthday",
    "mobile_phone",
    "business_phone",
    "company_name",
    "job_title",
    "address1",
    "city",
    "zip",
    "country",
    "state",
    "notes",
)


def check_kind(kind: str) -> str:
    """The kind, checked to be one of `KINDS`."""
    if kind not in KINDS:
        raise InvalidInput(
            f"Unknown kind of data {kind!r}; one of {', '.join(KINDS)}.",
            code="invalid_kind",
            field="kind",
        )
    return kind


def check_activity_type(kind: str, activity_type: str) -> str:
    """The activity type of a policy: a code name for `activities` ('' for every type without
    a policy of its own), and nothing for any other kind."""
    activity_type = activity_type.strip()
    if kind != ACTIVITIES:
        if activity_type:
            raise InvalidInput(
                f"Only activities have a period per type; {kind} has one period.",
                code="invalid_activity_type",
                field="activity_type",
            )
        return ALL_TYPES
    if activity_type:
        check_code_name(activity_type, "activity type")
    return activity_type


def check_days(days: int | str) -> int:
    """The period: a whole number of days from `MIN_DAYS` to `MAX_DAYS` (text as typed in a
    form is accepted, spaces around it too)."""
    if isinstance(days, str):
        text = days.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 9:
            raise InvalidInput(
                f"The period is a whole number of days, from {MIN_DAYS} to {MAX_DAYS:,}.",
                code="invalid_days",
                field="days",
            )
        days = int(text)
    if isinstance(days, bool) or not MIN_DAYS <= days <= MAX_DAYS:
        raise InvalidInput(
            f"The period is a whole number of days, from {MIN_DAYS} to {MAX_DAYS:,}; "
            "to keep the data forever, remove the policy.",
            code="invalid_days",
            field="days",
        )
    return days


def subject(kind: str, activity_type: str) -> str:
    """How the audit log and messages name a policy: `activities:pagevisit`, `email_hits`."""
    return f"{kind}:{activity_type}" if activity_type else kind


def list_policies(session: Session) -> list[RetentionPolicy]:
    """Every policy, by kind (in `KINDS` order) and activity type ('' first)."""
    policies = session.scalars(select(RetentionPolicy)).all()
    return sorted(policies, key=lambda p: (KINDS.index(p.kind), p.activity_type))


def get_policy(session: Session, kind: str, activity_type: str = ALL_TYPES) -> RetentionPolicy:
    """The policy of a kind (and activity type); NotFound when there is none."""
    kind = check_kind(kind)
    activity_type = check_activity_type(kind, activity_type)
    policy = session.get(RetentionPolicy, (kind, activity_type))
    if policy is None:
        raise NotFound(
            f"No retention policy for {subject(kind, activity_type)}: it is kept forever.",
            code="policy_not_found",
        )
    return policy


def set_policy(
    session: Session,
    kind: str,
    days: int | str,
    *,
    activity_type: str = ALL_TYPES,
    actor: str,
) -> RetentionPolicy:
    """Keep `kind` (of `activity_type`, for activities) for `days` days; replaces the period
    set before. Recorded as `retention.policy_set` (details: `days`, `previous` when replaced).
    Setting the same period again changes nothing and records nothing."""
    kind = check_kind(kind)
    activity_type = check_activity_type(kind, activity_type)
    days = check_days(days)
    policy = session.get(RetentionPolicy, (kind, activity_type))
    details: dict[str, int] = {"days": days}
    if policy is None:
        policy = RetentionPolicy(kind=kind, activity_type=activity_type, days=days)
        session.add(policy)
    elif policy.days == days:
        return policy
    else:
        details["previous"] = policy.days
        policy.days = days
    policy.updated_at = utcnow()
    policy.updated_by = actor
    session.flush()
    audit.record(session, actor, "retention.policy_set", subject(kind, activity_type), details)
    return policy


def remove_policy(
    session: Session, kind: str, *, activity_type: str = ALL_TYPES, actor: str
) -> RetentionPolicy:
    """Remove a policy: the kind (type) is kept forever from now on. NotFound when there is
    none. Recorded as `retention.policy_removed` (details: the `days` it had)."""
    policy = get_policy(session, kind, activity_type)
    session.delete(policy)
    session.flush()
    audit.record(
        session,
        actor,
        "retention.policy_removed",
        subject(policy.kind, policy.activity_type),
        {"days": policy.days},
    )
    return policy
