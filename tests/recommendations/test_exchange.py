"""The visitor's recommendation fields come back with the one round trip, in both backends,
and are erased and re-keyed with the visitor's hash."""

import time

import pytest

from segments.api import get_backend
from segments.backends.base import VisitorUpdate
from segments.backends.embedded import EmbeddedBackend

NOTICE = "1"


def _round_trip(backend):
    key = "ab" * 32
    other = "cd" * 32
    backend.set_consent(key, {"personalization": time.time() + 3600}, NOTICE, 3600)
    backend.commit(
        backend.partition_for(key),
        [
            VisitorUpdate(
                key,
                "{}",
                {"vip": float("inf")},
                [],
                set_fields={"r:fy": "3,1,2", "r:recent": "7", "x:9": "1:0"},
            )
        ],
        [],
    )
    got = backend.exchange(key, purpose="personalization", notice_version=NOTICE, now=time.time())
    assert got.consented and got.recommendations == {"fy": "3,1,2", "recent": "7"}
    assert got.assignments == {"9": "1:0"} and "vip" in got.memberships
    refused = backend.exchange(key, purpose="marketing", notice_version=NOTICE, now=time.time())
    assert refused.recommendations == {}

    backend.rename_visitor(key, other)
    assert backend.visitor_data(other).fields["r:fy"] == "3,1,2"
    backend.erase_visitor(other)
    fields = backend.visitor_data(other).fields
    assert not any(f.startswith(("r:", "x:", "s:")) for f in fields)


def test_embedded_backend():
    _round_trip(EmbeddedBackend({}))


@pytest.mark.services
def test_redis_backend(backend):
    _round_trip(get_backend())
