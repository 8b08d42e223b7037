"""Unit tests for the rule engine (segments.rules): pure logic, no Django database."""

import math

import pytest

from segments.profiles.features import MAX_WINDOW, Profile
from segments.rules import (
    MAX_DEPTH,
    MAX_NODES,
    NEVER,
    Outcome,
    RuleError,
    compile_rule,
    parse_window,
    validate_rule,
)

# 2023-11-15 00:00:00 UTC: aligned to a day, so also to an hour and a minute.
T = 1_700_006_400.0
assert T % 86400 == 0


def profile_with(*events: tuple[str, float]) -> Profile:
    profile = Profile()
    for seq, (name, ts) in enumerate(events, start=1):
        assert profile.apply(name, ts, (int(ts * 1000), seq))
    return profile


def count_rule(event: str = "page_view", minimum: int = 1, window: str = "10m") -> dict:
    return {"type": "event_count", "event": event, "min": minimum, "window": window}


def rule_error(tree) -> RuleError:
    with pytest.raises(RuleError) as info:
        compile_rule(tree)
    return info.value


# -- parse_window -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds", "words"),
    [
        ("1s", 1.0, "1 second"),
        ("30s", 30.0, "30 seconds"),
        ("1m", 60.0, "1 minute"),
        ("10m", 600.0, "10 minutes"),
        ("1h", 3600.0, "1 hour"),
        ("2h", 7200.0, "2 hours"),
        ("1d", 86400.0, "1 day"),
        ("400d", 400 * 86400.0, "400 days"),
        ("9600h", 400 * 86400.0, "9600 hours"),
        ("576000m", 400 * 86400.0, "576000 minutes"),
        ("999999s", 999999.0, "999999 seconds"),
        ("007m", 420.0, "7 minutes"),
    ],
)
def test_parse_window_valid(value, seconds, words):
    assert parse_window(value) == (seconds, words)


@pytest.mark.parametrize(
    "value",
    [
        "10x",
        "10",
        "m",
        "",
        "10M",
        " 10m",
        "10m ",
        "1.5h",
        "-5m",
        "+5m",
        "10 m",
        "10mm",
        "1234567s",  # more than six digits
        "ten minutes",
        None,
        10,
        600.0,
        True,
        ["10m"],
        {"10": "m"},
    ],
)
def test_parse_window_rejects_malformed(value):
    with pytest.raises(RuleError) as info:
        parse_window(value)
    assert info.value.path == "window"
    assert "number followed by s, m, h or d" in str(info.value)


@pytest.mark.parametrize("value", ["0s", "0m", "0h", "0d", "000000d"])
def test_parse_window_rejects_zero(value):
    with pytest.raises(RuleError, match="longer than zero") as info:
        parse_window(value, "conditions[2].window")
    assert info.value.path == "conditions[2].window"
    assert str(info.value).startswith("conditions[2].window: ")


@pytest.mark.parametrize("value", ["401d", "9601h", "576001m", "999999d", "999999h"])
def test_parse_window_rejects_windows_longer_than_400_days(value):
    with pytest.raises(RuleError, match="at most 400 days"):
        parse_window(value)


def test_max_window_is_400_days():
    assert MAX_WINDOW == 400 * 86400
    assert parse_window("400d")[0] == MAX_WINDOW


def test_parse_window_rejects_trailing_newline():
    # Regression (fixed):
    # ``_WINDOW_RE`` ends in ``$``, which also matches before a trailing newline.
    with pytest.raises(RuleError):
        parse_window("10m\n")


# -- RuleError / validate_rule ------------------------------------------------------------


def test_rule_error_is_value_error_with_path():
    err = RuleError("bad", "conditions[0].min")
    assert isinstance(err, ValueError)
    assert err.path == "conditions[0].min"
    assert str(err) == "conditions[0].min: bad"
    root = RuleError("bad")
    assert root.path == ""
    assert str(root) == "bad"


def test_validate_rule_valid_returns_empty_list():
    assert validate_rule(count_rule()) == []
    assert validate_rule({"type": "not", "condition": count_rule()}) == []


def test_validate_rule_invalid_returns_the_path_and_the_message_apart():
    tree = {"type": "all", "conditions": [count_rule(), count_rule(window="10x")]}
    problems = validate_rule(tree)
    assert len(problems) == 1
    path, message = problems[0]
    assert path == "conditions[1].window"
    assert message.startswith("a window is") and "conditions" not in message
    assert validate_rule(None) == [("", "each condition must be an object with a 'type'.")]


