"""Property tests: no input makes the tracking API answer 5xx, and every 4xx is a JSON error.

Hypothesis throws arbitrary bytes, arbitrary JSON, arbitrary activity objects, path segments,
Authorization and Content-Type headers and query strings at the whole hub served in-process
(lifespan and group-commit writer running, on SQLite and PostgreSQL). A 5xx — or an exception,
which the test client re-raises — fails the test and Hypothesis shrinks it to the smallest input.

`FUZZ_EXAMPLES=2000 pytest tests/tracking/test_fuzz.py` searches longer than the default.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx2
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from starlette.testclient import TestClient

from contacthub.activities.rules import MAX_VALUE_LENGTH
from contacthub.contacts.fields import CONTACT_FIELDS
from contacthub.storage.database import Database
from tests import factories

API = "/Kentico.Tracking"
CONSENT = "TrackingConsent"
CUSTOM_TYPE = "custom_fuzz"
DISABLED_TYPE = "custom_fuzz_off"
JSON = {"Content-Type": "application/json"}

fuzz = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "100")),
    deadline=None,
    # The hub and its database are built once per test function, not per example, on purpose:
    # what one example stores does not change what the next may answer.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class Hub:
    """The in-process hub with a channel, a key, a contact, a consent and custom types."""

    client: TestClient
    database: Database
    setup: factories.TrackingSetup
    contact: str

    @property
    def headers(self) -> dict[str, str]:
        return self.setup.headers

    def activity_count(self) -> int:
        with self.database.read() as session:
            count: int = session.execute(text("SELECT count(*) FROM activities")).scalar_one()
            return count


@pytest.fixture
def hub(client: TestClient, database: Database) -> Hub:
    setup = factories.tracking_channel(database)
    factories.consent(database, CONSENT)
    factories.activity_type(database, CUSTOM_TYPE, "Fuzzed")
    factories.activity_type(database, DISABLED_TYPE, "Fuzzed off", enabled=False)
    return Hub(client, database, setup, factories.contact(database))


def assert_answer_is_sound(response: httpx2.Response, method: str = "GET") -> None:
    """No 5xx; a 4xx carries a JSON object with a string `error` and a string `code`."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400 and method != "HEAD":  # HEAD answers carry no body
        assert response.headers["content-type"].startswith("application/json"), response.headers
        assert_error_body(response.json())


def assert_error_body(body: object) -> None:
    """A JSON error: a non-empty string `error` and a non-empty string `code`."""
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str), body
    assert isinstance(body.get("code"), str), body
    assert body["error"], body
    assert body["code"], body


# --- strategies ----------------------------------------------------------------------------

# Text of every kind: NUL, control characters, combining marks, astral planes, long strings.
plain_text = st.text(max_size=40)
texts = st.one_of(
    plain_text,
    st.text(max_size=3000),
    st.sampled_from(["", " ", "\x00", "é" * 251, "🙂" * 300, "\u202e\ufeff\U0010ffff"]),
)
# The same and lone surrogates, which JSON can carry as \ud800 escapes although UTF-8 cannot.
surrogate_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)


def json_values_of(strings: st.SearchStrategy[str]) -> st.SearchStrategy[object]:
    """JSON values of every type, nested, with these strings as keys and values."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=2**63, max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        strings,
    )
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=6) | st.dictionaries(strings, children, max_size=6)
        ),
        max_leaves=25,
    )


json_values = json_values_of(texts)
any_json_values = json_values_of(st.one_of(texts, surrogate_text))


@st.composite
def random_case(draw: st.DrawFn, name: str) -> str:
    """The name with each letter upper- or lower-cased at random."""
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.upper() if up else c.lower() for c, up in zip(name, flips, strict=True))


def json_body(value: object) -> st.SearchStrategy[bytes]:
    """The value as JSON bytes, ASCII-escaped or raw UTF-8 (lone surrogates kept as they are)."""
    return st.booleans().map(
        lambda ascii_only: json.dumps(value, ensure_ascii=ascii_only).encode(
            "utf-8", "surrogatepass"
        )
    )


def nested(depth: int, leaf: str = "1") -> bytes:
    """JSON arrays nested `depth` deep."""
    return b"[" * depth + leaf.encode() + b"]" * depth


guid_spellings = st.uuids().flatmap(
    lambda guid: st.sampled_from(
        [str(guid), str(guid).upper(), guid.hex, "{" + str(guid) + "}", f"urn:uuid:{guid}"]
    )
)

activity_types = st.one_of(
    st.sampled_from(
        ["pagevisit", "click", "datainput", CUSTOM_TYPE, DISABLED_TYPE, "emailopen"]
    ).flatmap(random_case),
    plain_text,
    json_values,
)

contact_field_values = st.one_of(
    texts,
    json_values,
    st.emails().map(str),
    st.dates().map(str),
    st.sampled_from(["USA", "cze", "XXX", "CA", "ny", "ZZ", "1990-05-31", "1990-02-30"]),
    st.text(max_size=300),
)


@st.composite
def contact_fields(draw: st.DrawFn) -> object:
    """A contactFields value: mostly an object of known fields in random case, or anything."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    names = [field.wire_name for field in CONTACT_FIELDS]
    chosen = draw(st.lists(st.sampled_from(names), max_size=6))
    fields = {draw(random_case(name)): draw(contact_field_values) for name in chosen}
    fields.update(draw(st.dictionaries(plain_text, json_values, max_size=2)))
    return fields


