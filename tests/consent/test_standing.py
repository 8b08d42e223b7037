"""Which cookies a record leaves standing (pure: no services)."""

from datetime import UTC, datetime

import pytest

from consent.policy import ConsentState
from consent.standing import VOID, Standing, of_record

VID = "0123456789abcdef0123456789abcdef"
AT = datetime(2026, 1, 1, 12, 0, 0, 500000, tzinfo=UTC)


def state(seq=None, signed_at=0.0) -> ConsentState:
    return ConsentState(
        decided=True,
        purposes=frozenset({"analytics"}),
        visitor_id=VID,
        visitor_key="k" * 32,
        record_seq=seq,
        signed_at=signed_at,
    )


def test_a_cookie_counts_only_for_the_latest_granting_record():
    latest = of_record("banner_custom", 7, ["analytics"], AT)
    assert latest.honours(state(7)) and latest.honours(state(8))
    assert not latest.honours(state(6))
    # Cookies without a record number: by their signing time, to the second.
    assert latest.honours(state(None, AT.timestamp()))
    assert latest.honours(state(None, int(AT.timestamp())))
    assert not latest.honours(state(None, AT.timestamp() - 1))


@pytest.mark.parametrize("method", ["withdraw", "erasure", "gpc", "banner_reject_all"])
def test_a_record_granting_nothing_voids_every_cookie_of_its_identifier(method):
    void = of_record(method, 7, [], AT)
    assert void is VOID
    assert not any(void.honours(state(seq)) for seq in (None, 6, 7, 8))


def test_a_key_rotation_keeps_the_current_cookie():
    rotated = of_record("key_rotation", 9, ["analytics"], AT)
    assert rotated.honours(state(3)) and rotated.honours(state(None, 0.0))
    assert of_record("key_rotation", 9, [], AT) is VOID


@pytest.mark.parametrize("standing", [VOID, Standing(True, 5, 1700000000), Standing(True)])
def test_the_cached_form_round_trips(standing):
    assert Standing.decode(standing.encode()) == standing


@pytest.mark.parametrize("value", ["", "x", "1:2:3", "a:b", "5", ":"])
def test_a_damaged_cache_entry_reads_as_a_miss(value):
    assert Standing.decode(value) is None
