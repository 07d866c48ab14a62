"""`contacthub demo`: fill a new, empty hub with realistic sample data, fast.

What a filled hub holds (the people and their behaviour are described in `generator`):
- an admin user (unless one exists), four channels with API keys in every state (active,
  disabled, revoked, expired), two allowed CORS origins;
- two consents with English and German texts: `TrackingConsent` (2 revisions) and
  `NewsletterConsent` (3 revisions, the last one made during the period, so that agreements
  point at different revisions); two custom activity types, one of them disabled;
- contacts (about 60 % identified: names, email, company, country ...), created over the
  period, and their consent agreements with a few revokes;
- a newsletter with up to 5,000 subscribers, two sent issues with deliveries, opens and clicks
  (human and machine) and a draft issue;
- the activity stream, email opens and clicks included, in time order;
- three contact groups made through the groups service once the data is in (`_create_groups`):
  two dynamic ones, "Engaged visitors" (visited the sale at least twice in the last 30 days)
  and "Newsletter consent, Germany", and a static "VIP" (the identified contacts who reached
  the checkout most often), with the live membership job's cursors moved past the data;
- the dashboard's rollups, counted.

Speed: rows are generated in Python and written in bulk (`repository.bulk_insert`, and the
ingest path's `insert_activities`: multi-row INSERTs on SQLite, COPY on PostgreSQL), in
transactions of tens of thousands of rows. Like `rollups.refresh`, `build` is a job that owns its
units of work: it commits chunk by chunk, so that memory stays flat and progress shows. If it
fails half-way, the hub holds part of the data: start again on a new database.

The demo only fills a hub with no data of its own (`hub_not_empty` otherwise): sample contacts
mixed with real ones could never be told apart again. Admin users may exist already.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from contacthub.activities import service as activity_types
from contacthub.activities.repository import ActivityRow, insert_activities
from contacthub.activities.rules import PAGE_VISIT
from contacthub.analytics import rollups
from contacthub.audit import service as audit
from contacthub.channels import cors
from contacthub.channels import service as channels
from contacthub.consents import service as consents
from contacthub.demo import words
from contacthub.demo.generator import (
    CATALOG_NAME,
    CATALOG_TYPE,
    CHANNEL_NAMES,
    MOBILE_APP,
    NEWSLETTER_CONSENT,
    NO_CHANNEL,
    SHOP_SPA,
    SUPPORT,
    TRACKING_CONSENT,
    VIDEO_NAME,
    VIDEO_TYPE,
    WEBSITE,
    ActivityTuple,
    DemoGenerator,
    DemoSize,
    EmailPlan,
    IssueLinks,
)
from contacthub.demo.repository import bulk_insert, ids_in_order
from contacthub.email import service as email
from contacthub.email.tracking import CLICK_COLUMNS, OPEN_COLUMNS
from contacthub.errors import Conflict, InvalidInput
from contacthub.groups import repository as group_repository
from contacthub.groups import service as groups
from contacthub.storage import partitions
from contacthub.storage.database import Database
from contacthub.storage.models import (
    Activity,
    ActivityType,
    AdminUser,
    Channel,
    Consent,
    ConsentAgreement,
    ConsentRevision,
    Contact,
    Delivery,
    EmailClick,
    EmailOpen,
    GroupMember,
    IssueLink,
    Newsletter,
    Subscriber,
)
from contacthub.storage.types import utcnow
from contacthub.users import service as users

DEFAULT_ADMIN_EMAIL = "demo@example.com"
MAX_CONTACTS = 10_000_000
MAX_ACTIVITIES = 100_000_000
MAX_DAYS = 3_650
# Rows per transaction: large enough that commits cost nothing, small enough to show progress.
CONTACT_CHUNK = 20_000
ACTIVITY_CHUNK = 50_000
# SQLite's page cache for the demo's connection: the activity index's pages stay in memory while
# rows for 100k contacts land all over it (the default 2 MB would thrash).
SQLITE_CACHE_KIB = 256 * 1024

CONTACT_COLUMNS = (
    "guid",
    "email",
    "first_name",
    "last_name",
    "birthday",
    "mobile_phone",
    "company_name",
    "job_title",
    "address1",
    "city",
    "zip",
    "country",
    "state",
    "notes",
    "created_at",
    "updated_at",
)


class Progress(Protocol):
    """Where `build` reports how far it is: a step with a total, then advances."""

    def start(self, step: str, total: int) -> None: ...

    def advance(self, step: str, amount: int) -> None: ...


class _Silent:
    def start(self, step: str, total: int) -> None:
        pass

    def advance(self, step: str, amount: int) -> None:
        pass


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What `contacthub demo` was asked for."""

    contacts: int = 100_000
    activities: int = 1_000_000
    days: int = 56
    seed: int = 1
    until: datetime | None = None  # the end of the period; None: now
    admin_email: str = DEFAULT_ADMIN_EMAIL
    admin_password: str | None = None  # None: a generated one, reported once