@st.composite
def activity_objects(draw: st.DrawFn) -> object:
    """An activity: known properties in random case with values of every JSON type, or junk."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    activity: dict[str, object] = {}
    if draw(st.integers(0, 9)) > 0:
        activity[draw(random_case("type"))] = draw(activity_types)
    for name, strategy in (
        ("value", st.one_of(texts, json_values, st.text(min_size=240, max_size=260))),
        ("url", st.one_of(texts, json_values, st.just("https://example.com/page"))),
        ("referrer", st.one_of(texts, json_values)),
        ("contactFields", contact_fields()),
        ("title", texts),
    ):
        if draw(st.booleans()):
            activity[draw(random_case(name))] = draw(strategy)
    activity.update(draw(st.dictionaries(plain_text, json_values, max_size=2)))
    return activity


# Path segments of every kind: GUIDs in all spellings, code names, unicode, NUL, very long,
# dot segments and encoded slashes.
segments = st.one_of(
    guid_spellings,
    st.sampled_from([CONSENT, CONSENT.lower(), ".", "..", "%2F", "a/b", "contacts", "\x00"]),
    plain_text.filter(bool),
    st.text(min_size=90, max_size=5000),
)


def path_of(template: str, **values: str) -> str:
    return template.format(**{name: quote(value, safe="") for name, value in values.items()})


# --- bodies --------------------------------------------------------------------------------


@fuzz
@given(body=st.binary(max_size=2000))
@example(body=nested(100_000))
@example(body=b'{"channel": ' + nested(10_000) + b"}")
@example(body=b'{"activities": [' + nested(10_000, "{}") + b"]}")
@example(body=b"\xff\xfe{}")
@example(body=b'"\\ud800"')
def test_activities_any_bytes(hub: Hub, body: bytes) -> None:
    response = hub.client.post(
        f"{API}/activities",
        content=body,
        headers=hub.headers | JSON,
    )
    assert_answer_is_sound(response)
    assert 400 <= response.status_code < 500


@fuzz
@given(data=st.data(), value=any_json_values)
def test_activities_any_json(hub: Hub, data: st.DataObject, value: object) -> None:
    response = hub.client.post(
        f"{API}/activities",
        content=data.draw(json_body(value)),
        headers=hub.headers | JSON,
    )
    assert_answer_is_sound(response)
    assert 400 <= response.status_code < 500


@fuzz
@given(data=st.data())
def test_activities_envelope_with_any_values(hub: Hub, data: st.DataObject) -> None:
    """channel, contact and activities present in random case, each right or anything."""
    right = {
        "channel": hub.setup.channel_guid,
        "contact": hub.contact,
        "activities": [{"type": "click", "value": "ok"}],
    }
    body = {}
    for name, good in right.items():
        key = data.draw(random_case(name))
        body[key] = good if data.draw(st.booleans()) else data.draw(any_json_values)
    body.update(data.draw(st.dictionaries(surrogate_text, any_json_values, max_size=3)))
    response = hub.client.post(
        f"{API}/activities", content=data.draw(json_body(body)), headers=hub.headers | JSON
    )
    assert_answer_is_sound(response)
    assert response.status_code == 207 or 400 <= response.status_code < 500


@fuzz
@given(activities=st.lists(activity_objects(), min_size=1, max_size=12), ascii_only=st.booleans())
@example(activities=[{"type": "click", "value": "\x00"}], ascii_only=False)
@example(activities=[{"TYPE": "pagevisit", "Url": "https://e.com/\x00"}], ascii_only=True)
@example(
    activities=[{"type": "datainput", "value": "v", "contactFields": {"contactNotes": "\x00"}}],
    ascii_only=True,
)
@example(activities=[{"type": "click", "value": "v", "Type": "click"}], ascii_only=True)
@example(activities=[{"type": "click", "value": "é" * MAX_VALUE_LENGTH}], ascii_only=False)
@example(activities=[{"type": "\x00"}, {"type": CUSTOM_TYPE + "\x00"}], ascii_only=True)
@example(
    activities=[{"type": "click", "value": "v", "x": json.loads(nested(100))}], ascii_only=True
)
def test_any_activity_fails_alone(hub: Hub, activities: list[object], ascii_only: bool) -> None:
    """Inside a valid request, any activity gets 202 or a 4xx of its own, in order."""
    body = {"channel": hub.setup.channel_guid, "contact": hub.contact, "activities": activities}
    content = json.dumps(body, ensure_ascii=ascii_only).encode()
    before = hub.activity_count()
    response = hub.client.post(f"{API}/activities", content=content, headers=hub.headers | JSON)
    assert_answer_is_sound(response)
    assert response.status_code == 207, response.text[:500]
    results = response.json()["results"]
    assert len(results) == len(activities)
    for result in results:
        assert result["status"] == 202 or 400 <= result["status"] < 500, result
        if result["status"] != 202:
            assert_error_body(result)
    # Every 202 is stored, nothing else is.
    accepted = sum(result["status"] == 202 for result in results)
    assert hub.activity_count() == before + accepted


# Values aimed at the parsers behind the fields: email (IDNA, quoting, lengths), dates, codes.
tricky_field_values = st.one_of(
    st.emails().map(str),
    st.builds(
        lambda local, domain: f"{local}@{domain}",
        st.text(max_size=70),
        st.one_of(st.text(max_size=80), st.sampled_from(["xn--", "xn--zz.com", "-a.com", "a..b"])),
    ),
    st.datetimes().map(lambda moment: moment.isoformat()),
    st.text(alphabet="0123456789-:T+Z. ", max_size=40),
    st.text(st.characters(categories=["Lu", "Ll", "Nd"]), min_size=1, max_size=4),
    texts,
)


@fuzz
@given(
    fields=st.dictionaries(
        st.sampled_from([field.wire_name for field in CONTACT_FIELDS]).flatmap(random_case),
        tricky_field_values,
        min_size=1,
        max_size=4,
    )
)
@example(fields={"ContactEmail": "a@xn--"})
@example(fields={"ContactBirthday": "9999-12-31T23:59:59+23:59"})
@example(fields={"contactemail": "x@example.com", "CONTACTEMAIL": "y@example.com"})
def test_any_contact_field_value(hub: Hub, fields: dict[str, str]) -> None:
    """A data input with any field values is stored (202) or refused alone (400)."""
    body = {
        "channel": hub.setup.channel_guid,
        "contact": hub.contact,
        "activities": [{"type": "datainput", "value": "Form", "contactFields": fields}],
    }
    response = hub.client.post(f"{API}/activities", json=body, headers=hub.headers)
    assert_answer_is_sound(response)
    assert response.status_code == 207, response.text[:500]
    [result] = response.json()["results"]
    assert result["status"] in (202, 400), result


@fuzz
@given(body=st.one_of(st.binary(max_size=500), any_json_values.flatmap(json_body)))
@example(body=b'{"agree": "\\u0000"}')
@example(body=b'{"Agree": true, "AGREE": false}')
@example(body=nested(2_000))
@example(body=b"{" * 50_000)
def test_consent_agreement_any_body(hub: Hub, body: bytes) -> None:
    response = hub.client.post(
        f"{API}/contacts/{hub.contact}/consents/{CONSENT}",
        content=body,
        headers=hub.headers | JSON,
    )
    assert_answer_is_sound(response)
    try:
        expected = json.loads(body)
    except (ValueError, RecursionError):
        expected = None
    is_valid = isinstance(expected, dict) and any(
        isinstance(expected.get(k), bool) for k in expected if k.lower() == "agree"
    )
    if response.status_code == 200:
        assert is_valid, body
    else:
        assert 400 <= response.status_code < 500


# --- paths, headers, query strings ---------------------------------------------------------

ROUTES = [
    ("GET", "/consents/{consent}"),
    ("POST", "/contacts"),
    ("POST", "/contacts/{guid}/consents/{consent}"),
    ("GET", "/contacts/{guid}/consents/{consent}"),
    ("GET", "/{guid}/consents/{consent}"),
    ("POST", "/activities"),
    ("GET", "/openapi.json"),
]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]


def valid_body(hub: Hub, path: str) -> dict[str, Any] | None:
    if path.endswith("/activities"):
        return {
            "channel": hub.setup.channel_guid,
            "contact": hub.contact,
            "activities": [{"type": "click", "value": "v"}],
        }
    if "/consents/" in path:
        return {"agree": True}
    return None


@fuzz
@given(
    route=st.sampled_from(ROUTES),
    method=st.sampled_from(METHODS),
    guid=st.one_of(segments, st.just("")),
    consent=st.one_of(segments, st.just("")),
)
@example(route=ROUTES[0], method="GET", guid="", consent="\x00")
@example(route=ROUTES[2], method="POST", guid=str(uuid.uuid4()), consent="\x00")
@example(route=ROUTES[3], method="GET", guid=str(uuid.uuid4()), consent="é" * 5000)
def test_any_path_segments(
    hub: Hub, route: tuple[str, str], method: str, guid: str, consent: str
) -> None:
    template = route[1]
    path = API + path_of(template, guid=guid, consent=consent)
    response = hub.client.request(method, path, json=valid_body(hub, template), headers=hub.headers)
    assert_answer_is_sound(response, method)


@fuzz
@given(
    prefix=st.sampled_from([API, "/health"]),
    segments=st.lists(segments, max_size=5),
    method=st.sampled_from(METHODS),
)
def test_any_path(hub: Hub, prefix: str, segments: list[str], method: str) -> None:
    path = prefix + "".join("/" + quote(segment, safe="") for segment in segments)
    response = hub.client.request(method, path, headers=hub.headers)
    assert_answer_is_sound(response, method)


# Header values as HTTP carries them: bytes, any octet but CR, LF and NUL.
header_values = st.one_of(
    st.binary(max_size=200).map(lambda value: value.translate(None, b"\r\n\x00")),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=200).map(
        lambda value: value.encode("latin-1")
    ),
    st.sampled_from([b"Bearer", b"Bearer ", b"bearer x", b"Basic dXNlcjpwYXNz", b"Bearer \xff"]),
    st.binary(max_size=200).map(lambda key: b"Bearer " + key.translate(None, b"\r\n\x00")),
)


def with_segments(hub: Hub, template: str) -> str:
    return API + path_of(template, guid=hub.contact, consent=CONSENT)


PROTECTED = [route for route in ROUTES if route[1] != "/openapi.json"]


@fuzz
@given(route=st.sampled_from(PROTECTED), authorization=st.one_of(st.none(), header_values))
def test_any_authorization(hub: Hub, route: tuple[str, str], authorization: bytes | None) -> None:
    method, template = route
    headers: dict[str, Any] = dict(JSON)
    if authorization is not None:
        headers["Authorization"] = authorization
    response = hub.client.request(
        method, with_segments(hub, template), json=valid_body(hub, template), headers=headers
    )
    assert_answer_is_sound(response)
    assert response.status_code == 401, response.text


@fuzz
@given(
    route=st.sampled_from([r for r in ROUTES if r[0] == "POST"]),
    content_type=st.one_of(
        header_values,
        st.sampled_from(
            [
                b"application/json; charset=utf-8",
                b"APPLICATION/JSON",
                b"application/vnd.api+json",
                b"text/plain",
                b"application/x-www-form-urlencoded",
                b"multipart/form-data; boundary=x",
                b"application/json;;;",
                b";application/json",
            ]
        ),
    ),
)
def test_any_content_type(hub: Hub, route: tuple[str, str], content_type: bytes) -> None:
    method, template = route
    body = valid_body(hub, template)
    response = hub.client.request(
        method,
        with_segments(hub, template),
        content=b"" if body is None else json.dumps(body).encode(),
        headers={
            b"Authorization": f"Bearer {hub.setup.key}".encode(),
            b"Content-Type": content_type,
        },
    )
    assert_answer_is_sound(response)
    # POST /contacts ignores its body; the others take JSON or answer 415.
    assert response.status_code in (200, 207, 415), response.text


@fuzz
@given(language=st.one_of(texts, st.sampled_from(["en", "EN", "en-US", "cs", ""])))
def test_any_language_name(hub: Hub, language: str) -> None:
    response = hub.client.get(
        f"{API}/consents/{CONSENT}", params={"languageName": language}, headers=hub.headers
    )
    assert_answer_is_sound(response)
    # The consent has only an English text: every language falls back to it.
    assert response.status_code == 200
    assert response.json() == {"shortText": "<p>Short</p>", "fullText": "<p>Full</p>"}


@fuzz
@given(query=st.binary(max_size=300))
def test_any_query_string(hub: Hub, query: bytes) -> None:
    raw = quote(query, safe="=&;+%")
    response = hub.client.get(f"{API}/consents/{CONSENT}?{raw}", headers=hub.headers)
    assert_answer_is_sound(response)
    assert response.status_code == 200


@pytest.mark.parametrize("template", sorted({template for _, template in ROUTES}))
def test_method_not_allowed_lists_every_method(hub: Hub, template: str) -> None:
    """A 405 names, in Allow, every method the URL takes (RFC 9110 §15.5.6)."""
    allowed = {method for method, route in ROUTES if route == template}
    if "GET" in allowed:
        allowed.add("HEAD")
    for method in sorted(set(METHODS) - allowed):
        response = hub.client.request(method, with_segments(hub, template), headers=hub.headers)
        assert response.status_code == 405, (method, response.status_code)
        assert set(response.headers["allow"].split(", ")) == allowed, (method, template)
