"""Signed tracking links: binding, rotation, legacy vendor hashes, malformed input."""

from __future__ import annotations

import uuid

import pytest

from contacthub.email.hashing import (
    LinkSigner,
    Purpose,
    legacy_email_hash,
    normalize_email,
)

ISSUE = uuid.UUID("1eb1cb43-8820-4eda-866b-140c62ed7f69")
LINK = uuid.UUID("c9fe0cee-7066-4017-b31c-6e98c0cf4bb3")
EMAIL = "john.doe@example.com"

# SPEC §3's test vector for the vendor's hash.
VENDOR_SALT = "e68b9ad6-a461-4707-8e3e-ece73f03dd02"
VENDOR_HASH = "edb4242140313e73887d7d78d7f198095bea345363d998ba5725d908bcf83f12"


@pytest.fixture
def signer() -> LinkSigner:
    return LinkSigner(["current-secret"])


def test_hash_is_64_lowercase_hex(signer: LinkSigner) -> None:
    value = signer.sign(Purpose.OPEN, ISSUE, EMAIL)
    assert len(value) == 64
    assert value == value.lower()
    int(value, 16)


def test_signed_link_verifies(signer: LinkSigner) -> None:
    for purpose, guid in [
        (Purpose.OPEN, ISSUE),
        (Purpose.BROWSER_VIEW, ISSUE),
        (Purpose.UNSUBSCRIBE, ISSUE),
        (Purpose.CLICK, LINK),
    ]:
        assert signer.verify(purpose, guid, EMAIL, signer.sign(purpose, guid, EMAIL))


def test_hash_is_deterministic_and_bound_to_the_secret() -> None:
    one = LinkSigner(["secret-one"]).sign(Purpose.OPEN, ISSUE, EMAIL)
    assert one == LinkSigner(["secret-one"]).sign(Purpose.OPEN, ISSUE, EMAIL)
    assert one != LinkSigner(["secret-two"]).sign(Purpose.OPEN, ISSUE, EMAIL)
    assert not LinkSigner(["secret-two"]).verify(Purpose.OPEN, ISSUE, EMAIL, one)


def test_tampered_address_fails(signer: LinkSigner) -> None:
    value = signer.sign(Purpose.CLICK, LINK, EMAIL)
    assert not signer.verify(Purpose.CLICK, LINK, "jane.doe@example.com", value)
    assert not signer.verify(Purpose.CLICK, LINK, "john.doe@example.co", value)


def test_address_is_normalised(signer: LinkSigner) -> None:
    value = signer.sign(Purpose.CLICK, LINK, EMAIL)
    assert signer.verify(Purpose.CLICK, LINK, "  John.Doe@EXAMPLE.com ", value)
    assert normalize_email("  John.Doe@EXAMPLE.com\n") == EMAIL


def test_tampered_guid_fails(signer: LinkSigner) -> None:
    value = signer.sign(Purpose.CLICK, LINK, EMAIL)
    assert not signer.verify(Purpose.CLICK, uuid.uuid4(), EMAIL, value)


def test_guid_spellings_are_the_same_guid(signer: LinkSigner) -> None:
    value = signer.sign(Purpose.OPEN, str(ISSUE).upper(), EMAIL)
    assert signer.verify(Purpose.OPEN, ISSUE, EMAIL, value)
    assert signer.verify(Purpose.OPEN, "{" + str(ISSUE) + "}", EMAIL, value)
    assert signer.verify(Purpose.OPEN, ISSUE.hex, EMAIL, value)


def test_purposes_do_not_share_hashes(signer: LinkSigner) -> None:
    # The pixel URL is fetched by image proxies; its hash must not unsubscribe anyone.
    open_hash = signer.sign(Purpose.OPEN, ISSUE, EMAIL)
    assert not signer.verify(Purpose.UNSUBSCRIBE, ISSUE, EMAIL, open_hash)
    assert not signer.verify(Purpose.BROWSER_VIEW, ISSUE, EMAIL, open_hash)


def test_uppercase_hex_is_accepted(signer: LinkSigner) -> None:
    value = signer.sign(Purpose.OPEN, ISSUE, EMAIL)
    assert signer.verify(Purpose.OPEN, ISSUE, EMAIL, value.upper())


def test_rotation_keeps_old_links_working() -> None:
    before = LinkSigner(["old-secret"])
    old_link = before.sign(Purpose.CLICK, LINK, EMAIL)
    after = LinkSigner(["new-secret", "old-secret"])
    assert after.verify(Purpose.CLICK, LINK, EMAIL, old_link)
    new_link = after.sign(Purpose.CLICK, LINK, EMAIL)
    assert new_link != old_link
    assert new_link == LinkSigner(["new-secret"]).sign(Purpose.CLICK, LINK, EMAIL)
    # Once the old secret is dropped, its links stop working.
    assert not LinkSigner(["new-secret"]).verify(Purpose.CLICK, LINK, EMAIL, old_link)


def test_legacy_vendor_hash_vector() -> None:
    assert legacy_email_hash(EMAIL, VENDOR_SALT) == VENDOR_HASH