@dataclass(frozen=True, slots=True)
class DemoKey:
    """An API key made for the demo, with its plaintext (shown once)."""

    channel: str
    channel_guid: uuid.UUID
    name: str
    access: str
    status: str
    plaintext: str


@dataclass(slots=True)
class DemoReport:
    """What `build` made, and how long each step took (wall-clock seconds)."""

    admin_email: str | None = None
    # Set only when the password was generated here: the one moment it exists in plain text.
    admin_password: str | None = None
    existing_users: int = 0
    keys: list[DemoKey] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    # CPU time of this process (the database server's, on PostgreSQL, is not in it).
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    until: datetime | None = None


@dataclass(slots=True)
class _Setup:
    """Ids of what the first unit of work created, for the bulk steps."""

    channel_ids: dict[int, int | None]
    revision_ids: dict[tuple[str, int], int]
    consent_ids: dict[str, int]
    newsletter_id: int
    issue_ids: list[int]
    issues: list[IssueLinks]
    link_ids: dict[tuple[int, int], int]


def check_size(options: DemoOptions) -> None:
    """Refuse sizes the demo cannot make sense of."""
    if not 1 <= options.contacts <= MAX_CONTACTS:
        raise InvalidInput(
            f"--contacts is 1 to {MAX_CONTACTS:,}.", code="invalid_demo_size", field="contacts"
        )
    if not 0 <= options.activities <= MAX_ACTIVITIES:
        raise InvalidInput(
            f"--activities is 0 to {MAX_ACTIVITIES:,}.",
            code="invalid_demo_size",
            field="activities",
        )
    if not 1 <= options.days <= MAX_DAYS:
        raise InvalidInput(f"--days is 1 to {MAX_DAYS:,}.", code="invalid_demo_size", field="days")


def existing_data(session: Session) -> dict[str, int]:
    """What the hub holds already that demo data would mix with (zero counts left out)."""
    counts = {
        "contacts": select(func.count()).select_from(Contact),
        "channels": select(func.count()).select_from(Channel),
        "consents": select(func.count()).select_from(Consent),
        "activity types": select(func.count()).select_from(ActivityType),
        "newsletters": select(func.count()).select_from(Newsletter),
    }
    found = {name: session.scalar(query) or 0 for name, query in counts.items()}
    # The activity log has no foreign keys: activities may outlive their contacts.
    found["activities"] = (
        1 if session.execute(text("SELECT 1 FROM activities LIMIT 1")).first() else 0
    )
    return {name: n for name, n in found.items() if n}


def _refuse_unless_empty(session: Session) -> None:
    found = existing_data(session)
    if found:
        raise Conflict(
            f"The hub already has data ({', '.join(found)}): demo data goes only into a new, "
            "empty hub. Point CONTACTHUB_DATABASE_URL at a new database, e.g. sqlite:///demo.db.",
            code="hub_not_empty",
        )


