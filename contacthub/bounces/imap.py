"""Polling the bounce mailbox over IMAP (settings `bounce_imap_*`).

One poll reads the unseen messages of `bounce_imap_folder` without marking them (BODY.PEEK),
in batches; each batch goes through the parser and the processor (bounces/dsn.py) in one unit
of work, and only after that unit of work has committed are its messages marked \\Seen and
moved to `bounce_imap_processed_folder` (or deleted). Nothing is lost: a crash before the
commit leaves the messages unseen for the next poll; a crash between the commit and the move
makes the next poll read them again, and the processor recognises their events as replays
(`(source, event_id)`), so nothing is counted twice either. (A message that was rejected, not
a bounce or unreadable, would be listed once more among the rejections in that case.)

The hub polls every `bounce_imap_interval` seconds when `bounce_imap_host` is set (app.py);
`contacthub bounces poll` polls once.
"""

from __future__ import annotations

import contextlib
import imaplib
import re
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from contacthub.bounces.dsn import record_messages
from contacthub.bounces.processor import FeedbackReport
from contacthub.email.hashing import LinkSigner
from contacthub.errors import InvalidInput, Unavailable
from contacthub.settings import Settings
from contacthub.storage.database import Database

SOURCE = "imap"
BATCH_SIZE = 100  # messages per unit of work: a few hundred kilobytes, one commit
TIMEOUT = 30.0  # seconds for connecting and for each IMAP command
_UID = re.compile(rb"\bUID (\d+)")


@dataclass(slots=True)
class PollReport:
    """What one poll did: messages read, and what the processor made of them."""

    messages: int = 0
    feedback: FeedbackReport = field(default_factory=FeedbackReport)

    def as_dict(self) -> dict[str, int]:
        """The figures by name (`contacthub bounces poll --json`)."""
        return {"messages": self.messages, **self.feedback.as_dict()}


def poll(
    database: Database, settings: Settings, signer: LinkSigner, *, batch_size: int = BATCH_SIZE
) -> PollReport:
    """Read, record and then remove the unseen messages of the bounce mailbox."""
    report = PollReport()
    with _mailbox(settings) as mailbox:
        _select(mailbox, settings.bounce_imap_folder)
        uids = _unseen(mailbox)
        for start in range(0, len(uids), batch_size):
            batch = uids[start : start + batch_size]
            fetched = _fetch(mailbox, batch)
            with database.write() as session:
                feedback = record_messages(
                    session,
                    list(fetched.values()),
                    source=SOURCE,
                    signer=signer,
                    settings=settings,
                )
            # Committed: only now may the messages leave the folder.
            _done(mailbox, list(fetched), settings)
            report.messages += len(fetched)
            report.feedback.add(feedback)
    return report


@contextmanager
def _mailbox(settings: Settings) -> Iterator[imaplib.IMAP4]:
    host = settings.bounce_imap_host
    if not host:
        raise InvalidInput(
            "No bounce mailbox is configured: set CONTACTHUB_BOUNCE_IMAP_HOST (and the user "
            "name and password).",
            code="bounce_mailbox_not_configured",
        )
    username = settings.bounce_imap_username or ""
    password = (
        settings.bounce_imap_password.get_secret_value() if settings.bounce_imap_password else ""
    )
    where = f"{host}:{settings.bounce_imap_port}"
    try:
        if settings.bounce_imap_tls == "ssl":
            mailbox: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                host,
                settings.bounce_imap_port,
                ssl_context=ssl.create_default_context(),
                timeout=TIMEOUT,
            )
        else:
            mailbox = imaplib.IMAP4(host, settings.bounce_imap_port, timeout=TIMEOUT)
            if settings.bounce_imap_tls == "starttls":
                mailbox.starttls(ssl.create_default_context())
    except (OSError, imaplib.IMAP4.error) as error:
        raise Unavailable(
            f"Cannot reach the bounce mailbox at {where}: {error}", code="bounce_mailbox_down"
        ) from None
    try:
        try:
            mailbox.login(username, password)
        except imaplib.IMAP4.error as error:
            raise Unavailable(
                f"The bounce mailbox at {where} refused the login of {username!r}: {error}",
                code="bounce_mailbox_login",
            ) from None
        yield mailbox
    except (OSError, imaplib.IMAP4.abort) as error:
        raise Unavailable(
            f"The connection to the bounce mailbox at {where} broke: {error}",
            code="bounce_mailbox_down",
        ) from None
    finally:
        # When the connection is gone already, nothing is left to close.
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            mailbox.logout()


def _check(answer: tuple[str, Any], what: str) -> list[Any]:
    status, data = answer
    if status != "OK":
        raise Unavailable(f"The bounce mailbox refused to {what}: {data!r}", code="bounce_mailbox")
    return list(data)


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _select(mailbox: imaplib.IMAP4, folder: str) -> None:
    _check(mailbox.select(_quoted(folder)), f"open the folder {folder!r}")


def _unseen(mailbox: imaplib.IMAP4) -> list[bytes]:
    data = _check(mailbox.uid("SEARCH", "UNSEEN"), "search for unseen messages")
    found = data[0] if data and isinstance(data[0], bytes) else b""
    return sorted(found.split(), key=int)


def _fetch(mailbox: imaplib.IMAP4, uids: Sequence[bytes]) -> dict[bytes, bytes]:
    """uid -> raw message, without setting \\Seen (BODY.PEEK)."""
    data = _check(mailbox.uid("FETCH", b",".join(uids).decode(), "(UID BODY.PEEK[])"), "fetch")
    fetched: dict[bytes, bytes] = {}
    for item in data:
        if isinstance(item, tuple) and len(item) == 2:
            found = _UID.search(item[0])
            if found and isinstance(item[1], bytes):
                fetched[found.group(1)] = item[1]
    return fetched


def _capabilities(mailbox: imaplib.IMAP4) -> set[str]:
    data = _check(mailbox.capability(), "list its capabilities")
    words = b" ".join(item for item in data if isinstance(item, bytes)).upper().split()
    return {word.decode() for word in words}


def _done(mailbox: imaplib.IMAP4, uids: Sequence[bytes], settings: Settings) -> None:
    """Mark the recorded messages \\Seen, then move them away (or delete them)."""
    if not uids:
        return
    uid_set = b",".join(uids).decode()
    _check(mailbox.uid("STORE", uid_set, "+FLAGS.SILENT", r"(\Seen)"), "mark messages seen")
    capabilities = _capabilities(mailbox)
    target = settings.bounce_imap_processed_folder
    if target:
        mailbox.create(_quoted(target))  # answers NO when it exists: that is fine
        if "MOVE" in capabilities:
            _check(mailbox.uid("MOVE", uid_set, _quoted(target)), f"move messages to {target!r}")
            return
        _check(mailbox.uid("COPY", uid_set, _quoted(target)), f"copy messages to {target!r}")
    _check(mailbox.uid("STORE", uid_set, "+FLAGS.SILENT", r"(\Deleted)"), "delete messages")
    if "UIDPLUS" in capabilities:
        _check(mailbox.uid("EXPUNGE", uid_set), "expunge messages")
    else:
        _check(mailbox.expunge(), "expunge messages")
