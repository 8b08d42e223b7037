"""Unit tests for visitor features (segments.profiles.features): pure logic, no Django database."""

import json

import pytest

from segments.profiles.features import MAX_WINDOW, TIERS, Profile, parse_stream_id, tier_for

T = 1_700_006_400.0  # aligned to a day (and so to an hour and a minute)
assert T % 86400 == 0
MINUTE, HOUR, DAY = 60, 3600, 86400


def test_tiers_and_max_window():
    assert TIERS == (("m", 60, 60), ("h", 3600, 48), ("d", 86400, 400))
    assert MAX_WINDOW == 400 * DAY


@pytest.mark.parametrize(
    ("window", "tier"),
    [
        (1, "m"),
        (600, "m"),
        (HOUR, "m"),
        (HOUR + 1, "h"),
        (2 * HOUR, "h"),
        (48 * HOUR, "h"),
        (48 * HOUR + 1, "d"),
        (3 * DAY, "d"),
        (MAX_WINDOW, "d"),
    ],
)
def test_tier_for(window, tier):
    assert tier_for(window)[0] == tier
    assert tier_for(window) in TIERS


@pytest.mark.parametrize("window", [MAX_WINDOW + 1, 401 * DAY, float("inf")])
def test_tier_for_too_long(window):
    with pytest.raises(ValueError, match="400 days"):
        tier_for(window)


# -- apply ----------------------------------------------------------------------------------