# -- invalid trees ------------------------------------------------------------------------


@pytest.mark.parametrize("node", [None, [], "all", 3, 1.5, True, ["type", "all"]])
def test_root_must_be_an_object(node):
    err = rule_error(node)
    assert err.path == ""
    assert "must be an object with a 'type'" in str(err)


@pytest.mark.parametrize(
    "node",
    [
        {},
        {"type": "xor"},
        {"type": "ALL"},
        {"type": None},
        {"type": 1},
        {"type": ["all"]},  # unhashable: must still be a RuleError, not a TypeError
        {"type": {"a": 1}},
    ],
)
def test_unknown_type(node):
    err = rule_error(node)
    assert err.path == ""
    assert "unknown condition type" in str(err)
    assert (
        "all, any, cluster, context, event_count, event_without, feature, model, not, "
        "page_visits, query, visited" in str(err)
    )


def test_unknown_type_nested_has_path():
    tree = {
        "type": "any",
        "conditions": [count_rule(), {"type": "not", "condition": {"type": "nope"}}],
    }
    err = rule_error(tree)
    assert err.path == "conditions[1].condition"
    assert "'nope'" in str(err)


@pytest.mark.parametrize("kind", ["all", "any"])
@pytest.mark.parametrize("conditions", [None, [], "abc", {"type": "event_count"}, 5])
def test_group_conditions_must_be_non_empty_list(kind, conditions):
    tree = {"type": kind} if conditions is None else {"type": kind, "conditions": conditions}
    err = rule_error(tree)
    assert err.path == "conditions"
    assert "non-empty list" in str(err)


@pytest.mark.parametrize("child", [None, 5, "x", [count_rule()]])
def test_group_child_must_be_an_object(child):
    err = rule_error({"type": "all", "conditions": [count_rule(), count_rule(), child]})
    assert err.path == "conditions[2]"


def test_not_requires_condition():
    err = rule_error({"type": "not"})
    assert err.path == "condition"
    assert "object with a 'type'" in str(err)
    err = rule_error({"type": "not", "condition": [count_rule()]})
    assert err.path == "condition"


@pytest.mark.parametrize(
    "event", [None, "", "Page_view", "1page", "_page", "page view", "page-view", 5, "a" * 65]
)
def test_event_count_bad_event_name(event):
    node = count_rule()
    if event is None:
        del node["event"]
    else:
        node["event"] = event
    err = rule_error({"type": "all", "conditions": [node]})
    assert err.path == "conditions[0].event"
    assert "event name" in str(err)


def test_event_count_rejects_event_name_with_trailing_newline():
    # Regression (fixed):
    # segments.events.NAME_RE ends in ``$``, which also matches before a trailing newline.
    err = rule_error(count_rule(event="page_view\n"))
    assert err.path == "event"


@pytest.mark.parametrize(
    "minimum", [True, False, 0, -1, -100, 1.5, 3.0, "3", None, [3], 1_000_001, 10**30]
)
def test_event_count_bad_min(minimum):
    err = rule_error({"type": "not", "condition": count_rule(minimum=minimum)})
    assert err.path == "condition.min"
    assert "whole number from 1 to 1,000,000" in str(err)


def test_event_count_min_bounds_and_default():
    compile_rule(count_rule(minimum=1))
    compile_rule(count_rule(minimum=1_000_000))
    node = count_rule()
    del node["min"]
    evaluate = compile_rule(node)
    profile = profile_with(("page_view", T))
    assert evaluate(profile, T + 1).matched is True  # default min is 1


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ("10x", "number followed by"),
        ("0m", "longer than zero"),
        ("401d", "at most 400 days"),
        (None, "number followed by"),
        (600, "number followed by"),
    ],
)
def test_event_count_bad_window_has_path(window, message):
    tree = {
        "type": "any",
        "conditions": [
            count_rule(),
            {"type": "all", "conditions": [count_rule(), count_rule(window=window)]},
        ],
    }
    err = rule_error(tree)
    assert err.path == "conditions[1].conditions[1].window"
    assert message in str(err)


def test_event_count_missing_window():
    node = count_rule()
    del node["window"]
    assert rule_error(node).path == "window"


