"""Job leases: a job that must run in one hub process at a time takes a lease and renews it.

Every worker process (and machine) runs the same jobs; a lease in the database picks one of
them for a while. The holder renews it on each run; when the holder dies, its lease expires and
another process takes over. A lease is a hint for efficiency and ordering, not a lock for
correctness: work done under it must stay safe if two processes ever overlap for a moment.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from contacthub.storage.database import Database, insert_or_ignore
from contacthub.storage.models import JobLease
from contacthub.storage.types import utcnow

# This process, as a lease holder: host, pid and a random part (pids are reused).
PROCESS = f"{socket.gethostname()[:50]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def take(session: Session, name: str, seconds: float, holder: str = PROCESS) -> bool:
    """Take or renew the lease `name` for `seconds`: True when `holder` holds it now."""
    now = utcnow()
    expires = now + timedelta(seconds=seconds)
    renewed = session.execute(
        update(JobLease)
        .where(JobLease.name == name, or_(JobLease.holder == holder, JobLease.expires_at < now))
        .values(holder=holder, expires_at=expires)
    )
    if renewed.rowcount:  # type: ignore[attr-defined]
        return True
    created = session.execute(
        insert_or_ignore(session, JobLease, ["name"])
        .values(name=name, holder=holder, expires_at=expires)
        .returning(JobLease.name)
    ).first()
    return created is not None


def held(database: Database, name: str, seconds: float, holder: str = PROCESS) -> bool:
    """`take`, in a short write transaction of its own: for jobs whose work runs in several
    transactions after it."""
    with database.write() as session:
        return take(session, name, seconds, holder)


def release(session: Session, name: str, holder: str = PROCESS) -> None:
    """Give the lease up now (on shutdown), so that another process need not wait for it."""
    session.execute(
        update(JobLease)
        .where(JobLease.name == name, JobLease.holder == holder)
        .values(expires_at=utcnow())
    )
