"""`POST /webhooks/email/{ses,sendgrid,postmark,mailgun}`: the providers' feedback, verified.

Public (providers have no admin session); each call is verified by its provider's scheme
before anything in it is believed. What every one answers, as JSON:

- 404 `webhook_disabled` while the provider's settings are unset;
- 400 `malformed`, 401 (`missing_signature`, `missing_credentials`, `bad_credentials`), 403
  (`bad_signature`, `stale_timestamp`, `replayed_token`, `unknown_topic`, `untrusted_url`),
  413 `body_too_large`, 503 (`certificate_unavailable`, `confirmation_failed`): nothing is
  taken, and a feedback rejection is recorded and logged. A Mailgun token is taken in the
  transaction that records the call's events, so a call refused or failed leaves it unused;
- 200 with the counts otherwise. Events of unknown deliveries are rejections too, but the call
  still answers 200: retrying would not make them known, and a provider retries non-2xx calls
  for hours. A replayed event is counted as a duplicate, never twice.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from contacthub.bounces.processor import FeedbackReport, record_feedback, reject
from contacthub.bounces.webhooks import mailgun, postmark, sendgrid, ses, tokens
from contacthub.bounces.webhooks.common import MAX_BODY, Intake
from contacthub.email.machine import IPNetwork
from contacthub.email.pages import parse_networks, request_client_ip
from contacthub.errors import HubError
from contacthub.http import json_response, read_body
from contacthub.hub import Hub, hub_of
from contacthub.settings import Settings

STATE_ATTRIBUTE = "email_webhooks"
PATH = "/webhooks/email"
# How many details of unused events one rejection row lists.
MAX_LISTED = 20


@dataclass(slots=True)
class WebhookState:
    """What the webhooks keep between calls in one process (nothing a replay check needs:
    used tokens are in the database, shared by every process)."""

    sns: ses.SnsClient = field(default_factory=ses.SnsClient)
    sendgrid_key: ec.EllipticCurvePublicKey | None = None
    trusted_proxies: tuple[IPNetwork, ...] = ()

    @classmethod
    def for_settings(cls, settings: Settings) -> WebhookState:
        """The state of a new process; a malformed SendGrid key stops start-up (ValueError)."""
        key = settings.sendgrid_webhook_public_key
        return cls(
            sendgrid_key=sendgrid.public_key(key) if key else None,
            trusted_proxies=parse_networks(settings.trusted_proxies),
        )


def state_of(request: Request) -> WebhookState:
    """This process's webhook state (made by the app factory)."""
    state: WebhookState = getattr(request.app.state, STATE_ATTRIBUTE)
    return state


Reader = Callable[[Request, bytes, Hub, WebhookState], Awaitable[Intake]]


async def serve(request: Request, source: str, enabled: bool, read: Reader) -> Response:
    """Verify and read one call with `read`, then record what it says, or the refusal."""
    hub = hub_of(request)
    if not enabled:
        return json_response(
            {
                "error": f"The {source} webhook is off: its settings are unset.",
                "code": "webhook_disabled",
            },
            404,
        )
    state = state_of(request)
    try:
        body = await read_body(request, MAX_BODY)
        intake = await read(request, body, hub, state)
        report = await hub.write(lambda session: record(session, source, intake, hub.settings))
    except HubError as error:
        client = request_client_ip(request.scope, state.trusted_proxies) or "unknown address"
        reason, detail = error.code, f"{error.message} (from {client})"
        await hub.write(lambda session: reject(session, source, reason, detail))
        headers = None
        if error.status_code == 401:
            scheme = "Basic" if source == postmark.SOURCE else "Signature"
            headers = {"WWW-Authenticate": f'{scheme} realm="contacthub webhooks"'}
        return json_response(error.as_dict(), error.status_code, headers)
    answer: dict[str, object] = {
        "recorded": report.recorded,
        "duplicates": report.duplicates,
        "rejected": report.rejected,
        "ignored": len(intake.unused),
        "suppressed": report.suppressed,
    }
    if intake.note:
        answer["status"] = intake.note
    return json_response(answer)