def _not_chain(depth: int) -> dict:
    node = count_rule()
    for _ in range(depth):
        node = {"type": "not", "condition": node}
    return node


def test_nesting_at_max_depth_is_accepted():
    assert MAX_DEPTH == 8
    evaluate = compile_rule(_not_chain(MAX_DEPTH))  # leaf at depth 8
    # 8 negations cancel out.
    assert evaluate(profile_with(("page_view", T)), T + 1).matched is True
    assert evaluate(Profile(), T).matched is False


def test_nesting_too_deep_is_refused_with_path():
    err = rule_error(_not_chain(MAX_DEPTH + 1))
    assert "nested at most 8 deep" in str(err)
    assert err.path == ".".join(["condition"] * (MAX_DEPTH + 1))


def test_nesting_too_deep_through_groups():
    node = count_rule()
    for _ in range(MAX_DEPTH + 1):
        node = {"type": "all", "conditions": [node]}
    err = rule_error(node)
    assert "nested at most" in str(err)
    assert err.path == ".".join(["conditions[0]"] * (MAX_DEPTH + 1))


def test_max_nodes_is_accepted():
    assert MAX_NODES == 64
    tree = {"type": "any", "conditions": [count_rule() for _ in range(MAX_NODES - 1)]}
    evaluate = compile_rule(tree)  # exactly 64 nodes
    assert evaluate(Profile(), T).matched is False


def test_too_many_nodes_is_refused_with_path():
    tree = {"type": "any", "conditions": [count_rule() for _ in range(MAX_NODES)]}
    err = rule_error(tree)
    assert "at most 64 conditions" in str(err)
    assert err.path == f"conditions[{MAX_NODES - 1}]"


def test_too_many_nodes_counts_nested_nodes():
    # 1 root + 16 * (1 group + 3 leaves) = 65 nodes.
    tree = {
        "type": "all",
        "conditions": [
            {"type": "any", "conditions": [count_rule(), count_rule(), count_rule()]}
            for _ in range(16)
        ],
    }
    err = rule_error(tree)
    assert "at most 64 conditions" in str(err)
    assert err.path == "conditions[15].conditions[2]"


def test_invalid_tree_raises_even_when_first_problem_is_late():
    tree = {"type": "all", "conditions": [count_rule() for _ in range(5)]}
    tree["conditions"].append(count_rule(minimum=0))
    assert rule_error(tree).path == "conditions[5].min"


# -- event_count evaluation and ``until`` ---------------------------------------------------


def test_outcome_words_its_reasons_only_when_read():
    calls = []
    outcome = Outcome(True, 5.0, lambda: calls.append(1) or ["x"])
    assert calls == []
    assert outcome.reasons == ("x",) and outcome.reasons == ("x",)
    assert calls == [1]
    assert outcome == Outcome(True, 5.0, ("x",))
    assert Outcome(False, NEVER).reasons == ()
    assert math.inf == NEVER


def test_event_count_on_empty_profile_never_changes_without_events():
    evaluate = compile_rule(count_rule(minimum=3))
    outcome = evaluate(Profile(), T)
    assert outcome == Outcome(
        False,
        NEVER,
        ("0 page view event(s) in the last 10 minutes, fewer than the 3 required (3 short)",),
    )


def test_three_page_views_in_ten_minutes_until():
    evaluate = compile_rule(count_rule(minimum=3, window="10m"))
    profile = profile_with(("page_view", T), ("page_view", T + 60), ("page_view", T + 120))
    outcome = evaluate(profile, T + 130)
    assert outcome.matched is True
    # The oldest of the three needed events is in the bucket [T, T+60): it counts while any
    # part of it lies in the last 10 minutes, i.e. until T + 60 + 600.
    assert outcome.until == T + 660
    assert outcome.reasons == ("3 page view event(s) in the last 10 minutes (threshold 3)",)

    # Without new events, the member stops matching at ``until``.
    assert evaluate(profile, outcome.until - 1).matched is True
    assert evaluate(profile, outcome.until).matched is False
    after = evaluate(profile, outcome.until + 1)
    assert after.matched is False
    assert after.until == NEVER
    assert after.reasons == (
        "2 page view event(s) in the last 10 minutes, fewer than the 3 required (1 short)",
    )


