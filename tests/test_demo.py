"""`contacthub demo`: a new hub filled with sample data, on SQLite and PostgreSQL.

Small sizes (200 contacts, 2,000 activities) keep each run to a second or two; what is checked
holds at any size: everything the demo promises exists, ids follow time, the rollups count
every activity, a hub with data is refused, and a seed gives the same data on every database.
"""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from contacthub.analytics import rollups
from contacthub.channels import service as channels
from contacthub.demo import service as demo
from contacthub.demo.generator import CATALOG_DISABLED_AT, CATALOG_TYPE
from contacthub.email import stats
from contacthub.errors import Conflict
from contacthub.groups import service as groups
from contacthub.groups.compiler import matching_ids_query
from contacthub.groups.conditions import load_conditions
from contacthub.storage import partitions
from contacthub.storage.database import Database
from contacthub.storage.migrate import upgrade
from contacthub.storage.models import (
    Activity,
    ActivityType,
    AdminUser,
    ApiKey,
    AuditEvent,
    Channel,
    Consent,
    ConsentAgreement,
    ConsentRevision,
    ConsentText,
    Contact,
    ContactRollup,
    CorsOrigin,
    Delivery,
    EmailClick,
    EmailIssue,
    EmailOpen,
    GroupMember,
    GroupMembershipState,
    RollupState,
    Subscriber,
)
from contacthub.storage.types import utcnow
from contacthub.users import service as users
from contacthub.users.service import SignInSuccess
from tests import factories
from tests.cli.conftest import Cli, cli_on
from tests.conftest import BACKENDS, _admin_execute, _postgres_url

# A fixed end for every run of the module (the same seed and end give the same data), in the
# past whatever the clock says, so that the key made to have expired has.
END = datetime.combine(datetime.now(UTC).date() - timedelta(days=1), time(18), UTC)
UNTIL = END.isoformat()
DAYS = 14
SMALL = ("--contacts", "200", "--activities", "2000", "--days", str(DAYS), "--until", UNTIL)
PASSWORD = "demo password 123"


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Cli:
    return cli_on(database_url, tmp_path, COLUMNS="200")


@dataclass
class Filled:
    """A hub filled once per backend by `contacthub demo`, shared by the tests that only read."""

    database: Database
    printed: dict[str, Any]
    cli: Cli


@pytest.fixture(scope="module", params=BACKENDS)
def hub(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Filled]:
    folder = tmp_path_factory.mktemp("demo")
    name = f"contacthub_test_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        path = folder / "hub.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        template = request.getfixturevalue("postgres_template")
        _admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        url = _postgres_url(name)
    database = Database(url)
    try:
        cli = cli_on(url, folder, COLUMNS="200")
        printed = cli.json("demo", *SMALL, "--seed", "7", "--admin-password", PASSWORD)
        yield Filled(database, printed, cli)
    finally:
        database.dispose()
        if request.param != "sqlite":
            _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def count(database: Database, model: Any, *where: Any) -> int:
    with database.read() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def test_reports_what_it_made(hub: Filled) -> None:
    filled, database = hub.printed, hub.database
    assert filled["counts"]["contacts"] == 200 == count(database, Contact)
    assert filled["counts"]["activities"] == 2000 == count(database, Activity)
    assert filled["admin_email"] == "demo@example.com"
    assert filled["admin_password"] is None  # given, so not printed
    assert filled["sign_in_url"].endswith("/admin/sign-in")
    assert filled["until"] == UNTIL
    assert set(filled["seconds"]) == set(filled["cpu_seconds"])


def test_channels_keys_and_origins(hub: Filled) -> None:
    filled, database = hub.printed, hub.database
    with database.write() as session:
        names = set(session.scalars(select(Channel.name)))
        assert names == {"Website", "Mobile app", "Shop SPA", "Support service"}
        statuses = Counter(channels.api_key_status(k) for k in session.scalars(select(ApiKey)))
        assert set(statuses) == {"active", "disabled", "revoked", "expired"}
        # Every printed key is stored (hashed) and the active ones authenticate.
        for key in filled["keys"]:
            assert channels.hash_key(key["key"]) in set(session.scalars(select(ApiKey.key_hash)))
            if key["status"] == "active":
                principal = channels.authenticate(session, key["key"], key["access"])
                assert principal.channel_guid == key["channel_guid"]
        assert count(database, CorsOrigin) == 2


