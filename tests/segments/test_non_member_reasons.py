"""Issue #12: a reason given to a visitor who is NOT in a segment says which condition failed
and by how much; it never reads as if the condition held (the reasons of a member do)."""

import pytest

from segments.profiles.features import Profile
from segments.rules import comparison_gap, compile_rule, reason_check

T = 1_700_000_000.0
DAY = 86400.0


def profile(*events):
    p = Profile()
    for n, (name, ts, *props) in enumerate(events, start=1):
        p.apply(name, ts, (n, 0), props[0] if props else None)
    return p


def reasons(rule: dict, p: Profile, now: float, *, matched: bool) -> tuple[str, ...]:
    out = compile_rule(rule)(p, now)
    assert out.matched is matched
    return out.reasons


def test_a_feature_comparison_that_fails_says_so_and_by_how_much():
    rule = {"type": "feature", "feature": "days_since_last_seen", "op": "lt", "value": 30}
    p = profile(("page_view", T))
    assert reasons(rule, p, T + 10 * DAY, matched=True) == ("days since last seen is 10 (< 30)",)
    assert reasons(rule, p, T + 40 * DAY, matched=False) == (
        "days since last seen is 40, not < 30 (10 too high)",
    )
    at_least = {"type": "feature", "feature": "sessions", "op": "gte", "value": 5}
    assert reasons(at_least, p, T, matched=False) == ("sessions is 1, not ≥ 5 (4 too low)",)


def test_an_unknown_value_is_not_read_as_a_comparison_that_held():
    rule = {"type": "feature", "feature": "days_since_last_purchase", "op": "lt", "value": 30}
    assert reasons(rule, profile(("page_view", T)), T, matched=False) == (
        "days since last purchase is unknown, so not < 30",
    )


def test_a_context_comparison_that_fails_names_the_expected_value():
    rule = {"type": "context", "attribute": "device", "op": "eq", "value": "mobile"}
    out = compile_rule(rule)(Profile(), T, {"device": "desktop"})
    assert not out.matched and out.reasons == ("device is desktop, not = mobile",)


def test_too_few_and_too_many_events_say_how_many_were_missing_or_extra():
    few = {"type": "event_count", "event": "page_view", "min": 3, "window": "1h"}
    p = profile(("page_view", T))
    assert reasons(few, p, T + 1, matched=False) == (
        "1 page view event(s) in the last 1 hour, fewer than the 3 required (2 short)",
    )
    many = {"type": "event_count", "event": "page_view", "min": 1, "max": 1, "window": "1h"}
    p = profile(("page_view", T), ("page_view", T + 1), ("page_view", T + 2))
    assert reasons(many, p, T + 3, matched=False) == (
        "3 page view event(s) in the last 1 hour, more than the 1 allowed (2 too many)",
    )


def test_an_excluded_condition_that_holds_reads_as_the_reason_for_exclusion():
    rule = {
        "type": "not",
        "condition": {"type": "event_count", "event": "purchase", "min": 1, "window": "30d"},
    }
    (reason,) = reasons(rule, profile(("purchase", T)), T + 1, matched=False)
    assert reason == "excluded: 1 purchase event(s) in the last 30 days (threshold 1)"
    (reason,) = reasons(rule, Profile(), T, matched=True)
    assert reason.startswith("not (0 purchase event(s)") and "fewer than the 1 required" in reason


def test_a_cart_too_recent_to_count_as_abandoned_says_how_long_is_left():
    rule = {
        "type": "event_without",
        "event": "add_to_cart",
        "without": "purchase",
        "window": "1d",
        "min_age": "30m",
    }
    assert reasons(rule, profile(("add_to_cart", T)), T + 600, matched=False) == (
        "add to cart too recent: 10 minutes ago, at least 30 minutes required (20 minutes short)",
    )


@pytest.mark.parametrize(
    ("value", "op", "target", "gap"),
    [
        (8, "gte", 10, "2 too low"),
        (10, "gt", 10, "at the limit, which is excluded"),
        (40, "lt", 30, "10 too high"),
        (30.5, "lte", 30, "0.5 too high"),
        (12, "gte", 10, None),  # holds
        ("desktop", "eq", "mobile", None),  # not an ordered comparison of numbers
    ],
)
def test_comparison_gap(value, op, target, gap):
    assert comparison_gap(value, op, target) == gap


def test_reason_check_words_a_held_comparison_as_before():
    assert (
        reason_check("engagement score", 12.0, "gte", 10, True) == "engagement score is 12 (≥ 10)"
    )
