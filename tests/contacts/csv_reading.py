"""Reading the contacts CSV an export answers (admin, API, CLI alike)."""

from __future__ import annotations

import csv
import io

from contacthub.contacts.export import COLUMNS


def csv_rows(text: str) -> list[dict[str, str]]:
    """The rows of a contacts export, after checking its header and line ends."""
    assert text.startswith(",".join(COLUMNS) + "\r\n")
    assert "\n" not in text.replace("\r\n", "")
    return list(csv.DictReader(io.StringIO(text, newline="")))
