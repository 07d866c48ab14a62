"""Requests refused as a whole: the right 4xx, a JSON error, and nothing stored.

The agree endpoint's own bad bodies are in test_consent_agreements.py; bad single activities,
which fail alone inside a 207, in test_activity_rules.py and test_contact_fields.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from starlette.testclient import TestClient

from contacthub.storage.database import Database
from contacthub.storage.models import Activity
from tests.factories import TrackingSetup
from tests.tracking.support import API, MakeClient, assert_error, contact_row, count

DATA_INPUT = {"type": "datainput", "value": "Form", "contactFields": {"ContactFirstName": "Luke"}}


def good_body(setup: TrackingSetup, contact_guid: str, **changes: Any) -> dict[str, Any]:
    body = {
        "channel": setup.channel_guid,
        "contact": contact_guid,
        "activities": [{"type": "click", "value": "x"}, DATA_INPUT],
    }
    body.update(changes)
    return body


def post_raw(
    client: TestClient, setup: TrackingSetup, content: bytes | Iterator[bytes], **headers: str
) -> Any:
    all_headers = {**setup.headers, "Content-Type": "application/json", **headers}
    return client.post(f"{API}/activities", headers=all_headers, content=content)


def assert_nothing_stored(database: Database, contact: str) -> None:
    assert count(database, Activity) == 0
    assert contact_row(database, contact).first_name is None


def test_malformed_json(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    valid = msgspec.json.encode(good_body(setup, contact))
    bodies = [
        valid[:-1],  # truncated
        valid + b"}",  # trailing garbage
        b"{",
        b"not json",
        b"{'channel': 'x'}",
        valid.replace(b"]", b",]"),  # trailing comma
        b"\xff\xfe" + valid,  # not UTF-8
        valid.replace(b'"x"', b'"\xc3"'),  # invalid UTF-8 inside a string
        valid.replace(b'"x"', b'"\\ud800"'),  # lone surrogate escape
        valid.replace(b'"x"', b"1e400"),  # number out of range
        valid.replace(b"]", b"]]"),
    ]
    for body in bodies:
        error = assert_error(post_raw(client, setup, body), 400, "malformed_json")
        assert "JSON" in error or "UTF-8" in error, body
    assert_nothing_stored(database, contact)


def test_deeply_nested_json_is_400_not_500(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    # msgspec raises RecursionError on deep nesting; it once escaped as a 500.
    deep = b"[" * 5000 + b"]" * 5000
    valid = msgspec.json.encode(good_body(setup, contact))
    for body in (
        deep,
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        valid.replace(b'"Luke"', deep),  # inside contactFields of an otherwise good body
        valid.replace(b'"x"', deep),
    ):
        assert_error(post_raw(client, setup, body), 400, "malformed_json")
    assert_nothing_stored(database, contact)


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
        "json",
    ],
)
def test_wrong_content_type_is_415(
    client: TestClient,
    database: Database,
    setup: TrackingSetup,
    contact: str,
    content_type: str | None,
) -> None:
    headers = dict(setup.headers)
    if content_type is not None:
        headers["Content-Type"] = content_type

    answer = client.post(
        f"{API}/activities",
        headers=headers,
        content=msgspec.json.encode(good_body(setup, contact)),
    )

    error = assert_error(answer, 415, "unsupported_media_type")
    assert "application/json" in error
    assert_nothing_stored(database, contact)


def test_json_content_types_with_parameters_or_suffixes_are_accepted(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    body = msgspec.json.encode(good_body(setup, contact))
    for content_type in (
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/json;charset=UTF-8",
        "application/vnd.api+json",
    ):
        answer = post_raw(client, setup, body, **{"Content-Type": content_type})
        assert answer.status_code == 207, (content_type, answer.text)
    assert count(database, Activity) == 8


def test_body_over_max_body_bytes_is_413(
    make_client: MakeClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    client = make_client(max_body_bytes=2048)
    body = good_body(setup, contact)
    body["activities"] = [*body["activities"], {"type": "click", "value": "p" * 200}]
    while len(msgspec.json.encode(body)) <= 2048:
        body["activities"].append({"type": "click", "value": "p" * 200})
    content = msgspec.json.encode(body)

    declared = post_raw(client, setup, content)
    streamed = post_raw(client, setup, iter([content[:1000], content[1000:]]))

    for answer in (declared, streamed):
        error = assert_error(answer, 413, "body_too_large")
        assert "2048" in error
    assert_nothing_stored(database, contact)


def test_body_of_exactly_max_body_bytes_is_accepted(
    make_client: MakeClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    client = make_client(max_body_bytes=2048)
    body = good_body(setup, contact)
    content = msgspec.json.encode(body)
    content = content[:-1] + b" " * (2048 - len(content)) + b"}"  # pad with whitespace
    assert len(content) == 2048

    assert post_raw(client, setup, content).status_code == 207
    assert post_raw(client, setup, iter([content])).status_code == 207


def test_too_many_activities_is_413(
    make_client: MakeClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    client = make_client(max_activities_per_request=3)
    activities = [DATA_INPUT, *[{"type": "click", "value": str(n)} for n in range(3)]]

    answer = client.post(
        f"{API}/activities",
        headers=setup.headers,
        json=good_body(setup, contact, activities=activities),
    )

    error = assert_error(answer, 413, "too_many_activities")
    assert "3" in error
    assert_nothing_stored(database, contact)


@pytest.mark.parametrize("field", ["channel", "contact"])
def test_invalid_guids_are_400(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str, field: str
) -> None:
    for value in (
        "not-a-guid",
        "",
        "06b035b8-6658-4a1b-b1de-5994e4975fbz",
        "06b035b8-6658-4a1b-b1de",
        "06b035b8665",
        12345,
        None,
        ["06b035b8-6658-4a1b-b1de-5994e4975fb1"],
        {"guid": "06b035b8-6658-4a1b-b1de-5994e4975fb1"},
        "urn:uuid:06b035b8-6658-4a1b-b1de-5994e4975fb1",
    ):
        body = good_body(setup, contact, **{field: value})
        answer = client.post(f"{API}/activities", headers=setup.headers, json=body)
        error = assert_error(answer, 400, f"invalid_{field}")
        assert "GUID" in error, value
    missing = good_body(setup, contact)
    del missing[field]
    answer = client.post(f"{API}/activities", headers=setup.headers, json=missing)
    assert_error(answer, 400, f"invalid_{field}")
    assert_nothing_stored(database, contact)


def test_unknown_contact_is_404(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    unknown = str(uuid.uuid4())

    answer = client.post(f"{API}/activities", headers=setup.headers, json=good_body(setup, unknown))

    error = assert_error(answer, 404, "unknown_contact")
    assert unknown in error
    assert_nothing_stored(database, contact)


def test_non_object_bodies_are_400(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    for body in (b"[]", b'[{"channel": "x"}]', b'"text"', b"1", b"null", b"true"):
        error = assert_error(post_raw(client, setup, body), 400, "invalid_body")
        assert "object" in error
    assert_nothing_stored(database, contact)


def test_empty_body_is_400(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    for body in (b"", b"  \n\t ", iter([b""])):
        assert_error(post_raw(client, setup, body), 400, "empty_body")
    assert_nothing_stored(database, contact)


def test_activities_must_be_a_non_empty_array(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    for value, code in (
        ([], "no_activities"),
        (None, "invalid_activities"),
        ({"type": "click", "value": "x"}, "invalid_activities"),
        ("click", "invalid_activities"),
        (3, "invalid_activities"),
    ):
        body = good_body(setup, contact, activities=value)
        answer = client.post(f"{API}/activities", headers=setup.headers, json=body)
        assert_error(answer, 400, code)
    body = good_body(setup, contact)
    del body["activities"]
    answer = client.post(f"{API}/activities", headers=setup.headers, json=body)
    assert_error(answer, 400, "invalid_activities")
    assert_nothing_stored(database, contact)


def test_duplicate_property_spellings_are_400(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    body = good_body(setup, contact)
    for duplicate in (
        {"Channel": setup.channel_guid},
        {"CONTACT": contact},
        {"Activities": body["activities"]},
    ):
        answer = client.post(f"{API}/activities", headers=setup.headers, json={**body, **duplicate})
        error = assert_error(answer, 400, "duplicate_property")
        assert "twice" in error
    assert_nothing_stored(database, contact)


def test_unknown_properties_are_ignored(
    client: TestClient, database: Database, setup: TrackingSetup, contact: str
) -> None:
    # Newer clients may send more than the seed documents; the documented fields still count.
    body = good_body(setup, contact, sessionId="abc", source={"app": "ios"})
    body["activities"] = [{"type": "click", "value": "x", "timestamp": "2024-01-01"}]

    answer = client.post(f"{API}/activities", headers=setup.headers, json=body)

    assert answer.status_code == 207
    assert answer.json() == {"results": [{"status": 202}]}
    assert count(database, Activity) == 1


def test_unknown_routes_and_methods_answer_json(client: TestClient, setup: TrackingSetup) -> None:
    for path in ("/activity", "/contacts/x/y", "/consents", "/"):
        assert_error(client.get(f"{API}{path}", headers=setup.headers), 404, "not_found")
    for method, path in (
        ("GET", "/activities"),
        ("PUT", "/activities"),
        ("DELETE", "/contacts/06b035b8-6658-4a1b-b1de-5994e4975fb1/consents/TrackingConsent"),
        ("POST", "/consents/TrackingConsent"),
    ):
        answer = client.request(method, f"{API}{path}", headers=setup.headers)
        assert_error(answer, 405, "method_not_allowed")
