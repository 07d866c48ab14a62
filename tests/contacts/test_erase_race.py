"""An erasure and an ingest batch for the same contact, at the same moment, on PostgreSQL.

The batch looks the contact up, then inserts its activities. An erasure committing in between
would leave those activities behind for a contact that no longer exists. The lookup's key-share
lock makes the erasure wait for the batch, and then delete its activities too. (On SQLite the
two transactions cannot overlap at all: each holds the one write lock from its start.)
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from sqlalchemy import func, select

from contacthub.activities import repository
from contacthub.activities.repository import ActivityRow
from contacthub.contacts import privacy
from contacthub.storage.database import Database
from contacthub.storage.models import Activity
from contacthub.storage.types import utcnow
from tests import factories


# PostgreSQL only: SQLite runs the two transactions one after the other.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_erasure_waits_for_a_batch_that_looked_the_contact_up(database: Database) -> None:
    guid = factories.contact(database)
    erased = threading.Event()

    def erase() -> None:
        with database.write() as session:
            privacy.erase_contact(session, guid, "test")
        erased.set()

    eraser = threading.Thread(target=erase)
    with database.write() as batch:
        contact_id = repository.contact_ids_by_guid(batch, [uuid.UUID(guid)])[uuid.UUID(guid)]
        eraser.start()
        time.sleep(0.5)
        assert not erased.is_set(), "the erasure did not wait for the batch"
        row = ActivityRow(
            contact_id, None, "pagevisit", "Home", None, "https://a.example/", None, utcnow()
        )
        repository.insert_activities(batch, [row])
    eraser.join(timeout=30)
    assert erased.is_set()
    with database.read() as session:
        left = session.scalar(select(func.count()).where(Activity.contact_id == contact_id))
    assert left == 0
