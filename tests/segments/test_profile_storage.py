"""How profiles are stored in Redis: compressed with a preset dictionary, older forms readable."""

import json
import zlib

from segments.backends.redis import _pack, _unpack


def test_round_trip_and_size():
    profile = json.dumps({"t": {"page_view": 3}, "b": {"page_view": {"d": [20754, 3]}}})
    packed = _pack(profile)
    assert _unpack(packed) == profile
    assert packed[:1] == b"\x01" and len(packed) < len(profile)


def test_older_forms_still_read():
    profile = '{"t":{"a":1}}'
    assert _unpack(profile.encode()) == profile  # uncompressed
    assert _unpack(zlib.compress(profile.encode())) == profile  # plain zlib
    assert _unpack(None) is None


def test_non_ascii_survives():
    profile = json.dumps(
        {"c": {"referrer": "exemple.fr", "utm_campaign": "été"}}, ensure_ascii=False
    )
    assert _unpack(_pack(profile)) == profile
