"""Plain answers of the direct calls."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConsentTexts:
    """A consent's texts (HTML), as GET /consents/{consent} answers them."""

    short_text: str
    full_text: str
