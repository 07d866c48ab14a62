"""The synchronous Client without a hub: queueing, batching per contact, retries, the 207 read,
the drop policy, flush and close."""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

import httpx
import pytest
from contacthub_client import (
    Accepted,
    Client,
    ClientClosed,
    HubError,
    HubUnreachable,
    QueueFull,
    Refused,
    Result,
)
from contacthub_client._core import backoff
from fakehub import ALICE, BOB, CHANNEL, ENDPOINT, KEY, FakeHub, accept_all, error

WAIT = 10.0  # the longest any result may take here; they come in milliseconds


def client(hub: FakeHub, **options: Any) -> Client:
    options = {
        "flush_interval": 60.0,
        "backoff_base": 0.001,
        "backoff_max": 0.01,
        "flush_at_exit": False,
        **options,
    }
    return Client(ENDPOINT, KEY, CHANNEL, transport=hub.transport, **options)


def test_one_request_per_contact_with_every_activity_kind_in_order(hub: FakeHub) -> None:
    with client(hub) as sdk:
        deliveries = [
            sdk.page_visit(ALICE, "https://example.com/a", title="A", referrer="https://r.test/"),
            sdk.click(BOB, "Buy"),
            sdk.data_input(ALICE, "Signup", {"ContactEmail": "a@example.com"}),
            sdk.custom(ALICE, "loan_calculator", "5000"),
            sdk.custom(BOB, "newsletter"),
        ]
        assert sdk.flush(WAIT)

    assert [request.url.path for request in hub.requests] == ["/Kentico.Tracking/activities"] * 2
    assert hub.requests[0].headers["authorization"] == f"Bearer {KEY}"
    alice, bob = hub.bodies
    assert (alice["channel"], alice["contact"], bob["contact"]) == (CHANNEL, ALICE, BOB)
    without_ids = [
        [{k: v for k, v in a.items() if k != "messageId"} for a in body["activities"]]
        for body in hub.bodies
    ]
    assert without_ids == [
        [
            {"type": "pagevisit", "url": "https://example.com/a", "value": "A",
             "referrer": "https://r.test/"},
            {"type": "datainput", "value": "Signup",
             "contactFields": {"ContactEmail": "a@example.com"}},
            {"type": "loan_calculator", "value": "5000"},
        ],
        [{"type": "click", "value": "Buy"}, {"type": "newsletter"}],
    ]  # fmt: skip
    ids = [a["messageId"] for a in hub.activity_bodies()]
    assert all(re.fullmatch("[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == 5
    assert {d.message_id for d in deliveries} == set(ids)
    assert all(d.result(0) == Accepted(d.message_id) for d in deliveries)


def test_batches_are_cut_at_max_batch(hub: FakeHub) -> None:
    with client(hub, max_batch=2) as sdk:
        for n in range(5):
            sdk.click(ALICE, f"e{n}")
        assert sdk.flush(WAIT)

    assert [len(body["activities"]) for body in hub.bodies] == [2, 2, 1]
    assert [a["value"] for a in hub.activity_bodies()] == [f"e{n}" for n in range(5)]


def test_a_full_batch_is_sent_without_waiting_for_the_interval(hub: FakeHub) -> None:
    with client(hub, max_batch=3, flush_interval=60.0) as sdk:
        deliveries = [sdk.click(ALICE, "x") for _ in range(3)]
        assert all(d.result(WAIT).ok for d in deliveries)
        assert len(hub.requests) == 1


def test_the_queue_is_sent_every_flush_interval(hub: FakeHub) -> None:
    with client(hub, flush_interval=0.05) as sdk:
        assert sdk.click(ALICE, "x").result(WAIT).ok
        assert sdk.click(ALICE, "y").result(WAIT).ok
    assert len(hub.requests) == 2


def test_per_item_results_of_the_207_are_read(hub: FakeHub) -> None:
    other = "5d2c1e3a-0000-4000-8000-000000000001"
    hub.answers.append(
        httpx.Response(
            207,
            json={
                "results": [
                    {"status": 202},
                    {"status": 202, "contact": other},
                    {"status": 202, "truncated": ["value"]},
                    {"status": 400, "error": "No such type.", "code": "unknown_activity_type"},
                ]
            },
        )
    )
    with client(hub) as sdk:
        deliveries = [
            sdk.click(ALICE, "a"),
            sdk.data_input(ALICE, "f", {"ContactEmail": "b@example.com"}),
            sdk.page_visit(ALICE, "https://example.com", title="t" * 300),
            sdk.custom(ALICE, "nope"),
        ]
        sdk.flush(WAIT)
    first, redirected, cut, refused = (d.result(0) for d in deliveries)

    assert first == Accepted(deliveries[0].message_id)
    assert redirected == Accepted(deliveries[1].message_id, contact=other)
    assert cut == Accepted(deliveries[2].message_id, truncated=("value",))
    assert refused == Refused(
        deliveries[3].message_id, 400, "unknown_activity_type", "No such type."
    )
    assert len(hub.requests) == 1  # a refused item is not sent again


def test_a_207_with_the_wrong_number_of_results_refuses_them_all(hub: FakeHub) -> None:
    hub.answers.append(httpx.Response(207, json={"results": [{"status": 202}]}))
    with client(hub) as sdk:
        deliveries = [sdk.click(ALICE, "a"), sdk.click(ALICE, "b")]
        sdk.flush(WAIT)
    assert [d.result(0).ok for d in deliveries] == [False, False]
    assert {d.result(0).code for d in deliveries if isinstance(d.result(0), Refused)} == {
        "invalid_answer"
    }


@pytest.mark.parametrize(
    "failure",
    [
        error(503, "overloaded"),
        error(503, "shutting_down"),
        error(503, "unavailable"),
        error(500, "internal"),
        error(502, "bad_gateway"),
        error(429, "too_many_requests"),
        error(409, "idempotency_key_in_use"),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("cut off"),
    ],
)
def test_retryable_failures_are_retried_with_the_same_message_ids(
    hub: FakeHub, failure: httpx.Response | Exception
) -> None:
    hub.answers.extend([failure, failure])
    with client(hub) as sdk:
        delivery = sdk.click(ALICE, "a")
        sdk.flush(WAIT)

    assert delivery.result(0) == Accepted(delivery.message_id)
    assert len(hub.bodies) == 3
    assert hub.bodies[0] == hub.bodies[1] == hub.bodies[2]


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, "invalid_api_key"),
        (403, "consent_required"),
        (403, "channel_mismatch"),
        (404, "unknown_contact"),
        (400, "invalid_contact"),
    ],
)
def test_whole_request_errors_refuse_every_activity_without_retry(
    hub: FakeHub, status: int, code: str
) -> None:
    hub.answers.append(error(status, code))
    with client(hub) as sdk:
        deliveries = [sdk.click(ALICE, "a"), sdk.click(ALICE, "b")]
        sdk.flush(WAIT)

    assert len(hub.requests) == 1
    assert [d.result(0) for d in deliveries] == [
        Refused(d.message_id, status, code, f"{code} happened") for d in deliveries
    ]


