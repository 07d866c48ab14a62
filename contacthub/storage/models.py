"""The schema: every table of the hub, in one place.

Integer primary keys for joins; GUIDs (`guid` columns) are what the outside world sees.
Timestamps are timezone-aware UTC. Constraint names follow one convention so that migrations
name them the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from contacthub.storage.types import UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# The contact search's objects that exist on one database only, made by migration 0011 and
# left out of `alembic check` (migrations/env.py), which cannot compare them: on PostgreSQL the
# email pattern index and the GIN trigram index of names (absent where pg_trgm could not be
# created), on SQLite the NOCASE email index and the FTS5 trigram table of names (its shadow
# tables are named after it; absent where FTS5 has no trigram tokenizer).
CONTACT_NAME_TRIGRAMS = "contacts_name_trigrams"
SEARCH_OBJECTS = frozenset(
    {
        "ix_contacts_email_pattern",
        "ix_contacts_name_trigram",
        "ix_contacts_email_nocase",
        CONTACT_NAME_TRIGRAMS,
    }
)

# The models' indexes on expressions, which SQLite's reflection cannot read.
EXPRESSION_INDEXES = frozenset({"ix_contacts_last_name_sort", "ix_contacts_email_sort"})


def is_search_object(name: str | None) -> bool:
    """`name` is one of `SEARCH_OBJECTS`, or a shadow table of the FTS5 table."""
    return name is not None and (
        name in SEARCH_OBJECTS or name.startswith(CONTACT_NAME_TRIGRAMS + "_")
    )


# SQLite only auto-increments an INTEGER PRIMARY KEY; BIGINT there would not.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Channel(Base):
    """A connected application; clients name it by its tracking identifier (`guid`)."""

    __tablename__ = "channels"

    id: Mapped[int] = mapped_column(primary_key=True)
    guid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # The opt-in consent gate: activities of contacts without this consent are refused.
    required_consent_id: Mapped[int | None] = mapped_column(
        ForeignKey("consents.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiKey(Base):
    """A secret of one channel: only its SHA-256 is stored; `prefix` tells keys apart."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100), default="")
    access: Mapped[str] = mapped_column(String(20))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Contact(Base):
    """A person, anonymous until data input fills in its fields."""

    __tablename__ = "contacts"
    # The sorted contact lists read a page of these, in either direction (contacts/search.py);
    # the search's dialect-only indexes and tables are in `SEARCH_OBJECTS`.
    __table_args__ = (
        Index("ix_contacts_last_name_sort", func.lower(text("last_name")), "id"),
        Index("ix_contacts_email_sort", func.lower(text("email")), "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    guid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    first_name: Mapped[str | None] = mapped_column(String(100))
    middle_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    birthday: Mapped[date | None] = mapped_column(Date)
    mobile_phone: Mapped[str | None] = mapped_column(String(26))
    business_phone: Mapped[str | None] = mapped_column(String(26))
    company_name: Mapped[str | None] = mapped_column(String(100))
    job_title: Mapped[str | None] = mapped_column(String(100))
    address1: Mapped[str | None] = mapped_column(String(100))
    city: Mapped[str | None] = mapped_column(String(100))
    zip: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str | None] = mapped_column(String(3))
    state: Mapped[str | None] = mapped_column(String(2))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Consent(Base):
    """A named consent; its texts live in revisions, one text per language in each."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_name: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    default_language: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConsentRevision(Base):
    """One version of a consent's texts; the highest number is the current one."""

    __tablename__ = "consent_revisions"
    __table_args__ = (UniqueConstraint("consent_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    consent_id: Mapped[int] = mapped_column(ForeignKey("consents.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConsentText(Base):
    """The short and full text (HTML) of one revision in one language."""

    __tablename__ = "consent_texts"
    __table_args__ = (UniqueConstraint("revision_id", "language"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    revision_id: Mapped[int] = mapped_column(ForeignKey("consent_revisions.id", ondelete="CASCADE"))
    language: Mapped[str] = mapped_column(String(20))
    short_text: Mapped[str] = mapped_column(Text)
    full_text: Mapped[str] = mapped_column(Text)


class ConsentAgreement(Base):
    """One agree or revoke event; the latest per contact and consent is the current state."""

    __tablename__ = "consent_agreements"
    __table_args__ = (Index(None, "contact_id", "consent_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    consent_id: Mapped[int] = mapped_column(ForeignKey("consents.id", ondelete="CASCADE"))
    revision_id: Mapped[int] = mapped_column(ForeignKey("consent_revisions.id"))
    agreed: Mapped[bool] = mapped_column(Boolean)
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id", ondelete="SET NULL"))
    # Evidence of how the agreement was given, where known (double opt-in confirmations).
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    evidence: Mapped[str | None] = mapped_column(Text)  # JSON: what was confirmed, and how
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ActivityType(Base):
    """A custom activity type; activities of it are accepted only while it is enabled."""

    __tablename__ = "activity_types"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_name: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Activity(Base):
    """Something a contact did on a channel (or in an email: then `channel_id` is empty).

    The activity log is the one table written at full ingest speed, so it carries no foreign
    keys: checking two parents per row would cost about as much as the insert itself (and on
    PostgreSQL take a row lock on the contact per activity). The ingest batch checks the contact
    and channel inside the transaction that inserts the rows instead, and erasing a contact
    deletes its activities explicitly.
    """

    __tablename__ = "activities"
    # Every index slows down the ingest hot path, so there is one: a contact's timeline. Ids are
    # handed out in commit order, so they follow time: a time range is an id range (the primary
    # key), found by searching the ids, not by an index on created_at, which cost a third of
    # the insert.
    __table_args__ = (Index(None, "contact_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(Integer)
    channel_id: Mapped[int | None] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(500))
    value: Mapped[str | None] = mapped_column(String(250))
    url: Mapped[str | None] = mapped_column(Text)
    referrer: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Newsletter(Base):
    """A mailing list with its sender, and the public base URL its tracking links point at."""

    __tablename__ = "newsletters"

    id: Mapped[int] = mapped_column(primary_key=True)
    guid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    sender_name: Mapped[str] = mapped_column(String(200))
    sender_email: Mapped[str] = mapped_column(String(254))
    base_url: Mapped[str] = mapped_column(String(500))
    # Double opt-in: a subscription made through the public form or API stays `unconfirmed`
    # until the link of the confirmation email is followed (subscriptions/optin.py).
    double_opt_in: Mapped[bool] = mapped_column(Boolean, default=False)
    # The newsletter's consent: a confirmation is stored as an agreement to it (legal evidence).
    consent_id: Mapped[int | None] = mapped_column(ForeignKey("consents.id", ondelete="SET NULL"))
    # Consent-gated tracking: when set, opens and clicks are tracked per person only for
    # subscribers whose contact agreed to this consent; the others get no pixel, aggregate links.
    tracking_consent_id: Mapped[int | None] = mapped_column(
        ForeignKey("consents.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Subscriber(Base):
    """An address subscribed to a newsletter, linked to a contact. `email` is stored lower-cased."""

    __tablename__ = "subscribers"
    # contact_id: email conditions of groups and sending to a group look subscribers up by contact.
    __table_args__ = (UniqueConstraint("newsletter_id", "email"), Index(None, "contact_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    newsletter_id: Mapped[int] = mapped_column(ForeignKey("newsletters.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(254))
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    # subscribed, unsubscribed, or unconfirmed (double opt-in: never mailed but the confirmation)
    status: Mapped[str] = mapped_column(String(20), default="subscribed")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Double opt-in: when the confirmation email went out and when its link was followed; the
    # agreement it stored (consent, revision shown, time, IP, user agent).
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmation_agreement_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("consent_agreements.id", ondelete="SET NULL")
    )
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The issue whose unsubscribe link was used, for per-issue statistics.
    unsubscribed_issue_id: Mapped[int | None] = mapped_column(
        ForeignKey("email_issues.id", ondelete="SET NULL")
    )


class EmailIssue(Base):
    """One email of a newsletter: subject and bodies with personalisation placeholders."""

    __tablename__ = "email_issues"

    id: Mapped[int] = mapped_column(primary_key=True)
    guid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    newsletter_id: Mapped[int] = mapped_column(ForeignKey("newsletters.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(500))
    html_body: Mapped[str] = mapped_column(Text)
    text_body: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="draft")
    # Sent only to the subscribers who are members of this group, when set. A group is not
    # deleted while an unsent issue names it (groups/service.py); a sent issue loses it.
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact_groups.id", ondelete="SET NULL")
    )
    # The group's name, set with group_id: when group_id is NULL but this is set, the group was
    # deleted, and the issue must never be sent again (it would go to every subscriber).
    group_name: Mapped[str | None] = mapped_column(String(100))
    # Scheduled sending (email/schedule.py): when, and who scheduled it (the audit log's actor).
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scheduled_by: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IssueLink(Base):
    """One tracked link of an issue; the click handler resolves its GUID to the target."""

    __tablename__ = "issue_links"
    __table_args__ = (UniqueConstraint("issue_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    guid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    issue_id: Mapped[int] = mapped_column(ForeignKey("email_issues.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    target_url: Mapped[str] = mapped_column(Text)
    # A link no human can see: whoever follows it is a machine (scanner).
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)


class Delivery(Base):
    """The sending of one issue to one subscriber: pending, sent or failed (and why)."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("issue_id", "subscriber_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("email_issues.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # A deferred delivery (temporary failure) is not tried again before this time (backoff).
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # False: the copy went out without per-person tracking (consent-gated tracking).
    tracked: Mapped[bool] = mapped_column(Boolean, default=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EmailOpen(Base):
    """One hit on an issue's open pixel (or a click, which proves an open), human or machine."""

    __tablename__ = "email_opens"
    # The second index serves a contact's email engagement (admin contact page).
    __table_args__ = (Index(None, "issue_id", "subscriber_id"), Index(None, "subscriber_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("email_issues.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE")
    )
    is_machine: Mapped[bool] = mapped_column(Boolean, default=False)
    machine_reason: Mapped[str | None] = mapped_column(String(100))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    ip: Mapped[str | None] = mapped_column(String(45))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EmailClick(Base):
    """One hit on a tracked link, human or machine."""

    __tablename__ = "email_clicks"
    __table_args__ = (
        Index(None, "link_id", "subscriber_id"),
        Index(None, "issue_id"),
        Index(None, "subscriber_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("issue_links.id", ondelete="CASCADE"))
    issue_id: Mapped[int] = mapped_column(ForeignKey("email_issues.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE")
    )
    is_machine: Mapped[bool] = mapped_column(Boolean, default=False)
    machine_reason: Mapped[str | None] = mapped_column(String(100))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    ip: Mapped[str | None] = mapped_column(String(45))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AdminUser(Base):
    """Someone who signs in to the admin UI; only the argon2 hash of the password is stored."""

    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Repeated wrong passwords lock the account for a while (see users/service.py).
    failed_sign_ins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SignInThrottle(Base):
    """Failed sign-ins from one client address in its current window (the per-address limit).

    Kept in the database, not in memory, so that the limit holds across worker processes and
    machines (see users/service.py).
    """

    __tablename__ = "sign_in_throttles"
    __table_args__ = (Index(None, "window_start"),)

    client: Mapped[str] = mapped_column(String(100), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    failures: Mapped[int] = mapped_column(Integer)


class AdminSession(Base):
    """A signed-in browser: the cookie holds a random token, the table only its SHA-256."""

    __tablename__ = "admin_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("admin_users.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AdminToken(Base):
    """A token for the management API (`/api/`), acting as its user; stored as SHA-256."""

    __tablename__ = "admin_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("admin_users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CorsOrigin(Base):
    """A browser origin allowed to call the tracking API, managed from the admin (and API)."""

    __tablename__ = "cors_origins"

    id: Mapped[int] = mapped_column(primary_key=True)
    origin: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEvent(Base):
    """Who did what in the admin, the management API or the CLI (exports, erasures, keys …)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(200), default="")
    details: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ActivityRollup(Base):
    """Activities per UTC day, channel (0: none, i.e. email) and type, for the dashboard."""

    __tablename__ = "activity_rollups"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    channel_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(100), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class TopRollup(Base):
    """Page visits per URL and clicks per element, per UTC day, for the dashboard's top lists.

    `key` is the URL (kind `page`) or the clicked element's value (kind `click`), cut to
    `analytics.rollups.MAX_KEY_LENGTH` characters so that it fits an index entry everywhere.
    """

    __tablename__ = "top_rollups"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    key: Mapped[str] = mapped_column(String(500), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class ContactRollup(Base):
    """Contacts per UTC day of their `created_at` that still exist, for the dashboard's new
    contacts (erasure and retention subtract the contacts they delete)."""

    __tablename__ = "contact_rollups"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class RollupState(Base):
    """How far the rollups have counted: every activity, and every contact, with an id up to
    these (one row). `updated_at` is also the row's version: whatever changes what was counted
    moves it (`analytics.rollups`)."""

    __tablename__ = "rollup_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_activity_id: Mapped[int] = mapped_column(BigInteger, default=0)
    last_contact_id: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ContactGroup(Base):
    """A set of contacts: `static` (members added by hand) or `dynamic` (a condition tree).

    `conditions` is the JSON condition tree of a dynamic group (see docs/groups.md); its members
    are kept in `group_members` by the live membership job (groups/membership.py).
    """

    __tablename__ = "contact_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    guid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(10))
    conditions: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    rebuilt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class GroupMember(Base):
    """A contact in a group now, since when."""

    __tablename__ = "group_members"
    __table_args__ = (Index(None, "contact_id"),)

    group_id: Mapped[int] = mapped_column(
        ForeignKey("contact_groups.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GroupMembershipEvent(Base):
    """A contact entering (`entered`) or leaving a group, when and why (the history)."""

    __tablename__ = "group_membership_events"
    __table_args__ = (Index(None, "contact_id", "id"), Index(None, "group_id", "id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("contact_groups.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    entered: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GroupPendingContact(Base):
    """A contact whose group memberships must be evaluated again (the live job's queue).

    Written in the transaction of the change (field, consent, subscription, email event), so
    that no change is missed; activities are followed by id instead, at no cost to ingest.
    """

    __tablename__ = "group_pending_contacts"

    contact_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GroupMembershipState(Base):
    """How far the live membership job has looked (one row): activities up to an id, time."""

    __tablename__ = "group_membership_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_activity_id: Mapped[int] = mapped_column(BigInteger, default=0)
    last_email_open_id: Mapped[int] = mapped_column(BigInteger, default=0)
    last_email_click_id: Mapped[int] = mapped_column(BigInteger, default=0)
    evaluated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Suppression(Base):
    """An address nothing is sent to, across all newsletters, with why and the evidence.

    `reason`: hard_bounce, complaint, soft_bounces (repeated soft bounces) or manual. `email` is
    stored lower-cased. Lifting a suppression deletes the row (the audit log keeps it).
    """

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    reason: Mapped[str] = mapped_column(String(20))
    evidence: Mapped[str] = mapped_column(Text, default="")
    # Where it came from: imap, smtp, ses, sendgrid, postmark, mailgun, admin, api, cli.
    source: Mapped[str] = mapped_column(String(20))
    delivery_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("deliveries.id", ondelete="SET NULL")
    )
    created_by: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeliveryEvent(Base):
    """What happened to a delivery after it left: a bounce (hard, soft), a complaint, delivered.

    Written by the feedback processor (bounces/processor.py) from DSNs and provider webhooks.
    `(source, event_id)` is unique: a replayed DSN or webhook is recognised and not counted again.
    """

    __tablename__ = "delivery_events"
    __table_args__ = (
        UniqueConstraint("source", "event_id"),
        Index(None, "delivery_id"),
        Index(None, "issue_id", "kind"),
        Index(None, "email", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("deliveries.id", ondelete="CASCADE")
    )
    issue_id: Mapped[int] = mapped_column(ForeignKey("email_issues.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(254))
    kind: Mapped[str] = mapped_column(String(20))  # hard_bounce, soft_bounce, complaint, delivered
    status_code: Mapped[str | None] = mapped_column(String(20))  # e.g. 5.1.1
    diagnostic: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(20))  # imap, smtp, ses, sendgrid, postmark, mailgun
    event_id: Mapped[str] = mapped_column(String(200))
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FeedbackRejection(Base):
    """A DSN or provider webhook call that was refused or could not be used, and why.

    Counted and listed in the admin, so that nothing is dropped silently (bad signatures,
    malformed reports, unknown deliveries).
    """

    __tablename__ = "feedback_rejections"
    __table_args__ = (Index(None, "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(50))
    detail: Mapped[str] = mapped_column(Text, default="")  # cut to 2,000 characters
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SendRateBucket(Base):
    """A token bucket of the send-rate limit of one SMTP server or provider (`name`).

    Kept in the database so that the limit holds across worker processes and machines
    (email/ratelimit.py). `updated_at` is Unix time in seconds.
    """

    __tablename__ = "send_rate_buckets"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class WebhookToken(Base):
    """A signature token a provider's webhook call was taken with (Mailgun's), so that each is
    taken once, by whichever worker process or machine gets it first.

    Mailgun signs only `timestamp + token`, not the event: a captured signature could carry
    another event. Rows are kept while a call signed with the token could still pass the
    timestamp check, then deleted (bounces/webhooks/tokens.py).
    """

    __tablename__ = "webhook_tokens"
    __table_args__ = (Index(None, "seen_at"),)

    provider: Mapped[str] = mapped_column(String(20), primary_key=True)
    token: Mapped[str] = mapped_column(String(200), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IngestMessageId(Base):
    """A client-chosen `messageId` of an activity stored on a channel, kept for the dedupe
    window so that a retried activity is answered as the first time and stored once.

    `result` is the item's answer when it was more than a plain 202 (a data input that went to
    another contact), as JSON; None for a plain 202.
    """

    __tablename__ = "ingest_message_ids"
    __table_args__ = (Index(None, "created_at"),)

    channel_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    result: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdempotencyKey(Base):
    """An `Idempotency-Key` a channel's client sent with a request, and the answer it got.

    `scope` names the endpoint (`activities`, `contacts`, `consent`); `request_hash` is a
    SHA-256 of what the request asked for, so that the same key with another request is refused
    rather than answered with the first one's result. `status` and `response` are None while the
    request that claimed the key has not finished (they are set in the same transaction).
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index(None, "created_at"),)

    channel_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(20), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookEndpoint(Base):
    """A URL the hub posts events to, signed with its secret (docs/webhooks.md).

    The secret signs each call, so it is kept as given, not hashed: the hub must compute the
    same HMAC as the receiver. `events` is a JSON list of event types (`["*"]` for every one);
    `activity_types` and `channel_ids` (JSON lists, None for any) narrow `activity.stored`.
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    guid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(100))
    events: Mapped[str] = mapped_column(Text, default='["*"]')
    activity_types: Mapped[str | None] = mapped_column(Text)
    channel_ids: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(254), default="")
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


class OutboxEvent(Base):
    """An event written in the same transaction as the change it describes (the outbox).

    `payload` is the JSON body receivers get. `contact_id` orders a contact's events (no
    foreign key: the `contact.erased` event outlives its contact). `dispatched_at` is set once
    the dispatcher has made a delivery of it for every endpoint that wants it.
    """

    __tablename__ = "outbox_events"
    __table_args__ = (
        Index(None, "dispatched_at", "id"),
        Index(None, "created_at"),
        # A contact's events in order: erasure deletes them, the dispatcher keeps their order.
        Index(None, "contact_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    type: Mapped[str] = mapped_column(String(50))
    contact_id: Mapped[int | None] = mapped_column(BigInteger)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookDelivery(Base):
    """One event owed to one endpoint: `pending` (due at `next_attempt_at`), `delivered` or
    `dead` (given up after the configured number of tries; retry or replay sends it again)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        # Named: the convention would name both after their first column.
        Index("ix_webhook_deliveries_due", "endpoint_id", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_contact_order", "endpoint_id", "contact_id", "event_id"),
        Index(None, "event_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("outbox_events.id", ondelete="CASCADE")
    )
    contact_id: Mapped[int | None] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RetentionPolicy(Base):
    """How long one kind of data is kept (`kind`; for activities also `activity_type`, '' for
    every type without a policy of its own). No row: kept forever."""

    __tablename__ = "retention_policies"

    kind: Mapped[str] = mapped_column(String(30), primary_key=True)
    activity_type: Mapped[str] = mapped_column(String(100), primary_key=True, default="")
    days: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(254), default="")


class RetentionRun(Base):
    """One run of the retention job: what it deleted (`deleted`, JSON counts per kind), how
    long it took, and the error that stopped it, if one did."""

    __tablename__ = "retention_runs"
    __table_args__ = (Index(None, "started_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted: Mapped[str] = mapped_column(Text, default="{}")
    partitions_dropped: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(254), default="")


class JobLease(Base):
    """Which hub process runs a job that must run in one process at a time (the webhook
    dispatcher, retention), until when. Taken and renewed in storage/leases.py."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
