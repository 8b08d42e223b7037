"""The richer rule leaves: filtered counts, sequences, features, paths and context."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from segments.profiles.features import Profile
from segments.rules import NEVER, RuleError, compile_rule, is_context_only

T = 1_700_000_000.0
DAY = 86400.0


def profile(*events):
    p = Profile()
    for n, (name, ts, *props) in enumerate(events, start=1):
        p.apply(name, ts, (n, 0), props[0] if props else None)
    return p


def test_event_count_with_a_category_filter_and_a_maximum():
    rule = compile_rule(
        {
            "type": "event_count",
            "event": "page_view",
            "min": 1,
            "max": 2,
            "window": "1h",
            "filter": {"category": "kitchen"},
        }
    )
    p = profile(("page_view", T, {"category": "kitchen"}), ("page_view", T, {"category": "garden"}))
    assert rule(p, T + 1).matched
    p.apply("page_view", T + 2, (9, 0), {"category": "kitchen"})
    p.apply("page_view", T + 3, (10, 0), {"category": "kitchen"})
    out = rule(p, T + 4)
    assert not out.matched and out.until < NEVER  # too many: matches again once some age out
    assert "(category kitchen)" in out.reasons[0]


@pytest.mark.parametrize(
    "bad",
    [
        {"filter": {"colour": "red"}},
        {"filter": {"category": ""}},
        {"filter": "kitchen"},
        {"max": 0},
        {"max": True},
    ],
)
def test_event_count_rejects_bad_filters_and_maxima(bad):
    with pytest.raises(RuleError):
        compile_rule({"type": "event_count", "event": "page_view", "min": 1, "window": "1h", **bad})


def test_cart_abandonment_with_minimum_age():
    rule = compile_rule(
        {
            "type": "event_without",
            "event": "add_to_cart",
            "without": "purchase",
            "window": "1d",
            "min_age": "30m",
        }
    )
    p = profile(("add_to_cart", T))
    early = rule(p, T + 60)
    assert not early.matched and early.until == T + 1800  # enters on time, without traffic
    late = rule(p, T + 1801)
    assert late.matched and late.until == T + DAY
    p.apply("purchase", T + 1900, (5, 0))
    assert not rule(p, T + 2000).matched
    assert not rule(profile(("add_to_cart", T)), T + DAY + 1).matched
    with pytest.raises(RuleError):
        compile_rule(
            {"type": "event_without", "event": "a", "without": "b", "window": "1h", "min_age": "2h"}
        )


def test_recency_feature_flips_exactly_on_time():
    rule = compile_rule(
        {"type": "feature", "feature": "days_since_last_seen", "op": "lt", "value": 7}
    )
    p = profile(("page_view", T))
    out = rule(p, T + DAY)
    assert out.matched and out.until == pytest.approx(T + 7 * DAY)
    assert not rule(p, T + 8 * DAY).matched
    lapsed = compile_rule(
        {"type": "feature", "feature": "days_since_last_seen", "op": "gte", "value": 30}
    )
    out = lapsed(p, T + DAY)
    assert not out.matched and out.until == pytest.approx(T + 30 * DAY)  # enters by time


def test_decaying_engagement_leaves_exactly_on_time():
    rule = compile_rule({"type": "feature", "feature": "engagement_score", "op": "gte", "value": 5})
    p = profile(("purchase", T))  # 10 points, halving weekly
    out = rule(p, T)
    assert out.matched and out.until == pytest.approx(T + 7 * DAY)
    assert "engagement score is 10" in out.reasons[0]


def test_rfm_and_affinity_features():
    p = profile(
        ("purchase", T, {"value": 20.0, "category": "kitchen"}),
        ("purchase", T + DAY, {"value": 40.0, "category": "kitchen"}),
        ("page_view", T + DAY, {"category": "garden"}),
    )
    now = T + 2 * DAY
    check = lambda node: compile_rule({"type": "feature", **node})(p, now).matched  # noqa: E731
    assert check({"feature": "purchase_count", "op": "gte", "value": 2})
    assert check({"feature": "monetary_value", "op": "gt", "value": 59.9})
    assert check({"feature": "average_order_value", "op": "eq", "value": 30.0})
    assert check({"feature": "days_since_last_purchase", "op": "lt", "value": 2})
    assert check({"feature": "category_affinity", "param": "kitchen", "op": "gt", "value": 0.9})
    assert check({"feature": "top_category", "op": "eq", "value": "kitchen"})
    assert check({"feature": "total_events", "param": "purchase", "op": "eq", "value": 2})
    assert check({"feature": "days_since_first_seen", "op": "gte", "value": 2})


def test_string_operators_on_features():
    p = profile(("page_view", T, {"referrer": "news.example.org", "device": "mobile"}))

    def check(op, value):
        node = {"type": "feature", "feature": "last_referrer", "op": op, "value": value}
        return compile_rule(node)(p, T).matched

    assert check("contains", "example")
    assert check("regex", r"\.org$")
    assert check("in", ["a.com", "news.example.org"])
    assert check("not_in", ["a.com"])
    assert not check("eq", "other")
    assert compile_rule({"type": "feature", "feature": "country", "op": "ne", "value": "FR"})(
        p, T
    ).matched
    assert not compile_rule({"type": "feature", "feature": "country", "op": "exists"})(p, T).matched


@pytest.mark.parametrize(
    "node, where",
    [
        ({"feature": "nope", "op": "eq", "value": 1}, "feature"),
        ({"feature": "sessions", "op": "regex", "value": "x"}, "op"),
        ({"feature": "sessions", "op": "gt", "value": "3"}, "value"),
        ({"feature": "last_referrer", "op": "regex", "value": "(unclosed"}, "value"),
        ({"feature": "last_referrer", "op": "in", "value": []}, "value"),
        ({"feature": "category_affinity", "op": "gt", "value": 0.5}, "param"),
        ({"feature": "sessions", "param": "x", "op": "gt", "value": 1}, "param"),
    ],
)
def test_invalid_feature_conditions_name_the_field(node, where):
    with pytest.raises(RuleError) as info:
        compile_rule({"type": "feature", **node})
    assert info.value.path == where


def test_visited_paths():
    p = profile(("page_view", T, {"path": "/guides/care/"}))
    assert compile_rule({"type": "visited", "path": "/guides/care/"})(p, T).matched
    assert compile_rule({"type": "visited", "path_prefix": "/guides/"})(p, T).matched
    assert not compile_rule({"type": "visited", "path": "/about/"})(p, T).matched
    for bad in ({}, {"path": "guides"}, {"path": "/a", "path_prefix": "/b"}):
        with pytest.raises(RuleError):
            compile_rule({"type": "visited", **bad})


def test_context_rules_use_the_request_or_the_latest_known_context():
    rule = compile_rule({"type": "context", "attribute": "device", "op": "eq", "value": "mobile"})
    assert rule(Profile(), T, {"device": "mobile"}).matched
    assert not rule(Profile(), T, {"device": "desktop"}).matched
    assert rule(profile(("page_view", T, {"device": "mobile"})), T).matched  # worker: last known


def test_time_of_day_in_the_site_time_zone():
    rule = compile_rule(
        {"type": "context", "attribute": "hour", "op": "gte", "value": 18},
        tz=ZoneInfo("Europe/Paris"),
    )
    at = datetime(2026, 6, 1, 16, 30, tzinfo=UTC).timestamp()  # 18:30 in Paris (summer)
    out = rule(Profile(), at, {})
    assert out.matched and out.until == datetime(2026, 6, 1, 17, 0, tzinfo=UTC).timestamp()
    weekday = compile_rule({"type": "context", "attribute": "weekday", "op": "in", "value": [5, 6]})
    assert weekday(Profile(), datetime(2026, 6, 6, 12, tzinfo=UTC).timestamp(), {}).matched  # Sat


def test_context_only_detection():
    ctx = {"type": "context", "attribute": "utm_campaign", "op": "eq", "value": "spring"}
    count = {"type": "event_count", "event": "page_view", "min": 1, "window": "1h"}
    assert is_context_only(ctx)
    assert is_context_only({"type": "any", "conditions": [ctx, {"type": "not", "condition": ctx}]})
    assert not is_context_only({"type": "all", "conditions": [ctx, count]})
    with pytest.raises(RuleError):
        compile_rule({"type": "context", "attribute": "ip", "op": "eq", "value": "x"})