def test_consents_have_texts_revisions_and_agreements(hub: Filled) -> None:
    database = hub.database
    with database.read() as session:
        consents = {c.code_name: c for c in session.scalars(select(Consent))}
        assert set(consents) == {"TrackingConsent", "NewsletterConsent"}
        revisions = {
            code: {
                r.number: r
                for r in session.scalars(
                    select(ConsentRevision).where(ConsentRevision.consent_id == consent.id)
                )
            }
            for code, consent in consents.items()
        }
        assert sorted(revisions["TrackingConsent"]) == [1, 2]
        assert sorted(revisions["NewsletterConsent"]) == [1, 2, 3]
        for code, numbers in revisions.items():
            current = numbers[max(numbers)]
            languages = set(
                session.scalars(
                    select(ConsentText.language).where(ConsentText.revision_id == current.id)
                )
            )
            assert languages == {"en", "de"}, code
        agreements = session.execute(
            select(
                ConsentAgreement.agreed,
                ConsentAgreement.consent_id,
                ConsentAgreement.revision_id,
                ConsentAgreement.created_at,
            )
        ).all()
        newsletter = consents["NewsletterConsent"].id
        expected = {revisions["NewsletterConsent"][n].id for n in (2, 3)}
    assert {agreed for agreed, *_ in agreements} == {True, False}, "no revokes"
    agreed_to = {revision for _, consent, revision, _ in agreements if consent == newsletter}
    # Agreements before and after the newsletter consent was reworded.
    assert agreed_to == expected
    assert all(at <= END for *_, at in agreements)


def test_contacts_grow_over_the_period(hub: Filled) -> None:
    database = hub.database
    # A write unit of work: its objects stay loaded after it ends (a read's are expired).
    with database.write() as session:
        contacts = session.scalars(select(Contact).order_by(Contact.id)).all()
    start = END - timedelta(days=DAYS)
    created = [c.created_at for c in contacts]
    assert created == sorted(created), "contact ids do not follow creation"
    assert start <= created[0]
    assert created[-1] <= END
    identified = [c for c in contacts if c.email]
    assert 0.45 < len(identified) / len(contacts) < 0.75
    assert all(c.first_name and c.last_name for c in identified)
    assert len({c.email for c in identified}) == len(identified), "emails repeat"
    assert all(
        c.email.endswith((".example.com", "@example.com", "@example.net", "@example.org"))  # type: ignore[union-attr]
        for c in identified
    )
    assert any(c.country for c in contacts)
    assert any(c.company_name for c in contacts)
    # Growth: the second half of the period brings more new contacts than the first.
    middle = start + timedelta(days=DAYS / 2)
    assert sum(c > middle for c in created) > sum(c <= middle for c in created)


def test_activities_follow_time_and_their_contacts(hub: Filled) -> None:
    database = hub.database
    with database.read() as session:
        rows = session.execute(
            select(
                Activity.created_at,
                Activity.type,
                Activity.channel_id,
                Activity.title,
                Contact.created_at,
            )
            .join(Contact, Contact.id == Activity.contact_id)
            .order_by(Activity.id)
        ).all()
        catalog_enabled = session.scalar(
            select(ActivityType.enabled).where(ActivityType.code_name == CATALOG_TYPE)
        )
    assert len(rows) == 2000, "an activity without its contact"
    times = [row[0] for row in rows]
    assert times == sorted(times), "activity ids do not follow time"
    assert all(activity >= contact for activity, *_, contact in rows)
    assert times[-1] <= END
    types = Counter(row[1] for row in rows)
    assert {"pagevisit", "click", "datainput", "emailopen", "emailclick", CATALOG_TYPE} <= set(
        types
    )
    assert types["pagevisit"] > types["click"] > types["datainput"]
    assert all((row[2] is None) == row[1].startswith("email") for row in rows)
    assert any(row[3] == "Clicked 'Add to cart'" for row in rows)
    # The catalog type was disabled during the period: no activity of it after that.
    assert catalog_enabled is False
    cutoff = END - timedelta(days=DAYS * (1 - CATALOG_DISABLED_AT))
    assert all(row[0] < cutoff for row in rows if row[1] == CATALOG_TYPE)