def build(database: Database, options: DemoOptions, progress: Progress | None = None) -> DemoReport:
    """Fill an empty hub with demo data; see the module docstring."""
    check_size(options)
    report = _Silent() if progress is None else progress
    until = (options.until or utcnow()).astimezone(UTC)
    generator = DemoGenerator(
        DemoSize(options.contacts, options.activities, options.days, options.seed, until)
    )
    result = DemoReport(until=until)
    clock = _Clock(result)

    with _writing(database) as session:
        _refuse_unless_empty(session)
        # On PostgreSQL, a partition for every month of the history, so that its rows go
        # straight there instead of waiting in the default partition for the hub to move them.
        partitions.ensure_ahead(session, 0, now=until, since=until - timedelta(days=options.days))
        setup = _set_up(session, generator, options, result)
    clock.lap("set-up")

    contact_ids = _insert_contacts(database, generator, report)
    result.counts["contacts"] = len(contact_ids)
    clock.lap("contacts")

    subscribers = generator.plan_subscribers()
    mail = generator.plan_email(setup.issues)
    report.start("Email", len(subscribers) + len(mail.deliveries))
    with _writing(database) as session:
        _insert_email(session, generator, setup, contact_ids, mail)
    report.advance("Email", len(subscribers) + len(mail.deliveries))
    result.counts |= {
        "subscribers": len(subscribers),
        "deliveries": len(mail.deliveries),
        "email opens": len(mail.opens),
        "email clicks": len(mail.clicks),
    }
    clock.lap("email")

    result.counts["consent agreements"] = _insert_agreements(
        database, generator, setup, contact_ids, report
    )
    clock.lap("consent agreements")

    report.start("Activities", max(options.activities, len(mail.activities)))
    result.counts["activities"] = _insert_activities(
        database, generator, setup, contact_ids, mail.activities, report
    )
    clock.lap("activities")

    report.start("Groups", len(DEMO_GROUPS) + 1)
    with _writing(database) as session:
        result.counts["group members"] = _create_groups(session)
    report.advance("Groups", len(DEMO_GROUPS) + 1)
    clock.lap("groups")

    report.start("Dashboard rollups", 1)
    rollups.refresh(database)
    if not database.is_sqlite:
        # Fresh planner statistics, as autovacuum would gather them soon after a real load, so
        # that the admin's first queries are planned for the data they run on. (The hub keeps
        # no statistics on SQLite, whose planner relies on its indexes alone.)
        with database.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    report.advance("Dashboard rollups", 1)
    clock.lap("rollups")
    return result


