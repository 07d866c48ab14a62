"""A real IMAP server on loopback for the bounce mailbox tests: pymap, in-memory backend.

pymap (PyPI) is a complete IMAP4rev1 server in Python (UIDPLUS, MOVE); its `dict` backend keeps
one user's mailboxes in memory, so each server starts empty. Tests put messages in with APPEND,
as a mail server's delivery would, and look at what is left with a second connection.
"""

from __future__ import annotations

import imaplib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.servers import free_port

HOST = "127.0.0.1"
USER = "bounces"
PASSWORD = "imap-secret"
START_TIMEOUT = 20.0


@dataclass
class ImapServer:
    """What the tests see of the server."""

    port: int

    @contextmanager
    def connection(self) -> Iterator[imaplib.IMAP4]:
        client = imaplib.IMAP4(HOST, self.port, timeout=10)
        client.login(USER, PASSWORD)
        try:
            yield client
        finally:
            client.logout()

    def deliver(self, *messages: bytes, folder: str = "INBOX") -> None:
        """Put messages in a folder, unseen, as the mail server delivering bounces would."""
        with self.connection() as client:
            for raw in messages:
                status, data = client.append(folder, None, None, raw)
                assert status == "OK", data

    def messages(self, folder: str = "INBOX") -> list[tuple[bytes, bytes]]:
        """(flags, raw) of each message in the folder, in order; empty when it is missing."""
        with self.connection() as client:
            status, _ = client.select(f'"{folder}"', readonly=True)
            if status != "OK":
                return []
            _, found = client.uid("SEARCH", "ALL")
            found_uids = found[0].split() if found and found[0] else []
            result = []
            for uid in found_uids:
                _, data = client.uid("FETCH", uid.decode(), "(FLAGS BODY.PEEK[])")
                head, raw = data[0]
                result.append((head, raw))
            return result

    def empty(self, *folders: str) -> None:
        """Delete every message of the folders (between tests)."""
        with self.connection() as client:
            for folder in folders:
                if client.select(f'"{folder}"')[0] != "OK":
                    continue
                client.store("1:*", "+FLAGS.SILENT", r"(\Deleted)")
                client.expunge()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for `localhost` and its key (openssl), for STARTTLS tests."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@contextmanager
def imap_server(tls: tuple[Path, Path] | None = None) -> Iterator[ImapServer]:
    """pymap on a free loopback port, stopped afterwards; with `tls` (certificate, key), it
    offers STARTTLS with that certificate."""
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "pymap"),
        "--host",
        HOST,
        "--port",
        str(port),
        *(["--cert", str(tls[0]), "--key", str(tls[1])] if tls else []),
        "dict",
        "--demo-user",
        USER,
        "--demo-password",
        PASSWORD,
    ]
    # A log file, not a pipe: a pipe nobody reads could fill up and stall the server.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                try:
                    with socket.create_connection((HOST, port), timeout=1):
                        break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        error = log.read().decode(errors="replace")
                        raise RuntimeError(f"pymap did not start: {error[-2000:]}") from None
                    time.sleep(0.05)
            yield ImapServer(port)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