def test_newsletter_issues_opens_and_clicks(hub: Filled) -> None:
    filled, database = hub.printed, hub.database
    with database.write() as session:
        issues = session.scalars(select(EmailIssue).order_by(EmailIssue.id)).all()
        assert [i.status for i in issues] == ["sent", "sent", "draft"]
        subscribers = filled["counts"]["subscribers"]
        assert subscribers == count(database, Subscriber) > 0
        figures = [stats.issue_stats(session, issue.guid) for issue in issues[:2]]
        opens = session.scalars(select(EmailOpen)).all()
        clicks = session.scalars(select(EmailClick)).all()
        email_activities = Counter(
            session.scalars(select(Activity.type).where(Activity.type.like("email%")))
        )
    assert count(database, Delivery) == sum(f.sent + f.failed for f in figures) > 0
    assert all(f.opens.human.unique > 0 and f.opens.machine.total > 0 for f in figures)
    assert sum(f.clicks.human.total for f in figures) > 0
    assert sum(f.clicks.machine.total for f in figures) > 0
    assert all(o.machine_reason for o in opens if o.is_machine)
    assert {o.machine_reason for o in opens if o.is_machine} <= {
        "Apple Mail Privacy Protection",
        "Gmail image proxy",
    }
    # Human hits are on the timeline, as tracking records them: the first open, every click.
    first_opens = {(o.issue_id, o.subscriber_id) for o in opens if not o.is_machine}
    assert email_activities["emailopen"] == len(first_opens)
    assert email_activities["emailclick"] == sum(not c.is_machine for c in clicks)


def test_rollups_are_counted(hub: Filled) -> None:
    database = hub.database
    with database.read() as session:
        assert rollups.counted_up_to(session) == session.scalar(select(func.max(Activity.id)))
        counts = rollups.activity_counts(
            session, (END - timedelta(days=DAYS + 1)).date(), END.date()
        )
        by_type = Counter(session.scalars(select(Activity.type)))
        top = rollups.top_keys(session, "page", date(2000, 1, 1), END.date())
    assert sum(row.count for row in counts) == 2000
    summed: Counter[str] = Counter()
    for row in counts:
        summed[row.type] += row.count
    assert summed == by_type
    assert top
    assert top[0][1] >= top[-1][1]


def test_new_contacts_are_counted(hub: Filled) -> None:
    # The demo's final refresh counts its contacts too: the dashboard reads them from the
    # rollup, and they equal the contacts per UTC day.
    database = hub.database
    with database.read() as session:
        state = session.scalars(select(RollupState)).one()
        assert state.last_contact_id == session.scalar(select(func.max(Contact.id)))
        rolled = dict(session.execute(select(ContactRollup.day, ContactRollup.count)).all())
        per_day = Counter(
            moment.astimezone(UTC).date() for moment in session.scalars(select(Contact.created_at))
        )
        counted = rollups.contact_counts(session, date(2000, 1, 1), END.date())
    assert rolled == per_day
    assert counted.per_day == per_day
    assert counted.total == sum(per_day.values()) == hub.printed["counts"]["contacts"]


def test_admin_can_sign_in_and_the_demo_is_audited(hub: Filled) -> None:
    database = hub.database
    assert isinstance(factories.sign_in(database, "demo@example.com", PASSWORD), SignInSuccess)
    with database.read() as session:
        actions = set(session.scalars(select(AuditEvent.action)))
    assert "demo.created" in actions


def test_a_hub_with_data_is_refused(hub: Filled) -> None:
    cli, database = hub.cli, hub.database
    message = cli.fails("demo", *SMALL)
    assert "hub_not_empty" in message
    assert count(database, Contact) == 200
    # --if-empty: nothing added, and success (what `scripts/serve --demo` relies on).
    output = cli.ok("demo", *SMALL, "--if-empty")
    assert "no demo data added" in output
    assert count(database, Contact) == 200


def test_any_data_makes_a_hub_not_empty(database: Database) -> None:
    with database.write() as session:
        channels.create_channel(session, "Real channel")
    with pytest.raises(Conflict) as refused:
        demo.build(database, demo.DemoOptions(contacts=10, activities=10, days=1))
    assert refused.value.code == "hub_not_empty"
    assert count(database, Contact) == 0


def test_existing_users_are_kept(cli: Cli, database: Database) -> None:
    with database.write() as session:
        users.create_user(session, "owner@example.com", "owner password 1")
    printed = cli.json("demo", *SMALL)
    assert printed["admin_email"] is None
    assert printed["existing_users"] == 1
    with database.read() as session:
        assert list(session.scalars(select(AdminUser.email))) == ["owner@example.com"]


def test_a_generated_password_is_printed_once_and_works(cli: Cli, database: Database) -> None:
    printed = cli.json("demo", *SMALL)
    password = printed["admin_password"]
    assert password
    assert len(password) >= 12
    assert isinstance(factories.sign_in(database, "demo@example.com", password), SignInSuccess)


def test_bad_input_is_refused_before_anything_is_written(cli: Cli, database: Database) -> None:
    assert "invalid_password" in cli.fails("demo", *SMALL, "--admin-password", "short")
    assert "invalid_until" in cli.fails("demo", "--until", "yesterday")
    assert cli("demo", "--contacts", "0").exit_code == 2  # a usage error, from the option's bound
    with database.read() as session:
        assert demo.existing_data(session) == {}
        assert session.scalar(select(func.count()).select_from(AdminUser)) == 0