def record(session: Session, source: str, intake: Intake, settings: Settings) -> FeedbackReport:
    """Record the events of one call, and one rejection per reason for the events not used.

    A single-use token is taken first: when it was already taken, nothing is recorded (the
    transaction rolls back) and the call is refused (403 `replayed_token`).
    """
    token = intake.single_use_token
    if token is not None and not tokens.claim(
        session, source, token, max_age=settings.webhook_max_age
    ):
        raise mailgun.replayed_token()
    unused: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for reason, detail in intake.unused:
        unused[reason][detail] += 1
    for reason, details in unused.items():
        listed = "; ".join(
            detail if count == 1 else f"{detail} (x{count})"
            for detail, count in details.most_common(MAX_LISTED)
        )
        more = len(details) - MAX_LISTED
        reject(session, source, reason, listed + (f"; and {more} more" if more > 0 else ""))
    if not intake.events:
        return FeedbackReport()
    return record_feedback(session, intake.events, settings=settings)


async def read_ses(request: Request, body: bytes, hub: Hub, state: WebhookState) -> Intake:
    """An SNS call: signature, topic, then the SES events (or the subscription confirmed)."""
    return await ses.receive(body, settings=hub.settings, signer=hub.link_signer, sns=state.sns)


async def read_sendgrid(request: Request, body: bytes, hub: Hub, state: WebhookState) -> Intake:
    """A SendGrid call: ECDSA signature of timestamp + body, then the events."""
    assert state.sendgrid_key is not None
    sendgrid.verify(
        body,
        request.headers.get(sendgrid.SIGNATURE_HEADER),
        request.headers.get(sendgrid.TIMESTAMP_HEADER),
        key=state.sendgrid_key,
        max_age=hub.settings.webhook_max_age,
    )
    return sendgrid.events(body, hub.link_signer)


async def read_postmark(request: Request, body: bytes, hub: Hub, state: WebhookState) -> Intake:
    """A Postmark call: basic auth, then the record."""
    settings = hub.settings
    assert settings.postmark_webhook_username
    assert settings.postmark_webhook_password
    postmark.check_credentials(
        request.headers.get("authorization"),
        settings.postmark_webhook_username,
        settings.postmark_webhook_password.get_secret_value(),
    )
    return postmark.events(body, hub.link_signer)


async def read_mailgun(request: Request, body: bytes, hub: Hub, state: WebhookState) -> Intake:
    """A Mailgun call: HMAC of timestamp + token (fresh; taken once when recorded), then the
    event."""
    settings = hub.settings
    assert settings.mailgun_webhook_signing_key is not None
    document = mailgun.payload(body)
    token = mailgun.verify(
        document,
        signing_key=settings.mailgun_webhook_signing_key.get_secret_value(),
        max_age=settings.webhook_max_age,
    )
    intake = mailgun.events(document, hub.link_signer)
    intake.single_use_token = token
    return intake


async def ses_webhook(request: Request) -> Response:
    """Amazon SES notifications through SNS."""
    enabled = bool(hub_of(request).settings.ses_topic_arns)
    return await serve(request, ses.SOURCE, enabled, read_ses)


async def sendgrid_webhook(request: Request) -> Response:
    """SendGrid's signed Event Webhook."""
    enabled = state_of(request).sendgrid_key is not None
    return await serve(request, sendgrid.SOURCE, enabled, read_sendgrid)


async def postmark_webhook(request: Request) -> Response:
    """Postmark's webhooks, behind basic auth."""
    settings = hub_of(request).settings
    password = settings.postmark_webhook_password
    enabled = bool(settings.postmark_webhook_username and password and password.get_secret_value())
    return await serve(request, postmark.SOURCE, enabled, read_postmark)


async def mailgun_webhook(request: Request) -> Response:
    """Mailgun's signed webhooks."""
    key = hub_of(request).settings.mailgun_webhook_signing_key
    enabled = bool(key and key.get_secret_value())
    return await serve(request, mailgun.SOURCE, enabled, read_mailgun)


def webhook_routes() -> list[Route]:
    """The four provider webhooks."""
    return [
        Route(f"{PATH}/ses", ses_webhook, methods=["POST"]),
        Route(f"{PATH}/sendgrid", sendgrid_webhook, methods=["POST"]),
        Route(f"{PATH}/postmark", postmark_webhook, methods=["POST"]),
        Route(f"{PATH}/mailgun", mailgun_webhook, methods=["POST"]),
    ]