def test_apply_counts_in_every_tier():
    p = Profile()
    assert p.apply("page_view", T + 90, (1, 0)) is True
    assert p.first_seen == T + 90
    assert p.last_seen == T + 90
    assert p.last_id == (1, 0)
    assert p.totals == {"page_view": 1}
    assert p.buckets == {
        "page_view": {
            "m": {int(T // 60) + 1: 1},
            "h": {int(T // 3600): 1},
            "d": {int(T // 86400): 1},
        }
    }


def test_apply_same_stream_id_twice_counts_once():
    p = Profile()
    assert p.apply("page_view", T, (1700000000000, 0)) is True
    before = p.to_dict()
    assert p.apply("page_view", T, (1700000000000, 0)) is False
    assert p.to_dict() == before
    assert p.totals == {"page_view": 1}
    assert p.count_within("page_view", 600, T + 1) == 1


def test_apply_replayed_batch_changes_nothing():
    p = Profile()
    batch = [("page_view", T + i, (1000 + i, 0)) for i in range(5)]
    assert [p.apply(*e) for e in batch] == [True] * 5
    snapshot = json.dumps(p.to_dict(), sort_keys=True)
    assert [p.apply(*e) for e in batch] == [False] * 5
    assert json.dumps(p.to_dict(), sort_keys=True) == snapshot
    assert p.totals == {"page_view": 5}


def test_apply_refuses_older_stream_ids_and_orders_by_ms_then_seq():
    p = Profile()
    assert p.apply("a", T, (5, 1)) is True
    assert p.apply("a", T, (5, 0)) is False  # older sequence, same ms
    assert p.apply("a", T, (4, 99)) is False  # older ms
    assert p.apply("a", T, (5, 2)) is True
    assert p.apply("a", T, (6, 0)) is True
    assert p.totals == {"a": 3}
    assert p.last_id == (6, 0)


def test_apply_first_and_last_seen_with_out_of_order_timestamps():
    p = Profile()
    p.apply("a", T + 100, (1, 0))
    p.apply("b", T + 50, (2, 0))
    p.apply("a", T + 200, (3, 0))
    assert p.first_seen == T + 50
    assert p.last_seen == T + 200
    assert p.totals == {"a": 2, "b": 1}


# -- count_within / count_valid_until --------------------------------------------------------


def _profile(*events: tuple[str, float]) -> Profile:
    p = Profile()
    for i, (name, ts) in enumerate(events, start=1):
        p.apply(name, ts, (i, 0))
    return p


def test_count_within_unknown_name_is_zero():
    assert Profile().count_within("page_view", 600, T) == 0
    assert _profile(("a", T)).count_within("b", 600, T) == 0


def test_count_within_minute_window_boundaries():
    p = _profile(("a", T), ("a", T + 30), ("a", T + 300))
    assert p.count_within("a", 600, T + 300) == 3
    # The bucket [T, T+60) counts while any part of it is in the window.
    assert p.count_within("a", 600, T + 659) == 3
    assert p.count_within("a", 600, T + 660) == 1
    assert p.count_within("a", 600, T + 960) == 0


def test_count_within_ignores_future_buckets():
    p = _profile(("a", T + 120))
    assert p.count_within("a", 600, T + 60) == 0
    assert p.count_within("a", 600, T + 120) == 1


def test_count_within_hour_tier():
    p = _profile(("a", T + 10), ("a", T + HOUR + 10), ("a", T + 5 * HOUR))
    assert p.count_within("a", 2 * HOUR, T + 2 * HOUR) == 2
    assert p.count_within("a", 2 * HOUR, T + 3 * HOUR - 1) == 2
    assert p.count_within("a", 2 * HOUR, T + 3 * HOUR) == 1
    assert p.count_within("a", 48 * HOUR, T + 5 * HOUR) == 3


def test_count_within_day_tier():
    p = _profile(("a", T + 10), ("a", T + 2 * DAY), ("a", T + 10 * DAY))
    assert p.count_within("a", 3 * DAY, T + 3 * DAY) == 2
    assert p.count_within("a", 3 * DAY, T + 4 * DAY) == 1
    assert p.count_within("a", 30 * DAY, T + 10 * DAY) == 3
    assert p.count_within("a", MAX_WINDOW, T + 300 * DAY) == 3


def test_count_valid_until():
    p = _profile(("a", T), ("a", T + 60), ("a", T + 120))
    now = T + 130
    assert p.count_valid_until("a", 600, 1, now) == T + 180 + 600
    assert p.count_valid_until("a", 600, 2, now) == T + 120 + 600
    assert p.count_valid_until("a", 600, 3, now) == T + 60 + 600
    # Not reachable: the answer is "now".
    assert p.count_valid_until("a", 600, 4, now) == now
    assert p.count_valid_until("missing", 600, 1, now) == now


@pytest.mark.parametrize(
    ("window", "expected_until"),
    [(1200, T + 60 + 1200), (4 * HOUR, T + 5 * HOUR), (3 * DAY, T + 4 * DAY)],
)
def test_count_valid_until_is_when_count_within_drops(window, expected_until):
    p = _profile(("a", T + 5), ("a", T + 65), ("a", T + 3 * HOUR))
    now = T + 3 * HOUR if window > HOUR else T + 600
    assert p.count_within("a", window, now) >= 2
    until = p.count_valid_until("a", window, 2, now)
    assert until == expected_until
    assert p.count_within("a", window, until - 1) >= 2
    assert p.count_within("a", window, until) < 2


def test_count_valid_until_ignores_future_buckets():
    p = _profile(("a", T), ("a", T + 600))
    assert p.count_valid_until("a", 3600, 2, T + 10) == T + 10
    assert p.count_valid_until("a", 3600, 1, T + 10) == T + 60 + 3600


# -- prune ----------------------------------------------------------------------------------


def test_prune_bounds_memory():
    p = Profile()
    seq = 0
    # One event a day for 500 days, then one every 10 minutes for 3 days.
    start = T - 503 * DAY
    for day in range(500):
        seq += 1
        p.apply("a", start + day * DAY, (seq, 0))
    for i in range(3 * 24 * 6):
        seq += 1
        p.apply("a", T - 3 * DAY + i * 600, (seq, 0))
    now = T
    assert len(p.buckets["a"]["d"]) > 400
    p.prune(now)
    tiers = p.buckets["a"]
    assert len(tiers["m"]) <= 61
    assert len(tiers["h"]) <= 49
    assert len(tiers["d"]) <= 401
    assert min(tiers["m"]) > int(now // 60) - 61
    assert min(tiers["h"]) > int(now // 3600) - 49
    assert min(tiers["d"]) > int(now // 86400) - 401
    # Totals are lifetime counts: pruning does not touch them.
    assert p.totals == {"a": 500 + 3 * 24 * 6}


def test_prune_keeps_recent_counts():
    p = _profile(*(("a", T + i * 60) for i in range(30)))
    now = T + 30 * 60
    before = [p.count_within("a", w, now) for w in (600, HOUR, 2 * HOUR, 3 * DAY)]
    p.prune(now)
    assert [p.count_within("a", w, now) for w in (600, HOUR, 2 * HOUR, 3 * DAY)] == before
    assert before == [10, 30, 30, 30]


def test_prune_removes_buckets_far_outside_every_tier():
    p = _profile(("a", T))
    p.prune(T + 500 * DAY)
    assert "a" not in p.buckets  # counters with nothing left are dropped entirely
    assert p.count_within("a", MAX_WINDOW, T + 500 * DAY) == 0


def test_prune_empty_profile():
    p = Profile()
    p.prune(T)
    assert p.buckets == {}


@pytest.mark.parametrize(("tier", "size", "keep"), TIERS)
def test_prune_keeps_events_still_inside_the_longest_window_of_their_tier(tier, size, keep):
    # Regression (fixed): it deletes bucket ``now // size - keep``,
    # which still lies partly inside a window of ``size * keep`` seconds (and may hold an event
    # that is inside the exact window), so the answer changes when the profile is pruned (the
    # pipeline prunes before it evaluates).
    window = size * keep
    event = T + size - 1  # last second of the bucket starting at T
    now = T + window + 1
    assert now - event < window  # the event is inside the exact window
    p = _profile(("a", event))
    assert tier_for(window)[0] == tier
    assert p.count_within("a", window, now) == 1
    p.prune(now)
    assert p.count_within("a", window, now) == 1


# -- storage --------------------------------------------------------------------------------


def test_to_dict_shape():
    p = _profile(("a", T + 90))
    assert p.to_dict() == {
        "f": T + 90,
        "l": T + 90,
        "i": [1, 0],
        "t": {"a": 1},
        "b": {
            "a": {
                "m": [int(T // 60) + 1, 1],
                "h": [int(T // 3600), 1],
                "d": [int(T // 86400), 1],
            }
        },
        "lt": {"a": T + 90},
        "s": 1,
        "e": [1.0, T + 90],
    }


def test_round_trip_through_json():
    p = _profile(("a", T), ("b", T + 10), ("a", T + 2 * HOUR), ("a", T + 3 * DAY))
    data = json.loads(json.dumps(p.to_dict()))
    q = Profile.from_dict(data)
    # Stored precision: times to the second, scores to 4 significant digits; the rest exactly.
    assert q.engagement == pytest.approx(p.engagement, rel=1e-3)
    q.engagement = p.engagement
    assert q == p
    assert q.last_id == (4, 0)
    assert isinstance(q.last_id, tuple)
    assert all(
        isinstance(b, int) for tiers in q.buckets.values() for c in tiers.values() for b in c
    )
    for window in (600, 2 * HOUR, 5 * DAY):
        assert q.count_within("a", window, T + 3 * DAY) == p.count_within("a", window, T + 3 * DAY)


def test_round_trip_keeps_idempotency():
    p = _profile(("a", T), ("a", T + 1))
    q = Profile.from_dict(json.loads(json.dumps(p.to_dict())))
    assert q.apply("a", T + 1, (2, 0)) is False
    assert q.apply("a", T + 2, (3, 0)) is True
    assert q.totals == {"a": 3}


def test_round_trip_does_not_share_state():
    p = _profile(("a", T))
    q = Profile.from_dict(p.to_dict())
    q.apply("a", T + 1, (2, 0))
    assert p.totals == {"a": 1}
    assert p.count_within("a", 600, T + 2) == 1


@pytest.mark.parametrize("data", [None, {}])
def test_from_dict_empty(data):
    p = Profile.from_dict(data)
    assert p == Profile()
    assert p.last_id == (0, 0)
    assert p.first_seen is None
    assert p.totals == {}
    assert p.buckets == {}


def test_from_dict_partial():
    p = Profile.from_dict({"t": {"a": 2}})
    assert p.totals == {"a": 2}
    assert p.last_id == (0, 0)
    assert p.buckets == {}


# -- parse_stream_id ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1700000000000-5", (1700000000000, 5)),
        ("1700000000000-0", (1700000000000, 0)),
        ("42", (42, 0)),
        ("42-", (42, 0)),
    ],
)
def test_parse_stream_id(value, expected):
    assert parse_stream_id(value) == expected


def test_parse_stream_id_orders_numerically():
    assert parse_stream_id("10-2") > parse_stream_id("9-99")
    assert parse_stream_id("10-10") > parse_stream_id("10-9")


@pytest.mark.parametrize("value", ["", "abc", "1-x", "x-1"])
def test_parse_stream_id_invalid(value):
    with pytest.raises(ValueError):
        parse_stream_id(value)


# -- richer features -------------------------------------------------------------------------
def test_sessions_split_on_a_30_minute_gap():
    p = _profile(("page_view", T), ("page_view", T + 29 * 60), ("page_view", T + 70 * 60))
    assert p.sessions == 2


def test_purchases_build_rfm_and_empty_the_cart():
    p = Profile()
    p.apply("add_to_cart", T, (1, 0), {"quantity": 2})
    p.apply("add_to_cart", T + 1, (2, 0))
    assert p.cart == 3
    p.apply("remove_from_cart", T + 2, (3, 0))
    assert p.cart == 2
    p.apply("purchase", T + 3, (4, 0), {"value": 30.5})
    p.apply("purchase", T + 4, (5, 0), {"value": "not a number"})
    assert (p.orders, p.revenue, p.cart) == (2, 30.5, 0)
    assert p.last_ts["purchase"] == T + 4


def test_engagement_decays_with_a_seven_day_half_life():
    p = Profile()
    p.apply("purchase", T, (1, 0))
    assert p.engagement_at(T) == pytest.approx(10.0)
    assert p.engagement_at(T + 7 * DAY) == pytest.approx(5.0)
    # A late (older) event is added already decayed to the reference time.
    p.apply("page_view", T - 7 * DAY, (2, 0))
    assert p.engagement_at(T) == pytest.approx(10.5)


def test_category_affinity_is_a_share_that_time_alone_does_not_change():
    p = Profile()
    p.apply("page_view", T, (1, 0), {"category": "kitchen"})
    p.apply("page_view", T + DAY, (2, 0), {"category": "garden"})
    share = p.affinity_share("garden")
    assert share > 0.5 > p.affinity_share("kitchen")
    assert p.affinity_share("kitchen") + share == pytest.approx(1.0)
    assert p.affinity_share("toys") == 0.0


def test_affinity_keeps_the_strongest_categories_only():
    p = Profile()
    seq = 0
    for n in range(12):
        for _ in range(n + 1):
            seq += 1
            p.apply("page_view", T, (seq, 0), {"category": f"c{n}"})
    assert len(p.affinity) == 8
    assert "c11" in p.affinity and "c0" not in p.affinity


def test_dimension_counters_and_context_and_paths():
    p = Profile()
    p.apply("page_view", T, (1, 0), {"category": "kitchen", "path": "/a/", "device": "mobile"})
    p.apply("page_view", T + 1, (2, 0), {"path": "/b/", "utm_campaign": "spring"})
    p.apply("page_view", T + 2, (3, 0), {"path": "/a/"})
    assert p.count_within("page_view@category=kitchen", HOUR, T + 3) == 1
    assert p.context == {"device": "mobile", "utm_campaign": "spring"}
    assert p.paths == ["/b/", "/a/"]


def test_the_same_event_id_counts_once():
    p = Profile()
    assert p.apply("click", T, (1, 0), event_id="e" * 32)
    assert not p.apply("click", T, (2, 0), event_id="e" * 32)
    assert p.totals == {"click": 1}


def test_profiles_written_in_the_earlier_bucket_form_still_load():
    old = {"f": T, "l": T, "i": [1, 0], "t": {"a": 1}, "b": {"a": {"d": [[int(T // DAY), 1]]}}}
    assert Profile.from_dict(old).count_within("a", 5 * DAY, T) == 1