class _Clock:
    """Wall and CPU time of each step: on a busy machine the CPU time is the steadier figure."""

    def __init__(self, report: DemoReport) -> None:
        self.report = report
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def lap(self, step: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.report.seconds[step] = wall - self.wall
        self.report.cpu_seconds[step] = cpu - self.cpu
        self.wall, self.cpu = wall, cpu


@contextmanager
def _writing(database: Database) -> Iterator[Session]:
    """`database.write()`, with SQLite's page cache enlarged for bulk inserts."""
    with database.write() as session:
        if database.is_sqlite:
            session.connection().exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        yield session


# -- the first unit of work: everything made through the hub's own services --------------------


def _set_up(
    session: Session, generator: DemoGenerator, options: DemoOptions, result: DemoReport
) -> _Setup:
    start = generator.time(generator.start)
    rng = generator.rng

    def before(days: float) -> datetime:
        return start - timedelta(days=days)

    result.existing_users = session.scalar(select(func.count()).select_from(AdminUser)) or 0
    if not result.existing_users:
        password = options.admin_password or secrets.token_urlsafe(12)
        user = users.create_user(session, options.admin_email, password, "Demo admin")
        user.created_at = before(60)
        result.admin_email = user.email
        result.admin_password = None if options.admin_password else password

    # Consents first: a channel may name one.
    consents.create_consent(
        session,
        TRACKING_CONSENT,
        language="en",
        short_text=words.TRACKING_TEXTS[0],
        full_text=words.TRACKING_TEXTS[1],
        display_name="Tracking",
    )
    consents.set_text(
        session,
        TRACKING_CONSENT,
        language="de",
        short_text=words.TRACKING_TEXTS[2],
        full_text=words.TRACKING_TEXTS[3],
    )
    consents.create_consent(
        session,
        NEWSLETTER_CONSENT,
        language="en",
        short_text=words.NEWSLETTER_TEXTS[0],
        full_text=words.NEWSLETTER_TEXTS[1],
        display_name="Newsletter",
    )
    consents.set_text(
        session,
        NEWSLETTER_CONSENT,
        language="de",
        short_text=words.NEWSLETTER_TEXTS[2],
        full_text=words.NEWSLETTER_TEXTS[3],
    )
    consents.set_text(
        session,
        NEWSLETTER_CONSENT,
        language="en",
        short_text=words.NEWSLETTER_TEXTS_V3[0],
        full_text=words.NEWSLETTER_TEXTS_V3[1],
    )
    # The texts were written over time: revision 1 at launch, German added later, and the
    # newsletter consent reworded during the period.
    revision_times = {
        1: before(60),
        2: before(30),
        3: generator.time(generator.newsletter_revision),
    }
    consent_ids: dict[str, int] = {}
    revision_ids: dict[tuple[str, int], int] = {}
    for code in (TRACKING_CONSENT, NEWSLETTER_CONSENT):
        consent = consents.get_consent(session, code)
        consent.created_at = before(60)
        consent_ids[code] = consent.id
        for revision in session.scalars(
            select(ConsentRevision).where(ConsentRevision.consent_id == consent.id)
        ):
            revision.created_at = revision_times[revision.number]
            revision_ids[(code, revision.number)] = revision.id

    channel_ids: dict[int, int | None] = {NO_CHANNEL: None}
    guids: dict[int, uuid.UUID] = {}
    for index, name in enumerate(CHANNEL_NAMES):
        channel = channels.create_channel(session, name)
        channel.guid = uuid.UUID(int=rng.getrandbits(128), version=4)
        channel.created_at = before(60 - 10 * index)
        channel_ids[index] = channel.id
        guids[index] = channel.guid

    def key(
        channel: int, name: str, access: str, *, status: str = "active", age: float = 50
    ) -> None:
        new = channels.create_api_key(session, CHANNEL_NAMES[channel], access, name=name)
        new.record.created_at = before(age)
        if status == "disabled":
            new.record.enabled = False
        elif status == "revoked":
            new.record.revoked_at = before(age - 20)
        elif status == "expired":
            new.record.expires_at = start + timedelta(days=3)
        result.keys.append(
            DemoKey(CHANNEL_NAMES[channel], guids[channel], name, access, status, new.plaintext)
        )

    key(WEBSITE, "Production", "tracking", age=40)
    key(WEBSITE, "Email facade", "email", age=40)
    key(WEBSITE, "Launch key (rotated)", "tracking", status="revoked", age=60)
    key(MOBILE_APP, "iOS and Android", "tracking", age=50)
    key(SHOP_SPA, "Backend proxy", "tracking", age=40)
    key(SHOP_SPA, "Staging", "tracking", status="disabled", age=35)
    key(SUPPORT, "Helpdesk integration", "tracking", age=30)
    key(SUPPORT, "Trial integration", "tracking", status="expired", age=30)
    session.flush()
    for origin in (words.SITE, words.SHOP):
        cors.add_origin(session, origin)

    activity_types.create_type(session, VIDEO_TYPE, display_name=VIDEO_NAME)
    activity_types.create_type(session, CATALOG_TYPE, display_name=CATALOG_NAME, enabled=False)
    for activity_type in activity_types.list_types(session):
        activity_type.created_at = before(45)

    newsletter = email.create_newsletter(
        session, words.NEWSLETTER, words.BRAND, words.NEWSLETTER_SENDER, words.SITE
    )
    newsletter.created_at = before(55)
    issue_ids: list[int] = []
    issues: list[IssueLinks] = []
    link_ids: dict[tuple[int, int], int] = {}
    sent = len(generator.sends)
    for number, (subject, html) in enumerate(words.ISSUES):
        issue = email.create_issue(session, words.NEWSLETTER, subject, html)
        if number < sent:
            send = generator.time(generator.sends[number])
            issue.created_at = send - timedelta(days=2)
            issue.status = "sent"
            issue.sent_at = send
            links = session.scalars(
                select(IssueLink).where(IssueLink.issue_id == issue.id).order_by(IssueLink.position)
            ).all()
            issue_ids.append(issue.id)
            issues.append(
                IssueLinks(issue.subject, [(k.position, k.target_url, k.hidden) for k in links])
            )
            link_ids |= {(number, k.position): k.id for k in links}
        else:
            issue.created_at = generator.time(generator.until) - timedelta(days=1)

    audit.record(
        session,
        audit.CLI_ACTOR,
        "demo.created",
        words.BRAND,
        {
            "contacts": options.contacts,
            "activities": options.activities,
            "days": options.days,
            "seed": options.seed,
            "until": generator.time(generator.until),
        },
    )
    session.flush()
    return _Setup(
        channel_ids, revision_ids, consent_ids, newsletter.id, issue_ids, issues, link_ids
    )


# -- contact groups -----------------------------------------------------------------------------

ENGAGED = {"activity": PAGE_VISIT, "url_contains": "/c/sale", "at_least": 2, "within_days": 30}
GERMAN_READERS = {
    "all": [
        {"consent": NEWSLETTER_CONSENT, "state": "agreed"},
        {"field": "country", "op": "equals", "value": "DEU"},
    ]
}
# (name, description, conditions): the dynamic groups; the static VIP group is filled by hand.
DEMO_GROUPS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (
        "Engaged visitors",
        "Visited the sale at least twice in the last 30 days.",
        ENGAGED,
    ),
    (
        "Newsletter consent, Germany",
        "Agreed to the newsletter consent and live in Germany.",
        GERMAN_READERS,
    ),
)
VIP = "VIP"
VIP_SIZE = 25