def test_a_non_json_error_gets_a_readable_code(hub: FakeHub) -> None:
    hub.answers.append(httpx.Response(404, text="nothing here"))
    with client(hub) as sdk:
        delivery = sdk.click(ALICE, "a")
        sdk.flush(WAIT)
    assert delivery.result(0) == Refused(delivery.message_id, 404, "http_404", "nothing here")


def test_retries_stop_after_retry_for(hub: FakeHub) -> None:
    hub.script = lambda request, body: error(503, "unavailable")
    with client(hub, retry_for=0.05) as sdk:
        delivery = sdk.click(ALICE, "a")
        sdk.flush(WAIT)
        result = delivery.result(0)

    assert isinstance(result, Refused)
    assert (result.status, result.code) == (0, "retries_exhausted")
    assert "503 unavailable" in result.error  # why the last attempt failed


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 5.0)]:
        delays = {backoff(attempt, 0.5, 5.0) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered


def test_a_full_queue_blocks_then_refuses_the_call(hub: FakeHub) -> None:
    hub.gate.clear()  # the hub hangs: nothing settles
    sdk = client(hub, max_queue=2, block_timeout=0.05, max_batch=1)
    first, second = sdk.click(ALICE, "a"), sdk.click(ALICE, "b")
    with pytest.raises(QueueFull):
        sdk.click(ALICE, "c")

    hub.gate.set()
    assert first.result(WAIT).ok
    assert second.result(WAIT).ok
    assert sdk.click(ALICE, "d").result(WAIT).ok  # room again
    assert sdk.close() == []


def test_a_full_queue_takes_the_call_once_room_frees_up(hub: FakeHub) -> None:
    hub.gate.clear()
    sdk = client(hub, max_queue=1, block_timeout=WAIT, max_batch=1)
    sdk.click(ALICE, "a")
    threading.Timer(0.05, hub.gate.set).start()
    assert sdk.click(ALICE, "b").result(WAIT).ok
    sdk.close()


def test_flush_waits_for_every_result(hub: FakeHub) -> None:
    hub.answers.extend([error(503, "overloaded")] * 3)
    with client(hub) as sdk:
        deliveries = [sdk.click(ALICE, "a"), sdk.click(BOB, "b")]
        assert sdk.flush(WAIT)
        assert all(d.done() for d in deliveries)


def test_flush_answers_false_on_timeout(hub: FakeHub) -> None:
    hub.gate.clear()
    sdk = client(hub)
    delivery = sdk.click(ALICE, "a")
    assert not sdk.flush(0.05)
    with pytest.raises(TimeoutError):
        delivery.result(0.01)
    hub.gate.set()
    assert sdk.flush(WAIT)
    sdk.close()


def test_close_sends_what_is_queued(hub: FakeHub) -> None:
    sdk = client(hub, flush_interval=60.0)
    deliveries = [sdk.click(ALICE, "a"), sdk.click(BOB, "b")]
    assert sdk.close() == []
    assert all(d.result(0).ok for d in deliveries)
    assert len(hub.requests) == 2


def test_close_reports_what_it_could_not_send(
    hub: FakeHub, caplog: pytest.LogCaptureFixture
) -> None:
    hub.script = lambda request, body: httpx.ConnectError("the hub is down")
    sdk = client(hub, backoff_base=0.01, backoff_max=0.02, shutdown_timeout=0.2)
    deliveries = [sdk.click(ALICE, "a"), sdk.click(BOB, "b")]

    with caplog.at_level(logging.ERROR, logger="contacthub_client"):
        unsent = sdk.close()

    assert sorted(r.message_id for r in unsent) == sorted(d.message_id for d in deliveries)
    assert all(r.status == 0 and r.code == "not_sent" for r in unsent)
    assert [d.result(0) for d in deliveries] == sorted(
        unsent, key=lambda r: [d.message_id for d in deliveries].index(r.message_id)
    )
    assert "2 activities could not be sent" in caplog.text


def test_close_does_not_wait_for_a_hanging_hub_beyond_its_timeout(hub: FakeHub) -> None:
    hub.gate.clear()
    sdk = client(hub, shutdown_timeout=0.1, timeout=0.1)
    delivery = sdk.click(ALICE, "a")
    unsent = sdk.close()
    hub.gate.set()
    assert [r.message_id for r in unsent] == [delivery.message_id]


def test_a_closed_client_takes_nothing(hub: FakeHub) -> None:
    sdk = client(hub)
    sdk.close()
    with pytest.raises(ClientClosed):
        sdk.click(ALICE, "a")
    assert sdk.close() == []  # closing twice is harmless


def test_on_result_is_called_once_per_activity(hub: FakeHub) -> None:
    seen: list[Result] = []
    hub.answers.append(error(503, "overloaded"))
    with client(hub, on_result=seen.append) as sdk:
        deliveries = [sdk.click(ALICE, "a"), sdk.click(BOB, "b")]
        sdk.flush(WAIT)
    assert sorted(r.message_id for r in seen) == sorted(d.message_id for d in deliveries)


def test_a_failing_on_result_callback_is_logged_not_raised(
    hub: FakeHub, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(result: Result) -> None:
        raise RuntimeError("boom")

    with client(hub, on_result=explode) as sdk:
        delivery = sdk.click(ALICE, "a")
        sdk.flush(WAIT)
    assert delivery.result(0).ok
    assert "on_result callback failed" in caplog.text


def test_bad_options_and_arguments_are_refused_at_once(hub: FakeHub) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        client(hub, max_batch=1001)
    with pytest.raises(ValueError, match="max_batch"):
        client(hub, max_batch=0)
    with pytest.raises(ValueError, match="badly formed"):
        Client(ENDPOINT, KEY, "not-a-guid", flush_at_exit=False)
    with client(hub) as sdk, pytest.raises(ValueError, match="badly formed"):
        sdk.click("not-a-guid", "a")


# -- direct calls --------------------------------------------------------------------------------


def direct(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
    """The hub's answers to the direct calls."""
    path = request.url.raw_path.decode().split("?")[0].removeprefix("/Kentico.Tracking")
    if path == "/contacts":
        return httpx.Response(200, json={"contact": ALICE})
    if path.startswith("/consents/"):
        if path != "/consents/Tracking%20Consent":
            return error(404, "unknown_consent")
        return httpx.Response(200, json={"shortText": "<p>s</p>", "fullText": "<p>f</p>"})
    agreed = body.get("agree", True)
    return httpx.Response(200, json={"agreed": agreed, "isAgreed": agreed})


def test_direct_calls(hub: FakeHub) -> None:
    hub.script = direct
    with client(hub) as sdk:
        assert sdk.create_contact() == ALICE
        texts = sdk.consent_texts("Tracking Consent", "cs")
        assert (texts.short_text, texts.full_text) == ("<p>s</p>", "<p>f</p>")
        assert sdk.agree(ALICE, "Tracking Consent") is True
        assert sdk.revoke(ALICE, "Tracking Consent") is False
        assert sdk.is_agreed(ALICE, "Tracking Consent") is True
        with pytest.raises(HubError) as refused:
            sdk.consent_texts("Nope")

    assert refused.value.status == 404
    assert refused.value.code == "unknown_consent"
    sent = [(r.method, r.url.raw_path.split(b"?")[0].decode(), r.url.query) for r in hub.requests]
    assert sent == [
        ("POST", "/Kentico.Tracking/contacts", b""),
        ("GET", "/Kentico.Tracking/consents/Tracking%20Consent", b"languageName=cs"),
        ("POST", f"/Kentico.Tracking/contacts/{ALICE}/consents/Tracking%20Consent", b""),
        ("POST", f"/Kentico.Tracking/contacts/{ALICE}/consents/Tracking%20Consent", b""),
        ("GET", f"/Kentico.Tracking/contacts/{ALICE}/consents/Tracking%20Consent", b""),
        ("GET", "/Kentico.Tracking/consents/Nope", b""),
    ]
    assert hub.bodies[2:4] == [{"agree": True}, {"agree": False}]


def test_direct_calls_retry_with_one_idempotency_key(hub: FakeHub) -> None:
    hub.script = direct
    hub.answers.extend([httpx.ConnectError("down"), error(503, "shutting_down")])
    with client(hub) as sdk:
        assert sdk.create_contact() == ALICE
    keys = {request.headers["idempotency-key"] for request in hub.requests}
    assert len(hub.requests) == 3
    assert len(keys) == 1


def test_direct_calls_give_up_after_retry_for(hub: FakeHub) -> None:
    hub.script = lambda request, body: error(503, "unavailable")
    with client(hub, retry_for=0.05) as sdk, pytest.raises(HubUnreachable, match="503"):
        sdk.create_contact()


def test_an_over_long_value_is_cut_as_the_hub_cuts_it(hub: FakeHub) -> None:
    with client(hub) as sdk:
        delivery = sdk.page_visit(ALICE, "https://example.com/", title="é" * 300)
        sdk.flush(WAIT)
    assert hub.activity_bodies()[0]["value"] == "é" * 250
    assert delivery.result(0) == Accepted(delivery.message_id, truncated=("value",))


def test_a_request_the_hub_finds_too_large_is_split_until_it_fits(hub: FakeHub) -> None:
    def limited(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        if len(body["activities"]) > 3:  # e.g. the hub's max_activities_per_request is 3
            return error(413, "too_many_activities")
        return accept_all(request, body)

    hub.script = limited
    with client(hub, max_batch=10) as sdk:
        deliveries = [sdk.click(ALICE, f"e{n}") for n in range(10)]
        sdk.flush(WAIT)

    assert all(d.result(0).ok for d in deliveries)
    sent = [[a["value"] for a in b["activities"]] for b in hub.bodies if len(b["activities"]) <= 3]
    assert [v for values in sent for v in values] == [f"e{n}" for n in range(10)]


def test_a_single_activity_too_large_is_refused(hub: FakeHub) -> None:
    hub.script = lambda request, body: error(413, "body_too_large")
    with client(hub) as sdk:
        delivery = sdk.data_input(ALICE, "f", {"ContactNotes": "n" * 10_000})
        sdk.flush(WAIT)
    assert delivery.result(0) == Refused(
        delivery.message_id, 413, "body_too_large", "body_too_large happened"
    )


def test_an_unexpected_error_settles_the_batch_and_the_thread_goes_on(
    hub: FakeHub, caplog: pytest.LogCaptureFixture
) -> None:
    hub.answers.append(RuntimeError("a bug below the client"))
    with client(hub) as sdk:
        first = sdk.click(ALICE, "a")
        sdk.flush(WAIT)
        second = sdk.click(ALICE, "b")
        sdk.flush(WAIT)
    result = first.result(0)
    assert isinstance(result, Refused)
    assert (result.status, result.code) == (0, "send_failed")
    assert second.result(0).ok
    assert "sending failed" in caplog.text