def _dump(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything the seed decides, in a form that compares across databases."""
    database = Database(database_url)
    try:
        with database.read() as session:
            channel_names = dict(session.execute(select(Channel.id, Channel.name)).all())
            guids = dict(session.execute(select(Contact.id, Contact.guid)).all())
            return {
                "channels": sorted(session.execute(select(Channel.name, Channel.guid)).all()),
                "contacts": [
                    (c.guid, c.email, c.first_name, c.last_name, c.country, c.created_at)
                    for c in session.scalars(select(Contact).order_by(Contact.id))
                ],
                "activities": [
                    (
                        guids[a.contact_id],
                        channel_names.get(a.channel_id or 0),
                        a.type,
                        a.title,
                        a.value,
                        a.url,
                        a.referrer,
                        a.created_at,
                    )
                    for a in session.scalars(select(Activity).order_by(Activity.id))
                ],
                "agreements": [
                    (guids[a.contact_id], a.agreed, a.created_at)
                    for a in session.scalars(select(ConsentAgreement).order_by(ConsentAgreement.id))
                ],
                "opens": sorted(
                    session.execute(
                        select(
                            EmailOpen.is_machine,
                            EmailOpen.machine_reason,
                            EmailOpen.ip,
                            EmailOpen.created_at,
                        )
                    ).all()
                ),
            }
    finally:
        database.dispose()


def test_the_same_seed_gives_the_same_data_on_every_database(
    cli: Cli, database_url: str, tmp_path: Path
) -> None:
    cli.ok("demo", *SMALL, "--seed", "3")
    again = f"sqlite:///{tmp_path / 'again.db'}"
    other = f"sqlite:///{tmp_path / 'other.db'}"
    for url, seed in ((again, "3"), (other, "4")):
        upgrade(url)
        cli_on(url, tmp_path).ok("demo", *SMALL, "--seed", seed)
    first = _dump(database_url)
    assert first == _dump(again)
    different = _dump(other)
    assert first["contacts"] != different["contacts"]
    assert len(different["activities"]) == len(first["activities"]) == 2000


def test_until_defaults_to_now(database: Database) -> None:
    report = demo.build(database, demo.DemoOptions(contacts=20, activities=100, days=2))
    assert report.until is not None
    assert abs((report.until - datetime.now(UTC)).total_seconds()) < 60
    with database.read() as session:
        latest = session.scalar(select(func.max(Activity.created_at)))
    assert latest is not None
    assert latest <= report.until


def test_groups_made_through_the_service_with_exact_members(hub: Filled) -> None:
    database = hub.database
    with database.read() as session:
        made = {g.group.name: g for g in groups.list_groups(session)}
        assert set(made) == {"Engaged visitors", "Newsletter consent, Germany", "VIP"}
        assert made["VIP"].group.kind == "static"
        assert 0 < made["VIP"].members <= demo.VIP_SIZE
        now = utcnow()
        for name in ("Engaged visitors", "Newsletter consent, Germany"):
            group = made[name].group
            assert group.kind == "dynamic"
            assert group.conditions is not None
            condition = load_conditions(session, group.conditions)
            expected = set(session.scalars(matching_ids_query(condition, now=now)))
            members = set(
                session.scalars(
                    select(GroupMember.contact_id).where(GroupMember.group_id == group.id)
                )
            )
            assert members == expected, name
        assert sum(g.members for g in made.values()) == hub.printed["counts"]["group members"]
        assert made["Newsletter consent, Germany"].members > 0
        # The live job starts after the data: nothing of it is evaluated again.
        state = session.scalars(select(GroupMembershipState)).one()
        assert state.last_activity_id == session.scalar(select(func.max(Activity.id)))
        assert state.last_email_open_id == session.scalar(select(func.max(EmailOpen.id)))
        assert state.last_email_click_id == session.scalar(select(func.max(EmailClick.id)))


def test_history_goes_straight_to_its_months_partitions(hub: Filled) -> None:
    # On PostgreSQL the demo makes a partition for every month it writes to first: nothing waits
    # in the default partitions for the hub to move it (8M moved rows made every query slow).
    with hub.database.read() as session:
        tables = [t for t in partitions.PARTITIONED_TABLES if partitions.is_partitioned(session, t)]
        if not tables:
            pytest.skip("SQLite: no partitions")
        waiting = {
            table: session.scalar(text(f'SELECT count(*) FROM "{table}_default"'))  # noqa: S608
            for table in tables
        }
        in_months = session.scalar(text("SELECT count(*) FROM activities"))
    assert waiting == dict.fromkeys(tables, 0)
    assert in_months == 2000