def _create_groups(session: Session) -> int:
    """The demo's groups, through the groups service (members computed in full as each is made);
    the number of memberships made."""
    for name, description, conditions in DEMO_GROUPS:
        groups.create_group(session, name, conditions=conditions, description=description)
    # The identified contacts who reached the checkout most often, the regulars a shop greets
    # by name: a list a person would keep by hand.
    regulars = session.scalars(
        select(Contact.guid)
        .join(Activity, Activity.contact_id == Contact.id)
        .where(
            Contact.email.is_not(None),
            Activity.type == PAGE_VISIT,
            Activity.url.like("%/checkout%"),
        )
        .group_by(Contact.id, Contact.guid)
        .order_by(func.count().desc(), Contact.id)
        .limit(VIP_SIZE)
    ).all()
    groups.create_group(
        session, VIP, kind="static", description="Our best customers, picked by hand."
    )
    groups.add_members(session, VIP, [str(guid) for guid in regulars])
    # Every group was just computed from all the data there is: the live job starts from here
    # rather than evaluating the whole activity history again on the hub's first start.
    state = group_repository.lock_state(session)
    state.last_activity_id = session.scalar(select(func.max(Activity.id))) or 0
    state.last_email_open_id = session.scalar(select(func.max(EmailOpen.id))) or 0
    state.last_email_click_id = session.scalar(select(func.max(EmailClick.id))) or 0
    state.evaluated_at = utcnow()
    return session.scalar(select(func.count()).select_from(GroupMember)) or 0


# -- bulk steps ---------------------------------------------------------------------------------


def _insert_contacts(database: Database, generator: DemoGenerator, report: Progress) -> list[int]:
    """Insert the planned contacts, a chunk per transaction; their ids, in creation order."""
    contacts = generator.plan_contacts()
    time_of = generator.time
    report.start("Contacts", len(contacts))
    for start in range(0, len(contacts), CONTACT_CHUNK):
        chunk = contacts[start : start + CONTACT_CHUNK]
        with _writing(database) as session:
            bulk_insert(
                session,
                Contact.__table__,  # type: ignore[arg-type]
                CONTACT_COLUMNS,
                [
                    (
                        c.guid,
                        c.email,
                        c.first_name,
                        c.last_name,
                        c.birthday,
                        c.mobile_phone,
                        c.company_name,
                        c.job_title,
                        c.address1,
                        c.city,
                        c.zip,
                        c.country,
                        c.state,
                        c.notes,
                        time_of(c.created),
                        time_of(c.created),
                    )
                    for c in chunk
                ],
            )
        report.advance("Contacts", len(chunk))
    with database.read() as session:
        return ids_in_order(session, Contact.__table__)  # type: ignore[arg-type]