def test_legacy_hash_accepted_when_salt_configured() -> None:
    signer = LinkSigner(["s"], legacy_salts=["other-salt", VENDOR_SALT])
    assert signer.verify(Purpose.OPEN, ISSUE, EMAIL, VENDOR_HASH)
    assert signer.verify(Purpose.CLICK, LINK, EMAIL, VENDOR_HASH)
    assert signer.verify(Purpose.BROWSER_VIEW, ISSUE, EMAIL, VENDOR_HASH)
    # Vendor hashes cover the address only, so any GUID (even none) passes.
    assert signer.verify(Purpose.OPEN, None, EMAIL, VENDOR_HASH)


def test_legacy_hash_refused_without_salt(signer: LinkSigner) -> None:
    assert not signer.verify(Purpose.OPEN, ISSUE, EMAIL, VENDOR_HASH)


def test_legacy_hash_tampered_address_fails() -> None:
    signer = LinkSigner(["s"], legacy_salts=[VENDOR_SALT])
    assert not signer.verify(Purpose.OPEN, ISSUE, "jane.doe@example.com", VENDOR_HASH)


def test_legacy_hash_uses_the_address_as_given() -> None:
    # The vendor hashes the address exactly as the link carries it, without lower-casing.
    signer = LinkSigner(["s"], legacy_salts=[VENDOR_SALT])
    assert not signer.verify(Purpose.OPEN, ISSUE, "John.Doe@example.com", VENDOR_HASH)
    mixed = "John.Doe@Example.com"
    assert signer.verify(Purpose.OPEN, ISSUE, mixed, legacy_email_hash(mixed, VENDOR_SALT))


def test_legacy_hash_never_unsubscribes() -> None:
    signer = LinkSigner(["s"], legacy_salts=[VENDOR_SALT])
    assert not signer.verify(Purpose.UNSUBSCRIBE, ISSUE, EMAIL, VENDOR_HASH)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "abc",
        "z" * 64,
        "0" * 63,
        "0" * 65,
        "é" * 64,  # non-ASCII: hmac.compare_digest would raise on it
        "０" * 64,  # full-width digits are digits to str.isdigit, not hex
        " " + "0" * 63,
        123,
        b"0" * 64,
    ],
)
def test_malformed_hash_fails_without_raising(signer: LinkSigner, value: object) -> None:
    assert not signer.verify(Purpose.OPEN, ISSUE, EMAIL, value)  # type: ignore[arg-type]


@pytest.mark.parametrize("guid", [None, "", "not-a-guid", "1eb1cb43", 42, "\udcff"])
def test_malformed_guid_fails_without_raising(signer: LinkSigner, guid: object) -> None:
    value = signer.sign(Purpose.OPEN, ISSUE, EMAIL)
    assert not signer.verify(Purpose.OPEN, guid, EMAIL, value)  # type: ignore[arg-type]


@pytest.mark.parametrize("email", [None, "", "\udcff@example.com", 7])
def test_odd_addresses_fail_without_raising(signer: LinkSigner, email: object) -> None:
    value = signer.sign(Purpose.OPEN, ISSUE, EMAIL)
    assert not signer.verify(Purpose.OPEN, ISSUE, email, value)  # type: ignore[arg-type]


def test_signing_a_non_guid_is_a_programming_error(signer: LinkSigner) -> None:
    with pytest.raises(ValueError, match="hexadecimal UUID"):
        signer.sign(Purpose.OPEN, "not-a-guid", EMAIL)


@pytest.mark.parametrize(
    ("secrets", "salts", "error"),
    [
        ([], (), ValueError),
        ([""], (), ValueError),
        (["ok", ""], (), ValueError),
        ("one-string", (), TypeError),
        (["ok"], [""], ValueError),
        (["ok"], VENDOR_SALT, TypeError),
    ],
)
def test_unsafe_configuration_is_refused(
    secrets: list[str], salts: list[str], error: type[Exception]
) -> None:
    with pytest.raises(error):
        LinkSigner(secrets, legacy_salts=salts)


def test_signed_parts_bind_every_part_and_only_their_purpose() -> None:
    signer = LinkSigner(["s1"])
    guid = "1eb1cb43-8820-4eda-866b-140c62ed7f69"
    parts = ["ann@example.com", "2", "en", "1765000000"]
    digest = signer.sign_parts(Purpose.CONFIRM, guid, *parts)
    assert signer.verify_parts(Purpose.CONFIRM, guid, parts, digest)
    assert not signer.verify_parts(Purpose.CONFIRM, guid, [*parts[:3], "1765000001"], digest)
    assert not signer.verify_parts(Purpose.PREFERENCES, guid, parts, digest)
    # A NUL inside a part could shift the boundaries between parts: refused, never verified.
    assert not signer.verify_parts(Purpose.CONFIRM, guid, ["ann@example.com\0" + "2", "en"], digest)
    # Joined parts never pass as a single address's hash of another purpose.
    assert not signer.verify(Purpose.UNSUBSCRIBE, guid, "ann@example.com", digest)
