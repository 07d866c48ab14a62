"""Fixtures of the webhook tests: the providers' keys, the loopback SNS host, the hub with
every provider configured, and an issue sent to Anna and Bob."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from contacthub.app import create_app
from contacthub.bounces.webhooks import endpoints
from contacthub.bounces.webhooks.ses import SnsClient
from contacthub.settings import Settings
from contacthub.storage.database import Database
from tests.bounces.support import SentIssue, sent_issues
from tests.bounces.webhooks.support import TOPIC, SendGridSide, SnsHost, SnsSide, serve_sns

ANNA = "anna@example.com"
BOB = "bob@example.com"
POSTMARK_USER = "postmark"
POSTMARK_PASSWORD = "a long postmark webhook password"
MAILGUN_KEY = "key-mailgun-signing-key-0123456789"


@pytest.fixture(scope="session")
def sns_side() -> SnsSide:
    return SnsSide.make()


@pytest.fixture(scope="session")
def sendgrid_side() -> SendGridSide:
    return SendGridSide.make()


@pytest.fixture
def sns_host(sns_side: SnsSide) -> Iterator[SnsHost]:
    yield from serve_sns(sns_side)


@pytest.fixture
def webhook_settings(database_url: str, sendgrid_side: SendGridSide) -> Settings:
    """Every provider's webhook on; SNS's certificate host is the loopback `localhost`."""
    return Settings(
        database_url=database_url,
        secret_key="test-secret",  # type: ignore[arg-type]
        ses_topic_arns=[TOPIC],
        sns_certificate_hosts=r"^localhost$",
        sendgrid_webhook_public_key=sendgrid_side.public_key,
        postmark_webhook_username=POSTMARK_USER,
        postmark_webhook_password=POSTMARK_PASSWORD,  # type: ignore[arg-type]
        mailgun_webhook_signing_key=MAILGUN_KEY,  # type: ignore[arg-type]
    )


@pytest.fixture
def hub(webhook_settings: Settings, sns_side: SnsSide) -> Iterator[TestClient]:
    """The hub with every webhook on; its SNS client trusts the test's certificate authority."""
    app = create_app(webhook_settings)
    state: endpoints.WebhookState = getattr(app.state, endpoints.STATE_ATTRIBUTE)
    state.sns = SnsClient(verify=sns_side.client_tls)
    with TestClient(app) as client:
        yield client


@pytest.fixture
def sent(database: Database) -> SentIssue:
    """An issue sent to Anna and Bob."""
    (issue,) = sent_issues(database, [ANNA, BOB])
    return issue
