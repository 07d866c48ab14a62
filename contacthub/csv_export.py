"""The CSV files the hub hands out (the contacts list, a group's members): one writer for all.

Plain CSV as spreadsheets and scripts read it: UTF-8, a header row, fields quoted where needed,
lines ending in CRLF (RFC 4180). Times are ISO 8601 in UTC; a missing value is an empty cell.

Every cell is safe to open in a spreadsheet: one that starts with `=`, `+`, `-` or `@` (or a
tab or carriage return) would be taken for a formula, so that a contact who typed
`=HYPERLINK(…)` as their name could run it on the computer of whoever opens the export. Such a
cell gets a leading `'`, as OWASP recommends and spreadsheets show it: as text. A phone number
`+420…` therefore reads `'+420…` in the file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date, datetime

MEDIA_TYPE = "text/csv; charset=utf-8"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """A value as one CSV cell: text that no spreadsheet runs as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = str(value)
    if text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


def csv_line(values: Iterable[object]) -> str:
    """One CSV line (with its CRLF) of these values, each made safe by `safe_cell`."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([safe_cell(value) for value in values])
    return buffer.getvalue()


def attachment(filename: str) -> dict[str, str]:
    """The headers that make a browser save the answer as `filename` (ASCII, no quotes)."""
    return {"Content-Disposition": f'attachment; filename="{filename}"'}
