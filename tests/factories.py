"""Small typed factories for test data, going through the same services as the hub."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contacthub.activities import service as activity_types
from contacthub.channels import service as channels
from contacthub.consents import service as consents
from contacthub.contacts import service as contacts
from contacthub.storage.database import Database
from contacthub.users import service as users


@dataclass(frozen=True)
class TrackingSetup:
    """A channel with a tracking key: what a client app needs."""

    channel_name: str
    channel_guid: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def tracking_channel(
    db: Database, name: str = "Mobile app", access: str = "tracking"
) -> TrackingSetup:
    with db.write() as session:
        channel = channels.create_channel(session, name)
        key = channels.create_api_key(session, name, access)
        return TrackingSetup(name, str(channel.guid), key.plaintext)


def contact(db: Database) -> str:
    with db.write() as session:
        return str(contacts.create_contact(session).guid)


def consent(
    db: Database,
    code_name: str = "TrackingConsent",
    language: str = "en",
    short_text: str = "<p>Short</p>",
    full_text: str = "<p>Full</p>",
) -> None:
    with db.write() as session:
        consents.create_consent(
            session, code_name, language=language, short_text=short_text, full_text=full_text
        )


def activity_type(db: Database, code_name: str, display_name: str, enabled: bool = True) -> None:
    with db.write() as session:
        activity_types.create_type(session, code_name, display_name=display_name, enabled=enabled)


def api_key(
    db: Database,
    channel_name: str,
    access: str = "tracking",
    expires_at: datetime | None = None,
) -> str:
    """Another key of an existing channel; answers its plaintext.

    An `expires_at` in the past makes a key that has expired since it was made (a new key may
    not expire in the past).
    """
    with db.write() as session:
        key = channels.create_api_key(session, channel_name, access)
        key.record.expires_at = expires_at
        return key.plaintext


def consent_text(
    db: Database, code_name: str, language: str, short_text: str, full_text: str
) -> None:
    """Add or change one language's text of a consent (a new revision)."""
    with db.write() as session:
        consents.set_text(
            session, code_name, language=language, short_text=short_text, full_text=full_text
        )


def require_consent(db: Database, channel_name: str, consent_code: str | None) -> None:
    """Turn a channel's consent gate on (or off, with None)."""
    with db.write() as session:
        channels.set_consent_gate(session, channel_name, consent_code)


def contact_with(db: Database, **fields: Any) -> str:
    """A contact with the given fields already stored (attribute names of Contact)."""
    with db.write() as session:
        return str(contacts.create_contact(session, **fields).guid)


def sign_in(db: Database, email: str, password: str, client: str = "198.51.100.7") -> Any:
    """An admin sign-in as the sign-in page makes it: a `SignInSuccess` or the refusal."""
    attempt = users.SignInAttempt(email, password, client)
    return users.sign_in(db, attempt, secret=b"test-secret")
