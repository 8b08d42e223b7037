"""Unit tests for keyed hashing of identifiers (consent.hashing)."""

import hashlib
import hmac
import re

import pytest

from consent.hashing import KEY_LENGTH_HEX, is_identifier, keyed_hash, new_identifier

KEY = b"k" * 32
OTHER_KEY = b"j" * 32
HEX32 = re.compile(r"[0-9a-f]{32}")


def test_keyed_hash_is_truncated_hmac_sha256_of_domain_and_value():
    expected = hmac.new(KEY, b"visitor:abc", hashlib.sha256).hexdigest()[:32]
    assert keyed_hash("abc", KEY) == expected
    expected_user = hmac.new(KEY, b"user:42", hashlib.sha256).hexdigest()[:32]
    assert keyed_hash("42", KEY, domain="user") == expected_user


def test_keyed_hash_shape():
    assert KEY_LENGTH_HEX == 32
    for value in ("", "a", "0123456789abcdef0123456789abcdef", "caf\u00e9", "x" * 10_000):
        digest = keyed_hash(value, KEY)
        assert HEX32.fullmatch(digest)
        assert is_identifier(digest)


def test_keyed_hash_is_deterministic():
    assert keyed_hash("abc", KEY) == keyed_hash("abc", KEY)
    assert keyed_hash("abc", KEY, domain="user") == keyed_hash("abc", KEY, domain="user")


def test_keyed_hash_depends_on_key():
    assert keyed_hash("abc", KEY) != keyed_hash("abc", OTHER_KEY)
    assert keyed_hash("abc", b"a") != keyed_hash("abc", b"b")


def test_keyed_hash_is_not_a_plain_hash():
    value = "abc"
    plain = {
        hashlib.sha256(value.encode()).hexdigest()[:32],
        hashlib.sha256(b"visitor:abc").hexdigest()[:32],
        hashlib.md5(value.encode()).hexdigest(),  # noqa: S324 (compared, not used for security)
    }
    assert keyed_hash(value, KEY) not in plain


def test_keyed_hash_depends_on_value():
    digests = {keyed_hash(str(i), KEY) for i in range(1000)}
    assert len(digests) == 1000


def test_keyed_hash_domain_separation():
    assert keyed_hash("42", KEY, domain="visitor") != keyed_hash("42", KEY, domain="user")
    assert keyed_hash("42", KEY) == keyed_hash("42", KEY, domain="visitor")


def test_keyed_hash_default_domain_is_visitor():
    assert keyed_hash("42", KEY) == hmac.new(KEY, b"visitor:42", hashlib.sha256).hexdigest()[:32]


@pytest.mark.parametrize("key", [b"", None])
def test_keyed_hash_needs_a_key(key):
    with pytest.raises(ValueError, match="non-empty key"):
        keyed_hash("abc", key)


def test_new_identifier():
    ids = {new_identifier() for _ in range(1000)}
    assert len(ids) == 1000
    for value in ids:
        assert HEX32.fullmatch(value)
        assert is_identifier(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0123456789abcdef0123456789abcdef", True),
        ("f" * 32, True),
        ("0" * 32, True),
        ("F" * 32, False),
        ("0123456789ABCDEF0123456789abcdef", False),
        ("a" * 31, False),
        ("a" * 33, False),
        ("g" * 32, False),
        ("", False),
        (" " + "a" * 31, False),
        ("a" * 32 + " ", False),
        ("a" * 16 + "-" + "a" * 15, False),
        ("-", False),
    ],
)
def test_is_identifier(value, expected):
    assert is_identifier(value) is expected


def test_is_identifier_rejects_trailing_newline():
    # Regression (fixed): _ID_RE ends in ``$``, which also matches just before a trailing newline.
    assert is_identifier("a" * 32 + "\n") is False
