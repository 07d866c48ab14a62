"""What every provider webhook shares, on SQLite and PostgreSQL: the body limit, disabled
providers, the method."""

from __future__ import annotations

import logging

import pytest
from starlette.testclient import TestClient

from contacthub.bounces.webhooks.common import MAX_BODY
from contacthub.storage.database import Database
from tests.bounces.webhooks.support import stored

PROVIDERS = ("ses", "sendgrid", "postmark", "mailgun")


def test_a_body_over_the_limit_is_refused_unread_recorded_and_logged(
    hub: TestClient, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="contacthub.bounces.processor")
    for provider in PROVIDERS:
        answer = hub.post(f"/webhooks/email/{provider}", content=b" " * (MAX_BODY + 1))
        assert (answer.status_code, answer.json()["code"]) == (413, "body_too_large")
        assert stored(database, provider).rejections == {"body_too_large": 1}
        assert f"feedback from {provider} rejected (body_too_large)" in caplog.text


def test_every_provider_is_off_until_configured_and_takes_only_post(
    client: TestClient, database: Database
) -> None:
    for provider in PROVIDERS:
        answer = client.post(f"/webhooks/email/{provider}", content=b"{}")
        assert (answer.status_code, answer.json()["code"]) == (404, "webhook_disabled")
        assert stored(database, provider).rejections == {}
        # Only POST is served.
        answer = client.get(f"/webhooks/email/{provider}")
        assert (answer.status_code, answer.json()["code"]) == (405, "method_not_allowed")