def test_until_is_at_most_one_bucket_after_the_exact_window():
    evaluate = compile_rule(count_rule(minimum=3, window="10m"))
    first = T + 30
    profile = profile_with(("page_view", first), ("page_view", T + 90), ("page_view", T + 150))
    outcome = evaluate(profile, T + 200)
    assert outcome.matched is True
    exact = first + 600  # when the oldest needed event leaves the exact window
    assert exact <= outcome.until <= exact + 60
    assert outcome.until == T + 660


def test_until_uses_the_newest_events_that_reach_the_minimum():
    evaluate = compile_rule(count_rule(minimum=2, window="10m"))
    profile = profile_with(
        ("page_view", T), ("page_view", T + 120), ("page_view", T + 240), ("page_view", T + 245)
    )
    outcome = evaluate(profile, T + 300)
    assert outcome.matched is True
    # The two newest events (bucket [T+240, T+300)) keep the answer true the longest.
    assert outcome.until == T + 300 + 600
    assert evaluate(profile, T + 899).matched is True
    assert evaluate(profile, T + 901).matched is False


def test_events_of_other_names_do_not_count():
    evaluate = compile_rule(count_rule(event="signup", minimum=1, window="1h"))
    profile = profile_with(("page_view", T), ("page_view", T + 1))
    assert evaluate(profile, T + 2).matched is False


def test_hour_tier_window_until():
    # 2h is longer than an hour, so it is answered from hour buckets.
    evaluate = compile_rule(count_rule(event="purchase", minimum=2, window="2h"))
    profile = profile_with(("purchase", T + 10), ("purchase", T + 3700))
    outcome = evaluate(profile, T + 4000)
    assert outcome.matched is True
    assert outcome.reasons == ("2 purchase event(s) in the last 2 hours (threshold 2)",)
    assert outcome.until == T + 3600 + 7200
    assert evaluate(profile, outcome.until - 1).matched is True
    assert evaluate(profile, outcome.until + 1).matched is False


def test_day_tier_window_until():
    # 3 days is longer than 48 hours, so it is answered from day buckets.
    evaluate = compile_rule(count_rule(event="signup", minimum=1, window="3d"))
    profile = profile_with(("signup", T + 100))
    outcome = evaluate(profile, T + 200)
    assert outcome.matched is True
    assert outcome.reasons == ("1 signup event(s) in the last 3 days (threshold 1)",)
    assert outcome.until == T + 86400 + 3 * 86400
    assert evaluate(profile, outcome.until - 1).matched is True
    assert evaluate(profile, outcome.until + 1).matched is False


def test_seconds_window_until():
    evaluate = compile_rule(count_rule(minimum=1, window="30s"))
    profile = profile_with(("page_view", T + 5))
    outcome = evaluate(profile, T + 10)
    assert outcome.matched is True
    assert outcome.until == T + 60 + 30
    assert outcome.reasons == ("1 page view event(s) in the last 30 seconds (threshold 1)",)


def test_compiled_rule_is_independent_of_later_edits_to_the_tree():
    tree = count_rule(minimum=1)
    evaluate = compile_rule(tree)
    tree["min"] = 100
    tree["event"] = "signup"
    assert evaluate(profile_with(("page_view", T)), T + 1).matched is True


# -- not / all / any ----------------------------------------------------------------------

# A: 1 page_view in 10m, holds until T+660 (event at T).
# B: 1 signup in 1h, holds until T+180+3600 = T+3780 (event at T+120).
A = count_rule("page_view", 1, "10m")
B = count_rule("signup", 1, "1h")
A_REASON = "1 page view event(s) in the last 10 minutes (threshold 1)"
B_REASON = "1 signup event(s) in the last 1 hour (threshold 1)"
A_MISSED = "0 page view event(s) in the last 10 minutes, fewer than the 1 required (1 short)"


@pytest.fixture
def profile():
    return profile_with(("page_view", T), ("signup", T + 120))


def test_not_of_matching_condition(profile):
    evaluate = compile_rule({"type": "not", "condition": A})
    outcome = evaluate(profile, T + 300)
    assert outcome == Outcome(False, T + 660, (f"excluded: {A_REASON}",))
    # ... and starts to hold when the child stops, without any new event.
    later = evaluate(profile, T + 661)
    assert later.matched is True
    assert later.until == NEVER
    assert later.reasons == (f"not ({A_MISSED})",)


def test_not_of_empty_profile_holds_forever():
    evaluate = compile_rule({"type": "not", "condition": A})
    assert evaluate(Profile(), T).matched is True
    assert evaluate(Profile(), T).until == NEVER


