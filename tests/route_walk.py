"""Walking every route of the management API and the admin with hostile input.

The routes are read from the app itself, so that a route added later is walked too; each path
parameter is filled with a real value from a small world (so that handlers get past their
lookups), except the one under test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy import select
from starlette.applications import Starlette
from starlette.routing import Route

from contacthub.channels import cors
from contacthub.channels import service as channels
from contacthub.contacts import service as contacts
from contacthub.email import service as email
from contacthub.events import endpoints as webhooks
from contacthub.events import outbox
from contacthub.groups import service as groups
from contacthub.storage.database import Database
from contacthub.storage.models import OutboxEvent, WebhookDelivery
from contacthub.suppressions import service as suppressions
from contacthub.users import service as users
from tests import factories

# Beyond PostgreSQL's integer (2**31 - 1) and beyond its bigint (2**63 - 1).
OUT_OF_RANGE = ("2147483648", "9223372036854775808")
_PARAM = re.compile(r"{([^}:]+)(?::([^}]+))?}")


@dataclass(frozen=True)
class Walked:
    """One route: its path template, methods and path parameters (name -> convertor)."""

    path: str
    methods: tuple[str, ...]
    params: dict[str, str]

    def url(self, values: dict[str, str]) -> str:
        """The path with each parameter replaced by its value, percent-encoded."""
        return _PARAM.sub(lambda m: quote(values[m.group(1)], safe=""), self.path)


def routes(app: Starlette, prefix: str) -> Iterator[Walked]:
    """Every route of the app whose path starts with `prefix` (HEAD left out: it is GET)."""
    for route in app.routes:
        if isinstance(route, Route) and route.path.startswith(prefix):
            methods = tuple(sorted((route.methods or set()) - {"HEAD"}))
            params = {m.group(1): m.group(2) or "str" for m in _PARAM.finditer(route.path)}
            yield Walked(route.path, methods, params)


def walked_routes(app: object, prefix: str, skip: str) -> list[Walked]:
    """`routes(app, prefix)` without the path `skip`, checked to have found a real walk."""
    assert isinstance(app, Starlette)
    walked = [r for r in routes(app, prefix) if r.path != skip]
    assert len(walked) > 30, "the walk found too few routes"
    return walked


def world(database: Database) -> dict[str, dict[str, str]]:
    """A channel with a key, a consent, a custom type, a contact, a newsletter with a
    subscriber and an issue, a user with a token, an allowed origin, a dynamic group and a
    static one with the contact in it, a webhook endpoint with a dead delivery: the path values
    of each,
    by path prefix and then by parameter name."""
    factories.consent(database, "Consent")
    factories.activity_type(database, "custom", "Custom")
    with database.write() as session:
        channel = channels.create_channel(session, "Web")
        key = channels.create_api_key(session, "Web", "tracking").record
        contact = contacts.create_contact(session, email="anna@example.com")
        newsletter = email.create_newsletter(
            session, "Weekly", "The Team", "news@example.com", "https://news.example.com"
        )
        email.add_subscriber(session, "Weekly", "anna@example.com")
        issue = email.create_issue(session, "Weekly", "News", "<p>Hi</p>")
        user = users.create_user(session, "walker@example.com", "a long enough password")
        token = users.create_token(session, user, "walk").record
        origin = cors.add_origin(session, "https://shop.example.com")
        groups.create_group(session, "Everyone", conditions={"all": []})
        group = groups.create_group(session, "Walkers", kind="static")
        groups.add_members(session, "Walkers", ["anna@example.com"])
        suppressions.suppress(session, "gone@example.com", reason="hard_bounce", source="smtp")
        hook = webhooks.create_endpoint(session, "CRM", "https://crm.example.com/hook").endpoint
        outbox.emit(session, outbox.CONTACT_UPDATED, contact_id=contact.id, data={})
        delivery = WebhookDelivery(
            endpoint_id=hook.id,
            event_id=session.scalars(select(OutboxEvent.id)).one(),
            contact_id=contact.id,
            state="dead",
        )
        session.add(delivery)
        session.flush()
        common = {
            "key_id": str(key.id),
            "token_id": str(token.id),
            "user_id": str(user.id),
            "origin_id": str(origin.id),
            "channel_id": str(channel.id),
            "number": "1",
            "language": "en",
            "email": "anna@example.com",
            "delivery_id": str(delivery.id),
        }
        values = {
            "/api/channels": {**common, "name": "Web"},
            "/api/newsletters": {**common, "name": "Weekly"},
            "/api/groups": {**common, "name": "Walkers"},
            "/api/suppressions": {**common, "email": "gone@example.com"},
            "/api/retention": {**common, "kind": "audit_log", "activity_type": "pagevisit"},
            "/api/consents": {**common, "code": "Consent"},
            "/api/activity-types": {**common, "code": "custom"},
            "/api/contacts": {**common, "guid": str(contact.guid)},
            "/api/issues": {**common, "guid": str(issue.guid)},
            "/admin/consents": {**common, "code": "Consent"},
            "/admin/activity-types": {**common, "code": "custom"},
            "/admin/contacts": {**common, "guid": str(contact.guid)},
            "/admin/issues": {**common, "guid": str(issue.guid)},
            "/admin/newsletters": {**common, "key": str(newsletter.guid)},
            "/admin/groups": {**common, "key": str(group.guid)},
            "/api/webhooks": {**common, "guid": hook.guid},
            "/admin/webhooks": {**common, "guid": hook.guid},
        }
    values[""] = common
    return values


def values_for(values: dict[str, dict[str, str]], path: str) -> dict[str, str]:
    """The world's path values for a route (its area's, else the common ones)."""
    area = next((prefix for prefix in values if prefix and path.startswith(prefix + "/")), "")
    return dict(values[area])