def _insert_agreements(
    database: Database,
    generator: DemoGenerator,
    setup: _Setup,
    contact_ids: Sequence[int],
    report: Progress,
) -> int:
    agreements = generator.plan_agreements()
    report.start("Consent agreements", len(agreements))
    with _writing(database) as session:
        bulk_insert(
            session,
            ConsentAgreement.__table__,  # type: ignore[arg-type]
            ("contact_id", "consent_id", "revision_id", "agreed", "channel_id", "created_at"),
            [
                (
                    contact_ids[contact],
                    setup.consent_ids[consent],
                    setup.revision_ids[(consent, revision)],
                    agreed,
                    setup.channel_ids[channel],
                    generator.time(moment),
                )
                for moment, contact, consent, revision, agreed, channel in agreements
            ],
        )
    report.advance("Consent agreements", len(agreements))
    return len(agreements)


def _insert_email(
    session: Session,
    generator: DemoGenerator,
    setup: _Setup,
    contact_ids: Sequence[int],
    mail: EmailPlan,
) -> None:
    time_of = generator.time
    bulk_insert(
        session,
        Subscriber.__table__,  # type: ignore[arg-type]
        (
            "newsletter_id",
            "contact_id",
            "email",
            "first_name",
            "last_name",
            "status",
            "created_at",
            "unsubscribed_at",
            "unsubscribed_issue_id",
        ),
        [
            (
                setup.newsletter_id,
                contact_ids[s.contact],
                s.email,
                s.first_name,
                s.last_name,
                "subscribed" if s.unsubscribed is None else "unsubscribed",
                time_of(s.created),
                None if s.unsubscribed is None else time_of(s.unsubscribed),
                None if s.unsubscribed_issue is None else setup.issue_ids[s.unsubscribed_issue],
            )
            for s in generator.subscribers
        ],
    )
    subscriber_ids = ids_in_order(
        session,
        Subscriber.__table__,  # type: ignore[arg-type]
        Subscriber.newsletter_id == setup.newsletter_id,
    )
    bulk_insert(
        session,
        Delivery.__table__,  # type: ignore[arg-type]
        ("issue_id", "subscriber_id", "email", "status", "error", "attempts", "sent_at"),
        [
            (
                setup.issue_ids[issue],
                subscriber_ids[subscriber],
                generator.subscribers[subscriber].email,
                status,
                error,
                1,
                None if sent is None else time_of(sent),
            )
            for issue, subscriber, status, error, sent in mail.deliveries
        ],
    )
    bulk_insert(
        session,
        EmailOpen.__table__,  # type: ignore[arg-type]
        OPEN_COLUMNS,
        [
            (
                setup.issue_ids[issue],
                subscriber_ids[subscriber],
                machine,
                reason,
                agent,
                ip,
                time_of(at),
            )
            for issue, subscriber, machine, reason, agent, ip, at in sorted(
                mail.opens, key=lambda row: row[-1]
            )
        ],
    )
    bulk_insert(
        session,
        EmailClick.__table__,  # type: ignore[arg-type]
        CLICK_COLUMNS,
        [
            (
                setup.link_ids[(issue, position)],
                setup.issue_ids[issue],
                subscriber_ids[subscriber],
                machine,
                reason,
                agent,
                ip,
                time_of(at),
            )
            for issue, position, subscriber, machine, reason, agent, ip, at in sorted(
                mail.clicks, key=lambda row: row[-1]
            )
        ],
    )
    # The issues' summary counts come from these rows; their sending is complete.
    session.flush()


def _insert_activities(
    database: Database,
    generator: DemoGenerator,
    setup: _Setup,
    contact_ids: Sequence[int],
    email_activities: Sequence[ActivityTuple],
    report: Progress,
) -> int:
    """Stream the activities into the log in time order, a chunk per transaction."""
    channel_ids = setup.channel_ids
    to_time: Callable[[float, Any], datetime] = datetime.fromtimestamp
    buffer: list[ActivityRow] = []
    stored = 0

    def flush() -> None:
        nonlocal stored
        with _writing(database) as session:
            insert_activities(session, buffer)
        report.advance("Activities", len(buffer))
        stored += len(buffer)
        buffer.clear()

    for rows in generator.activity_hours(email_activities):
        buffer.extend(
            ActivityRow(
                contact_ids[contact],
                channel_ids[channel],
                kind,
                title,
                value,
                url,
                referrer,
                to_time(moment, UTC),
            )
            for moment, contact, channel, kind, title, value, url, referrer in rows
        )
        if len(buffer) >= ACTIVITY_CHUNK:
            flush()
    if buffer:
        flush()
    return stored