def test_double_not(profile):
    evaluate = compile_rule({"type": "not", "condition": {"type": "not", "condition": A}})
    outcome = evaluate(profile, T + 300)
    assert outcome == Outcome(True, T + 660, (f"not (excluded: {A_REASON})",))


def test_all_matching_holds_until_first_child_stops(profile):
    evaluate = compile_rule({"type": "all", "conditions": [A, B]})
    outcome = evaluate(profile, T + 300)
    assert outcome == Outcome(True, T + 660, (A_REASON, B_REASON))
    assert evaluate(profile, T + 659).matched is True
    assert evaluate(profile, T + 661).matched is False


def test_all_not_matching_reports_only_failing_children(profile):
    evaluate = compile_rule({"type": "all", "conditions": [A, B]})
    outcome = evaluate(profile, T + 700)
    assert outcome.matched is False
    assert outcome.until == NEVER  # only a new page view can make it hold again
    assert outcome.reasons == (A_MISSED,)


def test_all_not_matching_until_failing_child_may_start_to_hold(profile):
    evaluate = compile_rule({"type": "all", "conditions": [A, {"type": "not", "condition": B}]})
    outcome = evaluate(profile, T + 300)
    assert outcome.matched is False
    assert outcome.until == T + 3780
    assert outcome.reasons == (f"excluded: {B_REASON}",)
    # A has expired by then, so it is still false: the early guess was safe.
    assert evaluate(profile, T + 3781).matched is False


def test_any_matching_holds_until_last_child_stops(profile):
    evaluate = compile_rule({"type": "any", "conditions": [A, B]})
    outcome = evaluate(profile, T + 300)
    assert outcome == Outcome(True, T + 3780, (A_REASON, B_REASON))
    only_b = evaluate(profile, T + 700)
    assert only_b == Outcome(True, T + 3780, (B_REASON,))
    assert evaluate(profile, T + 3779).matched is True
    none = evaluate(profile, T + 3781)
    assert none.matched is False
    assert none.until == NEVER
    assert len(none.reasons) == 2


def test_any_not_matching_until_first_child_may_start(profile):
    tree = {
        "type": "any",
        "conditions": [
            {"type": "not", "condition": A},
            {"type": "not", "condition": B},
            count_rule("purchase"),
        ],
    }
    evaluate = compile_rule(tree)
    outcome = evaluate(profile, T + 300)
    assert outcome.matched is False
    assert outcome.until == T + 660
    assert evaluate(profile, T + 661).matched is True


def test_nested_groups(profile):
    # (page view AND signup) OR NOT (any purchase in 400 days)
    tree = {
        "type": "any",
        "conditions": [
            {"type": "all", "conditions": [A, B]},
            {"type": "not", "condition": count_rule("purchase", 1, "400d")},
        ],
    }
    evaluate = compile_rule(tree)
    outcome = evaluate(profile, T + 300)
    assert outcome.matched is True
    assert outcome.until == NEVER  # no purchase: the second branch holds forever
    with_purchase = profile_with(("page_view", T), ("signup", T + 120), ("purchase", T + 130))
    outcome = evaluate(with_purchase, T + 300)
    assert outcome.matched is True
    assert outcome.until == T + 660  # only the first branch holds now
    assert outcome.reasons == (A_REASON, B_REASON)
    assert evaluate(with_purchase, T + 661).matched is False


def test_nested_not_of_all(profile):
    tree = {"type": "not", "condition": {"type": "all", "conditions": [A, B]}}
    evaluate = compile_rule(tree)
    outcome = evaluate(profile, T + 300)
    assert outcome == Outcome(False, T + 660, (f"excluded: {A_REASON}", f"excluded: {B_REASON}"))
    assert evaluate(profile, T + 661).matched is True


def test_evaluation_never_raises_for_a_compiled_rule():
    tree = {
        "type": "all",
        "conditions": [
            count_rule("a", 1, "1s"),
            count_rule("b", 1_000_000, "400d"),
            {"type": "not", "condition": count_rule("c", 5, "48h")},
        ],
    }
    evaluate = compile_rule(tree)
    for now in (0.0, T, T * 10, -1.0):
        outcome = evaluate(profile_with(("a", T), ("c", T)), now)
        assert isinstance(outcome, Outcome)
        assert outcome.matched is False
