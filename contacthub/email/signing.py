"""The link signer of a running hub, built from its settings in one place.

Sending (which signs the links of every copy) and the tracking handlers (which verify them) must
use the same secrets, so both get their `LinkSigner` from here.
"""

from __future__ import annotations

from contacthub.email.hashing import LinkSigner
from contacthub.errors import InvalidInput
from contacthub.settings import DEFAULT_SECRET, Settings


def link_signer(settings: Settings) -> LinkSigner:
    """Sign with `secret_key`; also accept `previous_secret_keys` and `legacy_hash_salts`.

    The default secret is refused outside local use (it is public: anyone could forge links).
    """
    current = settings.secret_key.get_secret_value()
    if current == DEFAULT_SECRET and not settings.is_local:
        raise InvalidInput(
            "Set CONTACTHUB_SECRET_KEY: the default secret is only for local use on SQLite.",
            code="default_secret",
        )
    previous = [key.get_secret_value() for key in settings.previous_secret_keys]
    salts = [salt.get_secret_value() for salt in settings.legacy_hash_salts]
    return LinkSigner([current, *previous], legacy_salts=salts)
