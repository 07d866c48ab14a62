"""What counts as a CORS origin, and the one spelling it is stored (and compared) in."""

from __future__ import annotations

import pytest

from contacthub.channels.cors import normalize_origin
from contacthub.errors import InvalidInput


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("https://www.example.com", "https://www.example.com"),
        ("  HTTPS://WWW.Example.COM  ", "https://www.example.com"),
        ("https://www.example.com/", "https://www.example.com"),
        ("https://www.example.com:443", "https://www.example.com"),
        ("http://www.example.com:80", "http://www.example.com"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("https://shop.example.com:8443", "https://shop.example.com:8443"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:3000", "http://[::1]:3000"),
        ("http://[0:0::1]", "http://[::1]"),
        ("https://bücher.example", "https://xn--bcher-kva.example"),
        ("*", "*"),
    ],
)
def test_origins_are_stored_as_browsers_send_them(typed: str, stored: str) -> None:
    assert normalize_origin(typed) == stored


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("", "Enter an origin."),
        ("www.example.com", "does not start with http:// or https://"),
        ("ftp://example.com", "does not start with http:// or https://"),
        ("https:example.com", "does not start with http:// or https://"),
        ("https://example.com/app", "has a path"),
        ("https://example.com?x=1", "has a path"),
        ("https://example.com#top", "has a path"),
        ("https://user@example.com", "has a user name"),
        ("https://@example.com", "has a user name"),
        ("https://example.com:99999", "invalid host or port"),
        ("https://example.com:0", "invalid host or port"),
        ("https://example.com:http", "invalid host or port"),
        ("https://", "has no host"),
        ("https://exa mple.com", "not an origin"),
        ("https://exa\x00mple.com", "not an origin"),
        ("https://-bad.example.com", "not a host name"),
        ("https://a..b", "not a host name"),
        ("https://under_score.example", "not a host name"),
        ("http://[::g]", "not an IPv6 address"),
        ("http://[::1", "not an IPv6 address"),
        ("http://[::1]x", "invalid host or port"),
        ("https://example.com:", "invalid host or port"),
        ("https://example.com:80:80", "invalid host or port"),
        ("http://[example.com]", "not an IPv6 address"),
        ("https://" + "a" * 200 + ".com", "not an origin"),
        ("**", "does not start with http:// or https://"),
    ],
)
def test_what_is_not_an_origin_is_refused_on_the_origin_field(typed: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        normalize_origin(typed)
    assert refused.value.code == "invalid_origin"
    assert refused.value.field == "origin"
    assert reason in refused.value.message
