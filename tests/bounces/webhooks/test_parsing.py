"""The providers' readers without a store: whatever a verified call holds, they answer events,
not-used events or a `malformed` refusal, never a crash (a 500 makes providers retry forever)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contacthub.bounces.webhooks import mailgun, postmark, sendgrid, ses
from contacthub.bounces.webhooks.common import (
    Intake,
    check_timestamp,
    event_key,
    iso_time,
    unix_time,
)
from contacthub.errors import Forbidden, HubError, Unauthorized
from tests.bounces.support import SIGNER

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["bounce", "failed", "Bounce", "permanent", "HardBounce", "Delivery", "1"])
)
KEYS = st.sampled_from(
    [
        "event",
        "email",
        "sg_event_id",
        "type",
        "reason",
        "timestamp",
        "RecordType",
        "Type",
        "ID",
        "MessageID",
        "Email",
        "Metadata",
        "id",
        "severity",
        "recipient",
        "user-variables",
        "delivery-status",
        "notificationType",
        "bounce",
        "bouncedRecipients",
        "mail",
        "tags",
        "headers",
        "contacthub_delivery",
    ]
) | st.text(max_size=10)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=6),
    max_leaves=25,
)
# A provider's event: known and unknown keys, scalar values or one level of nesting.
EVENT = st.dictionaries(KEYS, SCALARS | st.dictionaries(KEYS, SCALARS, max_size=3), max_size=8)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(read: Callable[[], Intake]) -> Intake | str:
    """What a reader made of a call: its intake, or the code of its refusal."""
    try:
        return read()
    except HubError as error:
        return error.code


def read_all(document: Any) -> None:
    body = json.dumps(document).encode()
    for read in (
        lambda: sendgrid.events(body, SIGNER),
        lambda: postmark.events(body, SIGNER),
        lambda: mailgun.events(mailgun.payload(body), SIGNER),
        lambda: ses.notification("message-id", json.dumps(document), SIGNER),
    ):
        result = outcome(read)
        if isinstance(result, str):
            assert result == "malformed"
            continue
        for event in result.events:
            assert event.event_id
            assert event.kind in ("hard_bounce", "soft_bounce", "complaint", "delivered")


@FUZZ
@given(JSON)
def test_any_json_is_read_or_refused_as_malformed(document: Any) -> None:
    read_all(document)


@FUZZ
@given(st.lists(EVENT, max_size=4))
def test_any_sendgrid_batch_is_read(batch: list[dict[str, Any]]) -> None:
    read_all(batch)


@FUZZ
@given(EVENT)
def test_any_mailgun_event_data_is_read(data: dict[str, Any]) -> None:
    read_all({"event-data": data})


@pytest.mark.parametrize("value", ["", " ", None])
def test_a_missing_timestamp_is_a_missing_signature(value: str | None) -> None:
    with pytest.raises(Unauthorized):
        check_timestamp(value, 300, now=1_000)


@pytest.mark.parametrize("value", ["١٠٠٠", "1e3", "-1000", "1000.5", "0x3e8", " 1000"])
def test_only_ascii_seconds_are_a_timestamp(value: str) -> None:
    with pytest.raises(Forbidden) as refused:
        check_timestamp(value, 300, now=1_000)
    assert refused.value.code == "bad_signature"


def test_timestamps_within_the_window_either_way_are_taken() -> None:
    assert check_timestamp("1000", 300, now=1_300) == 1000
    assert check_timestamp("1300", 300, now=1_000) == 1300
    for stale in ("699", "1301"):
        with pytest.raises(Forbidden) as refused:
            check_timestamp(stale, 300, now=1_000)
        assert refused.value.code == "stale_timestamp"


def test_event_keys_stay_within_200_characters_and_apart() -> None:
    assert event_key("msg", "anna@example.com") == "msg:anna@example.com"
    long_a = event_key("m" * 150, "a" * 100 + "@example.com")
    long_b = event_key("m" * 150, "b" * 100 + "@example.com")
    assert len(long_a) <= 200
    assert long_a != long_b


def test_times_are_read_in_utc_or_not_at_all() -> None:
    assert iso_time("2019-11-05T16:33:54.9070259Z").isoformat() == (  # type: ignore[union-attr]
        "2019-11-05T16:33:54.907025+00:00"
    )
    assert iso_time("yesterday") is None
    assert unix_time(1796000000.5).timestamp() == 1796000000.5  # type: ignore[union-attr]
    assert unix_time(True) is None
    assert unix_time(10**30) is None
